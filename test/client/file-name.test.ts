import { test } from "node:test";
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import fc from "fast-check";
import { MAX_HEADER_FILE_NAME_BYTES, headerFileName } from "../../src/client/file-name.js";

/** The `~` + 16 hex digits a changed name carries. */
const MARK = /~[0-9a-f]{16}\.txt$/;

function hashOf(key: string): string {
  return createHash("sha256").update(key, "utf8").digest("hex").slice(0, 16);
}

/** Everything a name must be, whatever the input. */
function assertSafe(name: string, input: string): void {
  const why = `for ${JSON.stringify(input.slice(0, 80))}: ${JSON.stringify(name)}`;
  assert.ok(name.endsWith(".txt"), why);
  assert.ok(Buffer.byteLength(name) <= MAX_HEADER_FILE_NAME_BYTES, why);
  assert.match(name, /^[A-Za-z0-9._~-]+$/, why);
  assert.ok(!name.includes("/") && !name.includes("\\") && !name.includes("\0"), why);
  assert.ok(name !== "." && name !== ".." && !name.startsWith(".") && !name.startsWith("-"), why);
  assert.ok(!/^(CON|PRN|AUX|NUL|COM[0-9]|LPT[0-9])(\.|$)/i.test(name), why);
  assert.ok(!/[. ]$/.test(name), why);
}

test("plain host names keep the seed's form: <URL>.txt", () => {
  assert.equal(headerFileName("www.twitch.tv"), "www.twitch.tv.txt");
  assert.equal(headerFileName("example.com"), "example.com.txt");
  assert.equal(headerFileName("my-host.example"), "my-host.example.txt");
  assert.equal(headerFileName("127.0.0.1"), "127.0.0.1.txt");
  assert.equal(headerFileName("WWW.Twitch.TV"), "WWW.Twitch.TV.txt", "case is kept");
});

test("http:// is dropped, https:// becomes https_, and a lone root slash goes", () => {
  assert.equal(headerFileName("http://www.twitch.tv"), "www.twitch.tv.txt");
  assert.equal(headerFileName("HTTP://www.twitch.tv"), "www.twitch.tv.txt");
  assert.equal(headerFileName("http://www.twitch.tv/"), "www.twitch.tv.txt");
  assert.equal(headerFileName("www.twitch.tv/"), "www.twitch.tv.txt");
  assert.equal(headerFileName("https://www.twitch.tv"), "https_www.twitch.tv.txt");
  assert.equal(headerFileName("HTTPS://www.twitch.tv/"), "https_www.twitch.tv.txt");
  // Not the scheme's own form: other schemes are just characters.
  assert.equal(headerFileName("ftp://a"), `ftp___a~${hashOf("ftp://a")}.txt`);
  assert.equal(headerFileName("http:/a"), `http__a~${hashOf("http:/a")}.txt`);
});

test("a literal name that looks like the https form is marked", () => {
  const name = headerFileName("https_www.twitch.tv");
  assert.equal(name, `https_www.twitch.tv~${hashOf("https_www.twitch.tv")}.txt`);
  assert.notEqual(name, headerFileName("https://www.twitch.tv"));
  assert.notEqual(headerFileName("HTTPS_x").toLowerCase(), headerFileName("https://x").toLowerCase());
});

test("paths, queries, ports and IPv6 literals are made safe and marked with a hash", () => {
  assert.equal(headerFileName("example.com/a/b"), `example.com_a_b~${hashOf("example.com/a/b")}.txt`);
  assert.equal(
    headerFileName("http://example.com/a?q=1&r=*"),
    `example.com_a_q_1_r__~${hashOf("example.com/a?q=1&r=*")}.txt`,
  );
  assert.equal(headerFileName("localhost:8080"), `localhost_8080~${hashOf("localhost:8080")}.txt`);
  assert.equal(
    headerFileName("https://example.com/path"),
    `https_example.com_path~${hashOf("https://example.com/path")}.txt`,
  );
  assert.equal(headerFileName("http://[::1]:8080/"), `___1__8080~${hashOf("[::1]:8080")}.txt`);
  assert.equal(headerFileName("http://[::1]:8080/x"), `___1__8080_x~${hashOf("[::1]:8080/x")}.txt`);
  assert.equal(headerFileName("[2001:db8::1]"), `_2001_db8__1_~${hashOf("[2001:db8::1]")}.txt`);
  assert.equal(headerFileName("a b"), `a_b~${hashOf("a b")}.txt`);
  assert.equal(headerFileName("a~b"), `a_b~${hashOf("a~b")}.txt`);
});

test("replaced characters cannot make two URLs meet", () => {
  const names = ["a/b", "a_b", "a\\b", "a:b", "a?b", "a b", "a\0b", "a\u00e9b"].map(headerFileName);
  assert.equal(new Set(names).size, names.length, names.join(" "));
  assert.equal(headerFileName("a_b"), "a_b.txt");
});

test("traversal, hidden files and option-like names", () => {
  for (const input of ["..", ".", "../", "..\\", "../../etc/passwd", "..\\..\\windows\\system32", ".bashrc", "-rf"]) {
    const name = headerFileName(input);
    assertSafe(name, input);
    assert.ok(name.startsWith("_"), name);
    assert.match(name, MARK);
  }
  assert.equal(headerFileName(".."), `_..~${hashOf("..")}.txt`);
  assert.equal(headerFileName("../"), headerFileName(".."), "a lone trailing slash is dropped");
  assert.equal(headerFileName("../x"), `_.._x~${hashOf("../x")}.txt`);
  assert.equal(headerFileName("..\\"), `_.._~${hashOf("..\\")}.txt`);
  assert.equal(headerFileName(".hidden"), `_.hidden~${hashOf(".hidden")}.txt`);
  assert.equal(headerFileName("-rf"), `_-rf~${hashOf("-rf")}.txt`);
  assert.equal(headerFileName("a.."), "a...txt", "dots inside the name are harmless before .txt");
});

test("NUL and other control characters", () => {
  assert.equal(headerFileName("a\0b"), `a_b~${hashOf("a\0b")}.txt`);
  assert.equal(headerFileName("\0"), `_~${hashOf("\0")}.txt`);
  assert.equal(headerFileName("a\r\nb\tc\u007f"), `a__b_c_~${hashOf("a\r\nb\tc\u007f")}.txt`);
});

test("Windows device names get a prefix, with or without an extension, in any case", () => {
  for (const input of [
    "CON",
    "con",
    "con.txt",
    "NUL",
    "nul.example.com",
    "PRN",
    "AUX",
    "COM1",
    "com9",
    "LPT1",
    "lpt0.x",
  ]) {
    const name = headerFileName(input);
    assert.equal(name, `_${input}~${hashOf(input)}.txt`);
    assertSafe(name, input);
  }
  assert.equal(headerFileName("CONSOLE"), "CONSOLE.txt");
  assert.equal(headerFileName("com10"), "com10.txt");
  assert.equal(headerFileName("xcon"), "xcon.txt");
  assert.equal(headerFileName("http://con"), `_con~${hashOf("con")}.txt`);
  assert.equal(headerFileName("https://con"), "https_con.txt", "not a device name once prefixed");
});

test("unicode becomes _ per character, and the hash keeps names apart", () => {
  assert.equal(headerFileName("bücher.de"), `b_cher.de~${hashOf("bücher.de")}.txt`);
  assert.equal(headerFileName("😀.example"), `_.example~${hashOf("😀.example")}.txt`, "one _ per code point");
  assert.notEqual(headerFileName("bücher.de"), headerFileName("bächer.de"));
  // Unicode look-alikes of separators are replaced like everything else non-ASCII.
  assertSafe(headerFileName("a\u2215b\uff0fc"), "a\u2215b\uff0fc");
});

test("the empty URL", () => {
  assert.equal(headerFileName(""), `_~${hashOf("")}.txt`);
  assert.equal(headerFileName("http://"), headerFileName(""));
  assert.notEqual(headerFileName("_"), headerFileName(""));
  assert.equal(headerFileName("_"), "_.txt");
});

test("long URLs are cut to 200 bytes and stay distinct", () => {
  const long = `example.com/${"a".repeat(10_000)}`;
  const name = headerFileName(long);
  assert.equal(Buffer.byteLength(name), MAX_HEADER_FILE_NAME_BYTES);
  assert.equal(name, `${"example.com_".padEnd(179, "a")}~${hashOf(long)}.txt`);
  assert.notEqual(headerFileName(`${long}b`), name);

  // A long name made only of safe characters is cut and marked too.
  const host = "a".repeat(10_000);
  const hostName = headerFileName(host);
  assert.equal(Buffer.byteLength(hostName), MAX_HEADER_FILE_NAME_BYTES);
  assert.match(hostName, MARK);

  // The longest name kept as it is: 196 characters + ".txt".
  const fits = "b".repeat(MAX_HEADER_FILE_NAME_BYTES - 4);
  assert.equal(headerFileName(fits), `${fits}.txt`);
  const justOver = `${fits}b`;
  assert.equal(headerFileName(justOver), `${"b".repeat(179)}~${hashOf(justOver)}.txt`);

  // Multi-byte input counts in output bytes, which are ASCII.
  const wide = "é".repeat(10_000);
  assert.ok(Buffer.byteLength(headerFileName(wide)) <= MAX_HEADER_FILE_NAME_BYTES);
});

// Inputs that exercise the rule's corners, mixed with arbitrary strings.
const urlish = fc.oneof(
  fc.string({ unit: "binary", maxLength: 300 }),
  fc.string({ unit: "grapheme-ascii", maxLength: 300 }),
  fc
    .tuple(
      fc.constantFrom("", "http://", "https://", "HTTP://", "https_", ".", "..", "-", "CON", "con.", "/", "\\"),
      fc.string({ unit: fc.constantFrom("a", "B", ".", "_", "-", "/", ":", "~", "\0", "é"), maxLength: 250 }),
    )
    .map(([head, tail]) => head + tail),
  fc.webUrl(),
  fc.domain(),
);

test("property: every name is safe", () => {
  fc.assert(
    fc.property(urlish, (url) => assertSafe(headerFileName(url), url)),
    { numRuns: 3000 },
  );
});

/** The part of a URL that names its file: two URLs with the same key share a file by design. */
function key(url: string): string {
  const match = /^(https?):\/\//i.exec(url);
  let rest = match === null ? url : url.slice(match[0].length);
  if (/^[^/?#]+\/$/.test(rest)) rest = rest.slice(0, -1);
  return match?.[1]?.toLowerCase() === "https" ? `https://${rest}` : rest;
}

test("property: URLs with different keys get different names", () => {
  fc.assert(
    fc.property(fc.uniqueArray(urlish, { minLength: 2, maxLength: 50, selector: key }), (urls) => {
      const names = urls.map(headerFileName);
      assert.equal(new Set(names).size, names.length);
    }),
    { numRuns: 300 },
  );
});

test("property: names that differ only in case come from bare host names", () => {
  // On case-insensitive file systems such names share a file; the rule keeps this to unmarked names,
  // which are host names without path, port or query, and hosts compare without case (RFC 4343).
  fc.assert(
    fc.property(fc.uniqueArray(urlish, { minLength: 2, maxLength: 50, selector: key }), (urls) => {
      const seen = new Map<string, string>();
      for (const url of urls) {
        const name = headerFileName(url);
        const folded = name.toLowerCase();
        const other = seen.get(folded);
        if (other !== undefined) {
          assert.doesNotMatch(name, MARK, `${url} vs ${other}`);
          assert.equal(key(url).toLowerCase(), key(other).toLowerCase());
        }
        seen.set(folded, url);
      }
    }),
    { numRuns: 300 },
  );
});

test("the same URL always gives the same name", () => {
  fc.assert(fc.property(urlish, (url) => assert.equal(headerFileName(url), headerFileName(url))));
});
