/**
 * The attacks of the bench's "attacks" phase (bench/phases/attacks.ts), in their own process so
 * that they cost the orchestrator's probe nothing but the machine's CPU: the attackers come from
 * 127.0.0.2 … 127.0.0.11, the probe from 127.0.0.1, as a victim on another address would.
 *
 * Every attack is bounded in time (its window, then every socket is destroyed) and in count (a
 * ceiling on connections and datagrams, far above what a window reaches on loopback).
 * Loopback only. Each attack answers with what it achieved, for the report.
 */
import { randomBytes } from "node:crypto";
import { createSocket, type Socket as UdpSocket } from "node:dgram";
import { once } from "node:events";
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import { connect, type Socket } from "node:net";
import { encodeRequest, TOKEN_BYTES } from "../src/protocol/datagram.js";
import { serveParent, type ChildRequest } from "./child.js";
import type { AttackAchieved, AttackKind } from "./results.js";

/** The attackers' source addresses: 127.0.0.2 … 127.0.0.11 (all of 127/8 is loopback on Linux). */
export const ATTACKER_ADDRESSES = Array.from({ length: 10 }, (_, i) => `127.0.0.${i + 2}`);
/** The origin that redirects forever, on an address of its own (its own per-origin budget). */
export const LOOP_ORIGIN_HOST = "127.0.0.12";
const SERVER_HOST = "127.0.0.1";

export interface AttackRequest extends ChildRequest {
  cmd: "attack";
  kind: AttackKind;
  controlPort: number;
  dataPort: number;
  seconds: number;
}

/** Safety ceilings: a window on loopback reaches none of them. */
const MAX_CONNECTIONS = 200_000;
const MAX_DATAGRAMS = 50_000_000;
/** Newline writes: one 64 KiB buffer of "\n" at a time, whenever the socket takes it. */
const NEWLINES = Buffer.alloc(64 * 1024, 0x0a);
const PINGS = Buffer.from("PING\n".repeat((64 * 1024) / 5));
/** Attempts per address in the session hog: more than the server's default maxSessionsPerAddress (64). */
const HOG_ATTEMPTS_PER_ADDRESS = 100;
const HOG_PING_MS = 1000;
/** Pipelined queries per session in the query flood: the server's default maxQueuedQueriesPerSession. */
const QUERY_PIPELINE = 32;

/** The redirect-forever origin: every request is answered 302 to a new path on the same host. */
class LoopOrigin {
  requests = 0;
  private next = 0;
  private readonly server = createServer((req: IncomingMessage, res: ServerResponse) => this.answer(req, res));

  async start(): Promise<number> {
    this.server.listen(0, LOOP_ORIGIN_HOST);
    await once(this.server, "listening");
    return this.port;
  }

  get port(): number {
    const address = this.server.address();
    return typeof address === "object" && address ? address.port : 0;
  }

  private answer(req: IncomingMessage, res: ServerResponse): void {
    this.requests++;
    req.resume();
    res.writeHead(302, { Location: `http://${LOOP_ORIGIN_HOST}:${this.port}/hop/${this.next++}`, "Content-Length": 0 });
    res.end();
  }

  close(): void {
    this.server.closeAllConnections();
    this.server.close();
  }
}

/** Sockets and timers of one attack, all closed when its window ends. */
class Window {
  readonly sockets = new Set<Socket>();
  readonly udp = new Set<UdpSocket>();
  readonly timers = new Set<NodeJS.Timeout>();
  connections = 0;
  readonly deadline: number;

  constructor(seconds: number) {
    this.deadline = Date.now() + seconds * 1000;
  }

  get open(): boolean {
    return Date.now() < this.deadline;
  }

  /** A control connection from `localAddress`, tracked; undefined past the window or the ceiling. */
  connect(port: number, localAddress: string): Socket | undefined {
    if (!this.open || this.connections >= MAX_CONNECTIONS) return undefined;
    this.connections++;
    const socket = connect({ host: SERVER_HOST, port, localAddress });
    this.sockets.add(socket);
    socket.on("error", () => socket.destroy());
    socket.on("close", () => this.sockets.delete(socket));
    return socket;
  }

  every(ms: number, fn: () => void): void {
    this.timers.add(setInterval(fn, ms));
  }

  /** Resolves at the deadline, then ends everything the attack opened (after `atDeadline` has looked). */
  async end(atDeadline?: () => void): Promise<void> {
    await new Promise((resolve) => setTimeout(resolve, Math.max(0, this.deadline - Date.now())));
    atDeadline?.();
    for (const timer of this.timers) clearInterval(timer);
    // Every close handler runs (and counts) before the attack reports; none reconnects past the window.
    const closing = [...this.sockets].map((socket) => once(socket, "close"));
    for (const socket of this.sockets) socket.destroy();
    for (const socket of this.udp) socket.close();
    await Promise.all(closing);
  }
}

/** Counts the lines a session receives that start with each of `prefixes`. */
function countLines(socket: Socket, counts: AttackAchieved, prefixes: Record<string, string>): void {
  let partial = "";
  socket.setEncoding("latin1");
  socket.on("data", (text: string) => {
    const lines = (partial + text).split("\n");
    partial = lines.pop() ?? "";
    if (partial.length > 4096) partial = "";
    for (const line of lines) {
      for (const [prefix, name] of Object.entries(prefixes)) {
        if (line.startsWith(prefix)) counts[name] = (counts[name] ?? 0) + 1;
      }
    }
  });
}

/** Writes `buffer` again and again, as fast as the socket takes it, counting the bytes taken. */
function writeAsFastAsTaken(socket: Socket, buffer: Buffer, window: Window): void {
  const pump = () => {
    while (window.open && !socket.destroyed && socket.write(buffer));
  };
  socket.on("drain", pump);
  socket.once("connect", pump);
}

/** (b) 10 sessions writing "\n" as fast as the socket takes it, reconnecting whenever closed. */
async function newlineFlood(request: AttackRequest, window: Window): Promise<AttackAchieved> {
  const achieved: AttackAchieved = { sessions: 0, bytesWritten: 0, tooManyErrors: 0, badRequestReplies: 0 };
  const session = (address: string) => {
    const socket = window.connect(request.controlPort, address);
    if (!socket) return;
    achieved.sessions!++;
    countLines(socket, achieved, {
      "ERROR TOO_MANY_ERRORS": "tooManyErrors",
      "ERROR BAD_REQUEST": "badRequestReplies",
    });
    writeAsFastAsTaken(socket, NEWLINES, window);
    socket.on("close", () => {
      achieved.bytesWritten! += socket.bytesWritten;
      if (window.open) session(address);
    });
  };
  for (const address of ATTACKER_ADDRESSES) session(address);
  await window.end();
  achieved.newlinesPerSecond = achieved.bytesWritten! / request.seconds;
  achieved.sessionsPerSecond = achieved.sessions! / request.seconds;
  return achieved;
}

/** (c) 10 sessions sending PINGs as fast as the socket takes them, never reading a PONG. */
async function pingFlood(request: AttackRequest, window: Window): Promise<AttackAchieved> {
  const achieved: AttackAchieved = { sessions: 0, pingsWritten: 0, closedByServer: 0 };
  const session = (address: string) => {
    const socket = window.connect(request.controlPort, address);
    if (!socket) return;
    achieved.sessions!++;
    // No "data" listener and paused: the PONGs stay in the kernel, as with a client that never reads.
    socket.pause();
    writeAsFastAsTaken(socket, PINGS, window);
    socket.on("close", () => {
      achieved.pingsWritten! += Math.floor(socket.bytesWritten / 5);
      if (window.open) {
        achieved.closedByServer!++;
        session(address);
      }
    });
  };
  for (const address of ATTACKER_ADDRESSES) session(address);
  await window.end();
  return achieved;
}

/** (d) From every attacker address, as many sessions as the server lets it open, held with PINGs. */
async function sessionHog(request: AttackRequest, window: Window): Promise<AttackAchieved> {
  const achieved: AttackAchieved = { attempts: 0, greeted: 0, sessionLimit: 0, pongs: 0, closedByServer: 0 };
  const held = new Set<Socket>();
  for (const address of ATTACKER_ADDRESSES) {
    for (let i = 0; i < HOG_ATTEMPTS_PER_ADDRESS; i++) {
      const socket = window.connect(request.controlPort, address);
      if (!socket) break;
      achieved.attempts!++;
      countLines(socket, achieved, { "HEADWIRE/": "greeted", "ERROR SESSION_LIMIT": "sessionLimit", PONG: "pongs" });
      socket.on("data", (text: string) => {
        if (text.startsWith("HEADWIRE/")) held.add(socket);
      });
      socket.on("close", () => {
        if (held.delete(socket) && window.open) achieved.closedByServer!++;
      });
    }
  }
  window.every(HOG_PING_MS, () => {
    for (const socket of held) socket.write("PING\n");
  });
  await window.end(() => (achieved.heldAtEnd = held.size));
  return achieved;
}

/** One garbage datagram: random bytes, a truncated REQUEST, or a whole REQUEST for a token nobody holds. */
function garbage(i: number): Buffer {
  const request = encodeRequest(randomBytes(TOKEN_BYTES), [{ first: 0, count: 1 + (i % 64) }]);
  switch (i % 3) {
    case 0:
      return randomBytes(1 + (i % 1400));
    case 1:
      return request.subarray(0, i % request.length);
    default:
      return request;
  }
}

/** (e) Garbage datagrams at the data port from every attacker address, as fast as they go out. */
async function udpGarbage(request: AttackRequest, window: Window): Promise<AttackAchieved> {
  const achieved: AttackAchieved = { datagramsSent: 0, sendErrors: 0 };
  // A pool of datagrams made in advance: the attacker's CPU goes into sending, not into randomBytes.
  const pool = Array.from({ length: 4096 }, (_, i) => garbage(i));
  let next = 0;
  await Promise.all(
    ATTACKER_ADDRESSES.map(async (address) => {
      const socket = createSocket("udp4");
      window.udp.add(socket);
      socket.on("error", () => achieved.sendErrors!++);
      socket.bind(0, address);
      await once(socket, "listening");
      // Up to 32 sends in flight per socket: as fast as the kernel takes them, never an unbounded queue.
      let inFlight = 0;
      const send = () => {
        while (window.open && inFlight < 32 && achieved.datagramsSent! < MAX_DATAGRAMS) {
          inFlight++;
          achieved.datagramsSent!++;
          socket.send(pool[next++ % pool.length]!, request.dataPort, SERVER_HOST, (error) => {
            inFlight--;
            if (error) achieved.sendErrors!++;
            send();
          });
        }
      };
      send();
    }),
  );
  await window.end();
  achieved.datagramsPerSecond = achieved.datagramsSent! / request.seconds;
  return achieved;
}

/** (f) Uncached queries with redirects=20 towards the redirect-forever origin, pipelined. */
async function queryFlood(request: AttackRequest, window: Window, origin: LoopOrigin): Promise<AttackAchieved> {
  const achieved: AttackAchieved = { queries: 0, tickets: 0, originBusy: 0, rateLimited: 0, otherErrors: 0 };
  const before = origin.requests;
  const perSecond: number[] = [];
  let last = origin.requests;
  window.every(1000, () => {
    perSecond.push(origin.requests - last);
    last = origin.requests;
  });
  let url = 0;
  const session = (address: string) => {
    const socket = window.connect(request.controlPort, address);
    if (!socket) return;
    const ask = () => {
      if (!window.open || socket.destroyed) return;
      achieved.queries!++;
      socket.write(`QUERY http://${LOOP_ORIGIN_HOST}:${origin.port}/start/${url++} redirects=20\n`);
    };
    let partial = "";
    socket.setEncoding("latin1");
    socket.on("data", (text: string) => {
      const lines = (partial + text).split("\n");
      partial = lines.pop() ?? "";
      for (const line of lines) {
        if (line.startsWith("HEADWIRE/")) {
          for (let i = 0; i < QUERY_PIPELINE; i++) ask();
          continue;
        }
        if (line.startsWith("TICKET ")) achieved.tickets!++;
        else if (line.startsWith("ERROR ORIGIN_BUSY")) achieved.originBusy!++;
        else if (line.startsWith("ERROR RATE_LIMITED")) achieved.rateLimited!++;
        else if (line.startsWith("ERROR ")) achieved.otherErrors!++;
        else continue;
        ask();
      }
    });
    socket.on("close", () => {
      if (window.open) session(address);
    });
  };
  for (const address of ATTACKER_ADDRESSES) session(address);
  await window.end();
  const requests = origin.requests - before;
  achieved.originRequests = requests;
  achieved.originRequestsPerSecond = requests / request.seconds;
  achieved.originPeakPerSecond = Math.max(0, ...perSecond);
  return achieved;
}

async function attack(request: AttackRequest, origin: LoopOrigin): Promise<AttackAchieved> {
  const window = new Window(request.seconds);
  switch (request.kind) {
    case "none":
      await window.end();
      return {};
    case "newline-flood":
      return newlineFlood(request, window);
    case "ping-flood":
      return pingFlood(request, window);
    case "session-hog":
      return sessionHog(request, window);
    case "udp-garbage":
      return udpGarbage(request, window);
    case "query-flood":
      return queryFlood(request, window, origin);
  }
}

async function main(): Promise<void> {
  const origin = new LoopOrigin();
  const originPort = await origin.start();
  serveParent(async (request) => {
    if (request.cmd === "attack") {
      const achieved = await attack(request as AttackRequest, origin);
      return { achieved };
    }
    if (request.cmd === "stop") {
      origin.close();
      setImmediate(() => process.exit(0));
      return {};
    }
    throw new Error(`unknown command ${request.cmd}`);
  });
  process.send?.({ ready: true, originPort });
}

// Run as a child process only (imported by the phase for its constants).
if (process.send) void main();
