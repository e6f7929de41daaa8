import assert from "node:assert/strict";
import { createServer } from "node:net";
import { once } from "node:events";
import { test } from "node:test";
import type { CacheEntry } from "../../src/cache/cache-store.js";
import { RedisCacheStore } from "../../src/cache/redis-cache-store.js";
import { startRedis } from "../redis-server.js";
import { cacheStoreContract } from "./cache-store-contract.js";

cacheStoreContract("redis", async (t) => {
  const redis = await startRedis(t);
  if (!redis) return undefined;
  const store = await connectedStore(redis.url(1), t);
  // Redis keeps its own time: the suite's waits for an expiry are real, and bounded by the suite.
  return { store, elapse: (ms) => new Promise((resolve) => setTimeout(resolve, ms)) };
});

function entry(key: string, header: Buffer | string, status = 200): CacheEntry {
  return { key, header: Buffer.from(header as string, "latin1"), status, storedAtMs: 1_588_400_000_123 };
}

async function connectedStore(
  url: string,
  t: { after: (fn: () => Promise<unknown>) => void },
): Promise<RedisCacheStore> {
  const store = new RedisCacheStore({ url, commandTimeoutMs: 1000 });
  t.after(() => store.close());
  assert.equal(await store.connect(), true, `connects to ${url}`);
  return store;
}

test("entries round-trip byte for byte, in the database the URL names, and expire as asked", async (t) => {
  const redis = await startRedis(t);
  if (!redis) return;
  const store = await connectedStore(redis.url(3), t);
  // Bare LF, CRLF, a non-ASCII byte, a NUL and a blank line: nothing is re-encoded.
  const header = Buffer.concat([
    Buffer.from("HTTP/1.0 200 OK\nX-Note: caf"),
    Buffer.from([0xe9, 0x00, 0xff]),
    Buffer.from("\r\nSet-Cookie: a=b\r\n\r\n"),
  ]);
  const stored = entry("http://example.com/a?b=1#method=HEAD", header);
  await store.set(stored, 90_000);
  assert.deepEqual(await store.get(stored.key), stored);
  assert.equal(await store.get("http://example.com/other"), undefined);

  const db3 = redis.client(3);
  const keys = await db3.keys("*");
  assert.deepEqual(keys, ["headwire:1:entry:http://example.com/a?b=1#method=HEAD"]);
  const ttl = await db3.pttl(keys[0]!);
  assert.ok(ttl > 85_000 && ttl <= 90_000, `PTTL ${ttl} ≈ 90000`);
  assert.deepEqual(await redis.client(0).keys("*"), [], "database 0 is untouched");

  // Nothing left to keep: not stored at all.
  await store.set(entry("http://example.com/expired", "HTTP/1.1 200 OK\r\n\r\n"), 0);
  assert.equal(await store.get("http://example.com/expired"), undefined);
});

test("delete and clear remove entries only, not fill claims or foreign keys", async (t) => {
  const redis = await startRedis(t);
  if (!redis) return;
  const store = await connectedStore(redis.url(), t);
  const admin = redis.client();
  await admin.set("someone-else:key", "kept");
  for (const name of ["a", "b", "c"])
    await store.set(entry(`http://x/${name}`, `HTTP/1.1 200 OK\r\nX: ${name}\r\n\r\n`), 60_000);
  assert.equal(await store.claimFill("http://x/c", 5000), true);
  assert.equal(await store.delete("http://x/a"), true);
  assert.equal(await store.delete("http://x/a"), false);
  assert.equal(await store.clear(), 2);
  assert.equal(await store.get("http://x/b"), undefined);
  assert.deepEqual((await admin.keys("*")).sort(), ["headwire:1:fill:http://x/c", "someone-else:key"]);
});

test("a fill claim is exclusive across stores, released by its holder only, and expires", async (t) => {
  const redis = await startRedis(t);
  if (!redis) return;
  const one = await connectedStore(redis.url(), t);
  const two = await connectedStore(redis.url(), t);
  const key = "http://example.com/";
  assert.equal(await one.claimFill(key, 5000), true);
  assert.equal(await two.claimFill(key, 5000), false, "another server holds it");
  assert.equal(await one.claimFill(key, 5000), false, "not re-entrant either");
  await two.releaseFill(key); // not its claim: no effect
  assert.equal(await two.claimFill(key, 5000), false);
  await one.releaseFill(key);
  assert.equal(await two.claimFill(key, 5000), true, "free once released");

  // A claim that outlived its lock and was taken over is not deleted by its former holder.
  const admin = redis.client();
  assert.equal(await one.claimFill("http://slow/", 50), true);
  await admin.pexpire("headwire:1:fill:http://slow/", 1); // the lock runs out
  const deadline = Date.now() + 5000;
  while ((await admin.exists("headwire:1:fill:http://slow/")) && Date.now() < deadline);
  assert.equal(await two.claimFill("http://slow/", 5000), true);
  await one.releaseFill("http://slow/");
  assert.equal(await admin.exists("headwire:1:fill:http://slow/"), 1, "the new holder keeps its claim");
});

test("with Redis unreachable, connect says so and every call fails at once instead of queueing", async (t) => {
  // A port nothing listens on.
  const probe = createServer().listen(0, "127.0.0.1");
  await once(probe, "listening");
  const { port } = probe.address() as { port: number };
  await new Promise<void>((resolve) => probe.close(() => resolve()));
  const store = new RedisCacheStore({ url: `redis://127.0.0.1:${port}/0`, commandTimeoutMs: 1000 });
  t.after(() => store.close());
  assert.equal(await store.connect(), false);
  const started = Date.now();
  await assert.rejects(store.get("http://x/"));
  await assert.rejects(store.set(entry("http://x/", "HTTP/1.1 200 OK\r\n\r\n"), 1000));
  await assert.rejects(store.claimFill("http://x/", 1000));
  assert.ok(Date.now() - started < 500, `failed fast (${Date.now() - started} ms)`);
});
