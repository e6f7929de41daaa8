import { test } from "node:test";
import assert from "node:assert/strict";
import type { ColdSummary } from "../../bench/cold-path.js";
import type { RunResult } from "../../bench/load-generator.js";
import type {
  BulkResult,
  AttackKind,
  AttackRow,
  ColdPhaseResult,
  IdleResult,
  ServerKind,
  SoakResult,
  ThroughputRow,
} from "../../bench/results.js";
import {
  attackCheck,
  attackChecks,
  cpuFloorCheck,
  seedCheck,
  workersCheck,
  bulkChecks,
  coldChecks,
  idleCheck,
  observeCheck,
  median,
  pathCheck,
  ratio,
  soakCheck,
  tailCheck,
  targetChecks,
  throughputCheck,
} from "../../bench/targets.js";
import { observeResult } from "../../bench/phases/observe.js";
import type { TrendVerdict } from "../../bench/trend.js";

function row(concurrency: number, server: ServerKind, lookupsPerSecond: number, p50Ms = 1, p99Ms = 2): ThroughputRow {
  const result: RunResult = {
    lookups: lookupsPerSecond,
    wrongDeliveries: 0,
    stalledSessions: 0,
    errors: 0,
    errorKinds: {},
    retransmits: 0,
    seconds: 1,
    lookupsPerSecond,
    latency: { count: lookupsPerSecond, p50Ms, p90Ms: p99Ms, p99Ms, maxMs: p99Ms, meanMs: p50Ms },
    generatorCores: 0.5,
    connectMs: 1,
  };
  return { concurrency, server, result, serverCores: 0.5, otherCores: 0, serverPeakRssKiB: 80_000 };
}

function idle(server: ServerKind, perSessionKiB: number, opened = 10_000, sessions = 10_000): IdleResult {
  return { server, sessions, opened, openMs: 900, rssBeforeKiB: 60_000, rssAfterKiB: 100_000, perSessionKiB };
}

function summary(p50Ms: number): ColdSummary {
  return { samples: 100, p50Ms, p99Ms: p50Ms * 3, meanMs: p50Ms, failures: 0 };
}

function cold(
  headwireMs: number,
  nodeMs: number,
  extra: { curlMs?: number; remote?: [number, number] } = {},
): ColdPhaseResult {
  return {
    headwire: summary(headwireMs),
    nodeHttp: summary(nodeMs),
    ...(extra.curlMs === undefined ? {} : { curl: summary(extra.curlMs) }),
    warmupSamples: 5,
    ...(extra.remote
      ? { remote: { delayMs: 20, headwire: summary(extra.remote[0]), nodeHttp: summary(extra.remote[1]) } }
      : {}),
    curlMissing: extra.curlMs === undefined,
  };
}

function soak(relativeGrowth: number): SoakResult {
  const flat: TrendVerdict = { samples: 9, slopePerMinute: 0, relativeGrowth: 0, mean: 1 };
  return {
    seconds: 180,
    sessions: 100,
    churnRatio: 0.02,
    result: row(100, "headwire", 10_000).result,
    samples: [],
    rssTrend: { samples: 27, slopePerMinute: 12.5, relativeGrowth, mean: 102_400 },
    heapTrend: flat,
    eventLoopDelayTrend: flat,
    throughputTrend: flat,
    originFetches: 300,
  };
}

test("ratio: a ÷ b, and undefined when either side is missing or the divisor is 0", () => {
  assert.equal(ratio(3, 4), 0.75);
  assert.equal(ratio(0, 4), 0);
  assert.equal(ratio(undefined, 4), undefined);
  assert.equal(ratio(3, undefined), undefined);
  assert.equal(ratio(3, 0), undefined);
});

test("with no phase run every target is a SKIP, never a pass, in the report's order", () => {
  const checks = targetChecks({});
  assert.deepEqual(
    checks.map((c) => [c.name, c.target, c.measured, c.pass]),
    [
      ["cached throughput at C=100", "≥ 0.70 × floor", "not run", undefined],
      ["tail latency at C=1000", "p99 ≤ 5 × p50", "not run", undefined],
      ["idle sessions (10000)", "RSS ≤ 10 KiB per session", "not run", undefined],
      ["cold path vs bare Node request", "p50 ≤ 1.2 × direct", "not run", undefined],
      ["cold path vs bare Node request, origin 20 ms away", "p50 ≤ 1.2 × direct", "not run", undefined],
      ["cold path vs curl (process start-up included)", "p50 ≤ 1.2 × direct", "not run", undefined],
      ["soak: no RSS growth trend", "< 5% growth over the window", "not run", undefined],
      ["probe under attack: newline-flood", "p99 ≤ 10 × no attack (or ≤ 100 ms), no failure", "not run", undefined],
      ["probe under attack: ping-flood", "p99 ≤ 10 × no attack (or ≤ 100 ms), no failure", "not run", undefined],
      ["probe under attack: session-hog", "p99 ≤ 10 × no attack (or ≤ 100 ms), no failure", "not run", undefined],
      ["probe under attack: udp-garbage", "p99 ≤ 10 × no attack (or ≤ 100 ms), no failure", "not run", undefined],
      ["probe under attack: query-flood", "p99 ≤ 10 × no attack (or ≤ 100 ms), no failure", "not run", undefined],
      ["every header arrives over emulated paths", "0 failed, RTT ≤ 1 s, loss ≤ 30 %", "not run", undefined],
      ["metrics and status page cost, nobody watching", "server CPU per lookup on ÷ off ≤ 1.05", "not run", undefined],
      ["10000-URL batch, cache warm, vs curl --parallel", "≤ 1.5 × curl", "not run", undefined],
      ["10000-URL batch, cache cold, vs curl --parallel", "≤ 2 × curl", "not run", undefined],
      ["server CPU per cached lookup at C=10", "≤ 1.25 × floor", "not run", undefined],
      ["server CPU per cached lookup at C=100", "≤ 1.25 × floor", "not run", undefined],
      ["throughput vs the seed's design, C < 300", "≥ 1.00 × seed at each C, 0 wrong deliveries", "not run", undefined],
      ["throughput vs the seed's design, C ≥ 300", "≥ 1.50 × seed at each C, 0 wrong deliveries", "not run", undefined],
      ["per-worker cost, 1 → 2 workers", "lookups per CPU-second with 2 ≥ 0.80 × with 1", "not run", undefined],
    ],
  );
});

test("paths: one failed header anywhere is a MISS, named; none is a PASS", () => {
  const path = (oneWayMs: number, loss: number, chunks: number, failures: number) => ({
    oneWayMs,
    loss,
    chunks,
    samples: 4,
    failures,
    medianMs: 100,
    idealMs: 2 * oneWayMs,
    bytesSentPerByte: 1.1,
  });
  assert.deepEqual(pathCheck([path(50, 0, 1, 0), path(500, 0, 226, 0)]), {
    name: "every header arrives over emulated paths",
    target: "0 failed, RTT ≤ 1 s, loss ≤ 30 %",
    measured: "0/8 failed",
    pass: true,
  });
  const missed = pathCheck([path(50, 0, 1, 0), path(300, 0.3, 226, 2)]);
  assert.equal(missed.pass, false);
  assert.equal(missed.measured, "2/8 failed (226 chunks at 300 ms/30 %)");
  assert.equal(pathCheck([]).pass, undefined);
  const bottleneck = { ...path(50, 0, 226, 1), bytesPerSecond: 250_000 };
  assert.equal(pathCheck([bottleneck]).measured, "1/4 failed (226 chunks at 50 ms/0 %/250 kB/s)");
});

test("throughput at C=100: 0.70 × the floor passes, just under misses", () => {
  const at = (headwire: number) => throughputCheck([row(100, "floor", 1000), row(100, "headwire", headwire)]);
  assert.deepEqual(at(700), {
    name: "cached throughput at C=100",
    target: "≥ 0.70 × floor",
    measured: "0.70 × floor",
    pass: true,
  });
  assert.equal(at(699).pass, false);
  assert.equal(at(699).measured, "0.70 × floor", "the figure is rounded, the verdict is not");
  assert.equal(at(1500).pass, true);
});

test("throughput: only C=100 counts, and a missing or zero floor is a SKIP", () => {
  const other = [row(10, "floor", 1000), row(10, "headwire", 100), row(1000, "headwire", 10)];
  assert.equal(throughputCheck(other).pass, undefined);
  assert.equal(throughputCheck(other).measured, "not run");
  assert.equal(throughputCheck([row(100, "headwire", 900)]).pass, undefined, "headwire without the floor");
  assert.equal(throughputCheck([row(100, "floor", 900)]).pass, undefined, "the floor without headwire");
  assert.equal(throughputCheck([row(100, "floor", 0), row(100, "headwire", 900)]).pass, undefined);
  assert.equal(throughputCheck([...other, row(100, "floor", 1000), row(100, "headwire", 800)]).pass, true);
});

test("tail at C=1000: p99 up to 5 × p50 passes, over it misses; headwire's own ratio, not the floor's", () => {
  const at = (p50Ms: number, p99Ms: number) =>
    tailCheck([row(1000, "floor", 1, 1, 100), row(1000, "headwire", 1, p50Ms, p99Ms)]);
  assert.deepEqual(at(2, 10), {
    name: "tail latency at C=1000",
    target: "p99 ≤ 5 × p50",
    measured: "p99 10.00 ms = 5.00 × p50 2.00 ms",
    pass: true,
  });
  assert.equal(at(2, 10.01).pass, false);
  assert.equal(at(0, 3).pass, undefined, "a p50 of 0 gives no ratio");
  assert.equal(tailCheck([row(100, "headwire", 1, 1, 100)]).pass, undefined, "C=1000 not run");
});

test("idle: headwire's RSS per session up to 10 KiB passes only if every session was opened", () => {
  assert.deepEqual(idleCheck([idle("floor", 50), idle("headwire", 10)]), {
    name: "idle sessions (10000)",
    target: "RSS ≤ 10 KiB per session",
    measured: "10.00 KiB/session (10000 open)",
    pass: true,
  });
  assert.equal(idleCheck([idle("headwire", 10.01)]).pass, false);
  assert.equal(idleCheck([idle("headwire", 2, 9_999)]).pass, false, "a refused session is a miss, however small");
  assert.equal(idleCheck([idle("headwire", 2, 500, 500)]).name, "idle sessions (500)");
  assert.equal(idleCheck([idle("floor", 2)]).pass, undefined, "the floor's figure does not count");
  assert.equal(idleCheck(undefined).measured, "not run");
});

test("idle: an RSS that could not be read is a miss, shown as n/a", () => {
  const check = idleCheck([idle("headwire", NaN)]);
  assert.equal(check.measured, "n/a KiB/session (10000 open)");
  assert.equal(check.pass, false);
});

test("cold: each comparison passes up to 1.2 × the direct fetch's p50", () => {
  const [node, remote, curl] = coldChecks(cold(1.2, 1, { curlMs: 10, remote: [25, 20] }));
  assert.deepEqual(node, {
    name: "cold path vs bare Node request",
    target: "p50 ≤ 1.2 × direct",
    measured: "1.20 ×",
    pass: true,
  });
  assert.deepEqual([remote!.measured, remote!.pass], ["1.25 ×", false]);
  assert.deepEqual([curl!.measured, curl!.pass], ["0.12 ×", true]);
  assert.equal(coldChecks(cold(1.21, 1))[0]!.pass, false);
});

test("cold: curl not installed is its own SKIP, and a run without the remote pair skips that one", () => {
  const [node, remote, curl] = coldChecks(cold(1, 1));
  assert.equal(node!.pass, true);
  assert.deepEqual([remote!.measured, remote!.pass], ["not run", undefined]);
  assert.deepEqual([curl!.measured, curl!.pass], ["curl missing", undefined]);
  assert.deepEqual(
    coldChecks(undefined).map((c) => [c.measured, c.pass]),
    [
      ["not run", undefined],
      ["not run", undefined],
      ["not run", undefined],
    ],
  );
});

test("soak: RSS growth below 5% of the mean passes, 5% misses", () => {
  assert.deepEqual(soakCheck(soak(0.0499)), {
    name: "soak: no RSS growth trend",
    target: "< 5% growth over the window",
    measured: "12.50 KiB/min, 4.99% of 100.0 MiB",
    pass: true,
  });
  assert.equal(soakCheck(soak(0.05)).pass, false);
  assert.equal(soakCheck(soak(-0.2)).pass, true, "shrinking is no leak");
  assert.equal(soakCheck(undefined).pass, undefined);
});

test("targetChecks puts each phase's results in its own check", () => {
  const checks = targetChecks({
    throughput: [row(100, "floor", 1000), row(100, "headwire", 800), row(1000, "headwire", 500, 1, 9)],
    idle: [idle("headwire", 4)],
    cold: cold(3, 1, { curlMs: 10, remote: [21, 20] }),
    soak: soak(0.01),
  });
  assert.deepEqual(
    checks.map((c) => c.pass),
    [
      true,
      false,
      true,
      false,
      true,
      true,
      true,
      undefined,
      undefined,
      undefined,
      undefined,
      undefined,
      undefined,
      undefined,
      undefined,
      undefined,
      // CPU per lookup at C=10 (no rows), at C=100 (0.5 cores for 800 ÷ 0.5 for 1000: 1.25 ×), seed, workers
      undefined,
      true,
      undefined,
      undefined,
      undefined,
    ],
  );
});

test("CPU per lookup ÷ floor: up to 1.25 × passes, over it misses, a C not run is a SKIP", () => {
  const rows = [row(10, "floor", 1000), row(10, "headwire", 799), row(100, "floor", 1000), row(100, "headwire", 800)];
  assert.equal(cpuFloorCheck(rows, 10).pass, false);
  assert.equal(cpuFloorCheck(rows, 100).pass, true);
  assert.match(cpuFloorCheck(rows, 100).measured, /^1\.25 × floor \(625\.0 vs 500\.0 µs\)$/);
  assert.equal(cpuFloorCheck(rows, 1000).pass, undefined);
});

test("seed: ≥ 1 × below C=300 and ≥ 1.5 × from it, at every C; a wrong delivery by headwire misses", () => {
  const rows = [
    row(1, "seed", 1000),
    row(1, "headwire", 1000),
    row(10, "seed", 1000),
    row(10, "headwire", 1200),
    row(300, "seed", 1000),
    row(300, "headwire", 1500),
    row(1000, "seed", 1000),
    row(1000, "headwire", 1400),
  ];
  assert.equal(seedCheck(rows, false).pass, true);
  assert.equal(seedCheck(rows, true).pass, false);
  assert.match(seedCheck(rows, true).measured, /1\.50 × at C=300, 1\.40 × at C=1000/);
  rows[1]!.result.wrongDeliveries = 1;
  assert.equal(seedCheck(rows, false).pass, false);
  assert.equal(seedCheck([row(1, "headwire", 1)], false).pass, undefined);
});

test("workers: 2 workers' lookups per CPU-second at 0.8 × 1 worker's passes, under it misses", () => {
  const workers = (one: number, two: number) =>
    [1, 2].map((n) => ({
      workers: n,
      processes: n === 1 ? 1 : 3,
      concurrency: 100,
      result: row(100, "headwire", 1000).result,
      cpuSeconds: 1,
      lookupsPerCpuSecond: n === 1 ? one : two,
    }));
  assert.equal(workersCheck(workers(10_000, 8_000)).pass, true);
  assert.equal(workersCheck(workers(10_000, 7_999)).pass, false);
  assert.equal(workersCheck(undefined).pass, undefined);
});

function attackRow(
  attack: AttackKind,
  greetingP99Ms: number,
  lookupP99Ms: number,
  extra: { failures?: number; alive?: boolean } = {},
): AttackRow {
  const failures = extra.failures ?? 0;
  return {
    attack,
    seconds: 10,
    greeting: { samples: 800, p50Ms: 0.7, p99Ms: greetingP99Ms, meanMs: 1, failures },
    lookup: { samples: 800, p50Ms: 0.8, p99Ms: lookupP99Ms, meanMs: 1, failures: 0 },
    lookupsResent: 0,
    failureKinds: {},
    serverAlive: extra.alive ?? true,
    serverCores: 0.5,
    serverRssBeforeKiB: 60_000,
    serverRssAfterKiB: 80_000,
    serverPeakRssKiB: 90_000,
    serverLogLines: 2,
    achieved: {},
  };
}

test("attack: each p99 up to 10 × the same probe's with no attack passes, over it misses", () => {
  const none = attackRow("none", 40, 50);
  assert.deepEqual(attackCheck("newline-flood", attackRow("newline-flood", 400, 500), none), {
    name: "probe under attack: newline-flood",
    target: "p99 ≤ 10 × no attack (or ≤ 100 ms), no failure",
    measured: "greeting+PING 10.00 × (400.0 ms), lookup 10.00 × (500.0 ms)",
    pass: true,
  });
  assert.equal(attackCheck("newline-flood", attackRow("newline-flood", 400.1, 50), none).pass, false, "greeting");
  assert.equal(attackCheck("udp-garbage", attackRow("udp-garbage", 40, 500.1), none).pass, false, "lookup");
  assert.equal(attackCheck("ping-flood", attackRow("ping-flood", 1, 1), none).pass, true, "faster is fine");
});

test("attack: under a fast baseline, a p99 up to 100 ms passes whatever the ratio", () => {
  const none = attackRow("none", 2, 3);
  const slow = attackCheck("session-hog", attackRow("session-hog", 100, 100), none);
  assert.deepEqual([slow.measured, slow.pass], ["greeting+PING 50.00 × (100.0 ms), lookup 33.33 × (100.0 ms)", true]);
  assert.equal(attackCheck("session-hog", attackRow("session-hog", 100.1, 3), none).pass, false, "greeting");
  assert.equal(attackCheck("udp-garbage", attackRow("udp-garbage", 2, 250), none).pass, false, "lookup");
});

test("attack: a failed probe or a dead server misses whatever the latency", () => {
  const none = attackRow("none", 4, 5);
  const failed = attackCheck("session-hog", attackRow("session-hog", 4, 5, { failures: 3 }), none);
  assert.deepEqual(
    [failed.measured, failed.pass],
    ["greeting+PING 1.00 × (4.0 ms), lookup 1.00 × (5.0 ms), 3 failed", false],
  );
  const dead = attackCheck("udp-garbage", attackRow("udp-garbage", 4, 5, { alive: false }), none);
  assert.deepEqual(
    [dead.measured, dead.pass],
    ["greeting+PING 1.00 × (4.0 ms), lookup 1.00 × (5.0 ms), SERVER DIED", false],
  );
});

test("attack: without the baseline, or with a baseline p99 of 0, every attack is a SKIP", () => {
  const rows = [attackRow("newline-flood", 4, 5), attackRow("query-flood", 4, 5)];
  assert.deepEqual(
    attackChecks(rows).map((c) => c.pass),
    [undefined, undefined, undefined, undefined, undefined],
  );
  const zero = attackChecks([attackRow("none", 0, 5), ...rows]);
  assert.deepEqual(
    zero.map((c) => c.pass),
    [undefined, undefined, undefined, undefined, undefined],
  );
});

test("attackChecks: one check per attack, in order; an attack that did not run is a SKIP", () => {
  const checks = attackChecks([
    attackRow("none", 4, 25),
    attackRow("newline-flood", 28, 14),
    attackRow("ping-flood", 5, 5),
    attackRow("udp-garbage", 53, 250.1),
  ]);
  assert.deepEqual(
    checks.map((c) => [c.name, c.pass]),
    [
      ["probe under attack: newline-flood", true],
      ["probe under attack: ping-flood", true],
      ["probe under attack: session-hog", undefined],
      ["probe under attack: udp-garbage", false],
      ["probe under attack: query-flood", undefined],
    ],
  );
});

test("observe: the ratios are of the medians, on ÷ off; over 1.05 × the CPU per lookup misses", () => {
  const runs = [
    { admin: "off" as const, lookupsPerSecond: 20_000, serverUsPerLookup: 50 },
    { admin: "on" as const, lookupsPerSecond: 19_400, serverUsPerLookup: 51.5 },
    { admin: "on" as const, lookupsPerSecond: 19_800, serverUsPerLookup: 50.5 },
    { admin: "off" as const, lookupsPerSecond: 20_400, serverUsPerLookup: 49 },
    { admin: "off" as const, lookupsPerSecond: 10_000, serverUsPerLookup: undefined },
    { admin: "on" as const, lookupsPerSecond: 30_000, serverUsPerLookup: 52 },
  ];
  const result = observeResult(100, runs);
  assert.equal(result.throughputRatio, 19_800 / 20_000);
  assert.equal(result.cpuRatio, 51.5 / 49.5);
  assert.deepEqual(observeCheck(result), {
    name: "metrics and status page cost, nobody watching",
    target: "server CPU per lookup on ÷ off ≤ 1.05",
    measured: "1.040× at C=100, throughput 0.990×",
    pass: true,
  });
  const costly = observeResult(100, [runs[0]!, { admin: "on", lookupsPerSecond: 19_900, serverUsPerLookup: 52.6 }]);
  assert.equal(observeCheck(costly).pass, false);
  assert.equal(observeCheck(undefined).pass, undefined);
});

const bulk = (curlMs: number[], warmMs: number[], coldMs: number[]): BulkResult => ({
  urls: 10_000,
  runs: curlMs.length,
  parallel: 64,
  curlMs,
  warmMs,
  coldMs,
});

test("bulk: the medians' ratios to curl, warm up to 1.5 × and cold up to 2 ×", () => {
  // Medians: curl 1000, warm 1500 (exactly at the limit), cold 2100 (past it).
  const [warm, cold] = bulkChecks(bulk([900, 1000, 5000], [1500, 1400, 9000], [2100, 2000, 2200]));
  assert.deepEqual(warm, {
    name: "10000-URL batch, cache warm, vs curl --parallel",
    target: "≤ 1.5 × curl",
    measured: "1.50 ×",
    pass: true,
  });
  assert.deepEqual([cold!.measured, cold!.pass], ["2.10 ×", false]);
  const [warm2] = bulkChecks(bulk([1000, 1000], [1400, 1700], [1000, 1000]));
  // An even count: the mean of the middle two (1550 ms).
  assert.deepEqual([warm2!.measured, warm2!.pass], ["1.55 ×", false]);
});

test("bulk: a phase not run, or without nginx or curl, is a SKIP", () => {
  assert.deepEqual(
    bulkChecks(undefined).map((c) => [c.measured, c.pass]),
    [
      ["not run", undefined],
      ["not run", undefined],
    ],
  );
  const skipped = { ...bulk([], [], []), missing: "nginx" };
  assert.deepEqual(bulkChecks(skipped)[1], {
    name: "10000-URL batch, cache cold, vs curl --parallel",
    target: "≤ 2 × curl",
    measured: "nginx missing",
    pass: undefined,
  });
});

test("median: odd and even counts, none", () => {
  assert.equal(median([3, 1, 2]), 2);
  assert.equal(median([4, 1, 3, 2]), 2.5);
  assert.equal(median([]), undefined);
});
