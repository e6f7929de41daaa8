/**
 * A server under test, alone in its process so that its CPU time and memory can be read from
 * /proc: `headwire` (the real HeadwireServer, on 127.0.0.1, ephemeral ports, a temporary cache
 * file, origins on loopback allowed), `floor` (bench/floor-server.ts), `seed` (the seed's design,
 * bench/seed-design/server.py, Python 3) or `workers` (the CLI with --workers N). It reports its ports in
 * its first IPC message, then answers `stats`, `gc`, `heap-snapshot`, `profile-start`,
 * `profile-stop` (a CPU profile of just the measured window, written as a .cpuprofile) and `stop`.
 *
 *   node dist/bench/server-process.js headwire '{"cacheFile":"/tmp/x/cache.txt"}'
 *   node dist/bench/server-process.js floor '{"greeting":"...","ticketTemplate":"...","chunk":"<base64>"}'
 */
import { spawn, type ChildProcessByStdio } from "node:child_process";
import type { Readable } from "node:stream";
import { once } from "node:events";
import { writeFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { Session } from "node:inspector/promises";
import { monitorEventLoopDelay } from "node:perf_hooks";
import v8 from "node:v8";
import { serverSettingsAsEnvironment, WITHOUT_ABUSE_LIMITS } from "../src/config.js";
import { HeadwireServer } from "../src/server/headwire-server.js";
import { serveParent } from "./child.js";
import { FloorServer } from "./floor-server.js";

/** The seed's design (bench/seed-design/server.py, not compiled: read from the source tree). */
const SEED_SERVER = fileURLToPath(new URL("../../bench/seed-design/server.py", import.meta.url));

/** The command an operator runs (dist/bench/server-process.js → bin/headwire). */
const CLI = fileURLToPath(new URL("../../bin/headwire", import.meta.url));

interface HeadwireSettings {
  cacheFile: string;
  /** kind "workers": --workers N. */
  workers?: number;
  cacheMaxEntries?: number;
  idleTimeoutMs?: number;
  maxSessions?: number;
  /** The admin listener's address; "off" measures the server without metrics and the status board. */
  adminHttp?: string;
}

interface FloorSettings {
  greeting: string;
  ticketTemplate: string;
  /** base64 */
  chunk: string;
  udpRecvBufferBytes?: number;
}

/**
 * The CLI's ready news: with N > 1 the primary's line on stdout ("headwire server ready: control
 * tcp port P, data udp ports …, (N workers, pids …)"); with one process there is no primary, and
 * the server's own "ready" log record says it (JSON, on stderr or stdout as the logger is set).
 * Both streams are read, so either form is found wherever it is written; with N > 1 only the
 * primary's line counts (each worker logs a "ready" record of its own before it).
 */
function workersReady(
  server: ChildProcessByStdio<null, Readable, Readable>,
  workers: number,
): Promise<{ controlPort: number; workerPids: number[] }> {
  return new Promise((resolve, reject) => {
    let text = "";
    let found = false;
    // Kept reading after the ready news (a full pipe would block the server), but not kept.
    const look = (more: string) => {
      if (found) return;
      text += more;
      const primary = /control tcp port (\d+), data udp ports? [\d, ]*\d \(\d+ workers, pids ([\d, ]+)\)/.exec(text);
      const single = primary || workers > 1 ? null : /"event":"ready"[^\n]*?"controlPort":(\d+)/.exec(text);
      found = primary !== null || single !== null;
      if (primary) resolve({ controlPort: Number(primary[1]), workerPids: primary[2]!.split(", ").map(Number) });
      else if (single) resolve({ controlPort: Number(single[1]), workerPids: [] });
    };
    server.stdout.setEncoding("utf8").on("data", look);
    server.stderr.setEncoding("utf8").on("data", look);
    server.once("exit", (code) =>
      reject(new Error(`headwire server --workers exited ${code} before it was ready: ${text.slice(-500)}`)),
    );
  });
}

const kind = process.argv[2];
const settings = JSON.parse(process.argv[3] ?? "{}") as HeadwireSettings & FloorSettings;

const eventLoopDelay = monitorEventLoopDelay({ resolution: 10 });
eventLoopDelay.enable();

let stats: () => Promise<Record<string, unknown>>;
let profiler: Session | undefined;
let stop: () => Promise<void>;

if (kind === "headwire") {
  const server = await new HeadwireServer({
    host: "127.0.0.1",
    controlPort: 0,
    dataPort: 0,
    allowPrivate: true,
    // The load generator is one address and the bench origin one host: the abuse limits would
    // measure themselves. Throughput and cost are measured without them.
    ...WITHOUT_ABUSE_LIMITS,
    // The admin listener is on by default, so the figures include its metrics and status board
    // (nobody scraping or watching); on an ephemeral port, never a running server's.
    adminHttp: settings.adminHttp ?? "127.0.0.1:0",
    cacheFile: settings.cacheFile,
    ...(settings.cacheMaxEntries !== undefined ? { cacheMaxEntries: settings.cacheMaxEntries } : {}),
    ...(settings.idleTimeoutMs !== undefined ? { idleTimeoutMs: settings.idleTimeoutMs } : {}),
    ...(settings.maxSessions !== undefined ? { maxSessions: settings.maxSessions } : {}),
    log: () => {},
  }).start();
  stats = async () => {
    const { sessions, originFetches, data } = server.stats();
    return { sessions, cacheEntries: (await server.cacheStats()).entries, originFetches, data };
  };
  stop = () => server.stop();
  process.send?.({ ready: true, controlPort: server.controlPort, dataPort: server.dataPort });
} else if (kind === "workers") {
  // `headwire server --workers N` as an operator runs it (the CLI: a primary and N workers, or one
  // process for N = 1), so that the CPU of every process it is made of can be read from /proc.
  const server = spawn(
    process.execPath,
    [
      CLI,
      "server",
      "--host",
      "127.0.0.1",
      "-p",
      "0",
      "--data-port",
      "0",
      "--allow-private",
      "--workers",
      String(settings.workers ?? 1),
    ],
    {
      env: {
        ...process.env,
        ...serverSettingsAsEnvironment(WITHOUT_ABUSE_LIMITS),
        HEADWIRE_CACHE_FILE: settings.cacheFile,
      },
      stdio: ["ignore", "pipe", "pipe"],
    },
  );
  const ready = await workersReady(server, settings.workers ?? 1);
  const pids = [server.pid!, ...ready.workerPids];
  stats = () => Promise.resolve({ pids });
  stop = async () => {
    server.kill("SIGTERM");
    if (server.exitCode === null) await once(server, "exit");
  };
  process.send?.({ ready: true, controlPort: ready.controlPort, pids });
} else if (kind === "seed") {
  // The seed's design: a Python 3 process, a thread per client. Its CPU and memory are the Python
  // process's (ready.pids), not this wrapper's. stdin is a pipe so that it ends with this process.
  const seed = spawn("python3", [SEED_SERVER, "--host", "127.0.0.1", "--cache-file", settings.cacheFile], {
    stdio: ["pipe", "pipe", "inherit"],
  });
  const ready = await new Promise<RegExpExecArray>((resolve, reject) => {
    let text = "";
    seed.stdout.setEncoding("utf8").on("data", (more: string) => {
      text += more;
      const match = /SEED READY control=(\d+) data=(\d+)/.exec(text);
      if (match) resolve(match);
    });
    seed.once("error", reject);
    seed.once("exit", (code) => reject(new Error(`seed-design server exited ${code} before it was ready`)));
  });
  stats = () => Promise.resolve({ pids: [seed.pid!] });
  stop = async () => {
    seed.kill("SIGTERM");
    if (seed.exitCode === null && seed.signalCode === null) await once(seed, "exit");
  };
  process.send?.({ ready: true, controlPort: Number(ready[1]), dataPort: Number(ready[2]), pids: [seed.pid!] });
} else if (kind === "floor") {
  const floor = await FloorServer.start(
    "127.0.0.1",
    {
      greeting: Buffer.from(settings.greeting),
      ticketTemplate: settings.ticketTemplate,
      chunk: Buffer.from(settings.chunk, "base64"),
    },
    settings.udpRecvBufferBytes ?? 0,
  );
  stats = async () => ({ sessions: floor.sessionCount, ticketBytes: floor.ticketBytes });
  stop = () => floor.close();
  process.send?.({ ready: true, controlPort: floor.controlPort, dataPort: floor.dataPort });
} else {
  process.stderr.write(`server-process: unknown kind ${JSON.stringify(kind)} (headwire, workers, seed or floor)\n`);
  process.exit(2);
}

serveParent(async (request) => {
  switch (request.cmd) {
    case "stats": {
      const answer = {
        ...(await stats()),
        cpu: process.cpuUsage(),
        memory: process.memoryUsage(),
        eventLoopDelayMs: {
          mean: eventLoopDelay.mean / 1e6,
          p50: eventLoopDelay.percentile(50) / 1e6,
          p99: eventLoopDelay.percentile(99) / 1e6,
          max: eventLoopDelay.max / 1e6,
        },
      };
      if (request.reset) eventLoopDelay.reset();
      return answer;
    }
    case "gc": {
      const gc = (globalThis as { gc?: () => void }).gc;
      if (!gc) return { gc: false };
      gc();
      gc();
      return { gc: true, memory: process.memoryUsage() };
    }
    case "profile-start":
      profiler = new Session();
      profiler.connect();
      await profiler.post("Profiler.enable");
      await profiler.post("Profiler.start");
      return {};
    case "profile-stop": {
      if (!profiler) throw new Error("no profile running");
      const { profile } = await profiler.post("Profiler.stop");
      profiler.disconnect();
      profiler = undefined;
      writeFileSync(String(request.path), JSON.stringify(profile));
      return { path: request.path };
    }
    case "heap-snapshot":
      return { path: v8.writeHeapSnapshot(String(request.path)) };
    case "stop":
      await stop();
      // process.exit (not a kill) so that --cpu-prof writes its profile.
      setImmediate(() => process.exit(0));
      return {};
    default:
      throw new Error(`unknown command ${request.cmd}`);
  }
});
