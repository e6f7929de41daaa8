import { after, test } from "node:test";
import assert from "node:assert/strict";
import { execFile, spawnSync } from "node:child_process";
import { promises as dns } from "node:dns";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import net from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import http2 from "node:http2";
import tls from "node:tls";
import { promisify } from "node:util";
import { HeadwireError } from "../../src/errors.js";
import { OriginFetcher, type OriginFetcherOptions, type ResolvedAddress } from "../../src/fetch/origin-fetcher.js";
import { OutboundGuard } from "../../src/fetch/outbound-guard.js";
import { DEFAULT_QUERY_OPTIONS, type QueryOptions } from "../../src/http/query-options.js";
import { parseTarget } from "../../src/url/target.js";
import { testPki, type TestPki } from "../test-pki.js";

// ---- local origins ----

const bytes = (text: string): Buffer => Buffer.from(text, "latin1");

/** Called once the origin has read the request's header; writes whatever the test needs. */
type Respond = (socket: net.Socket, request: string, origin: Origin) => void;

interface Origin {
  host: string;
  port: number;
  url(path?: string): string;
  /** Raw request headers received, in order. */
  requests: string[];
  /** TCP connections accepted. */
  connections: number;
  /** SNI names the TLS origin saw (false when none was sent). */
  servernames: (string | false)[];
  /** Resolves when the next accepted connection closes. */
  nextClose: Promise<void>;
  close(): Promise<void>;
}

const openOrigins: Origin[] = [];
after(async () => {
  await Promise.all(openOrigins.map((origin) => origin.close()));
});

function requestPath(request: string): string {
  return request.split(" ")[1] ?? "";
}

/** A fixed answer, or an answer chosen by request path. */
function reply(answers: string | Record<string, string>): Respond {
  return (socket, request) => {
    const answer = typeof answers === "string" ? answers : answers[requestPath(request)];
    socket.end(bytes(answer ?? "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n"));
  };
}

async function startOrigin(
  respond: Respond,
  options: { host?: string; tls?: { key: Buffer; cert: Buffer } } = {},
): Promise<Origin> {
  const host = options.host ?? "127.0.0.1";
  const sockets = new Set<net.Socket>();
  let closed: () => void = () => {};
  const origin: Origin = {
    host,
    port: 0,
    url: (path = "/") =>
      `${options.tls ? "https" : "http"}://${net.isIPv6(host) ? `[${host}]` : host}:${origin.port}${path}`,
    requests: [],
    connections: 0,
    servernames: [],
    nextClose: new Promise<void>((resolve) => (closed = resolve)),
    close: async () => {
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
  const onSocket = (socket: net.Socket): void => {
    sockets.add(socket);
    socket.on("error", () => {});
    socket.on("close", () => {
      sockets.delete(socket);
      closed();
      origin.nextClose = new Promise<void>((resolve) => (closed = resolve));
    });
    if (socket instanceof tls.TLSSocket) origin.servernames.push(socket.servername ?? false);
    let received = "";
    const onData = (chunk: Buffer): void => {
      received += chunk.toString("latin1");
      const end = received.indexOf("\r\n\r\n");
      if (end === -1) return;
      socket.off("data", onData);
      origin.requests.push(received.slice(0, end + 4));
      respond(socket, received, origin);
    };
    socket.on("data", onData);
  };
  const server = options.tls
    ? tls.createServer({ key: options.tls.key, cert: options.tls.cert }, onSocket)
    : net.createServer(onSocket);
  server.on("connection", () => origin.connections++);
  server.on("tlsClientError", () => {});
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, host, () => resolve());
  });
  origin.port = (server.address() as net.AddressInfo).port;
  openOrigins.push(origin);
  return origin;
}

// ---- fetcher ----

const LOOPBACK_ONLY = new OutboundGuard({ allowPrivate: false, allow: ["127.0.0.1/32"] });
const STRICT = new OutboundGuard({ allowPrivate: false, allow: [] });
const GET: QueryOptions = DEFAULT_QUERY_OPTIONS;

function makeFetcher(overrides: Partial<OriginFetcherOptions> = {}): OriginFetcher {
  return new OriginFetcher({
    connectTimeoutMs: 2000,
    headerTimeoutMs: 2000,
    maxHeaderBytes: 64 * 1024,
    userAgent: "headwire/test",
    guard: LOOPBACK_ONLY,
    ...overrides,
  });
}

function fetchUrl(url: string, query: Partial<QueryOptions> = {}, fetcher = makeFetcher()) {
  return fetcher.fetch(parseTarget(url), { ...GET, ...query });
}

async function assertFailsWith(promise: Promise<unknown>, code: string): Promise<HeadwireError> {
  const error = await promise.then(
    () => assert.fail(`expected ${code}, but the fetch succeeded`),
    (e: unknown) => e,
  );
  assert.ok(error instanceof HeadwireError, `expected a HeadwireError, got ${String(error)}`);
  assert.equal(error.code, code, error.message);
  return error;
}

function lookupTable(table: Record<string, string[]>) {
  return async (host: string): Promise<ResolvedAddress[]> => {
    const addresses = table[host];
    if (addresses === undefined) return dns.lookup(host, { all: true });
    return addresses.map((address) => ({ address, family: net.isIP(address) }));
  };
}

// ---- exact bytes ----

const CRAFTED: Record<string, { header: string; body?: string; status: number }> = {
  "/crlf": {
    header: "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 5\r\n\r\n",
    body: "hello",
    status: 200,
  },
  "/bare-lf": { header: "HTTP/1.1 200 OK\nServer: lf-only\nX-A: b\n\n", body: "body", status: 200 },
  "/mixed": { header: "HTTP/1.1 404 Not Found\r\nA: b\nC: d\r\n\n", status: 404 },
  "/obs-fold": {
    header: "HTTP/1.1 200 OK\r\nX-Folded: first\r\n  second\r\n\tthird\r\nX-After: y\r\n\r\n",
    status: 200,
  },
  "/non-ascii": { header: "HTTP/1.1 200 OK\r\nX-Name: caf\xe9 \xff\xfe\r\nX-Utf8: \xc3\xbc\r\n\r\n", status: 200 },
  "/duplicates": {
    header: "HTTP/1.1 200 OK\r\nset-cookie: a=1\r\nSet-Cookie: b=2\r\nSET-COOKIE: c=3\r\nx-MiXeD-cAsE: v\r\n\r\n",
    status: 200,
  },
  "/http10": { header: "HTTP/1.0 200 OK\r\nServer: old\r\n\r\n", body: "old body", status: 200 },
  "/early-hints": {
    header:
      "HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload; as=style\r\n\r\n" +
      "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n",
    body: "ok",
    status: 200,
  },
  "/continue-hints": {
    header:
      "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n",
    status: 204,
  },
  "/moved": { header: "HTTP/1.1 301 Moved Permanently\r\nLocation: /crlf\r\nContent-Length: 0\r\n\r\n", status: 301 },
};

async function craftedOrigin(): Promise<Origin> {
  return startOrigin((socket, request) => {
    const answer = CRAFTED[requestPath(request)];
    if (answer === undefined) socket.end(bytes("HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n"));
    else socket.end(bytes(answer.header + (answer.body ?? "")));
  });
}

test("delivers exactly the origin's header bytes, interim responses included, never the body", async () => {
  const origin = await craftedOrigin();
  for (const [path, { header, status }] of Object.entries(CRAFTED)) {
    const result = await fetchUrl(origin.url(path));
    assert.deepEqual(result.header, bytes(header), path);
    assert.equal(result.status, status, path);
    assert.equal(result.hops, 1, path);
  }
});

test("sends the request curl sends by default: Host, User-Agent, Accept, no Connection field", async () => {
  const origin = await craftedOrigin();
  await fetchUrl(origin.url("/crlf?q=1#fragment"));
  await fetchUrl(`http://127.0.0.1:${origin.port}/crlf`, { method: "HEAD" });
  assert.deepEqual(origin.requests, [
    `GET /crlf?q=1 HTTP/1.1\r\nHost: 127.0.0.1:${origin.port}\r\nUser-Agent: headwire/test\r\nAccept: */*\r\n\r\n`,
    `HEAD /crlf HTTP/1.1\r\nHost: 127.0.0.1:${origin.port}\r\nUser-Agent: headwire/test\r\nAccept: */*\r\n\r\n`,
  ]);
});

test("connects to the checked IP but sends the URL's name as Host", async () => {
  const origin = await craftedOrigin();
  const fetcher = makeFetcher({ lookup: lookupTable({ "www.origin.test": ["127.0.0.1"] }) });
  const result = await fetchUrl(`http://WWW.Origin.Test.:${origin.port}/crlf`, {}, fetcher);
  assert.equal(result.status, 200);
  assert.match(origin.requests[0]!, new RegExp(`\r\nHost: www\\.origin\\.test:${origin.port}\r\n`));
});

test("stops at the end of the header and closes, even while the origin keeps sending its body", async () => {
  const origin = await startOrigin((socket) => {
    socket.write(bytes("HTTP/1.1 200 OK\r\nContent-Length: 100000000\r\n\r\n"));
    socket.write(Buffer.alloc(256 * 1024, 0x61)); // and never end()
  });
  const closed = origin.nextClose;
  const result = await fetchUrl(origin.url());
  assert.deepEqual(result.header, bytes("HTTP/1.1 200 OK\r\nContent-Length: 100000000\r\n\r\n"));
  await closed; // the fetcher closed the connection
});

test("a header written a byte at a time is put back together", async () => {
  const header = "HTTP/1.1 103 Early Hints\r\nLink: </x>\r\n\r\nHTTP/1.1 200 OK\r\nA: b\r\n\r\n";
  const origin = await startOrigin((socket) => {
    for (const byte of bytes(header)) socket.write(Buffer.from([byte]));
    socket.end();
  });
  const result = await fetchUrl(origin.url());
  assert.deepEqual(result.header, bytes(header));
});

test("IPv6 origins: connects to ::1 and sends a bracketed Host", async (t) => {
  let origin: Origin;
  try {
    origin = await startOrigin(reply("HTTP/1.1 200 OK\r\n\r\n"), { host: "::1" });
  } catch {
    t.skip("no IPv6 loopback in this environment");
    return;
  }
  const guard = new OutboundGuard({ allowPrivate: false, allow: ["::1/128"] });
  const result = await fetchUrl(origin.url(), {}, makeFetcher({ guard }));
  assert.equal(result.status, 200);
  assert.match(origin.requests[0]!, new RegExp(`\r\nHost: \\[::1\\]:${origin.port}\r\n`));
});

// ---- failures ----

test("an origin that drips its header hits HEADER_TIMEOUT", async () => {
  const origin = await startOrigin((socket) => {
    const header = bytes("HTTP/1.1 200 OK\r\nX-Slow: " + "x".repeat(1000) + "\r\n\r\n");
    let sent = 0;
    const drip = setInterval(() => socket.write(header.subarray(sent, ++sent)), 20);
    socket.on("close", () => clearInterval(drip));
  });
  await assertFailsWith(fetchUrl(origin.url(), {}, makeFetcher({ headerTimeoutMs: 300 })), "HEADER_TIMEOUT");
});

test("an origin that accepts and stays silent hits HEADER_TIMEOUT", async () => {
  const origin = await startOrigin(() => {});
  await assertFailsWith(fetchUrl(origin.url(), {}, makeFetcher({ headerTimeoutMs: 300 })), "HEADER_TIMEOUT");
});

// The 5 s test timeout catches a fetcher that would wait for its (10 minute) header timeout.
test(
  "an origin that answers with something else is NOT_HTTP at once, not after the timeout",
  { timeout: 5000 },
  async () => {
    for (const garbage of ["SSH-2.0-OpenSSH_9.2\r\n", "<html>hi</html>", "\x00\x01\x02", "http/1.1 200 ok\r\n\r\n"]) {
      const origin = await startOrigin((socket) => socket.write(bytes(garbage))); // and keep it open
      const fetcher = makeFetcher({ headerTimeoutMs: 600_000 });
      await assertFailsWith(fetchUrl(origin.url(), {}, fetcher), "NOT_HTTP");
    }
  },
);

test("an origin that closes before the header ends is ORIGIN_CLOSED", async () => {
  const midHeader = await startOrigin((socket) => socket.end(bytes("HTTP/1.1 200 OK\r\nContent-Ty")));
  await assertFailsWith(fetchUrl(midHeader.url()), "ORIGIN_CLOSED");
  const afterInterim = await startOrigin((socket) => socket.end(bytes("HTTP/1.1 103 Early Hints\r\n\r\n")));
  await assertFailsWith(fetchUrl(afterInterim.url()), "ORIGIN_CLOSED");
  const silentClose = await startOrigin((socket) => socket.end());
  await assertFailsWith(fetchUrl(silentClose.url()), "ORIGIN_CLOSED");
  const reset = await startOrigin((socket) =>
    socket.write(bytes("HTTP/1.1 200 OK\r\n"), () => socket.resetAndDestroy()),
  );
  await assertFailsWith(fetchUrl(reset.url()), "ORIGIN_CLOSED");
});

test(
  "a header larger than maxHeaderBytes is HEADER_TOO_LARGE, without waiting for its end",
  { timeout: 5000 },
  async () => {
    const origin = await startOrigin((socket) => {
      socket.write(bytes("HTTP/1.1 200 OK\r\n"));
      for (let i = 0; i < 2000; i++) socket.write(bytes(`X-Filler-${i}: ${"y".repeat(40)}\r\n`)); // never ends
    });
    await assertFailsWith(fetchUrl(origin.url(), {}, makeFetcher({ maxHeaderBytes: 4096 })), "HEADER_TOO_LARGE");
  },
);

test("a refused connection is CONNECTION_REFUSED", async () => {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const port = (server.address() as net.AddressInfo).port;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  await assertFailsWith(fetchUrl(`http://127.0.0.1:${port}/`), "CONNECTION_REFUSED");
});

test("name resolution failures are DNS_NOT_FOUND; a resolver that hangs is CONNECT_TIMEOUT, in ms", async () => {
  const failing = (code: string) => async (): Promise<ResolvedAddress[]> => {
    throw Object.assign(new Error(`getaddrinfo ${code} nowhere.test`), { code });
  };
  for (const code of ["ENOTFOUND", "EAI_AGAIN"]) {
    await assertFailsWith(
      fetchUrl("http://nowhere.test/", {}, makeFetcher({ lookup: failing(code) })),
      "DNS_NOT_FOUND",
    );
  }
  const empty = makeFetcher({ lookup: async () => [] });
  await assertFailsWith(fetchUrl("http://nowhere.test/", {}, empty), "DNS_NOT_FOUND");
  const hanging = makeFetcher({ lookup: () => new Promise(() => {}), connectTimeoutMs: 200 });
  const slow = await assertFailsWith(fetchUrl("http://nowhere.test/", {}, hanging), "CONNECT_TIMEOUT");
  assert.equal(slow.message, "resolving nowhere.test timed out after 200 ms");
});

test("options are checked at construction", () => {
  assert.throws(() => makeFetcher({ connectTimeoutMs: 0 }), /options\.connectTimeoutMs must be a positive integer/);
  assert.throws(() => makeFetcher({ maxHeaderBytes: 1.5 }), /options\.maxHeaderBytes/);
  assert.throws(() => makeFetcher({ userAgent: "x\r\nEvil: 1" }), /options\.userAgent/);
});

// ---- redirects ----

async function redirectChain(): Promise<{ first: Origin; second: Origin; headers: string[] }> {
  const second = await startOrigin(reply({ "/final?x=1": "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n" }));
  const headers = [
    "HTTP/1.1 301 Moved Permanently\r\nLocation: /step2\r\nContent-Length: 0\r\n\r\n",
    `HTTP/1.1 302 Found\r\nlocation: ${second.url("/final?x=1#frag")}\r\nContent-Length: 0\r\n\r\n`,
    "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n",
  ];
  const first = await startOrigin(reply({ "/": headers[0]!, "/step2": headers[1]! }));
  return { first, second, headers };
}

test("redirects=0 delivers the redirect itself", async () => {
  const { first, headers } = await redirectChain();
  const result = await fetchUrl(first.url());
  assert.deepEqual(result, { header: bytes(headers[0]!), status: 301, hops: 1, httpVersion: "1.1" });
});

test("chain=all delivers every hop's header in order; chain=last only the last", async () => {
  const { first, second, headers } = await redirectChain();
  const all = await fetchUrl(first.url(), { redirects: 5, chain: "all" });
  assert.deepEqual(all, { header: bytes(headers.join("")), status: 200, hops: 3, httpVersion: "1.1" });
  const last = await fetchUrl(first.url(), { redirects: 2, chain: "last" });
  assert.deepEqual(last, { header: bytes(headers[2]!), status: 200, hops: 3, httpVersion: "1.1" });
  assert.deepEqual(second.requests.map(requestPath), ["/final?x=1", "/final?x=1"]);
});

test("a redirect chain longer than allowed is TOO_MANY_REDIRECTS", async () => {
  const { first } = await redirectChain();
  await assertFailsWith(fetchUrl(first.url(), { redirects: 1 }), "TOO_MANY_REDIRECTS");
  const loop = await startOrigin(reply("HTTP/1.1 307 Temporary Redirect\r\nLocation: /again\r\n\r\n"));
  await assertFailsWith(fetchUrl(loop.url(), { redirects: 3 }), "TOO_MANY_REDIRECTS");
  assert.equal(loop.connections, 4);
});

test("redirects keep the method, and other 3xx or a missing Location end the chain", async () => {
  const origin = await startOrigin(
    reply({
      "/303": "HTTP/1.1 303 See Other\r\nLocation: /no-location\r\n\r\n",
      "/no-location": "HTTP/1.1 302 Found\r\nX-Nothing: here\r\n\r\n",
      "/304": "HTTP/1.1 304 Not Modified\r\nLocation: /303\r\n\r\n",
    }),
  );
  const result = await fetchUrl(origin.url("/303"), { method: "HEAD", redirects: 5 });
  assert.equal(result.status, 302);
  assert.equal(result.hops, 2);
  assert.deepEqual(
    origin.requests.map((r) => r.split(" ").slice(0, 2).join(" ")),
    ["HEAD /303", "HEAD /no-location"],
  );
  assert.equal((await fetchUrl(origin.url("/304"), { redirects: 5 })).hops, 1);
});

test("a redirect to another scheme or to an unparseable Location fails with the URL's code", async () => {
  const origin = await startOrigin(
    reply({
      "/ftp": "HTTP/1.1 301 Moved\r\nLocation: ftp://files.example/\r\n\r\n",
      "/bad": "HTTP/1.1 301 Moved\r\nLocation: http://[oops/\r\n\r\n",
      "/creds": "HTTP/1.1 301 Moved\r\nLocation: http://user:pw@127.0.0.1/\r\n\r\n",
    }),
  );
  await assertFailsWith(fetchUrl(origin.url("/ftp"), { redirects: 1 }), "UNSUPPORTED_SCHEME");
  await assertFailsWith(fetchUrl(origin.url("/bad"), { redirects: 1 }), "INVALID_URL");
  await assertFailsWith(fetchUrl(origin.url("/creds"), { redirects: 1 }), "INVALID_URL");
});

test("with chain=all, maxHeaderBytes bounds the whole delivered chain", async () => {
  const padding = `X-Pad: ${"p".repeat(1500)}\r\n`;
  const origin = await startOrigin(
    reply({
      "/": `HTTP/1.1 302 Found\r\nLocation: /2\r\n${padding}\r\n`,
      "/2": `HTTP/1.1 302 Found\r\nLocation: /3\r\n${padding}\r\n`,
      "/3": `HTTP/1.1 200 OK\r\n${padding}\r\n`,
    }),
  );
  const fetcher = makeFetcher({ maxHeaderBytes: 4096 });
  await assertFailsWith(fetchUrl(origin.url(), { redirects: 5, chain: "all" }, fetcher), "HEADER_TOO_LARGE");
  assert.equal((await fetchUrl(origin.url(), { redirects: 5, chain: "last" }, fetcher)).hops, 3);
});

// ---- outbound guard ----

test("loopback in every spelling is BLOCKED_ADDRESS before any connection", async () => {
  const origin = await craftedOrigin();
  const fetcher = makeFetcher({ guard: STRICT, lookup: lookupTable({ "sneaky.test": ["127.0.0.1"] }) });
  const spellings = ["127.0.0.1", "2130706433", "0x7f000001", "127.1", "0.0.0.0", "[::ffff:127.0.0.1]", "[::]"];
  for (const host of [...spellings, "localhost.", "localhost", "sneaky.test"]) {
    const error = await assertFailsWith(fetchUrl(`http://${host}:${origin.port}/crlf`, {}, fetcher), "BLOCKED_ADDRESS");
    assert.match(error.message, /loopback|unspecified/, host);
  }
  assert.equal(origin.connections, 0);
});

test("a name is refused when any of its addresses is blocked", async () => {
  const origin = await startOrigin(reply("HTTP/1.1 200 OK\r\n\r\n"), { host: "127.0.0.2" });
  const guard = new OutboundGuard({ allowPrivate: false, allow: ["127.0.0.2/32"] });
  const mixed = makeFetcher({ guard, lookup: lookupTable({ "mixed.test": ["127.0.0.2", "127.0.0.1"] }) });
  const error = await assertFailsWith(fetchUrl(`http://mixed.test:${origin.port}/`, {}, mixed), "BLOCKED_ADDRESS");
  assert.equal(
    error.message,
    "mixed.test resolves to 127.0.0.1, a loopback address: origins there are refused unless the server runs " +
      "with --allow-private (or --allow 127.0.0.0/8)",
  );
  const garbage = makeFetcher({ guard, lookup: lookupTable({ "weird.test": ["127.1"] }) });
  await assertFailsWith(fetchUrl(`http://weird.test:${origin.port}/`, {}, garbage), "BLOCKED_ADDRESS");
  assert.equal(origin.connections, 0);
  const clean = makeFetcher({ guard, lookup: lookupTable({ "clean.test": ["127.0.0.2"] }) });
  assert.equal((await fetchUrl(`http://clean.test:${origin.port}/`, {}, clean)).status, 200);
});

test("a redirect from an allowed origin to a blocked address is BLOCKED_ADDRESS", async () => {
  const victim = await craftedOrigin(); // on 127.0.0.1, refused by the guard
  const guard = new OutboundGuard({ allowPrivate: false, allow: ["127.0.0.2/32"] });
  const fetcher = makeFetcher({ guard, lookup: lookupTable({ "internal.test": ["127.0.0.1"] }) });
  const lures = {
    "/ip": `HTTP/1.1 302 Found\r\nLocation: http://127.0.0.1:${victim.port}/crlf\r\n\r\n`,
    "/mapped": `HTTP/1.1 302 Found\r\nLocation: http://[::ffff:7f00:1]:${victim.port}/crlf\r\n\r\n`,
    "/decimal": `HTTP/1.1 302 Found\r\nLocation: http://2130706433:${victim.port}/crlf\r\n\r\n`,
    "/name": `HTTP/1.1 302 Found\r\nLocation: //internal.test:${victim.port}/crlf\r\n\r\n`,
  };
  const attacker = await startOrigin(reply(lures), { host: "127.0.0.2" });
  for (const path of Object.keys(lures)) {
    await assertFailsWith(fetchUrl(attacker.url(path), { redirects: 3 }, fetcher), "BLOCKED_ADDRESS");
  }
  assert.equal(attacker.connections, 4);
  assert.equal(victim.connections, 0);
});

// ---- TLS ----

const TLS_NAMES = lookupTable({ "origin.test": ["127.0.0.1"], "other.test": ["127.0.0.1"] });

test("https: verifies the certificate against the URL's host and sends SNI", async (t) => {
  const keys = testPki();
  if (keys === undefined) return t.skip("openssl not installed: apt-get install openssl");
  const header = "HTTP/1.1 200 OK\r\nStrict-Transport-Security: max-age=1\r\n\r\n";
  const origin = await startOrigin(reply(header), { tls: keys });
  const fetcher = makeFetcher({ ca: keys.ca, lookup: TLS_NAMES });
  const byName = await fetchUrl(`https://origin.test:${origin.port}/`, {}, fetcher);
  assert.deepEqual(byName.header, bytes(header));
  const byIp = await fetchUrl(`https://127.0.0.1:${origin.port}/`, {}, fetcher);
  assert.equal(byIp.status, 200);
  assert.deepEqual(origin.servernames, ["origin.test", false]); // no SNI for an IP literal
});

test("https: an untrusted or mismatched certificate is TLS_FAILURE; insecureTls accepts it", async (t) => {
  const keys = testPki();
  if (keys === undefined) return t.skip("openssl not installed: apt-get install openssl");
  const origin = await startOrigin(reply("HTTP/1.1 200 OK\r\n\r\n"), { tls: keys });
  const untrusted = makeFetcher({ lookup: TLS_NAMES });
  const unknownCa = await assertFailsWith(
    fetchUrl(`https://origin.test:${origin.port}/`, {}, untrusted),
    "TLS_FAILURE",
  );
  assert.equal(
    unknownCa.message,
    `the certificate of origin.test:${origin.port} is signed by a CA this server does not know (or ` +
      `origin.test:${origin.port} sent an incomplete chain); -k (insecure=1) skips the check where the server ` +
      "runs with --allow-insecure-queries",
  );
  const trusted = makeFetcher({ ca: keys.ca, lookup: TLS_NAMES });
  const mismatch = await assertFailsWith(fetchUrl(`https://other.test:${origin.port}/`, {}, trusted), "TLS_FAILURE");
  assert.match(mismatch.message, /^the certificate is for origin\.test, 127\.0\.0\.1, not other\.test; -k/);
  const insecure = makeFetcher({ insecureTls: true, lookup: TLS_NAMES });
  assert.equal((await fetchUrl(`https://other.test:${origin.port}/`, {}, insecure)).status, 200);
  // A query's insecure=1 does the same on a verifying fetcher (the server checks it may ask).
  assert.equal((await fetchUrl(`https://other.test:${origin.port}/`, { insecure: true }, trusted)).status, 200);
  assert.equal(origin.requests.length, 2);
});

test("https to a plain-HTTP origin is TLS_FAILURE; a stalled handshake is CONNECT_TIMEOUT", async () => {
  const plain = await startOrigin(() => {}); // never answers the ClientHello
  const plainText = net.createServer((socket) => socket.end(bytes("HTTP/1.1 400 Bad Request\r\n\r\n")));
  await new Promise<void>((resolve) => plainText.listen(0, "127.0.0.1", resolve));
  try {
    const port = (plainText.address() as net.AddressInfo).port;
    const plainError = await assertFailsWith(fetchUrl(`https://127.0.0.1:${port}/`), "TLS_FAILURE");
    assert.equal(plainError.message, `127.0.0.1:${port} did not answer with TLS: is it plain http:// on that port?`);
  } finally {
    plainText.close();
  }
  const fetcher = makeFetcher({ connectTimeoutMs: 300 });
  await assertFailsWith(fetchUrl(`https://127.0.0.1:${plain.port}/`, {}, fetcher), "CONNECT_TIMEOUT");
});

// ---- the same bytes as curl ----

const execFileAsync = promisify(execFile);

/** `curl -s -D - -o /dev/null URL`, ignoring ~/.curlrc and proxy settings. Async: the origins run in this process. */
async function curlHeaders(url: string, follow: boolean): Promise<Buffer> {
  const args = ["-q", "-s", "--noproxy", "*", ...(follow ? ["-L"] : []), "-D", "-", "-o", "/dev/null", url];
  const { stdout } = await execFileAsync("curl", args, { encoding: "buffer" });
  return stdout;
}

test("delivers the same bytes as curl -s -D - -o /dev/null", async (t) => {
  if (spawnSync("curl", ["--version"]).error) return t.skip("curl not installed: apt-get install curl");
  const origin = await craftedOrigin();
  for (const path of Object.keys(CRAFTED)) {
    const ours = await fetchUrl(origin.url(path));
    assert.deepEqual(ours.header, await curlHeaders(origin.url(path), false), path);
  }
  const { first } = await redirectChain();
  const chain = await fetchUrl(first.url(), { redirects: 5, chain: "all" });
  assert.deepEqual(chain.header, await curlHeaders(first.url(), true), "curl -L on a redirect chain");
});

test("sends the origin the very bytes curl sends (with headwire's User-Agent), for GET and HEAD", async (t) => {
  if (spawnSync("curl", ["--version"]).error) return t.skip("curl not installed: apt-get install curl");
  const origin = await craftedOrigin();
  const url = origin.url("/crlf?q=1");
  await execFileAsync("curl", ["-q", "-s", "--noproxy", "*", "-A", "headwire/test", "-o", "/dev/null", url]);
  await fetchUrl(url);
  await execFileAsync("curl", ["-q", "-s", "--noproxy", "*", "-A", "headwire/test", "-I", "-o", "/dev/null", url]);
  await fetchUrl(url, { method: "HEAD" });
  assert.equal(origin.requests.length, 4);
  assert.equal(origin.requests[1], origin.requests[0], "GET");
  assert.equal(origin.requests[3], origin.requests[2], "HEAD");
});

// ---- HTTP/2 ----

/** An h2 origin (Node's http2 server over TLS, h2 only by ALPN) answering with `respond`. */
async function startH2Origin(
  keys: TestPki,
  respond: (stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders) => void,
): Promise<{ port: number; requests: string[][] }> {
  const requests: string[][] = [];
  const server = http2.createSecureServer({ key: keys.key, cert: keys.cert });
  server.on(
    "stream",
    (stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders, _flags: number, raw: string[]) => {
      requests.push(raw);
      stream.on("error", () => {});
      respond(stream, headers);
    },
  );
  server.on("sessionError", () => {});
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  after(() => server.close());
  return { port: (server.address() as net.AddressInfo).port, requests };
}

const H2_RESPONSES: Record<string, (stream: http2.ServerHttp2Stream) => void> = {
  "/ok": (s) => {
    s.respond({ ":status": 200, "content-type": "text/html", "set-cookie": ["a=1", "b=2"], "x-later": "z" });
    s.end("<p>body never read</p>");
  },
  "/early-hints": (s) => {
    s.additionalHeaders({ ":status": 103, link: "</a.css>; rel=preload" });
    s.respond({ ":status": 404, "x-a": "1" });
    s.end();
  },
  "/moved": (s) => {
    s.respond({ ":status": 301, location: "/ok" });
    s.end();
  },
};

test("https with HTTP/2 by ALPN: the header block is rendered byte for byte as curl -D renders it", async (t) => {
  const keys = testPki();
  if (keys === undefined) return t.skip("openssl not installed: apt-get install openssl");
  if (spawnSync("curl", ["--version"]).error) return t.skip("curl not installed: apt-get install curl");
  const origin = await startH2Origin(keys, (stream, headers) => H2_RESPONSES[headers[":path"] as string]!(stream));
  const dir = mkdtempSync(join(tmpdir(), "headwire-h2-"));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  writeFileSync(join(dir, "ca.crt"), keys.ca);
  const fetcher = makeFetcher({ ca: keys.ca });
  const curl = async (url: string, ...extra: string[]) =>
    (
      await execFileAsync(
        "curl",
        [
          "-q",
          "-s",
          "--noproxy",
          "*",
          "--cacert",
          join(dir, "ca.crt"),
          "-A",
          "headwire/test",
          ...extra,
          "-D",
          "-",
          "-o",
          "/dev/null",
          url,
        ],
        { encoding: "buffer" },
      )
    ).stdout;
  for (const path of Object.keys(H2_RESPONSES)) {
    const url = `https://127.0.0.1:${origin.port}${path}`;
    const ours = await fetcher.fetch(parseTarget(url), GET);
    const theirs = await curl(url);
    // Node's server adds a date field that changes by the second: compare without it.
    const noDate = (b: Buffer) => b.toString("latin1").replace(/\r\ndate: [^\r]*/g, "");
    assert.equal(noDate(ours.header), noDate(theirs), path);
    assert.equal(ours.httpVersion, "2", path);
    assert.match(ours.header.toString("latin1"), /^HTTP\/2 \d{3} \r\n/);
  }
  assert.equal((await fetcher.fetch(parseTarget(`https://127.0.0.1:${origin.port}/ok`), GET)).status, 200);
  // A redirect followed over h2, as curl -L.
  const url = `https://127.0.0.1:${origin.port}/moved`;
  const chain = await fetcher.fetch(parseTarget(url), { ...GET, redirects: 3 });
  const noDate = (b: Buffer) => b.toString("latin1").replace(/\r\ndate: [^\r]*/g, "");
  assert.equal(noDate(chain.header), noDate(await curl(url, "-L")), "redirect chain");
  assert.equal(chain.hops, 2);
  // The request: curl's pseudo-headers and fields, in curl's order (Date aside, none is sent).
  const ourRequest = origin.requests.at(-1)!;
  await curl(`https://127.0.0.1:${origin.port}/ok`);
  assert.deepEqual(ourRequest, origin.requests.at(-1));
});

test("http=1.1 offers http/1.1 only; http=2 against an HTTP/1.1-only origin is HTTP2_REFUSED", async (t) => {
  const keys = testPki();
  if (keys === undefined) return t.skip("openssl not installed: apt-get install openssl");
  const h2 = await startH2Origin(keys, (s) => {
    s.respond({ ":status": 200 });
    s.end();
  });
  const fetcher = makeFetcher({ ca: keys.ca });
  // An h2-only server refuses a client offering only http/1.1 (no ALPN overlap).
  await assertFailsWith(fetchUrl(`https://127.0.0.1:${h2.port}/`, { http: "1.1" }, fetcher), "TLS_FAILURE");
  const h1 = await startOrigin(reply("HTTP/1.1 200 OK\r\n\r\n"), { tls: keys });
  const plain = await fetchUrl(`https://127.0.0.1:${h1.port}/`, { http: "1.1" }, fetcher);
  assert.equal(plain.httpVersion, "1.1");
  assert.equal((await fetchUrl(`https://127.0.0.1:${h1.port}/`, {}, fetcher)).httpVersion, "1.1", "auto falls back");
  const refused = await assertFailsWith(
    fetchUrl(`https://127.0.0.1:${h1.port}/`, { http: "2" }, fetcher),
    "HTTP2_REFUSED",
  );
  assert.equal(
    refused.message,
    `127.0.0.1:${h1.port} did not agree to HTTP/2 in the TLS handshake (ALPN); it speaks HTTP/1.1 only`,
  );
  const cleartext = await assertFailsWith(
    fetchUrl(`http://127.0.0.1:${h1.port}/`, { http: "2" }, fetcher),
    "HTTP2_REFUSED",
  );
  assert.match(cleartext.message, /only negotiated over https/);
});
