/**
 * The abuse limits of issue 11, each against a real server on loopback with small limits and a
 * clock the test moves (token buckets refill only when it does, so "exactly N" is exact): bad-line
 * floods, line rate, sessions and queries per client address, requests per origin host (redirect
 * hops counted), and sessions the server closes releasing their slot at once.
 */
import assert from "node:assert/strict";
import { once } from "node:events";
import { connect } from "node:net";
import { test } from "node:test";
import { CraftedOrigin } from "../../src/demo/crafted-origin.js";
import type { HeadwireServer, HeadwireServerOptions } from "../../src/server/headwire-server.js";
import { RawSession, startServer, tempDir } from "../helpers.js";

type Hooks = Parameters<typeof tempDir>[0];

async function server(
  t: Hooks,
  options: HeadwireServerOptions,
): Promise<{ server: HeadwireServer; clock: { now: number } }> {
  const clock = { now: 1_700_000_000_000 };
  const dir = await tempDir(t);
  // The clock stands still unless a test moves it, so uncollected tickets never count as
  // abandoned: a short grace keeps stop() from waiting for them.
  const started = await startServer(dir, { now: () => clock.now, shutdownGraceMs: 100, ...options }, t);
  return { server: started, clock };
}

async function greeted(port: number, t: Hooks, localAddress?: string): Promise<RawSession> {
  const session = await RawSession.open(port, "127.0.0.1", localAddress);
  t.after(async () => session.close());
  assert.match((await session.next()) ?? "", /^HEADWIRE\/2 READY /);
  return session;
}

/** Lines until `count` have arrived or the server closed. */
async function take(session: RawSession, count: number): Promise<string[]> {
  const lines: string[] = [];
  while (lines.length < count) {
    const line = await session.next();
    if (line === null) break;
    lines.push(line);
  }
  return lines;
}

/** A round trip on another session: the server has handled what was sent before it. */
async function roundTrip(probe: RawSession): Promise<void> {
  probe.send("PING\n");
  assert.equal(await probe.next(), "PONG");
}

test("a flood of empty lines gets badLineBurst errors, then TOO_MANY_ERRORS and the session is closed", async (t) => {
  const { server: s } = await server(t, { badLineBurst: 5, badLinesPerSecond: 0 });
  const flooder = await greeted(s.controlPort, t);
  const probe = await greeted(s.controlPort, t);
  flooder.send(Buffer.alloc(256 * 1024, 0x0a)); // a quarter of a million empty lines
  const lines = await take(flooder, 1000);
  assert.equal(lines.length, 6, lines.join("\n"));
  for (const line of lines.slice(0, 5)) assert.match(line, /^ERROR BAD_REQUEST empty line$/);
  assert.match(lines[5]!, /^ERROR TOO_MANY_ERRORS /);
  assert.equal(await flooder.next(), null, "closed after its last line");
  await roundTrip(probe);
});

test("bad lines are forgiven at badLinesPerSecond: a client that errs now and then is not closed", async (t) => {
  const { server: s, clock } = await server(t, { badLineBurst: 2, badLinesPerSecond: 1 });
  const session = await greeted(s.controlPort, t);
  for (let i = 0; i < 6; i++) {
    session.send("BOGUS\n");
    assert.match((await session.next()) ?? "", /^ERROR UNKNOWN_COMMAND /);
    clock.now += 1000;
  }
  await roundTrip(session);
});

test("lines are read at linesPerSecondPerSession: the rest waits in TCP, none is lost", async (t) => {
  const { server: s, clock } = await server(t, { linesPerSecondPerSession: 10 });
  const session = await greeted(s.controlPort, t);
  const probe = await greeted(s.controlPort, t);
  session.send("PING\n".repeat(25));
  assert.equal((await take(session, 10)).length, 10);
  await roundTrip(probe);
  clock.now += 1000; // ten more tokens
  assert.equal((await take(session, 10)).length, 10);
  clock.now += 500; // five more: all 25 answered
  assert.deepEqual(await take(session, 5), Array(5).fill("PONG"));
  clock.now += 100; // one more token: the session goes on
  await roundTrip(session);
});

test("sessions per client address: past maxSessionsPerAddress, SESSION_LIMIT; another address is served", async (t) => {
  const { server: s } = await server(t, { maxSessionsPerAddress: 2 });
  const first = await greeted(s.controlPort, t);
  await greeted(s.controlPort, t);
  const refused = await RawSession.open(s.controlPort);
  t.after(async () => refused.close());
  assert.match((await refused.next()) ?? "", /^ERROR SESSION_LIMIT 2 sessions from 127\.0\.0\.1 already/);
  assert.equal(await refused.next(), null);
  await greeted(s.controlPort, t, "127.0.0.2"); // another address has its own allowance
  first.close();
  await waitFor(() => s.sessionCount === 2);
  await greeted(s.controlPort, t); // a slot came free
  assert.equal(s.stats().limitHits.SESSION_LIMIT, 1);
});

test("new sessions per client address: past the burst, SESSION_LIMIT until the rate refills it", async (t) => {
  const { server: s, clock } = await server(t, { connectionsPerSecondPerAddress: 2, connectionBurstPerAddress: 3 });
  for (let i = 0; i < 3; i++) (await greeted(s.controlPort, t)).close();
  const refused = await RawSession.open(s.controlPort);
  t.after(async () => refused.close());
  assert.match(
    (await refused.next()) ?? "",
    /^ERROR SESSION_LIMIT more than 2 new sessions a second from 127\.0\.0\.1/,
  );
  await greeted(s.controlPort, t, "127.0.0.2"); // another address has its own bucket
  clock.now += 500;
  await greeted(s.controlPort, t);
});

test("queries per client address, all its sessions together: past the burst, RATE_LIMITED until it refills", async (t) => {
  const origin = await CraftedOrigin.start({
    "/a": { header: "HTTP/1.1 200 OK\r\nCache-Control: max-age=600\r\n\r\n" },
  });
  t.after(() => origin.close());
  const { server: s, clock } = await server(t, { queriesPerSecondPerAddress: 2, queryBurstPerAddress: 4 });
  const one = await greeted(s.controlPort, t);
  const two = await greeted(s.controlPort, t);
  const query = `QUERY 127.0.0.1:${origin.port}/a\n`;
  one.send(query.repeat(3));
  assert.ok((await take(one, 3)).every((line) => line.startsWith("TICKET ")));
  two.send(query.repeat(2));
  const [fourth, fifth] = await take(two, 2);
  assert.match(fourth!, /^TICKET /);
  assert.match(fifth!, /^ERROR RATE_LIMITED more than 2 queries a second from 127\.0\.0\.1/);
  clock.now += 500; // one token back
  two.send(query.repeat(2));
  const [sixth, seventh] = await take(two, 2);
  assert.match(sixth!, /^TICKET /);
  assert.match(seventh!, /^ERROR RATE_LIMITED /);
  const other = await greeted(s.controlPort, t, "127.0.0.2");
  other.send(query);
  assert.match((await other.next()) ?? "", /^TICKET /, "another address has its own bucket");
  assert.equal(s.stats().limitHits.RATE_LIMITED, 2);
});

test("an origin host gets at most originFetchBurst requests at once, redirect hops counted (ORIGIN_BUSY)", async (t) => {
  // A redirect chain as long as the protocol allows: /r0 → /r1 → … (the 672-request case).
  const routes: Record<string, { header: string }> = {};
  for (let i = 0; i < 40; i++) routes[`/r${i}`] = { header: `HTTP/1.1 302 Found\r\nLocation: /r${i + 1}\r\n\r\n` };
  const origin = await CraftedOrigin.start(routes);
  t.after(() => origin.close());
  const { server: s, clock } = await server(t, { originFetchesPerSecond: 1, originFetchBurst: 5, negativeTtlMs: 0 });
  const session = await greeted(s.controlPort, t);
  session.send(`QUERY 127.0.0.1:${origin.port}/r0 redirects=20\n`);
  assert.match((await session.next()) ?? "", /^ERROR ORIGIN_BUSY more than 1 requests a second to 127\.0\.0\.1/);
  assert.equal(origin.requestCount, 5, "the sixth hop was never sent");
  session.send(`QUERY 127.0.0.1:${origin.port}/r0 redirects=20\nQUERY 127.0.0.1:${origin.port}/r30\n`);
  assert.deepEqual(
    (await take(session, 2)).map((line) => line.split(" ").slice(0, 2).join(" ")),
    ["ERROR ORIGIN_BUSY", "ERROR ORIGIN_BUSY"],
  );
  assert.equal(origin.requestCount, 5);
  clock.now += 1000;
  session.send(`QUERY 127.0.0.1:${origin.port}/r30\n`);
  assert.match((await session.next()) ?? "", /^TICKET .* status=302 /);
  assert.equal(origin.requestCount, 6);
  assert.equal(s.stats().limitHits.ORIGIN_BUSY, 3);
});

test("an origin host gets at most originConcurrentFetches requests in flight", async (t) => {
  const routes: Record<string, { header: string }> = {};
  for (let i = 0; i < 4; i++) routes[`/s${i}`] = { header: "HTTP/1.1 200 OK\r\nCache-Control: no-store\r\n\r\n" };
  const origin = await CraftedOrigin.start(routes);
  t.after(() => origin.close());
  origin.responseDelayMs = 300;
  const { server: s } = await server(t, { originConcurrentFetches: 2 });
  const session = await greeted(s.controlPort, t);
  session.send([0, 1, 2, 3].map((i) => `QUERY 127.0.0.1:${origin.port}/s${i}\n`).join(""));
  const replies = (await take(session, 4)).map((line) => line.split(" ")[0] === "TICKET" || line.split(" ")[1]);
  assert.deepEqual(replies.sort(), ["ORIGIN_BUSY", "ORIGIN_BUSY", true, true].sort());
});

test("a session the server closes (IDLE_TIMEOUT) releases its slot at once, though the client never closes", async (t) => {
  const { server: s } = await server(t, { idleTimeoutMs: 50 });
  // allowHalfOpen: this client would never send its FIN; only the server's close can free the slot.
  const socket = connect({ port: s.controlPort, host: "127.0.0.1", allowHalfOpen: true });
  t.after(async () => void socket.destroy());
  let received = "";
  socket.setEncoding("latin1").on("data", (text: string) => (received += text));
  await once(socket, "end");
  assert.match(received, /ERROR IDLE_TIMEOUT/);
  await waitFor(() => s.sessionCount === 0);
  assert.equal(socket.destroyed, false, "the client still holds its end");
});

test("after BYE the server closes the connection: a client that keeps its end open holds no slot", async (t) => {
  const { server: s } = await server(t, {});
  const socket = connect({ port: s.controlPort, host: "127.0.0.1", allowHalfOpen: true });
  t.after(async () => void socket.destroy());
  let received = "";
  socket.setEncoding("latin1").on("data", (text: string) => (received += text));
  socket.write("TERMINATE\n");
  await once(socket, "end");
  assert.match(received, /\nBYE\n$/);
  await waitFor(() => s.sessionCount === 0);
});

async function waitFor(condition: () => boolean, ms = 10_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!condition()) {
    assert.ok(Date.now() < deadline, `not reached in ${ms} ms`);
    await new Promise((resolve) => setImmediate(resolve));
  }
}
