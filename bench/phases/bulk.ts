/**
 * Bulk (issue 13): 10,000 distinct URLs of a Debian nginx, one header file per URL, fetched by
 * `headwire client --batch` through a headwire server (its cache cold, then warm) and by
 * `curl --parallel --parallel-max 64` straight from nginx, in the same run, taking turns, the
 * median of a few runs each. Every method must leave exactly one whole file per URL: a run that
 * does not is reported as failed, never timed.
 */
import { execFile, spawn, spawnSync, type ChildProcess } from "node:child_process";
import { once } from "node:events";
import { chmodSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import os from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { fixed } from "../format.js";
import type { BenchHarness } from "../harness.js";
import { log } from "../harness.js";
import { HOST } from "../line-client.js";
import type { BulkResult } from "../results.js";

const CLIENT_SCRIPT = join(dirname(fileURLToPath(import.meta.url)), "..", "..", "src", "cli", "main.js");
const NGINX = ["/usr/sbin/nginx", "nginx"].find((path) => !spawnSync(path, ["-v"]).error);
/** curl's --parallel-max, and the client's -j: the same concurrency on both sides. */
export const BULK_PARALLEL = 64;
/** One batch (or one curl run) of 10,000 URLs may take this long on a loaded machine, at most. */
const RUN_TIMEOUT_MS = 300_000;

export async function runBulk(bench: BenchHarness): Promise<BulkResult> {
  const { bulkUrls: count, bulkRuns: runs } = bench.options;
  const missing = [NGINX ? undefined : "nginx", curlInstalled() ? undefined : "curl"].filter(Boolean);
  if (missing.length > 0) {
    log(`bulk: ${missing.join(" and ")} NOT installed: the phase is skipped (apt-get install nginx curl)`);
    return {
      urls: count,
      runs: 0,
      parallel: BULK_PARALLEL,
      missing: missing.join(", "),
      curlMs: [],
      warmMs: [],
      coldMs: [],
    };
  }
  const dir = mkdtempSync(join(os.tmpdir(), "headwire-bulk-"));
  const nginx = await startNginx(dir);
  try {
    const urls = Array.from({ length: count }, (_, i) => `${HOST}:${nginx.port}/bulk/${i}`);
    writeFileSync(join(dir, "urls.txt"), `${urls.join("\n")}\n`);
    // One section per URL (`next` between them): -D is per section, so each URL gets its own file.
    const curlConfig = (out: string): string => {
      const sections = urls.map(
        (url, i) => `url = "http://${url}"\noutput = "/dev/null"\ndump-header = "${join(out, `${i}.txt`)}"\n`,
      );
      const path = `${out}.cfg`;
      writeFileSync(path, sections.join("next\n"));
      return path;
    };
    const result: BulkResult = {
      urls: count,
      runs,
      parallel: BULK_PARALLEL,
      curlMs: [],
      warmMs: [],
      coldMs: [],
      loadAverages: [],
    };
    for (let run = 1; run <= runs; run++) {
      result.loadAverages!.push(os.loadavg()[0]!);
      const curlOut = fresh(join(dir, `curl-out-${run}`));
      const config = curlConfig(curlOut);
      result.curlMs.push(
        await timed(count, curlOut, "curl", [
          "-q",
          "--no-progress-meter",
          "--parallel",
          "--parallel-max",
          String(BULK_PARALLEL),
          "--config",
          config,
        ]),
      );
      // A new server each run: the first batch finds its cache empty (cold), the second full (warm).
      const server = await bench.startServer("headwire", [], { cacheMaxEntries: 2 * count });
      try {
        const batch = (out: string) => [
          CLIENT_SCRIPT,
          "client",
          "--server",
          `${HOST}:${String(server.ready.controlPort)}`,
          "--batch",
          join(dir, "urls.txt"),
          "-j",
          String(BULK_PARALLEL),
          "--output-dir",
          out,
          "--no-progress",
        ];
        const coldOut = fresh(join(dir, `cold-out-${run}`));
        result.coldMs.push(await timed(count, coldOut, process.execPath, batch(coldOut)));
        const warmOut = fresh(join(dir, `warm-out-${run}`));
        result.warmMs.push(await timed(count, warmOut, process.execPath, batch(warmOut)));
      } finally {
        await bench.stopServer(server);
      }
      log(
        `bulk run ${run}/${runs} (load ${result.loadAverages!.at(-1)!.toFixed(2)}): curl ` +
          `${fixed(result.curlMs.at(-1)! / 1000)} s, headwire cold ` +
          `${fixed(result.coldMs.at(-1)! / 1000)} s, warm ${fixed(result.warmMs.at(-1)! / 1000)} s`,
      );
    }
    return result;
  } finally {
    await stopNginx(nginx.process);
    rmSync(dir, { recursive: true, force: true });
  }
}

function curlInstalled(): boolean {
  return !spawnSync("curl", ["--version"]).error;
}

/**
 * A new, empty output directory. Nothing is deleted between the timed runs (every run writes to
 * directories of its own, all removed at the end): ext4 scans recently deleted inodes on every
 * file it creates for some 30 s after a deletion (recently_deleted() in its inode allocator), and
 * a run right after 10,000 deletions spent a fifth of its time there (seen with perf).
 */
function fresh(path: string): string {
  mkdirSync(path, { recursive: true });
  return path;
}

/** Runs a command to its end and returns its wall time in ms; it must have written `count` files. */
async function timed(count: number, out: string, command: string, args: string[]): Promise<number> {
  const started = performance.now();
  await new Promise<void>((resolve, reject) => {
    execFile(command, args, { timeout: RUN_TIMEOUT_MS, maxBuffer: 64 << 20 }, (error, _stdout, stderr) => {
      if (error) reject(new Error(`${command} ${args[0]}: ${error.message}\n${stderr.slice(-2000)}`));
      else resolve();
    });
  });
  const ms = performance.now() - started;
  const files = readdirSync(out).filter((name) => !name.endsWith(".part")).length;
  if (files !== count) throw new Error(`bulk: ${command} left ${files} header files in ${out}, not ${count}`);
  return ms;
}

async function freePort(): Promise<number> {
  const probe = createServer().listen(0, HOST);
  await once(probe, "listening");
  const { port } = probe.address() as { port: number };
  await new Promise((resolve) => probe.close(resolve));
  return port;
}

/** nginx serving a small header for every path: 204 and a Cache-Control the server's cache keeps. */
async function startNginx(dir: string): Promise<{ port: number; process: ChildProcess }> {
  const port = await freePort();
  // nginx's workers run as an unprivileged user.
  chmodSync(dir, 0o755);
  writeFileSync(
    join(dir, "nginx.conf"),
    `worker_processes 1;
pid ${dir}/nginx.pid;
error_log ${dir}/error.log;
events { worker_connections 1024; }
http {
  access_log off;
  client_body_temp_path ${dir}/tmp-body; proxy_temp_path ${dir}/tmp-proxy; fastcgi_temp_path ${dir}/tmp-fcgi;
  uwsgi_temp_path ${dir}/tmp-uwsgi; scgi_temp_path ${dir}/tmp-scgi;
  server {
    listen ${HOST}:${port};
    location / { add_header Cache-Control "public, max-age=3600"; return 204; }
  }
}
`,
  );
  const child = spawn(NGINX!, ["-p", dir, "-c", join(dir, "nginx.conf"), "-g", "daemon off;"], { stdio: "ignore" });
  const deadline = Date.now() + 10_000;
  for (;;) {
    const ok = await new Promise<boolean>((resolve) =>
      execFile("curl", ["-q", "-s", "-o", "/dev/null", `http://${HOST}:${port}/`], (error) => resolve(!error)),
    );
    if (ok) return { port, process: child };
    if (child.exitCode !== null || Date.now() > deadline) {
      child.kill("SIGTERM");
      throw new Error(`bulk: nginx did not start (see ${dir}/error.log)`);
    }
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/** SIGTERM: the master stops its workers too (SIGKILL would leave them orphaned). */
async function stopNginx(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = once(child, "exit");
  child.kill("SIGTERM");
  await exited;
}
