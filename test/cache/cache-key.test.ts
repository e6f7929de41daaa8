/** Cache keys: which options are in a key, in which canonical form, and which are not. */
import { test } from "node:test";
import assert from "node:assert/strict";
import { cacheKeyFor, cacheKeyVariants, isKeyOf } from "../../src/cache/cache-key.js";
import { DEFAULT_QUERY_OPTIONS, type QueryOptions } from "../../src/http/query-options.js";
import { parseTarget } from "../../src/url/target.js";
import { MemoryCacheStore } from "../../src/cache/memory-cache-store.js";
import { purge } from "../../src/cache/purge.js";

const target = parseTarget("http://a.test/x");
const key = (options: Partial<QueryOptions>): string => cacheKeyFor(target, { ...DEFAULT_QUERY_OPTIONS, ...options });

test("a plain GET's key is the normalized URL", () => {
  assert.equal(key({}), "http://a.test/x");
});

test("insecure, ip and request fields are in the key; time limits and cache=refresh are not", () => {
  assert.equal(key({ insecure: true }), "http://a.test/x#insecure=1");
  assert.equal(key({ ip: "4" }), "http://a.test/x#ip=4");
  assert.equal(key({ ip: "6" }), "http://a.test/x#ip=6");
  assert.equal(key({ connectTimeoutMs: 10, maxTimeMs: 20, cache: "refresh" }), "http://a.test/x");
  assert.equal(
    key({ method: "HEAD", insecure: true, ip: "4", headers: [{ name: "Accept", value: "text/html" }] }),
    "http://a.test/x#method=HEAD,insecure=1,ip=4,header=accept:text/html",
  );
});

test("request fields in canonical form: names lowercased, sorted by name, same-name order kept, values encoded", () => {
  const a = key({
    headers: [
      { name: "X-B", value: "2" },
      { name: "Accept-Language", value: "fr, en;q=0.5" },
      { name: "x-b", value: "1" },
      { name: "User-Agent", value: "" },
    ],
  });
  assert.equal(
    a,
    "http://a.test/x#header=accept-language:fr%2C%20en;q=0.5,header=user-agent:,header=x-b:2,header=x-b:1",
  );
  const spelledOtherwise = key({
    headers: [
      { name: "user-agent", value: "" },
      { name: "ACCEPT-LANGUAGE", value: "fr, en;q=0.5" },
      { name: "X-b", value: "2" },
      { name: "X-B", value: "1" },
    ],
  });
  assert.equal(spelledOtherwise, a, "the same fields in another order and case share an entry");
  assert.notEqual(
    key({
      headers: [
        { name: "X-B", value: "1" },
        { name: "X-B", value: "2" },
      ],
    }),
    a,
  );
  assert.notEqual(
    key({ headers: [{ name: "Accept", value: "a" }] }),
    key({ headers: [{ name: "Accept", value: "A" }] }),
  );
});

test("a value cannot forge another option or field: , # % are encoded", () => {
  const forged = key({ headers: [{ name: "X", value: "1,header=y:2#z%" }] });
  assert.equal(forged, "http://a.test/x#header=x:1%2Cheader=y:2%23z%25");
});

test("purge variants cover insecure and ip; isKeyOf finds keys with request fields", () => {
  const variants = cacheKeyVariants(target);
  assert.equal(new Set(variants).size, variants.length);
  for (const options of [{}, { insecure: true }, { ip: "6" as const, method: "HEAD" as const }]) {
    assert.ok(variants.includes(key(options)), JSON.stringify(options));
  }
  assert.ok(isKeyOf(key({ headers: [{ name: "A", value: "b" }] }), target));
  assert.ok(isKeyOf("http://a.test/x", target));
  assert.ok(!isKeyOf("http://a.test/xy", target));
  assert.ok(!isKeyOf("http://a.test/xy#ip=4", target));
});

test("PURGE <url> drops the URL's variants with request fields too, and nothing of another URL", async () => {
  const store = new MemoryCacheStore({ maxEntries: 100, maxTotalBytes: 1_000_000, now: () => 0 });
  const other = parseTarget("http://a.test/xy");
  const keys = [
    key({}),
    key({ ip: "4" }),
    key({ headers: [{ name: "Accept", value: "text/html" }] }),
    cacheKeyFor(other, { ...DEFAULT_QUERY_OPTIONS, headers: [{ name: "Accept", value: "a" }] }),
  ];
  for (const k of keys)
    await store.set({ key: k, header: Buffer.from("HTTP/1.1 200 OK\r\n\r\n"), status: 200, storedAtMs: 0 }, 60_000);
  assert.equal(await purge(store, "http://a.test/x"), 3);
  assert.deepEqual(
    (await store.list()).map((e) => e.key),
    [keys[3]],
  );
});
