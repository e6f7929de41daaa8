import { test } from "node:test";
import assert from "node:assert/strict";
import { createSocket, type RemoteInfo, type Socket } from "node:dgram";
import { performance } from "node:perf_hooks";
import { LossyRelay, mulberry32, type LossyRelayOptions, type RelayStats } from "../../src/relay/lossy-relay.js";

const HOST = "127.0.0.1";
const WAIT_MS = 5_000;

/** A UDP socket on loopback that records what it receives and lets a test await a count. */
class Endpoint {
  readonly received: { data: Buffer; from: RemoteInfo; at: number }[] = [];
  private waiters: { count: number; resolve: () => void }[] = [];

  private constructor(readonly socket: Socket) {
    socket.on("message", (data, from) => {
      this.received.push({ data, from, at: performance.now() });
      this.waiters = this.waiters.filter((w) => (this.received.length >= w.count ? (w.resolve(), false) : true));
    });
  }

  static async open(options: { echo?: boolean } = {}): Promise<Endpoint> {
    const socket = createSocket("udp4");
    await new Promise<void>((resolve) => socket.bind(0, HOST, resolve));
    const endpoint = new Endpoint(socket);
    if (options.echo === true) socket.on("message", (data, from) => socket.send(data, from.port, from.address));
    return endpoint;
  }

  get port(): number {
    return this.socket.address().port;
  }

  get payloads(): string[] {
    return this.received.map((r) => r.data.toString("latin1"));
  }

  /** Resolves when `count` datagrams have arrived; fails the test after WAIT_MS. */
  receivedCount(count: number): Promise<void> {
    if (this.received.length >= count) return Promise.resolve();
    return new Promise<void>((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new Error(`expected ${count} datagrams, got ${this.received.length}`)),
        WAIT_MS,
      );
      this.waiters.push({
        count,
        resolve: () => {
          clearTimeout(timer);
          resolve();
        },
      });
    });
  }

  async send(relay: LossyRelay, payloads: string[]): Promise<void> {
    for (const payload of payloads) {
      await new Promise<void>((resolve, reject) =>
        this.socket.send(Buffer.from(payload, "latin1"), relay.address.port, relay.address.host, (error) =>
          error ? reject(error) : resolve(),
        ),
      );
    }
  }

  close(): Promise<void> {
    return new Promise((resolve) => this.socket.close(() => resolve()));
  }
}

function numbered(count: number, prefix = "d"): string[] {
  return Array.from({ length: count }, (_, i) => `${prefix}${String(i).padStart(4, "0")}`);
}

/** True when every datagram the relay took in, in both directions, has been dropped or sent. */
function settled(sent: number) {
  return (s: RelayStats): boolean =>
    s.toTarget.received === sent &&
    s.toTarget.forwarded === s.toTarget.received - s.toTarget.dropped + s.toTarget.duplicated &&
    s.toClient.received === s.toTarget.forwarded &&
    s.toClient.forwarded === s.toClient.received - s.toClient.dropped + s.toClient.duplicated;
}

async function withRelay<T>(
  options: Omit<LossyRelayOptions, "target" | "seed"> & { seed?: number },
  body: (relay: LossyRelay, echo: Endpoint) => Promise<T>,
): Promise<T> {
  const echo = await Endpoint.open({ echo: true });
  const relay = await LossyRelay.start({ seed: 1, ...options, target: { host: HOST, port: echo.port } });
  try {
    return await body(relay, echo);
  } finally {
    await relay.close();
    await echo.close();
  }
}

test("with no faults every datagram goes through, both ways, from the relay's own IP", async () => {
  await withRelay({}, async (relay, echo) => {
    assert.equal(relay.address.host, HOST);
    assert.notEqual(relay.address.port, 0);
    const client = await Endpoint.open();
    try {
      const payloads = numbered(50);
      await client.send(relay, payloads);
      await client.receivedCount(50);
      assert.deepEqual(client.payloads, payloads);
      assert.deepEqual(echo.payloads, payloads);
      for (const { from } of echo.received) {
        assert.equal(from.address, HOST, "upstream sockets bind to the relay's IP");
        assert.notEqual(from.port, client.port, "the target sees the relay's upstream socket");
      }
      for (const { from } of client.received) assert.equal(from.port, relay.address.port);
      const clean = {
        received: 50,
        forwarded: 50,
        dropped: 0,
        duplicated: 0,
        reordered: 0,
        corrupted: 0,
        blocked: 0,
        queueDropped: 0,
        peakQueueBytes: 0,
      };
      assert.deepEqual(relay.stats, { toTarget: clean, toClient: clean });
    } finally {
      await client.close();
    }
  });
});

test("each client gets its own upstream mapping, and only its own replies", async () => {
  await withRelay({}, async (relay, echo) => {
    const a = await Endpoint.open();
    const b = await Endpoint.open();
    try {
      await a.send(relay, ["a1", "a2"]);
      await b.send(relay, ["b1"]);
      await a.send(relay, ["a3"]);
      await Promise.all([a.receivedCount(3), b.receivedCount(1)]);
      assert.deepEqual(a.payloads, ["a1", "a2", "a3"]);
      assert.deepEqual(b.payloads, ["b1"]);
      assert.equal(relay.clientCount, 2);
      const sourcePorts = new Set(echo.received.map((r) => r.from.port));
      assert.equal(sourcePorts.size, 2);
    } finally {
      await a.close();
      await b.close();
    }
  });
});

test("loss = 1 drops everything", async () => {
  await withRelay({ loss: 1 }, async (relay, echo) => {
    const client = await Endpoint.open();
    try {
      await client.send(relay, numbered(20));
      await relay.waitForStats((s) => s.toTarget.dropped === 20, WAIT_MS);
      assert.equal(relay.stats.toTarget.forwarded, 0);
      assert.equal(echo.received.length, 0);
    } finally {
      await client.close();
    }
  });
});

interface RunRecord {
  stats: RelayStats;
  atTarget: string[];
  atClient: string[];
}

/** Sends the same traffic through a faulty relay and records what happened. */
async function faultyRun(seed: number): Promise<RunRecord> {
  const sent = numbered(200);
  return withRelay({ seed, loss: 0.3, duplicate: 0.2, corrupt: 0.2 }, async (relay, echo) => {
    const client = await Endpoint.open();
    try {
      await client.send(relay, sent);
      await relay.waitForStats(settled(sent.length), WAIT_MS);
      await client.receivedCount(relay.stats.toClient.forwarded);
      return { stats: relay.stats, atTarget: echo.payloads, atClient: client.payloads };
    } finally {
      await client.close();
    }
  });
}

test("the same seed and the same traffic give the same faults", async () => {
  const first = await faultyRun(7);
  const second = await faultyRun(7);
  assert.deepEqual(second, first);
  for (const direction of ["toTarget", "toClient"] as const) {
    const s = first.stats[direction];
    assert.ok(s.dropped > 0 && s.duplicated > 0 && s.corrupted > 0, JSON.stringify(s));
  }
  const other = await faultyRun(8);
  assert.notDeepEqual(other.stats, first.stats, "another seed, other faults");
});

test("corrupt = 1 flips exactly one bit of every datagram", async () => {
  await withRelay({ corrupt: 1, seed: 3 }, async (relay, echo) => {
    const client = await Endpoint.open();
    try {
      const sent = numbered(30);
      await client.send(relay, sent);
      await echo.receivedCount(30);
      echo.received.forEach(({ data }, i) => assert.equal(bitDistance(data, Buffer.from(sent[i]!, "latin1")), 1));
      await client.receivedCount(30);
      // Flipped again on the way back: zero or two bits away from what was sent.
      client.received.forEach(({ data }, i) =>
        assert.ok([0, 2].includes(bitDistance(data, Buffer.from(sent[i]!, "latin1")))),
      );
      assert.equal(relay.stats.toTarget.corrupted, 30);
    } finally {
      await client.close();
    }
  });
});

test("duplicate = 1 sends every datagram twice", async () => {
  await withRelay({ duplicate: 1 }, async (relay, echo) => {
    const client = await Endpoint.open();
    try {
      await client.send(relay, ["x", "y"]);
      await echo.receivedCount(4);
      assert.deepEqual(echo.payloads, ["x", "x", "y", "y"]);
      await client.receivedCount(8);
      assert.deepEqual(client.payloads, ["x", "x", "x", "x", "y", "y", "y", "y"]);
      assert.equal(relay.stats.toTarget.duplicated, 2);
      assert.equal(relay.stats.toClient.duplicated, 4);
    } finally {
      await client.close();
    }
  });
});

test("reorder = 1 swaps each datagram with its successor", async () => {
  await withRelay({ reorder: 1, reorderHoldMs: 2_000 }, async (relay, echo) => {
    const client = await Endpoint.open();
    try {
      await client.send(relay, ["1", "2", "3", "4"]);
      await echo.receivedCount(4);
      assert.deepEqual(echo.payloads, ["2", "1", "4", "3"]);
      // Swapped again on the way back.
      await client.receivedCount(4);
      assert.deepEqual(client.payloads, ["1", "2", "3", "4"]);
      assert.equal(relay.stats.toTarget.reordered, 2);
    } finally {
      await client.close();
    }
  });
});

test("a held-back datagram with no successor is sent after reorderHoldMs", async () => {
  await withRelay({ reorder: 1, reorderHoldMs: 10 }, async (relay, echo) => {
    const client = await Endpoint.open();
    try {
      await client.send(relay, ["only"]);
      await client.receivedCount(1);
      assert.deepEqual(echo.payloads, ["only"]);
      assert.deepEqual(client.payloads, ["only"]);
    } finally {
      await client.close();
    }
  });
});

test("delays hold datagrams back but deliver them all", async () => {
  await withRelay({ delayMs: { min: 1, max: 15 }, seed: 11 }, async (relay, echo) => {
    const client = await Endpoint.open();
    try {
      const sent = numbered(40);
      await client.send(relay, sent);
      await client.receivedCount(40);
      assert.deepEqual([...client.payloads].sort(), sent);
      assert.deepEqual([...echo.payloads].sort(), sent);
    } finally {
      await client.close();
    }
  });
});

test("a fixed one-way delay per direction holds every datagram that long, in order", async () => {
  await withRelay({ toTarget: { delayMs: 120 }, toClient: { delayMs: 200 } }, async (relay, echo) => {
    const client = await Endpoint.open();
    try {
      const sent = numbered(30);
      const start = performance.now();
      await client.send(relay, sent);
      await client.receivedCount(30);
      assert.deepEqual(echo.payloads, sent, "a fixed delay does not reorder");
      assert.deepEqual(client.payloads, sent);
      // Lower bounds only: a loaded machine makes datagrams later, never earlier.
      const firstAtTarget = echo.received[0]!.at - start;
      const firstBack = client.received[0]!.at - start;
      assert.ok(firstAtTarget >= 119, `to the target after ${firstAtTarget} ms`);
      assert.ok(firstBack >= 319, `back after ${firstBack} ms`);
    } finally {
      await client.close();
    }
  });
});

test("jitter spreads datagrams over delay..delay+jitter and reorders them", async () => {
  await withRelay({ toTarget: { delayMs: 20, jitterMs: 40 }, seed: 4 }, async (relay, echo) => {
    const client = await Endpoint.open();
    try {
      const sent = numbered(100);
      const start = performance.now();
      await client.send(relay, sent);
      await client.receivedCount(100);
      assert.deepEqual([...echo.payloads].sort(), sent);
      assert.notDeepEqual(echo.payloads, sent, "jitter reorders");
      assert.ok(echo.received[0]!.at - start >= 19);
      assert.equal(relay.stats.toClient.forwarded, 100);
    } finally {
      await client.close();
    }
  });
});

test("a bandwidth limit spaces datagrams at the rate, in order, with nothing dropped when the queue holds them", async () => {
  const count = 10;
  const size = 1000;
  const bytesPerSecond = 20_000; // 50 ms a datagram: 500 ms for all
  await withRelay({ toTarget: { bytesPerSecond, queueBytes: count * size } }, async (relay, echo) => {
    const client = await Endpoint.open();
    try {
      const sent = numbered(count).map((name) => name.padEnd(size, "."));
      const start = performance.now();
      await client.send(relay, sent);
      await echo.receivedCount(count);
      assert.deepEqual(echo.payloads, sent, "a bottleneck is a FIFO");
      const { toTarget } = relay.stats;
      assert.equal(toTarget.queueDropped, 0);
      assert.equal(toTarget.forwarded, count);
      assert.ok(toTarget.peakQueueBytes > size, `the burst queued: ${toTarget.peakQueueBytes}`);
      // The last datagram leaves no earlier than N·S/R after the first was sent.
      const ideal = (count * size * 1000) / bytesPerSecond;
      const last = echo.received[count - 1]!.at - start;
      assert.ok(last >= ideal - 2, `all ${count} arrived in ${last} ms, under ${ideal} ms`);
    } finally {
      await client.close();
    }
  });
});

test("a full bottleneck queue drops what does not fit (tail drop), and counts it", async () => {
  // 100 B/s: one 100-byte datagram takes a second, so the queue cannot drain during the burst.
  await withRelay({ toTarget: { bytesPerSecond: 100, queueBytes: 300 } }, async (relay, echo) => {
    const client = await Endpoint.open();
    try {
      const sent = numbered(10).map((name) => name.padEnd(100, "."));
      await client.send(relay, sent);
      await relay.waitForStats((s) => s.toTarget.queueDropped === 7, WAIT_MS);
      assert.equal(relay.stats.toTarget.peakQueueBytes, 300);
      await echo.receivedCount(1);
      assert.equal(echo.payloads[0], sent[0], "the queue's head goes first");
      assert.equal(relay.stats.toTarget.dropped, 0, "loss is counted apart");
    } finally {
      await client.close();
    }
  });
});

test("block drops everything both ways, counted, until unblocked", async () => {
  await withRelay({ block: true }, async (relay, echo) => {
    const client = await Endpoint.open();
    try {
      await client.send(relay, numbered(20));
      await relay.waitForStats((s) => s.toTarget.blocked === 20, WAIT_MS);
      assert.equal(relay.stats.toTarget.forwarded, 0);
      assert.equal(relay.stats.toTarget.dropped, 0);
      assert.equal(echo.received.length, 0);
      relay.setBlocked(false);
      await client.send(relay, ["through"]);
      await client.receivedCount(1);
      assert.deepEqual(client.payloads, ["through"]);
    } finally {
      await client.close();
    }
  });
});

test("a mapping whose client is silent for idleMappingMs is forgotten, its socket closed", async () => {
  await withRelay({ idleMappingMs: 100 }, async (relay, echo) => {
    const client = await Endpoint.open();
    try {
      await client.send(relay, ["before"]);
      await client.receivedCount(1);
      const firstPort = echo.received[0]!.from.port;
      await relay.waitForStats(() => relay.expiredMappings === 1, WAIT_MS);
      assert.equal(relay.clientCount, 0);
      // The upstream port is free again: the socket is closed.
      const probe = createSocket("udp4");
      await new Promise<void>((resolve, reject) => {
        probe.once("error", reject);
        probe.bind(firstPort, HOST, resolve);
      });
      await new Promise<void>((resolve) => probe.close(() => resolve()));
      // The next datagram opens a new mapping, from another port, and still finds its way back.
      await client.send(relay, ["after"]);
      await client.receivedCount(2);
      assert.deepEqual(client.payloads, ["before", "after"]);
      assert.equal(relay.clientCount, 1);
    } finally {
      await client.close();
    }
  });
});

test("close() closes every socket the relay opened and drops what it still holds", async () => {
  const echo = await Endpoint.open({ echo: true });
  const client = await Endpoint.open();
  try {
    const relay = await LossyRelay.start({
      seed: 5,
      reorder: 1,
      reorderHoldMs: 60_000,
      target: { host: HOST, port: echo.port },
    });
    await client.send(relay, ["a", "b", "held"]);
    await relay.waitForStats((s) => s.toTarget.reordered === 2, WAIT_MS);
    await echo.receivedCount(2);
    const upstreamPort = echo.received[0]!.from.port;
    await relay.close();
    await relay.close(); // a second close is harmless
    assert.equal(relay.stats.toTarget.forwarded, 2, "the held datagram is dropped");
    // Both ports are free again, so both sockets are closed (dgram does not reuse addresses).
    for (const port of [relay.address.port, upstreamPort]) {
      const probe = createSocket("udp4");
      await new Promise<void>((resolve, reject) => {
        probe.once("error", reject);
        probe.bind(port, HOST, resolve);
      });
      await new Promise<void>((resolve) => probe.close(() => resolve()));
    }
  } finally {
    await client.close();
    await echo.close();
  }
});

test("waitForStats rejects when the state is not reached in time", async () => {
  await withRelay({}, async (relay) => {
    await assert.rejects(
      relay.waitForStats((s) => s.toTarget.received > 0, 20),
      /did not reach/,
    );
  });
});

test("options are checked at start, with precise messages", async () => {
  const target = { host: HOST, port: 9 };
  await assert.rejects(LossyRelay.start({ target, seed: 1, loss: 1.5 }), /options\.loss must be a probability/);
  await assert.rejects(LossyRelay.start({ target, seed: 1, corrupt: Number.NaN }), /options\.corrupt/);
  await assert.rejects(LossyRelay.start({ target, seed: 0.5 }), /options\.seed must be an integer/);
  await assert.rejects(LossyRelay.start({ target: { host: "localhost", port: 9 }, seed: 1 }), /target\.host/);
  await assert.rejects(LossyRelay.start({ target: { host: HOST, port: 0 }, seed: 1 }), /target\.port/);
  await assert.rejects(LossyRelay.start({ target, seed: 1, delayMs: { min: 5, max: 1 } }), /options\.delayMs/);
  await assert.rejects(LossyRelay.start({ target, seed: 1, host: "nowhere" }), /options\.host/);
  await assert.rejects(
    LossyRelay.start({ target, seed: 1, toClient: { jitterMs: -1 } }),
    /options\.toClient\.jitterMs must be an integer/,
  );
  await assert.rejects(
    LossyRelay.start({ target, seed: 1, toTarget: { bytesPerSecond: 1.5 } }),
    /options\.toTarget\.bytesPerSecond/,
  );
  await assert.rejects(LossyRelay.start({ target, seed: 1, toTarget: { queueBytes: 0 } }), /queueBytes/);
  await assert.rejects(LossyRelay.start({ target, seed: 1, idleMappingMs: -5 }), /options\.idleMappingMs/);
});

test("mulberry32 is deterministic and stays in [0, 1)", () => {
  const a = mulberry32(42);
  const b = mulberry32(42);
  const c = mulberry32(43);
  const fromA = Array.from({ length: 1000 }, a);
  assert.deepEqual(Array.from({ length: 1000 }, b), fromA);
  assert.notDeepEqual(Array.from({ length: 1000 }, c), fromA);
  assert.ok(fromA.every((x) => x >= 0 && x < 1));
  const mean = fromA.reduce((sum, x) => sum + x, 0) / fromA.length;
  assert.ok(Math.abs(mean - 0.5) < 0.05, `mean ${mean}`);
});

function bitDistance(a: Buffer, b: Buffer): number {
  assert.equal(a.length, b.length);
  let bits = 0;
  for (let i = 0; i < a.length; i++) {
    let x = a[i]! ^ b[i]!;
    for (; x !== 0; x &= x - 1) bits++;
  }
  return bits;
}
