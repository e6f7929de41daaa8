/**
 * `npm run bench`: headwire against the floor and the alternatives, on loopback only.
 *
 * Processes (on a 2-core machine): the server under test (headwire or the floor) in its own
 * process pinned to CPU 0; the load generator in its own process pinned to CPU 1; this
 * orchestrator (the local origin, the cold-path clients, sampling /proc) unpinned and mostly idle.
 *
 * Phases (bench/phases/): throughput (C sessions, cached URLs, headwire and the floor in turn for
 * each C), idle (sessions held open, the server's RSS per session), cold (an uncached lookup
 * against a direct fetch), soak (C=100 with cache churn, sampled over time), attacks (a probe
 * client's latency while each attack of bench/attacker.ts runs, against no attack), paths (a cached
 * header's delivery through the relay per one-way delay, loss and size), observe (cached lookups with
 * the admin listener off and on: what metrics and the status board cost), workers (--workers 1 and 2),
 * bulk (a 10,000-URL batch through headwire, cache cold and warm, against curl --parallel straight
 * from nginx). Results: Markdown
 * tables and target checks on the terminal (bench/report.ts, bench/targets.ts), and everything in
 * bench/results/<timestamp>.json.
 */
import { execFileSync } from "node:child_process";
import os from "node:os";
import { fixed } from "./format.js";
import { BenchHarness, log } from "./harness.js";
import { parseOptions } from "./options.js";
import { runAttacks } from "./phases/attacks.js";
import { runObserve } from "./phases/observe.js";
import { runPaths } from "./phases/paths.js";
import { runBulk } from "./phases/bulk.js";
import { runCold } from "./phases/cold.js";
import { runIdle } from "./phases/idle.js";
import { runSoak } from "./phases/soak.js";
import { runThroughput } from "./phases/throughput.js";
import { runWorkers } from "./phases/workers.js";
import { renderReport, writeResultsFile } from "./report.js";
import type { MachineInfo, PhaseResults } from "./results.js";
import { targetChecks } from "./targets.js";

function machine(): MachineInfo {
  const cpus = os.cpus();
  let openFiles: string | undefined;
  try {
    openFiles = execFileSync("sh", ["-c", "ulimit -n"], { encoding: "utf8", timeout: 2000 }).trim();
  } catch {
    openFiles = undefined;
  }
  return {
    cpuModel: cpus[0]?.model ?? "unknown",
    cores: cpus.length,
    availableParallelism: os.availableParallelism(),
    memoryMiB: Math.round(os.totalmem() / 2 ** 20),
    platform: `${os.platform()} ${os.release()} ${os.arch()}`,
    node: process.version,
    openFilesLimit: openFiles,
    hostname: os.hostname(),
  };
}

async function main(): Promise<void> {
  const options = parseOptions(process.argv.slice(2), process.env);
  const started = Date.now();
  const bench = new BenchHarness(options);
  const results: Record<string, unknown> = { startedAt: new Date(started).toISOString(), machine: machine() };
  const phases: PhaseResults = {};
  const shutdown = () => {
    void bench.tearDown().finally(() => process.exit(130));
  };
  process.once("SIGINT", shutdown);
  process.once("SIGTERM", shutdown);
  log(
    `${options.quick ? "quick" : "full"} mode; phases ${options.phases.join(", ")}; ` +
      (options.pin ? "server on CPU 0, load generator on CPU 1" : "not pinned"),
  );
  try {
    await bench.setUp();
    results.exchange = bench.exchangeSizes;
    if (options.phases.includes("throughput")) phases.throughput = await runThroughput(bench);
    if (options.phases.includes("idle")) phases.idle = await runIdle(bench);
    if (options.phases.includes("cold")) phases.cold = await runCold(bench);
    if (options.phases.includes("soak")) phases.soak = await runSoak(bench);
    if (options.phases.includes("attacks")) phases.attacks = await runAttacks(bench);
    if (options.phases.includes("paths")) phases.paths = await runPaths(bench);
    if (options.phases.includes("observe")) phases.observe = await runObserve(bench);
    if (options.phases.includes("workers")) phases.workers = await runWorkers(bench);
    if (options.phases.includes("bulk")) phases.bulk = await runBulk(bench);
  } finally {
    await bench.tearDown();
  }
  const checks = targetChecks(phases);
  const profiles = bench.profiles();
  Object.assign(results, {
    options,
    durationSeconds: (Date.now() - started) / 1000,
    throughput: phases.throughput,
    idle: phases.idle,
    cold: phases.cold,
    soak: phases.soak,
    attacks: phases.attacks,
    paths: phases.paths,
    observe: phases.observe,
    workers: phases.workers,
    bulk: phases.bulk,
    targets: checks,
    profiles,
  });
  const out = renderReport({
    ...phases,
    options,
    machine: results.machine as MachineInfo,
    exchange: bench.exchangeSizes,
    checks,
    profiles,
  });
  const file = writeResultsFile(options.out, started, results);
  out.push(`\nresults: ${file} (${fixed((Date.now() - started) / 1000, 0)} s)`);
  process.stdout.write(`${out.join("\n")}\n`);
}

main().catch((error: unknown) => {
  process.stderr.write(`bench: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
  process.exit(1);
});
