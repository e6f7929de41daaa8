/**
 * Idle sessions: open many sessions that ask nothing, and measure what the server holds per
 * session (RSS, and the JS heap after a full GC), headwire and the floor.
 */
import { mkdirSync } from "node:fs";
import { resolve } from "node:path";
import { fixed } from "../format.js";
import type { BenchHarness } from "../harness.js";
import { delay, log } from "../harness.js";
import { HOST } from "../line-client.js";
import { memory } from "../process-stats.js";
import type { IdleResult } from "../results.js";

export async function runIdle(bench: BenchHarness): Promise<IdleResult[]> {
  const results: IdleResult[] = [];
  const generator = bench.loadGenerator;
  for (const kind of ["floor", "headwire"] as const) {
    const server = await bench.startServer(kind, ["--expose-gc"]);
    const controlPort = Number(server.ready.controlPort);
    // Warm the accept and session code paths first, so that their one-off costs are not counted.
    await generator.request({ cmd: "idle-open", host: HOST, controlPort, sessions: 200 }, 60_000);
    await generator.request({ cmd: "idle-close" });
    await delay(300);
    const gcBefore = await server.request({ cmd: "gc" });
    await delay(200);
    const before = memory(server.pid);
    const opened = await generator.request(
      { cmd: "idle-open", host: HOST, controlPort, sessions: bench.options.idleSessions },
      180_000,
    );
    await delay(1000);
    const gcAfter = await server.request({ cmd: "gc" });
    await delay(200);
    const after = memory(server.pid);
    const stats = await server.request({ cmd: "stats" });
    let heapSnapshot: string | undefined;
    if (bench.options.heapSnapshot && kind === "headwire") {
      mkdirSync(resolve(bench.options.out), { recursive: true });
      const path = resolve(bench.options.out, `idle-${bench.stamp}.heapsnapshot`);
      heapSnapshot = String((await server.request({ cmd: "heap-snapshot", path }, 120_000)).path);
    }
    await generator.request({ cmd: "idle-close" });
    await bench.stopServer(server);
    const count = Number(opened.opened);
    const heapOf = (answer: Record<string, unknown>) => (answer.memory as NodeJS.MemoryUsage | undefined)?.heapUsed;
    const heapBefore = heapOf(gcBefore);
    const heapAfter = heapOf(gcAfter);
    const result: IdleResult = {
      server: kind,
      sessions: bench.options.idleSessions,
      opened: count,
      openMs: Number(opened.ms),
      rssBeforeKiB: before?.rssKiB ?? NaN,
      rssAfterKiB: after?.rssKiB ?? NaN,
      perSessionKiB: before && after && count > 0 ? (after.rssKiB - before.rssKiB) / count : NaN,
      ...(heapBefore !== undefined && heapAfter !== undefined
        ? {
            heapBeforeBytes: heapBefore,
            heapAfterBytes: heapAfter,
            heapPerSessionBytes: count > 0 ? (heapAfter - heapBefore) / count : NaN,
          }
        : {}),
      ...(heapSnapshot ? { heapSnapshot } : {}),
    };
    if (kind === "headwire" && Number(stats.sessions) !== count) {
      log(`idle: the server holds ${String(stats.sessions)} sessions, the generator opened ${count}`);
    }
    results.push(result);
    log(
      `idle ${kind}: ${count}/${bench.options.idleSessions} sessions, RSS ${result.rssBeforeKiB} → ${result.rssAfterKiB} KiB, ` +
        `${fixed(result.perSessionKiB)} KiB/session`,
    );
  }
  return results;
}
