import { test } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import { createHash } from "node:crypto";
import {
  HeadwireError,
  isErrorCode,
  isWireErrorCode,
  ERROR_CODES,
  LOCAL_ERROR_CODES,
  WIRE_ERROR_CODES,
  type ErrorCode,
  type LocalErrorCode,
  type WireErrorCode,
} from "../../src/errors.js";
import { DEFAULT_QUERY_OPTIONS, MAX_REDIRECTS } from "../../src/http/query-options.js";
import {
  BYE_LINE,
  PONG_LINE,
  LineDecoder,
  formatError,
  formatGreeting,
  formatQuery,
  formatTcpTicket,
  formatTicket,
  parseClientMessage,
  parsePlainQuery,
  parseServerMessage,
  ReplyDecoder,
  type CacheOutcome,
  type ReplyEvent,
  type TcpTicket,
  type LineEvent,
  type Ticket,
} from "../../src/protocol/control.js";

/** Events in a comparable form: the text of a line, or the code of an error. */
function summarise(events: LineEvent[]): string[] {
  return events.map((e) => (e.kind === "line" ? `line:${e.text}` : `error:${e.error.code}`));
}

function decodeAll(maxLineBytes: number, chunks: Buffer[]): string[] {
  const decoder = new LineDecoder(maxLineBytes);
  return summarise(chunks.flatMap((chunk) => decoder.push(chunk)));
}

/** Splits `bytes` at the given cut points (any order, duplicates allowed). */
function splitAt(bytes: Buffer, cuts: number[]): Buffer[] {
  const points = [...new Set(cuts.map((c) => c % (bytes.length + 1)))].sort((a, b) => a - b);
  const chunks: Buffer[] = [];
  let start = 0;
  for (const point of [...points, bytes.length]) {
    chunks.push(bytes.subarray(start, point));
    start = point;
  }
  return chunks;
}

// Streams rich in line ends, CRs, over-long runs, invalid UTF-8 and controls.
const streamByte = fc.oneof(
  { weight: 6, arbitrary: fc.integer({ min: 0x61, max: 0x7a }) },
  { weight: 2, arbitrary: fc.constantFrom(0x0a, 0x0d, 0x20, 0x09) },
  { weight: 1, arbitrary: fc.integer({ min: 0, max: 255 }) },
);
const stream = fc.array(streamByte, { maxLength: 400 }).map((bytes) => Buffer.from(bytes));

test("LineDecoder: any chunking of the same bytes yields the same events", () => {
  fc.assert(
    fc.property(stream, fc.array(fc.nat(), { maxLength: 20 }), fc.integer({ min: 1, max: 40 }), (bytes, cuts, max) => {
      const whole = decodeAll(max, [bytes]);
      assert.deepEqual(decodeAll(max, splitAt(bytes, cuts)), whole);
      assert.deepEqual(
        decodeAll(
          max,
          [...bytes].map((b) => Buffer.from([b])),
        ),
        whole,
      );
    }),
    { numRuns: 1000 },
  );
});

test("LineDecoder: holds at most one line's worth of bytes", () => {
  fc.assert(
    fc.property(stream, fc.array(fc.nat(), { maxLength: 20 }), fc.integer({ min: 1, max: 40 }), (bytes, cuts, max) => {
      const decoder = new LineDecoder(max);
      for (const chunk of splitAt(bytes, cuts)) {
        decoder.push(chunk);
        assert.ok(decoder.bufferedBytes <= max + 1, `${decoder.bufferedBytes} > ${max + 1}`);
      }
    }),
  );
});

test("LineDecoder: splits lines and drops one CR before LF", () => {
  assert.deepEqual(decodeAll(64, [Buffer.from("PING\r\nQUERY a\nTERMINATE\r\n")]), [
    "line:PING",
    "line:QUERY a",
    "line:TERMINATE",
  ]);
  assert.deepEqual(decodeAll(64, [Buffer.from("PING\r"), Buffer.from("\n")]), ["line:PING"]);
  assert.deepEqual(decodeAll(64, [Buffer.from("\n\r\n")]), ["line:", "line:"]);
  // Only one CR is a line end; a second is a control character in the line.
  assert.deepEqual(decodeAll(64, [Buffer.from("PING\r\r\n")]), ["error:BAD_ENCODING"]);
  // No LF yet: nothing.
  assert.deepEqual(decodeAll(64, [Buffer.from("PING")]), []);
});

test("LineDecoder: one LINE_TOO_LONG per over-long line, and the next line still decodes", () => {
  const max = 8;
  assert.deepEqual(decodeAll(max, [Buffer.from("12345678\n")]), ["line:12345678"]);
  assert.deepEqual(decodeAll(max, [Buffer.from("12345678\r\n")]), ["line:12345678"], "the CR does not count");
  assert.deepEqual(decodeAll(max, [Buffer.from("123456789\nPING\n")]), ["error:LINE_TOO_LONG", "line:PING"]);
  assert.deepEqual(decodeAll(max, [Buffer.from("123456789\r\nPING\n")]), ["error:LINE_TOO_LONG", "line:PING"]);
  const huge = Buffer.alloc(100_000, 0x61);
  assert.deepEqual(decodeAll(max, [huge, huge, Buffer.from("\nPING\n")]), ["error:LINE_TOO_LONG", "line:PING"]);
  const decoder = new LineDecoder(max);
  assert.deepEqual(summarise(decoder.push(huge)), ["error:LINE_TOO_LONG"]);
  assert.equal(decoder.bufferedBytes, 0, "an over-long line is not kept");
  assert.deepEqual(summarise(decoder.push(huge)), []);
  assert.deepEqual(summarise(decoder.push(Buffer.from("x\nA\n"))), ["line:A"]);
});

test("LineDecoder: BAD_ENCODING for invalid UTF-8 and control characters, tab allowed", () => {
  const bad = (bytes: number[]): string[] => decodeAll(64, [Buffer.from([...bytes, 0x0a])]);
  assert.deepEqual(bad([0xff]), ["error:BAD_ENCODING"]);
  assert.deepEqual(bad([0xc3]), ["error:BAD_ENCODING"], "truncated sequence");
  assert.deepEqual(bad([0xc0, 0xaf]), ["error:BAD_ENCODING"], "overlong encoding");
  assert.deepEqual(bad([0xed, 0xa0, 0x80]), ["error:BAD_ENCODING"], "UTF-16 surrogate");
  assert.deepEqual(bad([0x41, 0x00, 0x42]), ["error:BAD_ENCODING"], "NUL");
  assert.deepEqual(bad([0x41, 0x1b]), ["error:BAD_ENCODING"], "ESC");
  assert.deepEqual(bad([0x7f]), ["error:BAD_ENCODING"], "DEL");
  assert.deepEqual(bad([0x41, 0x0d, 0x42]), ["error:BAD_ENCODING"], "CR inside a line");
  assert.deepEqual(bad([0x51, 0x09, 0x61]), ["line:Q\ta"]);
  assert.deepEqual(decodeAll(64, [Buffer.from("ünïcödé ✓\n")]), ["line:ünïcödé ✓"]);
  assert.deepEqual(decodeAll(64, [Buffer.from([0xff, 0x0a]), Buffer.from("PING\n")]), [
    "error:BAD_ENCODING",
    "line:PING",
  ]);
});

test("LineDecoder: valid printable lines round-trip through any chunking", () => {
  const lineText = fc.string({ unit: "grapheme", maxLength: 30 }).filter((s) => !/[\u0000-\u001f\u007f]/.test(s));
  fc.assert(
    fc.property(fc.array(lineText, { maxLength: 10 }), fc.array(fc.nat(), { maxLength: 10 }), (lines, cuts) => {
      const bytes = Buffer.from(lines.map((l) => `${l}\r\n`).join(""));
      const maxLineBytes = Math.max(1, ...lines.map((l) => Buffer.byteLength(l)));
      assert.deepEqual(
        decodeAll(maxLineBytes, splitAt(bytes, cuts)),
        lines.map((l) => `line:${l}`),
      );
    }),
  );
});

test("parseClientMessage: QUERY, TERMINATE, PING", () => {
  assert.deepEqual(parseClientMessage("QUERY www.twitch.tv"), {
    kind: "query",
    url: "www.twitch.tv",
    options: DEFAULT_QUERY_OPTIONS,
    delivery: "udp",
  });
  assert.deepEqual(parseClientMessage("query \t http://a/b  "), {
    kind: "query",
    url: "http://a/b",
    options: DEFAULT_QUERY_OPTIONS,
    delivery: "udp",
  });
  assert.deepEqual(parseClientMessage("TERMINATE"), { kind: "terminate" });
  assert.deepEqual(parseClientMessage("terminate"), { kind: "terminate" });
  assert.deepEqual(parseClientMessage("PING"), { kind: "ping" });
});

test("parseClientMessage: query options", () => {
  assert.deepEqual(parseClientMessage("QUERY a method=HEAD redirects=5 chain=last http=2"), {
    kind: "query",
    url: "a",
    options: { ...DEFAULT_QUERY_OPTIONS, method: "HEAD", redirects: 5, chain: "last", http: "2" },
    delivery: "udp",
  });
  const options = (line: string): unknown => {
    const message = parseClientMessage(line);
    assert.equal(message.kind, "query");
    return message.kind === "query" ? message.options : undefined;
  };
  assert.deepEqual(options(`QUERY a redirects=${MAX_REDIRECTS}`), {
    ...DEFAULT_QUERY_OPTIONS,
    redirects: MAX_REDIRECTS,
  });
  assert.deepEqual(options("QUERY a redirects=0 chain=all method=GET http=auto"), DEFAULT_QUERY_OPTIONS);
  assert.deepEqual(options("QUERY a http=1.1"), { ...DEFAULT_QUERY_OPTIONS, http: "1.1" });
  for (const bad of [
    "QUERY a redirects=21",
    "QUERY a redirects=-1",
    "QUERY a redirects=",
    "QUERY a redirects=100",
    "QUERY a method=POST",
    "QUERY a method=get",
    "QUERY a chain=first",
    "QUERY a http=3",
    "QUERY a http=1.0",
    "QUERY a http=",
    "QUERY a colour=blue",
    "QUERY a extra",
    "QUERY a delivery=TCP",
    "QUERY a delivery=",
    "QUERY a delivery=quic",
    "QUERY a insecure=yes",
    "QUERY a insecure=",
    "QUERY a ip=5",
    "QUERY a ip=v4",
    "QUERY a cache=bypass",
    "QUERY a connect-timeout-ms=0",
    "QUERY a connect-timeout-ms=1.5",
    "QUERY a connect-timeout-ms=600001",
    "QUERY a max-time-ms=-1",
    "QUERY a max-time-ms=",
    "QUERY a header",
    "QUERY a header=",
    "QUERY a header=NoColon",
    "QUERY a header=:value",
    "QUERY a header=X-A:%zz",
  ]) {
    assertCode(() => parseClientMessage(bad), "BAD_REQUEST", bad);
  }
});

test("parseClientMessage: insecure, ip, cache, time limits and header= options", () => {
  const options = (line: string): unknown => {
    const message = parseClientMessage(line);
    return message.kind === "query" ? message.options : undefined;
  };
  assert.deepEqual(options("QUERY a insecure=1 ip=6 cache=refresh connect-timeout-ms=1500 max-time-ms=600000"), {
    ...DEFAULT_QUERY_OPTIONS,
    insecure: true,
    ip: "6",
    cache: "refresh",
    connectTimeoutMs: 1500,
    maxTimeMs: 600_000,
  });
  assert.deepEqual(options("QUERY a insecure=0 ip=any cache=use"), DEFAULT_QUERY_OPTIONS);
  assert.deepEqual(options("QUERY a header=User-Agent:curl/8.5.0 header=Accept: header=X-Two:a%20b%2C%20%E9"), {
    ...DEFAULT_QUERY_OPTIONS,
    headers: [
      { name: "User-Agent", value: "curl/8.5.0" },
      { name: "Accept", value: "" },
      { name: "X-Two", value: "a b, \u00e9" },
    ],
  });
  // Literal UTF-8 on the line is sent as its bytes, one char per byte.
  assert.deepEqual(options("QUERY a header=X-Word:café"), {
    ...DEFAULT_QUERY_OPTIONS,
    headers: [{ name: "X-Word", value: "caf\u00c3\u00a9" }],
  });
});

test("parseClientMessage: header= refuses the connection's fields and what is not field syntax, saying why", () => {
  const reason = (line: string): string => {
    try {
      parseClientMessage(line);
    } catch (error) {
      assert.equal((error as HeadwireError).code, "BAD_REQUEST", line);
      return (error as Error).message;
    }
    assert.fail(`${line} was accepted`);
  };
  for (const name of ["Host", "connection", "Content-Length", "Transfer-Encoding", "TE", "Upgrade", "Keep-Alive"]) {
    assert.match(reason(`QUERY a header=${name}:x`), new RegExp(`^header ${name} cannot be set: `), name);
  }
  assert.match(reason("QUERY a header=Proxy-Authorization:x"), /Proxy-Authorization is for proxies/);
  assert.match(reason("QUERY a header=If-None-Match:%22x%22"), /conditional fields are the cache's own/);
  assert.match(reason("QUERY a header=Bad%20Name:x"), /is not a token \(RFC 9110 §5\.1\)/);
  assert.match(reason("QUERY a header=X%28:x"), /is not a token/);
  for (const bad of ["%0D%0AEvil:%201", "%0A", "%00", "a%01b", "a%7Fb"]) {
    assert.match(reason(`QUERY a header=X-A:${bad}`), /not field-content \(RFC 9110 §5\.5\)/, bad);
  }
  // Surrounding whitespace is not part of a value (RFC 9110 §5.5), a tab inside is.
  const message = parseClientMessage("QUERY a header=X-A:%20%09a%09b%20");
  assert.deepEqual(message.kind === "query" && message.options.headers, [{ name: "X-A", value: "a\tb" }]);
});

test("formatQuery writes every option back as parseClientMessage reads it", () => {
  const options = {
    ...DEFAULT_QUERY_OPTIONS,
    insecure: true,
    ip: "4" as const,
    cache: "refresh" as const,
    connectTimeoutMs: 250,
    maxTimeMs: 9000,
    headers: [
      { name: "Accept", value: "" },
      { name: "X-Odd", value: "100% a,b #c\t\u00ff" },
    ],
  };
  const line = formatQuery("http://a.test/", options, "tcp");
  assert.equal(
    line,
    "QUERY http://a.test/ insecure=1 ip=4 cache=refresh connect-timeout-ms=250 max-time-ms=9000 " +
      "header=Accept: header=X-Odd:100%25%20a%2Cb%20%23c%09%FF delivery=tcp\n",
  );
  assert.deepEqual(parseClientMessage(line.trimEnd()), {
    kind: "query",
    url: "http://a.test/",
    options,
    delivery: "tcp",
  });
  assert.equal(formatQuery("a", DEFAULT_QUERY_OPTIONS), "QUERY a\n");
});

test("parseClientMessage: errors carry the protocol's codes", () => {
  assertCode(() => parseClientMessage(""), "BAD_REQUEST");
  assertCode(() => parseClientMessage("   "), "BAD_REQUEST");
  assertCode(() => parseClientMessage("QUERY"), "BAD_REQUEST");
  assertCode(() => parseClientMessage("TERMINATE now"), "BAD_REQUEST");
  assertCode(() => parseClientMessage("GET / HTTP/1.1"), "UNKNOWN_COMMAND");
  assertCode(() => parseClientMessage("x".repeat(10_000)), "UNKNOWN_COMMAND");
  assert.throws(
    () => parseClientMessage("x".repeat(10_000)),
    (e: unknown) => e instanceof HeadwireError && e.message.length < 100,
    "the echoed command is truncated",
  );
});

test("formatQuery → parseClientMessage round trip", () => {
  const url = fc.string({ unit: "grapheme-ascii", minLength: 1, maxLength: 50 }).filter((s) => !/[\s]/.test(s));
  const options = fc.record(
    {
      method: fc.constantFrom("GET" as const, "HEAD" as const),
      redirects: fc.integer({ min: 0, max: MAX_REDIRECTS }),
      chain: fc.constantFrom("all" as const, "last" as const),
    },
    { requiredKeys: [], noNullPrototype: true },
  );
  fc.assert(
    fc.property(url, options, fc.constantFrom("udp" as const, "tcp" as const), (u, o, d) => {
      const line = formatQuery(u, o, d);
      assert.ok(line.endsWith("\n"));
      assert.deepEqual(parseClientMessage(line.slice(0, -1)), {
        kind: "query",
        url: u,
        options: { ...DEFAULT_QUERY_OPTIONS, ...o },
        delivery: d,
      });
    }),
  );
});

const ticket: fc.Arbitrary<Ticket> = fc.record(
  {
    token: fc.uint8Array({ minLength: 16, maxLength: 16 }).map((b) => Buffer.from(b)),
    udpHost: fc.oneof(fc.ipV4(), fc.ipV6(), fc.constantFrom("localhost", "headwire.example")),
    udpPort: fc.integer({ min: 1, max: 65535 }),
    bytes: fc.integer({ min: 0, max: 0xffff_ffff }),
    chunks: fc.integer({ min: 1, max: 0xffff_ffff }),
    cache: fc.constantFrom<CacheOutcome>("HIT", "MISS", "STALE", "REVALIDATED"),
    status: fc.integer({ min: 100, max: 999 }),
    sha256: fc.uint8Array({ minLength: 32, maxLength: 32 }).map((b) => Buffer.from(b)),
    storeUnavailable: fc.boolean(),
  },
  { noNullPrototype: true },
);

test("formatTicket → parseServerMessage round trip, IPv4, IPv6 and names", () => {
  fc.assert(
    fc.property(ticket, (t) => {
      const line = formatTicket(t);
      assert.ok(line.endsWith("\n") && !line.slice(0, -1).includes("\n"));
      assert.deepEqual(parseServerMessage(line.slice(0, -1)), { kind: "ticket", ticket: t });
    }),
  );
  const fixed: Ticket = {
    token: Buffer.alloc(16, 0xab),
    udpHost: "::1",
    udpPort: 50367,
    bytes: 1234,
    chunks: 2,
    cache: "MISS",
    status: 200,
    sha256: Buffer.alloc(32, 0xcd),
    storeUnavailable: false,
  };
  const line = formatTicket(fixed);
  assert.match(line, /udp=\[::1\]:50367 /);
  assert.deepEqual(parseServerMessage(line.trimEnd()), { kind: "ticket", ticket: fixed });
  assert.deepEqual(parseServerMessage(formatTicket({ ...fixed, udpHost: "127.0.0.1" }).trimEnd()), {
    kind: "ticket",
    ticket: { ...fixed, udpHost: "127.0.0.1" },
  });
});

test("parseServerMessage rejects malformed tickets", () => {
  const good = formatTicket({
    token: Buffer.alloc(16, 1),
    udpHost: "127.0.0.1",
    udpPort: 9,
    bytes: 1,
    chunks: 1,
    cache: "HIT",
    status: 200,
    sha256: Buffer.alloc(32, 2),
  }).trimEnd();
  assert.equal(parseServerMessage(good).kind, "ticket");
  const mutations: [RegExp, string][] = [
    [/token=\w+/, "token=00"],
    [/token=\w+/, ""],
    [/udp=\S+/, "udp=127.0.0.1:0"],
    [/udp=\S+/, "udp=127.0.0.1:65536"],
    [/udp=\S+/, "udp=127.0.0.1"],
    [/udp=\S+/, "udp=::1:9"],
    [/cache=\w+/, "cache=MAYBE"],
    [/cache=\w+/, "cache=hit"],
    [/status=\d+/, "status=20"],
    [/sha256=\w+/, "sha256=zz"],
    [/bytes=\d+/, "bytes=-1"],
  ];
  for (const [pattern, replacement] of mutations) {
    const line = good.replace(pattern, replacement);
    assertCode(() => parseServerMessage(line), "PROTOCOL_ERROR", line);
  }
});

test("formatError → parseServerMessage round trip, with line ends neutralised", () => {
  const code = fc.constantFrom(...(Object.keys(WIRE_ERROR_CODES) as WireErrorCode[]));
  fc.assert(
    fc.property(code, fc.string({ maxLength: 600 }), (c, message) => {
      const line = formatError(new HeadwireError(c, message));
      assert.ok(line.endsWith("\n") && !/[\r\n]/.test(line.slice(0, -1)));
      const parsed = parseServerMessage(line.slice(0, -1));
      assert.deepEqual(parsed, {
        kind: "error",
        code: c,
        message: message.replace(/[\u0000-\u001f\u007f]+/g, " ").slice(0, 512),
      });
    }),
  );
  assert.equal(
    formatError(new HeadwireError("DNS_NOT_FOUND", "no\r\nsuch\thost")),
    "ERROR DNS_NOT_FOUND no such host\n",
  );
  assert.deepEqual(parseServerMessage("ERROR SERVER_BUSY"), {
    kind: "error",
    code: "SERVER_BUSY",
    message: ERROR_CODES.SERVER_BUSY,
  });
  assertCode(() => parseServerMessage("ERROR NO_SUCH_CODE x"), "PROTOCOL_ERROR");
});

test("an error line survives the wire: bytes → LineDecoder → parseServerMessage", () => {
  const code = fc.constantFrom(...(Object.keys(WIRE_ERROR_CODES) as WireErrorCode[]));
  // Longer than formatError's 512 code points: the cut never splits a character.
  fc.assert(
    fc.property(code, fc.string({ unit: "binary", maxLength: 600 }), (c, message) => {
      const events = new LineDecoder(8192).push(Buffer.from(formatError(new HeadwireError(c, message))));
      assert.equal(events.length, 1);
      const [event] = events;
      assert.equal(event?.kind, "line");
      if (event?.kind !== "line") return;
      assert.deepEqual(parseServerMessage(event.text), {
        kind: "error",
        code: c,
        message: Array.from(message.replace(/[\u0000-\u001f\u007f]+/g, " "))
          .slice(0, 512)
          .join(""),
      });
    }),
  );
});

test("parseServerMessage: greeting, BYE, PONG and the unknown", () => {
  assert.deepEqual(parseServerMessage(formatGreeting("headwire 0.1.0").trimEnd()), {
    kind: "greeting",
    server: "headwire 0.1.0",
  });
  assert.deepEqual(parseServerMessage(BYE_LINE.trimEnd()), { kind: "bye" });
  assert.deepEqual(parseServerMessage(PONG_LINE.trimEnd()), { kind: "pong" });
  assertCode(() => parseServerMessage("HEADWIRE/3 READY x"), "PROTOCOL_ERROR");
  assertCode(() => parseServerMessage("HEADWIRE/2 BUSY"), "PROTOCOL_ERROR");
  assertCode(() => parseServerMessage("HELLO"), "PROTOCOL_ERROR");
  assertCode(() => parseServerMessage(""), "PROTOCOL_ERROR");
});

test("the greeting's idle= field: written by formatGreeting, read apart from the name; absent or unreadable, no idle timeout", () => {
  assert.equal(formatGreeting("headwire/0.1.0", 300_000), "HEADWIRE/2 READY headwire/0.1.0 idle=300000\n");
  assert.deepEqual(parseServerMessage("HEADWIRE/2 READY headwire/0.1.0 idle=1500"), {
    kind: "greeting",
    server: "headwire/0.1.0",
    idleTimeoutMs: 1500,
  });
  // An older server says nothing; a newer one may add fields this client does not know.
  assert.deepEqual(parseServerMessage("HEADWIRE/2 READY headwire/0.1.0"), {
    kind: "greeting",
    server: "headwire/0.1.0",
  });
  assert.deepEqual(parseServerMessage("HEADWIRE/2 READY headwire/0.3.0 idle=9000 zone=eu"), {
    kind: "greeting",
    server: "headwire/0.3.0",
    idleTimeoutMs: 9000,
  });
  for (const bad of ["idle=", "idle=0", "idle=-5", "idle=1e3", "idle=99999999999"]) {
    assert.deepEqual(parseServerMessage(`HEADWIRE/2 READY x/1 ${bad}`), { kind: "greeting", server: "x/1" }, bad);
  }
});

test("every error code is known to isErrorCode, and nothing else is", () => {
  for (const code of Object.keys(ERROR_CODES)) assert.ok(isErrorCode(code));
  assert.ok(!isErrorCode("toString"));
  assert.ok(!isErrorCode("__proto__"));
});

test("wire and local codes: two disjoint halves of every code", () => {
  const wire = Object.keys(WIRE_ERROR_CODES);
  const local = Object.keys(LOCAL_ERROR_CODES);
  assert.deepEqual([...wire, ...local].sort(), Object.keys(ERROR_CODES).sort());
  for (const code of wire) assert.ok(isWireErrorCode(code), code);
  for (const code of local) assert.ok(!isWireErrorCode(code), code);
  assert.ok(isWireErrorCode("INTERNAL_ERROR"));
});

test("parseServerMessage refuses a client's own (local) code from a server", () => {
  for (const code of Object.keys(LOCAL_ERROR_CODES) as LocalErrorCode[]) {
    const line = `ERROR ${code} something happened`;
    assertCode(() => parseServerMessage(line), "PROTOCOL_ERROR", line);
    assert.throws(() => parseServerMessage(line), /local error code from the server/);
  }
});

test("formatError takes wire codes only (checked by the compiler)", () => {
  // @ts-expect-error: WRITE_FAILED is a local code, a server cannot send it.
  const line = formatError(new HeadwireError("WRITE_FAILED"));
  // Nothing stops it at run time: the compiler is the check, and the client refuses it.
  assertCode(() => parseServerMessage(line.trimEnd()), "PROTOCOL_ERROR");
  assert.equal(formatError(new HeadwireError("INTERNAL_ERROR", "oops")), "ERROR INTERNAL_ERROR oops\n");
});

function assertCode(fn: () => unknown, code: ErrorCode, label?: string): void {
  assert.throws(fn, (e: unknown) => e instanceof HeadwireError && e.code === code, label);
}

test("a byte-order mark is kept, so it cannot smuggle a command past the parser", () => {
  const [event] = new LineDecoder(8192).push(Buffer.from("\uFEFFPING\n"));
  assert.equal(event?.kind, "line");
  if (event?.kind !== "line") return;
  assert.equal(event.text, "\uFEFFPING");
  assertCode(() => parseClientMessage(event.text), "UNKNOWN_COMMAND");
});

// ---- delivery=tcp: a TICKET line followed by raw bytes ----

function tcpTicketFor(header: Buffer, cache: CacheOutcome = "MISS"): TcpTicket {
  return {
    bytes: header.length,
    cache,
    status: 200,
    sha256: createHash("sha256").update(header).digest(),
    storeUnavailable: false,
  };
}

test("formatTcpTicket → parseServerMessage round trip; a TICKET without delivery= is a UDP ticket", () => {
  const t = tcpTicketFor(Buffer.from("HTTP/1.1 200 OK\r\n\r\n"), "HIT");
  const line = formatTcpTicket(t);
  assert.match(line, /^TICKET delivery=tcp bytes=19 cache=HIT status=200 sha256=[0-9a-f]{64}\n$/);
  assert.deepEqual(parseServerMessage(line.trimEnd()), { kind: "tcp-ticket", ticket: t });
  const unavailable = { ...t, storeUnavailable: true };
  assert.deepEqual(parseServerMessage(formatTcpTicket(unavailable).trimEnd()), {
    kind: "tcp-ticket",
    ticket: unavailable,
  });
  assertCode(() => parseServerMessage(line.trimEnd().replace("delivery=tcp", "delivery=quic")), "PROTOCOL_ERROR");
  assertCode(() => parseServerMessage(line.trimEnd().replace(/ sha256=\S+/, "")), "PROTOCOL_ERROR");
  assertCode(() => parseServerMessage(line.trimEnd().replace("bytes=19", "bytes=-1")), "PROTOCOL_ERROR");
});

/** The stream a server writes for these replies: delivery=tcp ones as their line and header bytes. */
function replyStream(replies: Array<string | Buffer>): Buffer {
  return Buffer.concat(
    replies.map((r) =>
      typeof r === "string" ? Buffer.from(r) : Buffer.concat([Buffer.from(formatTcpTicket(tcpTicketFor(r))), r]),
    ),
  );
}

function decodeInPieces(stream: Buffer, cuts: number[], maxHeaderBytes = 1 << 20): ReplyEvent[] {
  const decoder = new ReplyDecoder(8192, maxHeaderBytes);
  const events: ReplyEvent[] = [];
  let start = 0;
  for (const cut of [...cuts.filter((c) => c > 0 && c < stream.length)].sort((a, b) => a - b).concat(stream.length)) {
    events.push(...decoder.push(stream.subarray(start, cut)));
    start = cut;
  }
  return events;
}

test("ReplyDecoder: a header's bytes (LF, CR, NUL, lines that look like replies) are framed by bytes=, however the stream is cut", () => {
  // Raw bytes that a line decoder would misread: reply lines, control characters, no final LF.
  const tricky = Buffer.concat([
    Buffer.from("HTTP/1.1 200 OK\r\nX-Trap: x\nERROR SERVER_BUSY\nBYE\n\u0000"),
    Buffer.from([0xff, 0x0a]),
  ]);
  const header = fc.uint8Array({ minLength: 0, maxLength: 3000 }).map((a) => Buffer.from(a));
  const reply = fc.oneof(fc.constant(PONG_LINE), fc.constant(BYE_LINE), fc.constant(tricky), header);
  fc.assert(
    fc.property(
      fc.array(reply, { minLength: 1, maxLength: 8 }),
      fc.array(fc.nat(30_000), { maxLength: 20 }),
      (replies, cuts) => {
        const events = decodeInPieces(replyStream(replies), cuts);
        assert.equal(events.length, replies.length);
        replies.forEach((expected, i) => {
          const event = events[i]!;
          assert.equal(event.kind, "reply");
          if (event.kind !== "reply") return;
          if (typeof expected === "string") assert.equal(event.reply.kind, expected === PONG_LINE ? "pong" : "bye");
          else {
            assert.equal(event.reply.kind, "header");
            if (event.reply.kind === "header") assert.ok(event.reply.header.equals(expected), `reply ${i} byte-exact`);
          }
        });
      },
    ),
  );
});

test("ReplyDecoder: a header larger than the client accepts is a protocol error before any of it is kept", () => {
  const events = decodeInPieces(replyStream([Buffer.alloc(5000, 0x61), PONG_LINE]), [], 4096);
  assert.equal(events.length, 1, "nothing is decoded after the error");
  assert.equal(events[0]!.kind, "error");
  if (events[0]!.kind === "error") {
    assert.equal(events[0]!.error.code, "PROTOCOL_ERROR");
    assert.match(events[0]!.error.message, /5000 bytes \(this client accepts 4096\)/);
  }
});

test("ReplyDecoder: lines as before: an over-long or malformed reply is a protocol error", () => {
  assert.equal(decodeInPieces(Buffer.from(`${"x".repeat(9000)}\n`), [])[0]?.kind, "error");
  assert.equal(decodeInPieces(Buffer.from("HELLO\n"), [])[0]?.kind, "error");
  const events = decodeInPieces(Buffer.from("PONG\nPURGED 3\n"), [3]);
  assert.deepEqual(
    events.map((e) => (e.kind === "reply" ? e.reply : e.kind)),
    [{ kind: "pong" }, { kind: "purged", count: 3 }],
  );
});

test("a greeting of another protocol version is refused, naming both versions", () => {
  assert.throws(
    () => parseServerMessage("HEADWIRE/1 READY headwire/0.1.0"),
    (error: unknown) =>
      error instanceof HeadwireError &&
      error.code === "PROTOCOL_ERROR" &&
      /the server speaks HEADWIRE\/1, this client HEADWIRE\/2: upgrade the older one/.test(error.message),
  );
});

test("parsePlainQuery: only `QUERY <url>` without options, read as parseClientMessage reads it", () => {
  assert.deepEqual(parsePlainQuery("QUERY http://example.com/a?b=1"), {
    kind: "query",
    url: "http://example.com/a?b=1",
    options: DEFAULT_QUERY_OPTIONS,
    delivery: "udp",
  });
  for (const line of ["QUERY http://example.com/", "QUERY http://example.com/ method=HEAD", "QUERY  http://e/"]) {
    const plain = parsePlainQuery(line);
    if (plain) assert.deepEqual(plain, parseClientMessage(line));
  }
  for (const line of [
    "QUERY",
    "QUERY ",
    "query http://e/",
    "QUERY http://e/ delivery=tcp",
    "QUERY\thttp://e/",
    " QUERY http://e/",
  ]) {
    assert.equal(parsePlainQuery(line), undefined, line);
  }
});

test("LineDecoder: printable ASCII and tabs read as UTF-8 would; other bytes still checked", () => {
  const decoder = new LineDecoder(100);
  const [ascii, tabbed, utf8, control, bom] = decoder.push(
    Buffer.concat([
      Buffer.from("QUERY http://e/~a\r\n"),
      Buffer.from("PING\tx\n"),
      Buffer.from("QUERY http://e/caf\u00e9\n"),
      Buffer.from("QUERY a\u0001\n"),
      Buffer.from("\uFEFFPING\n"),
    ]),
  );
  assert.deepEqual(ascii, { kind: "line", text: "QUERY http://e/~a" });
  assert.deepEqual(tabbed, { kind: "line", text: "PING\tx" });
  assert.deepEqual(utf8, { kind: "line", text: "QUERY http://e/caf\u00e9" });
  assert.equal(control?.kind === "error" && control.error.code, "BAD_ENCODING");
  assert.deepEqual(bom, { kind: "line", text: "\uFEFFPING" });
});
