import { test } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import {
  HTTP1_STATUS_CHECKED_BYTES,
  HTTP1_STATUS_MIN_BYTES,
  http1StatusByteValid,
  parseStatusLine,
} from "../../src/http/status-line.js";

test("parses HTTP/1.x status lines, with or without a reason, with or without the CR", () => {
  assert.deepEqual(parseStatusLine("HTTP/1.1 200 OK"), { version: "1.1", status: 200, reason: "OK" });
  assert.deepEqual(parseStatusLine("HTTP/1.0 404 Not Found\r"), { version: "1.0", status: 404, reason: "Not Found" });
  assert.deepEqual(parseStatusLine("HTTP/1.1 301 "), { version: "1.1", status: 301, reason: "" });
  assert.deepEqual(parseStatusLine("HTTP/1.1 204"), { version: "1.1", status: 204, reason: "" });
  assert.deepEqual(parseStatusLine("HTTP/1.1 200 caf\xe9  \t!"), {
    version: "1.1",
    status: 200,
    reason: "caf\xe9  \t!",
  });
});

test("parses the HTTP/2 and HTTP/3 form curl writes", () => {
  assert.deepEqual(parseStatusLine("HTTP/2 200"), { version: "2", status: 200, reason: "" });
  assert.deepEqual(parseStatusLine("HTTP/2 302 \r"), { version: "2", status: 302, reason: "" });
  assert.deepEqual(parseStatusLine("HTTP/3 404"), { version: "3", status: 404, reason: "" });
});

test("anything else is not a status line", () => {
  for (const line of [
    "",
    "HTTP/1.1",
    "HTTP/1.1 20",
    "HTTP/1.1 2000",
    "HTTP/1.1 099 Low",
    "HTTP/1.1  200 OK",
    "HTTP/1.11 200 OK",
    "HTTP/12 200",
    "HTTP/ 200",
    "http/1.1 200 OK",
    "ICY 200 OK",
    " HTTP/1.1 200 OK",
    "HTTP/1: a field line that looks like one",
    "Location: HTTP/1.1 200",
  ]) {
    assert.equal(parseStatusLine(line), undefined, JSON.stringify(line));
  }
});

const httpVersion = fc.constantFrom("1.0", "1.1", "2", "3", "0.9");
const statusCode = fc.integer({ min: 100, max: 999 });
const reason = fc.string({ unit: "binary", maxLength: 40 }).filter((s) => !s.includes("\n") && !s.endsWith("\r"));

test("property: formatting a status line and parsing it gives back its parts", () => {
  fc.assert(
    fc.property(httpVersion, statusCode, reason, fc.boolean(), (version, status, text, crlf) => {
      const line = `HTTP/${version} ${status} ${text}${crlf ? "\r" : ""}`;
      assert.deepEqual(parseStatusLine(line), { version, status, reason: text });
    }),
  );
});

/** Whether every checked byte of `line` passes the incremental HTTP/1.x check. */
function passesByteCheck(line: string): boolean {
  const checked = Math.min(line.length, HTTP1_STATUS_CHECKED_BYTES);
  for (let i = 0; i < checked; i++) if (!http1StatusByteValid(i, line.charCodeAt(i))) return false;
  return line.length >= HTTP1_STATUS_MIN_BYTES;
}

test("the incremental check accepts HTTP/1.x status lines and rejects the first wrong byte", () => {
  assert.ok(passesByteCheck("HTTP/1.1 200 OK"));
  assert.ok(passesByteCheck("HTTP/1.0 404\r"));
  assert.ok(passesByteCheck("HTTP/1.1 204"));
  assert.equal(http1StatusByteValid(0, "h".charCodeAt(0)), false);
  assert.equal(http1StatusByteValid(6, " ".charCodeAt(0)), false, "HTTP/2 is not an HTTP/1.x answer");
  assert.equal(http1StatusByteValid(9, "0".charCodeAt(0)), false, "a status code starts with 1-9");
  assert.equal(http1StatusByteValid(12, "0".charCodeAt(0)), false, "a status code has three digits");
  assert.equal(http1StatusByteValid(12, "\t".charCodeAt(0)), false);
});

test("property: the incremental check and the parser agree on HTTP/1.x status lines", () => {
  const line = fc.oneof(
    fc
      .tuple(fc.constantFrom("1.0", "1.1", "2.0", "9.9"), statusCode, fc.constantFrom("", " ", " OK", "\r"))
      .map(([version, status, rest]) => `HTTP/${version} ${status}${rest}`),
    fc.string({ unit: "binary-ascii", maxLength: 16 }),
    fc.string({ unit: fc.constantFrom("H", "T", "P", "/", "1", ".", " ", "2", "0", "\r"), maxLength: 16 }),
  );
  fc.assert(
    fc.property(line, (text) => {
      if (!passesByteCheck(text)) return;
      const prefix = text.slice(0, HTTP1_STATUS_CHECKED_BYTES);
      const parsed = parseStatusLine(prefix);
      assert.ok(parsed !== undefined, JSON.stringify(prefix));
      assert.equal(parsed.status, Number(text.slice(9, 12)));
      assert.match(parsed.version, /^\d\.\d$/);
    }),
    { numRuns: 1000 },
  );
});
