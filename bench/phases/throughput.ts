/**
 * Throughput: C sessions asking for cached URLs as fast as they get answers, headwire and the
 * floor in turn for each C, with the server's CPU, the rest of the machine's, and its peak RSS.
 */
import { mkdirSync } from "node:fs";
import { fixed, thousands } from "../format.js";
import type { BenchHarness } from "../harness.js";
import { log } from "../harness.js";
import { warmCache } from "../line-client.js";
import { coreShare, memory } from "../process-stats.js";
import type { ThroughputRow } from "../results.js";

export async function runThroughput(bench: BenchHarness): Promise<ThroughputRow[]> {
  const rows: ThroughputRow[] = [];
  for (const concurrency of bench.options.concurrency) {
    for (const kind of ["floor", "headwire"] as const) {
      const server = await bench.startServer(kind);
      const controlPort = Number(server.ready.controlPort);
      if (kind === "headwire") await warmCache(controlPort, bench.hotUrls);
      const before = kind === "headwire" ? await server.request({ cmd: "stats" }) : undefined;
      bench.windowMark = { pid: server.pid };
      if (bench.options.profile && kind === "headwire") {
        mkdirSync(bench.profileDir, { recursive: true });
        bench.windowMark.profile = { child: server, name: `throughput-c${concurrency}.cpuprofile` };
      }
      const result = await bench.generateHot(controlPort, concurrency);
      await bench.windowMark.profiling;
      const serverCores = coreShare(bench.windowMark.start, bench.windowMark.end, result.seconds);
      const machineCores = coreShare(bench.windowMark.machineStart, bench.windowMark.machineEnd, result.seconds);
      // Whatever else ran during the window (the orchestrator, other programs): a noisy machine shows here.
      const otherCores =
        machineCores === undefined || serverCores === undefined
          ? undefined
          : Math.max(0, machineCores - serverCores - result.generatorCores);
      const peak = memory(server.pid)?.peakRssKiB;
      const after = kind === "headwire" ? await server.request({ cmd: "stats" }) : undefined;
      await bench.stopServer(server);
      const row: ThroughputRow = {
        concurrency,
        server: kind,
        result,
        serverCores,
        otherCores,
        serverPeakRssKiB: peak,
      };
      if (before && after) row.originFetchesDuringRun = Number(after.originFetches) - Number(before.originFetches);
      rows.push(row);
      log(
        `C=${concurrency} ${kind}: ${thousands(result.lookupsPerSecond)} lookups/s, p50 ${fixed(result.latency.p50Ms, 3)} ms, ` +
          `p99 ${fixed(result.latency.p99Ms, 3)} ms, server ${fixed(serverCores)} cores, generator ${fixed(result.generatorCores)} cores`,
      );
    }
  }
  return rows;
}
