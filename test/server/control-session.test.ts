/**
 * ControlSession alone: a connected socket pair over loopback (the session on the accepted end,
 * the test on the other) and a fake SessionHandler whose answers the test releases when it
 * chooses. No headwire server, no origin.
 */
import assert from "node:assert/strict";
import { once } from "node:events";
import { connect, createServer, type Socket } from "node:net";
import { test } from "node:test";
import { ERROR_CODES, HeadwireError } from "../../src/errors.js";
import { DEFAULT_QUERY_OPTIONS, type QueryOptions } from "../../src/http/query-options.js";
import {
  ControlSession,
  type SessionContext,
  ReplyBytes,
  type SessionHandler,
  type SessionLimits,
  type SessionReply,
} from "../../src/server/control-session.js";
import type { Delivery } from "../../src/protocol/control.js";
import { LinePeer } from "../line-peer.js";

type Hooks = { after: (fn: () => void | Promise<void>) => void };

const LIMITS: SessionLimits = {
  loopbackIsAdmin: true,
  maxLineBytes: 256,
  idleTimeoutMs: 30_000,
  maxQueuedQueries: 8,
  linesPerSecond: 100_000,
  badLineBurst: 1000,
  badLinesPerSecond: 1000,
  replyBytes: new ReplyBytes(64 * 1024 * 1024),
};

/** A promise the test settles by hand. */
class Deferred<T> {
  resolve!: (value: T) => void;
  reject!: (error: unknown) => void;
  readonly promise = new Promise<T>((resolve, reject) => {
    this.resolve = resolve;
    this.reject = reject;
  });
}

interface AskedQuery {
  url: string;
  options: QueryOptions;
  delivery: Delivery;
  answer: Deferred<SessionReply>;
}

/** Holds every query until the test answers it; records what the session asked of it. */
class FakeHandler implements SessionHandler {
  readonly queries: AskedQuery[] = [];
  readonly purges: Array<string | undefined> = [];
  readonly terminatedCalls: Array<Deferred<void>> = [];
  readonly closedSessions: SessionContext[] = [];
  readonly internalErrors: unknown[] = [];
  private readonly queryWaiters: Array<{ count: number; resolve: () => void }> = [];
  private terminatedWaiter: (() => void) | undefined;

  query(url: string, options: QueryOptions, _session: SessionContext, delivery: Delivery): Promise<SessionReply> {
    const answer = new Deferred<SessionReply>();
    this.queries.push({ url, options, delivery, answer });
    for (const waiter of this.queryWaiters.filter((w) => this.queries.length >= w.count)) waiter.resolve();
    return answer.promise;
  }

  authorize(token: string): boolean {
    if (token === "throw-a-bug") throw new TypeError("a bug in authorize");
    return token === "s3cret";
  }

  async purge(url: string | undefined): Promise<number> {
    this.purges.push(url);
    return 3;
  }

  terminated(): Promise<void> {
    const done = new Deferred<void>();
    this.terminatedCalls.push(done);
    this.terminatedWaiter?.();
    return done.promise;
  }

  closed(session: SessionContext): void {
    this.closedSessions.push(session);
  }

  internalError(error: unknown): void {
    this.internalErrors.push(error);
  }

  /** Resolves once `count` queries have reached the handler. */
  asked(count: number): Promise<void> {
    if (this.queries.length >= count) return Promise.resolve();
    return new Promise((resolve) => this.queryWaiters.push({ count, resolve }));
  }

  /** Resolves once terminated() has been called. */
  terminating(): Promise<void> {
    if (this.terminatedCalls.length > 0) return Promise.resolve();
    return new Promise((resolve) => (this.terminatedWaiter = resolve));
  }
}

/** A session on the accepted end of a fresh loopback connection; the test holds the other end. */
async function openSession(
  t: Hooks,
  limits: Partial<SessionLimits> = {},
  handler = new FakeHandler(),
): Promise<{
  session: ControlSession;
  peer: LinePeer;
  handler: FakeHandler;
  serverSocket: Socket;
  serverClosed: Promise<unknown>;
}> {
  // As the headwire server does: a client's FIN leaves the session able to write its replies.
  const server = createServer({ allowHalfOpen: true });
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  const accepted = once(server, "connection") as Promise<[Socket]>;
  const peer = new LinePeer(connect({ port: (server.address() as { port: number }).port, host: "127.0.0.1" }));
  const [serverSocket] = await accepted;
  // Not once(): it would reject on an "error" (a reset), and close follows an error anyway.
  const serverClosed = new Promise<unknown>((resolve) => serverSocket.once("close", resolve));
  const session = new ControlSession(serverSocket, 7, "unit/1", { ...LIMITS, ...limits }, handler);
  t.after(async () => {
    peer.socket.destroy();
    serverSocket.destroy();
    server.close();
    await once(server, "close");
  });
  // The greeting tells the session's idle timeout, so a client waiting on its user PINGs in time.
  assert.equal(await peer.next(), `HEADWIRE/2 READY unit/1 idle=${limits.idleTimeoutMs ?? LIMITS.idleTimeoutMs}`);
  return { session, peer, handler, serverSocket, serverClosed };
}

test("the session's context: id, loopback peer and local address, admin from loopback, open until closed", async (t) => {
  const { session, peer, serverClosed } = await openSession(t);
  const { startedAtMs, peerPort, ...context } = session.context;
  assert.deepEqual(context, {
    id: 7,
    peerAddress: "127.0.0.1",
    localAddress: "127.0.0.1",
    admin: true,
    open: true,
    queries: 0,
    errors: 0,
    lastOutcome: null,
  });
  assert.equal(peerPort, peer.socket.localPort, "the client's port");
  assert.ok(startedAtMs > 0 && startedAtMs <= Date.now());
  const { session: notAdmin } = await openSession(t, { loopbackIsAdmin: false });
  assert.equal(notAdmin.context.admin, false);
  peer.socket.destroy();
  await serverClosed;
  assert.equal(session.context.open, false);
});

test("replies go out in the order of the requests, even when a later answer is ready first", async (t) => {
  const { peer, handler } = await openSession(t);
  peer.write("QUERY a.example/\nQUERY b.example/ method=HEAD redirects=2 chain=last\nPING\nQUERY c.example/\n");
  await handler.asked(3);
  assert.deepEqual(
    handler.queries.map((q) => q.url),
    ["a.example/", "b.example/", "c.example/"],
  );
  assert.deepEqual(handler.queries[1]!.options, {
    ...DEFAULT_QUERY_OPTIONS,
    method: "HEAD",
    redirects: 2,
    chain: "last",
    http: "auto",
  });
  // c and b are answered before a: nothing may be written until a's answer is.
  handler.queries[2]!.answer.resolve("ERROR INVALID_URL c\n");
  handler.queries[1]!.answer.resolve("ERROR INVALID_URL b\n");
  handler.queries[0]!.answer.resolve("ERROR INVALID_URL a\n");
  assert.deepEqual(await peer.take(4), ["ERROR INVALID_URL a", "ERROR INVALID_URL b", "PONG", "ERROR INVALID_URL c"]);
});

test("a query whose handler fails is answered with an ERROR line (INTERNAL_ERROR for a bug, told to the handler), and the session goes on", async (t) => {
  const { peer, handler } = await openSession(t);
  peer.write("QUERY a.example/\nQUERY b.example/\nPING\n");
  await handler.asked(2);
  handler.queries[0]!.answer.reject(new HeadwireError("DNS_NOT_FOUND", "no such host"));
  const bug = new TypeError("cannot read properties of undefined");
  handler.queries[1]!.answer.reject(bug);
  assert.deepEqual(await peer.take(3), [
    "ERROR DNS_NOT_FOUND no such host",
    `ERROR INTERNAL_ERROR ${ERROR_CODES.INTERNAL_ERROR}`,
    "PONG",
  ]);
  assert.deepEqual(handler.internalErrors, [bug], "the bug reaches the handler's log, once");
});

test("PING is answered with PONG; bad lines get their ERROR and the session goes on", async (t) => {
  const { peer } = await openSession(t, { maxLineBytes: 32 });
  peer.write(
    Buffer.concat([
      Buffer.from(`PING\nFROB x\nQUERY\n${"x".repeat(40)}\n`),
      Buffer.from([0xff, 0x0a]),
      Buffer.from("ping\n"),
    ]),
  );
  const lines = await peer.take(6);
  assert.equal(lines[0], "PONG");
  assert.match(lines[1]!, /^ERROR UNKNOWN_COMMAND /);
  assert.match(lines[2]!, /^ERROR BAD_REQUEST /);
  assert.match(lines[3]!, /^ERROR LINE_TOO_LONG /);
  assert.match(lines[4]!, /^ERROR BAD_ENCODING /);
  assert.equal(lines[5], "PONG");
});

test("AUTH with the right token makes the session admin; a wrong one is FORBIDDEN", async (t) => {
  const { session, peer } = await openSession(t, { loopbackIsAdmin: false });
  peer.write("AUTH wrong\n");
  assert.equal(await peer.next(), "ERROR FORBIDDEN wrong admin token");
  assert.equal(session.context.admin, false);
  peer.write("AUTH s3cret\n");
  assert.equal(await peer.next(), "AUTHORIZED");
  assert.equal(session.context.admin, true);
  // A wrong token afterwards is refused, and does not take the right away.
  peer.write("AUTH wrong\n");
  assert.equal(await peer.next(), "ERROR FORBIDDEN wrong admin token");
  assert.equal(session.context.admin, true);
});

test("PURGE is FORBIDDEN for a session that is not admin, and reaches the handler once it is", async (t) => {
  const { peer, handler } = await openSession(t, { loopbackIsAdmin: false });
  peer.write("PURGE ALL\nPURGE http://a.example/\n");
  assert.deepEqual(await peer.take(2), [
    `ERROR FORBIDDEN ${new HeadwireError("FORBIDDEN").message}`,
    `ERROR FORBIDDEN ${new HeadwireError("FORBIDDEN").message}`,
  ]);
  assert.deepEqual(handler.purges, []);
  peer.write("AUTH s3cret\nPURGE ALL\nPURGE http://a.example/\n");
  assert.deepEqual(await peer.take(3), ["AUTHORIZED", "PURGED 3", "PURGED 3"]);
  assert.deepEqual(handler.purges, [undefined, "http://a.example/"]);
});

test("a loopback session may PURGE without AUTH when loopbackIsAdmin", async (t) => {
  const { peer, handler } = await openSession(t);
  peer.write("PURGE ALL\n");
  assert.equal(await peer.next(), "PURGED 3");
  assert.deepEqual(handler.purges, [undefined]);
});

test("TERMINATE: replies already promised, then terminated() is awaited, then BYE and the close", async (t) => {
  const { peer, handler } = await openSession(t);
  peer.write("QUERY a.example/\nTERMINATE\nPING\n");
  await handler.asked(1);
  handler.queries[0]!.answer.resolve("ERROR INVALID_URL a\n");
  assert.equal(await peer.next(), "ERROR INVALID_URL a");
  await handler.terminating();
  // BYE is held while terminated() is pending. A missing BYE cannot be awaited: look a while.
  await new Promise((resolve) => setTimeout(resolve, 30));
  assert.deepEqual(peer.received.slice(2), [], "nothing after the reply while terminated() is pending");
  handler.terminatedCalls[0]!.resolve();
  assert.equal(await peer.next(), "BYE");
  assert.equal(await peer.next(), null, "the server closes after BYE; the PING after TERMINATE is not answered");
  assert.equal(handler.terminatedCalls.length, 1);
});

test("TERMINATE: a failed persist is PERSIST_FAILED instead of BYE, and the session ends", async (t) => {
  const { peer, handler } = await openSession(t);
  peer.write("TERMINATE\n");
  await handler.terminating();
  // BYE promises the cache is persisted (issue 11: it used to come whatever happened).
  handler.terminatedCalls[0]!.reject(new HeadwireError("PERSIST_FAILED", "the cache could not be persisted (ENOSPC)"));
  assert.equal(await peer.next(), "ERROR PERSIST_FAILED the cache could not be persisted (ENOSPC)");
  assert.equal(await peer.next(), null);
});

test("maxQueuedQueries: a query past the limit gets SERVER_BUSY; PINGs do not count", async (t) => {
  const { peer, handler } = await openSession(t, { maxQueuedQueries: 2 });
  peer.write("QUERY a.example/\nPING\nQUERY b.example/\nQUERY c.example/\n");
  await handler.asked(2);
  handler.queries[0]!.answer.resolve("ERROR INVALID_URL a\n");
  handler.queries[1]!.answer.resolve("ERROR INVALID_URL b\n");
  assert.deepEqual(await peer.take(4), [
    "ERROR INVALID_URL a",
    "PONG",
    "ERROR INVALID_URL b",
    "ERROR SERVER_BUSY too many queries queued",
  ]);
  assert.equal(handler.queries.length, 2, "the refused query never reached the handler");
  // Answered queries leave the queue: the next one is taken.
  peer.write("QUERY d.example/\n");
  await handler.asked(3);
  handler.queries[2]!.answer.resolve("ERROR INVALID_URL d\n");
  assert.equal(await peer.next(), "ERROR INVALID_URL d");
});

test("idle timeout: a session with no complete request for idleTimeoutMs is ended with IDLE_TIMEOUT", async (t) => {
  const { peer, handler, session, serverClosed } = await openSession(t, { idleTimeoutMs: 50 });
  peer.write("PI"); // an unfinished line is not a request
  assert.match((await peer.next()) ?? "(closed)", /^ERROR IDLE_TIMEOUT /);
  assert.equal(await peer.next(), null);
  await serverClosed;
  assert.deepEqual(
    handler.closedSessions.map((s) => s.id),
    [session.context.id],
  );
});

test("idle timeout: a session waiting for its own answer is not idle", async (t) => {
  const { peer, handler } = await openSession(t, { idleTimeoutMs: 40 });
  peer.write("QUERY a.example/\n");
  await handler.asked(1);
  // Answered after several idle periods: the session is still there to deliver it.
  setTimeout(() => handler.queries[0]!.answer.resolve("ERROR INVALID_URL a\n"), 150);
  assert.equal(await peer.next(), "ERROR INVALID_URL a");
  assert.match((await peer.next()) ?? "(closed)", /^ERROR IDLE_TIMEOUT /);
});

test("a client that half-closes after its requests still gets every reply, then the close", async (t) => {
  const { peer, handler, serverSocket } = await openSession(t);
  const fin = once(serverSocket, "end");
  peer.socket.end("QUERY a.example/\nPING\n");
  await handler.asked(1);
  await fin; // the FIN has reached the session before the answer is ready
  handler.queries[0]!.answer.resolve("ERROR INVALID_URL a\n");
  assert.deepEqual(await peer.take(3), ["ERROR INVALID_URL a", "PONG", null]);
  assert.equal(handler.closedSessions.length, 1);
});

test("end(reason) from the server: replies already promised, then the reason, then the close", async (t) => {
  const { peer, handler, session } = await openSession(t);
  peer.write("QUERY a.example/\n");
  await handler.asked(1);
  session.end(new HeadwireError("SHUTTING_DOWN"));
  peer.write("PING\n"); // after the end: not answered
  handler.queries[0]!.answer.resolve("ERROR INVALID_URL a\n");
  await session.drained();
  assert.deepEqual(await peer.take(3), [
    "ERROR INVALID_URL a",
    `ERROR SHUTTING_DOWN ${new HeadwireError("SHUTTING_DOWN").message}`,
    null,
  ]);
});

test("a client that vanishes mid-query: the late answer is dropped quietly, closed() is told once", async (t) => {
  const { peer, handler, session, serverClosed } = await openSession(t);
  peer.write("QUERY a.example/\n");
  await handler.asked(1);
  peer.socket.destroy();
  // A FIN looks like a half-close: the session keeps its promise to answer, then closes.
  handler.queries[0]!.answer.resolve("ERROR INVALID_URL a\n");
  await session.drained();
  await serverClosed;
  assert.equal(handler.closedSessions.length, 1);
});

test("reply bytes a client has not read count in the shared budget, and are given back when it goes", async (t) => {
  const replyBytes = new ReplyBytes(64 * 1024);
  const { peer, handler, serverClosed } = await openSession(t, { replyBytes });
  peer.socket.pause(); // the client does not read
  peer.write("QUERY a.example/\n");
  await handler.asked(1);
  // A reply larger than any kernel buffer: most of it has to wait in the server.
  handler.queries[0]!.answer.resolve(`${"x".repeat(32 * 1024 * 1024)}\n`);
  await waitUntil(() => replyBytes.used > 1024 * 1024);
  peer.socket.destroy();
  await serverClosed;
  assert.equal(replyBytes.used, 0);
});

async function waitUntil(condition: () => boolean): Promise<void> {
  const deadline = Date.now() + 10_000;
  while (!condition()) {
    assert.ok(Date.now() < deadline, "condition not reached in 10 s");
    await new Promise((resolve) => setImmediate(resolve));
  }
}

test("past the shared reply budget a query gets SERVER_BUSY instead of work", async (t) => {
  const replyBytes = new ReplyBytes(65_536);
  replyBytes.used = 65_537; // other sessions' unread replies
  const { peer, handler } = await openSession(t, { replyBytes });
  peer.write("QUERY a.example/\n");
  assert.match((await peer.next()) ?? "", /^ERROR SERVER_BUSY too many replies waiting to be read/);
  assert.equal(handler.queries.length, 0);
  replyBytes.used = 0;
});

test("delivery=tcp: the handler is told; its line and raw body go out in the reply order, the body unchanged", async (t) => {
  const { peer, handler } = await openSession(t);
  peer.write("QUERY a.example/ delivery=tcp\nQUERY b.example/\n");
  await handler.asked(2);
  assert.deepEqual(
    handler.queries.map((q) => q.delivery),
    ["tcp", "udp"],
  );
  handler.queries[1]!.answer.resolve("ERROR INVALID_URL b\n");
  handler.queries[0]!.answer.resolve({ line: "TICKET delivery=tcp bytes=8 x\n", body: Buffer.from("raw\nbody") });
  assert.deepEqual(await peer.take(3), ["TICKET delivery=tcp bytes=8 x", "raw", "bodyERROR INVALID_URL b"]);
});

test("a delivery=tcp body is not written past the shared reply budget: SERVER_BUSY instead, no bytes", async (t) => {
  const replyBytes = new ReplyBytes(65_536);
  const { peer, handler } = await openSession(t, { replyBytes });
  peer.write("QUERY a.example/ delivery=tcp\n");
  await handler.asked(1);
  replyBytes.used = 65_537; // other sessions' unread replies, grown while this query was answered
  handler.queries[0]!.answer.resolve({ line: "TICKET delivery=tcp bytes=4 x\n", body: Buffer.from("abcd") });
  assert.match((await peer.next()) ?? "", /^ERROR SERVER_BUSY too many replies waiting to be read/);
  replyBytes.used = 0;
  peer.write("PING\n");
  assert.equal(await peer.next(), "PONG", "nothing else was written before it");
});

test("a bug while handling one session's line ends that session with INTERNAL_ERROR, logged, and nothing else", async (t) => {
  const handler = new FakeHandler();
  const { peer, serverClosed } = await openSession(t, {}, handler);
  const { peer: other } = await openSession(t, {}, handler);
  peer.write("AUTH throw-a-bug\nPING\n");
  assert.match((await peer.next()) ?? "", /^ERROR INTERNAL_ERROR /);
  assert.equal(await peer.next(), null, "the session is closed; its PING is not answered");
  await serverClosed;
  assert.equal(handler.internalErrors.length, 1);
  other.write("PING\n");
  assert.equal(await other.next(), "PONG");
});
