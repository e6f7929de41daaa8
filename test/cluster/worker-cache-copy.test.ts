/**
 * The worker's local copy and its sequence-number rule (worker-cache-copy.ts): an answer read
 * before an invalidation but delivered after it is never kept; the primary's side
 * (SharedCacheHost) numbers a get before its read and a change after it, and answers a change
 * only once its invalidation has been broadcast.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import type { CacheEntry } from "../../src/cache/cache-store.js";
import { MemoryCacheStore } from "../../src/cache/memory-cache-store.js";
import type { CacheInvalidation, CacheRequest } from "../../src/cluster/cache-messages.js";
import { SharedCacheHost } from "../../src/cluster/shared-cache-host.js";
import { answerIsCurrent, WorkerCacheCopy } from "../../src/cluster/worker-cache-copy.js";

const LIMITS = { maxEntries: 10, maxTotalBytes: 1 << 20 };

function entry(key: string, text: string): CacheEntry {
  return { key, header: Buffer.from(text, "latin1"), status: 200, storedAtMs: 1 };
}

test("answerIsCurrent: kept when no invalidation arrived, or none newer than the answer", () => {
  assert.equal(answerIsCurrent(5, undefined), true);
  assert.equal(answerIsCurrent(5, 5), true, "a change's own invalidation carries its seq");
  assert.equal(answerIsCurrent(6, 5), true);
  assert.equal(answerIsCurrent(4, 5), false, "read before the invalidation, delivered after it");
});

test("copy: an answer read before a delete but delivered after its invalidation is not kept", () => {
  const copy = new WorkerCacheCopy(LIMITS);
  copy.begin("k");
  copy.invalidate(8, ["k"]); // worker A's PURGE, applied at seq 8
  copy.settle("k", 7, entry("k", "old")); // the get read at seq 7
  assert.equal(copy.peek("k"), undefined);
  // The next get, read after the purge, is kept.
  copy.begin("k");
  copy.settle("k", 8, entry("k", "new"));
  assert.equal(copy.peek("k")?.header.toString(), "new");
});

test("copy: a clear while a get is pending makes its answer unkept; other keys' invalidations do not", () => {
  const copy = new WorkerCacheCopy(LIMITS);
  copy.begin("a");
  copy.begin("b");
  copy.invalidate(3, ["other"]);
  copy.settle("a", 2, entry("a", "A"));
  assert.equal(copy.peek("a")?.header.toString(), "A", "another key's change does not concern a");
  copy.invalidate(4, null);
  assert.equal(copy.peek("a"), undefined, "clear drops what is held");
  copy.settle("b", 3, entry("b", "B"));
  assert.equal(copy.peek("b"), undefined, "read before the clear");
});

test("copy: an invalidation after the answer drops the copy; an undefined answer drops it too", () => {
  const copy = new WorkerCacheCopy(LIMITS);
  copy.begin("k");
  copy.settle("k", 1, entry("k", "v1"));
  assert.ok(copy.peek("k"));
  copy.invalidate(2, ["k"]); // another worker's set
  assert.equal(copy.peek("k"), undefined, "B's next lookup asks the primary");
  copy.begin("k");
  copy.settle("k", 2, entry("k", "v2"));
  copy.begin("k");
  copy.settle("k", 3, undefined); // the primary no longer holds it (retention)
  assert.equal(copy.peek("k"), undefined);
});

test("copy: of two overlapping calls, the older answer delivered last does not win", () => {
  const copy = new WorkerCacheCopy(LIMITS);
  copy.begin("k");
  copy.begin("k");
  copy.invalidate(5, ["k"]);
  copy.settle("k", 5, entry("k", "new"));
  copy.settle("k", 4, entry("k", "old"));
  assert.equal(copy.peek("k"), undefined, "the late, older answer drops the copy rather than keep old");
});

test("copy: bounded by the same entry and byte limits, least recently used dropped first", () => {
  const copy = new WorkerCacheCopy({ maxEntries: 2, maxTotalBytes: 1 << 20 });
  for (const key of ["a", "b"]) {
    copy.begin(key);
    copy.settle(key, 1, entry(key, key));
  }
  copy.peek("a");
  copy.begin("c");
  copy.settle("c", 1, entry("c", "c"));
  assert.deepEqual(
    ["a", "b", "c"].map((key) => copy.peek(key) !== undefined),
    [true, false, true],
  );
  const bytes = new WorkerCacheCopy({ maxEntries: 10, maxTotalBytes: 10 });
  for (const key of ["x", "y"]) {
    bytes.begin(key);
    bytes.settle(key, 1, entry(key, "123456"));
  }
  assert.equal(bytes.size, 1);
  assert.ok(bytes.totalBytes <= 10);
  const none = new WorkerCacheCopy({ maxEntries: 0, maxTotalBytes: 10 });
  none.begin("x");
  none.settle("x", 1, entry("x", "1"));
  assert.equal(none.peek("x"), undefined, "0 keeps nothing, as the primary's LRU");
});

function request(id: number, op: CacheRequest["op"], ...args: unknown[]): CacheRequest {
  return { headwire: "cache", id, op, args };
}

test("host: a get carries the number before its read; a change is numbered after, broadcast before its answer", async () => {
  const sent: CacheInvalidation[] = [];
  let release: () => void = () => {};
  const host = new SharedCacheHost(new MemoryCacheStore(LIMITS), Date.now, (invalidation) => {
    sent.push(invalidation);
    return new Promise<void>((resolve) => (release = resolve));
  });
  const answered: string[] = [];
  const set = host.answer(request(1, "set", entry("k", "v"), 60_000)).then((answer) => {
    answered.push("set");
    return answer;
  });
  // The set's invalidation is out but unacknowledged: its answer waits.
  while (sent.length === 0) await new Promise((resolve) => setImmediate(resolve));
  assert.deepEqual(sent, [{ headwire: "cache-invalidate", seq: 1, keys: ["k"] }]);
  assert.deepEqual(answered, []);
  const get = await host.answer(request(2, "get", "k"));
  assert.equal(get.seq, 1, "read after change 1 was applied");
  assert.equal((get.value as CacheEntry).header.toString(), "v");
  release();
  assert.equal((await set).seq, 1);
  const purge = host.answer(request(3, "deleteMany", ["k"]));
  while (sent.length === 1) await new Promise((resolve) => setImmediate(resolve));
  assert.deepEqual(sent[1], { headwire: "cache-invalidate", seq: 2, keys: ["k"] });
  release();
  assert.deepEqual({ value: (await purge).value, seq: (await purge).seq }, { value: 1, seq: 2 });
  const clear = host.answer(request(4, "clear"));
  while (sent.length === 2) await new Promise((resolve) => setImmediate(resolve));
  assert.deepEqual(sent[2], { headwire: "cache-invalidate", seq: 3, keys: null });
  release();
  assert.equal((await clear).seq, 3);
});
