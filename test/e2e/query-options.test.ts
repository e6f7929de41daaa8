/**
 * The per-query options end to end: a real headwire server, real origins (Node servers written
 * here, on loopback), the client library's QUERY lines. What each option changes at the origin,
 * in the cache key, and what the server says when it refuses one.
 */
import assert from "node:assert/strict";
import { execFileSync, spawnSync } from "node:child_process";
import { promises as dns } from "node:dns";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import http2 from "node:http2";
import https from "node:https";
import net from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { HeadwireClient } from "../../src/client/headwire-client.js";
import { CraftedOrigin } from "../../src/demo/crafted-origin.js";
import { RawSession, startServer, tempDir } from "../helpers.js";

async function session(t: { after: (fn: () => Promise<void>) => void }, port: number): Promise<RawSession> {
  const raw = await RawSession.open(port);
  t.after(async () => raw.close());
  assert.match((await raw.next())!, /^HEADWIRE\/2 READY/);
  return raw;
}

async function ask(raw: RawSession, line: string): Promise<string> {
  raw.send(`${line}\n`);
  return (await raw.next())!;
}

test("header=: the origin gets the query's fields, -A's User-Agent, no Accept when emptied; each set is its own entry", async (t) => {
  const dir = await tempDir(t);
  const origin = await CraftedOrigin.start({
    "/h": { header: "HTTP/1.1 200 OK\r\nCache-Control: max-age=60\r\nVary: Accept-Language\r\n\r\n" },
  });
  t.after(() => origin.close());
  const server = await startServer(dir, {}, t);
  const client = await HeadwireClient.connect({ serverPort: server.controlPort, outDir: dir });
  t.after(() => client.destroy());
  const url = `127.0.0.1:${origin.port}/h`;
  const fr = [
    { name: "User-Agent", value: "curl/8.5.0" },
    { name: "Accept", value: "" },
    { name: "Accept-Language", value: "fr, en;q=0.5" },
  ];
  const first = await client.query({ url, options: { headers: fr } });
  assert.equal(first.cache, "MISS", JSON.stringify(first.error));
  assert.equal(
    origin.lastRequest.get("/h"),
    `GET /h HTTP/1.1\r\nHost: 127.0.0.1:${origin.port}\r\nUser-Agent: curl/8.5.0\r\nAccept-Language: fr, en;q=0.5\r\n\r\n`,
  );
  const sameInOtherOrder = [fr[2]!, { name: "accept", value: "" }, { name: "user-agent", value: "curl/8.5.0" }];
  assert.equal((await client.query({ url, options: { headers: sameInOtherOrder } })).cache, "HIT");
  assert.equal((await client.query({ url })).cache, "MISS", "without the fields: another entry");
  assert.match(origin.lastRequest.get("/h")!, /\r\nUser-Agent: headwire\/[^\r]+\r\nAccept: \*\/\*\r\n\r\n$/);
  const de = await client.query({ url, options: { headers: [{ name: "Accept-Language", value: "de" }] } });
  assert.equal(de.cache, "MISS");
  assert.equal(origin.requests.get("/h"), 3);
});

test("header= refusals and limits are BAD_REQUEST with their reason; the session goes on", async (t) => {
  const dir = await tempDir(t);
  const origin = await CraftedOrigin.start({ "/": { header: "HTTP/1.1 200 OK\r\n\r\n" } });
  t.after(() => origin.close());
  const server = await startServer(dir, { maxRequestHeaders: 2, maxRequestHeaderBytes: 40 }, t);
  const raw = await session(t, server.controlPort);
  const url = `http://127.0.0.1:${origin.port}/`;
  assert.match(await ask(raw, `QUERY ${url} header=Host:evil.test`), /^ERROR BAD_REQUEST header Host cannot be set: /);
  assert.match(await ask(raw, `QUERY ${url} header=X-A:a%0D%0AX-B:%20b`), /^ERROR BAD_REQUEST .*not field-content/);
  assert.match(
    await ask(raw, `QUERY ${url} header=A:1 header=B:2 header=C:3`),
    /^ERROR BAD_REQUEST 3 header= fields, more than this server's 2 \(maxRequestHeaders\)$/,
  );
  assert.match(
    await ask(raw, `QUERY ${url} header=X-Long:${"x".repeat(40)}`),
    /^ERROR BAD_REQUEST header= fields of 48 bytes, more than this server's 40 \(maxRequestHeaderBytes\)$/,
  );
  assert.match(await ask(raw, `QUERY ${url} header=X-A:1`), /^TICKET /);
  assert.equal(origin.requestCount, 1, "nothing refused reached the origin");
});

test("the guard's refusal names the switches that open it, in one sentence", async (t) => {
  const dir = await tempDir(t);
  const server = await startServer(dir, { allowPrivate: false }, t);
  const raw = await session(t, server.controlPort);
  assert.equal(
    await ask(raw, "QUERY http://localhost:9/ ip=4"),
    "ERROR BLOCKED_ADDRESS localhost resolves to 127.0.0.1, a loopback address: origins there are refused " +
      "unless the server runs with --allow-private (or --allow 127.0.0.0/8)",
  );
});

test("ip=4 and ip=6 connect to localhost over that family only; each is its own entry", async (t) => {
  const dir = await tempDir(t);
  const pair = await originPair();
  if (pair === undefined) return t.skip("no IPv6 loopback (::1) on this machine");
  t.after(() => pair.close());
  const server = await startServer(dir, {}, t);
  const client = await HeadwireClient.connect({ serverPort: server.controlPort, outDir: dir });
  t.after(() => client.destroy());
  const url = `localhost:${pair.port}/`;
  const four = await client.query({ url, options: { ip: "4" } });
  assert.match(four.header?.toString() ?? JSON.stringify(four.error), /X-Family: 4/);
  // Where the system's resolver gives localhost an IPv6 address, ip=6 reaches ::1; where it
  // does not (/etc/hosts without "::1 localhost"), ip=6 must say so rather than use IPv4.
  const families = (await dns.lookup("localhost", { all: true })).map((a) => a.family);
  const six = await client.query({ url, options: { ip: "6" } });
  if (families.includes(6)) {
    assert.match(six.header?.toString() ?? JSON.stringify(six.error), /X-Family: 6/);
    assert.equal(six.cache, "MISS", "ip=6 is not ip=4's entry");
  } else {
    assert.deepEqual(six.error, {
      code: "DNS_NOT_FOUND",
      message: "localhost has no IPv6 address (the query asked for ip=6)",
    });
  }
  // An IPv6 literal with ip=6, and localhost with ip=4 again: a HIT of its own entry.
  const literal = await client.query({ url: `[::1]:${pair.port}/`, options: { ip: "6" } });
  assert.match(literal.header?.toString() ?? JSON.stringify(literal.error), /X-Family: 6/);
  assert.equal((await client.query({ url, options: { ip: "4" } })).cache, "HIT");
  assert.deepEqual(pair.requests, { 4: 1, 6: families.includes(6) ? 2 : 1 });
  const raw = await session(t, server.controlPort);
  assert.equal(
    await ask(raw, `QUERY http://127.0.0.1:${pair.port}/ ip=6`),
    "ERROR DNS_NOT_FOUND 127.0.0.1 is not an IPv6 address (the query asked for ip=6)",
  );
});

test("connect-timeout-ms and max-time-ms: the lower of the query's and the server's, named in ms", async (t) => {
  const dir = await tempDir(t);
  // Accepts and never answers: the header times out.
  const silent = net.createServer(() => {});
  await new Promise<void>((resolve) => silent.listen(0, "127.0.0.1", resolve));
  t.after(() => silent.close());
  const port = (silent.address() as net.AddressInfo).port;
  const server = await startServer(dir, { headerTimeoutMs: 30_000 }, t);
  const raw = await session(t, server.controlPort);
  assert.equal(
    await ask(raw, `QUERY http://127.0.0.1:${port}/ max-time-ms=200`),
    `ERROR HEADER_TIMEOUT the header from 127.0.0.1:${port} timed out after 200 ms`,
  );
  const strict = await startServer(await tempDir(t), { headerTimeoutMs: 150 }, t);
  const other = await session(t, strict.controlPort);
  assert.equal(
    await ask(other, `QUERY http://127.0.0.1:${port}/ max-time-ms=60000`),
    `ERROR HEADER_TIMEOUT the header from 127.0.0.1:${port} timed out after 150 ms`,
    "the server's own limit when lower",
  );
});

test("cache=refresh: REVALIDATED with validators, MISS without; RATE_LIMITED past refreshBurstPerAddress", async (t) => {
  const dir = await tempDir(t);
  let etag = '"v1"';
  const origin = await CraftedOrigin.start({
    "/e": (request) =>
      request.includes(`If-None-Match: ${etag}`)
        ? { header: `HTTP/1.1 304 Not Modified\r\nCache-Control: max-age=600\r\nETag: ${etag}\r\n\r\n` }
        : { header: `HTTP/1.1 200 OK\r\nCache-Control: max-age=600\r\nETag: ${etag}\r\n\r\n` },
    "/n": { header: "HTTP/1.1 200 OK\r\nCache-Control: max-age=600\r\n\r\n" },
  });
  t.after(() => origin.close());
  // A clock that stands still: the refresh bucket refills only if the test moves it (it does not).
  const now = () => Date.parse("2026-12-01T12:00:00Z");
  const server = await startServer(dir, { refreshesPerSecondPerAddress: 1, refreshBurstPerAddress: 3, now }, t);
  const client = await HeadwireClient.connect({ serverPort: server.controlPort, outDir: dir });
  t.after(() => client.destroy());
  const e = `127.0.0.1:${origin.port}/e`;
  const n = `127.0.0.1:${origin.port}/n`;
  assert.equal((await client.query({ url: e })).cache, "MISS");
  assert.equal((await client.query({ url: e })).cache, "HIT");
  assert.equal((await client.query({ url: e, options: { cache: "refresh" } })).cache, "REVALIDATED");
  assert.match(origin.lastRequest.get("/e")!, /\r\nIf-None-Match: "v1"\r\n/);
  etag = '"v2"';
  const changed = await client.query({ url: e, options: { cache: "refresh" } });
  assert.equal(changed.cache, "MISS");
  assert.match(changed.header!.toString(), /ETag: "v2"/);
  assert.equal((await client.query({ url: e })).cache, "HIT", "the refreshed entry is stored");
  assert.equal((await client.query({ url: n })).cache, "MISS");
  assert.equal(
    (await client.query({ url: n, options: { cache: "refresh" } })).cache,
    "MISS",
    "no validators: refetched",
  );
  // Three refreshes in a burst were allowed; the fourth within the second is refused.
  const limited = await client.query({ url: n, options: { cache: "refresh" } });
  assert.equal(limited.error?.code, "RATE_LIMITED");
  assert.match(limited.error!.message, /cache=refresh queries \(--fresh\) a second from 127\.0\.0\.1/);
  assert.equal((await client.query({ url: n })).cache, "HIT", "plain queries are not limited by it");
});

test("insecure=1: FORBIDDEN_OPTION unless --allow-insecure-queries; then a self-signed origin answers, under its own key", async (t) => {
  const pki = selfSigned();
  if (pki === undefined) return t.skip("openssl not installed");
  const origin = https.createServer({ key: pki.key, cert: pki.cert }, (_request, response) => {
    response.writeHead(200, { "Cache-Control": "max-age=60", "X-Tls": "yes" }).end();
  });
  await new Promise<void>((resolve) => origin.listen(0, "127.0.0.1", resolve));
  t.after(() => origin.close());
  const url = `https://127.0.0.1:${(origin.address() as net.AddressInfo).port}/`;

  const closed = await startServer(await tempDir(t), {}, t);
  const refused = await session(t, closed.controlPort);
  assert.equal(
    await ask(refused, `QUERY ${url} insecure=1`),
    "ERROR FORBIDDEN_OPTION insecure=1 (curl -k) is refused: this server verifies origins' certificates " +
      "unless it runs with --allow-insecure-queries",
  );
  const verified = await ask(refused, `QUERY ${url}`);
  assert.match(
    verified,
    /^ERROR TLS_FAILURE the certificate of 127\.0\.0\.1:\d+ is self-signed, and this server does not trust it; -k/,
  );
  assert.doesNotMatch(verified, /SSL routines|error:[0-9A-F]{8}/, "no OpenSSL text");

  const open = await startServer(await tempDir(t), { allowInsecureQueries: true }, t);
  const client = await HeadwireClient.connect({ serverPort: open.controlPort, outDir: await tempDir(t) });
  t.after(() => client.destroy());
  const unverified = await client.query({ url, options: { insecure: true } });
  assert.equal(unverified.cache, "MISS", JSON.stringify(unverified.error));
  assert.match(unverified.header!.toString(), /x-tls: yes/i);
  const strict = await client.query({ url });
  assert.equal(strict.error?.code, "TLS_FAILURE", "an unverified answer never reaches a verifying query");
});

/** A self-signed certificate for 127.0.0.1, made with the openssl CLI. */
function selfSigned(): { key: Buffer; cert: Buffer } | undefined {
  if (spawnSync("openssl", ["version"]).error) return undefined;
  const dir = mkdtempSync(join(tmpdir(), "headwire-self-"));
  try {
    writeFileSync(join(dir, "ext.cnf"), "subjectAltName=IP:127.0.0.1\n");
    execFileSync(
      "openssl",
      [
        "req",
        "-x509",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
        "-keyout",
        "k.pem",
      ].concat(["-out", "c.pem", "-days", "2", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"]),
      { cwd: dir, stdio: "pipe" },
    );
    return { key: readFileSync(join(dir, "k.pem")), cert: readFileSync(join(dir, "c.pem")) };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/**
 * Two origins on one port number, on 127.0.0.1 and ::1, each saying its family: localhost:PORT
 * reaches one or the other by the family alone. undefined when ::1 cannot be bound.
 */
async function originPair(): Promise<{ port: number; requests: Record<4 | 6, number>; close: () => void } | undefined> {
  const requests = { 4: 0, 6: 0 };
  const serve = (family: 4 | 6) =>
    net.createServer((socket) => {
      socket.once("data", () => {
        requests[family]++;
        socket.end(`HTTP/1.1 200 OK\r\nX-Family: ${family}\r\nContent-Length: 0\r\n\r\n`);
      });
    });
  for (let attempt = 0; attempt < 10; attempt++) {
    const v4 = serve(4);
    await new Promise<void>((resolve) => v4.listen(0, "127.0.0.1", resolve));
    const port = (v4.address() as net.AddressInfo).port;
    const v6 = serve(6);
    const bound = await new Promise<string | undefined>((resolve) => {
      v6.once("error", (error: NodeJS.ErrnoException) => resolve(error.code));
      v6.listen(port, "::1", () => resolve(undefined));
    });
    if (bound === undefined) {
      return { port, requests, close: () => (v4.close(), v6.close()) };
    }
    v4.close();
    if (bound !== "EADDRINUSE") return undefined;
  }
  return undefined;
}

test("an HTTP/2 origin's header, stored, read back after a restart on the same cache file: HIT, byte-exact", async (t) => {
  const pki = selfSigned();
  if (pki === undefined) return t.skip("openssl not installed");
  const origin = http2.createSecureServer({ key: pki.key, cert: pki.cert, allowHTTP1: false });
  let requests = 0;
  let lastHeaders: http2.IncomingHttpHeaders = {};
  origin.on("stream", (stream, headers) => {
    requests++;
    lastHeaders = headers;
    stream.respond({ ":status": 200, "cache-control": "max-age=600", etag: '"h2"', "x-proto": "two" });
    stream.end();
  });
  await new Promise<void>((resolve) => origin.listen(0, "127.0.0.1", resolve));
  t.after(() => origin.close());
  const url = `https://127.0.0.1:${(origin.address() as net.AddressInfo).port}/two`;
  const dir = await tempDir(t);
  const first = await startServer(dir, { insecureTls: true });
  const client = await HeadwireClient.connect({ serverPort: first.controlPort, outDir: dir });
  const fetched = await client.query({ url });
  assert.equal(fetched.cache, "MISS", JSON.stringify(fetched.error));
  assert.match(fetched.header!.toString("latin1"), /^HTTP\/2 200 \r\n/, "as curl writes it");
  const hit = await client.query({ url });
  assert.equal(hit.cache, "HIT", JSON.stringify(hit.error));
  await client.terminate();
  await first.stop();

  const second = await startServer(dir, { insecureTls: true }, t);
  const again = await HeadwireClient.connect({ serverPort: second.controlPort, outDir: dir });
  t.after(() => again.destroy());
  const reloaded = await again.query({ url });
  assert.equal(reloaded.cache, "HIT", JSON.stringify(reloaded.error));
  assert.deepEqual(reloaded.header, fetched.header, "byte for byte the header first fetched");
  const refreshed = await again.query({ url, options: { cache: "refresh" } });
  assert.equal(refreshed.cache, "MISS", "the h2 origin ignores If-None-Match here: a full response");
  assert.equal(requests, 2);
  // Request fields over HTTP/2: lowercase names, an emptied default not sent.
  const fields = [
    { name: "Accept-Language", value: "fr" },
    { name: "Accept", value: "" },
  ];
  const withFields = await again.query({ url, options: { headers: fields } });
  assert.equal(withFields.cache, "MISS", JSON.stringify(withFields.error));
  assert.equal(lastHeaders["accept-language"], "fr");
  assert.equal(lastHeaders.accept, undefined);
  assert.match(String(lastHeaders["user-agent"]), /^headwire\//);
});
