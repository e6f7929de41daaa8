/**
 * Under attack: a probe client's latency while each attack of bench/attacker.ts runs, against
 * the same probe with no attack, as ratios (issue 11: a newline flood used to push a new
 * client's greeting to a median 10.9 s).
 *
 * Each window gets a fresh `headwire server` process with its DEFAULT abuse limits (not the
 * harness's unlimited settings: the limits are what is measured), pinned to CPU 0 like the
 * other servers; the attacker runs in its own process, from 127.0.0.2 … 127.0.0.11; the probe
 * runs here, from 127.0.0.1, and times (1) a new session's greeting + PING/PONG and (2) a cached
 * lookup (query + UDP collection) on a kept session, for as long as the attack runs.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { once } from "node:events";
import { mkdtempSync, rmSync } from "node:fs";
import { connect } from "node:net";
import os from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { HeadwireClient } from "../../src/client/headwire-client.js";
import { BenchChild } from "../child.js";
import { summarizeMs } from "../cold-path.js";
import { fixed } from "../format.js";
import type { BenchHarness } from "../harness.js";
import { delay, log } from "../harness.js";
import { HOST, warmCache } from "../line-client.js";
import { coreShare, cpuSeconds, memory, udpReceiveBufferDrops } from "../process-stats.js";
import { ATTACKS, type AttackAchieved, type AttackKind, type AttackRow } from "../results.js";
import { ratio } from "../targets.js";

const here = dirname(fileURLToPath(import.meta.url));
const ATTACKER_SCRIPT = join(here, "..", "attacker.js");
/** bin/headwire, from dist/bench/phases/. */
const HEADWIRE_BIN = join(here, "..", "..", "..", "bin", "headwire");
/** A probe operation slower than this counts as failed (and the probe goes on). */
const PROBE_TIMEOUT_MS = 30_000;
/** Between two probe rounds: about 100 rounds a second, well under the probe's own per-address query rate. */
const PROBE_PAUSE_MS = 10;
/**
 * Between two new probe sessions: about 14 a second, under the server's default new-sessions rate
 * per address (connectionsPerSecondPerAddress, 20), which a probe reconnecting every round would trip.
 */
const PROBE_NEW_SESSION_EVERY_MS = 70;

/** A `headwire server` process as an operator starts it: default limits, loopback, ephemeral ports. */
interface ServerUnderAttack {
  process: ChildProcess;
  controlPort: number;
  dataPort: number;
  /** Lines the server wrote to stderr (its log), and the last of them. */
  logLines: () => number;
  logTail: () => string;
}

async function startServer(cacheFile: string, pin: boolean): Promise<ServerUnderAttack> {
  const args = [
    HEADWIRE_BIN,
    "server",
    "--host",
    HOST,
    "--port",
    "0",
    "--data-port",
    "0",
    "--allow-private",
    "--cache-file",
    cacheFile,
    "--admin-http",
    "127.0.0.1:0",
  ];
  // No HEADWIRE_* variable from the caller's environment: the defaults are what is measured.
  const env = Object.fromEntries(Object.entries(process.env).filter(([name]) => !name.startsWith("HEADWIRE_")));
  const child = pin
    ? spawn("taskset", ["-c", "0", process.execPath, ...args], { env, stdio: ["ignore", "pipe", "pipe"] })
    : spawn(process.execPath, args, { env, stdio: ["ignore", "pipe", "pipe"] });
  let lines = 0;
  let tail = "";
  child.stdout!.resume();
  child.stderr!.setEncoding("utf8");
  const ports = new Promise<[number, number]>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`headwire server: not listening within 15 s: ${tail}`)), 15_000);
    child.stderr!.on("data", (text: string) => {
      lines += text.split("\n").length - 1;
      tail = (tail + text).slice(-4000);
      const match = /listening: control tcp \S+ port (\d+), data udp port (\d+)/.exec(tail);
      if (match) {
        clearTimeout(timer);
        resolve([Number(match[1]), Number(match[2])]);
      }
    });
    child.once("exit", (code) => {
      clearTimeout(timer);
      reject(new Error(`headwire server exited (${code}) before listening: ${tail}`));
    });
  });
  const [controlPort, dataPort] = await ports;
  return { process: child, controlPort, dataPort, logLines: () => lines, logTail: () => tail };
}

async function stopServer(server: ServerUnderAttack): Promise<number | null> {
  const child = server.process;
  if (child.exitCode !== null || child.signalCode !== null) return child.exitCode;
  const exited = once(child, "exit");
  const killer = setTimeout(() => child.kill("SIGKILL"), 15_000);
  child.kill("SIGTERM");
  const [code] = (await exited) as [number | null];
  clearTimeout(killer);
  return code;
}

/** A new session: from connect to the greeting, then PING to PONG. Rejects on anything else. */
function greetingAndPing(port: number): Promise<number> {
  const started = performance.now();
  return new Promise((resolve, reject) => {
    const socket = connect({ host: HOST, port });
    let buffered = "";
    let greeted = false;
    const fail = (why: string) => {
      clearTimeout(timer);
      socket.destroy();
      reject(new Error(why));
    };
    const timer = setTimeout(() => fail("no greeting + PONG in time"), PROBE_TIMEOUT_MS);
    socket.setNoDelay(true);
    socket.setEncoding("latin1");
    socket.on("error", (error) => fail(error.message));
    socket.on("close", () => fail("closed by the server"));
    socket.on("data", (text: string) => {
      buffered += text;
      for (let nl = buffered.indexOf("\n"); nl !== -1; nl = buffered.indexOf("\n")) {
        const line = buffered.slice(0, nl);
        buffered = buffered.slice(nl + 1);
        if (!greeted && line.startsWith("HEADWIRE/")) {
          greeted = true;
          socket.write("PING\n");
        } else if (greeted && line === "PONG") {
          clearTimeout(timer);
          socket.removeAllListeners("close");
          socket.destroy();
          resolve(performance.now() - started);
        } else return fail(`unexpected line: ${line.slice(0, 80)}`);
      }
    });
  });
}

/** The probe's kept session, counting the REQUEST datagrams it sends (more than one: a resend). */
class ProbeSession {
  private constructor(
    readonly client: HeadwireClient,
    private readonly udpRequests: { count: number },
  ) {}

  static async open(controlPort: number): Promise<ProbeSession> {
    const udpRequests = { count: 0 };
    const trace = (channel: string, direction: string) => {
      if (channel === "udp" && direction === "send") udpRequests.count++;
    };
    // UDP only, one ticket: the probe measures the UDP lookup under attack, not a retry or a TCP fallback hiding its failure.
    const client = await HeadwireClient.connect(
      { serverHost: HOST, serverPort: controlPort, delivery: "udp", deliveryRetries: 0 },
      trace,
    );
    return new ProbeSession(client, udpRequests);
  }

  /** A cached lookup: query, ticket, UDP collection, not written to disk. */
  async lookup(url: string): Promise<{ ms: number; resent: boolean }> {
    const started = performance.now();
    const requestsBefore = this.udpRequests.count;
    const result = await this.client.query({ url, write: false });
    if (result.error) throw new Error(`${result.error.code}: ${result.error.message}`);
    if (result.cache !== "HIT") throw new Error(`cache=${result.cache}: the warmed URL was not cached`);
    return { ms: performance.now() - started, resent: this.udpRequests.count - requestsBefore > 1 };
  }
}

interface ProbeSamples {
  greetingMs: number[];
  lookupMs: number[];
  greetingFailures: number;
  lookupFailures: number;
  /** Lookups whose REQUEST datagram had to be sent again (a datagram lost, or late). */
  lookupsResent: number;
  failureKinds: Record<string, number>;
}

/** Probe rounds until `until` resolves: each round one new session and one cached lookup. */
async function probe(controlPort: number, url: string, until: Promise<unknown>): Promise<ProbeSamples> {
  const samples: ProbeSamples = {
    greetingMs: [],
    lookupMs: [],
    greetingFailures: 0,
    lookupFailures: 0,
    lookupsResent: 0,
    failureKinds: {},
  };
  let done = false;
  void until.finally(() => (done = true));
  const failed = (error: unknown) => {
    const kind = (error instanceof Error ? error.message : String(error)).split(":")[0]!.slice(0, 60);
    samples.failureKinds[kind] = (samples.failureKinds[kind] ?? 0) + 1;
  };
  let session: ProbeSession | undefined = await ProbeSession.open(controlPort);
  let lastNewSessionAt = 0;
  try {
    while (!done) {
      if (Date.now() - lastNewSessionAt >= PROBE_NEW_SESSION_EVERY_MS) {
        lastNewSessionAt = Date.now();
        try {
          samples.greetingMs.push(await greetingAndPing(controlPort));
        } catch (error) {
          samples.greetingFailures++;
          failed(error);
        }
      }
      try {
        session ??= await ProbeSession.open(controlPort);
        const { ms, resent } = await withTimeout(session.lookup(url), PROBE_TIMEOUT_MS);
        samples.lookupMs.push(ms);
        if (resent) samples.lookupsResent++;
      } catch (error) {
        samples.lookupFailures++;
        failed(error);
        // A lost session is opened again in the next round, as a real client would.
        if (session?.client.lost) {
          session.client.destroy();
          session = undefined;
        }
      }
      await delay(PROBE_PAUSE_MS);
    }
  } finally {
    session?.client.destroy();
  }
  return samples;
}

function withTimeout<T>(promise: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([
    promise,
    new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error("lookup timed out")), ms);
    }),
  ]).finally(() => clearTimeout(timer));
}

export async function runAttacks(bench: BenchHarness): Promise<AttackRow[]> {
  const { options } = bench;
  const seconds = options.attackSeconds;
  const scratch = mkdtempSync(join(os.tmpdir(), "headwire-attacks-"));
  const attacker = await BenchChild.start(ATTACKER_SCRIPT, [], options.pin ? { cpus: "1" } : {});
  const rows: AttackRow[] = [];
  try {
    for (const kind of ATTACKS) rows.push(await runWindow(bench, attacker, kind, seconds, join(scratch, kind)));
  } finally {
    await attacker.stop().catch(() => attacker.process.kill("SIGKILL"));
    rmSync(scratch, { recursive: true, force: true });
  }
  // The ratios against the same probe with no attack.
  const baseline = rows.find((r) => r.attack === "none");
  for (const row of rows) {
    row.greetingP99Ratio = ratio(row.greeting.p99Ms, baseline?.greeting.p99Ms);
    row.greetingP50Ratio = ratio(row.greeting.p50Ms, baseline?.greeting.p50Ms);
    row.lookupP99Ratio = ratio(row.lookup.p99Ms, baseline?.lookup.p99Ms);
    row.lookupP50Ratio = ratio(row.lookup.p50Ms, baseline?.lookup.p50Ms);
  }
  return rows;
}

async function runWindow(
  bench: BenchHarness,
  attacker: BenchChild,
  kind: AttackKind,
  seconds: number,
  cacheFile: string,
): Promise<AttackRow> {
  const server = await startServer(cacheFile, bench.options.pin);
  try {
    const url = bench.hotUrls[0]!;
    await warmCache(server.controlPort, [url]);
    // Warm the probe's own code paths before the window, so that the first samples are not compile time.
    await probe(server.controlPort, url, delay(300));
    const pid = server.process.pid ?? 0;
    const rssBefore = memory(pid)?.rssKiB;
    const cpuBefore = cpuSeconds(pid);
    const udpDropsBefore = udpReceiveBufferDrops();
    const started = performance.now();
    const attack = attacker.request(
      { cmd: "attack", kind, controlPort: server.controlPort, dataPort: server.dataPort, seconds },
      (seconds + 60) * 1000,
    );
    const samples = await probe(server.controlPort, url, attack);
    const { achieved } = (await attack) as { achieved: AttackAchieved };
    const serverCores = coreShare(cpuBefore, cpuSeconds(pid), (performance.now() - started) / 1000);
    const after = memory(pid);
    const udpDropsAfter = udpReceiveBufferDrops();
    const alive = server.process.exitCode === null && server.process.signalCode === null;
    const row: AttackRow = {
      attack: kind,
      seconds,
      greeting: summarizeMs(samples.greetingMs, samples.greetingFailures),
      lookup: summarizeMs(samples.lookupMs, samples.lookupFailures),
      lookupsResent: samples.lookupsResent,
      failureKinds: samples.failureKinds,
      serverAlive: alive,
      serverCores,
      udpReceiveBufferDrops:
        udpDropsBefore === undefined || udpDropsAfter === undefined ? undefined : udpDropsAfter - udpDropsBefore,
      serverRssBeforeKiB: rssBefore,
      serverRssAfterKiB: after?.rssKiB,
      serverPeakRssKiB: after?.peakRssKiB,
      serverLogLines: server.logLines(),
      achieved,
    };
    log(
      `attacks: ${kind}: greeting+PING p50 ${fixed(row.greeting.p50Ms, 3)} ms p99 ${fixed(row.greeting.p99Ms, 3)} ms ` +
        `(${row.greeting.samples} ok, ${row.greeting.failures} failed), lookup p50 ${fixed(row.lookup.p50Ms, 3)} ms ` +
        `p99 ${fixed(row.lookup.p99Ms, 3)} ms (${row.lookup.samples} ok, ${row.lookup.failures} failed); ` +
        `RSS ${fixed((after?.rssKiB ?? NaN) / 1024, 1)} MiB; ${JSON.stringify(achieved)}` +
        (alive ? "" : `; SERVER DIED: ${server.logTail().slice(-500)}`),
    );
    return row;
  } finally {
    await stopServer(server);
  }
}
