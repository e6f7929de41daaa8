/**
 * Throughput: C sessions asking for cached URLs as fast as they get answers, the floor, headwire
 * and the seed's design (bench/seed-design/server.py, when python3 is here) in turn for each C,
 * with the server's CPU, the rest of the machine's, its peak RSS, and headers delivered to the
 * wrong client.
 */
import { mkdirSync } from "node:fs";
import { fixed, thousands } from "../format.js";
import type { BenchHarness } from "../harness.js";
import { log } from "../harness.js";
import { warmCache } from "../line-client.js";
import { coreShare, memory } from "../process-stats.js";
import type { ServerKind, ThroughputRow } from "../results.js";

export async function runThroughput(bench: BenchHarness): Promise<ThroughputRow[]> {
  const rows: ThroughputRow[] = [];
  const kinds: ServerKind[] = ["floor", "headwire"];
  if (bench.seedAvailable()) kinds.push("seed");
  else log("SKIPPING the seed's design: python3 is not on the PATH (its rows and ratios are left out)");
  for (const concurrency of bench.options.concurrency) {
    for (const kind of kinds) {
      const server = await bench.startServer(kind);
      const controlPort = Number(server.ready.controlPort);
      // The seed's design cannot be warmed by pipelined queries (its thread waits on UDP after each
      // TICKET): the load generator's warm-up fills its cache.
      if (kind === "headwire") await warmCache(controlPort, bench.hotUrls);
      const before = kind === "headwire" ? await server.request({ cmd: "stats" }) : undefined;
      // The seed's design runs in a Python process of its own under the wrapper.
      const pids = server.ready.pids as number[] | undefined;
      const pid = pids?.[0] ?? server.pid;
      bench.windowMark = pids ? { pid, pids } : { pid };
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
      const peak = memory(pid)?.peakRssKiB;
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
          `p99 ${fixed(result.latency.p99Ms, 3)} ms, server ${fixed(serverCores)} cores, generator ${fixed(result.generatorCores)} cores` +
          `, wrong deliveries ${result.wrongDeliveries}, stalled sessions ${result.stalledSessions}`,
      );
    }
  }
  return rows;
}
