import assert from "node:assert/strict";
import { test } from "node:test";
import { BatchTally } from "../../src/cli/batch-tally.js";
import type { QueryResult } from "../../src/client/headwire-client.js";

const ok = (ms: number, cache: "HIT" | "MISS" = "MISS"): QueryResult => ({
  url: "u",
  ms,
  cache,
  status: 200,
  bytes: 1,
});
const failed = (code: "DNS_NOT_FOUND" | "CONNECTION_REFUSED"): QueryResult => ({
  url: "u",
  ms: 1,
  error: { code, message: "m" },
});

test("summary line: counts, failures by code (most frequent first), cache outcomes, percentiles", () => {
  const tally = new BatchTally();
  for (let ms = 1; ms <= 100; ms++) tally.record(ok(ms, ms <= 90 ? "HIT" : "MISS"));
  tally.record(failed("CONNECTION_REFUSED"));
  tally.record(failed("DNS_NOT_FOUND"));
  tally.record(failed("DNS_NOT_FOUND"));
  assert.equal(tally.queries, 103);
  assert.equal(tally.failed, 3);
  assert.equal(
    tally.summaryLine(4150),
    "103 queries: 100 succeeded, 3 failed (DNS_NOT_FOUND 2, CONNECTION_REFUSED 1) | HIT 90 MISS 10 | p50 50 ms p95 95 ms | 4.2 s",
  );
});

test("nearest-rank percentiles over repeated values; none without successes", () => {
  const tally = new BatchTally();
  assert.equal(tally.latencyPercentile(50), undefined);
  assert.match(tally.summaryLine(0), /^0 queries: 0 succeeded, 0 failed \| HIT 0 MISS 0 \| p50 - p95 - \| 0\.0 s$/);
  for (const ms of [3, 3, 3, 3, 3, 3, 3, 3, 3, 40]) tally.record(ok(ms));
  assert.equal(tally.latencyPercentile(50), 3);
  assert.equal(tally.latencyPercentile(90), 3);
  assert.equal(tally.latencyPercentile(95), 40);
  assert.equal(tally.latencyPercentile(100), 40);
});

test("STALE and REVALIDATED appear only when they occurred", () => {
  const tally = new BatchTally();
  tally.record({ url: "u", ms: 1, cache: "STALE", status: 200, bytes: 1 });
  assert.match(tally.summaryLine(10), /\| HIT 0 MISS 0 STALE 1 \|/);
});
