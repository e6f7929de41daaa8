import { test } from "node:test";
import assert from "node:assert/strict";
import { slope, trend } from "../../bench/trend.js";

test("slope: least squares over the points, 0 when there is nothing to fit", () => {
  assert.equal(slope([]), 0);
  assert.equal(slope([{ x: 1, y: 5 }]), 0);
  assert.equal(
    slope([
      { x: 2, y: 1 },
      { x: 2, y: 9 },
    ]),
    0,
    "all at one x: no slope",
  );
  assert.equal(slope([0, 1, 2, 3].map((x) => ({ x, y: 3 * x + 1 }))), 3);
});

test("trend: the first quarter is warm-up; growth is what the slope adds over the window, over the mean", () => {
  // A spike during warm-up, then a steady climb of 10 units a minute from 100.
  const series = [
    { atSeconds: 0, value: 1e6 },
    ...[60, 120, 180].map((atSeconds, i) => ({ atSeconds, value: 100 + 10 * i })),
  ];
  const verdict = trend(series);
  assert.equal(verdict.samples, 3);
  assert.equal(verdict.slopePerMinute, 10);
  assert.equal(verdict.mean, 110);
  assert.equal(verdict.relativeGrowth, 20 / 110);
});

test("trend: a flat or empty series shows no growth", () => {
  assert.deepEqual(trend([]), { samples: 0, slopePerMinute: 0, relativeGrowth: 0, mean: 0 });
  const flat = trend([0, 5, 10, 15, 20].map((atSeconds) => ({ atSeconds, value: 7 })));
  assert.equal(flat.relativeGrowth, 0);
  assert.equal(flat.mean, 7);
});
