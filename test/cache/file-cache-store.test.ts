import assert from "node:assert/strict";
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { CacheFileOwnedError, CachePersistError } from "../../src/errors.js";
import { parseCache } from "../../src/cache/cache-file-format.js";
import { FileCacheStore, persistDelay, type FileCacheStoreOptions } from "../../src/cache/file-cache-store.js";
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
  // Closed before its directory is removed: a close whose last write fails rejects (issue 11).
  const dir = await mkdtemp(join(tmpdir(), "headwire-test-"));
  let now = 1_000_000;
  const store = fileStore(join(dir, "cache.txt"), { now: () => now });
  t.after(async () => {
    await store.close();
    await rm(dir, { recursive: true, force: true });
  });
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

/**
 * A persist that fails, as root: the tests run as root, who ignores permissions, so a read-only
 * directory would not do. A directory put where cache.txt is makes every write fail (the rename
 * of the temporary file over it: EISDIR), whoever runs it; removing it lets writes succeed again.
 */
async function breakCacheFile(path: string): Promise<void> {
  await rm(path, { force: true });
  await mkdir(path);
}

test("file store: a failed write rejects flush(), keeps the changes, and the next flush writes them", async (t) => {
  const dir = await tempDir(t);
  const path = join(dir, "cache.txt");
  const logged: string[] = [];
  const store = fileStore(path, { persistDelayMs: 600_000, log: (line) => logged.push(line) });
  t.after(() => store.close().catch(() => {}));
  await store.open();
  await breakCacheFile(path);
  await store.set(awkwardEntry("a"), 60_000);
  await assert.rejects(store.flush(), (error: Error) => {
    assert.ok(error instanceof CachePersistError);
    assert.match(error.message, /cache\.txt could not be written: EISDIR/);
    return true;
  });
  await assert.rejects(store.flush(), CachePersistError, "still pending, still failing");
  assert.equal(logged.filter((line) => /could not be written/.test(line)).length, 1, "logged once per run");
  assert.deepEqual((await readdir(dir)).sort(), ["cache.txt", "cache.txt.lock"], "no temporary file left");

  await rm(path, { recursive: true });
  await store.flush();
  assert.match(await readFile(path, "latin1"), /end entries=1\n$/);
  assert.match(logged.join("\n"), /written again after 2 failed attempts/);
});

test("file store: a scheduled write that fails is logged, not thrown, and retried", async (t) => {
  const dir = await tempDir(t);
  const path = join(dir, "cache.txt");
  let failed!: () => void;
  const failure = new Promise<void>((resolve) => (failed = resolve));
  const logged: string[] = [];
  const store = fileStore(path, {
    persistDelayMs: 0,
    log: (line) => {
      logged.push(line);
      if (/could not be written/.test(line)) failed();
    },
  });
  t.after(() => store.close().catch(() => {}));
  await store.open();
  await breakCacheFile(path);
  // An unhandled rejection would end this test process: the scheduled write must catch its own.
  const keepAlive = setInterval(() => {}, 1000);
  try {
    await store.set(awkwardEntry("a"), 60_000);
    await failure;
  } finally {
    clearInterval(keepAlive);
  }
  await rm(path, { recursive: true });
  await store.flush(); // the change is still pending: written now
  assert.match(await readFile(path, "latin1"), /end entries=1\n$/);
});

test("file store: close() rejects when the last write fails, and releases the lock all the same", async (t) => {
  const dir = await tempDir(t);
  const path = join(dir, "cache.txt");
  const store = fileStore(path, { persistDelayMs: 600_000 });
  await store.open();
  await store.set(awkwardEntry("a"), 60_000);
  await breakCacheFile(path);
  await assert.rejects(store.close(), CachePersistError);
  assert.deepEqual(await readdir(dir), ["cache.txt"], "no lock, no temporary file (cache.txt is the directory)");
});

test("persist delay: doubles while changes keep coming, up to the maximum; back to the base after a quiet spell", () => {
  // (last delay, since the last write started, base, max) → next delay
  assert.equal(persistDelay(200, Infinity, 200, 2000), 200, "first change: the base delay");
  assert.equal(persistDelay(200, 5, 200, 2000), 400, "a change during or just after a write: doubled");
  assert.equal(persistDelay(400, 399, 200, 2000), 800);
  assert.equal(persistDelay(1600, 10, 200, 2000), 2000, "capped at the maximum");
  assert.equal(persistDelay(2000, 10, 200, 2000), 2000);
  assert.equal(persistDelay(800, 1000, 200, 2000), 800, "neither soon nor quiet: kept");
  assert.equal(persistDelay(2000, 2000, 200, 2000), 200, "quiet for the maximum: the base again");
  assert.equal(persistDelay(200, 5, 200, 100), 200, "a maximum below the base: no back-off");
  assert.equal(persistDelay(200, 5, 200, 200), 200);
  assert.equal(persistDelay(0, 0, 0, 0), 0, "0 and 0: the next turn of the event loop, always");
  assert.equal(persistDelay(0, 0, 0, 50), 1, "from 0, the back-off starts at 1 ms");
  assert.equal(persistDelay(32, 1, 0, 50), 50);
});

/** Whether cache.txt, as it is on disk now, holds `key` (a file being replaced is read whole or not at all). */
async function fileHolds(path: string, key: string): Promise<boolean> {
  const data = await readFile(path).catch(() => undefined);
  return data !== undefined && parseCache(data).some((entry) => entry.key === key);
}

test("file store: under a stream of changes, an entry is on disk within the back-off's bound", async (t) => {
  const dir = await tempDir(t);
  const path = join(dir, "cache.txt");
  let writes = 0;
  const store = fileStore(path, {
    maxEntries: 100_000,
    maxTotalBytes: 100_000_000, // nothing is evicted: the count on disk is checked at the end
    persistDelayMs: 5,
    persistMaxDelayMs: 100,
    onPersist: (ok) => void (ok && writes++),
  });
  t.after(() => store.close());
  await store.open();
  // The stream: a new entry every few milliseconds for as long as the test runs (load, not a clock).
  let streamed = 0;
  const stream = setInterval(() => {
    if (streamed < 20_000) void store.set(awkwardEntry(`stream-${streamed++}`), 600_000);
  }, 2);
  try {
    for (let round = 0; round < 3; round++) {
      const key = `probe-${round}`;
      await store.set(awkwardEntry(key), 600_000);
      // Polled with a deadline far past the bound (100 ms plus the writes under way): a loaded
      // machine may be slow, but a store that never wrote (or waited for the stream to stop) fails.
      const deadline = Date.now() + 20_000;
      while (!(await fileHolds(path, key))) {
        assert.ok(Date.now() < deadline, `${key} is not in cache.txt 20 s after it was stored`);
        await new Promise((resolve) => setTimeout(resolve, 10));
      }
    }
  } finally {
    clearInterval(stream);
  }
  assert.ok(streamed > 0 && writes > 0, `${streamed} streamed entries, ${writes} writes`);
  await store.close();
  const onDisk = parseCache(await readFile(path));
  assert.equal(onDisk.length, streamed + 3, "close() writes every entry, the stream's last ones included");
});
