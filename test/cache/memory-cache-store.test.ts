import assert from "node:assert/strict";
import { test } from "node:test";
import type { CacheEntry } from "../../src/cache/cache-store.js";
import { MemoryCacheStore } from "../../src/cache/memory-cache-store.js";
import { cacheStoreContract } from "./cache-store-contract.js";

cacheStoreContract("memory", async () => {
  let now = 1_000_000;
  const store = new MemoryCacheStore({ maxEntries: 100, maxTotalBytes: 1_000_000, now: () => now });
  await store.open();
  return { store, elapse: async (ms) => void (now += ms) };
});

const entry = (key: string, bytes: number): CacheEntry => ({
  key,
  header: Buffer.alloc(bytes, 0x41),
  status: 200,
  storedAtMs: 0,
});

test("at most maxEntries: the least recently used entry goes first", async () => {
  const store = new MemoryCacheStore({ maxEntries: 2, maxTotalBytes: 1_000_000 });
  await store.set(entry("a", 10), 1000);
  await store.set(entry("b", 10), 1000);
  await store.get("a"); // a is now more recently used than b
  await store.set(entry("c", 10), 1000);
  assert.deepEqual(
    store.snapshot().map((e) => e.key),
    ["a", "c"],
  );
});

test("at most maxTotalBytes of headers: least recently used entries are evicted to make room", async () => {
  const store = new MemoryCacheStore({ maxEntries: 100, maxTotalBytes: 250 });
  for (const key of ["a", "b", "c"]) await store.set(entry(key, 100), 1000);
  assert.deepEqual(
    store.snapshot().map((e) => e.key),
    ["b", "c"],
  );
  assert.ok(store.totalBytes <= 250);
});

test("every change is announced (the cache file listens), loads are not", async () => {
  let changes = 0;
  const store = new MemoryCacheStore({ maxEntries: 10, maxTotalBytes: 10_000, onChange: () => changes++ });
  store.load([entry("x", 1)], () => 1000);
  assert.equal(changes, 0);
  await store.set(entry("y", 1), 1000);
  await store.delete("x");
  await store.delete("missing");
  assert.equal(await store.clear(), 1);
  assert.equal(changes, 3);
});

test("options are checked at construction", () => {
  assert.throws(() => new MemoryCacheStore({ maxEntries: -1, maxTotalBytes: 1 }), /options.maxEntries must be/);
  assert.throws(() => new MemoryCacheStore({ maxEntries: 1, maxTotalBytes: 1.5 }), /options.maxTotalBytes must be/);
});

test("past its retention an entry is gone, as from Redis: no revalidation of what should have expired", async () => {
  let now = 0;
  const store = new MemoryCacheStore({ maxEntries: 10, maxTotalBytes: 10_000, now: () => now });
  await store.set(entry("a", 5), 100);
  now = 99;
  assert.ok(await store.get("a"));
  now = 100;
  assert.equal(await store.get("a"), undefined);
  assert.deepEqual(store.snapshot(), [], "nor is it listed or persisted");
});
