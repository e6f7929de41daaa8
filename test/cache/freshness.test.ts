import assert from "node:assert/strict";
import { test } from "node:test";
import type { CacheEntry } from "../../src/cache/cache-store.js";
import { Freshness, updateHeader } from "../../src/cache/freshness.js";

const T0 = Date.parse("2026-11-25T12:00:00Z");
const DATE = new Date(T0).toUTCString();

function setup(defaultTtlMs = 300_000, maxStaleMs = 3_600_000) {
  let now = T0;
  const freshness = new Freshness({ defaultTtlMs, maxStaleMs, now: () => now });
  const entry = (fields: string, status = 200): CacheEntry => ({
    key: "http://example.test/",
    header: Buffer.from(`HTTP/1.1 ${status} X\r\nDate: ${DATE}\r\n${fields}\r\n`, "latin1"),
    status,
    storedAtMs: T0,
  });
  return { freshness, entry, at: (seconds: number) => (now = T0 + seconds * 1000) };
}

test("max-age: fresh until it runs out", () => {
  const { freshness, entry, at } = setup();
  const e = entry("Cache-Control: max-age=60\r\n");
  at(59);
  assert.equal(freshness.assess(e).fresh, true);
  at(61);
  assert.equal(freshness.assess(e).fresh, false);
});

test("s-maxage wins over max-age in a shared cache (RFC 9111 §5.2.2.10)", () => {
  const { freshness, entry, at } = setup();
  const e = entry("Cache-Control: max-age=10, s-maxage=120\r\n");
  at(100);
  assert.equal(freshness.assess(e).fresh, true);
  at(121);
  assert.equal(freshness.assess(e).fresh, false);
});

test("Expires counts from the origin's Date", () => {
  const { freshness, entry, at } = setup();
  const e = entry(`Expires: ${new Date(T0 + 30_000).toUTCString()}\r\n`);
  at(29);
  assert.equal(freshness.assess(e).fresh, true);
  at(31);
  assert.equal(freshness.assess(e).fresh, false);
});

test("Age is subtracted from the lifetime", () => {
  const { freshness, entry, at } = setup();
  const e = entry("Cache-Control: max-age=60\r\nAge: 50\r\n");
  at(9);
  assert.equal(freshness.assess(e).fresh, true);
  at(11);
  assert.equal(freshness.assess(e).fresh, false);
});

test("no-store and private are never stored; no-cache is stored but always revalidated", () => {
  const { freshness, entry } = setup();
  assert.equal(freshness.storable(entry("Cache-Control: no-store\r\n")), false);
  assert.equal(freshness.storable(entry("Cache-Control: private, max-age=600\r\n")), false);
  const noCache = entry('Cache-Control: no-cache\r\nETag: "v1"\r\n');
  assert.equal(freshness.storable(noCache), true);
  assert.equal(freshness.assess(noCache).fresh, false);
  assert.deepEqual(freshness.assess(noCache).validators, { "If-None-Match": '"v1"' });
});

test("no freshness information: the configured default lifetime", () => {
  const { freshness, entry, at } = setup(120_000);
  const e = entry("Server: plain\r\n", 301);
  assert.equal(freshness.storable(e), true);
  at(119);
  assert.equal(freshness.assess(e).fresh, true);
  at(121);
  assert.equal(freshness.assess(e).fresh, false);
});

test("validators: ETag gives If-None-Match, Last-Modified gives If-Modified-Since", () => {
  const { freshness, entry } = setup();
  const lastModified = "Mon, 04 May 2020 10:00:00 GMT";
  const assessment = freshness.assess(
    entry(`Cache-Control: max-age=1\r\nETag: W/"7"\r\nLast-Modified: ${lastModified}\r\n`),
  );
  assert.deepEqual(assessment.validators, { "If-None-Match": 'W/"7"', "If-Modified-Since": lastModified });
  assert.equal(freshness.assess(entry("Cache-Control: max-age=1\r\n")).validators, undefined);
});

test("stale entries may be served until maxStaleMs past their freshness", () => {
  const { freshness, entry } = setup(300_000, 60_000);
  const e = entry("Cache-Control: max-age=10\r\n");
  assert.equal(freshness.assess(e).staleUntilMs, T0 + 10_000 + 60_000);
  assert.equal(freshness.retentionMs(e), 70_000);
});

test("a 304 updates the stored fields in place, byte for byte elsewhere (RFC 9111 §4.3.4)", () => {
  const stored = Buffer.from(
    'HTTP/1.1 200 OK\nDate: old\nCache-Control: max-age=1\nX-Folded: a\n  b\nContent-Length: 10\nETag: "1"\nX-Keep: \xe9\n\n',
    "latin1",
  );
  const notModified = Buffer.from(
    'HTTP/1.1 304 Not Modified\r\nDate: new\r\nCache-Control: max-age=60\r\nX-Folded: c\r\nContent-Length: 0\r\nX-Added: yes\r\nETag: "1"\r\n\r\n',
  );
  assert.equal(
    updateHeader(stored, notModified).toString("latin1"),
    'HTTP/1.1 200 OK\nDate: new\nCache-Control: max-age=60\nX-Folded: c\nContent-Length: 10\nETag: "1"\nX-Keep: \xe9\nX-Added: yes\n\n',
  );
});

test("a 304 after interim responses updates only the final section", () => {
  const stored = Buffer.from("HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\nHTTP/1.1 200 OK\r\nLink: </b>\r\n\r\n");
  const notModified = Buffer.from("HTTP/1.1 304 Not Modified\r\nLink: </c>\r\n\r\n");
  assert.equal(
    updateHeader(stored, notModified).toString(),
    "HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\nHTTP/1.1 200 OK\r\nLink: </c>\r\n\r\n",
  );
});

test("Set-Cookie does not stop sharing: headwire sends no cookies, so every client would get one", () => {
  const { freshness, entry, at } = setup();
  const e = entry("Cache-Control: max-age=60\r\nSet-Cookie: id=1; Path=/\r\n");
  assert.equal(freshness.storable(e), true);
  at(59);
  assert.equal(freshness.assess(e).fresh, true);
});
