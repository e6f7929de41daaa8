/**
 * What every phase runs on: the local origin, the load generator (its own process, pinned to
 * CPU 1), servers under test started and stopped in their own processes (pinned to CPU 0), and
 * the measured window's CPU readings, taken when the generator says the window starts and ends.
 */
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
  /** With --profile: the server to profile during the measured window, and the file name. */
  profile?: { child: BenchChild; name: string };
  profiling?: Promise<unknown>;
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

  /** `headwire`: extra settings of bench/server-process.ts (cacheMaxEntries) may be given. */
  async startServer(
    kind: ServerKind,
    nodeArgs: string[] = [],
    extra: { cacheMaxEntries?: number } = {},
  ): Promise<BenchChild> {
    const settings =
      kind === "headwire"
        ? { cacheFile: join(mkdtempSync(join(this.scratch, "server-")), "cache.txt"), ...extra }
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

  async stopServer(child: BenchChild): Promise<void> {
    await child.stop();
    this.children.delete(child);
  }

  /** One load-generator run (bench/load-generator.ts's RunRequest, less the host). */
  async generate(request: Record<string, unknown>, timeoutMs: number): Promise<RunResult> {
    const answer = await this.loadGenerator.request({ cmd: "run", host: HOST, ...request }, timeoutMs);
    return answer.result as RunResult;
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
