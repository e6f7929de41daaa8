/**
 * `headwire server --workers N` as processes (issue 15): sessions spread over the workers, each
 * delivery byte-exact, a ticket served only by the worker that issued it, a killed worker
 * replaced while its sessions' clients see a clean CONNECTION_LOST and reconnect, misses
 * coalesced across workers, and SIGTERM draining every worker and persisting the cache once.
 */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { createSocket, type Socket } from "node:dgram";
import { once } from "node:events";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { test } from "node:test";
import { HeadwireClient } from "../../src/client/headwire-client.js";
import { CraftedOrigin } from "../../src/demo/crafted-origin.js";
import { parseServerMessage, type Ticket } from "../../src/protocol/control.js";
import { decodeDatagram, encodeRequest } from "../../src/protocol/datagram.js";
import { RawSession, tempDir, TEST_SERVER_ENV } from "../helpers.js";
import { BIN, type ServerProcess } from "../cli/run-cli.js";

const HEADER = `HTTP/1.1 200 OK\r\nCache-Control: max-age=600\r\nX-Pad: ${"w".repeat(3000)}\r\n\r\n`;

interface Workers extends ServerProcess {
  cacheFile: string;
  dataPorts: number[];
  pids: number[];
}

async function startWorkers(t: Parameters<typeof tempDir>[0], count: number, extra: string[] = []): Promise<Workers> {
  const dir = await tempDir(t);
  const args = ["--host", "127.0.0.1", "--port", "0", "--data-port", "0", "--allow-private"];
  const child = spawn(process.execPath, [BIN, "server", ...args, "--workers", String(count), ...extra], {
    cwd: dir,
    env: { ...process.env, ...TEST_SERVER_ENV, HEADWIRE_CACHE_FILE: join(dir, "cache.txt") },
  });
  t.after(async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill("SIGKILL");
      await once(child, "exit");
    }
  });
  let stderr = "";
  child.stderr.setEncoding("utf8").on("data", (text: string) => (stderr += text));
  let stdout = "";
  child.stdout.setEncoding("utf8");
  const ready = await new Promise<RegExpExecArray>((resolve, reject) => {
    child.stdout.on("data", (text: string) => {
      stdout += text;
      const match = /control tcp port (\d+), data udp ports ([\d, ]+) \((\d+) workers, pids ([\d, ]+)\)/.exec(stdout);
      if (match) resolve(match);
    });
    child.once("exit", (code) => reject(new Error(`server exited ${code}: ${stderr}`)));
  });
  const numbers = (text: string) => text.split(", ").map(Number);
  return {
    child,
    port: Number(ready[1]),
    adminPort: undefined,
    stderr: () => stderr,
    stdout: () => stdout,
    dataPorts: numbers(ready[2]!),
    pids: numbers(ready[4]!),
    cacheFile: join(dir, "cache.txt"),
  };
}

/** Resolves once the server's stderr shows `pattern` (bounded by the test's timeout). */
async function stderrShows(server: ServerProcess, pattern: RegExp): Promise<void> {
  while (!pattern.test(server.stderr())) await once(server.child.stderr!, "data");
}

async function udpSocket(t: { after: (fn: () => void) => void }): Promise<Socket> {
  const socket = createSocket("udp4");
  socket.bind(0, "127.0.0.1");
  await once(socket, "listening");
  t.after(() => socket.close());
  return socket;
}

async function ticketFor(session: RawSession, url: string): Promise<Ticket> {
  session.send(`QUERY ${url}\n`);
  const message = parseServerMessage((await session.next()) ?? "");
  assert.equal(message.kind, "ticket", JSON.stringify(message));
  return (message as { ticket: Ticket }).ticket;
}

/** Collects every chunk of `ticket` on `socket` and puts the header together, noting where each came from. */
async function collect(socket: Socket, ticket: Ticket, from: Set<number>): Promise<Buffer> {
  const chunks = new Map<number, Buffer>();
  const done = new Promise<void>((resolve) => {
    const onMessage = (message: Buffer, remote: { port: number }) => {
      const datagram = decodeDatagram(message);
      if (datagram?.type !== "chunk" || !datagram.token.equals(ticket.token)) return;
      from.add(remote.port);
      chunks.set(datagram.index, datagram.payload);
      if (chunks.size === ticket.chunks) {
        socket.off("message", onMessage);
        resolve();
      }
    };
    socket.on("message", onMessage);
  });
  socket.send(encodeRequest(ticket.token, [{ first: 0, count: ticket.chunks }]), ticket.udpPort, ticket.udpHost);
  await done;
  return Buffer.concat([...chunks.keys()].sort((a, b) => a - b).map((index) => chunks.get(index)!));
}

test("workers: sessions spread over 3 workers, each delivery byte-exact from its own worker's port, one origin fetch", async (t) => {
  const origin = await CraftedOrigin.start({ "/w": { header: HEADER } });
  t.after(() => origin.close());
  const server = await startWorkers(t, 3);
  assert.equal(new Set(server.dataPorts).size, 3, `each worker its own data port: ${server.dataPorts.join(", ")}`);
  const sessions = await Promise.all(Array.from({ length: 9 }, () => RawSession.open(server.port)));
  t.after(() => sessions.forEach((session) => session.close()));
  for (const session of sessions) assert.match((await session.next()) ?? "", /^HEADWIRE\/\d+ READY/);
  // Nine sessions ask at once for a URL no worker has: the primary's fill claim lets one fetch it.
  const tickets = await Promise.all(sessions.map((session) => ticketFor(session, `127.0.0.1:${origin.port}/w`)));
  const used = new Set(tickets.map((ticket) => ticket.udpPort));
  assert.ok(used.size >= 2, `sessions on at least 2 workers, got ports ${[...used].join(", ")}`);
  for (const port of used) assert.ok(server.dataPorts.includes(port), `${port} is a worker's data port`);
  assert.equal(origin.requestCount, 1, "one origin fetch for nine sessions on several workers");
  const socket = await udpSocket(t);
  for (const ticket of tickets) {
    const from = new Set<number>();
    const header = await collect(socket, ticket, from);
    assert.equal(header.toString("latin1"), HEADER);
    assert.deepEqual([...from], [ticket.udpPort], "served by the worker that issued the ticket");
  }
});

test("workers: a ticket's token sent to another worker's data port gets nothing", async (t) => {
  const origin = await CraftedOrigin.start({ "/w": { header: HEADER } });
  t.after(() => origin.close());
  const server = await startWorkers(t, 2);
  const url = `127.0.0.1:${origin.port}/w`;
  // Sessions until both workers have issued a ticket (round-robin: two or three suffice; bounded).
  const byPort = new Map<number, Ticket>();
  for (let i = 0; i < 20 && byPort.size < 2; i++) {
    const session = await RawSession.open(server.port);
    t.after(() => session.close());
    await session.next();
    const ticket = await ticketFor(session, url);
    byPort.set(ticket.udpPort, ticket);
  }
  assert.equal(byPort.size, 2, "both workers issued a ticket");
  const [a, b] = [...byPort.values()] as [Ticket, Ticket];
  const socket = await udpSocket(t);
  const foreign: Buffer[] = [];
  socket.on("message", (message: Buffer, remote) => {
    const datagram = decodeDatagram(message);
    if (remote.port === b.udpPort && datagram?.token.equals(a.token)) foreign.push(message);
  });
  // A's token at B's port first; then B's own ticket at B's port: B handles its socket's datagrams
  // in order, so once B's own delivery is in, the foreign request has had its (empty) answer.
  socket.send(encodeRequest(a.token, [{ first: 0, count: a.chunks }]), b.udpPort, b.udpHost);
  const header = await collect(socket, b, new Set());
  assert.equal(header.toString("latin1"), HEADER);
  assert.equal(foreign.length, 0, "another worker serves no chunk of a ticket it did not issue");
  // And A's own worker still serves it whole.
  assert.equal((await collect(socket, a, new Set())).toString("latin1"), HEADER);
});

test("workers: a worker killed with SIGKILL is replaced; its session's client gets CONNECTION_LOST and reconnects", async (t) => {
  const origin = await CraftedOrigin.start({ "/w": { header: HEADER } });
  t.after(() => origin.close());
  const server = await startWorkers(t, 2);
  const url = `127.0.0.1:${origin.port}/w`;
  // The client's trace shows its TICKET line, whose udp= port says which worker holds the session.
  const seen: string[] = [];
  const client = await HeadwireClient.connect(
    { serverHost: "127.0.0.1", serverPort: server.port },
    (channel, direction, text) => {
      if (channel === "tcp" && direction === "recv") seen.push(text);
    },
  );
  t.after(() => client.destroy());
  const first = await client.query({ url, write: false });
  assert.equal(first.header?.toString("latin1"), HEADER, JSON.stringify(first.error));
  const port = Number(/TICKET .*udp=[^ ]*:(\d+)/.exec(seen.join("\n"))?.[1]);
  const victim = server.dataPorts.indexOf(port);
  assert.ok(victim >= 0, `the ticket's port ${port} is a worker's (${server.dataPorts.join(", ")})`);
  process.kill(server.pids[victim]!, "SIGKILL");
  await client.closed;
  assert.equal(client.lost?.code, "CONNECTION_LOST");
  await stderrShows(server, new RegExp(`worker ${victim} replaced`));
  assert.match(
    server.stderr(),
    new RegExp(`worker ${victim} \\(pid ${server.pids[victim]}\\) exited \\(signal SIGKILL\\)`),
  );
  // Reconnecting works, on whichever worker; several sessions reach the replacement too.
  for (let i = 0; i < 4; i++) {
    const again = await HeadwireClient.connect({ serverHost: "127.0.0.1", serverPort: server.port });
    t.after(() => again.destroy());
    const result = await again.query({ url, write: false });
    assert.equal(result.header?.toString("latin1"), HEADER, JSON.stringify(result.error));
  }
  assert.equal(server.child.exitCode, null, "the primary lives on");
});

test("workers: SIGTERM drains every worker and persists the cache once, with every worker's entries", async (t) => {
  const origin = await CraftedOrigin.start({ "/a": { header: HEADER }, "/b": { header: HEADER } });
  t.after(() => origin.close());
  const server = await startWorkers(t, 2, ["--persist-delay-ms", "600000"]);
  const sessions = await Promise.all([RawSession.open(server.port), RawSession.open(server.port)]);
  t.after(() => sessions.forEach((session) => session.close()));
  for (const session of sessions) await session.next();
  await ticketFor(sessions[0]!, `127.0.0.1:${origin.port}/a`);
  await ticketFor(sessions[1]!, `127.0.0.1:${origin.port}/b`);
  server.child.kill("SIGTERM");
  const [code] = (await once(server.child, "exit")) as [number | null];
  assert.equal(code, 0, server.stderr());
  const log = server.stderr();
  assert.equal(log.match(/stopped; cache persisted/g)?.length, 1, log);
  assert.equal(log.match(/cache left to the primary/g)?.length, 2, "each worker left the cache to the primary");
  const cache = await readFile(server.cacheFile, "utf8");
  assert.match(cache, /\/a\b/);
  assert.match(cache, /\/b\b/);
});

/** One session on each of two workers (told apart by a probe ticket's data port; bounded). */
async function sessionsOnTwoWorkers(
  t: { after: (fn: () => void) => void },
  server: Workers,
  probe: string,
): Promise<[RawSession, RawSession]> {
  const byPort = new Map<number, RawSession>();
  for (let i = 0; i < 20 && byPort.size < 2; i++) {
    const session = await RawSession.open(server.port);
    t.after(() => session.close());
    assert.match((await session.next()) ?? "", /^HEADWIRE\/\d+ READY/);
    const ticket = await ticketFor(session, probe);
    if (!byPort.has(ticket.udpPort)) byPort.set(ticket.udpPort, session);
  }
  assert.equal(byPort.size, 2, "sessions on both workers");
  return [...byPort.values()] as [RawSession, RawSession];
}

/** A QUERY on `session`, its delivery collected whole: the header as delivered. */
async function delivered(session: RawSession, socket: Socket, url: string): Promise<string> {
  const ticket = await ticketFor(session, url);
  return (await collect(socket, ticket, new Set())).toString("latin1");
}

test("workers: a PURGE through one worker's session is seen by every worker's next lookup (a MISS at the origin)", async (t) => {
  const origin = await CraftedOrigin.start({ "/p": { header: HEADER }, "/probe": { header: HEADER } });
  t.after(() => origin.close());
  const server = await startWorkers(t, 2);
  const [a, b] = await sessionsOnTwoWorkers(t, server, `127.0.0.1:${origin.port}/probe`);
  const socket = await udpSocket(t);
  const url = `127.0.0.1:${origin.port}/p`;
  // Both workers read the entry (one origin fetch), then hold it in their copies: more lookups, no fetch.
  for (const session of [a, b, a, b]) assert.equal(await delivered(session, socket, url), HEADER);
  assert.equal(origin.requests.get("/p"), 1, "one fetch; the other lookups were hits");
  a.send(`PURGE ${url}\n`);
  assert.equal(await a.next(), "PURGED 1");
  // B's copy must be gone: its next lookup fetches again, byte-exact.
  assert.equal(await delivered(b, socket, url), HEADER);
  assert.equal(origin.requests.get("/p"), 2, "the lookup on the other worker was a MISS at the origin");
  assert.equal(await delivered(a, socket, url), HEADER);
  assert.equal(origin.requests.get("/p"), 2, "and the refetched entry is shared again");
  // PURGE ALL through B: A's copy of the refetched entry goes too.
  b.send("PURGE ALL\n");
  assert.match((await b.next()) ?? "", /^PURGED [1-9]\d*$/);
  assert.equal(await delivered(a, socket, url), HEADER);
  assert.equal(origin.requests.get("/p"), 3, "after PURGE ALL via B, A's lookup was a MISS at the origin");
});

test("workers: an entry refreshed through one worker is served new, byte-exact, by the other", async (t) => {
  const old = `HTTP/1.1 200 OK\r\nCache-Control: max-age=1\r\nX-Version: 1\r\nX-Pad: ${"o".repeat(2000)}\r\n\r\n`;
  const fresh = `HTTP/1.1 200 OK\r\nCache-Control: max-age=600\r\nX-Version: 2\r\nX-Pad: ${"n".repeat(2500)}\r\n\r\n`;
  const origin = await CraftedOrigin.start({ "/r": { header: old }, "/probe": { header: HEADER } });
  t.after(() => origin.close());
  const server = await startWorkers(t, 2);
  const [a, b] = await sessionsOnTwoWorkers(t, server, `127.0.0.1:${origin.port}/probe`);
  const socket = await udpSocket(t);
  const url = `127.0.0.1:${origin.port}/r`;
  assert.equal(await delivered(b, socket, url), old, "B reads (and keeps a copy of) the first version");
  origin.set("/r", { header: fresh });
  // A refetches once the entry is stale (max-age=1): until then its lookups are hits of the old one.
  // Polled on the condition (the origin's second request), a lookup every 200 ms, bounded by the test's timeout.
  let seen = old;
  while (origin.requests.get("/r") === 1) {
    seen = await delivered(a, socket, url);
    if (origin.requests.get("/r") === 1) await new Promise((resolve) => setTimeout(resolve, 200));
  }
  assert.equal(seen, fresh, "A's refetch delivered the new version");
  assert.equal(await delivered(b, socket, url), fresh, "B serves the refreshed entry, not its old copy");
  assert.equal(await delivered(b, socket, url), fresh);
  assert.equal(origin.requests.get("/r"), 2, "B took it from the shared cache, not the origin");
});
