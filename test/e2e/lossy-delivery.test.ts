import assert from "node:assert/strict";
import { readdir, readFile } from "node:fs/promises";
import { join } from "node:path";
import { test } from "node:test";
import { HeadwireClient } from "../../src/client/headwire-client.js";
import { CraftedOrigin } from "../../src/demo/crafted-origin.js";
import { LossyRelay, type LossyRelayOptions } from "../../src/relay/lossy-relay.js";
import { chunkCount, chunkPayloadBytes, deliveryBudgetBytes } from "../../src/protocol/datagram.js";
import { startServer, tempDir } from "../helpers.js";

/** Set HEADWIRE_RELAY_SEED to replay a failing run with the same faults. */
const SEED = Number(process.env.HEADWIRE_RELAY_SEED ?? 20261125);

const HOSTILE_NETWORK: Omit<LossyRelayOptions, "target" | "seed"> = {
  loss: 0.3,
  duplicate: 0.1,
  reorder: 0.1,
  corrupt: 0.05,
  delayMs: { min: 0, max: 3 },
};

/** A header of about `bytes` bytes, distinct per `tag`. */
function bigHeader(tag: string, bytes: number): string {
  const lines = [`HTTP/1.1 200 OK\r\nX-Tag: ${tag}\r\nCache-Control: max-age=600\r\n`];
  let size = lines[0]!.length + 2;
  for (let i = 0; size < bytes; i++) {
    const line = `X-Filler-${i}: ${tag}-${"abcdefghijklmnopqrstuvwxyz0123456789".repeat(3)}\r\n`;
    lines.push(line);
    size += line.length;
  }
  return `${lines.join("")}\r\n`;
}

async function lossySetup(t: Parameters<typeof tempDir>[0], routes: Record<string, string>, relay = HOSTILE_NETWORK) {
  const dir = await tempDir(t);
  const origin = await CraftedOrigin.start(
    Object.fromEntries(Object.entries(routes).map(([p, h]) => [p, { header: h }])),
  );
  t.after(() => origin.close());
  const server = await startServer(dir, { maxHeaderBytes: 256 * 1024 }, t);
  const lossy = await LossyRelay.start({ target: { host: "127.0.0.1", port: server.dataPort }, seed: SEED, ...relay });
  t.after(() => lossy.close());
  return { dir, origin, server, relay: lossy };
}

test(`under 30% loss with duplication, reordering and corruption every header arrives byte-exact (seed ${SEED})`, async (t) => {
  const routes: Record<string, string> = {};
  for (let i = 0; i < 20; i++) routes[`/h${i}`] = bigHeader(`h${i}`, 200 + i * 2500);
  const { dir, origin, server, relay } = await lossySetup(t, routes);
  const client = await HeadwireClient.connect(
    { serverPort: server.controlPort, outDir: dir },
    undefined,
    relay.address,
  );
  for (const [path, header] of Object.entries(routes)) {
    const result = await client.query({ url: `127.0.0.1:${origin.port}${path}` });
    assert.equal(result.error, undefined, `${path}: ${JSON.stringify(result.error)}`);
    assert.equal((await readFile(result.file!)).toString("latin1"), header, `${path} byte-exact`);
  }
  await client.terminate();
  const stats = relay.stats;
  assert.ok(stats.toClient.dropped > 0 && stats.toTarget.dropped > 0, "the relay did drop datagrams both ways");
  assert.ok(stats.toClient.corrupted > 0 && stats.toClient.duplicated > 0 && stats.toClient.reordered > 0);
});

test(`a 200 KiB header crosses the lossy relay byte-exact, within its byte budget (seed ${SEED})`, async (t) => {
  const header = bigHeader("big", 200 * 1024);
  const { dir, origin, server, relay } = await lossySetup(t, { "/big": header });
  const client = await HeadwireClient.connect(
    { serverPort: server.controlPort, outDir: dir },
    undefined,
    relay.address,
  );
  const result = await client.query({ url: `127.0.0.1:${origin.port}/big` });
  assert.equal(result.error, undefined, JSON.stringify(result.error));
  assert.equal(result.bytes, Buffer.byteLength(header));
  assert.equal((await readFile(result.file!)).toString("latin1"), header);
  await client.terminate();
  const chunks = chunkCount(Buffer.byteLength(header), chunkPayloadBytes(server.config.maxDatagramBytes));
  const budget = deliveryBudgetBytes(Buffer.byteLength(header), chunks, server.config.retransmitBudget);
  assert.ok(server.stats().data!.bytesSent <= budget, `${server.stats().data!.bytesSent} bytes sent, budget ${budget}`);
});

test(`100 concurrent deliveries through the lossy relay, all byte-exact (seed ${SEED})`, async (t) => {
  const routes: Record<string, string> = {};
  for (let i = 0; i < 10; i++) routes[`/c${i}`] = bigHeader(`c${i}`, 1000 + i * 3000);
  const { dir, origin, server, relay } = await lossySetup(t, routes);
  const paths = Object.keys(routes);
  await Promise.all(
    Array.from({ length: 100 }, async (_, i) => {
      const outDir = join(dir, `client-${i}`);
      // 100 sessions opened at once on a server in this process: more than the default 3 s for a
      // greeting on a loaded machine is not what this test is about.
      const client = await HeadwireClient.connect(
        { serverPort: server.controlPort, outDir, greetingTimeoutMs: 30_000 },
        undefined,
        relay.address,
      );
      const path = paths[i % paths.length]!;
      const result = await client.query({ url: `127.0.0.1:${origin.port}${path}` });
      assert.equal(result.error, undefined, `client ${i}: ${JSON.stringify(result.error)}`);
      assert.equal((await readFile(result.file!)).toString("latin1"), routes[path]);
      await client.terminate();
    }),
  );
});

test("when delivery finally fails: a clear error, no file at all, and the session goes on", async (t) => {
  const routes = { "/lost": bigHeader("lost", 5000), "/fine": bigHeader("fine", 300) };
  const { dir, origin, server, relay } = await lossySetup(t, routes, { loss: 1 });
  const outDir = join(dir, "out");
  const client = await HeadwireClient.connect(
    { serverPort: server.controlPort, outDir, chunkTimeoutMs: 20, maxDeliveryAttempts: 3, delivery: "udp" },
    undefined,
    relay.address,
  );
  const lost = await client.query({ url: `127.0.0.1:${origin.port}/lost` });
  assert.equal(lost.error?.code, "DELIVERY_FAILED");
  assert.match(lost.error!.message, /0 of 5 chunks arrived after 3 attempts/);
  assert.equal(lost.file, undefined);
  assert.deepEqual(await readdir(outDir).catch(() => []), [], "no partial file");
  // The same session goes on: straight to the server this time, the query succeeds.
  const direct = await HeadwireClient.connect({ serverPort: server.controlPort, outDir });
  const retried = await direct.query({ url: `127.0.0.1:${origin.port}/lost` });
  assert.equal(retried.error, undefined);
  assert.equal(retried.cache, "HIT");
  await direct.terminate();
  const again = await client.query({ url: `127.0.0.1:${origin.port}/fine` });
  assert.equal(again.error?.code, "DELIVERY_FAILED", "the session itself is still usable");
  await client.terminate();
});

test("the client stops asking once the ticket's ttl has passed, and says so", async (t) => {
  const dir = await tempDir(t);
  const origin = await CraftedOrigin.start({ "/gone": { header: bigHeader("gone", 3000) } });
  t.after(() => origin.close());
  const server = await startServer(dir, { ticketTtlMs: 300 }, t);
  const blackHole = await LossyRelay.start({
    target: { host: "127.0.0.1", port: server.dataPort },
    seed: SEED,
    loss: 1,
  });
  t.after(() => blackHole.close());
  const client = await HeadwireClient.connect(
    { serverPort: server.controlPort, outDir: dir, maxDeliveryAttempts: 1000, delivery: "udp", deliveryRetries: 0 },
    undefined,
    blackHole.address,
  );
  const started = performance.now();
  const result = await client.query({ url: `127.0.0.1:${origin.port}/gone` });
  assert.equal(result.error?.code, "DELIVERY_FAILED");
  assert.match(result.error!.message, /before the ticket expired \(300 ms\)/);
  assert.ok(performance.now() - started < 5000, "it did not go on for 1000 attempts");
  await client.terminate();
});
