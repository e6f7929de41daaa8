/**
 * How many datagrams the kernel dropped on one of our UDP sockets before we could read them: the
 * evidence a DROPS report carries (docs/protocol.md, "Budget and amplification"). Linux keeps a
 * drop counter per socket (`sk_drops`: a full receive buffer, mostly; a bad UDP checksum too) and
 * shows it in the last column of /proc/net/udp and /proc/net/udp6, one line per socket, keyed by
 * its local address and port. Node does not expose SO_RXQ_OVFL, which carries the same counter
 * in ancillary data; /proc is its readable form. Elsewhere there is no such file: no evidence,
 * no report.
 *
 * The parser is pure; the reader reads the file asynchronously; the reporter decides when a
 * collection reads it and reports, so header-receiver.ts only says when it is about to ask again.
 */
import { readFile } from "node:fs/promises";
import { endianness } from "node:os";
import ipaddr from "ipaddr.js";

/** One socket's line of /proc/net/udp or /proc/net/udp6. */
export interface ProcUdpSocket {
  /** The local address in ipaddr.js's spelling ("127.0.0.1", "::", "::ffff:7f00:1"). */
  localAddress: string;
  localPort: number;
  /** The "drops" column: datagrams the kernel dropped on this socket since it was created. */
  drops: number;
}

/** The bound address of a socket, as socket.address() gives it. */
export interface LocalSocket {
  address: string;
  port: number;
  family: string;
}

/**
 * The sockets of a /proc/net/udp or /proc/net/udp6 text. The kernel prints each address word as
 * a 32-bit number in host byte order (`%08X` of the raw word: 127.0.0.1 is 0100007F on a
 * little-endian machine), the port in plain hexadecimal, and the drops count in decimal in the
 * last column (net/ipv4/udp.c udp4_format_sock, net/ipv6/datagram.c __ip6_dgram_sock_seq_show).
 * Lines that are not a socket's (the heading, blank lines) are skipped.
 */
export function parseProcNetUdp(text: string, hostEndianness: "LE" | "BE" = endianness()): ProcUdpSocket[] {
  const sockets: ProcUdpSocket[] = [];
  for (const line of text.split("\n")) {
    const columns = line.trim().split(/\s+/);
    const local = /^([0-9A-Fa-f]{8}|[0-9A-Fa-f]{32}):([0-9A-Fa-f]{4})$/.exec(columns[1] ?? "");
    const drops = columns[columns.length - 1] ?? "";
    if (!/^\d+:$/.test(columns[0] ?? "") || !local || !/^\d+$/.test(drops)) continue;
    sockets.push({
      localAddress: addressFromHex(local[1]!, hostEndianness),
      localPort: parseInt(local[2]!, 16),
      drops: Number(drops),
    });
  }
  return sockets;
}

/** The address bytes in network order: each word's bytes as they lie in the host's memory. */
function addressFromHex(hex: string, hostEndianness: "LE" | "BE"): string {
  const bytes: number[] = [];
  for (let at = 0; at < hex.length; at += 8) {
    const word = [0, 2, 4, 6].map((i) => parseInt(hex.slice(at + i, at + i + 2), 16));
    bytes.push(...(hostEndianness === "LE" ? word.reverse() : word));
  }
  return ipaddr.fromByteArray(bytes).toString();
}

/** The drops count of the socket bound to `local` among these, or undefined when it is not listed. */
export function dropsOf(sockets: readonly ProcUdpSocket[], local: LocalSocket): number | undefined {
  if (!ipaddr.isValid(local.address)) return undefined;
  // One spelling on both sides ("0:0::1" and "::1" alike); an IPv4-mapped address stays IPv6, as
  // /proc/net/udp6 lists it.
  const address = ipaddr.parse(local.address).toString();
  return sockets.find((s) => s.localPort === local.port && s.localAddress === address)?.drops;
}

/** Where Linux lists a family's UDP sockets. */
export function procNetUdpPath(family: string): string {
  return family === "IPv6" ? "/proc/net/udp6" : "/proc/net/udp";
}

/**
 * The kernel's drops count for this socket, or undefined where there is no evidence (not Linux,
 * no /proc, the socket not listed). Never throws.
 */
export async function readSocketDrops(local: LocalSocket): Promise<number | undefined> {
  try {
    return dropsOf(parseProcNetUdp(await readFile(procNetUdpPath(local.family), "latin1")), local);
  } catch {
    return undefined;
  }
}

/**
 * The shortest wait between two reads of the counter, whatever the round trip: a read parses a
 * line for every UDP socket of the host, and on loopback a round trip is a tenth of a millisecond.
 */
export const MIN_READ_INTERVAL_MS = 10;

/**
 * When a collection reads its socket's drops count and reports it: just before it asks for chunks
 * again, at most once per `intervalMs` (a round trip; MIN_READ_INTERVAL_MS at least), and a
 * report only when the count grew since the last one, or, after a timeout, again when it is above
 * zero (the report may have been lost on the path like any datagram, and a repeat credits nothing
 * twice).
 */
export class DropsReporter {
  /** The latest count read, and the last one reported. */
  seen = 0;
  reported = 0;
  reportsSent = 0;
  private reading = false;
  private lastReadAtMs = -Infinity;
  private repeatDue = false;

  constructor(
    private readonly read: () => Promise<number | undefined>,
    private readonly report: (drops: number) => void,
  ) {}

  /** A timeout: the next read reports even an unchanged count. */
  onTimeout(): void {
    if (this.reported > 0) this.repeatDue = true;
  }

  /**
   * Called before asking for chunks. True when the caller must hold back: the count is being read
   * (`reasking` and due, or a read already under way), and `resume` is called once it is read and
   * reported. False: ask now.
   */
  holdBack(reasking: boolean, nowMs: number, intervalMs: number, resume: () => void): boolean {
    if (this.reading) return true;
    if (!reasking || nowMs - this.lastReadAtMs < Math.max(intervalMs, MIN_READ_INTERVAL_MS)) return false;
    this.reading = true;
    this.lastReadAtMs = nowMs;
    const done = (drops: number | undefined): void => {
      this.reading = false;
      if (drops !== undefined) this.seen = Math.max(this.seen, drops);
      if (this.seen > this.reported || (this.repeatDue && this.seen > 0)) {
        this.reported = this.seen;
        this.repeatDue = false;
        this.reportsSent++;
        this.report(this.seen);
      }
      resume();
    };
    this.read().then(done, () => done(undefined));
    return true;
  }
}
