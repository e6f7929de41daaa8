import assert from "node:assert/strict";
import { readdir, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { test } from "node:test";
import { CacheFileOwnedError } from "../../src/errors.js";
import { FileCacheStore, type FileCacheStoreOptions } from "../../src/cache/file-cache-store.js";
import { tempDir } from "../helpers.js";
import { awkwardEntry, cacheStoreContract } from "./cache-store-contract.js";

function fileStore(path: string, extra: Partial<FileCacheStoreOptions> = {}): FileCacheStore {
  return new FileCacheStore({
    path,
    maxEntries: 100,
    maxTotalBytes: 1_000_000,
    persistDelayMs: 0,
    retentionOnLoadMs: () => 60_000,
    log: () => {},
    ...extra,
  });
}

cacheStoreContract("file", async (t) => {
  const dir = await tempDir(t);
  let now = 1_000_000;
  const store = fileStore(join(dir, "cache.txt"), { now: () => now });
  t.after(() => store.close());
  await store.open();
  return { store, elapse: async (ms) => void (now += ms) };
});

test("file store: what was set is on disk after flush, and a new store loads it", async (t) => {
  const dir = await tempDir(t);
  const path = join(dir, "cache.txt");
  const first = fileStore(path, { persistDelayMs: 60_000 });
  assert.match(await first.open(), /0 entries loaded/);
  const stored = awkwardEntry("http://example.com/");
  await first.set(stored, 60_000);
  await first.close(); // flushes although the scheduled write is a minute away
  assert.match(await readFile(path, "latin1"), /end entries=1\n$/);

  const second = fileStore(path);
  t.after(() => second.close());
  assert.match(await second.open(), /1 entries loaded/);
  assert.deepEqual(await second.get(stored.key), stored);
});

test("file store: a loaded entry is kept for the retention derived from it; expired ones are not loaded", async (t) => {
  const dir = await tempDir(t);
  const path = join(dir, "cache.txt");
  const writer = fileStore(path);
  await writer.open();
  await writer.set(awkwardEntry("keep", 1), 60_000);
  await writer.set(awkwardEntry("drop", 2), 60_000);
  await writer.close();

  let now = 0;
  const reader = fileStore(path, { now: () => now, retentionOnLoadMs: (e) => (e.key === "keep" ? 50 : 0) });
  t.after(() => reader.close());
  await reader.open();
  assert.equal(await reader.get("drop"), undefined);
  assert.ok(await reader.get("keep"));
  now = 50;
  assert.equal(await reader.get("keep"), undefined);
});

test("file store: one owner at a time; close gives the file up", async (t) => {
  const dir = await tempDir(t);
  const path = join(dir, "cache.txt");
  const owner = fileStore(path);
  await owner.open();
  await assert.rejects(fileStore(path).open(), CacheFileOwnedError);
  await owner.close();
  assert.deepEqual(await readdir(dir), [], "no lock left behind (nothing changed, nothing written)");
  const next = fileStore(path);
  t.after(() => next.close());
  await next.open();
});

test("file store: changes are written together, persistDelayMs after the first", async (t) => {
  const dir = await tempDir(t);
  const path = join(dir, "cache.txt");
  const store = fileStore(path, { persistDelayMs: 20 });
  t.after(() => store.close());
  await store.open();
  const written = store.nextWrite();
  for (const key of ["a", "b", "c"]) await store.set(awkwardEntry(key), 60_000);
  // The store's timer is unref'd (a pending write must not keep a process alive): something
  // else has to hold this test's event loop open while it waits.
  const keepAlive = setInterval(() => {}, 1000);
  try {
    await written;
  } finally {
    clearInterval(keepAlive);
  }
  assert.match(await readFile(path, "latin1"), /end entries=3\n$/);
});

test("file store: a corrupt file is moved aside and the store opens empty", async (t) => {
  const dir = await tempDir(t);
  const path = join(dir, "cache.txt");
  await writeFile(path, "headwire-cache 1\nnonsense");
  const store = fileStore(path);
  t.after(() => store.close());
  assert.match(await store.open(), /0 entries loaded/);
  assert.ok((await readdir(dir)).some((name) => name.startsWith("cache.txt.corrupt-")));
});
