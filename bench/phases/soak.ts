/**
 * The soak: C=100 for minutes with a share of queries outside the hot set (cache churn), the
 * server sampled every few seconds; the trends say whether memory, loop delay or throughput drift.
 */
import { mkdirSync } from "node:fs";
import { fixed, thousands } from "../format.js";
import type { BenchHarness } from "../harness.js";
import { log } from "../harness.js";
import { warmCache } from "../line-client.js";
import type { RunResult } from "../load-generator.js";
import { memory } from "../process-stats.js";
import type { SoakResult, SoakSample } from "../results.js";
import { trend } from "../trend.js";

/** One reading of the server during the soak: its stats (reset at each reading) and RSS. */
interface ServerSample {
  atMs: number;
  rssKiB?: number;
  stats: Record<string, unknown>;
}

export async function runSoak(bench: BenchHarness): Promise<SoakResult> {
  const { soakSeconds, soakSampleSeconds, soakSessions, soakChurnRatio } = bench.options;
  const server = await bench.startServer("headwire");
  const controlPort = Number(server.ready.controlPort);
  await warmCache(controlPort, bench.hotUrls);
  bench.soakClientSamples.length = 0;
  const serverSamples: ServerSample[] = [];
  let started = 0;
  let sampler: NodeJS.Timeout | undefined;
  bench.windowMark = { pid: server.pid };
  if (bench.options.profile) {
    mkdirSync(bench.profileDir, { recursive: true });
    bench.windowMark.profile = { child: server, name: "soak.cpuprofile" };
  }
  const onStart = (message: Record<string, unknown>) => {
    if (message.event !== "window-start") return;
    started = Date.now();
    void server.request({ cmd: "stats", reset: true });
    sampler = setInterval(() => {
      const atMs = Date.now() - started;
      const rssKiB = memory(server.pid)?.rssKiB;
      server.request({ cmd: "stats", reset: true }, 10_000).then(
        (stats) => serverSamples.push({ atMs, ...(rssKiB !== undefined ? { rssKiB } : {}), stats }),
        () => {},
      );
    }, soakSampleSeconds * 1000);
  };
  bench.loadGenerator.process.on("message", onStart);
  let result: RunResult;
  try {
    result = await bench.generate(
      {
        controlPort,
        sessions: soakSessions,
        urls: bench.hotUrls,
        churnUrls: bench.churnUrls,
        churnRatio: soakChurnRatio,
        warmupMs: bench.options.soakWarmupSeconds * 1000,
        durationMs: soakSeconds * 1000,
        sampleEveryMs: soakSampleSeconds * 1000,
      },
      (bench.options.soakWarmupSeconds + soakSeconds) * 1000 + 120_000,
    );
  } finally {
    bench.loadGenerator.process.off("message", onStart);
    if (sampler) clearInterval(sampler);
  }
  await bench.windowMark.profiling;
  const final = await server.request({ cmd: "stats" });
  await bench.stopServer(server);
  const samples = soakSamples(serverSamples, bench.soakClientSamples);
  const series = (pick: (s: SoakSample) => number | undefined) =>
    samples.flatMap((s) => {
      const value = pick(s);
      return value === undefined || !Number.isFinite(value) ? [] : [{ atSeconds: s.atSeconds, value }];
    });
  const soak: SoakResult = {
    seconds: soakSeconds,
    sessions: soakSessions,
    churnRatio: soakChurnRatio,
    result,
    samples,
    rssTrend: trend(series((s) => s.rssKiB)),
    heapTrend: trend(series((s) => s.heapUsedBytes)),
    eventLoopDelayTrend: trend(series((s) => s.eventLoopDelayP99Ms)),
    throughputTrend: trend(series((s) => s.lookupsPerSecond)),
    originFetches: Number(final.originFetches),
  };
  log(
    `soak: ${thousands(result.lookupsPerSecond)} lookups/s, RSS ${fixed(soak.rssTrend.slopePerMinute)} KiB/min ` +
      `(${fixed(soak.rssTrend.relativeGrowth * 100)}% over the window)`,
  );
  return soak;
}

/** Pairs the server's i-th reading with the generator's i-th sample. */
function soakSamples(serverSamples: ServerSample[], clientSamples: Record<string, unknown>[]): SoakSample[] {
  return serverSamples.map((s, i) => {
    const client = clientSamples[i] ?? {};
    const latency = (client.latency ?? {}) as { p50Ms?: number; p99Ms?: number };
    const eld = s.stats.eventLoopDelayMs as { p99: number; max: number };
    return {
      atSeconds: s.atMs / 1000,
      lookupsPerSecond: Number(client.lookupsPerSecond ?? NaN),
      errors: Number(client.errors ?? 0),
      p50Ms: latency.p50Ms ?? NaN,
      p99Ms: latency.p99Ms ?? NaN,
      rssKiB: s.rssKiB,
      heapUsedBytes: (s.stats.memory as NodeJS.MemoryUsage).heapUsed,
      eventLoopDelayP99Ms: eld.p99,
      eventLoopDelayMaxMs: eld.max,
      cacheEntries: Number(s.stats.cacheEntries),
      originFetches: Number(s.stats.originFetches),
    };
  });
}
