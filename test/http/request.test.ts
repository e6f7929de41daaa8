import { test } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import { HeadwireError } from "../../src/errors.js";
import { buildRequest, isFieldValueBytes, isSendableFieldValue } from "../../src/http/request.js";
import { parseTarget, type FetchTarget } from "../../src/url/target.js";

function assertCode(fn: () => unknown, code: string): void {
  assert.throws(fn, (error: unknown) => error instanceof HeadwireError && error.code === code);
}

const text = (request: Buffer): string => request.toString("latin1");

test("the request curl sends by default: request-line, Host, User-Agent, Accept, no Connection field", () => {
  assert.equal(
    text(buildRequest(parseTarget("http://example.com/a?b=1#frag"), "GET", "headwire/test", {})),
    "GET /a?b=1 HTTP/1.1\r\nHost: example.com\r\nUser-Agent: headwire/test\r\nAccept: */*\r\n\r\n",
  );
  assert.equal(
    text(buildRequest(parseTarget("https://[::1]:8443"), "HEAD", "headwire/0.1.0", {})),
    "HEAD / HTTP/1.1\r\nHost: [::1]:8443\r\nUser-Agent: headwire/0.1.0\r\nAccept: */*\r\n\r\n",
  );
});

test("conditional fields follow the fixed ones, in the order given; absent ones are skipped", () => {
  const target = parseTarget("example.com");
  const request = text(
    buildRequest(target, "GET", "ua", {
      "If-None-Match": '"v1"',
      "If-Modified-Since": "Sat, 02 May 2020 03:36:34 GMT",
    }),
  );
  assert.ok(
    request.endsWith('Accept: */*\r\nIf-None-Match: "v1"\r\nIf-Modified-Since: Sat, 02 May 2020 03:36:34 GMT\r\n\r\n'),
    request,
  );
  const onlyDate = text(buildRequest(target, "GET", "ua", { "If-None-Match": undefined, "If-Modified-Since": "x" }));
  assert.ok(onlyDate.endsWith("Accept: */*\r\nIf-Modified-Since: x\r\n\r\n"), onlyDate);
});

test("a path or Host that cannot be sent is INVALID_URL", () => {
  const target = parseTarget("http://example.com/");
  const with_ = (change: Partial<FetchTarget>): FetchTarget => ({ ...target, ...change });
  assertCode(() => buildRequest(with_({ path: "/a b" }), "GET", "ua", {}), "INVALID_URL");
  assertCode(() => buildRequest(with_({ path: "/a\r\nX-Injected: 1" }), "GET", "ua", {}), "INVALID_URL");
  assertCode(() => buildRequest(with_({ path: "/caf\xe9" }), "GET", "ua", {}), "INVALID_URL");
  assertCode(() => buildRequest(with_({ path: "" }), "GET", "ua", {}), "INVALID_URL");
  assertCode(() => buildRequest(with_({ hostHeader: "a\tb" }), "GET", "ua", {}), "INVALID_URL");
});

test("a conditional value that cannot be sent is ORIGIN_ERROR, never a second field", () => {
  const target = parseTarget("example.com");
  assertCode(() => buildRequest(target, "GET", "ua", { "If-None-Match": '"a"\r\nX-Injected: 1' }), "ORIGIN_ERROR");
  assertCode(() => buildRequest(target, "GET", "ua", { "If-Modified-Since": "" }), "ORIGIN_ERROR");
  assertCode(() => buildRequest(target, "GET", "ua", { "If-None-Match": '"a"\nX: 1' }), "ORIGIN_ERROR");
  assertCode(() => buildRequest(target, "GET", "ua", { "If-None-Match": '"a\x00"' }), "ORIGIN_ERROR");
  assertCode(() => buildRequest(target, "GET", "ua", { "If-None-Match": '"a\x7f"' }), "ORIGIN_ERROR");
  assertCode(() => buildRequest(target, "GET", "ua", { "If-None-Match": '"caf\u20ac"' }), "ORIGIN_ERROR");
  assertCode(() => buildRequest(target, "GET", "ua", { "If-None-Match": ' "a"' }), "ORIGIN_ERROR");
});

test("an ETag with obs-text (RFC 9110 §8.8.3) goes back byte for byte, never refused", () => {
  const target = parseTarget("example.com");
  const request = buildRequest(target, "GET", "ua", { "If-None-Match": 'W/"caf\xe9", "\x80\xff"' });
  const expected = Buffer.concat([
    Buffer.from('If-None-Match: W/"caf'),
    Buffer.from([0xe9]),
    Buffer.from('", "'),
    Buffer.from([0x80, 0xff]),
    Buffer.from('"\r\n\r\n'),
  ]);
  assert.ok(request.subarray(request.length - expected.length).equals(expected), text(request));
  assert.ok(isFieldValueBytes("a\tb"));
  for (const value of ["", " a", "a ", "a\rb", "a\x00", "\x85\u0100"]) assert.equal(isFieldValueBytes(value), false);
});

test("property: a latin1 field value goes out as its own bytes, or is refused when RFC 9110 §5.5 forbids it", () => {
  const byte = fc.integer({ min: 0, max: 0xff }).map((c) => String.fromCharCode(c));
  const target = parseTarget("example.com");
  fc.assert(
    fc.property(fc.string({ unit: byte, minLength: 1 }), (value) => {
      const allowed = /^[^\x00-\x20\x7f](?:[^\x00-\x08\x0a-\x1f\x7f]*[^\x00-\x20\x7f])?$/.test(value);
      let request: Buffer;
      try {
        request = buildRequest(target, "GET", "ua", { "If-None-Match": value });
      } catch (error) {
        assert.ok(!allowed && error instanceof HeadwireError && error.code === "ORIGIN_ERROR", JSON.stringify(value));
        return;
      }
      assert.ok(allowed, JSON.stringify(value));
      const tail = Buffer.from(`If-None-Match: ${value}\r\n\r\n`, "latin1");
      assert.ok(request.subarray(request.length - tail.length).equals(tail));
      assert.equal(request.toString("latin1").split("\r\n").length, 7, "no line was added");
    }),
  );
});

test("a sendable field value is non-empty printable ASCII", () => {
  assert.ok(isSendableFieldValue("headwire/0.1.0 (+https://example.com)"));
  for (const value of ["", "a\tb", "a\r\nb", "caf\xe9", "\x7f"]) assert.equal(isSendableFieldValue(value), false);
});

test("property: every request is CRLF lines of printable ASCII, ending in one empty line", () => {
  const visible = fc.string({ unit: fc.integer({ min: 0x21, max: 0x7e }).map((c) => String.fromCharCode(c)) });
  const printable = fc.string({ unit: fc.integer({ min: 0x20, max: 0x7e }).map((c) => String.fromCharCode(c)) });
  fc.assert(
    fc.property(
      visible.map((p) => `/${p}`),
      fc.constantFrom<"GET" | "HEAD">("GET", "HEAD"),
      printable.filter((v) => v !== ""),
      fc.record({ "If-None-Match": printable, "If-Modified-Since": printable }, { requiredKeys: [] }),
      (path, method, userAgent, conditional) => {
        const target = { ...parseTarget("example.com"), path };
        // RFC 9110 §5.5: a field value neither is empty nor starts or ends with whitespace.
        const sendable = Object.values(conditional).every((value) => /^[^ ](?:.*[^ ])?$/.test(value));
        let request: string;
        try {
          request = text(buildRequest(target, method, userAgent, conditional));
        } catch (error) {
          assert.ok(!sendable && error instanceof HeadwireError && error.code === "ORIGIN_ERROR");
          return;
        }
        assert.ok(sendable);
        assert.ok(request.endsWith("\r\n\r\n"));
        const lines = request.slice(0, -4).split("\r\n");
        assert.equal(lines[0], `${method} ${path} HTTP/1.1`);
        assert.equal(lines.length, 4 + Object.values(conditional).length);
        for (const line of lines) assert.match(line, /^[\x20-\x7e]+$/);
      },
    ),
  );
});
