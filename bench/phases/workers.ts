/**
 * Workers: `headwire server --workers N` (the CLI, a primary and N workers) under the throughput
 * phase's load at the largest C, for N = 1 and 2, with the CPU of all its processes summed. On a
 * 2-core machine, with the load generator on the other core, more workers cannot raise
 * wall-clock throughput; what this shows is the cost: lookups per CPU-second, whole and per
 * worker, which should stay flat as workers are added (the primary's share included).
 */
import { fixed, thousands } from "../format.js";
import type { BenchHarness } from "../harness.js";
import { log } from "../harness.js";
import { warmCache } from "../line-client.js";
import type { WorkersRow } from "../results.js";

export const WORKER_COUNTS = [1, 2] as const;

export async function runWorkers(bench: BenchHarness): Promise<WorkersRow[]> {
  const rows: WorkersRow[] = [];
  const concurrency = Math.max(...bench.options.concurrency);
  for (const workers of WORKER_COUNTS) {
    const server = await bench.startWorkers(workers);
    const controlPort = Number(server.ready.controlPort);
    const pids = server.ready.pids as number[];
    await warmCache(controlPort, bench.hotUrls);
    bench.windowMark = { pid: pids[0]!, pids };
    const result = await bench.generateHot(controlPort, concurrency);
    const { start, end } = bench.windowMark;
    await bench.stopServer(server);
    const cpuSeconds = start === undefined || end === undefined ? undefined : end - start;
    const row: WorkersRow = {
      workers,
      processes: pids.length,
      concurrency,
      result,
      cpuSeconds,
      lookupsPerCpuSecond: cpuSeconds ? result.lookups / cpuSeconds : undefined,
    };
    rows.push(row);
    log(
      `workers=${workers} C=${concurrency}: ${thousands(result.lookupsPerSecond)} lookups/s, ` +
        `${row.lookupsPerCpuSecond === undefined ? "?" : thousands(row.lookupsPerCpuSecond)} lookups per CPU-second ` +
        `(${pids.length} processes, ${fixed(cpuSeconds ?? NaN)} CPU s), errors ${result.errors}`,
    );
  }
  return rows;
}
