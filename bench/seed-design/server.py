#!/usr/bin/env python3
"""The seed's design, for the bench only: the networks lab's server (a thread per TCP client, one
shared UDP socket, a dict cache under a lock, cache.txt written at TERMINATE) speaking headwire's
wire protocol (docs/protocol.md) just enough for QUERY -> TICKET -> REQUEST -> CHUNK.

As in the seed, a client's thread answers a query and then waits on the one shared UDP socket for
"its" datagram, and answers whoever sent the datagram it got. With several clients waiting at
once the kernel hands a datagram to any of the waiting threads, so a header can go to the wrong
client: the token in the TICKET line is not looked up (the seed had none), it is only written
into the chunks so that a client can tell. That is the design being measured, not a bug of this
copy. Loopback only; ephemeral ports; stops on SIGTERM or when stdin closes.

    python3 bench/seed-design/server.py --host 127.0.0.1 --cache-file /tmp/x/cache.txt
    -> prints "SEED READY control=<port> data=<port>" on stdout
"""
import argparse
import hashlib
import os
import signal
import socket
import struct
import sys
import threading
import zlib
from urllib.parse import urlsplit

MAGIC = 0x4857
VERSION = 2
TYPE_REQUEST = 1
TYPE_CHUNK = 2
# headwire's defaults: maxDatagramBytes 1200 -> 1200 - 44 bytes of chunk header and CRC.
CHUNK_PAYLOAD = 1200 - 44
GREETING = b"HEADWIRE/2 READY seed-design\n"

cache = {}  # url -> (status, header bytes)
cache_lock = threading.Lock()


def fetch_header(url):
    """The seed's origin fetch: a TCP connection, a GET, everything up to the blank line."""
    parts = urlsplit(url)
    if parts.scheme != "http" or parts.hostname not in ("127.0.0.1", "localhost", "::1"):
        raise ValueError("the seed design is benchmarked against loopback http origins only")
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    with socket.create_connection((parts.hostname, parts.port or 80), timeout=10) as origin:
        origin.sendall(f"GET {path} HTTP/1.1\r\nHost: {parts.netloc}\r\nConnection: close\r\n\r\n".encode())
        data = b""
        while b"\r\n\r\n" not in data:
            more = origin.recv(65536)
            if not more:
                break
            data += more
    header = data[: data.index(b"\r\n\r\n") + 4]
    status = int(header.split(b" ", 2)[1])
    return status, header


def lookup(url):
    with cache_lock:
        found = cache.get(url)
    if found is not None:
        return found, "HIT"
    found = fetch_header(url)
    with cache_lock:
        cache[url] = found
    return found, "MISS"


def persist(path):
    """At TERMINATE, as the seed did: the whole cache rewritten under the lock."""
    if not path:
        return
    with cache_lock:
        with open(path, "wb") as out:
            for url, (status, header) in cache.items():
                out.write(f"{url}\t{status}\t{len(header)}\n".encode() + header)


def chunk_datagram(token, request_number, index, count, header, offset, payload):
    body = struct.pack(">HBB16sIIIII", MAGIC, VERSION, TYPE_CHUNK, token, request_number, index, count, len(header), offset)
    body += payload
    return body + struct.pack(">I", zlib.crc32(body) & 0xFFFFFFFF)


def deliver(udp, token, header, chunks):
    """Waits on the shared socket for a REQUEST and answers its sender with this thread's header."""
    while True:
        data, sender = udp.recvfrom(2048)
        if len(data) < 30 or struct.unpack(">H", data[:2])[0] != MAGIC or data[3] != TYPE_REQUEST:
            continue
        if zlib.crc32(data[:-4]) & 0xFFFFFFFF != struct.unpack(">I", data[-4:])[0]:
            continue
        request_number = struct.unpack(">I", data[20:24])[0]
        for index in range(chunks):
            offset = index * CHUNK_PAYLOAD
            payload = header[offset : offset + CHUNK_PAYLOAD]
            udp.sendto(chunk_datagram(token, request_number, index, chunks, header, offset, payload), sender)
        return


def serve_client(conn, udp, udp_host, udp_port, cache_file):
    with conn:
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        conn.sendall(GREETING)
        reader = conn.makefile("rb")
        for raw in reader:
            line = raw.rstrip(b"\r\n").decode("utf-8", "replace")
            words = line.split()
            if not words:
                conn.sendall(b"ERROR BAD_REQUEST empty line\n")
            elif words[0].upper() == "TERMINATE":
                persist(cache_file)
                conn.sendall(b"BYE\n")
                return
            elif words[0].upper() == "PING":
                conn.sendall(b"PONG\n")
            elif words[0].upper() == "QUERY" and len(words) >= 2:
                try:
                    (status, header), outcome = lookup(words[1])
                except Exception as error:  # the seed answered an error and went on
                    conn.sendall(f"ERROR ORIGIN_UNREACHABLE {error}\n".encode())
                    continue
                token = os.urandom(16)
                chunks = max(1, -(-len(header) // CHUNK_PAYLOAD))
                digest = hashlib.sha256(header).hexdigest()
                conn.sendall(
                    f"TICKET token={token.hex()} udp={udp_host}:{udp_port} bytes={len(header)} chunks={chunks} "
                    f"cache={outcome} status={status} sha256={digest}\n".encode()
                )
                deliver(udp, token, header, chunks)
            else:
                conn.sendall(b"ERROR UNKNOWN_COMMAND\n")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--cache-file", default="")
    args = parser.parse_args()
    if not args.host.startswith("127."):
        sys.exit("seed-design server: loopback (127.0.0.0/8) only")
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    # headwire's dataReceiveBufferBytes, so that neither drops where the other does not
    udp.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 * 1024 * 1024)
    udp.bind((args.host, 0))
    control = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    control.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    control.bind((args.host, 0))
    control.listen(511)
    udp_port = udp.getsockname()[1]
    print(f"SEED READY control={control.getsockname()[1]} data={udp_port}", flush=True)
    signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
    # The parent going away (stdin closed) ends the server too: no orphan left listening.
    threading.Thread(target=lambda: (sys.stdin.read(), os._exit(0)), daemon=True).start()
    while True:
        conn, _ = control.accept()
        threading.Thread(target=serve_client, args=(conn, udp, args.host, udp_port, args.cache_file), daemon=True).start()


if __name__ == "__main__":
    main()
