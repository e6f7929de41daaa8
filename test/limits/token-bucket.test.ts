import assert from "node:assert/strict";
import { test } from "node:test";
import fc from "fast-check";
import { KeyedTokenBuckets, TokenBucket } from "../../src/limits/token-bucket.js";

test("a bucket gives its burst at once, then tokens at its rate, never more than the burst", () => {
  let now = 0;
  const bucket = new TokenBucket(10, 3, () => now);
  assert.deepEqual([bucket.take(), bucket.take(), bucket.take(), bucket.take()], [true, true, true, false]);
  assert.equal(bucket.msUntilToken(), 100);
  now += 100;
  assert.equal(bucket.take(), true);
  assert.equal(bucket.take(), false);
  now += 60_000; // a long pause refills to the burst, not beyond
  assert.equal(bucket.full, true);
  assert.deepEqual([bucket.take(), bucket.take(), bucket.take(), bucket.take()], [true, true, true, false]);
});

test("a rate of 0: the burst is all there is; as a keyed limit, 0 means no limit", () => {
  let now = 0;
  const bucket = new TokenBucket(0, 2, () => now);
  assert.deepEqual([bucket.take(), bucket.take(), bucket.take()], [true, true, false]);
  now += 1e9;
  assert.equal(bucket.take(), false);
  assert.equal(bucket.msUntilToken(), Infinity);
  const unlimited = new KeyedTokenBuckets(0, 1, () => now);
  for (let i = 0; i < 100; i++) assert.equal(unlimited.take("a"), true);
  assert.equal(unlimited.size, 0, "nothing is remembered for an unlimited key");
});

test("over any schedule, tokens taken never exceed burst + rate × elapsed time", () => {
  fc.assert(
    fc.property(
      fc.integer({ min: 1, max: 1000 }),
      fc.integer({ min: 1, max: 100 }),
      fc.array(fc.integer({ min: 0, max: 500 }), { maxLength: 200 }),
      (perSecond, burst, steps) => {
        let now = 0;
        const bucket = new TokenBucket(perSecond, burst, () => now);
        let taken = 0;
        for (const step of steps) {
          now += step;
          if (bucket.take()) taken++;
          assert.ok(taken <= burst + Math.floor((perSecond * now) / 1000) + 1e-9);
        }
      },
    ),
  );
});

test("keyed buckets are independent, and refilled ones are forgotten", () => {
  let now = 0;
  const buckets = new KeyedTokenBuckets(1, 1, () => now);
  assert.equal(buckets.take("a"), true);
  assert.equal(buckets.take("a"), false);
  assert.equal(buckets.take("b"), true);
  assert.equal(buckets.size, 2);
  now += 5000;
  assert.equal(buckets.take("c"), true); // the sweep runs at most once a second, on a take
  assert.equal(buckets.size, 1, "a and b had refilled: only c is left");
});
