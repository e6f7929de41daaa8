/**
 * Delivery over emulated paths (issue 12): the time a cached header takes to arrive through a
 * relay that delays and drops datagrams, per path (one-way delay × loss, and one path through a
 * bandwidth bottleneck with a small queue, where the congestion window meets tail drops) and
 * size (1 to 226 chunks), against the ideal of one round trip plus, behind the bottleneck, one
 * delivery's bytes at its rate, and the UDP bytes the server sent per header byte delivered.
 * Server, relay and client run in this process: the path, not the CPU, is what is measured, and
 * everything stays on 127.0.0.1.
 */
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { HeadwireClient } from "../../src/client/headwire-client.js";
import { WITHOUT_ABUSE_LIMITS } from "../../src/config.js";
import { CraftedOrigin } from "../../src/demo/crafted-origin.js";
import { chunkCount, chunkPayloadBytes, fullDeliveryBytes } from "../../src/protocol/datagram.js";
import { LossyRelay } from "../../src/relay/lossy-relay.js";
import { HeadwireServer } from "../../src/server/headwire-server.js";
import { fixed, pathName } from "../format.js";
import type { BenchHarness } from "../harness.js";
import { log } from "../harness.js";
import type { PathRow } from "../results.js";

/**
 * One-way delays and loss rates: loopback, continental, intercontinental, satellite, lossy mobile;
 * and a slow access link (2 Mbit/s towards the client, 50 ms one way) whose 32 KiB queue holds
 * less than the window: one round trip's worth at that rate (25 KB) plus the queue is about 48
 * chunk datagrams, so a window growing to 64 meets tail drops, as on a real bottleneck.
 */
export const PATHS: ReadonlyArray<{ oneWayMs: number; loss: number; bytesPerSecond?: number; queueBytes?: number }> = [
  { oneWayMs: 0, loss: 0 },
  { oneWayMs: 50, loss: 0 },
  { oneWayMs: 150, loss: 0 },
  { oneWayMs: 300, loss: 0.3 },
  { oneWayMs: 500, loss: 0 },
  { oneWayMs: 50, loss: 0, bytesPerSecond: 250_000, queueBytes: 32 * 1024 },
];
/** Header sizes in chunks of 1160 payload bytes: one chunk to about maxHeaderBytes. */
export const SIZES_IN_CHUNKS = [1, 4, 52, 226] as const;
const MAX_HEADER_BYTES = 256 * 1024;
const SEED = 20261127;

/** A header of exactly `bytes` bytes. */
function headerOf(bytes: number, tag: string): string {
  const head = `HTTP/1.1 200 OK\r\nCache-Control: max-age=3600\r\nX-Tag: ${tag}\r\nX-Fill: `;
  return `${head}${"x".repeat(Math.max(0, bytes - head.length - 4))}\r\n\r\n`;
}

export async function runPaths(bench: BenchHarness): Promise<PathRow[]> {
  const samples = bench.options.quick ? 2 : 4;
  const payload = chunkPayloadBytes(1200);
  const routes: Record<string, { header: string }> = {};
  for (const chunks of SIZES_IN_CHUNKS) {
    const bytes = Math.min(MAX_HEADER_BYTES - 64, chunks * payload - 8);
    routes[`/c${chunks}`] = { header: headerOf(bytes, `c${chunks}`) };
  }
  const dir = await mkdtemp(join(tmpdir(), "headwire-bench-paths-"));
  const origin = await CraftedOrigin.start(routes);
  const server = await new HeadwireServer({
    host: "127.0.0.1",
    controlPort: 0,
    dataPort: 0,
    allowPrivate: true,
    cacheFile: join(dir, "cache.txt"),
    maxHeaderBytes: MAX_HEADER_BYTES,
    ...WITHOUT_ABUSE_LIMITS,
    adminHttp: "off",
    log: () => {},
  }).start();
  const rows: PathRow[] = [];
  try {
    // Warm the cache without the relay: what follows measures delivery alone.
    const warm = await HeadwireClient.connect({ serverPort: server.controlPort, outDir: dir });
    for (const path of Object.keys(routes)) await warm.query({ url: `127.0.0.1:${origin.port}${path}`, write: false });
    await warm.terminate();
    for (const path of PATHS) {
      const relay = await LossyRelay.start({
        target: { host: "127.0.0.1", port: server.dataPort },
        seed: SEED,
        loss: path.loss,
        ...(path.oneWayMs > 0 ? { delayMs: { min: path.oneWayMs, max: path.oneWayMs } } : {}),
        ...(path.bytesPerSecond
          ? { toClient: { delayMs: path.oneWayMs, bytesPerSecond: path.bytesPerSecond, queueBytes: path.queueBytes } }
          : {}),
      });
      try {
        // One size at a time, so the server's UDP byte count belongs to the size being measured.
        for (const chunks of SIZES_IN_CHUNKS) rows.push(await measure(chunks));
      } finally {
        await relay.close();
      }

      async function measure(chunks: number): Promise<PathRow> {
        const url = `127.0.0.1:${origin.port}/c${chunks}`;
        // delivery "udp": a failed UDP delivery must show as one here, not be saved by TCP.
        const client = await HeadwireClient.connect(
          { serverPort: server.controlPort, outDir: dir, delivery: "udp" },
          undefined,
          relay.address,
        );
        const ms: number[] = [];
        let failures = 0;
        let bytes = 0;
        const before = server.stats().data?.bytesSent ?? 0;
        try {
          for (let i = 0; i < samples; i++) {
            const result = await client.query({ url, write: false });
            if (result.error) failures++;
            else {
              ms.push(result.ms);
              bytes += result.bytes ?? 0;
            }
          }
        } finally {
          client.destroy();
        }
        const sent = (server.stats().data?.bytesSent ?? 0) - before;
        const sorted = [...ms].sort((a, b) => a - b);
        const median = sorted.length > 0 ? sorted[Math.floor((sorted.length - 1) / 2)]! : NaN;
        const headerBytes = routes[`/c${chunks}`]!.header.length;
        const count = chunkCount(headerBytes, payload);
        // Behind the bottleneck one delivery's datagrams must cross it at its rate: RTT + size / bandwidth.
        const serializationMs = path.bytesPerSecond
          ? (fullDeliveryBytes(headerBytes, count) * 1000) / path.bytesPerSecond
          : 0;
        const row: PathRow = {
          oneWayMs: path.oneWayMs,
          loss: path.loss,
          ...(path.bytesPerSecond ? { bytesPerSecond: path.bytesPerSecond } : {}),
          chunks: count,
          samples,
          failures,
          medianMs: median,
          idealMs: Math.round(2 * path.oneWayMs + serializationMs),
          bytesSentPerByte: bytes > 0 ? sent / bytes : NaN,
        };
        return row;
      }
      for (const row of rows.slice(-SIZES_IN_CHUNKS.length)) {
        log(
          `paths: ${pathName(row)}, ${row.chunks} chunks: median ${fixed(row.medianMs, 0)} ms ` +
            `(ideal ${row.idealMs}), ${row.failures}/${row.samples} failed`,
        );
      }
    }
  } finally {
    await server.stop().catch(() => {});
    await origin.close();
    await rm(dir, { recursive: true, force: true });
  }
  return rows;
}
