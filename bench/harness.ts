/**
 * What every phase runs on: the local origin, the load generator (its own process, pinned to
 * CPU 1), servers under test started and stopped in their own processes (pinned to CPU 0), and
 * the measured window's CPU readings, taken when the generator says the window starts and ends.
 */
import { execFileSync } from "node:child_process";
import { mkdtempSync, readdirSync, rmSync } from "node:fs";
import os from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { CraftedOrigin, REALISTIC_HEADERS, type CraftedResponse } from "../src/demo/crafted-origin.js";
import { BenchChild } from "./child.js";
import { captureExchange, HOST, type Exchange } from "./line-client.js";
import type { RunResult } from "./load-generator.js";
import type { BenchOptions } from "./options.js";
import { cpuSeconds, machineBusySeconds } from "./process-stats.js";
import { summarizeProfile } from "./profile-summary.js";
import type { ServerKind } from "./results.js";

const here = dirname(fileURLToPath(import.meta.url));
const SERVER_SCRIPT = join(here, "server-process.js");
const LOAD_SCRIPT = join(here, "load-generator.js");

export const log = (message: string) => process.stderr.write(`bench: ${message}\n`);

export function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** The twitch header with the path added: what every benchmark URL answers. */
export function benchHeader(path: string): CraftedResponse {
  const base = REALISTIC_HEADERS["/twitch"]!.header as string;
  return { header: base.replace("\r\n\r\n", `\r\nX-Bench-Path: ${path}\r\n\r\n`) };
}

/** CPU readings around the generator's measured window, for the server process `pid`. */
export interface MeasuredWindow {
  start?: number;
  end?: number;
  machineStart?: number;
  machineEnd?: number;
  pid?: number;
  /** Several processes make the server (--workers): their CPU is summed. */
  pids?: number[];
  /** With --profile: the server to profile during the measured window, and the file name. */
  profile?: { child: BenchChild; name: string };
  profiling?: Promise<unknown>;
}

/** The server's CPU seconds so far: one process, or the sum of the processes it is made of. */
function cpuOf(mark: MeasuredWindow): number | undefined {
  if (!mark.pids) return cpuSeconds(mark.pid!);
  let total = 0;
  for (const pid of mark.pids) {
    const seconds = cpuSeconds(pid);
    if (seconds === undefined) return undefined;
    total += seconds;
  }
  return total;
}

export class BenchHarness {
  private readonly scratch = mkdtempSync(join(os.tmpdir(), "headwire-bench-"));
  private readonly children = new Set<BenchChild>();
  private exchange!: Exchange;
  loadGenerator!: BenchChild;
  origin!: CraftedOrigin;
  hotUrls: string[] = [];
  churnUrls: string[] = [];
  /** Set by a phase before it runs the generator; read when the generator's window events come. */
  windowMark: MeasuredWindow = {};
  /** The generator's `sample` events (the soak's client-side figures). */
  readonly soakClientSamples: Record<string, unknown>[] = [];
  readonly profileDir: string;
  readonly stamp = new Date().toISOString().replace(/[:.]/g, "-");

  constructor(readonly options: BenchOptions) {
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
      mark.start = cpuOf(mark);
      mark.machineStart = machineBusySeconds();
      if (mark.profile) mark.profiling = mark.profile.child.request({ cmd: "profile-start" });
    } else if (message.event === "window-end" && mark.pid) {
      mark.end = cpuOf(mark);
      mark.machineEnd = machineBusySeconds();
      const profile = mark.profile;
      if (profile && mark.profiling) {
        mark.profiling = mark.profiling.then(() =>
          profile.child.request({ cmd: "profile-stop", path: join(this.profileDir, profile.name) }),
        );
      }
    } else if (message.event === "sample") this.soakClientSamples.push(message);
  }

  /** `headwire server --workers N` (the CLI), its processes listed in ready.pids. */
  async startWorkers(workers: number): Promise<BenchChild> {
    const settings = { cacheFile: join(mkdtempSync(join(this.scratch, "server-")), "cache.txt"), workers };
    const child = await BenchChild.start(SERVER_SCRIPT, ["workers", JSON.stringify(settings)], {
      ...(this.options.pin ? { cpus: "0" } : {}),
      readyTimeoutMs: 30_000,
    });
    this.children.add(child);
    return child;
  }

  /** A server under test; `headwireSettings` adds to a headwire server's (bench/server-process.ts). */
  async startServer(
    kind: ServerKind,
    nodeArgs: string[] = [],
    headwireSettings: Record<string, unknown> = {},
  ): Promise<BenchChild> {
    const settings =
      kind === "headwire" || kind === "seed"
        ? { cacheFile: join(mkdtempSync(join(this.scratch, "server-")), "cache.txt"), ...headwireSettings }
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

  /** Whether the seed's design can run here (python3 on the PATH); asked once. */
  seedAvailable(): boolean {
    if (this.python === undefined) {
      try {
        execFileSync("python3", ["--version"], { stdio: "ignore", timeout: 5000 });
        this.python = true;
      } catch {
        this.python = false;
      }
    }
    return this.python;
  }

  private python: boolean | undefined;

  async stopServer(child: BenchChild): Promise<void> {
    await child.stop();
    this.children.delete(child);
  }

  /** One load-generator run (bench/load-generator.ts's RunRequest, less the host). */
  async generate(request: Record<string, unknown>, timeoutMs: number): Promise<RunResult> {
    const answer = await this.loadGenerator.request({ cmd: "run", host: HOST, ...request }, timeoutMs);
    return answer.result as RunResult;
  }

  /** C sessions asking for the cached hot URLs, after the warm-up, for the measured window. */
  generateHot(controlPort: number, sessions: number): Promise<RunResult> {
    const { warmupSeconds, durationSeconds } = this.options;
    return this.generate(
      { controlPort, sessions, urls: this.hotUrls, warmupMs: warmupSeconds * 1000, durationMs: durationSeconds * 1000 },
      (warmupSeconds + durationSeconds) * 1000 + 120_000,
    );
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
