/**
 * The run's report: Markdown tables per phase and the targets' verdicts on the terminal (they
 * paste into docs/performance.md as is), and every figure in bench/results/<timestamp>.json.
 */
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { ColdSummary } from "./cold-path.js";
import { fixed, markdownTable, rate, thousands, verdict } from "./format.js";
import type { BenchOptions } from "./options.js";
import type { ProfileLine } from "./profile-summary.js";
import type {
  AttackRow,
  BulkResult,
  ColdPhaseResult,
  ExchangeSizes,
  IdleResult,
  MachineInfo,
  ObserveResult,
  PathRow,
  PhaseResults,
  SoakResult,
  ThroughputRow,
  WorkersRow,
} from "./results.js";
import { median, ratio, type TargetCheck } from "./targets.js";

export interface ProfileReport {
  file: string;
  top: ProfileLine[];
}

export interface ReportInput extends PhaseResults {
  options: BenchOptions;
  machine: MachineInfo;
  exchange: ExchangeSizes;
  checks: TargetCheck[];
  profiles: ProfileReport[];
}

/** Writes `results` to <dir>/<start time>.json and returns the file's path. */
export function writeResultsFile(dir: string, startedMs: number, results: Record<string, unknown>): string {
  mkdirSync(dir, { recursive: true });
  const file = join(dir, `${new Date(startedMs).toISOString().replace(/[:.]/g, "-")}.json`);
  writeFileSync(file, `${JSON.stringify(results, null, 2)}\n`);
  return file;
}

/** The terminal report, line by line (phases that did not run are left out). */
export function renderReport(input: ReportInput): string[] {
  const { options, throughput, idle, cold, soak, attacks, paths, observe, workers, bulk } = input;
  const out: string[] = [...heading(input)];
  if (throughput) {
    out.push(`\n### Cached lookups (${options.durationSeconds} s per run after ${options.warmupSeconds} s warm-up)\n`);
    out.push(throughputTables(throughput));
  }
  if (idle) {
    out.push(`\n### Idle sessions\n`);
    out.push(idleTable(idle));
  }
  if (cold) {
    out.push(`\n### Cold path (${options.coldSamples} uncached lookups per method, distinct URLs)\n`);
    out.push(coldTable(cold));
    if (cold.curlMissing) out.push("\ncurl is NOT installed: the curl comparison was skipped.");
    else
      out.push(
        "\ncurl's figure is mostly process start-up (see its `--version` row); the Node figure is the strict one.",
      );
  }
  if (soak) out.push(...soakSection(soak, options));
  if (attacks) {
    out.push(
      `\n### Under attack (${options.attackSeconds} s per attack; default limits; probe from 127.0.0.1, attackers from 127.0.0.2–11)\n`,
    );
    out.push(attackTable(attacks));
  }
  if (paths) {
    out.push(
      `\n### Delivery over emulated paths (cached headers through the relay; ideal = one round trip + one delivery at the bottleneck's rate)\n`,
    );
    out.push(pathTable(paths));
  }
  if (observe) {
    out.push(
      `\n### What watching costs (C=${observe.concurrency}, cached lookups; admin listener off, and on with nobody scraping or watching)\n`,
    );
    out.push(observeTable(observe));
  }
  if (workers) {
    out.push(
      `\n### Workers (--workers N, the CLI; CPU of the primary and every worker summed; one load generator on the other core)\n`,
    );
    out.push(workersTable(workers));
  }
  if (bulk) {
    out.push(
      `\n### Bulk (${bulk.urls} distinct nginx URLs, one header file each, ${bulk.parallel} at once, median of ${bulk.runs} runs)\n`,
    );
    out.push(bulk.missing ? `${bulk.missing} NOT installed: the bulk phase was skipped.` : bulkTable(bulk));
    if (!bulk.missing && bulk.loadAverages?.length) {
      out.push(
        `\nLoad average (1 min) as each run started: ${bulk.loadAverages.map((load) => load.toFixed(2)).join(", ")}; ` +
          `each run's own ratios (cold, warm ÷ that run's curl): ${bulkRunRatios(bulk)}.`,
      );
    }
  }
  out.push(`\n### Targets\n`);
  out.push(
    markdownTable(
      ["target", "goal", "measured", "status"],
      input.checks.map((c) => [c.name, c.target, c.measured, verdict(c.pass)]),
    ),
  );
  for (const profile of input.profiles) {
    out.push(`\nCPU profile ${profile.file} (self time):`);
    for (const line of profile.top.slice(0, 15)) {
      out.push(`  ${(line.share * 100).toFixed(1).padStart(5)}%  ${line.name}`);
    }
  }
  return out;
}

function heading({ options, machine: m, exchange: ex }: ReportInput): string[] {
  return [
    `\nheadwire benchmark, ${options.quick ? "quick" : "full"} mode — ${m.cpuModel}, ${m.cores} cores, ` +
      `${m.memoryMiB} MiB, ${m.platform}, node ${m.node}; ${options.pin ? "server pinned to CPU 0, load generator to CPU 1" : "unpinned"}`,
    `exchange per lookup: QUERY ${ex.queryBytes} B → TICKET ${ex.ticketBytes} B over TCP, REQUEST ${ex.requestBytes} B → CHUNK ${ex.chunkBytes} B over UDP`,
  ];
}

export function throughputTables(rows: ThroughputRow[]): string {
  const main = markdownTable(
    [
      "C",
      "server",
      "lookups/s",
      "p50 ms",
      "p99 ms",
      "max ms",
      "server CPU",
      "server µs/lookup",
      "generator CPU",
      "other CPU",
      "peak RSS MiB",
      "resent",
      "errors",
    ],
    rows.map((r) => [
      r.concurrency,
      r.server,
      thousands(r.result.lookupsPerSecond),
      fixed(r.result.latency.p50Ms, 3),
      fixed(r.result.latency.p99Ms, 3),
      fixed(r.result.latency.maxMs, 1),
      fixed(r.serverCores),
      fixed(r.serverCores === undefined ? undefined : (r.serverCores * 1e6) / r.result.lookupsPerSecond, 1),
      fixed(r.result.generatorCores),
      fixed(r.otherCores),
      fixed((r.serverPeakRssKiB ?? NaN) / 1024, 1),
      r.result.retransmits,
      r.result.errors,
    ]),
  );
  const concurrencies = [...new Set(rows.map((r) => r.concurrency))];
  const ratios = markdownTable(
    ["C", "throughput ÷ floor", "p50 ÷ floor", "p99 ÷ floor", "p99 ÷ p50 (headwire)", "CPU per lookup ÷ floor"],
    concurrencies.flatMap((c) => {
      const hw = rows.find((r) => r.concurrency === c && r.server === "headwire");
      const fl = rows.find((r) => r.concurrency === c && r.server === "floor");
      if (!hw || !fl) return [];
      const cpuPerLookup = (r: ThroughputRow) =>
        r.serverCores === undefined ? undefined : r.serverCores / r.result.lookupsPerSecond;
      return [
        [
          c,
          fixed(ratio(hw.result.lookupsPerSecond, fl.result.lookupsPerSecond)),
          fixed(ratio(hw.result.latency.p50Ms, fl.result.latency.p50Ms)),
          fixed(ratio(hw.result.latency.p99Ms, fl.result.latency.p99Ms)),
          fixed(ratio(hw.result.latency.p99Ms, hw.result.latency.p50Ms)),
          fixed(ratio(cpuPerLookup(hw), cpuPerLookup(fl))),
        ],
      ];
    }),
  );
  const busy = rows.filter((r) => (r.otherCores ?? 0) > 0.25);
  const warning =
    busy.length === 0
      ? ""
      : `\n\nWARNING: other programs used CPU during ${busy.length} run(s) (see "other CPU"): on a 2-core ` +
        "machine that distorts these figures; run again on a quiet machine.";
  return `${main}\n\n${ratios}${warning}`;
}

function idleTable(idle: IdleResult[]): string {
  return markdownTable(
    ["server", "sessions", "RSS before MiB", "RSS after MiB", "KiB/session", "JS heap B/session", "open time s"],
    idle.map((r) => [
      r.server,
      `${r.opened}/${r.sessions}`,
      fixed(r.rssBeforeKiB / 1024, 1),
      fixed(r.rssAfterKiB / 1024, 1),
      fixed(r.perSessionKiB),
      thousands(r.heapPerSessionBytes),
      fixed(r.openMs / 1000, 1),
    ]),
  );
}

function coldTable(cold: ColdPhaseResult): string {
  // Each method against headwire's p50 on the same origin: loopback rows, then the remote pair.
  const row = (name: string, summary: ColdSummary, headwireP50Ms: number) => [
    name,
    fixed(summary.p50Ms, 3),
    fixed(summary.p99Ms, 3),
    fixed(summary.meanMs, 3),
    fixed(ratio(headwireP50Ms, summary.p50Ms)),
    summary.failures,
  ];
  const methods: [string, ColdSummary][] = [
    ["headwire (session open, fresh UDP port)", cold.headwire],
    ["bare Node http.get (fresh connection)", cold.nodeHttp],
    ...(cold.curl ? ([["curl -s -D - -o /dev/null", cold.curl]] as [string, ColdSummary][]) : []),
    ...(cold.curlStartup ? ([["curl --version (start-up only)", cold.curlStartup]] as [string, ColdSummary][]) : []),
  ];
  const rows = methods.map(([name, summary]) => row(name, summary, cold.headwire.p50Ms));
  if (cold.remote) {
    const { delayMs, headwire, nodeHttp } = cold.remote;
    rows.push(row(`headwire, origin ${delayMs} ms away`, headwire, headwire.p50Ms));
    rows.push(row(`bare Node http.get, origin ${delayMs} ms away`, nodeHttp, headwire.p50Ms));
  }
  return markdownTable(["method", "p50 ms", "p99 ms", "mean ms", "headwire p50 ÷ this", "failures"], rows);
}

function soakSection(soak: SoakResult, options: BenchOptions): string[] {
  const every = Math.max(1, Math.floor(soak.samples.length / 12));
  const table = markdownTable(
    [
      "t s",
      "lookups/s",
      "p50 ms",
      "p99 ms",
      "RSS MiB",
      "heap MiB",
      "loop delay p99 ms",
      "cache entries",
      "origin fetches",
    ],
    soak.samples
      .filter((_, i) => i % every === 0 || i === soak.samples.length - 1)
      .map((s) => [
        fixed(s.atSeconds, 0),
        thousands(s.lookupsPerSecond),
        fixed(s.p50Ms, 3),
        fixed(s.p99Ms, 3),
        fixed((s.rssKiB ?? NaN) / 1024, 1),
        fixed(s.heapUsedBytes / 2 ** 20, 1),
        fixed(s.eventLoopDelayP99Ms, 1),
        s.cacheEntries,
        s.originFetches,
      ]),
  );
  return [
    `\n### Soak (${soak.seconds} s at C=${soak.sessions} after ${options.soakWarmupSeconds} s of warm-up, ` +
      `${fixed(soak.churnRatio * 100, 0)}% of queries outside the hot set)\n`,
    table,
    `\ntrends after the first quarter: RSS ${fixed(soak.rssTrend.slopePerMinute)} KiB/min (${fixed(soak.rssTrend.relativeGrowth * 100)}%), ` +
      `heap ${fixed(soak.heapTrend.slopePerMinute / 1024)} KiB/min (${fixed(soak.heapTrend.relativeGrowth * 100)}%), ` +
      `loop delay p99 ${fixed(soak.eventLoopDelayTrend.slopePerMinute, 3)} ms/min, ` +
      `throughput ${fixed(soak.throughputTrend.relativeGrowth * 100)}%; ${soak.result.errors} errors, ${soak.result.retransmits} re-sent requests`,
  ];
}

/** What an attack achieved, in a few words (the numbers bench/attacker.ts counted). */
export function achievedText(row: AttackRow): string {
  const a = row.achieved;
  const n = (key: string) => thousands(a[key]);
  switch (row.attack) {
    case "none":
      return "—";
    case "newline-flood":
      return (
        `${n("bytesWritten")} newlines handed to write() (socket.bytesWritten: most were never sent, the server had closed; ${n("newlinesPerSecond")}/s), ` +
        `${n("sessions")} sessions (${n("sessionsPerSecond")}/s), ` +
        `${n("badRequestReplies")} ERROR replies, ${n("tooManyErrors")} TOO_MANY_ERRORS`
      );
    case "ping-flood":
      return `${n("pingsWritten")} PINGs handed to write(), never a reply read, ${n("sessions")} sessions, ${n("closedByServer")} closed by the server`;
    case "session-hog":
      return `${n("heldAtEnd")} sessions held of ${n("attempts")} tried, ${n("sessionLimit")} SESSION_LIMIT, ${n("pongs")} PONGs`;
    case "udp-garbage":
      return `${n("datagramsSent")} datagrams (${n("datagramsPerSecond")}/s)`;
    case "query-flood":
      return (
        `${n("queries")} queries, ${n("originBusy")} ORIGIN_BUSY, ${n("rateLimited")} RATE_LIMITED; origin got ` +
        `${fixed(a.originRequestsPerSecond, 1)} requests/s (peak ${n("originPeakPerSecond")} in a second)`
      );
  }
}

export function attackTable(rows: AttackRow[]): string {
  return markdownTable(
    [
      "attack",
      "greeting+PING p50 ms",
      "p99 ms",
      "p99 ÷ none",
      "cached lookup p50 ms",
      "p99 ms",
      "p99 ÷ none",
      "lookups resent",
      "UDP queue drops",
      "probe failures",
      "server CPU",
      "server RSS after MiB",
      "what the attack did",
    ],
    rows.map((r) => [
      r.attack + (r.serverAlive ? "" : " (SERVER DIED)"),
      fixed(r.greeting.p50Ms, 3),
      fixed(r.greeting.p99Ms, 3),
      fixed(r.greetingP99Ratio),
      fixed(r.lookup.p50Ms, 3),
      fixed(r.lookup.p99Ms, 3),
      fixed(r.lookupP99Ratio),
      `${r.lookupsResent}/${r.lookup.samples}`,
      thousands(r.udpReceiveBufferDrops),
      `${r.greeting.failures + r.lookup.failures}/${r.greeting.samples + r.lookup.samples + r.greeting.failures + r.lookup.failures}`,
      fixed(r.serverCores),
      fixed((r.serverRssAfterKiB ?? NaN) / 1024, 1),
      achievedText(r),
    ]),
  );
}

/** The "observe" phase: each window in the order run, then the ratios of the medians. */
export function observeTable(observe: ObserveResult): string {
  const rows = observe.runs.map((run) => [
    `admin ${run.admin}`,
    thousands(run.lookupsPerSecond),
    run.serverUsPerLookup === undefined ? "—" : fixed(run.serverUsPerLookup, 1),
  ]);
  rows.push([
    "on ÷ off (medians)",
    observe.throughputRatio === undefined ? "—" : fixed(observe.throughputRatio, 3),
    observe.cpuRatio === undefined ? "—" : fixed(observe.cpuRatio, 3),
  ]);
  return markdownTable(["run", "lookups/s", "server µs/lookup"], rows);
}

/** The "workers" phase: one row per worker count; lookups per CPU-second is the figure that should stay flat. */
export function workersTable(rows: WorkersRow[]): string {
  return markdownTable(
    [
      "workers",
      "processes",
      "C sessions",
      "lookups/s",
      "CPU s",
      "lookups per CPU-second",
      "µs CPU per lookup",
      "errors",
    ],
    rows.map((row) => [
      String(row.workers),
      String(row.processes),
      String(row.concurrency),
      thousands(row.result.lookupsPerSecond),
      fixed(row.cpuSeconds ?? NaN),
      row.lookupsPerCpuSecond === undefined ? "—" : thousands(row.lookupsPerCpuSecond),
      row.lookupsPerCpuSecond === undefined ? "—" : fixed(1e6 / row.lookupsPerCpuSecond, 1),
      String(row.result.errors),
    ]),
  );
}

/** The "bulk" phase: each method's median wall time, files per second and its ratio to curl's. */
function bulkTable(bulk: BulkResult): string {
  const curl = median(bulk.curlMs);
  const row = (name: string, runs: number[]) => {
    const ms = median(runs);
    return [
      name,
      fixed(ms === undefined ? undefined : ms / 1000),
      runs.map((r) => fixed(r / 1000)).join(", "),
      thousands(ms ? (bulk.urls * 1000) / ms : undefined),
      fixed(ratio(ms, curl)),
    ];
  };
  return markdownTable(
    ["method", "median s", "runs s", "files/s", "÷ curl"],
    [
      row(`curl --parallel --parallel-max ${bulk.parallel} (from nginx)`, bulk.curlMs),
      row(`headwire client --batch -j ${bulk.parallel}, cache cold`, bulk.coldMs),
      row(`headwire client --batch -j ${bulk.parallel}, cache warm`, bulk.warmMs),
    ],
  );
}

/** Each run's cold and warm time over the same run's curl time: a load that drifts between runs shows here. */
function bulkRunRatios(bulk: BulkResult): string {
  return bulk.curlMs
    .map((curl, i) => `${fixed(ratio(bulk.coldMs[i], curl))}, ${fixed(ratio(bulk.warmMs[i], curl))}`)
    .join("; ");
}

/** The "paths" phase: one row per path and size. */
export function pathTable(rows: PathRow[]): string {
  return markdownTable(
    [
      "one-way delay",
      "loss",
      "bottleneck",
      "chunks",
      "median ms",
      "ideal ms",
      "median ÷ ideal",
      "failed",
      "UDP bytes sent per byte",
    ],
    rows.map((row) => [
      `${row.oneWayMs} ms`,
      `${fixed(row.loss * 100, 0)} %`,
      rate(row.bytesPerSecond),
      String(row.chunks),
      fixed(row.medianMs, 0),
      String(row.idealMs),
      row.idealMs > 0 ? fixed(row.medianMs / row.idealMs, 2) : "—",
      `${row.failures}/${row.samples}`,
      fixed(row.bytesSentPerByte, 2),
    ]),
  );
}
