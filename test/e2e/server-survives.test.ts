/**
 * Nothing a peer sends can end the server process (issue 11, item 1). `headwire server` runs as a
 * child process, as in production; garbage is thrown at both channels, then the process must
 * still be there (kill -0) and serve a real client's query byte for byte.
 *
 * The datagram that once killed it (a valid REQUEST from the session's own IP with UDP source
 * port 0) cannot come from a normal socket: one test sends it through a raw socket (python3, as
 * root), and is skipped where neither is available; test/server/data-server.test.ts covers the
 * same case without privileges by handing the datagram to the handler.
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { createSocket, type Socket as UdpSocket } from "node:dgram";
import { once } from "node:events";
import { connect, type Socket } from "node:net";
import { test } from "node:test";
import fc from "fast-check";
import { HeadwireClient } from "../../src/client/headwire-client.js";
import { CraftedOrigin } from "../../src/demo/crafted-origin.js";
import { parseServerMessage, type Ticket } from "../../src/protocol/control.js";
import { decodeDatagram, encodeRequest, MAX_RANGE_CHUNKS, TOKEN_BYTES } from "../../src/protocol/datagram.js";
import { spawnServer, type ServerProcess } from "../cli/run-cli.js";
import { RawSession, tempDir } from "../helpers.js";

type T = Parameters<typeof tempDir>[0] & { after: (fn: () => unknown) => void; skip: (message?: string) => void };

/** Each property stops starting runs after this (a loaded machine makes fewer, the same first ones). */
const FUZZ_BUDGET_MS = 6_000;
/** Longest wait for something the server does on its own before the test fails. */
const WAIT_GUARD_MS = 20_000;
const SEED = 20260611;

const SMALL = "HTTP/1.1 200 OK\r\nCache-Control: max-age=600\r\nX-A: 1\r\n\r\n";
const LARGE = `HTTP/1.1 200 OK\r\nCache-Control: max-age=600\r\nX-Pad: ${"p".repeat(6000)}\r\n\r\n`;

interface Running {
  server: ServerProcess;
  origin: CraftedOrigin;
  session: RawSession;
  tickets: Ticket[];
  /** Set when the server process has exited, with how. */
  exited: () => string | undefined;
}

async function running(t: T): Promise<Running> {
  const dir = await tempDir(t);
  const origin = await CraftedOrigin.start({ "/small": { header: SMALL }, "/large": { header: LARGE } });
  t.after(() => origin.close());
  const server = await spawnServer(dir, ["--ticket-ttl-ms", "600000", "--shutdown-grace-ms", "0"]);
  let exit: string | undefined;
  server.child.on("exit", (code, signal) => (exit = `exited with ${code ?? signal}: ${server.stderr()}`));
  t.after(async () => {
    if (exit !== undefined) return;
    const exited = once(server.child, "exit");
    server.child.kill("SIGKILL");
    await exited;
  });
  const session = await RawSession.open(server.port);
  t.after(() => session.close());
  await session.next();
  const alive: Running = { server, origin, session, tickets: [], exited: () => exit };
  for (const path of ["/small", "/large"]) alive.tickets.push(await ticketFor(alive, path));
  return alive;
}

/** A ticket asked for on the running server's clean session (the garbage goes elsewhere). */
async function ticketFor(alive: Running, path: string): Promise<Ticket> {
  alive.session.send(`QUERY 127.0.0.1:${alive.origin.port}${path}\n`);
  const message = parseServerMessage((await alive.session.next()) ?? "");
  assert.equal(message.kind, "ticket");
  return (message as { ticket: Ticket }).ticket;
}

async function udpSocket(t: T): Promise<UdpSocket> {
  const socket = createSocket("udp4");
  socket.bind(0, "127.0.0.1");
  await once(socket, "listening");
  t.after(() => socket.close());
  return socket;
}

function send(socket: UdpSocket, datagram: Buffer, port: number): Promise<void> {
  return new Promise((resolve) => socket.send(datagram, port, "127.0.0.1", () => resolve()));
}

/** Resolves with the first datagram the socket receives; fails if the server exits first or never answers. */
async function reply(socket: UdpSocket, alive: Running): Promise<Buffer> {
  const received = once(socket, "message").then(([message]) => message as Buffer);
  const exited = once(alive.server.child, "exit").then(() => {
    throw new Error(`the server died: ${alive.exited()}`);
  });
  let guard: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    guard = setTimeout(() => reject(new Error("no reply from the data server")), WAIT_GUARD_MS);
  });
  try {
    return await Promise.race([received, exited, timeout]);
  } finally {
    clearTimeout(guard);
  }
}

/** The process is there (kill -0) and a real client gets a header byte for byte. */
async function stillServes(alive: Running): Promise<void> {
  assert.equal(alive.exited(), undefined);
  assert.equal(alive.server.child.exitCode, null);
  process.kill(alive.server.child.pid!, 0);
  const client = await HeadwireClient.connect({ serverPort: alive.server.port });
  try {
    const result = await client.query({ url: `127.0.0.1:${alive.origin.port}/large`, write: false });
    assert.equal(result.error, undefined, JSON.stringify(result.error));
    assert.equal(result.header?.toString("latin1"), LARGE);
  } finally {
    client.destroy();
  }
  assert.equal(alive.exited(), undefined);
}

/** A UDP datagram from source port 0, through a raw socket; false when this machine cannot send one. */
function sendFromPortZero(port: number, payload: Buffer): boolean {
  const script = [
    "import socket, struct, sys",
    "port, payload = int(sys.argv[1]), bytes.fromhex(sys.argv[2])",
    "s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_UDP)",
    // Source port 0; checksum 0 means none (RFC 768), so the kernel delivers it as is.
    "s.sendto(struct.pack('!HHHH', 0, port, 8 + len(payload), 0) + payload, ('127.0.0.1', 0))",
  ].join("\n");
  const run = spawnSync("python3", ["-c", script, String(port), payload.toString("hex")], { timeout: 10_000 });
  return run.status === 0;
}

test("a valid REQUEST from the owner's address with UDP source port 0 does not end the process", async (t) => {
  const alive = await running(t);
  const [ticket] = alive.tickets as [Ticket];
  const request = encodeRequest(ticket.token, [{ first: 0, count: 1 }]);
  if (!sendFromPortZero(ticket.udpPort, request)) return t.skip("needs python3 and a raw socket (root)");
  // Datagrams on loopback are handled in arrival order: the answer to this one means the
  // port-0 one was handled before it (and the process lived through it).
  const socket = await udpSocket(t);
  const answer = reply(socket, alive);
  await send(socket, request, ticket.udpPort);
  assert.equal(decodeDatagram(await answer)?.type, "chunk");
  await stillServes(alive);
});

test("garbage on both channels (random, truncated, oversized, live-token datagrams; random TCP bytes): the process lives and serves", async (t) => {
  const alive = await running(t);
  const udp = await udpSocket(t);
  const dataPort = alive.tickets[0]!.udpPort;
  const tokens = alive.tickets.map((ticket) => ticket.token);
  const tcp: Socket[] = [];
  const tcpSession = async (n: number): Promise<Socket> => {
    const open = tcp[n];
    if (open && !open.destroyed && open.writable) return open;
    const socket = connect({ port: alive.server.port, host: "127.0.0.1" });
    socket.on("error", () => {});
    socket.resume(); // replies are read and dropped, so the server's writes never back up
    await once(socket, "connect");
    t.after(() => socket.destroy());
    return (tcp[n] = socket);
  };
  const range = fc.record({ first: fc.nat(200), count: fc.integer({ min: 1, max: MAX_RANGE_CHUNKS }) });
  const liveRequest = fc
    .tuple(fc.constantFrom(...tokens), fc.array(range, { minLength: 1, maxLength: 8 }))
    .map(([token, ranges]) => encodeRequest(token, ranges));
  const datagram = fc.oneof(
    fc.uint8Array({ maxLength: 1400 }).map((bytes) => Buffer.from(bytes)),
    liveRequest,
    fc.tuple(liveRequest, fc.nat(40)).map(([request, keep]) => request.subarray(0, keep)),
    fc.tuple(liveRequest, fc.integer({ min: 1300, max: 9000 })).map(([request, size]) => {
      const big = Buffer.alloc(size, 0x5a);
      request.copy(big);
      return big;
    }),
    fc.tuple(liveRequest, fc.nat(31), fc.integer({ min: 1, max: 255 })).map(([request, at, flip]) => {
      const flipped = Buffer.from(request);
      flipped[at % flipped.length]! ^= flip;
      return flipped;
    }),
    fc
      .uint8Array({ minLength: TOKEN_BYTES, maxLength: TOKEN_BYTES })
      .map((token) => encodeRequest(Buffer.from(token), [{ first: 0, count: 1 }])),
  );
  const action = fc.oneof(
    datagram.map((bytes) => ({ kind: "udp" as const, bytes })),
    fc
      .tuple(fc.nat(3), fc.uint8Array({ minLength: 1, maxLength: 2000 }))
      .map(([session, bytes]) => ({ kind: "tcp" as const, session, bytes: Buffer.from(bytes) })),
  );
  await fc.assert(
    fc.asyncProperty(fc.array(action, { minLength: 1, maxLength: 30 }), async (actions) => {
      for (const step of actions) {
        if (step.kind === "udp") await send(udp, step.bytes, dataPort);
        else (await tcpSession(step.session)).write(step.bytes);
      }
      assert.equal(alive.exited(), undefined);
    }),
    { seed: SEED, numRuns: 300, interruptAfterTimeLimit: FUZZ_BUDGET_MS, endOnFailure: true },
  );
  // The last datagrams are handled before this probe's (arrival order), and its answer is
  // awaited; a fresh ticket, as the garbage may have spent the others' budgets.
  const fresh = await ticketFor(alive, "/small");
  const probe = await udpSocket(t);
  const answer = reply(probe, alive);
  await send(probe, encodeRequest(fresh.token, [{ first: 0, count: 1 }]), dataPort);
  assert.equal(decodeDatagram(await answer)?.type, "chunk");
  await stillServes(alive);
  assert.doesNotMatch(alive.server.stderr(), /internal error/, "no bug of ours was met");
});
