/**
 * The targets headwire is held to (docs/performance.md), checked against a run's results: each
 * check is measured against its floor, and a phase that did not run is a SKIP, never a pass.
 * Pure: results in, verdicts out.
 */
import { REMOTE_ORIGIN_DELAY_MS, type ColdResult } from "./cold-path.js";
import { fixed, rate } from "./format.js";
import {
  ATTACKS,
  type AttackKind,
  type AttackRow,
  type BulkResult,
  type IdleResult,
  type ObserveResult,
  type PathRow,
  type PhaseResults,
  type ServerKind,
  type SoakResult,
  type ThroughputRow,
  type WorkersRow,
} from "./results.js";

export interface TargetCheck {
  name: string;
  target: string;
  measured: string;
  /** Undefined: the phase that measures it did not run (or could not, as curl missing). */
  pass: boolean | undefined;
}

/** The floors, one per target. */
export const TARGETS = {
  /** headwire's cached lookups per second at C=100, as a share of the floor's: at least. */
  throughputShareOfFloor: 0.7,
  /** p99 ÷ p50 of headwire's cached lookups at C=1000: at most. */
  tailP99OverP50: 5,
  /** RSS per idle session: at most, in KiB. */
  idleKiBPerSession: 10,
  /** A cold lookup's p50 ÷ a direct fetch's p50: at most. */
  coldOverDirect: 1.2,
  /** The soak's RSS growth over the window, as a share of the mean: below. */
  soakRssGrowth: 0.05,
  /**
   * The probe's p99 (a new session's greeting + PING, and a cached lookup) under each attack ÷
   * its p99 with no attack: at most. One order of magnitude: on a 2-core machine the attacker
   * and the probe share the second core, and the control-channel floods measured 1.1-7 × in a
   * full run (a newline flood used to cost a new client 10.9 s at the median, about 16,000 ×).
   */
  attackP99OverBaseline: 10,
  /**
   * …or this many milliseconds, whichever is more: a loopback p99 of a few ms is scheduler noise
   * on a shared 2-core machine (the baseline's p99 measured 1.9 to 45 ms between runs), and
   * 100 ms is still a response a person perceives as immediate.
   */
  attackP99FloorMs: 100,
  /** Headers that fail on an emulated path of up to 1 s round trip and 30 % loss (issue 12): none. */
  pathFailures: 0,
  /**
   * The server's CPU per cached lookup with the admin listener on (metrics and the status board
   * following every query, nobody scraping or watching) ÷ with it off: at most (issue 14: under
   * 5 % of cached-lookup throughput). The server is pinned to one core and is the bottleneck, so
   * its throughput is the inverse of its CPU per lookup; the CPU figure is taken because it does
   * not move with the load generator's and the rest of the machine's scheduling, which throughput
   * on a shared 2-core machine does (pairs of the same build differ by ±10 %).
   */
  observeCpuRatio: 1.05,
  /** A 10,000-URL batch, the server's cache warm, ÷ curl --parallel from nginx: at most (issue 13). */
  bulkWarmOverCurl: 1.5,
  /** …the server's cache cold: at most. */
  bulkColdOverCurl: 2,
  /** Issue 15: headwire's server CPU per cached lookup ÷ the floor's, at C=10 and at C=100: at most. */
  cpuPerLookupOverFloor: 1.25,
  /** …its cached lookups per second ÷ the seed's design's (Python, a thread per client) below C=300: at least. */
  throughputOverSeed: 1,
  /** …and from C=300 on, where the seed's design stalls and cross-delivers: at least. */
  throughputOverSeedFromC300: 1.5,
  /** …lookups per CPU-second with 2 workers ÷ with 1 (per-worker cost flat): at least. */
  workersCpuEfficiency: 0.8,
} as const;

/** The C from which the seed's design is held to throughputOverSeedFromC300. */
export const SEED_STALL_CONCURRENCY = 300;

/** a ÷ b; undefined when either is missing or b is 0 (nothing to compare against). */
export function ratio(a: number | undefined, b: number | undefined): number | undefined {
  return a === undefined || b === undefined || b === 0 ? undefined : a / b;
}

function rowAt(rows: ThroughputRow[] | undefined, concurrency: number, kind: ServerKind): ThroughputRow | undefined {
  return rows?.find((r) => r.concurrency === concurrency && r.server === kind);
}

export function throughputCheck(rows: ThroughputRow[] | undefined): TargetCheck {
  const share = ratio(
    rowAt(rows, 100, "headwire")?.result.lookupsPerSecond,
    rowAt(rows, 100, "floor")?.result.lookupsPerSecond,
  );
  return {
    name: "cached throughput at C=100",
    target: `≥ ${fixed(TARGETS.throughputShareOfFloor)} × floor`,
    measured: share === undefined ? "not run" : `${fixed(share)} × floor`,
    pass: share === undefined ? undefined : share >= TARGETS.throughputShareOfFloor,
  };
}

export function tailCheck(rows: ThroughputRow[] | undefined): TargetCheck {
  const latency = rowAt(rows, 1000, "headwire")?.result.latency;
  const tail = ratio(latency?.p99Ms, latency?.p50Ms);
  return {
    name: "tail latency at C=1000",
    target: `p99 ≤ ${TARGETS.tailP99OverP50} × p50`,
    measured:
      tail === undefined
        ? "not run"
        : `p99 ${fixed(latency!.p99Ms, 2)} ms = ${fixed(tail)} × p50 ${fixed(latency!.p50Ms, 2)} ms`,
    pass: tail === undefined ? undefined : tail <= TARGETS.tailP99OverP50,
  };
}

/** Passes only if every session asked for was opened: a server that refuses sessions holds fewer. */
export function idleCheck(idle: IdleResult[] | undefined): TargetCheck {
  const hwIdle = idle?.find((r) => r.server === "headwire");
  return {
    name: `idle sessions (${hwIdle?.sessions ?? 10_000})`,
    target: `RSS ≤ ${TARGETS.idleKiBPerSession} KiB per session`,
    measured: hwIdle === undefined ? "not run" : `${fixed(hwIdle.perSessionKiB)} KiB/session (${hwIdle.opened} open)`,
    pass:
      hwIdle === undefined
        ? undefined
        : hwIdle.opened === hwIdle.sessions && hwIdle.perSessionKiB <= TARGETS.idleKiBPerSession,
  };
}

function coldCheck(name: string, share: number | undefined, missing = "not run"): TargetCheck {
  return {
    name,
    target: `p50 ≤ ${TARGETS.coldOverDirect} × direct`,
    measured: share === undefined ? missing : `${fixed(share)} ×`,
    pass: share === undefined ? undefined : share <= TARGETS.coldOverDirect,
  };
}

/** Against a bare Node request (on loopback, and with the origin as far as a real one), and curl. */
export function coldChecks(cold: ColdResult | undefined): TargetCheck[] {
  return [
    coldCheck("cold path vs bare Node request", ratio(cold?.headwire.p50Ms, cold?.nodeHttp.p50Ms)),
    coldCheck(
      `cold path vs bare Node request, origin ${REMOTE_ORIGIN_DELAY_MS} ms away`,
      ratio(cold?.remote?.headwire.p50Ms, cold?.remote?.nodeHttp.p50Ms),
    ),
    coldCheck(
      "cold path vs curl (process start-up included)",
      ratio(cold?.headwire.p50Ms, cold?.curl?.p50Ms),
      cold ? "curl missing" : "not run",
    ),
  ];
}

export function soakCheck(soak: SoakResult | undefined): TargetCheck {
  const growth = soak?.rssTrend.relativeGrowth;
  return {
    name: "soak: no RSS growth trend",
    target: `< ${Math.round(TARGETS.soakRssGrowth * 100)}% growth over the window`,
    measured:
      growth === undefined
        ? "not run"
        : `${fixed(soak!.rssTrend.slopePerMinute)} KiB/min, ${fixed(growth * 100)}% of ${fixed(soak!.rssTrend.mean / 1024, 1)} MiB`,
    pass: growth === undefined ? undefined : growth < TARGETS.soakRssGrowth,
  };
}

/**
 * The probe under one attack against the probe with no attack: both p99s within the bound, no
 * probe operation failed, and the server still running at the end of the window.
 */
export function attackCheck(
  kind: AttackKind,
  row: AttackRow | undefined,
  baseline: AttackRow | undefined,
): TargetCheck {
  const name = `probe under attack: ${kind}`;
  const { attackP99OverBaseline: times, attackP99FloorMs: floorMs } = TARGETS;
  const target = `p99 ≤ ${times} × no attack (or ≤ ${floorMs} ms), no failure`;
  const greeting = ratio(row?.greeting.p99Ms, baseline?.greeting.p99Ms);
  const lookup = ratio(row?.lookup.p99Ms, baseline?.lookup.p99Ms);
  if (row === undefined || baseline === undefined || greeting === undefined || lookup === undefined) {
    return { name, target, measured: "not run", pass: undefined };
  }
  const failures = row.greeting.failures + row.lookup.failures;
  const measured =
    `greeting+PING ${fixed(greeting)} × (${fixed(row.greeting.p99Ms, 1)} ms), ` +
    `lookup ${fixed(lookup)} × (${fixed(row.lookup.p99Ms, 1)} ms)` +
    (failures > 0 ? `, ${failures} failed` : "") +
    (row.serverAlive ? "" : ", SERVER DIED");
  const within = (p99Ms: number, baselineP99Ms: number) => p99Ms <= Math.max(times * baselineP99Ms, floorMs);
  const fast = within(row.greeting.p99Ms, baseline.greeting.p99Ms) && within(row.lookup.p99Ms, baseline.lookup.p99Ms);
  return { name, target, measured, pass: row.serverAlive && failures === 0 && fast };
}

/** One check per attack (the baseline is what they are measured against). */
export function attackChecks(rows: AttackRow[] | undefined): TargetCheck[] {
  const baseline = rows?.find((r) => r.attack === "none");
  return ATTACKS.filter((kind) => kind !== "none").map((kind) =>
    attackCheck(
      kind,
      rows?.find((r) => r.attack === kind),
      baseline,
    ),
  );
}

/** Issue 12: every header arrives on every emulated path, whatever its size. */
export function pathCheck(rows: PathRow[] | undefined): TargetCheck {
  const name = "every header arrives over emulated paths";
  const target = "0 failed, RTT ≤ 1 s, loss ≤ 30 %";
  if (!rows || rows.length === 0) return { name, target, measured: "not run", pass: undefined };
  const failed = rows.filter((row) => row.failures > 0);
  const tried = rows.reduce((sum, row) => sum + row.samples, 0);
  const failures = rows.reduce((sum, row) => sum + row.failures, 0);
  const worst = failed.map(
    (row) =>
      `${row.chunks} chunks at ${row.oneWayMs} ms/${Math.round(row.loss * 100)} %` +
      (row.bytesPerSecond ? `/${rate(row.bytesPerSecond)}` : ""),
  );
  return {
    name,
    target,
    measured: `${failures}/${tried} failed${worst.length > 0 ? ` (${worst.join(", ")})` : ""}`,
    pass: failures <= TARGETS.pathFailures,
  };
}

export function observeCheck(observe: ObserveResult | undefined): TargetCheck {
  const name = "metrics and status page cost, nobody watching";
  const target = `server CPU per lookup on ÷ off ≤ ${TARGETS.observeCpuRatio}`;
  if (!observe || observe.cpuRatio === undefined) return { name, target, measured: "not run", pass: undefined };
  const throughput = observe.throughputRatio === undefined ? "" : `, throughput ${observe.throughputRatio.toFixed(3)}×`;
  return {
    name,
    target,
    measured: `${observe.cpuRatio.toFixed(3)}× at C=${observe.concurrency}${throughput}`,
    pass: observe.cpuRatio <= TARGETS.observeCpuRatio,
  };
}

/** The median of some figures; undefined for none. */
export function median(values: number[]): number | undefined {
  if (values.length === 0) return undefined;
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 === 1 ? sorted[mid] : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

/** Issue 13: a batch's wall time (median of the runs) against curl's, cache warm and cold. */
export function bulkChecks(bulk: BulkResult | undefined): TargetCheck[] {
  const curl = median(bulk?.curlMs ?? []);
  const check = (which: "warm" | "cold", limit: number): TargetCheck => {
    const name = `${bulk?.urls ?? 10_000}-URL batch, cache ${which}, vs curl --parallel`;
    const target = `≤ ${limit} × curl`;
    if (!bulk || bulk.missing)
      return { name, target, measured: bulk?.missing ? `${bulk.missing} missing` : "not run", pass: undefined };
    const share = ratio(median(which === "warm" ? bulk.warmMs : bulk.coldMs), curl);
    return {
      name,
      target,
      measured: share === undefined ? "n/a" : `${fixed(share)} ×`,
      pass: share === undefined ? undefined : share <= limit,
    };
  };
  return [check("warm", TARGETS.bulkWarmOverCurl), check("cold", TARGETS.bulkColdOverCurl)];
}

function cpuPerLookup(row: ThroughputRow | undefined): number | undefined {
  return row?.serverCores === undefined || row.result.lookupsPerSecond === 0
    ? undefined
    : row.serverCores / row.result.lookupsPerSecond;
}

/** Issue 15: headwire's server CPU per cached lookup against the floor's, in the same run. */
export function cpuFloorCheck(rows: ThroughputRow[] | undefined, concurrency: number): TargetCheck {
  const hw = rowAt(rows, concurrency, "headwire");
  const fl = rowAt(rows, concurrency, "floor");
  const share = ratio(cpuPerLookup(hw), cpuPerLookup(fl));
  return {
    name: `server CPU per cached lookup at C=${concurrency}`,
    target: `≤ ${fixed(TARGETS.cpuPerLookupOverFloor)} × floor`,
    measured:
      share === undefined
        ? "not run"
        : `${fixed(share)} × floor (${fixed(cpuPerLookup(hw)! * 1e6, 1)} vs ${fixed(cpuPerLookup(fl)! * 1e6, 1)} µs)`,
    pass: share === undefined ? undefined : share <= TARGETS.cpuPerLookupOverFloor,
  };
}

/**
 * Issue 15: headwire's throughput against the seed's design at every C measured on the side
 * asked for (below SEED_STALL_CONCURRENCY, or from it on), the worst ratio shown; headwire must
 * also hand no header to the wrong client.
 */
export function seedCheck(rows: ThroughputRow[] | undefined, stalling: boolean): TargetCheck {
  const limit = stalling ? TARGETS.throughputOverSeedFromC300 : TARGETS.throughputOverSeed;
  const name = `throughput vs the seed's design, C ${stalling ? "≥" : "<"} ${SEED_STALL_CONCURRENCY}`;
  const target = `≥ ${fixed(limit)} × seed at each C, 0 wrong deliveries`;
  const pairs = (rows ?? [])
    .filter((r) => r.server === "seed" && r.concurrency >= SEED_STALL_CONCURRENCY === stalling)
    .map((seed) => ({ seed, hw: rowAt(rows, seed.concurrency, "headwire") }))
    .filter((pair): pair is { seed: ThroughputRow; hw: ThroughputRow } => pair.hw !== undefined);
  if (pairs.length === 0) return { name, target, measured: "not run", pass: undefined };
  const shares = pairs.map(({ seed, hw }) => ({
    c: seed.concurrency,
    share: seed.result.lookupsPerSecond === 0 ? Infinity : hw.result.lookupsPerSecond / seed.result.lookupsPerSecond,
    wrong: hw.result.wrongDeliveries,
    seedWrong: seed.result.wrongDeliveries,
  }));
  const worst = shares.reduce((a, b) => (b.share < a.share ? b : a));
  const wrong = shares.reduce((sum, s) => sum + s.wrong, 0);
  const seedWrong = shares.reduce((sum, s) => sum + s.seedWrong, 0);
  return {
    name,
    target,
    measured:
      shares.map((s) => `${Number.isFinite(s.share) ? fixed(s.share) : "∞"} × at C=${s.c}`).join(", ") +
      `; wrong deliveries: headwire ${wrong}, seed ${seedWrong}`,
    pass: worst.share >= limit && wrong === 0,
  };
}

/** Issue 15: what one lookup costs in CPU, all processes summed, stays flat from 1 worker to 2. */
export function workersCheck(rows: WorkersRow[] | undefined): TargetCheck {
  const one = rows?.find((r) => r.workers === 1)?.lookupsPerCpuSecond;
  const two = rows?.find((r) => r.workers === 2)?.lookupsPerCpuSecond;
  const share = ratio(two, one);
  return {
    name: "per-worker cost, 1 → 2 workers",
    target: `lookups per CPU-second with 2 ≥ ${fixed(TARGETS.workersCpuEfficiency)} × with 1`,
    measured: share === undefined ? "not run" : `${fixed(share)} × (${Math.round(two!)} vs ${Math.round(one!)})`,
    pass: share === undefined ? undefined : share >= TARGETS.workersCpuEfficiency,
  };
}

/** Every target, in the report's order. */
export function targetChecks(results: PhaseResults): TargetCheck[] {
  return [
    throughputCheck(results.throughput),
    tailCheck(results.throughput),
    idleCheck(results.idle),
    ...coldChecks(results.cold),
    soakCheck(results.soak),
    ...attackChecks(results.attacks),
    pathCheck(results.paths),
    observeCheck(results.observe),
    ...bulkChecks(results.bulk),
    cpuFloorCheck(results.throughput, 10),
    cpuFloorCheck(results.throughput, 100),
    seedCheck(results.throughput, false),
    seedCheck(results.throughput, true),
    workersCheck(results.workers),
  ];
}
