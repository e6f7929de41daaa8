import assert from "node:assert/strict";
import { PassThrough } from "node:stream";
import { test } from "node:test";
import fc from "fast-check";
import {
  formatErrorLine,
  formatJsonLine,
  formatResultLine,
  headerForStream,
  ResultPrinter,
  toRecord,
  visibleInLine,
} from "../../src/cli/client-output.js";
import { PLAIN_STYLE, styleFor, visible } from "../../src/cli/terminal-style.js";

/** C0 and C1 controls and DEL: none may reach a terminal or a --json line raw. */
const CONTROL = /[\u0000-\u001f\u007f-\u009f]/;
/** An origin's status line that reads as a 200 when its bare CR reaches a terminal. */
const SPOOFED = "HTTP/1.1 500 Bad\rHTTP/1.1 200 OK";

test("--json record: every field, in order, null where absent", () => {
  const header = Buffer.from("HTTP/1.1 200 OK\r\n\r\n");
  assert.deepEqual(
    Object.entries(
      toRecord({ url: "a", file: "o/a.txt", status: 200, statusLine: "x", bytes: 19, cache: "HIT", ms: 3, header }),
    ),
    [
      ["url", "a"],
      ["file", "o/a.txt"],
      ["status", 200],
      ["bytes", 19],
      ["cache", "HIT"],
      ["ms", 3],
      ["error", null],
      ["exit", 0],
    ],
  );
  assert.deepEqual(toRecord({ url: "b", ms: 1, error: { code: "DNS_NOT_FOUND", message: "no such host" } }), {
    url: "b",
    file: null,
    status: null,
    bytes: null,
    cache: null,
    ms: 1,
    error: { code: "DNS_NOT_FOUND", message: "no such host" },
    exit: 6,
  });
});

test("error lines stay one line and show no terminal controls from the network", () => {
  const line = formatErrorLine("x\u001b[2Jy", "ORIGIN_ERROR", "bad\r\nthing\u0007", PLAIN_STYLE);
  assert.equal(line, "x\\x1b[2Jy: error ORIGIN_ERROR: bad thing\\x07 — The connection to the origin failed.\n");
  assert.equal(line.split("\n").length, 2);
});

test("result line; a hostile status line is made visible", () => {
  const line = formatResultLine(
    {
      url: "u",
      file: "u.txt",
      status: 200,
      statusLine: "HTTP/1.1 200 \u001b]0;pwned\u0007",
      bytes: 9,
      cache: "MISS",
      ms: 4,
    },
    PLAIN_STYLE,
  );
  assert.equal(line, "HTTP/1.1 200 \\x1b]0;pwned\\x07 | 9 bytes | MISS | 4 ms | u.txt\n");
  assert.equal(visible("tab\tand\r\nline ends stay; caf\u00e9 too"), "tab\tand\r\nline ends stay; caf\u00e9 too");
});

test("colours only on a terminal, and never with NO_COLOR or TERM=dumb", () => {
  assert.equal(styleFor({ isTTY: true }, {}).enabled, true);
  assert.equal(styleFor({ isTTY: false }, {}).enabled, false);
  assert.equal(styleFor({ isTTY: true }, { NO_COLOR: "1" }).enabled, false);
  assert.equal(styleFor({ isTTY: true }, { NO_COLOR: "" }).enabled, true);
  assert.equal(styleFor({ isTTY: true }, { TERM: "dumb" }).enabled, false);
});

test("--print keeps the bytes for a pipe; quiet batch mode prints failures only", async () => {
  const stdout = new PassThrough();
  const errors: string[] = [];
  const header = Buffer.from([0x48, 0x1b, 0xe9, 0x0a]);
  const printer = new ResultPrinter({
    mode: "print",
    stdout,
    errorLine: (text) => errors.push(text),
    outStyle: PLAIN_STYLE,
    errStyle: PLAIN_STYLE,
  });
  await printer.report({ url: "u", ms: 1, header, status: 200, bytes: 4, cache: "MISS" });
  assert.deepEqual(stdout.read(), header);
  const quiet = new ResultPrinter({
    mode: "lines",
    stdout,
    errorLine: (text) => errors.push(text),
    outStyle: PLAIN_STYLE,
    errStyle: PLAIN_STYLE,
    quietSuccess: true,
  });
  await quiet.report({ url: "u", ms: 1, header, status: 200, bytes: 4, cache: "MISS" });
  await quiet.report({ url: "v", ms: 1, error: { code: "INVALID_URL", message: "bad" } });
  assert.equal(stdout.read(), null);
  assert.deepEqual(errors, ["v: error INVALID_URL: bad — The URL cannot be parsed; check its spelling.\n"]);
});

test("a bare CR in a status line is shown as \\x0d in the result line, never raw", () => {
  const line = formatResultLine(
    { url: "u", file: "u.txt", status: 500, statusLine: SPOOFED, bytes: 9, cache: "MISS", ms: 4 },
    PLAIN_STYLE,
  );
  assert.equal(line, "HTTP/1.1 500 Bad\\x0dHTTP/1.1 200 OK | 9 bytes | MISS | 4 ms | u.txt\n");
  assert.equal(visibleInLine("a\tb\nc\u009b"), "a\\x09b\\x0ac\\x9b");
});

test("--print to a terminal: controls and a CR that ends no line are escaped, line ends kept", () => {
  const header = Buffer.from(`${SPOOFED}\r\nX-A: \u001b[2J\r\n\r\n`, "latin1");
  assert.equal(
    headerForStream(header, { isTTY: true }),
    "HTTP/1.1 500 Bad\\x0dHTTP/1.1 200 OK\r\nX-A: \\x1b[2J\r\n\r\n",
  );
  assert.equal(headerForStream(header, { isTTY: false }), header, "a pipe gets the bytes");
});

test("property: a --json line holds no control character and parses back to the record", () => {
  fc.assert(
    fc.property(fc.string({ unit: "binary" }), fc.string({ unit: "binary" }), (url, message) => {
      const result = { url, ms: 1, error: { code: "ORIGIN_ERROR" as const, message } };
      const line = formatJsonLine(result);
      assert.ok(line.endsWith("\n"));
      assert.doesNotMatch(line.slice(0, -1), CONTROL);
      assert.doesNotMatch(line, /[\u2028\u2029]/);
      assert.deepEqual(JSON.parse(line), toRecord(result));
    }),
  );
  assert.equal(
    formatJsonLine({ url: "u", ms: 1, error: { code: "ORIGIN_ERROR", message: "\r\u009b31m\u007f" } }),
    '{"url":"u","file":null,"status":null,"bytes":null,"cache":null,"ms":1,"error":{"code":"ORIGIN_ERROR","message":"\\r\\u009b31m\\u007f"},"exit":7}\n',
  );
});

test("notices (a new ticket, a fallback to TCP) go to standard error in every mode; --json records keep their fields", async () => {
  for (const mode of ["lines", "json", "print"] as const) {
    const stdout = new PassThrough();
    const errors: string[] = [];
    const printer = new ResultPrinter({
      mode,
      stdout,
      errorLine: (text) => errors.push(text),
      outStyle: PLAIN_STYLE,
      errStyle: PLAIN_STYLE,
    });
    const notices = ["UDP to 127.0.0.1:9 seems blocked (no datagram arrived)\r\u001b[2J"];
    const header = Buffer.from("HTTP/1.1 200 OK\r\n\r\n");
    await printer.report({ url: "u", ms: 1, header, status: 200, bytes: header.length, cache: "MISS", notices });
    assert.deepEqual(
      errors,
      ["headwire client: UDP to 127.0.0.1:9 seems blocked (no datagram arrived)\\x0d\\x1b[2J\n"],
      mode,
    );
    const out = String(stdout.read() ?? "");
    assert.ok(!out.includes("blocked"), `${mode}: not on standard output`);
    if (mode === "json")
      assert.deepEqual(Object.keys(JSON.parse(out)), [
        "url",
        "file",
        "status",
        "bytes",
        "cache",
        "ms",
        "error",
        "exit",
      ]);
  }
});
