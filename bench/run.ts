/**
 * `npm run bench`: headwire against the floor and the alternatives, on loopback only.
 *
 * Processes (on a 2-core machine): the server under test (headwire or the floor) in its own
 * process pinned to CPU 0; the load generator in its own process pinned to CPU 1; this
 * orchestrator (the local origin, the cold-path clients, sampling /proc) unpinned and mostly idle.
 *
 * Phases: throughput (C sessions, cached URLs, headwire and the floor in turn for each C), idle
 * (sessions held open, the server's RSS per session), cold (an uncached lookup against a direct
 * fetch), soak (C=100 with cache churn, sampled over time). Results: Markdown tables and target
 * checks on the terminal, and everything in bench/results/<timestamp>.json.
 */
import { execFileSync } from "node:child_process";
import { createSocket } from "node:dgram";
import { once } from "node:events";
import { mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { connect, type Socket } from "node:net";
import os from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { encodeRequest } from "../src/protocol/datagram.js";
import { CraftedOrigin, REALISTIC_HEADERS, type CraftedResponse } from "../src/demo/crafted-origin.js";
import { BenchChild } from "./child.js";
import { curlAvailable, measureColdPath, REMOTE_ORIGIN_DELAY_MS, type ColdResult } from "./cold-path.js";
import type { RunResult } from "./load-generator.js";
import { parseOptions, type BenchOptions } from "./options.js";
import { coreShare, cpuSeconds, machineBusySeconds, memory } from "./process-stats.js";
import { summarizeProfile } from "./profile-summary.js";
import { fixed, markdownTable, thousands, trend, verdict, type TargetCheck, type TrendVerdict } from "./report.js";

const here = dirname(fileURLToPath(import.meta.url));
const SERVER_SCRIPT = join(here, "server-process.js");
const LOAD_SCRIPT = join(here, "load-generator.js");
const HOST = "127.0.0.1";

type ServerKind = "headwire" | "floor";

interface Exchange {
  greeting: string;
  ticketTemplate: string;
  chunk: Buffer;
  queryBytes: number;
  ticketBytes: number;
  requestBytes: number;
  chunkBytes: number;
}

interface ThroughputRow {
  concurrency: number;
  server: ServerKind;
  result: RunResult;
  serverCores: number | undefined;
  /** CPU used by everything else on the machine during the window, in cores. */
  otherCores: number | undefined;
  serverPeakRssKiB: number | undefined;
  originFetchesDuringRun?: number;
}

interface IdleResult {
  server: ServerKind;
  sessions: number;
  opened: number;
  openMs: number;
  rssBeforeKiB: number;
  rssAfterKiB: number;
  heapBeforeBytes?: number;
  heapAfterBytes?: number;
  perSessionKiB: number;
  heapPerSessionBytes?: number;
  heapSnapshot?: string;
}

interface SoakSample {
  atSeconds: number;
  lookupsPerSecond: number;
  errors: number;
  p50Ms: number;
  p99Ms: number;
  rssKiB: number | undefined;
  heapUsedBytes: number;
  eventLoopDelayP99Ms: number;
  eventLoopDelayMaxMs: number;
  cacheEntries: number;
  originFetches: number;
}

interface SoakResult {
  seconds: number;
  sessions: number;
  churnRatio: number;
  result: RunResult;
  samples: SoakSample[];
  rssTrend: TrendVerdict;
  heapTrend: TrendVerdict;
  eventLoopDelayTrend: TrendVerdict;
  throughputTrend: TrendVerdict;
  originFetches: number;
}

const log = (message: string) => process.stderr.write(`bench: ${message}\n`);

function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** A bare line client for the orchestrator's own small exchanges (capture, warm-up). */
class LineClient {
  private buffered = "";
  private readonly waiting: ((line: string) => void)[] = [];
  private readonly lines: string[] = [];

  private constructor(readonly socket: Socket) {
    socket.on("data", (chunk: Buffer) => {
      this.buffered += chunk.toString("latin1");
      for (let nl = this.buffered.indexOf("\n"); nl !== -1; nl = this.buffered.indexOf("\n")) {
        const line = this.buffered.slice(0, nl + 1);
        this.buffered = this.buffered.slice(nl + 1);
        const waiter = this.waiting.shift();
        if (waiter) waiter(line);
        else this.lines.push(line);
      }
    });
  }

  static async open(port: number): Promise<LineClient> {
    const socket = connect({ host: HOST, port });
    await once(socket, "connect");
    return new LineClient(socket);
  }

  next(timeoutMs = 15_000): Promise<string> {
    const line = this.lines.shift();
    if (line !== undefined) return Promise.resolve(line);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error("no line from the server in time")), timeoutMs);
      this.waiting.push((l) => {
        clearTimeout(timer);
        resolve(l);
      });
    });
  }

  close(): void {
    this.socket.destroy();
  }
}

/** One real lookup against headwire, byte for byte: the floor answers with the same sizes. */
async function captureExchange(controlPort: number, url: string): Promise<Exchange> {
  const client = await LineClient.open(controlPort);
  const greeting = await client.next();
  const query = `QUERY ${url}\n`;
  client.socket.write(query);
  await client.next(); // MISS: fetched from the origin
  client.socket.write(query);
  const ticket = await client.next();
  if (!ticket.startsWith("TICKET ") || !ticket.includes("cache=HIT")) throw new Error(`capture: ${ticket.trim()}`);
  const token = Buffer.from(/token=([0-9a-f]{32})/.exec(ticket)![1]!, "hex");
  const dataPort = Number(/udp=127\.0\.0\.1:(\d+)/.exec(ticket)![1]);
  const request = encodeRequest(token, [{ first: 0, count: 1 }]);
  const udp = createSocket("udp4");
  udp.bind(0, HOST);
  await once(udp, "listening");
  const chunkPromise = once(udp, "message");
  udp.send(request, dataPort, HOST);
  const timer = setTimeout(() => udp.emit("error", new Error("capture: no CHUNK within 5 s")), 5000);
  const [chunk] = (await chunkPromise) as [Buffer];
  clearTimeout(timer);
  udp.close();
  client.close(); // the ticket dies with its session: close only after collecting
  return {
    greeting,
    ticketTemplate: ticket.replace(/udp=127\.0\.0\.1:\d+/, "udp=127.0.0.1:{port}"),
    chunk,
    queryBytes: Buffer.byteLength(query),
    ticketBytes: Buffer.byteLength(ticket),
    requestBytes: request.length,
    chunkBytes: chunk.length,
  };
}

/** Asks for every URL once (pipelined, within the per-session queue limit), so that all are cached. */
async function warmCache(controlPort: number, urls: string[]): Promise<void> {
  const client = await LineClient.open(controlPort);
  await client.next();
  for (let first = 0; first < urls.length; first += 16) {
    const batch = urls.slice(first, first + 16);
    client.socket.write(batch.map((url) => `QUERY ${url}\n`).join(""));
    for (const url of batch) {
      const line = await client.next();
      if (!line.startsWith("TICKET ")) throw new Error(`warm-up ${url}: ${line.trim()}`);
    }
  }
  client.close();
}

function benchHeader(path: string): CraftedResponse {
  const base = REALISTIC_HEADERS["/twitch"]!.header as string;
  return { header: base.replace("\r\n\r\n", `\r\nX-Bench-Path: ${path}\r\n\r\n`) };
}

class Bench {
  private readonly scratch = mkdtempSync(join(os.tmpdir(), "headwire-bench-"));
  private readonly children = new Set<BenchChild>();
  private loadGenerator!: BenchChild;
  private origin!: CraftedOrigin;
  private exchange!: Exchange;
  private hotUrls: string[] = [];
  private churnUrls: string[] = [];
  private windowMark: {
    start?: number;
    end?: number;
    machineStart?: number;
    machineEnd?: number;
    pid?: number;
    /** With --profile: the server to profile during the measured window, and the file name. */
    profile?: { child: BenchChild; name: string };
    profiling?: Promise<unknown>;
  } = {};
  private readonly soakClientSamples: Record<string, unknown>[] = [];
  private readonly profileDir: string;
  private readonly stamp = new Date().toISOString().replace(/[:.]/g, "-");

  constructor(private readonly options: BenchOptions) {
    this.profileDir = resolve(options.out, `profiles-${this.stamp}`);
  }

  async setUp(): Promise<void> {
    const routes: Record<string, CraftedResponse> = {};
    for (let i = 0; i < this.options.hotUrls; i++) routes[`/hot/${String(i).padStart(4, "0")}`] = benchHeader("x");
    for (let i = 0; i < this.options.soakChurnUrls; i++)
      routes[`/churn/${String(i).padStart(5, "0")}`] = benchHeader("x");
    this.origin = await CraftedOrigin.start(routes, HOST);
    const base = `http://${HOST}:${this.origin.port}`;
    this.hotUrls = Object.keys(routes)
      .filter((p) => p.startsWith("/hot/"))
      .map((p) => base + p);
    this.churnUrls = Object.keys(routes)
      .filter((p) => p.startsWith("/churn/"))
      .map((p) => base + p);
    this.loadGenerator = await BenchChild.start(LOAD_SCRIPT, [], {
      ...(this.options.pin ? { cpus: "1" } : {}),
      onEvent: (message) => this.onGeneratorEvent(message),
    });
    this.children.add(this.loadGenerator);
    const server = await this.startServer("headwire");
    this.exchange = await captureExchange(Number(server.ready.controlPort), this.hotUrls[0]!);
    await this.stopServer(server);
  }

  private onGeneratorEvent(message: Record<string, unknown>): void {
    const mark = this.windowMark;
    if (message.event === "window-start" && mark.pid) {
      mark.start = cpuSeconds(mark.pid);
      mark.machineStart = machineBusySeconds();
      if (mark.profile) mark.profiling = mark.profile.child.request({ cmd: "profile-start" });
    } else if (message.event === "window-end" && mark.pid) {
      mark.end = cpuSeconds(mark.pid);
      mark.machineEnd = machineBusySeconds();
      const profile = mark.profile;
      if (profile && mark.profiling) {
        mark.profiling = mark.profiling.then(() =>
          profile.child.request({ cmd: "profile-stop", path: join(this.profileDir, profile.name) }),
        );
      }
    } else if (message.event === "sample") this.soakClientSamples.push(message);
  }

  private async startServer(kind: ServerKind, nodeArgs: string[] = []): Promise<BenchChild> {
    const settings =
      kind === "headwire"
        ? { cacheFile: join(mkdtempSync(join(this.scratch, "server-")), "cache.txt") }
        : {
            greeting: this.exchange.greeting,
            ticketTemplate: this.exchange.ticketTemplate,
            chunk: this.exchange.chunk.toString("base64"),
            udpRecvBufferBytes: this.options.floorUdpRecvBufferBytes,
          };
    const child = await BenchChild.start(SERVER_SCRIPT, [kind, JSON.stringify(settings)], {
      ...(this.options.pin ? { cpus: "0" } : {}),
      nodeArgs,
    });
    this.children.add(child);
    return child;
  }

  private async stopServer(child: BenchChild): Promise<void> {
    await child.stop();
    this.children.delete(child);
  }

  private async generate(request: Record<string, unknown>, timeoutMs: number): Promise<RunResult> {
    const answer = await this.loadGenerator.request({ cmd: "run", host: HOST, ...request }, timeoutMs);
    return answer.result as RunResult;
  }

  async throughput(): Promise<ThroughputRow[]> {
    const rows: ThroughputRow[] = [];
    const { warmupSeconds, durationSeconds } = this.options;
    for (const concurrency of this.options.concurrency) {
      for (const kind of ["floor", "headwire"] as const) {
        const server = await this.startServer(kind);
        const controlPort = Number(server.ready.controlPort);
        if (kind === "headwire") await warmCache(controlPort, this.hotUrls);
        const before = kind === "headwire" ? await server.request({ cmd: "stats" }) : undefined;
        this.windowMark = { pid: server.pid };
        if (this.options.profile && kind === "headwire") {
          mkdirSync(this.profileDir, { recursive: true });
          this.windowMark.profile = { child: server, name: `throughput-c${concurrency}.cpuprofile` };
        }
        const result = await this.generate(
          {
            controlPort,
            sessions: concurrency,
            urls: this.hotUrls,
            warmupMs: warmupSeconds * 1000,
            durationMs: durationSeconds * 1000,
          },
          (warmupSeconds + durationSeconds) * 1000 + 120_000,
        );
        await this.windowMark.profiling;
        const serverCores = coreShare(this.windowMark.start, this.windowMark.end, result.seconds);
        const machineCores = coreShare(this.windowMark.machineStart, this.windowMark.machineEnd, result.seconds);
        // Whatever else ran during the window (the orchestrator, other programs): a noisy machine shows here.
        const otherCores =
          machineCores === undefined || serverCores === undefined
            ? undefined
            : Math.max(0, machineCores - serverCores - result.generatorCores);
        const peak = memory(server.pid)?.peakRssKiB;
        const after = kind === "headwire" ? await server.request({ cmd: "stats" }) : undefined;
        await this.stopServer(server);
        const row: ThroughputRow = {
          concurrency,
          server: kind,
          result,
          serverCores,
          otherCores,
          serverPeakRssKiB: peak,
        };
        if (before && after) row.originFetchesDuringRun = Number(after.originFetches) - Number(before.originFetches);
        rows.push(row);
        log(
          `C=${concurrency} ${kind}: ${thousands(result.lookupsPerSecond)} lookups/s, p50 ${fixed(result.latency.p50Ms, 3)} ms, ` +
            `p99 ${fixed(result.latency.p99Ms, 3)} ms, server ${fixed(serverCores)} cores, generator ${fixed(result.generatorCores)} cores`,
        );
      }
    }
    return rows;
  }

  async idle(): Promise<IdleResult[]> {
    const results: IdleResult[] = [];
    for (const kind of ["floor", "headwire"] as const) {
      const server = await this.startServer(kind, ["--expose-gc"]);
      const controlPort = Number(server.ready.controlPort);
      // Warm the accept and session code paths first, so that their one-off costs are not counted.
      await this.loadGenerator.request({ cmd: "idle-open", host: HOST, controlPort, sessions: 200 }, 60_000);
      await this.loadGenerator.request({ cmd: "idle-close" });
      await delay(300);
      const gcBefore = await server.request({ cmd: "gc" });
      await delay(200);
      const before = memory(server.pid);
      const opened = await this.loadGenerator.request(
        { cmd: "idle-open", host: HOST, controlPort, sessions: this.options.idleSessions },
        180_000,
      );
      await delay(1000);
      const gcAfter = await server.request({ cmd: "gc" });
      await delay(200);
      const after = memory(server.pid);
      const stats = await server.request({ cmd: "stats" });
      let heapSnapshot: string | undefined;
      if (this.options.heapSnapshot && kind === "headwire") {
        mkdirSync(resolve(this.options.out), { recursive: true });
        const path = resolve(this.options.out, `idle-${this.stamp}.heapsnapshot`);
        heapSnapshot = String((await server.request({ cmd: "heap-snapshot", path }, 120_000)).path);
      }
      await this.loadGenerator.request({ cmd: "idle-close" });
      await this.stopServer(server);
      const count = Number(opened.opened);
      const heapOf = (answer: Record<string, unknown>) => (answer.memory as NodeJS.MemoryUsage | undefined)?.heapUsed;
      const heapBefore = heapOf(gcBefore);
      const heapAfter = heapOf(gcAfter);
      const result: IdleResult = {
        server: kind,
        sessions: this.options.idleSessions,
        opened: count,
        openMs: Number(opened.ms),
        rssBeforeKiB: before?.rssKiB ?? NaN,
        rssAfterKiB: after?.rssKiB ?? NaN,
        perSessionKiB: before && after && count > 0 ? (after.rssKiB - before.rssKiB) / count : NaN,
        ...(heapBefore !== undefined && heapAfter !== undefined
          ? {
              heapBeforeBytes: heapBefore,
              heapAfterBytes: heapAfter,
              heapPerSessionBytes: count > 0 ? (heapAfter - heapBefore) / count : NaN,
            }
          : {}),
        ...(heapSnapshot ? { heapSnapshot } : {}),
      };
      if (kind === "headwire" && Number(stats.sessions) !== count) {
        log(`idle: the server holds ${String(stats.sessions)} sessions, the generator opened ${count}`);
      }
      results.push(result);
      log(
        `idle ${kind}: ${count}/${this.options.idleSessions} sessions, RSS ${result.rssBeforeKiB} → ${result.rssAfterKiB} KiB, ` +
          `${fixed(result.perSessionKiB)} KiB/session`,
      );
    }
    return results;
  }

  async cold(): Promise<ColdResult & { curlMissing: boolean }> {
    const useCurl = curlAvailable();
    if (!useCurl) log("cold: curl is NOT installed: the curl column is skipped (apt-get install curl)");
    const server = await this.startServer("headwire");
    try {
      const result = await measureColdPath(
        this.origin,
        benchHeader("x"),
        { host: HOST, controlPort: Number(server.ready.controlPort) },
        this.options.coldSamples,
        useCurl,
      );
      log(
        `cold: headwire p50 ${fixed(result.headwire.p50Ms, 3)} ms, node http p50 ${fixed(result.nodeHttp.p50Ms, 3)} ms` +
          (result.curl ? `, curl p50 ${fixed(result.curl.p50Ms, 3)} ms` : ""),
      );
      // The same, with the origin as far away as a real one: what a user sees.
      this.origin.responseDelayMs = REMOTE_ORIGIN_DELAY_MS;
      let remote;
      try {
        remote = await measureColdPath(
          this.origin,
          benchHeader("x"),
          { host: HOST, controlPort: Number(server.ready.controlPort) },
          Math.max(10, Math.round(this.options.coldSamples / 5)),
          false,
        );
      } finally {
        this.origin.responseDelayMs = 0;
      }
      log(
        `cold, origin ${REMOTE_ORIGIN_DELAY_MS} ms away: headwire p50 ${fixed(remote.headwire.p50Ms, 3)} ms, ` +
          `node http p50 ${fixed(remote.nodeHttp.p50Ms, 3)} ms`,
      );
      return {
        ...result,
        remote: { delayMs: REMOTE_ORIGIN_DELAY_MS, headwire: remote.headwire, nodeHttp: remote.nodeHttp },
        curlMissing: !useCurl,
      };
    } finally {
      await this.stopServer(server);
    }
  }

  async soak(): Promise<SoakResult> {
    const { soakSeconds, soakSampleSeconds, soakSessions, soakChurnRatio } = this.options;
    const server = await this.startServer("headwire");
    const controlPort = Number(server.ready.controlPort);
    await warmCache(controlPort, this.hotUrls);
    this.soakClientSamples.length = 0;
    const serverSamples: { atMs: number; rssKiB?: number; stats: Record<string, unknown> }[] = [];
    let started = 0;
    let sampler: NodeJS.Timeout | undefined;
    this.windowMark = { pid: server.pid };
    if (this.options.profile) {
      mkdirSync(this.profileDir, { recursive: true });
      this.windowMark.profile = { child: server, name: "soak.cpuprofile" };
    }
    const onStart = (message: Record<string, unknown>) => {
      if (message.event !== "window-start") return;
      started = Date.now();
      void server.request({ cmd: "stats", reset: true });
      sampler = setInterval(() => {
        const atMs = Date.now() - started;
        const rssKiB = memory(server.pid)?.rssKiB;
        server.request({ cmd: "stats", reset: true }, 10_000).then(
          (stats) => serverSamples.push({ atMs, ...(rssKiB !== undefined ? { rssKiB } : {}), stats }),
          () => {},
        );
      }, soakSampleSeconds * 1000);
    };
    this.loadGenerator.process.on("message", onStart);
    let result: RunResult;
    try {
      result = await this.generate(
        {
          controlPort,
          sessions: soakSessions,
          urls: this.hotUrls,
          churnUrls: this.churnUrls,
          churnRatio: soakChurnRatio,
          warmupMs: this.options.soakWarmupSeconds * 1000,
          durationMs: soakSeconds * 1000,
          sampleEveryMs: soakSampleSeconds * 1000,
        },
        (this.options.soakWarmupSeconds + soakSeconds) * 1000 + 120_000,
      );
    } finally {
      this.loadGenerator.process.off("message", onStart);
      if (sampler) clearInterval(sampler);
    }
    await this.windowMark.profiling;
    const final = await server.request({ cmd: "stats" });
    await this.stopServer(server);
    const samples: SoakSample[] = serverSamples.map((s, i) => {
      const client = this.soakClientSamples[i] ?? {};
      const latency = (client.latency ?? {}) as { p50Ms?: number; p99Ms?: number };
      const eld = s.stats.eventLoopDelayMs as { p99: number; max: number };
      return {
        atSeconds: s.atMs / 1000,
        lookupsPerSecond: Number(client.lookupsPerSecond ?? NaN),
        errors: Number(client.errors ?? 0),
        p50Ms: latency.p50Ms ?? NaN,
        p99Ms: latency.p99Ms ?? NaN,
        rssKiB: s.rssKiB,
        heapUsedBytes: (s.stats.memory as NodeJS.MemoryUsage).heapUsed,
        eventLoopDelayP99Ms: eld.p99,
        eventLoopDelayMaxMs: eld.max,
        cacheEntries: Number(s.stats.cacheEntries),
        originFetches: Number(s.stats.originFetches),
      };
    });
    const series = (pick: (s: SoakSample) => number | undefined) =>
      samples.flatMap((s) => {
        const value = pick(s);
        return value === undefined || !Number.isFinite(value) ? [] : [{ atSeconds: s.atSeconds, value }];
      });
    const soak: SoakResult = {
      seconds: soakSeconds,
      sessions: soakSessions,
      churnRatio: soakChurnRatio,
      result: result!,
      samples,
      rssTrend: trend(series((s) => s.rssKiB)),
      heapTrend: trend(series((s) => s.heapUsedBytes)),
      eventLoopDelayTrend: trend(series((s) => s.eventLoopDelayP99Ms)),
      throughputTrend: trend(series((s) => s.lookupsPerSecond)),
      originFetches: Number(final.originFetches),
    };
    log(
      `soak: ${thousands(result!.lookupsPerSecond)} lookups/s, RSS ${fixed(soak.rssTrend.slopePerMinute)} KiB/min ` +
        `(${fixed(soak.rssTrend.relativeGrowth * 100)}% over the window)`,
    );
    return soak;
  }

  async tearDown(): Promise<void> {
    for (const child of this.children) await child.stop().catch(() => child.process.kill("SIGKILL"));
    await this.origin?.close();
    rmSync(this.scratch, { recursive: true, force: true });
  }

  get exchangeSizes() {
    const { queryBytes, ticketBytes, requestBytes, chunkBytes } = this.exchange;
    return { queryBytes, ticketBytes, requestBytes, chunkBytes };
  }

  profiles(): { file: string; top: ReturnType<typeof summarizeProfile> }[] {
    if (!this.options.profile) return [];
    try {
      return readdirSync(this.profileDir)
        .filter((f) => f.endsWith(".cpuprofile"))
        .map((f) => ({ file: join(this.profileDir, f), top: summarizeProfile(join(this.profileDir, f), 25) }));
    } catch {
      return [];
    }
  }
}

function machine() {
  const cpus = os.cpus();
  let openFiles: string | undefined;
  try {
    openFiles = execFileSync("sh", ["-c", "ulimit -n"], { encoding: "utf8", timeout: 2000 }).trim();
  } catch {
    openFiles = undefined;
  }
  return {
    cpuModel: cpus[0]?.model ?? "unknown",
    cores: cpus.length,
    availableParallelism: os.availableParallelism(),
    memoryMiB: Math.round(os.totalmem() / 2 ** 20),
    platform: `${os.platform()} ${os.release()} ${os.arch()}`,
    node: process.version,
    openFilesLimit: openFiles,
    hostname: os.hostname(),
  };
}

function ratio(a: number | undefined, b: number | undefined): number | undefined {
  return a === undefined || b === undefined || b === 0 ? undefined : a / b;
}

function throughputTables(rows: ThroughputRow[]): string {
  const main = markdownTable(
    [
      "C",
      "server",
      "lookups/s",
      "p50 ms",
      "p99 ms",
      "max ms",
      "server CPU",
      "server µs/lookup",
      "generator CPU",
      "other CPU",
      "peak RSS MiB",
      "resent",
      "errors",
    ],
    rows.map((r) => [
      r.concurrency,
      r.server,
      thousands(r.result.lookupsPerSecond),
      fixed(r.result.latency.p50Ms, 3),
      fixed(r.result.latency.p99Ms, 3),
      fixed(r.result.latency.maxMs, 1),
      fixed(r.serverCores),
      fixed(r.serverCores === undefined ? undefined : (r.serverCores * 1e6) / r.result.lookupsPerSecond, 1),
      fixed(r.result.generatorCores),
      fixed(r.otherCores),
      fixed((r.serverPeakRssKiB ?? NaN) / 1024, 1),
      r.result.retransmits,
      r.result.errors,
    ]),
  );
  const concurrencies = [...new Set(rows.map((r) => r.concurrency))];
  const ratios = markdownTable(
    ["C", "throughput ÷ floor", "p50 ÷ floor", "p99 ÷ floor", "p99 ÷ p50 (headwire)", "CPU per lookup ÷ floor"],
    concurrencies.flatMap((c) => {
      const hw = rows.find((r) => r.concurrency === c && r.server === "headwire");
      const fl = rows.find((r) => r.concurrency === c && r.server === "floor");
      if (!hw || !fl) return [];
      const cpuPerLookup = (r: ThroughputRow) =>
        r.serverCores === undefined ? undefined : r.serverCores / r.result.lookupsPerSecond;
      return [
        [
          c,
          fixed(ratio(hw.result.lookupsPerSecond, fl.result.lookupsPerSecond)),
          fixed(ratio(hw.result.latency.p50Ms, fl.result.latency.p50Ms)),
          fixed(ratio(hw.result.latency.p99Ms, fl.result.latency.p99Ms)),
          fixed(ratio(hw.result.latency.p99Ms, hw.result.latency.p50Ms)),
          fixed(ratio(cpuPerLookup(hw), cpuPerLookup(fl))),
        ],
      ];
    }),
  );
  const busy = rows.filter((r) => (r.otherCores ?? 0) > 0.25);
  const warning =
    busy.length === 0
      ? ""
      : `\n\nWARNING: other programs used CPU during ${busy.length} run(s) (see "other CPU"): on a 2-core ` +
        "machine that distorts these figures; run again on a quiet machine.";
  return `${main}\n\n${ratios}${warning}`;
}

function targetChecks(
  rows: ThroughputRow[] | undefined,
  idle: IdleResult[] | undefined,
  cold: ColdResult | undefined,
  soak: SoakResult | undefined,
): TargetCheck[] {
  const at = (c: number, kind: ServerKind) => rows?.find((r) => r.concurrency === c && r.server === kind);
  const hw100 = at(100, "headwire");
  const fl100 = at(100, "floor");
  const share = ratio(hw100?.result.lookupsPerSecond, fl100?.result.lookupsPerSecond);
  const hw1000 = at(1000, "headwire");
  const tail = ratio(hw1000?.result.latency.p99Ms, hw1000?.result.latency.p50Ms);
  const hwIdle = idle?.find((r) => r.server === "headwire");
  const coldNode = ratio(cold?.headwire.p50Ms, cold?.nodeHttp.p50Ms);
  const coldCurl = ratio(cold?.headwire.p50Ms, cold?.curl?.p50Ms);
  const coldRemote = ratio(cold?.remote?.headwire.p50Ms, cold?.remote?.nodeHttp.p50Ms);
  const soakGrowth = soak?.rssTrend.relativeGrowth;
  return [
    {
      name: "cached throughput at C=100",
      target: "≥ 0.70 × floor",
      measured: share === undefined ? "not run" : `${fixed(share)} × floor`,
      pass: share === undefined ? undefined : share >= 0.7,
    },
    {
      name: "tail latency at C=1000",
      target: "p99 ≤ 5 × p50",
      measured:
        tail === undefined
          ? "not run"
          : `p99 ${fixed(hw1000!.result.latency.p99Ms, 2)} ms = ${fixed(tail)} × p50 ${fixed(hw1000!.result.latency.p50Ms, 2)} ms`,
      pass: tail === undefined ? undefined : tail <= 5,
    },
    {
      name: `idle sessions (${hwIdle?.sessions ?? 10_000})`,
      target: "RSS ≤ 10 KiB per session",
      measured: hwIdle === undefined ? "not run" : `${fixed(hwIdle.perSessionKiB)} KiB/session (${hwIdle.opened} open)`,
      pass: hwIdle === undefined ? undefined : hwIdle.opened === hwIdle.sessions && hwIdle.perSessionKiB <= 10,
    },
    {
      name: "cold path vs bare Node request",
      target: "p50 ≤ 1.2 × direct",
      measured: coldNode === undefined ? "not run" : `${fixed(coldNode)} ×`,
      pass: coldNode === undefined ? undefined : coldNode <= 1.2,
    },
    {
      name: `cold path vs bare Node request, origin ${REMOTE_ORIGIN_DELAY_MS} ms away`,
      target: "p50 ≤ 1.2 × direct",
      measured: coldRemote === undefined ? "not run" : `${fixed(coldRemote)} ×`,
      pass: coldRemote === undefined ? undefined : coldRemote <= 1.2,
    },
    {
      name: "cold path vs curl (process start-up included)",
      target: "p50 ≤ 1.2 × direct",
      measured: coldCurl === undefined ? (cold ? "curl missing" : "not run") : `${fixed(coldCurl)} ×`,
      pass: coldCurl === undefined ? undefined : coldCurl <= 1.2,
    },
    {
      name: "soak: no RSS growth trend",
      target: "< 5% growth over the window",
      measured:
        soakGrowth === undefined
          ? "not run"
          : `${fixed(soak!.rssTrend.slopePerMinute)} KiB/min, ${fixed(soakGrowth * 100)}% of ${fixed(soak!.rssTrend.mean / 1024, 1)} MiB`,
      pass: soakGrowth === undefined ? undefined : soakGrowth < 0.05,
    },
  ];
}

async function main(): Promise<void> {
  const options = parseOptions(process.argv.slice(2), process.env);
  const started = Date.now();
  const bench = new Bench(options);
  const results: Record<string, unknown> = { startedAt: new Date(started).toISOString(), machine: machine() };
  let throughput: ThroughputRow[] | undefined;
  let idle: IdleResult[] | undefined;
  let cold: (ColdResult & { curlMissing: boolean }) | undefined;
  let soak: SoakResult | undefined;
  const shutdown = () => {
    void bench.tearDown().finally(() => process.exit(130));
  };
  process.once("SIGINT", shutdown);
  process.once("SIGTERM", shutdown);
  log(
    `${options.quick ? "quick" : "full"} mode; phases ${options.phases.join(", ")}; ` +
      (options.pin ? "server on CPU 0, load generator on CPU 1" : "not pinned"),
  );
  try {
    await bench.setUp();
    results.exchange = bench.exchangeSizes;
    if (options.phases.includes("throughput")) throughput = await bench.throughput();
    if (options.phases.includes("idle")) idle = await bench.idle();
    if (options.phases.includes("cold")) cold = await bench.cold();
    if (options.phases.includes("soak")) soak = await bench.soak();
  } finally {
    await bench.tearDown();
  }
  const checks = targetChecks(throughput, idle, cold, soak);
  Object.assign(results, {
    options,
    durationSeconds: (Date.now() - started) / 1000,
    throughput,
    idle,
    cold,
    soak,
    targets: checks,
    profiles: bench.profiles(),
  });

  const out: string[] = [];
  const m = results.machine as ReturnType<typeof machine>;
  out.push(
    `\nheadwire benchmark, ${options.quick ? "quick" : "full"} mode — ${m.cpuModel}, ${m.cores} cores, ` +
      `${m.memoryMiB} MiB, ${m.platform}, node ${m.node}; ${options.pin ? "server pinned to CPU 0, load generator to CPU 1" : "unpinned"}`,
  );
  const ex = bench.exchangeSizes;
  out.push(
    `exchange per lookup: QUERY ${ex.queryBytes} B → TICKET ${ex.ticketBytes} B over TCP, REQUEST ${ex.requestBytes} B → CHUNK ${ex.chunkBytes} B over UDP`,
  );
  if (throughput) {
    out.push(`\n### Cached lookups (${options.durationSeconds} s per run after ${options.warmupSeconds} s warm-up)\n`);
    out.push(throughputTables(throughput));
  }
  if (idle) {
    out.push(`\n### Idle sessions\n`);
    out.push(
      markdownTable(
        ["server", "sessions", "RSS before MiB", "RSS after MiB", "KiB/session", "JS heap B/session", "open time s"],
        idle.map((r) => [
          r.server,
          `${r.opened}/${r.sessions}`,
          fixed(r.rssBeforeKiB / 1024, 1),
          fixed(r.rssAfterKiB / 1024, 1),
          fixed(r.perSessionKiB),
          thousands(r.heapPerSessionBytes),
          fixed(r.openMs / 1000, 1),
        ]),
      ),
    );
  }
  if (cold) {
    out.push(`\n### Cold path (${options.coldSamples} uncached lookups per method, distinct URLs)\n`);
    const rowsCold: (string | number)[][] = [
      ["headwire (session open, fresh UDP port)", cold.headwire],
      ["bare Node http.get (fresh connection)", cold.nodeHttp],
      ...(cold.curl ? [["curl -s -D - -o /dev/null", cold.curl]] : []),
      ...(cold.curlStartup ? [["curl --version (start-up only)", cold.curlStartup]] : []),
    ].map(([name, s]) => {
      const summary = s as ColdResult["headwire"];
      return [
        name as string,
        fixed(summary.p50Ms, 3),
        fixed(summary.p99Ms, 3),
        fixed(summary.meanMs, 3),
        fixed(ratio(cold!.headwire.p50Ms, summary.p50Ms)),
        summary.failures,
      ];
    });
    if (cold.remote) {
      const { delayMs, headwire, nodeHttp } = cold.remote;
      for (const [name, summary] of [
        [`headwire, origin ${delayMs} ms away`, headwire],
        [`bare Node http.get, origin ${delayMs} ms away`, nodeHttp],
      ] as const) {
        rowsCold.push([
          name,
          fixed(summary.p50Ms, 3),
          fixed(summary.p99Ms, 3),
          fixed(summary.meanMs, 3),
          fixed(ratio(headwire.p50Ms, summary.p50Ms)),
          summary.failures,
        ]);
      }
    }
    out.push(markdownTable(["method", "p50 ms", "p99 ms", "mean ms", "headwire p50 ÷ this", "failures"], rowsCold));
    if (cold.curlMissing) out.push("\ncurl is NOT installed: the curl comparison was skipped.");
    else
      out.push(
        "\ncurl's figure is mostly process start-up (see its `--version` row); the Node figure is the strict one.",
      );
  }
  if (soak) {
    out.push(
      `\n### Soak (${soak.seconds} s at C=${soak.sessions} after ${options.soakWarmupSeconds} s of warm-up, ` +
        `${fixed(soak.churnRatio * 100, 0)}% of queries outside the hot set)\n`,
    );
    const every = Math.max(1, Math.floor(soak.samples.length / 12));
    out.push(
      markdownTable(
        [
          "t s",
          "lookups/s",
          "p50 ms",
          "p99 ms",
          "RSS MiB",
          "heap MiB",
          "loop delay p99 ms",
          "cache entries",
          "origin fetches",
        ],
        soak.samples
          .filter((_, i) => i % every === 0 || i === soak!.samples.length - 1)
          .map((s) => [
            fixed(s.atSeconds, 0),
            thousands(s.lookupsPerSecond),
            fixed(s.p50Ms, 3),
            fixed(s.p99Ms, 3),
            fixed((s.rssKiB ?? NaN) / 1024, 1),
            fixed(s.heapUsedBytes / 2 ** 20, 1),
            fixed(s.eventLoopDelayP99Ms, 1),
            s.cacheEntries,
            s.originFetches,
          ]),
      ),
    );
    out.push(
      `\ntrends after the first quarter: RSS ${fixed(soak.rssTrend.slopePerMinute)} KiB/min (${fixed(soak.rssTrend.relativeGrowth * 100)}%), ` +
        `heap ${fixed(soak.heapTrend.slopePerMinute / 1024)} KiB/min (${fixed(soak.heapTrend.relativeGrowth * 100)}%), ` +
        `loop delay p99 ${fixed(soak.eventLoopDelayTrend.slopePerMinute, 3)} ms/min, ` +
        `throughput ${fixed(soak.throughputTrend.relativeGrowth * 100)}%; ${soak.result.errors} errors, ${soak.result.retransmits} re-sent requests`,
    );
  }
  out.push(`\n### Targets\n`);
  out.push(
    markdownTable(
      ["target", "goal", "measured", "status"],
      checks.map((c) => [c.name, c.target, c.measured, verdict(c.pass)]),
    ),
  );
  for (const profile of bench.profiles()) {
    out.push(`\nCPU profile ${profile.file} (self time):`);
    for (const line of profile.top.slice(0, 15)) {
      out.push(`  ${(line.share * 100).toFixed(1).padStart(5)}%  ${line.name}`);
    }
  }
  mkdirSync(options.out, { recursive: true });
  const file = join(options.out, `${new Date(started).toISOString().replace(/[:.]/g, "-")}.json`);
  writeFileSync(file, `${JSON.stringify(results, null, 2)}\n`);
  out.push(`\nresults: ${file} (${fixed((Date.now() - started) / 1000, 0)} s)`);
  process.stdout.write(`${out.join("\n")}\n`);
}

main().catch((error: unknown) => {
  process.stderr.write(`bench: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
  process.exit(1);
});
