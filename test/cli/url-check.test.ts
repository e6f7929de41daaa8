import assert from "node:assert/strict";
import { test } from "node:test";
import fc from "fast-check";
import { checkUrl } from "../../src/cli/url-check.js";
import { HeadwireError } from "../../src/errors.js";
import { parseTarget } from "../../src/url/target.js";

/** The INVALID_URL message checkUrl gives for `typed`. */
function refusal(typed: string): string {
  try {
    checkUrl(typed);
  } catch (error) {
    assert.ok(error instanceof HeadwireError, String(error));
    assert.equal(error.code, "INVALID_URL");
    return error.message;
  }
  assert.fail(`${JSON.stringify(typed)} was accepted`);
}

test("checkUrl: spaces and the other characters browsers encode are percent-encoded in path, query and fragment", () => {
  assert.equal(checkUrl("example.com/a b"), "example.com/a%20b");
  assert.equal(
    checkUrl("  http://example.com/a b?q=x y&z='1'#f g  "),
    "http://example.com/a%20b?q=x%20y&z=%271%27#f%20g",
  );
  assert.equal(checkUrl('https://example.com/<"`>'), "https://example.com/%3C%22%60%3E");
  // Nothing else changes: what the user typed stays (the file is named after it).
  for (const same of [
    "www.twitch.tv",
    "http://[::1]:8080/x?y=1",
    "example.com:8080",
    "//host/x",
    "https://bücher.de/ü",
  ]) {
    assert.equal(checkUrl(same), same);
  }
  // Another scheme is the server's to refuse (UNSUPPORTED_SCHEME), but its spaces never reach the wire.
  assert.equal(checkUrl("ftp://a b/"), "ftp://a%20b/");
  assert.equal(checkUrl("http://us er:p w@host/"), "http://us%20er:p%20w@host/", "the server refuses credentials");
});

test("checkUrl: what it sends parses to the URL the server's parser makes of the same text", () => {
  fc.assert(
    fc.property(fc.stringMatching(/^[a-z0-9 "<>`'{}/?#=&.-]{0,30}$/), (rest) => {
      const typed = `http://example.com/${rest}`;
      assert.equal(parseTarget(checkUrl(typed)).url, parseTarget(typed.trim()).url);
    }),
  );
});

test("checkUrl: garbage is refused with what and where (a 1-based column of what was typed)", () => {
  assert.equal(refusal("http://a b:x/"), 'bad URL "http://a b:x/": the port "x" is not a number (column 12)');
  assert.equal(
    refusal("http://exa mple.com/"),
    'bad URL "http://exa mple.com/": the host "exa mple.com" contains a space (column 11)',
  );
  assert.equal(refusal("http:///x"), 'bad URL "http:///x": the host is empty (column 8)');
  assert.equal(refusal("http://:80/"), 'bad URL "http://:80/": the host is empty (column 8)');
  assert.equal(
    refusal("example.com:99999/"),
    'bad URL "example.com:99999/": the port 99999 is not from 1 to 65535 (column 13)',
  );
  assert.equal(refusal("example.com:0"), 'bad URL "example.com:0": the port 0 is not from 1 to 65535 (column 13)');
  assert.equal(refusal("example.com:x/"), 'bad URL "example.com:x/": the port "x" is not a number (column 13)');
  assert.equal(
    refusal("http://[::1/"),
    'bad URL "http://[::1/": the IPv6 address "[::1" has no closing "]" (column 8)',
  );
  assert.equal(refusal("http://[::g]/"), 'bad URL "http://[::g]/": "::g" is not an IPv6 address (column 9)');
  assert.equal(
    refusal("http://[::1]x/"),
    'bad URL "http://[::1]x/": "x" after the IPv6 address is not ":port" (column 13)',
  );
  assert.equal(
    refusal("http://::1:8080/"),
    'bad URL "http://::1:8080/": "::1:8080" has more than one ":"; an IPv6 address goes in brackets: [::1] (column 8)',
  );
  assert.equal(
    refusal("a.example/x\ty"),
    'bad URL "a.example/x\\ty": it contains the control character \\x09 (column 12)',
  );
  assert.equal(refusal("http:example.com"), 'bad URL "http:example.com": "http:" must be followed by "//" (column 6)');
  assert.equal(refusal("http://a|b/"), 'bad URL "http://a|b/": the host "a|b" contains "|" (column 9)');
  assert.equal(refusal("   "), "bad URL: it is empty");
});

test("checkUrl: the column counts leading white space as typed", () => {
  assert.match(refusal("  a.b:x"), /\(column 7\)$/);
});

test("checkUrl: a URL over the server's limit is refused in the URL's terms", () => {
  assert.equal(refusal(`a.example/${"x".repeat(9000)}`), "bad URL: it is 9010 characters, more than the limit of 8192");
});
