/**
 * One behavioural suite for the CacheStore contract (src/cache/cache-store.ts), run against every
 * store: memory-cache-store.test.ts, file-cache-store.test.ts and redis-cache-store.test.ts each
 * call it. A difference between stores is then a failing test, not a surprise in production.
 */
import assert from "node:assert/strict";
import { test, type TestContext } from "node:test";
import type { CacheEntry, CacheStore, CacheStoreKind } from "../../src/cache/cache-store.js";

export interface ContractSubject {
  store: CacheStore;
  /**
   * Lets `ms` pass for the store: a store on an injected clock moves it; Redis, whose clock
   * cannot be moved, is given the time for real (the suite then waits for the expiry it asked for).
   */
  elapse(ms: number): Promise<void>;
}

/** Builds an opened store for one test, or undefined when its program is missing (the test is skipped). */
export type ContractFactory = (t: TestContext) => Promise<ContractSubject | undefined>;

/** A header with every byte a store might be tempted to re-encode: bare LF, CRLF, NUL, 0xFF, non-ASCII. */
export function awkwardEntry(key: string, storedAtMs = 1_588_400_000_123): CacheEntry {
  const header = Buffer.concat([
    Buffer.from("HTTP/1.0 200 OK\nX-Note: caf"),
    Buffer.from([0xe9, 0x00, 0xff]),
    Buffer.from("\r\nSet-Cookie: a=b\r\n\r\n"),
  ]);
  return { key, header, status: 200, storedAtMs };
}

function entry(key: string, text = `HTTP/1.1 200 OK\r\nX-Key: ${key}\r\n\r\n`, status = 200): CacheEntry {
  return { key, header: Buffer.from(text, "latin1"), status, storedAtMs: 1_700_000_000_000 };
}

export function cacheStoreContract(kind: CacheStoreKind, open: ContractFactory): void {
  const contract = (name: string, body: (subject: ContractSubject, t: TestContext) => Promise<void>): void => {
    test(`CacheStore contract (${kind}): ${name}`, async (t) => {
      const subject = await open(t);
      if (!subject) return;
      await body(subject, t);
    });
  };

  contract("entries round-trip byte for byte; a missing key is undefined", async ({ store }) => {
    assert.equal(store.kind, kind);
    const stored = awkwardEntry("http://example.com/a?b=1#method=HEAD");
    await store.set(stored, 60_000);
    assert.deepEqual(await store.get(stored.key), stored);
    assert.equal(await store.get("http://example.com/other"), undefined);
  });

  contract(
    "peek, where a store has it, answers what get answers, expiry and deletion included",
    async ({ store, elapse }) => {
      if (!store.peek) return; // a store behind a network or another process: get() only
      const stored = awkwardEntry("http://example.com/peek");
      await store.set(stored, 1000);
      await store.set(entry("gone"), 60_000);
      await store.delete("gone");
      assert.equal(store.peek(stored.key), await store.get(stored.key));
      assert.deepEqual(store.peek(stored.key), stored);
      assert.equal(store.peek("gone"), undefined);
      assert.equal(store.peek("http://example.com/other"), undefined);
      await elapse(1001);
      assert.equal(store.peek(stored.key), undefined);
      assert.equal(await store.get(stored.key), undefined);
    },
  );

  contract("a later set replaces the entry under its key", async ({ store }) => {
    await store.set(entry("k", "HTTP/1.1 200 OK\r\n\r\n"), 60_000);
    const newer = entry("k", "HTTP/1.1 404 Not Found\r\n\r\n", 404);
    await store.set(newer, 60_000);
    assert.deepEqual(await store.get("k"), newer);
  });

  contract("retention 0 or less stores nothing", async ({ store }) => {
    await store.set(entry("zero"), 0);
    await store.set(entry("negative"), -5);
    assert.equal(await store.get("zero"), undefined);
    assert.equal(await store.get("negative"), undefined);
  });

  contract("an entry is kept for at most its retention, then gone", async ({ store, elapse }) => {
    await store.set(entry("short"), 40);
    await store.set(entry("long"), 600_000);
    assert.ok(await store.get("short"), "kept while its retention lasts");
    await elapse(40);
    const deadline = Date.now() + 5000;
    while ((await store.get("short")) !== undefined) {
      assert.ok(Date.now() < deadline, "the entry outlived its retention by 5 s");
      await elapse(10);
    }
    assert.ok(await store.get("long"), "an entry within its retention stays");
  });

  contract("delete says whether the key existed; deleteMany counts what existed", async ({ store }) => {
    for (const key of ["a", "b", "c"]) await store.set(entry(key), 60_000);
    assert.equal(await store.delete("a"), true);
    assert.equal(await store.delete("a"), false);
    assert.equal(await store.deleteMany(["b", "c", "missing"]), 2);
    assert.equal(await store.deleteMany([]), 0);
    for (const key of ["a", "b", "c"]) assert.equal(await store.get(key), undefined);
  });

  contract("clear drops every entry and counts them", async ({ store }) => {
    for (const key of ["a", "b", "c"]) await store.set(entry(key), 60_000);
    assert.equal(await store.clear(), 3);
    assert.equal(await store.get("b"), undefined);
    assert.equal((await store.stats()).entries, 0);
  });

  contract("list and stats show the entries held", async ({ store }) => {
    const held = ["x", "y"].map((key) => entry(key));
    for (const e of held) await store.set(e, 60_000);
    const listed = (await store.list()).sort((p, q) => p.key.localeCompare(q.key));
    assert.deepEqual(listed, held);
    const stats = await store.stats();
    assert.equal(stats.kind, kind);
    assert.equal(stats.entries, 2);
    if (stats.bytes !== undefined) assert.equal(stats.bytes, held[0]!.header.length + held[1]!.header.length);
  });

  contract("flush and close resolve; close twice is harmless", async ({ store }) => {
    await store.set(entry("f"), 60_000);
    await store.flush();
    await store.close();
    await store.close();
  });
}
