import assert from "node:assert/strict";
import { test } from "node:test";
import { CraftedOrigin, REALISTIC_HEADERS } from "../../src/demo/crafted-origin.js";
import { RawSession, startServer, tempDir } from "../helpers.js";

async function greeted(port: number): Promise<RawSession> {
  const session = await RawSession.open(port);
  assert.match((await session.next()) ?? "", /^HEADWIRE\/2 READY headwire\/\d+\.\d+\.\d+ idle=\d+$/);
  return session;
}

test("each kind of bad input gets its error, and the session and the server go on", async (t) => {
  const dir = await tempDir(t);
  const origin = await CraftedOrigin.start(REALISTIC_HEADERS);
  t.after(() => origin.close());
  const server = await startServer(dir, { maxLineBytes: 256 }, t);
  const bad = await greeted(server.controlPort);
  t.after(() => bad.close());
  const cases: Array<[string | Buffer, RegExp]> = [
    [`QUERY http://example.com/${"a".repeat(1000)}\n`, /^ERROR LINE_TOO_LONG /],
    [Buffer.from([0xff, 0xfe, 0x00, 0x81, 0x0a]), /^ERROR BAD_ENCODING /],
    ["QUERY http://a\u0001b/\n", /^ERROR BAD_ENCODING /],
    ["FETCH www.twitch.tv\n", /^ERROR UNKNOWN_COMMAND /],
    ["QUERY\n", /^ERROR BAD_REQUEST /],
    ["QUERY http://exa mple.com/ method=POST\n", /^ERROR BAD_REQUEST /],
    ["QUERY http://[::1/\n", /^ERROR INVALID_URL /],
    ["QUERY ftp://example.com/\n", /^ERROR UNSUPPORTED_SCHEME /],
    ["\n", /^ERROR BAD_REQUEST /],
  ];
  for (const [input, expected] of cases) {
    bad.send(input);
    assert.match((await bad.next()) ?? "(closed)", expected, `reply to ${JSON.stringify(String(input)).slice(0, 60)}`);
  }
  // Another session is served meanwhile, and so is the one that misbehaved.
  const good = await greeted(server.controlPort);
  good.send(`QUERY 127.0.0.1:${origin.port}/twitch\n`);
  assert.match(
    (await good.next()) ?? "",
    /^TICKET token=[0-9a-f]{32} udp=127\.0\.0\.1:\d+ bytes=\d+ chunks=1 cache=MISS status=301 /,
  );
  bad.send("PING\n");
  assert.equal(await bad.next(), "PONG");
  bad.send(`query 127.0.0.1:${origin.port}/twitch\n`);
  assert.match((await bad.next()) ?? "", /^TICKET .* cache=HIT status=301 /);
  good.send("TERMINATE\n");
  assert.equal(await good.next(), "BYE");
  assert.equal(await good.next(), null, "the server closes after BYE");
});

test("a line split over many TCP segments and pipelined queries are answered in order", async (t) => {
  const dir = await tempDir(t);
  const origin = await CraftedOrigin.start(REALISTIC_HEADERS);
  t.after(() => origin.close());
  const server = await startServer(dir, {}, t);
  const session = await greeted(server.controlPort);
  t.after(() => session.close());
  const text = `QUERY 127.0.0.1:${origin.port}/google\r\nBOGUS\nQUERY 127.0.0.1:${origin.port}/legacy\nPING\n`;
  for (const char of text) session.send(char);
  assert.match((await session.next()) ?? "", /^TICKET .* status=200 /);
  assert.match((await session.next()) ?? "", /^ERROR UNKNOWN_COMMAND /);
  assert.match((await session.next()) ?? "", /^TICKET .* status=200 /);
  assert.equal(await session.next(), "PONG");
});

test("an idle session is told IDLE_TIMEOUT and closed", async (t) => {
  const dir = await tempDir(t);
  const server = await startServer(dir, { idleTimeoutMs: 50 }, t);
  const session = await greeted(server.controlPort);
  t.after(() => session.close());
  assert.match((await session.next()) ?? "", /^ERROR IDLE_TIMEOUT /);
  assert.equal(await session.next(), null);
});

test("sessions beyond maxSessions get SERVER_BUSY; the others go on", async (t) => {
  const dir = await tempDir(t);
  const server = await startServer(dir, { maxSessions: 1 }, t);
  const first = await greeted(server.controlPort);
  t.after(() => first.close());
  const second = await RawSession.open(server.controlPort);
  assert.match((await second.next()) ?? "", /^ERROR SERVER_BUSY /);
  assert.equal(await second.next(), null);
  first.send("PING\n");
  assert.equal(await first.next(), "PONG");
});

test("an origin failure is an ERROR reply with the origin's code", async (t) => {
  const dir = await tempDir(t);
  const server = await startServer(dir, {}, t);
  const session = await greeted(server.controlPort);
  t.after(() => session.close());
  session.send("QUERY 127.0.0.1:1/\n");
  assert.match((await session.next()) ?? "", /^ERROR CONNECTION_REFUSED /);
});

test("a client that queries without reading is not read either: unread replies stay bounded", async (t) => {
  const dir = await tempDir(t);
  const origin = await CraftedOrigin.start(REALISTIC_HEADERS);
  t.after(() => origin.close());
  const server = await startServer(dir, { maxQueuedQueriesPerSession: 10_000 }, t);
  const session = await RawSession.open(server.controlPort);
  t.after(() => session.close());
  await session.next();
  session.socket.pause(); // never read
  const line = `QUERY 127.0.0.1:${origin.port}/twitch\n`;
  const writes: Promise<void>[] = [];
  // 200,000 queries (about 8 MB); each answered with a ~200-byte ticket line if it were read.
  for (let i = 0; i < 200; i++) {
    writes.push(new Promise((resolve) => session.socket.write(line.repeat(1000), () => resolve())));
  }
  // The writes cannot all complete: the server stops reading once its replies back up, so the
  // client's own buffer fills. Wait until the server has stopped taking queries.
  const stalled = await Promise.race([
    Promise.all(writes).then(() => false),
    new Promise<boolean>((resolve) => {
      const check = setInterval(() => {
        if (session.socket.writableLength > 1_000_000) {
          clearInterval(check);
          resolve(true);
        }
      }, 20);
    }),
  ]);
  assert.equal(stalled, true, "the server stopped reading a client that does not read");
  assert.ok(server.stats().originFetches <= 1);
  // Once the client reads again, everything is answered in order.
  session.socket.resume();
  for (let i = 0; i < 100; i++) assert.match((await session.next()) ?? "", /^TICKET /);
});

test("bytes dripped without a line end do not keep a session from IDLE_TIMEOUT", async (t) => {
  const dir = await tempDir(t);
  const server = await startServer(dir, { idleTimeoutMs: 300 }, t);
  const session = await greeted(server.controlPort);
  t.after(() => session.close());
  const drip = setInterval(() => session.send("x"), 50); // input, not synchronisation
  t.after(() => clearInterval(drip));
  const started = performance.now();
  assert.match((await session.next()) ?? "", /^ERROR IDLE_TIMEOUT /);
  clearInterval(drip);
  assert.ok(performance.now() - started < 5000);
});

test("C1 control characters are refused like C0 ones; a wrong AUTH token is refused even from loopback", async (t) => {
  const dir = await tempDir(t);
  const server = await startServer(dir, { adminToken: "0123456789abcdef0123" }, t);
  const session = await greeted(server.controlPort);
  t.after(() => session.close());
  session.send("QUERY http://a\u0085b/\n");
  assert.match((await session.next()) ?? "", /^ERROR BAD_ENCODING /);
  session.send("AUTH not-the-token-at-all\n");
  assert.match((await session.next()) ?? "", /^ERROR FORBIDDEN /);
  session.send("AUTH 0123456789abcdef0123\n");
  assert.equal(await session.next(), "AUTHORIZED");
});
