import { test } from "node:test";
import assert from "node:assert/strict";
import { HeadwireError } from "../../src/errors.js";
import { MAX_URL_CHARS, normalizeUrl, parseTarget } from "../../src/url/target.js";

function assertCode(fn: () => unknown, code: string): void {
  assert.throws(fn, (error: unknown) => error instanceof HeadwireError && error.code === code);
}

test("a bare host means http:// and gets the path /", () => {
  assert.deepEqual(parseTarget("www.twitch.tv"), {
    url: "http://www.twitch.tv/",
    scheme: "http",
    host: "www.twitch.tv",
    port: 80,
    path: "/",
    hostHeader: "www.twitch.tv",
  });
});

test("bare host with port and path, bare IPv6 with port, protocol-relative", () => {
  const withPort = parseTarget("example.com:8080/x?y=1");
  assert.equal(withPort.url, "http://example.com:8080/x?y=1");
  assert.equal(withPort.port, 8080);
  assert.equal(withPort.path, "/x?y=1");
  assert.equal(withPort.hostHeader, "example.com:8080");

  const v6 = parseTarget("[::1]:8080");
  assert.equal(v6.url, "http://[::1]:8080/");
  assert.equal(v6.host, "::1");
  assert.equal(v6.hostHeader, "[::1]:8080");

  assert.equal(parseTarget("localhost:3000").url, "http://localhost:3000/");
  assert.equal(parseTarget("//example.com/a").url, "http://example.com/a");
});

test("scheme and host are lowercased, default ports dropped, trailing dot dropped", () => {
  assert.equal(normalizeUrl("HTTP://EXAMPLE.COM:80/Path"), "http://example.com/Path");
  assert.equal(normalizeUrl("https://Example.com.:443"), "https://example.com/");
  const https = parseTarget("https://example.com:8443/a");
  assert.equal(https.scheme, "https");
  assert.equal(https.port, 8443);
  assert.equal(https.hostHeader, "example.com:8443");
  assert.equal(parseTarget("https://example.com").port, 443);
  assert.equal(parseTarget("http://localhost./").host, "localhost");
});

test("fragments and empty queries are dropped", () => {
  const target = parseTarget("http://example.com/a?b=c#frag");
  assert.equal(target.url, "http://example.com/a?b=c");
  assert.equal(target.path, "/a?b=c");
  assert.equal(normalizeUrl("http://example.com/?#x"), "http://example.com/");
  assert.equal(normalizeUrl("example.com"), normalizeUrl("HTTP://example.com.:80/#top"));
});

test("internationalized names become punycode; non-ASCII paths are percent-encoded", () => {
  const target = parseTarget("http://Bücher.de/ü?q=ü");
  assert.equal(target.host, "xn--bcher-kva.de");
  assert.equal(target.path, "/%C3%BC?q=%C3%BC");
  assert.equal(parseTarget("münchen.de").url, "http://xn--mnchen-3ya.de/");
});

test("IPv4 spellings become dotted decimal, IPv6 is compressed and unbracketed", () => {
  for (const input of ["http://2130706433/", "http://0x7f000001/", "http://127.1/", "http://127.0.0.1./"]) {
    assert.equal(parseTarget(input).host, "127.0.0.1", input);
  }
  const mapped = parseTarget("http://[::FFFF:127.0.0.1]:81/");
  assert.equal(mapped.host, "::ffff:7f00:1");
  assert.equal(mapped.hostHeader, "[::ffff:7f00:1]:81");
  assert.equal(parseTarget("http://[::]/").host, "::");
});

test("only http and https are accepted", () => {
  for (const input of ["ftp://example.com/", "file:///etc/passwd", "javascript:alert(1)", "gopher://x/", "ws://x/"]) {
    assertCode(() => parseTarget(input), "UNSUPPORTED_SCHEME");
  }
});

test("credentials are refused", () => {
  assertCode(() => parseTarget("http://user:pass@example.com/"), "INVALID_URL");
  assertCode(() => parseTarget("http://trusted.com@evil.example/"), "INVALID_URL");
  assertCode(() => parseTarget("user@example.com"), "INVALID_URL");
});

test("unparseable and oversized inputs are INVALID_URL", () => {
  for (const input of [
    "",
    "   ",
    "http://",
    "http://exa mple.com/",
    "http://[::1/",
    "http://a..b/",
    "http://./",
    "a\tb.com",
  ]) {
    assertCode(() => parseTarget(input), "INVALID_URL");
  }
  assertCode(() => parseTarget("http://example.com:99999/"), "INVALID_URL");
  assertCode(() => parseTarget("http://example.com:0/"), "INVALID_URL");
  const path = "a".repeat(MAX_URL_CHARS);
  assertCode(() => parseTarget(`http://example.com/${path}`), "INVALID_URL");
  const justFits = `http://example.com/${"a".repeat(MAX_URL_CHARS - "http://example.com/".length)}`;
  assert.equal(parseTarget(justFits).url.length, MAX_URL_CHARS);
  // Percent-encoding can push a short input over the limit.
  assertCode(() => parseTarget(`http://example.com/${"ü".repeat(MAX_URL_CHARS / 4)}`), "INVALID_URL");
});
