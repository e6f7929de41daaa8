import { test } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import { HeadwireError } from "../../src/errors.js";
import { fieldValues, HeaderBlockScanner, isInterimStatus, scanHeaderBlocks } from "../../src/http/header-block.js";

const bytes = (text: string): Buffer => Buffer.from(text, "latin1");

function assertCode(fn: () => unknown, code: string): void {
  assert.throws(fn, (error: unknown) => error instanceof HeadwireError && error.code === code);
}

/** Feeds the input one byte at a time and returns the header bytes. */
function scanByteByByte(input: Buffer, max?: number): Buffer | undefined {
  const scanner = new HeaderBlockScanner(max);
  for (let i = 0; i < input.length; i++) {
    if (scanner.push(input.subarray(i, i + 1))) return scanner.header();
  }
  return undefined;
}

const EXACT_CASES: Record<string, { header: string; status: number }> = {
  crlf: { header: "HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: 5\r\n\r\n", status: 200 },
  "bare LF": { header: "HTTP/1.1 404 Not Found\nServer: x\n\n", status: 404 },
  "mixed line ends": { header: "HTTP/1.1 200 OK\r\nA: b\nC: d\r\n\n", status: 200 },
  "obs-fold": { header: "HTTP/1.1 200 OK\r\nX-Folded: one\r\n  two\r\n\tthree\r\nY: z\r\n\r\n", status: 200 },
  "non-ASCII and duplicates": {
    header: "HTTP/1.1 200 OK\r\nset-cookie: a=1\r\nSet-Cookie: b=2\r\nX-Name: caf\xe9 \xff\r\nSET-COOKIE: c=3\r\n\r\n",
    status: 200,
  },
  "HTTP/1.0": { header: "HTTP/1.0 302 Found\r\nLocation: /x\r\n\r\n", status: 302 },
  "no reason phrase": { header: "HTTP/1.1 204\r\nX: y\r\n\r\n", status: 204 },
  "no fields": { header: "HTTP/1.1 200 OK\n\n", status: 200 },
  "unregistered status": { header: "HTTP/1.1 999 Request denied\r\n\r\n", status: 999 },
  "103 then 200": {
    header: "HTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\n\r\nHTTP/1.1 200 OK\r\nA: b\r\n\r\n",
    status: 200,
  },
  "100, 103 then 404": {
    header: "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\nLink: </b>\n\nHTTP/1.1 404 Nope\r\n\r\n",
    status: 404,
  },
  "101 is final": { header: "HTTP/1.1 101 Switching Protocols\r\nUpgrade: x\r\n\r\n", status: 101 },
  "a line starting with CR ends the section (as curl does)": {
    header: "HTTP/1.1 200 OK\r\nA: b\r\n\rjunk\r\n",
    status: 200,
  },
};

test("the header is exactly the bytes up to the end of the final section; the body is not part of it", () => {
  for (const [name, { header, status }] of Object.entries(EXACT_CASES)) {
    const input = Buffer.concat([bytes(header), bytes("body\r\n\r\nHTTP/1.1 200 OK\r\n\r\n")]);
    const scan = scanHeaderBlocks(input);
    assert.ok(scan, name);
    assert.equal(scan.end, header.length, name);
    assert.equal(scan.status, status, name);
    assert.deepEqual(scanByteByByte(input), bytes(header), name);
  }
});

test("interim sections are reported as blocks before the final one", () => {
  const header = EXACT_CASES["100, 103 then 404"]!.header;
  const scan = scanHeaderBlocks(bytes(header));
  assert.deepEqual(
    scan?.blocks.map((b) => b.status),
    [100, 103, 404],
  );
  assert.equal(scan?.blocks[0]?.start, 0);
  assert.equal(scan?.blocks[1]?.start, scan?.blocks[0]?.end);
  assert.equal(scan?.blocks[2]?.end, header.length);
  assert.equal(isInterimStatus(103), true);
  assert.equal(isInterimStatus(101), false);
  assert.equal(isInterimStatus(200), false);
});

test("an unfinished header is undefined, including one that has only interim sections", () => {
  assert.equal(scanHeaderBlocks(bytes("HTTP/1.1 200 OK\r\nA: b\r\n")), undefined);
  assert.equal(scanHeaderBlocks(bytes("HTTP/1.1 200 OK\r\nA: b\r\n\r")), undefined);
  assert.equal(scanHeaderBlocks(bytes("HTTP/1.1 103 Early Hints\r\n\r\n")), undefined);
  assert.equal(scanHeaderBlocks(bytes("HTTP/1.1 10")), undefined);
  assert.equal(scanHeaderBlocks(bytes("")), undefined);
});

test("bytes that cannot start an HTTP/1.x status line are NOT_HTTP, detected at the first wrong byte", () => {
  for (const input of [
    "SSH-2.0-OpenSSH_9.0\r\n",
    "http/1.1 200 OK\r\n\r\n",
    "\r\nHTTP/1.1 200 OK\r\n\r\n",
    " HTTP/1.1 200 OK\r\n\r\n",
    "HTTP/1.1 2000 OK\r\n\r\n",
    "HTTP/1.1 099 OK\r\n\r\n",
    "HTTP/11 200 OK\r\n\r\n",
    "HTTP/2 200\r\n\r\n",
    "HTTP/1.1 20\r\n\r\n",
    "HTTP/1.1  200 OK\r\n\r\n",
    "<html>hello</html>",
    "\x16\x03\x01\x00",
  ]) {
    // From an origin's socket only HTTP/1.x is HTTP.
    assertCode(() => new HeaderBlockScanner().push(bytes(input)), "NOT_HTTP");
    if (!input.startsWith("HTTP/2 ")) assertCode(() => scanHeaderBlocks(bytes(input)), "NOT_HTTP");
  }
  assertCode(() => new HeaderBlockScanner().push(bytes("S")), "NOT_HTTP");
  assertCode(() => new HeaderBlockScanner().push(bytes("HTTP/1.1 103 Early\r\n\r\ngarbage")), "NOT_HTTP");
});

test("HEADER_TOO_LARGE as soon as the header cannot end within the limit", () => {
  const header = bytes("HTTP/1.1 200 OK\r\nA: b\r\n\r\n");
  assert.ok(scanHeaderBlocks(header, header.length), "exactly at the limit");
  assertCode(() => scanHeaderBlocks(header, header.length - 1), "HEADER_TOO_LARGE");
  // Unfinished and already at the limit: it cannot end in time.
  assertCode(() => scanHeaderBlocks(header.subarray(0, 10), 10), "HEADER_TOO_LARGE");
  // Interim sections count.
  const withHints = bytes(`HTTP/1.1 103 Early Hints\r\nLink: ${"x".repeat(100)}\r\n\r\nHTTP/1.1 200 OK\r\n\r\n`);
  assertCode(() => scanHeaderBlocks(withHints, 100), "HEADER_TOO_LARGE");
  // A body after the header does not count.
  assert.ok(scanHeaderBlocks(Buffer.concat([header, Buffer.alloc(1000)]), header.length));
});

test("finish() reports ORIGIN_CLOSED for an unfinished header and the scan for a finished one", () => {
  const scanner = new HeaderBlockScanner();
  assertCode(() => scanner.finish(), "ORIGIN_CLOSED");
  scanner.push(bytes("HTTP/1.1 200 OK\r\n"));
  assert.throws(() => scanner.finish(), /after 17 header bytes/);
  scanner.push(bytes("\r\n"));
  assert.equal(scanner.finish().status, 200);
  assert.equal(scanner.bytesSeen, 19);
});

test("pushing more after the end keeps the header unchanged", () => {
  const scanner = new HeaderBlockScanner();
  assert.equal(scanner.push(bytes("HTTP/1.1 200 OK\r\n\r\nbody")), true);
  assert.equal(scanner.push(bytes("SSH garbage")), true);
  assert.deepEqual(scanner.header(), bytes("HTTP/1.1 200 OK\r\n\r\n"));
});

test("fieldValues reads a section's fields: case-insensitive names, duplicates in order, obs-fold joined", () => {
  const section = bytes(
    "HTTP/1.1 301 Moved\r\nLocation:  /a \r\nlocation:/b\nX-Fold: one\r\n  two\r\n\tthree\r\nX-Byte: caf\xe9\r\n\r\nLocation: /body\r\n",
  );
  assert.deepEqual(fieldValues(section, "LOCATION"), ["/a", "/b"]);
  assert.deepEqual(fieldValues(section, "x-fold"), ["one two three"]);
  assert.deepEqual(fieldValues(section, "x-byte"), ["caf\xe9"]);
  assert.deepEqual(fieldValues(section, "missing"), []);
});

const lineEnd = fc.constantFrom("\r\n", "\n");
const fieldLine = fc
  .tuple(
    fc.stringMatching(/^[A-Za-z-]{1,12}$/),
    fc
      .uint8Array({ maxLength: 30 })
      .map((a) => Buffer.from(a.filter((b) => b !== 0x0a && b !== 0x0d)).toString("latin1")),
    lineEnd,
  )
  .map(([name, value, end]) => `${name}:${value}${end}`);
const section = (status: fc.Arbitrary<number>): fc.Arbitrary<string> =>
  fc
    .tuple(status, fc.constantFrom("1.0", "1.1"), fc.array(fieldLine, { maxLength: 8 }), lineEnd, lineEnd)
    .map(
      ([code, version, fields, statusEnd, blankEnd]) =>
        `HTTP/${version} ${code} R${statusEnd}${fields.join("")}${blankEnd}`,
    );
const interimStatus = fc.constantFrom(100, 102, 103);
const finalStatus = fc.integer({ min: 200, max: 599 });

test("property: any split of the stream yields the same header, exactly the interim and final sections", () => {
  fc.assert(
    fc.property(
      fc.array(section(interimStatus), { maxLength: 3 }),
      section(finalStatus),
      fc.uint8Array({ maxLength: 40 }),
      fc.array(fc.nat(), { maxLength: 6 }),
      (interims, final, body, cuts) => {
        const header = bytes(interims.join("") + final);
        const stream = Buffer.concat([header, body]);
        const points = [...new Set(cuts.map((c) => c % (stream.length + 1)))].sort((a, b) => a - b);
        const scanner = new HeaderBlockScanner();
        let previous = 0;
        for (const point of [...points, stream.length]) {
          scanner.push(stream.subarray(previous, point));
          previous = point;
        }
        assert.equal(scanner.done, true);
        assert.deepEqual(scanner.header(), header);
        assert.equal(scanner.result().blocks.length, interims.length + 1);
      },
    ),
    { numRuns: 500 },
  );
});

test("a stored header may have HTTP/2's rendered status lines (HTTP/2 200), interim ones included", () => {
  const scan = scanHeaderBlocks(bytes('HTTP/2 103\r\nlink: </a>\r\n\r\nHTTP/2 200\r\netag: "x"\r\n\r\n'));
  assert.ok(scan);
  assert.deepEqual(
    scan.blocks.map((b) => b.status),
    [103, 200],
  );
  assert.equal(scanHeaderBlocks(bytes("HTTP/2 304\r\n\r\n"))?.status, 304);
  for (const bad of ["HTTP/22 200\r\n\r\n", "HTTP/2 20\r\n\r\n", "HTTP/2 2000\r\n\r\n", "HTTP/2  200\r\n\r\n"]) {
    assertCode(() => scanHeaderBlocks(bytes(bad)), "NOT_HTTP");
  }
  assertCode(() => new HeaderBlockScanner().push(bytes("HTTP/2 200\r\n\r\n")), "NOT_HTTP");
});
