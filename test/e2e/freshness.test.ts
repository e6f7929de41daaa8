import assert from "node:assert/strict";
import { readFile } from "node:fs/promises";
import { test } from "node:test";
import { HeadwireClient } from "../../src/client/headwire-client.js";
import { CraftedOrigin } from "../../src/demo/crafted-origin.js";
import { RawSession, startServer, tempDir } from "../helpers.js";

/** A clock the test moves; the server's freshness and tickets follow it. */
function clock(start = Date.parse("2026-11-25T12:00:00Z")) {
  let now = start;
  return { now: () => now, advance: (seconds: number) => (now += seconds * 1000) };
}

test("stale with an ETag: revalidated with If-None-Match, a 304 refreshes the stored header", async (t) => {
  const dir = await tempDir(t);
  const time = clock();
  let version = 1;
  const origin = await CraftedOrigin.start({
    "/page": (request) => {
      const date = new Date(time.now()).toUTCString();
      if (request.includes(`If-None-Match: "v${version}"`)) {
        return {
          header: `HTTP/1.1 304 Not Modified\r\nDate: ${date}\r\nCache-Control: max-age=60\r\nETag: "v${version}"\r\n\r\n`,
        };
      }
      return {
        header: `HTTP/1.1 200 OK\r\nDate: ${date}\r\nCache-Control: max-age=60\r\nETag: "v${version}"\r\nContent-Length: 2\r\n\r\n`,
        body: "hi",
      };
    },
  });
  t.after(() => origin.close());
  const server = await startServer(dir, { now: time.now }, t);
  const client = await HeadwireClient.connect({ serverPort: server.controlPort, outDir: dir });
  t.after(() => client.destroy());
  const url = `127.0.0.1:${origin.port}/page`;
  const first = await client.query({ url });
  assert.equal(first.cache, "MISS");
  time.advance(30);
  assert.equal((await client.query({ url })).cache, "HIT");
  assert.equal(origin.requests.get("/page"), 1);

  time.advance(31); // 61 s after the fetch: stale
  const revalidated = await client.query({ url });
  assert.equal(revalidated.cache, "REVALIDATED");
  assert.equal(origin.requests.get("/page"), 2);
  assert.match(origin.lastRequest.get("/page")!, /\r\nIf-None-Match: "v1"\r\n/);
  const header = (await readFile(revalidated.file!)).toString("latin1");
  assert.match(header, new RegExp(`Date: ${new Date(time.now()).toUTCString()}`), "Date comes from the 304");
  assert.match(header, /Content-Length: 2\r\n/, "fields the 304 lacks are kept");
  // Freshened: a hit again for another minute.
  time.advance(59);
  assert.equal((await client.query({ url })).cache, "HIT");

  // A changed resource: the origin answers 200 to the conditional request.
  version = 2;
  time.advance(2);
  const changed = await client.query({ url });
  assert.equal(changed.cache, "MISS");
  assert.match((await readFile(changed.file!)).toString(), /ETag: "v2"/);
});

test("an ETag with a non-ASCII byte (obs-text) is sent back byte for byte: REVALIDATED", async (t) => {
  const dir = await tempDir(t);
  const time = clock();
  // RFC 9110 §8.8.3: etagc includes obs-text; the origin matches the exact bytes it sent.
  const etag = Buffer.concat([Buffer.from('"caf'), Buffer.from([0xe9]), Buffer.from('"')]);
  const origin = await CraftedOrigin.start({
    "/accent": (request) => {
      const conditional = request.includes(`\r\nIf-None-Match: ${etag.toString("latin1")}\r\n`);
      const status = conditional ? "304 Not Modified" : "200 OK";
      return {
        header: Buffer.concat([
          Buffer.from(`HTTP/1.1 ${status}\r\nCache-Control: max-age=60\r\nETag: `),
          etag,
          Buffer.from("\r\n\r\n"),
        ]),
      };
    },
  });
  t.after(() => origin.close());
  const server = await startServer(dir, { now: time.now }, t);
  const client = await HeadwireClient.connect({ serverPort: server.controlPort, outDir: dir });
  t.after(() => client.destroy());
  const url = `127.0.0.1:${origin.port}/accent`;
  assert.equal((await client.query({ url })).cache, "MISS");
  time.advance(61);
  const second = await client.query({ url });
  assert.equal(second.error, undefined);
  assert.equal(second.cache, "REVALIDATED");
  assert.equal(origin.requests.get("/accent"), 2);
  const sent = Buffer.from(origin.lastRequest.get("/accent")!, "latin1");
  assert.ok(sent.includes(Buffer.concat([Buffer.from("\r\nIf-None-Match: "), etag, Buffer.from("\r\n")])));
  assert.ok((await readFile(second.file!)).includes(etag), "the stored ETag keeps its byte");
});

test("stale with Last-Modified: revalidated with If-Modified-Since", async (t) => {
  const dir = await tempDir(t);
  const time = clock();
  const lastModified = "Mon, 04 May 2020 10:00:00 GMT";
  const origin = await CraftedOrigin.start({
    "/doc": (request) =>
      request.includes(`If-Modified-Since: ${lastModified}`)
        ? { header: "HTTP/1.1 304 Not Modified\r\nCache-Control: max-age=10\r\n\r\n" }
        : { header: `HTTP/1.1 200 OK\r\nCache-Control: max-age=10\r\nLast-Modified: ${lastModified}\r\n\r\n` },
  });
  t.after(() => origin.close());
  const server = await startServer(dir, { now: time.now }, t);
  const client = await HeadwireClient.connect({ serverPort: server.controlPort, outDir: dir });
  t.after(() => client.destroy());
  const url = `127.0.0.1:${origin.port}/doc`;
  assert.equal((await client.query({ url })).cache, "MISS");
  time.advance(11);
  assert.equal((await client.query({ url })).cache, "REVALIDATED");
});

test("stale without validators is fetched again; no-store is never kept", async (t) => {
  const dir = await tempDir(t);
  const time = clock();
  const origin = await CraftedOrigin.start({
    "/plain": { header: "HTTP/1.1 200 OK\r\nCache-Control: max-age=5\r\n\r\n" },
    "/secret": { header: "HTTP/1.1 200 OK\r\nCache-Control: no-store\r\n\r\n" },
    "/nothing": { header: "HTTP/1.1 200 OK\r\nServer: bare\r\n\r\n" },
  });
  t.after(() => origin.close());
  const server = await startServer(dir, { now: time.now, defaultTtlMs: 20_000 }, t);
  const client = await HeadwireClient.connect({ serverPort: server.controlPort, outDir: dir });
  t.after(() => client.destroy());
  const base = `127.0.0.1:${origin.port}`;
  assert.equal((await client.query({ url: `${base}/plain` })).cache, "MISS");
  time.advance(6);
  assert.equal((await client.query({ url: `${base}/plain` })).cache, "MISS");
  assert.doesNotMatch(origin.lastRequest.get("/plain")!, /If-/);
  assert.equal((await client.query({ url: `${base}/secret` })).cache, "MISS");
  assert.equal((await client.query({ url: `${base}/secret` })).cache, "MISS");
  assert.equal(origin.requests.get("/secret"), 2);
  // No freshness information: the default lifetime (20 s here).
  assert.equal((await client.query({ url: `${base}/nothing` })).cache, "MISS");
  time.advance(19);
  assert.equal((await client.query({ url: `${base}/nothing` })).cache, "HIT");
  time.advance(2);
  assert.equal((await client.query({ url: `${base}/nothing` })).cache, "MISS");
});

test("a stale entry is served as STALE while its origin fails, within maxStaleMs", async (t) => {
  const dir = await tempDir(t);
  const time = clock();
  const origin = await CraftedOrigin.start({
    "/x": { header: "HTTP/1.1 200 OK\r\nCache-Control: max-age=10\r\n\r\n" },
  });
  const server = await startServer(dir, { now: time.now, maxStaleMs: 60_000, negativeTtlMs: 0 }, t);
  const client = await HeadwireClient.connect({ serverPort: server.controlPort, outDir: dir });
  t.after(() => client.destroy());
  const url = `127.0.0.1:${origin.port}/x`;
  assert.equal((await client.query({ url })).cache, "MISS");
  await origin.close(); // the origin goes away
  time.advance(30);
  const stale = await client.query({ url });
  assert.equal(stale.cache, "STALE");
  time.advance(45); // 75 s: past freshness (10 s) + maxStale (60 s)
  const failed = await client.query({ url });
  assert.equal(failed.error?.code, "CONNECTION_REFUSED");
});

test("1,000 concurrent queries for a cold URL cause exactly one origin request", async (t) => {
  const dir = await tempDir(t);
  const origin = await CraftedOrigin.start({
    "/cold": { header: "HTTP/1.1 200 OK\r\nCache-Control: max-age=60\r\n\r\n" },
  });
  t.after(() => origin.close());
  const server = await startServer(dir, { maxQueuedQueriesPerSession: 100 }, t);
  const sessions = await Promise.all(Array.from({ length: 20 }, () => RawSession.open(server.controlPort)));
  t.after(() => sessions.forEach((s) => s.close()));
  for (const session of sessions) await session.next(); // greeting
  const query = `QUERY 127.0.0.1:${origin.port}/cold\n`;
  for (const session of sessions) session.send(query.repeat(50));
  const replies = await Promise.all(
    sessions.map(async (session) => {
      const lines = [];
      for (let i = 0; i < 50; i++) lines.push(await session.next());
      return lines;
    }),
  );
  const all = replies.flat();
  assert.equal(all.length, 1000);
  for (const line of all) assert.match(line ?? "", /^TICKET .* status=200 /);
  assert.equal(origin.requests.get("/cold"), 1);
  assert.equal(server.stats().originFetches, 1);
});

test("an origin error is shared by those waiting, remembered briefly, and never cached as a success", async (t) => {
  const dir = await tempDir(t);
  const time = clock();
  let broken = true;
  const origin = await CraftedOrigin.start({
    "/flaky": () => ({
      header: broken ? "garbage, not HTTP\r\n\r\n" : "HTTP/1.1 200 OK\r\nCache-Control: max-age=60\r\n\r\n",
    }),
  });
  t.after(() => origin.close());
  const server = await startServer(dir, { now: time.now, negativeTtlMs: 2000 }, t);
  const session = await RawSession.open(server.controlPort);
  t.after(() => session.close());
  await session.next();
  session.send(`QUERY 127.0.0.1:${origin.port}/flaky\n`.repeat(10));
  for (let i = 0; i < 10; i++) assert.match((await session.next()) ?? "", /^ERROR NOT_HTTP /);
  assert.equal(origin.requests.get("/flaky"), 1, "the waiting queries shared one fetch");
  broken = false;
  time.advance(1);
  session.send(`QUERY 127.0.0.1:${origin.port}/flaky\n`);
  assert.match((await session.next()) ?? "", /^ERROR NOT_HTTP /, "remembered within negativeTtlMs");
  assert.equal(origin.requests.get("/flaky"), 1);
  time.advance(2);
  session.send(`QUERY 127.0.0.1:${origin.port}/flaky\n`);
  assert.match((await session.next()) ?? "", /^TICKET .* cache=MISS status=200 /);
  assert.equal(origin.requests.get("/flaky"), 2);
});

test("a header larger than cacheMaxEntryBytes is delivered whole but not cached", async (t) => {
  const dir = await tempDir(t);
  const big = `HTTP/1.1 200 OK\r\nCache-Control: max-age=600\r\nX-Pad: ${"p".repeat(3000)}\r\n\r\n`;
  const origin = await CraftedOrigin.start({ "/big": { header: big } });
  t.after(() => origin.close());
  const server = await startServer(dir, { cacheMaxEntryBytes: 2048 }, t);
  const client = await HeadwireClient.connect({ serverPort: server.controlPort, outDir: dir });
  t.after(() => client.destroy());
  const url = `127.0.0.1:${origin.port}/big`;
  for (let i = 0; i < 2; i++) {
    const result = await client.query({ url });
    assert.equal(result.cache, "MISS");
    assert.equal((await readFile(result.file!)).toString(), big);
  }
  assert.equal(origin.requests.get("/big"), 2);
});
