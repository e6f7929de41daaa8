/**
 * ControlConnection against an in-test TCP server on loopback that speaks the control protocol
 * line by line, as each test scripts it: no headwire server.
 */
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { once } from "node:events";
import { createServer, type Server } from "node:net";
import { test } from "node:test";
import { ControlConnection } from "../../src/client/control-connection.js";
import { formatTicket, type Ticket } from "../../src/protocol/control.js";
import { LinePeer } from "../line-peer.js";

type Hooks = { after: (fn: () => void | Promise<void>) => void };

const TIMEOUTS = { connectTimeoutMs: 5000, greetingTimeoutMs: 5000, replyTimeoutMs: 5000 };

/** A server on 127.0.0.1 port 0 whose sessions `script` plays; the port and the sessions it saw. */
async function scriptedServer(
  t: Hooks,
  script: (side: LinePeer) => void | Promise<void>,
): Promise<{ port: number; server: Server; sessions: LinePeer[] }> {
  const sessions: LinePeer[] = [];
  const server = createServer((socket) => {
    const side = new LinePeer(socket);
    sessions.push(side);
    void script(side);
  });
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  t.after(async () => {
    for (const side of sessions) side.socket.destroy();
    server.close();
    await once(server, "close");
  });
  return { port: (server.address() as { port: number }).port, server, sessions };
}

function ticket(bytes: number): Ticket {
  return {
    token: randomBytes(16),
    udpHost: "127.0.0.1",
    udpPort: 4000,
    bytes,
    chunks: 1,
    cache: "MISS",
    status: 200,
    sha256: randomBytes(32),
  };
}

const GREETING = "HEADWIRE/2 READY in-test/0.0.1\n";

test("open reads the greeting: the server's name, and the family of the address reached", async (t) => {
  const { port } = await scriptedServer(t, (side) => side.write(GREETING));
  const connection = await ControlConnection.open("127.0.0.1", port, TIMEOUTS);
  t.after(() => connection.destroy());
  assert.equal(connection.serverName, "in-test/0.0.1");
  assert.equal(connection.remoteFamily, "IPv4");
  assert.equal(connection.lost, undefined);
});

test("a greeting split over many writes (CRLF ends too) is read whole", async (t) => {
  const { port } = await scriptedServer(t, (side) => {
    for (const char of "HEADWIRE/2 READY slow/1\r\n") side.write(char);
  });
  const connection = await ControlConnection.open("127.0.0.1", port, TIMEOUTS);
  t.after(() => connection.destroy());
  assert.equal(connection.serverName, "slow/1");
});

test("pipelined queries: each reply goes to its own query, in the order they were sent", async (t) => {
  const tickets = [ticket(100), ticket(200), ticket(300)];
  let asked: string[] = [];
  const { port } = await scriptedServer(t, async (side) => {
    side.write(GREETING);
    // Read all five requests before answering any: the replies come in one burst.
    asked = [];
    for (let i = 0; i < 5; i++) asked.push((await side.next()) ?? "(closed)");
    side.write(
      `${formatTicket(tickets[0]!)}PONG\n` +
        `${formatTicket(tickets[1]!)}ERROR INVALID_URL no such URL\n` +
        formatTicket(tickets[2]!),
    );
  });
  const connection = await ControlConnection.open("127.0.0.1", port, TIMEOUTS);
  t.after(() => connection.destroy());
  const replies = await Promise.all([
    connection.query("a.example/"),
    connection.query("b.example/", { method: "HEAD" }),
    connection.query("c.example/", { redirects: 3, chain: "last" }),
    connection.query("d.example/"),
    connection.query("e.example/"),
  ]);
  assert.deepEqual(asked, [
    "QUERY a.example/",
    "QUERY b.example/ method=HEAD",
    "QUERY c.example/ redirects=3 chain=last",
    "QUERY d.example/",
    "QUERY e.example/",
  ]);
  assert.deepEqual(
    replies.map((r) => (r.kind === "ticket" ? r.ticket.bytes : r.kind === "error" ? r.code : r.kind)),
    [100, "pong", 200, "INVALID_URL", 300],
  );
  assert.ok(replies[0]!.kind === "ticket" && replies[0].ticket.token.equals(tickets[0]!.token));
});

test("a server that closes mid-session: the open query fails with CONNECTION_LOST, and so do later ones", async (t) => {
  const { port } = await scriptedServer(t, async (side) => {
    side.write(GREETING);
    await side.next();
    side.write(formatTicket(ticket(10)));
    await side.next(); // the second query: closed without an answer
    side.socket.end();
  });
  const connection = await ControlConnection.open("127.0.0.1", port, TIMEOUTS);
  t.after(() => connection.destroy());
  const first = await connection.query("a.example/");
  assert.equal(first.kind, "ticket");
  await assert.rejects(connection.query("b.example/"), { name: "HeadwireError", code: "CONNECTION_LOST" });
  await connection.closed;
  assert.equal(connection.lost?.code, "CONNECTION_LOST");
  await assert.rejects(connection.query("c.example/"), { code: "CONNECTION_LOST" });
  await assert.rejects(connection.terminate(), { code: "CONNECTION_LOST" });
});

test("an unsolicited ERROR before the close (IDLE_TIMEOUT) is why the session was lost", async (t) => {
  const { port } = await scriptedServer(t, (side) => {
    side.write(GREETING);
    side.socket.end("ERROR IDLE_TIMEOUT idle too long\n");
  });
  const connection = await ControlConnection.open("127.0.0.1", port, TIMEOUTS);
  t.after(() => connection.destroy());
  await connection.closed;
  assert.equal(connection.lost?.code, "IDLE_TIMEOUT");
  assert.equal(connection.lost?.message, "idle too long");
  await assert.rejects(connection.query("a.example/"), { code: "IDLE_TIMEOUT" });
});

test("terminate after a server's SHUTTING_DOWN resolves: nothing was lost", async (t) => {
  const { port } = await scriptedServer(t, (side) => {
    side.write(GREETING);
    side.socket.end("ERROR SHUTTING_DOWN\n");
  });
  const connection = await ControlConnection.open("127.0.0.1", port, TIMEOUTS);
  t.after(() => connection.destroy());
  await connection.closed;
  assert.equal(connection.lost?.code, "SHUTTING_DOWN");
  await connection.terminate();
});

test("terminate crossing a stopping server's SHUTTING_DOWN resolves: the session ended, nothing was lost", async (t) => {
  const { port, sessions } = await scriptedServer(t, async (side) => {
    side.write(GREETING);
    // The server closes the session for its shutdown just as the client's TERMINATE is on its way.
    if ((await side.next()) === "TERMINATE") side.socket.end("ERROR SHUTTING_DOWN the server is stopping\n");
  });
  const connection = await ControlConnection.open("127.0.0.1", port, TIMEOUTS);
  t.after(() => connection.destroy());
  await connection.terminate();
  await sessions[0]!.closed;
});

test("terminate sends TERMINATE, waits for BYE, and ends when the server closes", async (t) => {
  const { port, sessions } = await scriptedServer(t, async (side) => {
    side.write(GREETING);
    if ((await side.next()) === "TERMINATE") side.socket.end("BYE\n");
  });
  const connection = await ControlConnection.open("127.0.0.1", port, TIMEOUTS);
  await connection.terminate();
  await sessions[0]!.closed;
  assert.equal(connection.lost?.code, "CONNECTION_LOST", "after the close, the session is over");
});

test("terminate answered by ERROR PERSIST_FAILED: the session ends, and terminate rejects with it", async (t) => {
  const { port, sessions } = await scriptedServer(t, async (side) => {
    side.write(GREETING);
    if ((await side.next()) === "TERMINATE") side.socket.end("ERROR PERSIST_FAILED the cache could not be persisted\n");
  });
  const connection = await ControlConnection.open("127.0.0.1", port, TIMEOUTS);
  t.after(() => connection.destroy());
  await assert.rejects(connection.terminate(), {
    code: "PERSIST_FAILED",
    message: "the cache could not be persisted",
  });
  await sessions[0]!.closed;
});

for (const [what, greeting, code] of [
  ["a garbage greeting", "HELLO THERE\n", "NOT_HEADWIRE"],
  ["another protocol version", "HEADWIRE/3 READY future/9\n", "PROTOCOL_ERROR"],
  ["a greeting without READY", "HEADWIRE/2 BUSY\n", "PROTOCOL_ERROR"],
  ["a reply that is not a greeting", "PONG\n", "NOT_HEADWIRE"],
  ["bytes that are not UTF-8", "HEADWIRE/2 READY \xff\xfe\n", "PROTOCOL_ERROR"],
  ["a greeting longer than a reply may be", `HEADWIRE/2 READY ${"x".repeat(9000)}\n`, "PROTOCOL_ERROR"],
  ["an ERROR instead of a greeting", "ERROR SERVER_BUSY too many sessions\n", "SERVER_BUSY"],
] as const) {
  test(`open refuses ${what}: ${code}`, async (t) => {
    const { port } = await scriptedServer(t, (side) => {
      side.socket.write(Buffer.from(greeting, "latin1"));
    });
    await assert.rejects(ControlConnection.open("127.0.0.1", port, TIMEOUTS), { name: "HeadwireError", code });
  });
}

test("a reply line that is not a server message fails the session with PROTOCOL_ERROR and closes it", async (t) => {
  const { port, sessions } = await scriptedServer(t, async (side) => {
    side.write(GREETING);
    await side.next();
    side.write("TICKET token=nothex\n");
  });
  const connection = await ControlConnection.open("127.0.0.1", port, TIMEOUTS);
  await assert.rejects(connection.query("a.example/"), { code: "PROTOCOL_ERROR", message: /bad ticket field/ });
  await sessions[0]!.closed;
  assert.equal(connection.lost?.code, "PROTOCOL_ERROR");
});

test("reply timeout: no answer within replyTimeoutMs fails the query with REPLY_TIMEOUT and closes the session", async (t) => {
  const { port, sessions } = await scriptedServer(t, (side) => side.write(GREETING));
  const connection = await ControlConnection.open("127.0.0.1", port, { ...TIMEOUTS, replyTimeoutMs: 50 });
  const started = performance.now();
  await assert.rejects(connection.query("a.example/"), {
    code: "REPLY_TIMEOUT",
    message:
      "no reply to QUERY a.example/ within 50 ms (--reply-timeout-ms); the session was closed, " +
      "since a late reply would be taken for the next query's",
  });
  assert.ok(performance.now() - started >= 49);
  // Replies carry no request id: the client closed the session rather than risk a late reply.
  await sessions[0]!.closed;
  await connection.closed;
  assert.equal(connection.lost?.code, "REPLY_TIMEOUT");
});

test("PING gets its PONG; a query asked while it is on its way gets its own reply after it", async (t) => {
  const { port } = await scriptedServer(t, async (side) => {
    side.write(GREETING);
    assert.equal(await side.next(), "PING");
    assert.equal(await side.next(), "QUERY a.example/");
    side.write("PONG\n");
    side.write("ERROR DNS_NOT_FOUND a.example does not resolve\n");
  });
  const connection = await ControlConnection.open("127.0.0.1", port, TIMEOUTS);
  t.after(() => connection.destroy());
  const [pong, reply] = await Promise.all([connection.ping(), connection.query("a.example/")]);
  assert.equal(pong, undefined);
  assert.deepEqual(reply, { kind: "error", code: "DNS_NOT_FOUND", message: "a.example does not resolve" });
});

test("the greeting's idle= field is the server's idle timeout; the name is the rest", async (t) => {
  const { port } = await scriptedServer(t, (side) => side.write("HEADWIRE/2 READY in-test/0.0.1 idle=1500\n"));
  const connection = await ControlConnection.open("127.0.0.1", port, TIMEOUTS);
  t.after(() => connection.destroy());
  assert.equal(connection.serverName, "in-test/0.0.1");
  assert.equal(connection.idleTimeoutMs, 1500);
});

test("a peer that accepts but never speaks (an HTTP server, nginx): NOT_HEADWIRE within greetingTimeoutMs", async (t) => {
  const { port } = await scriptedServer(t, () => {});
  const started = performance.now();
  await assert.rejects(
    ControlConnection.open("127.0.0.1", port, { ...TIMEOUTS, greetingTimeoutMs: 300, replyTimeoutMs: 60_000 }),
    {
      code: "NOT_HEADWIRE",
      message:
        `127.0.0.1:${port} is not a headwire server: it sent nothing within 0.3 s of connecting (a headwire ` +
        "server greets at once; an HTTP or TLS server waits for its client to speak; headwire listens on 50366 by default)",
    },
  );
  assert.ok(performance.now() - started < 30_000, "the greeting timeout, not the reply timeout");
});

for (const [what, first, said] of [
  ["an SSH server", "SSH-2.0-OpenSSH_9.2p1 Debian-2\r\n", 'it answered "SSH-2.0-OpenSSH_9.2p1 Debian-2"'],
  ["an SMTP server", "220 mail.example ESMTP Postfix\r\n", 'it answered "220 mail.example ESMTP Postfix"'],
  ["an HTTP answer", "HTTP/1.1 400 Bad Request\r\nServer: nginx\r\n\r\n", 'it answered "HTTP/1.1 400 Bad Request"'],
  [
    "TLS bytes",
    "\x15\x03\x03\x00\x02\x02\x46",
    "it answered TLS bytes (15 03 03 00 02 02 46): it expects a TLS client",
  ],
  ["binary bytes", "\x00\x01\x02\xff", "it answered bytes that are not text (00 01 02 ff)"],
] as const) {
  test(`${what} first: NOT_HEADWIRE at once, saying what it sent`, async (t) => {
    const { port } = await scriptedServer(t, (side) => void side.socket.write(Buffer.from(first, "latin1")));
    await assert.rejects(ControlConnection.open("127.0.0.1", port, { ...TIMEOUTS, greetingTimeoutMs: 60_000 }), {
      code: "NOT_HEADWIRE",
      message: `127.0.0.1:${port} is not a headwire server: ${said}`,
    });
  });
}

test("a peer that closes before a greeting: NOT_HEADWIRE, not 'the server closed the session'", async (t) => {
  const { port } = await scriptedServer(t, (side) => void side.socket.end());
  await assert.rejects(ControlConnection.open("127.0.0.1", port, TIMEOUTS), {
    code: "NOT_HEADWIRE",
    message: `127.0.0.1:${port} is not a headwire server: it closed the connection without a greeting`,
  });
});

test("nothing listening: SERVER_UNREACHABLE", async (t) => {
  const { port, server } = await scriptedServer(t, () => {});
  server.close(); // the port is free again, and refuses
  await once(server, "close");
  server.listen(0, "127.0.0.1"); // reopened elsewhere so the cleanup hook can close it
  await once(server, "listening");
  await assert.rejects(ControlConnection.open("127.0.0.1", port, TIMEOUTS), {
    code: "SERVER_UNREACHABLE",
    message: /ECONNREFUSED/,
  });
});

test("the trace sees the connection, and every line sent and received", async (t) => {
  const { port } = await scriptedServer(t, async (side) => {
    side.write(GREETING);
    await side.next();
    side.write("PONG\n");
  });
  const seen: string[] = [];
  const connection = await ControlConnection.open("127.0.0.1", port, TIMEOUTS, (channel, direction, text) =>
    seen.push(`${channel} ${direction} ${text}`),
  );
  t.after(() => connection.destroy());
  await connection.query("a.example/");
  assert.match(seen.shift() ?? "", new RegExp(`^tcp note connected 127\\.0\\.0\\.1:\\d+ → 127\\.0\\.0\\.1:${port}$`));
  assert.deepEqual(seen, ["tcp recv HEADWIRE/2 READY in-test/0.0.1", "tcp send QUERY a.example/", "tcp recv PONG"]);
});
