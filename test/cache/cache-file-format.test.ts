import assert from "node:assert/strict";
import { test } from "node:test";
import fc from "fast-check";
import { parseCache, serializeCache } from "../../src/cache/cache-file-format.js";
import { CacheFileError } from "../../src/errors.js";
import type { CacheEntry } from "../../src/cache/cache-store.js";

const entryArbitrary: fc.Arbitrary<CacheEntry> = fc
  .record({
    key: fc.webUrl().map((url) => url.replace(/\s/g, "")),
    header: fc.uint8Array({ maxLength: 600 }).map((bytes) => Buffer.from(bytes)),
    status: fc.integer({ min: 100, max: 999 }),
    storedAtMs: fc.integer({ min: 0, max: 4_102_444_800_000 }),
  })
  .map((entry) => ({ ...entry })); // fast-check's records have no prototype; parsed entries do

test("property: any entries survive serialize → parse, byte for byte (bare LF, NUL, non-ASCII)", () => {
  fc.assert(
    fc.property(fc.array(entryArbitrary, { maxLength: 20 }), (entries) => {
      assert.deepEqual(parseCache(serializeCache(entries)), entries);
    }),
  );
});

test("property: a file cut short anywhere is refused as a whole", () => {
  fc.assert(
    fc.property(fc.array(entryArbitrary, { minLength: 1, maxLength: 5 }), fc.nat(), (entries, cut) => {
      const data = serializeCache(entries);
      const at = cut % data.length; // strictly shorter than the file
      assert.throws(() => parseCache(data.subarray(0, at)), CacheFileError);
    }),
  );
});

test("the format is readable text with the header as the origin sent it", () => {
  const header = Buffer.from("HTTP/1.0 200 OK\nX-Note: caf\xe9\n\n", "latin1");
  const text = serializeCache([{ key: "http://a.example/", header, status: 200, storedAtMs: 0 }]).toString("latin1");
  assert.equal(
    text,
    "headwire-cache 1\n" +
      `entry url=http://a.example/ status=200 stored=1970-01-01T00:00:00.000Z bytes=${header.length}\n` +
      "HTTP/1.0 200 OK\nX-Note: caf\xe9\n\n\n" +
      "end entries=1\n",
  );
});

test("a wrong version, a wrong count or trailing bytes are refused", () => {
  const good = serializeCache([]);
  assert.throws(() => parseCache(Buffer.from("headwire-cache 2\nend entries=0\n")), /first line/);
  assert.throws(() => parseCache(Buffer.from("headwire-cache 1\nend entries=1\n")), /counts 1 entries/);
  assert.throws(() => parseCache(Buffer.concat([good, Buffer.from("x")])), /trailing bytes/);
});
