import { test } from "node:test";
import assert from "node:assert/strict";
import { RttEstimator } from "../../src/client/rtt-estimator.js";

const OPTIONS = { initialRtoMs: 1000, minRtoMs: 20, maxRtoMs: 8000 };

test("before any sample the RTO is the initial one (RFC 6298 §2.1) and backs off by doubling, capped", () => {
  const rtt = new RttEstimator(OPTIONS);
  assert.equal(rtt.rtoMs, 1000);
  assert.equal(rtt.srttMs, undefined);
  rtt.backOff();
  assert.equal(rtt.rtoMs, 2000);
  rtt.backOff();
  rtt.backOff();
  rtt.backOff();
  assert.equal(rtt.rtoMs, 8000);
});

test("the first sample sets SRTT = R, RTTVAR = R/2, RTO = SRTT + 4 RTTVAR (§2.2)", () => {
  const rtt = new RttEstimator(OPTIONS);
  rtt.sample(1200);
  assert.equal(rtt.srttMs, 1200);
  assert.equal(rtt.rttvarMs, 600);
  assert.equal(rtt.rtoMs, 1200 + 4 * 600);
});

test("later samples follow §2.3 (alpha 1/8, beta 1/4), and a sample ends the back-off (§5.7)", () => {
  const rtt = new RttEstimator(OPTIONS);
  rtt.sample(600);
  rtt.backOff();
  rtt.backOff();
  assert.equal(rtt.rtoMs, 4 * (600 + 4 * 300));
  rtt.sample(700);
  assert.equal(rtt.rttvarMs, 0.75 * 300 + 0.25 * 100);
  assert.equal(rtt.srttMs, 0.875 * 600 + 0.125 * 700);
  assert.equal(rtt.rtoMs, rtt.srttMs! + 4 * rtt.rttvarMs);
  assert.equal(rtt.minRttMs, 600);
});

test("the RTO stays within its bounds", () => {
  const rtt = new RttEstimator(OPTIONS);
  rtt.sample(0.1);
  assert.equal(rtt.rtoMs, 20);
  rtt.sample(30_000);
  assert.equal(rtt.rtoMs, 8000);
});
