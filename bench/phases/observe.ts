/**
 * What watching costs (issue 14): cached-lookup throughput and the server's CPU per lookup with
 * the admin listener off, and on with nobody scraping /metrics or watching the status page (its
 * metrics and status board still follow every query). The two alternate, off-on then on-off, so
 * that a machine getting busier or quieter during the phase weighs on both alike; the ratios are
 * of the medians.
 */
import { fixed, thousands } from "../format.js";
import type { BenchHarness } from "../harness.js";
import { log } from "../harness.js";
import { warmCache } from "../line-client.js";
import { coreShare } from "../process-stats.js";
import type { ObserveResult, ObserveRun } from "../results.js";
import { ratio } from "../targets.js";

/** C sessions: the throughput target's concurrency, where per-query costs show most. */
const CONCURRENCY = 100;

export async function runObserve(bench: BenchHarness): Promise<ObserveResult> {
  const { quick } = bench.options;
  const pairs = quick ? 1 : 3;
  const runs: ObserveRun[] = [];
  for (let pair = 0; pair < pairs; pair++) {
    const order = pair % 2 === 0 ? (["off", "on"] as const) : (["on", "off"] as const);
    for (const admin of order) {
      const server = await bench.startServer("headwire", [], admin === "off" ? { adminHttp: "off" } : {});
      const controlPort = Number(server.ready.controlPort);
      await warmCache(controlPort, bench.hotUrls);
      bench.windowMark = { pid: server.pid };
      const result = await bench.generateHot(controlPort, CONCURRENCY);
      const cores = coreShare(bench.windowMark.start, bench.windowMark.end, result.seconds);
      await bench.stopServer(server);
      const serverUsPerLookup =
        cores === undefined || result.lookups === 0 ? undefined : (cores * result.seconds * 1e6) / result.lookups;
      runs.push({ admin, lookupsPerSecond: result.lookupsPerSecond, serverUsPerLookup });
      log(
        `observe admin ${admin}: ${thousands(result.lookupsPerSecond)} lookups/s, ` +
          `${serverUsPerLookup === undefined ? "?" : fixed(serverUsPerLookup, 1)} µs server CPU per lookup`,
      );
    }
  }
  return observeResult(CONCURRENCY, runs);
}

/** The runs' medians compared: on ÷ off (pure; bench/targets.ts checks the throughput ratio). */
export function observeResult(concurrency: number, runs: ObserveRun[]): ObserveResult {
  const of = (admin: "off" | "on", pick: (run: ObserveRun) => number | undefined) =>
    median(runs.filter((run) => run.admin === admin).map(pick));
  return {
    concurrency,
    runs,
    throughputRatio: ratio(
      of("on", (run) => run.lookupsPerSecond),
      of("off", (run) => run.lookupsPerSecond),
    ),
    cpuRatio: ratio(
      of("on", (run) => run.serverUsPerLookup),
      of("off", (run) => run.serverUsPerLookup),
    ),
  };
}

function median(values: (number | undefined)[]): number | undefined {
  const known = values.filter((value): value is number => value !== undefined).sort((a, b) => a - b);
  if (known.length === 0) return undefined;
  const middle = Math.floor(known.length / 2);
  return known.length % 2 === 1 ? known[middle] : (known[middle - 1]! + known[middle]!) / 2;
}
