/**
 * The load generator: C sessions speaking the headwire protocol, in a closed loop. Each session
 * holds one TCP connection for all its queries (as the protocol intends) and one UDP socket, and
 * runs one lookup at a time: QUERY line → TICKET line → REQUEST datagram → every CHUNK of the
 * header. The latency of a lookup is from writing the QUERY line to holding the whole header.
 *
 * It is a lean loop on purpose, so that the load generator costs as little CPU as it can:
 * - datagrams go through the real codecs (src/protocol/datagram.ts: encodeRequest, and
 *   decodeDatagram with its CRC check); the TICKET line is read with indexOf, not the full
 *   parseServerMessage, and the header's SHA-256 is not checked (the CRC is);
 * - each session reuses one UDP socket for all its queries, where the protocol's client binds a
 *   fresh port per query: a bind per lookup is client cost that would crowd out the server's on a
 *   2-core machine, and the server does exactly the same work either way (it answers the source
 *   port of each request). The floor is driven by this same code, so it gets the same treatment.
 * - a REQUEST without its chunks after retransmitMs is sent again (UDP may drop on overflow);
 *   those are counted and reported; after MAX_REQUESTS_PER_LOOKUP the lookup is given up (an
 *   error, STALLED) and the session goes on;
 * - a CHUNK carrying a token the session was never given is a wrong delivery, counted.
 *
 * Commands (IPC, see bench/child.ts): `run` (a measured load), `idle-open` / `idle-close` (sessions
 * that only connect and wait), `stop`.
 */
import { createSocket, type Socket as UdpSocket } from "node:dgram";
import { connect, type Socket } from "node:net";
import { createHistogram, performance, type RecordableHistogram } from "node:perf_hooks";
import { decodeDatagram, encodeRequest, MAX_RANGES_PER_REQUEST } from "../src/protocol/datagram.js";
import { serveParent, type ChildRequest } from "./child.js";

export interface RunRequest extends ChildRequest {
  cmd: "run";
  host: string;
  controlPort: number;
  sessions: number;
  /** URLs queried in turn (cached ones, for the throughput runs). */
  urls: string[];
  /** Soak: this share of the queries go to a random URL from churnUrls instead. */
  churnUrls?: string[];
  churnRatio?: number;
  warmupMs: number;
  durationMs: number;
  /** Emit a `sample` event this often during the measured window (soak). */
  sampleEveryMs?: number;
  retransmitMs?: number;
}

export interface LatencySummary {
  count: number;
  p50Ms: number;
  p90Ms: number;
  p99Ms: number;
  maxMs: number;
  meanMs: number;
}

export interface RunResult {
  lookups: number;
  /**
   * CHUNKs that carried a token this session was never given: a header handed to the wrong
   * client (the seed's design can; headwire must not). Late copies of this session's own earlier
   * chunks (a re-sent REQUEST answered twice) are not counted.
   */
  wrongDeliveries: number;
  /** Sessions waiting over STALL_MS for their current lookup when the window ended. */
  stalledSessions: number;
  errors: number;
  errorKinds: Record<string, number>;
  retransmits: number;
  seconds: number;
  lookupsPerSecond: number;
  latency: LatencySummary;
  /** The load generator's own CPU use, as a share of one core. */
  generatorCores: number;
  connectMs: number;
}

const MAX_CHUNKS = MAX_RANGES_PER_REQUEST; // one window is enough for the benchmark's headers
/** A lookup still unanswered this long at the window's end is a stalled session. */
const STALL_MS = 1000;
/**
 * REQUESTs sent for one lookup before it is given up (counted in errors as STALLED) and the
 * session goes on to its next query, as a real client fails a query rather than wait forever: 5
 * at retransmitMs 200 is 1 s. Without it, a server that answers a REQUEST with another client's
 * header (the seed's design) leaves every session waiting for good once each has been robbed.
 */
const MAX_REQUESTS_PER_LOOKUP = 5;
/** Tokens a session remembers having been given, so that a late chunk of its own is not "wrong". */
const RECENT_TOKENS = 8;

function summarize(histogram: RecordableHistogram): LatencySummary {
  const count = histogram.count;
  const ms = (us: number) => (count === 0 ? 0 : us / 1000);
  return {
    count,
    p50Ms: ms(histogram.percentile(50)),
    p90Ms: ms(histogram.percentile(90)),
    p99Ms: ms(histogram.percentile(99)),
    maxMs: ms(histogram.max),
    meanMs: count === 0 ? 0 : histogram.mean / 1000,
  };
}

class LoadRun {
  readonly histogram = createHistogram();
  readonly interval = createHistogram();
  lookups = 0;
  intervalLookups = 0;
  errors = 0;
  intervalErrors = 0;
  retransmits = 0;
  wrongDeliveries = 0;
  readonly errorKinds: Record<string, number> = {};
  stopping = false;
  private readonly lines: Buffer[];
  private readonly churnLines: Buffer[];

  constructor(readonly request: RunRequest) {
    this.lines = request.urls.map((url) => Buffer.from(`QUERY ${url}\n`));
    this.churnLines = (request.churnUrls ?? []).map((url) => Buffer.from(`QUERY ${url}\n`));
  }

  queryLine(session: number, sequence: number): Buffer {
    const churn = this.request.churnRatio ?? 0;
    if (churn > 0 && this.churnLines.length > 0 && Math.random() < churn) {
      return this.churnLines[Math.floor(Math.random() * this.churnLines.length)]!;
    }
    return this.lines[(session + sequence) % this.lines.length]!;
  }

  completed(startedAt: number): void {
    const us = Math.max(1, Math.round((performance.now() - startedAt) * 1000));
    this.histogram.record(us);
    this.interval.record(us);
    this.lookups++;
    this.intervalLookups++;
  }

  failed(kind: string): void {
    this.errors++;
    this.intervalErrors++;
    this.errorKinds[kind] = (this.errorKinds[kind] ?? 0) + 1;
  }
}

type SessionState = "greeting" | "idle" | "ticket" | "chunks" | "closed";

class LoadSession {
  state: SessionState = "greeting";
  private pending = "";
  private sequence = 0;
  private startedAt = 0;
  sentAt = 0;
  private token: Buffer = Buffer.alloc(0);
  private readonly recentTokens: Buffer[] = [];
  private chunks = 0;
  private received: Uint8Array = new Uint8Array(MAX_CHUNKS);
  private receivedCount = 0;
  private requestDatagram: Buffer = Buffer.alloc(0);
  private udpPort = 0;
  /** REQUESTs sent for the lookup under way. */
  requestsSent = 0;
  private udpHost = "";
  private readonly udp: UdpSocket;
  readonly ready: Promise<void>;

  constructor(
    private readonly run: LoadRun,
    private readonly index: number,
    private readonly socket: Socket,
  ) {
    this.udp = createSocket("udp4");
    this.udp.on("message", (message) => this.onDatagram(message));
    this.udp.on("error", () => {});
    this.udp.bind(0, "127.0.0.1");
    socket.setNoDelay(true);
    this.ready = new Promise((resolve, reject) => {
      socket.once("error", reject);
      socket.on("data", (chunk: Buffer) => {
        this.pending += chunk.toString("latin1");
        for (let newline = this.pending.indexOf("\n"); newline !== -1; newline = this.pending.indexOf("\n")) {
          const line = this.pending.slice(0, newline);
          this.pending = this.pending.slice(newline + 1);
          if (this.state === "greeting") {
            this.state = "idle";
            resolve();
          } else this.onLine(line);
        }
      });
    });
    socket.on("error", () => {});
    socket.on("close", () => {
      if (this.state !== "closed" && !this.run.stopping) this.run.failed("CONNECTION_LOST");
      this.state = "closed";
    });
  }

  next(): void {
    if (this.run.stopping || this.state === "closed") return;
    this.state = "ticket";
    this.startedAt = performance.now();
    this.sentAt = this.startedAt;
    this.socket.write(this.run.queryLine(this.index, this.sequence++));
  }

  private onLine(line: string): void {
    if (this.state !== "ticket") return this.run.failed("UNEXPECTED_LINE");
    if (!line.startsWith("TICKET ")) {
      this.run.failed(line.startsWith("ERROR ") ? (line.split(" ")[1] ?? "ERROR") : "BAD_REPLY");
      this.state = "idle";
      return this.next();
    }
    const tokenAt = line.indexOf("token=") + 6;
    const udpAt = line.indexOf("udp=") + 4;
    const udpEnd = line.indexOf(" ", udpAt);
    const colon = line.lastIndexOf(":", udpEnd);
    const chunksAt = line.indexOf("chunks=") + 7;
    if (this.token.length > 0) {
      this.recentTokens.push(this.token);
      if (this.recentTokens.length > RECENT_TOKENS) this.recentTokens.shift();
    }
    this.token = Buffer.from(line.slice(tokenAt, tokenAt + 32), "hex");
    this.udpHost = line.slice(udpAt, colon);
    this.udpPort = Number(line.slice(colon + 1, udpEnd));
    this.chunks = parseInt(line.slice(chunksAt, line.indexOf(" ", chunksAt)), 10);
    if (!(this.chunks >= 1 && this.chunks <= MAX_CHUNKS) || this.token.length !== 16) {
      this.run.failed("BAD_TICKET");
      this.state = "idle";
      return this.next();
    }
    this.received.fill(0, 0, this.chunks);
    this.receivedCount = 0;
    this.requestDatagram = encodeRequest(this.token, [{ first: 0, count: this.chunks }]);
    this.state = "chunks";
    this.requestsSent = 0;
    this.sendRequest();
  }

  /** Waiting over STALL_MS for the lookup under way. */
  stalled(now: number): boolean {
    return (this.state === "ticket" || this.state === "chunks") && now - this.startedAt > STALL_MS;
  }

  /** The lookup under way is given up: its REQUESTs went unanswered (MAX_REQUESTS_PER_LOOKUP). */
  abandon(): void {
    this.run.failed("STALLED");
    this.state = "idle";
    this.next();
  }

  sendRequest(): void {
    this.requestsSent++;
    this.sentAt = performance.now();
    this.udp.send(this.requestDatagram, this.udpPort, this.udpHost);
  }

  private onDatagram(message: Buffer): void {
    const datagram = decodeDatagram(message);
    if (!datagram || datagram.type !== "chunk") return;
    if (!datagram.token.equals(this.token)) {
      if (!this.recentTokens.some((token) => token.equals(datagram.token))) this.run.wrongDeliveries++;
      return;
    }
    if (this.state !== "chunks") return;
    if (datagram.index >= this.chunks || this.received[datagram.index]) return;
    this.received[datagram.index] = 1;
    if (++this.receivedCount < this.chunks) return;
    this.run.completed(this.startedAt);
    this.state = "idle";
    this.next();
  }

  close(): void {
    this.state = "closed";
    this.socket.destroy();
    this.udp.close();
  }
}

async function openSessions(run: LoadRun, host: string, port: number, count: number): Promise<LoadSession[]> {
  const sessions: LoadSession[] = [];
  const batch = 200; // stay well inside the listen backlog
  for (let first = 0; first < count; first += batch) {
    const opened: LoadSession[] = [];
    for (let i = first; i < Math.min(count, first + batch); i++) {
      opened.push(new LoadSession(run, i, connect({ host, port })));
    }
    await Promise.all(opened.map((session) => session.ready));
    sessions.push(...opened);
  }
  return sessions;
}

function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

async function runLoad(request: RunRequest): Promise<RunResult> {
  const run = new LoadRun(request);
  const connectStarted = performance.now();
  const sessions = await openSessions(run, request.host, request.controlPort, request.sessions);
  const connectMs = performance.now() - connectStarted;
  const retransmitMs = request.retransmitMs ?? 200;
  const sweeper = setInterval(() => {
    const now = performance.now();
    for (const session of sessions) {
      if (session.state === "chunks" && now - session.sentAt > retransmitMs) {
        if (session.requestsSent >= MAX_REQUESTS_PER_LOOKUP) session.abandon();
        else {
          run.retransmits++;
          session.sendRequest();
        }
      } else if (session.state === "ticket" && now - session.sentAt > 30_000) {
        run.failed("REPLY_TIMEOUT");
        session.close();
      }
    }
  }, 20);
  for (const session of sessions) session.next();
  await delay(request.warmupMs);

  run.histogram.reset();
  run.interval.reset();
  run.lookups = 0;
  run.intervalLookups = 0;
  run.errors = 0;
  run.intervalErrors = 0;
  run.retransmits = 0;
  run.wrongDeliveries = 0;
  for (const key of Object.keys(run.errorKinds)) delete run.errorKinds[key];
  process.send?.({ event: "window-start" });
  const cpuStart = process.cpuUsage();
  const started = performance.now();
  let sampler: NodeJS.Timeout | undefined;
  if (request.sampleEveryMs) {
    let last = started;
    sampler = setInterval(() => {
      const now = performance.now();
      process.send?.({
        event: "sample",
        atSeconds: (now - started) / 1000,
        lookupsPerSecond: run.intervalLookups / ((now - last) / 1000),
        errors: run.intervalErrors,
        latency: summarize(run.interval),
      });
      last = now;
      run.interval.reset();
      run.intervalLookups = 0;
      run.intervalErrors = 0;
    }, request.sampleEveryMs);
  }
  await delay(request.durationMs);
  const ended = performance.now();
  const seconds = (ended - started) / 1000;
  const cpu = process.cpuUsage(cpuStart);
  const stalledSessions = sessions.filter((session) => session.stalled(ended)).length;
  process.send?.({ event: "window-end" });
  const result: RunResult = {
    lookups: run.lookups,
    wrongDeliveries: run.wrongDeliveries,
    stalledSessions,
    errors: run.errors,
    errorKinds: { ...run.errorKinds },
    retransmits: run.retransmits,
    seconds,
    lookupsPerSecond: run.lookups / seconds,
    latency: summarize(run.histogram),
    generatorCores: (cpu.user + cpu.system) / 1e6 / seconds,
    connectMs,
  };
  run.stopping = true;
  if (sampler) clearInterval(sampler);
  clearInterval(sweeper);
  // Let lookups in flight finish (bounded), so that the server is quiet before the next run.
  const deadline = performance.now() + 2000;
  while (sessions.some((s) => s.state === "ticket" || s.state === "chunks") && performance.now() < deadline) {
    await delay(10);
  }
  for (const session of sessions) session.close();
  return result;
}

// ---- idle sessions ----

let idleSockets: Socket[] = [];

async function openIdle(host: string, port: number, count: number): Promise<Record<string, unknown>> {
  const started = performance.now();
  let failed = 0;
  const batch = 250;
  for (let first = 0; first < count; first += batch) {
    const opening: Promise<void>[] = [];
    for (let i = first; i < Math.min(count, first + batch); i++) {
      const socket = connect({ host, port });
      idleSockets.push(socket);
      opening.push(
        new Promise<void>((resolve) => {
          const timer = setTimeout(() => {
            failed++;
            resolve();
          }, 10_000);
          socket.once("data", (chunk: Buffer) => {
            clearTimeout(timer);
            if (!chunk.toString("latin1").startsWith("HEADWIRE/2 READY")) failed++;
            resolve();
          });
          socket.once("error", () => {
            clearTimeout(timer);
            failed++;
            resolve();
          });
        }),
      );
    }
    await Promise.all(opening);
  }
  return { opened: count - failed, failed, ms: performance.now() - started };
}

// Run as a child process only (bench/run.ts forks it).
if (process.send) {
  serveParent(async (request) => {
    switch (request.cmd) {
      case "run":
        return { result: await runLoad(request as RunRequest) };
      case "idle-open":
        return openIdle(String(request.host), Number(request.controlPort), Number(request.sessions));
      case "idle-close":
        for (const socket of idleSockets) socket.destroy();
        idleSockets = [];
        return {};
      case "stop":
        setImmediate(() => process.exit(0));
        return {};
      default:
        throw new Error(`unknown command ${request.cmd}`);
    }
  });
  process.send({ ready: true });
}
