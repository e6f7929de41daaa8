import { test } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import { HeadwireError } from "../../src/errors.js";
import { buildRequest, isSendableFieldValue } from "../../src/http/request.js";
import { parseTarget, type FetchTarget } from "../../src/url/target.js";

function assertCode(fn: () => unknown, code: string): void {
  assert.throws(fn, (error: unknown) => error instanceof HeadwireError && error.code === code);
}

const text = (request: Buffer): string => request.toString("latin1");

test("a minimal HTTP/1.1 request: request-line, Host, User-Agent, Accept, Connection: close", () => {
  assert.equal(
    text(buildRequest(parseTarget("http://example.com/a?b=1#frag"), "GET", "headwire/test", {})),
    "GET /a?b=1 HTTP/1.1\r\nHost: example.com\r\nUser-Agent: headwire/test\r\nAccept: */*\r\nConnection: close\r\n\r\n",
  );
  assert.equal(
    text(buildRequest(parseTarget("https://[::1]:8443"), "HEAD", "headwire/0.1.0", {})),
    "HEAD / HTTP/1.1\r\nHost: [::1]:8443\r\nUser-Agent: headwire/0.1.0\r\nAccept: */*\r\nConnection: close\r\n\r\n",
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
    request.endsWith(
      'Connection: close\r\nIf-None-Match: "v1"\r\nIf-Modified-Since: Sat, 02 May 2020 03:36:34 GMT\r\n\r\n',
    ),
    request,
  );
  const onlyDate = text(buildRequest(target, "GET", "ua", { "If-None-Match": undefined, "If-Modified-Since": "x" }));
  assert.ok(onlyDate.endsWith("Connection: close\r\nIf-Modified-Since: x\r\n\r\n"), onlyDate);
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
  assertCode(() => buildRequest(target, "GET", "ua", { "If-None-Match": '"caf\xe9"' }), "ORIGIN_ERROR");
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
        const sendable = Object.values(conditional).every((value) => value !== "");
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
        assert.equal(lines.length, 5 + Object.values(conditional).length);
        for (const line of lines) assert.match(line, /^[\x20-\x7e]+$/);
      },
    ),
  );
});
