import { test } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import { HeadwireError } from "../../src/errors.js";
import { REDIRECT_STATUSES, redirectLocation, redirectTarget } from "../../src/http/redirect.js";
import { parseTarget } from "../../src/url/target.js";

function assertCode(fn: () => unknown, code: string): void {
  assert.throws(fn, (error: unknown) => error instanceof HeadwireError && error.code === code);
}

const section = (status: number, fields: string): Buffer =>
  Buffer.from(`HTTP/1.1 ${status} X\r\n${fields}Content-Length: 0\r\n\r\n`, "latin1");

test("301, 302, 303, 307 and 308 are followed to their Location", () => {
  assert.deepEqual([...REDIRECT_STATUSES].sort(), [301, 302, 303, 307, 308]);
  for (const status of REDIRECT_STATUSES) {
    assert.equal(redirectLocation(status, section(status, "Location: /next\r\n")), "/next", String(status));
  }
});

test("other statuses, and a missing or empty Location, end the chain", () => {
  for (const status of [200, 204, 300, 304, 305, 306, 404]) {
    assert.equal(redirectLocation(status, section(status, "Location: /next\r\n")), undefined, String(status));
  }
  assert.equal(redirectLocation(302, section(302, "")), undefined);
  assert.equal(redirectLocation(302, section(302, "Location:\r\n")), undefined);
  assert.equal(redirectLocation(302, section(302, "Location:   \r\n")), undefined);
});

test("Location: any case, the first of several, whitespace trimmed, obs-fold joined, UTF-8 bytes decoded", () => {
  assert.equal(redirectLocation(301, section(301, "LOCATION:  /a \r\nlocation: /b\r\n")), "/a");
  assert.equal(redirectLocation(301, section(301, "Location: /a\r\n b\r\n")), "/a b");
  assert.equal(redirectLocation(301, section(301, "Location: /caf\xc3\xa9\r\n")), "/caf\u00e9");
});

test("RFC 9110 §10.2.2: a Location is resolved against the URL that was requested", () => {
  const from = parseTarget("https://example.com/dir/page?q=1");
  const resolve = (location: string): string => redirectTarget(location, from).url;
  assert.equal(resolve("other"), "https://example.com/dir/other");
  assert.equal(resolve("../up"), "https://example.com/up");
  assert.equal(resolve("/root#frag"), "https://example.com/root");
  assert.equal(resolve("?r=2"), "https://example.com/dir/page?r=2");
  assert.equal(resolve("//cdn.example/x"), "https://cdn.example/x");
  assert.equal(resolve("http://EXAMPLE.org:80/"), "http://example.org/");
  assert.equal(resolve("/caf\u00e9"), "https://example.com/caf%C3%A9");
  assert.equal(redirectTarget("/next", from).hostHeader, "example.com");
});

test("a Location that is not a URL headwire may fetch fails as a typed URL would", () => {
  const from = parseTarget("http://example.com/");
  assertCode(() => redirectTarget("ftp://files.example/", from), "UNSUPPORTED_SCHEME");
  assertCode(() => redirectTarget("http://[oops/", from), "INVALID_URL");
  assertCode(() => redirectTarget("http://user:pw@example.com/", from), "INVALID_URL");
  assertCode(() => redirectTarget(`/${"a".repeat(9000)}`, from), "INVALID_URL");
});

/** Absolute URLs in many spellings (fc.webUrl would do, but its first use costs seconds). */
const absoluteUrl = fc
  .tuple(
    fc.constantFrom("http", "https", "HTTP", "ftp"),
    fc.constantFrom("", "user:pw@"),
    fc.oneof(
      fc.constantFrom("example.com", "EXAMPLE.org.", "127.0.0.1", "2130706433", "[::1]", "b\u00fccher.de", "a..b"),
      fc.stringMatching(/^[a-z0-9-]{1,10}(\.[a-z]{2,5}){1,2}$/),
    ),
    fc.option(fc.integer({ min: 0, max: 70000 }), { nil: undefined }),
    fc.string({ unit: fc.constantFrom("a", "/", ".", "..", "%", "%41", "?", "#", " ", "\u00e9", "~"), maxLength: 20 }),
  )
  .map(
    ([scheme, userinfo, host, port, rest]) =>
      `${scheme}://${userinfo}${host}${port === undefined ? "" : `:${port}`}/${rest}`,
  );

test("property: an absolute Location leads where the same URL typed by a client would", () => {
  const from = parseTarget("http://example.com/a/b");
  fc.assert(
    fc.property(absoluteUrl, (url) => {
      let typed: string | undefined;
      try {
        typed = parseTarget(url).url;
      } catch (error) {
        const code = (error as HeadwireError).code;
        assertCode(() => redirectTarget(url, from), code);
        return;
      }
      assert.equal(redirectTarget(url, from).url, typed);
    }),
    { numRuns: 500 },
  );
});
