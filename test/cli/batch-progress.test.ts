import assert from "node:assert/strict";
import { PassThrough } from "node:stream";
import { test } from "node:test";
import { createProgress, PLAIN_INTERVAL_MS } from "../../src/cli/batch-progress.js";
import { BatchTally } from "../../src/cli/batch-tally.js";

function lines(stream: PassThrough): string[] {
  const text = (stream.read() as Buffer | null)?.toString() ?? "";
  return text
    .split("\n")
    .filter(Boolean)
    .map((line) => line.replace(/ \| [\d.]+ s$/, ""));
}

function tallyOf(queries: number): BatchTally {
  const tally = new BatchTally();
  for (let i = 0; i < queries; i++) tally.record({ url: "u", ms: 1, cache: "HIT", status: 200, bytes: 1 });
  return tally;
}

test("plain progress: a line at each tenth, a timed line only when the count has moved since the last line", (t) => {
  t.mock.timers.enable({ apis: ["setInterval"] });
  const stream = new PassThrough();
  const progress = createProgress({ stream, total: 100, enabled: true });

  progress.update(tallyOf(10));
  assert.deepEqual(lines(stream), ["progress: 10/100 (10%) | 0 failed"]);

  // Stalled at exactly a tenth (a slow machine): the timer must not print that tenth's line again.
  t.mock.timers.tick(PLAIN_INTERVAL_MS);
  assert.deepEqual(lines(stream), []);

  progress.update(tallyOf(15));
  t.mock.timers.tick(PLAIN_INTERVAL_MS);
  assert.deepEqual(lines(stream), ["progress: 15/100 (15%) | 0 failed"]);
  t.mock.timers.tick(PLAIN_INTERVAL_MS);
  assert.deepEqual(lines(stream), [], "still 15: nothing new to say");

  progress.update(tallyOf(20));
  assert.deepEqual(lines(stream), ["progress: 20/100 (20%) | 0 failed"]);
  progress.stop();
});
