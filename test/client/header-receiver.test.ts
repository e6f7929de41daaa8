/**
 * receiveHeader against a tiny UDP peer on loopback that answers REQUEST datagrams with CHUNKs
 * built by the protocol's own encoder: no headwire server. Each test decides, per request, which
 * chunks the peer sends (dropped, corrupt, twice, out of order), and waits on the receiver's
 * promise; the timeouts given to the receiver are its own re-asking clock, not sleeps.
 */
import assert from "node:assert/strict";
import { createHash, randomBytes } from "node:crypto";
import { createSocket, type RemoteInfo, type Socket } from "node:dgram";
import { once } from "node:events";
import { test } from "node:test";
import fc from "fast-check";
import {
  bindFreshPort,
  CLIENT_RECEIVE_BUFFER_BYTES,
  receiveHeader,
  type ReceiveOptions,
} from "../../src/client/header-receiver.js";
import type { HeadwireError } from "../../src/errors.js";
import type { Ticket } from "../../src/protocol/control.js";
import { CHUNK_OVERHEAD_BYTES, chunkCount, decodeDatagram, encodeChunk } from "../../src/protocol/datagram.js";

type Hooks = { after: (fn: () => void) => void };

const PAYLOAD_BYTES = 100;

/** Options under which nothing is asked again unless the peer stays silent for a whole second. */
const PATIENT: ReceiveOptions = {
  chunkTimeoutMs: 1000,
  minChunkTimeoutMs: 1000,
  maxChunkTimeoutMs: 2000,
  maxDeliveryAttempts: 4,
  windowChunks: 64,
  maxTicketTtlMs: 60_000,
};

/**
 * Options under which a silence after some chunks came is noticed in milliseconds. The first wait
 * (before any chunk has come, so before any round trip is measured) stays long: a loaded machine
 * that is slow to answer the first request does not make the receiver ask again early.
 */
const QUICK: ReceiveOptions = {
  chunkTimeoutMs: 1000,
  minChunkTimeoutMs: 20,
  maxChunkTimeoutMs: 80,
  maxDeliveryAttempts: 4,
  windowChunks: 64,
  maxTicketTtlMs: 60_000,
};

/** For peers that never answer: every wait is short (no answer can come early or late). */
const SILENT: ReceiveOptions = { ...QUICK, chunkTimeoutMs: 20 };

interface Request {
  indices: number[];
  from: RemoteInfo;
  /** When it arrived (performance.now()). */
  at: number;
}

/**
 * The peer: records every REQUEST (the chunk indices it asked for), then lets `answer` decide
 * which datagrams go back for it (by default: every chunk asked for, once, in order).
 */
class ChunkPeer {
  readonly requests: Request[] = [];
  readonly token = randomBytes(16);
  readonly chunks: number;
  private answering = 0;
  answer: (indices: number[], nth: number) => Buffer[] = (indices) => indices.map((i) => this.chunk(i));

  private constructor(
    readonly socket: Socket,
    readonly header: Buffer,
  ) {
    this.chunks = chunkCount(header.length, PAYLOAD_BYTES);
    socket.on("message", (message: Buffer, from: RemoteInfo) => {
      const datagram = decodeDatagram(message);
      assert.equal(datagram?.type, "request", "the receiver sends only well-formed REQUESTs");
      if (datagram?.type !== "request") return;
      assert.ok(datagram.token.equals(this.token), "with the ticket's token");
      const indices = datagram.ranges.flatMap(({ first, count }) => Array.from({ length: count }, (_, k) => first + k));
      this.requests.push({ indices, from, at: performance.now() });
      // Chunks echo the request they answer, as a server does (datagram version 2).
      this.answering = datagram.requestNumber;
      for (const reply of this.answer(indices, this.requests.length - 1)) socket.send(reply, from.port, from.address);
    });
  }

  static async start(t: Hooks, header: Buffer): Promise<ChunkPeer> {
    const socket = createSocket("udp4");
    socket.bind(0, "127.0.0.1");
    await once(socket, "listening");
    t.after(() => socket.close());
    return new ChunkPeer(socket, header);
  }

  /** The ticket the server would have announced over TCP for this header. */
  ticket(overrides: Partial<Ticket> = {}): Ticket {
    return {
      token: this.token,
      udpHost: "127.0.0.1",
      udpPort: this.socket.address().port,
      bytes: this.header.length,
      chunks: this.chunks,
      cache: "MISS",
      status: 200,
      sha256: createHash("sha256").update(this.header).digest(),
      ...overrides,
    };
  }

  chunk(index: number, token = this.token): Buffer {
    const offset = index * PAYLOAD_BYTES;
    const payload = this.header.subarray(offset, offset + PAYLOAD_BYTES);
    return encodeChunk({
      token,
      requestNumber: this.answering,
      index,
      count: this.chunks,
      total: this.header.length,
      offset,
      payload,
    });
  }

  /** A chunk with one payload byte flipped after its CRC was computed. */
  corrupt(index: number): Buffer {
    const buf = this.chunk(index);
    buf[CHUNK_OVERHEAD_BYTES]! ^= 0x01;
    return buf;
  }

  /** Every chunk index asked for, over all requests, with repeats. */
  asked(): number[] {
    return this.requests.flatMap((r) => r.indices);
  }
}

function header(bytes: number): Buffer {
  const start = "HTTP/1.1 200 OK\r\nX-Pad: ";
  return Buffer.from(`${start}${"abcdefghij".repeat(bytes).slice(0, bytes - start.length - 4)}\r\n\r\n`);
}

test("collects a multi-chunk header when every chunk comes once, in order", async (t) => {
  const peer = await ChunkPeer.start(t, header(950));
  assert.equal(peer.chunks, 10);
  const { header: got, stats } = await receiveHeader(peer.ticket(), PATIENT);
  assert.deepEqual(got, peer.header);
  assert.equal(stats.chunksReceived, 10);
  assert.equal(stats.duplicates, 0);
  assert.equal(stats.rejected, 0);
  assert.equal(stats.silentRounds, 0);
  // The initial window (10 chunks, RFC 9002 §7.2) leaves at once, in requests of at most 4 chunks.
  assert.equal(stats.requestsSent, 3, "the initial window in three requests");
  assert.deepEqual(peer.asked(), [...Array(10).keys()]);
});

test("keeps at most windowChunks asked and missing: asks ahead one chunk per chunk received", async (t) => {
  const peer = await ChunkPeer.start(t, header(950));
  const { header: got } = await receiveHeader(peer.ticket(), { ...PATIENT, windowChunks: 3 });
  assert.deepEqual(got, peer.header);
  assert.deepEqual(peer.requests[0]!.indices, [0, 1, 2]);
  assert.deepEqual(peer.asked(), [...Array(10).keys()], "each chunk asked for once");
  assert.ok(peer.requests.every((r) => r.indices.length <= 3));
});

test("a one-chunk header, and an empty one, are one request each", async (t) => {
  for (const bytes of [Buffer.from("HTTP/1.1 204 No Content\r\n\r\n"), Buffer.alloc(0)]) {
    const peer = await ChunkPeer.start(t, bytes);
    const { header: got, stats } = await receiveHeader(peer.ticket(), PATIENT);
    assert.deepEqual(got, bytes);
    assert.equal(stats.chunksReceived, 1);
  }
});

test("reassembles whatever the order of arrival and however many duplicates", async (t) => {
  const peer = await ChunkPeer.start(t, header(1250));
  const n = peer.chunks;
  await fc.assert(
    fc.asyncProperty(
      fc.shuffledSubarray([...Array(n).keys()], { minLength: n, maxLength: n }),
      fc.array(fc.nat(n - 1), { maxLength: 2 * n }),
      async (order, duplicates) => {
        // All at once in answer to this run's first request, the duplicates first.
        const sequence = [...duplicates, ...order];
        // A previous run's late requests may still come in: this run's first request is the first
        // from a port not seen before.
        const oldPorts = new Set(peer.requests.map((r) => r.from.port));
        let first = -1;
        peer.answer = (_, nth) => {
          if (first >= 0 || oldPorts.has(peer.requests[nth]!.from.port)) return [];
          first = nth;
          return sequence.map((i) => peer.chunk(i));
        };
        const { header: got, stats } = await receiveHeader(peer.ticket(), PATIENT);
        assert.deepEqual(got, peer.header);
        assert.equal(stats.chunksReceived, n);
        // Loopback keeps the order: the repeats that arrive before the header is whole are counted.
        const seen = new Set<number>();
        let repeats = 0;
        for (const i of sequence) {
          if (seen.size === n) break;
          if (seen.has(i)) repeats++;
          seen.add(i);
        }
        assert.equal(stats.duplicates, repeats, "every duplicate counted and dropped");
        const asked = peer.requests.slice(first).flatMap((r) => r.indices);
        assert.equal(new Set(asked).size, asked.length, "nothing asked again");
      },
    ),
    { seed: 20260517, numRuns: 25, includeErrorInReport: true },
  );
});

test("a corrupt chunk (bad CRC) is rejected, and asked for again after a silence", async (t) => {
  const peer = await ChunkPeer.start(t, header(450));
  peer.answer = (indices, nth) => indices.map((i) => (nth === 0 && i === 2 ? peer.corrupt(i) : peer.chunk(i)));
  const { header: got, stats } = await receiveHeader(peer.ticket(), QUICK);
  assert.deepEqual(got, peer.header);
  assert.ok(stats.rejected >= 1, `rejected ${stats.rejected}`);
  // One silence at least: on a loaded machine the re-request's answer may come after a second
  // timer has fired (timers run before I/O in an event-loop turn), so a second round may count.
  assert.ok(stats.silentRounds >= 1, `silentRounds ${stats.silentRounds}`);
  assert.deepEqual(peer.requests.at(-1)!.indices, [2], "only the corrupt chunk is asked again");
});

test("chunks of another ticket (token, count or total differ) are rejected, never stored", async (t) => {
  const peer = await ChunkPeer.start(t, header(450));
  const foreign = (i: number): Buffer[] => {
    const right = peer.chunk(i);
    const wrongToken = peer.chunk(i, randomBytes(16));
    const payload = Buffer.alloc(PAYLOAD_BYTES, 0x58);
    const wrongCount = encodeChunk({
      token: peer.token,
      index: i,
      count: peer.chunks + 1,
      total: 999,
      offset: 0,
      payload,
    });
    const wrongTotal = encodeChunk({
      token: peer.token,
      index: i,
      count: peer.chunks,
      total: 9999,
      offset: 0,
      payload,
    });
    const notAChunk = Buffer.from("not a datagram at all");
    // The impostors come first: a receiver that stored one would hold the wrong bytes.
    return [wrongToken, wrongCount, wrongTotal, notAChunk, right];
  };
  peer.answer = (indices) => indices.flatMap(foreign);
  const { header: got, stats } = await receiveHeader(peer.ticket(), PATIENT);
  assert.deepEqual(got, peer.header);
  assert.equal(stats.rejected, 4 * peer.chunks);
  assert.equal(stats.chunksReceived, peer.chunks);
});

test("a missing chunk is asked for again after a silence, alone, in one request sent once", async (t) => {
  const peer = await ChunkPeer.start(t, header(950));
  // The initial window goes in three requests (0-3, 4-7, 8-9): 3 and 7 are lost from them.
  peer.answer = (indices, nth) => indices.filter((i) => nth > 2 || (i !== 3 && i !== 7)).map((i) => peer.chunk(i));
  const { header: got, stats } = await receiveHeader(peer.ticket(), QUICK);
  assert.deepEqual(got, peer.header);
  // A gap (later requests answered, RFC 9002 §6.1), a probe or a silence: either way only the
  // missing chunks are asked for again (was: also a second copy of the re-request, at once).
  const again = peer.requests.slice(3).map((r) => r.indices);
  assert.deepEqual([...new Set(again.flat())].sort(), [3, 7], "the re-requests name only the missing chunks");
  assert.equal(stats.requestsSent, peer.requests.length);
});

test("the wait before asking again doubles on each silent round, within maxChunkTimeoutMs", async (t) => {
  const peer = await ChunkPeer.start(t, header(250));
  // Silent to the first request and to two re-requests (each sent once), then it answers. The
  // one-chunk probes sent while the peer is silent are not answered and not timed.
  const whole = (indices: number[]) => indices.length === peer.chunks;
  let rounds = 0;
  peer.answer = (indices) => (whole(indices) && ++rounds > 3 ? indices.map((i) => peer.chunk(i)) : []);
  // Attempts to spare: the peer answers the fourth whole request, and on a loaded machine a round
  // may pass before a queued answer is read; only the first three waits are checked.
  const { header: got, stats } = await receiveHeader(peer.ticket(), { ...SILENT, maxDeliveryAttempts: 10 });
  assert.deepEqual(got, peer.header);
  // The receiver's own timer values, not wall-clock stamps taken in this (maybe loaded) process:
  // waits of 20, 40, 80 (capped) ms. On a loaded machine a timer may fire before an answer that is
  // already queued is read (timers run before I/O in an event-loop turn), so one more round may
  // be counted, at the cap.
  assert.ok(stats.silentRounds >= 3, `silentRounds ${stats.silentRounds}`);
  assert.deepEqual(stats.silentRoundWaitsMs.slice(0, 3), [20, 40, 80]);
});

test("a header whose SHA-256 differs from the ticket's is refused with DELIVERY_FAILED", async (t) => {
  const peer = await ChunkPeer.start(t, header(450));
  const wrong = createHash("sha256").update("something else").digest();
  await assert.rejects(receiveHeader(peer.ticket({ sha256: wrong }), PATIENT), {
    name: "HeadwireError",
    code: "DELIVERY_FAILED",
    message: /SHA-256/,
  });
});

test("a peer that never answers: DELIVERY_FAILED after maxDeliveryAttempts silent rounds", async (t) => {
  const peer = await ChunkPeer.start(t, header(450));
  peer.answer = () => [];
  await assert.rejects(receiveHeader(peer.ticket(), { ...SILENT, maxDeliveryAttempts: 3 }), {
    name: "HeadwireError",
    code: "DELIVERY_FAILED",
    message: /^0 of 5 chunks arrived after 3 attempts$/,
  });
  assert.ok(peer.requests.length >= 1);
});

test("a peer that stops half-way: the error says how many chunks came", async (t) => {
  const peer = await ChunkPeer.start(t, header(450));
  peer.answer = (indices, nth) => (nth === 0 ? indices.slice(0, 2).map((i) => peer.chunk(i)) : []);
  await assert.rejects(receiveHeader(peer.ticket(), { ...QUICK, maxDeliveryAttempts: 2 }), {
    code: "DELIVERY_FAILED",
    message: /^2 of 5 chunks arrived after 2 attempts$/,
  });
});

test("the ticket's ttl bounds the asking: DELIVERY_FAILED once it has passed", async (t) => {
  const peer = await ChunkPeer.start(t, header(450));
  peer.answer = () => [];
  await assert.rejects(receiveHeader(peer.ticket({ ttlMs: 30 }), { ...PATIENT, maxDeliveryAttempts: 100 }), {
    code: "DELIVERY_FAILED",
    message: /before the ticket expired \(30 ms\)/,
  });
});

/** A UDP socket on loopback: `address` 127.0.0.1 unless given, port ephemeral unless given. */
async function loopbackSocket(t: Hooks, address = "127.0.0.1", port = 0): Promise<Socket> {
  const socket = createSocket("udp4");
  socket.bind(port, address);
  await once(socket, "listening");
  t.after(() => socket.close());
  return socket;
}

// Chunks count only from the address and port the REQUESTs went to (was: any source, on the token
// and CRC alone). A third party that learnt the token cannot feed the receiver.
test("chunks from another source port are ignored and counted; the peer's own are then used", async (t) => {
  const peer = await ChunkPeer.start(t, header(450));
  const elsewhere = await loopbackSocket(t);
  assert.notEqual(elsewhere.address().port, peer.socket.address().port);
  // The initial window goes in two requests (chunks 0-3, 4): both are answered from elsewhere.
  peer.answer = (indices, nth) => {
    if (nth > 1) return indices.map((i) => peer.chunk(i));
    const { address, port } = peer.requests[0]!.from;
    for (const i of indices) elsewhere.send(peer.chunk(i), port, address);
    return [];
  };
  const { header: got, stats } = await receiveHeader(peer.ticket(), QUICK);
  assert.deepEqual(got, peer.header);
  assert.equal(stats.foreign, peer.chunks, "every chunk from the other port was counted");
  assert.equal(stats.chunksReceived, peer.chunks);
  assert.equal(stats.rejected, 0);
  assert.ok(peer.requests.length >= 2, "the chunks from the other port were not enough");
});

test("chunks from another address, even from the same port, are ignored", async (t) => {
  const peer = await ChunkPeer.start(t, header(450));
  let impostor: Socket;
  try {
    impostor = await loopbackSocket(t, "127.0.0.2", peer.socket.address().port);
  } catch {
    return t.skip("cannot bind 127.0.0.2");
  }
  // The initial window goes in two requests (chunks 0-3, 4): both are answered from elsewhere.
  peer.answer = (indices, nth) => {
    if (nth > 1) return indices.map((i) => peer.chunk(i));
    const { address, port } = peer.requests[0]!.from;
    for (const i of indices) impostor.send(peer.chunk(i), port, address);
    return [];
  };
  const { header: got, stats } = await receiveHeader(peer.ticket(), QUICK);
  assert.deepEqual(got, peer.header);
  assert.equal(stats.foreign, peer.chunks);
  assert.ok(peer.requests.length >= 2);
});

test("a server that drips one chunk every 0.5 s is given up on at maxTicketTtlMs, ttl or not", async (t) => {
  for (const ttlMs of [undefined, 600_000]) {
    const peer = await ChunkPeer.start(t, header(4000));
    assert.equal(peer.chunks, 40);
    let next = 0;
    const drip = setInterval(() => {
      const from = peer.requests[0]?.from;
      if (from && next < peer.chunks) peer.socket.send(peer.chunk(next++), from.port, from.address);
    }, 500);
    t.after(() => clearInterval(drip));
    peer.answer = () => [];
    const started = performance.now();
    await assert.rejects(receiveHeader(peer.ticket({ ttlMs }), { ...PATIENT, maxTicketTtlMs: 1500 }), {
      code: "DELIVERY_FAILED",
      message: /^\d+ of 40 chunks arrived in 1500 ms, the longest this client waits for a ticket \(maxTicketTtlMs\)$/,
    });
    clearInterval(drip);
    const took = performance.now() - started;
    assert.ok(took >= 1400 && took < 10_000, `gave up after ${Math.round(took)} ms`);
    assert.ok(next < peer.chunks, "it ended before the drip did");
  }
});

test("a prebound socket of the wrong family is closed and a fresh one used", async (t) => {
  const peer = await ChunkPeer.start(t, header(250));
  const udp6 = createSocket("udp6");
  udp6.bind(0, "::1");
  try {
    await once(udp6, "listening");
  } catch {
    return t.skip("no IPv6 loopback");
  }
  const closed = once(udp6, "close");
  const { header: got } = await receiveHeader(peer.ticket(), PATIENT, undefined, Promise.resolve(udp6));
  assert.deepEqual(got, peer.header);
  await closed;
  assert.equal(peer.requests[0]!.from.family, "IPv4");
});

// Issue 12: a path that blocks UDP ends early in UDP_SILENT (was: silent rounds until the ticket
// expired, then DELIVERY_FAILED with no word about UDP).
test("not one datagram back within silentAfterMs: UDP_SILENT, well before the rounds run out", async (t) => {
  const peer = await ChunkPeer.start(t, header(450));
  peer.answer = () => [];
  const started = performance.now();
  await assert.rejects(
    receiveHeader(peer.ticket(), { ...PATIENT, maxDeliveryAttempts: 1000, silentAfterMs: 300 }),
    (error: HeadwireError) => {
      assert.equal(error.code, "UDP_SILENT");
      assert.match(error.message, /not one datagram came back from 127\.0\.0\.1 port \d+ in 300 ms/);
      assert.match(error.message, /UDP to that address seems blocked/);
      return true;
    },
  );
  assert.ok(performance.now() - started < 5000);
  assert.ok(peer.requests.length >= 2, "it probed while waiting");
});

test("anything back from the server's port, even a corrupt datagram, rules out UDP_SILENT", async (t) => {
  const peer = await ChunkPeer.start(t, header(450));
  peer.answer = (indices) => indices.map((i) => peer.corrupt(i));
  await assert.rejects(receiveHeader(peer.ticket(), { ...QUICK, maxDeliveryAttempts: 3, silentAfterMs: 200 }), {
    code: "DELIVERY_FAILED",
  });
});

test("chunks answered only on their third request still arrive, and no request goes out twice at once", async (t) => {
  // Chunks 2 and 3 are answered only on their third request (was: each re-request sent twice at
  // once, REASK_COPIES).
  const peer = await ChunkPeer.start(t, header(450));
  const asks = new Map<number, number>();
  peer.answer = (indices) =>
    indices.flatMap((i) => {
      const n = (asks.get(i) ?? 0) + 1;
      asks.set(i, n);
      return i >= 2 && n < 3 ? [] : [peer.chunk(i)];
    });
  const { header: got } = await receiveHeader(peer.ticket(), { ...QUICK, maxDeliveryAttempts: 10 });
  assert.deepEqual(got, peer.header);
  const keys = peer.requests.map((r) => r.indices.join(","));
  const stamps = peer.requests.map((r) => r.at);
  for (let i = 1; i < keys.length; i++) {
    if (keys[i] === keys[i - 1]) assert.ok(stamps[i]! - stamps[i - 1]! >= 5, `request ${i} repeated at once`);
  }
});

test("the client's socket gets a receive buffer for a full window (CLIENT_RECEIVE_BUFFER_BYTES, within rmem_max)", async (t) => {
  const plain = createSocket("udp4");
  plain.bind(0, "127.0.0.1");
  await once(plain, "listening");
  t.after(() => plain.close());
  const sized = await bindFreshPort("udp4");
  t.after(() => sized.close());
  assert.ok(
    sized.getRecvBufferSize() > plain.getRecvBufferSize(),
    `${sized.getRecvBufferSize()} vs ${plain.getRecvBufferSize()}`,
  );
  assert.ok(CLIENT_RECEIVE_BUFFER_BYTES >= 64 * 2304);
  // A smaller one on request (test/e2e/buffer-loss-credit.test.ts makes the kernel drop chunks so).
  const tiny = await bindFreshPort("udp4", 8192);
  t.after(() => tiny.close());
  assert.ok(tiny.getRecvBufferSize() < sized.getRecvBufferSize(), `${tiny.getRecvBufferSize()}`);
});
