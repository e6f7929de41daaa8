/** Runs bin/headwire as a child process, as a user or a script would, and collects what it prints. */
import { spawn, type ChildProcess } from "node:child_process";
import { fileURLToPath } from "node:url";
import { TEST_SERVER_ENV } from "../helpers.js";

export const BIN = fileURLToPath(new URL("../../../bin/headwire", import.meta.url));

export interface CliRun {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  /** Standard output as bytes, for --print. */
  stdoutBytes: Buffer;
  stderr: string;
  /** Wall time of the whole run, in milliseconds. */
  ms: number;
}

export function runCli(
  args: string[],
  options: { cwd: string; stdin?: string | Buffer; env?: NodeJS.ProcessEnv; onSpawn?: (pid: number) => void },
): Promise<CliRun> {
  const started = performance.now();
  const child = spawn(process.execPath, [BIN, ...args], {
    cwd: options.cwd,
    env: { ...process.env, NO_COLOR: "1", HEADWIRE_HISTORY: "", HEADWIRE_ADMIN_HTTP: "127.0.0.1:0", ...options.env },
  });
  if (child.pid !== undefined) options.onSpawn?.(child.pid);
  const out: Buffer[] = [];
  let stderr = "";
  child.stdout.on("data", (chunk: Buffer) => out.push(chunk));
  child.stderr.setEncoding("utf8").on("data", (text: string) => (stderr += text));
  child.stdin.end(options.stdin ?? "");
  return new Promise((resolve) =>
    child.on("close", (code, signal) => {
      const stdoutBytes = Buffer.concat(out);
      resolve({
        code,
        signal,
        stdout: stdoutBytes.toString("utf8"),
        stdoutBytes,
        stderr,
        ms: performance.now() - started,
      });
    }),
  );
}

export interface ServerProcess {
  child: ChildProcess;
  port: number;
  adminPort: number | undefined;
  stderr: () => string;
  stdout: () => string;
}

/** Starts `headwire server` (loopback, ephemeral ports) as a child process and waits for its ready line. */
export function spawnServer(dir: string, extra: string[] = [], env: NodeJS.ProcessEnv = {}): Promise<ServerProcess> {
  return spawnServerWith(
    dir,
    ["--host", "127.0.0.1", "--port", "0", "--data-port", "0", "--allow-private", ...extra],
    env,
  );
}

/** Starts `headwire server ARGS` (the caller says where it listens: a config file may) and waits for its ready line. */
export async function spawnServerWith(
  dir: string,
  args: string[],
  env: NodeJS.ProcessEnv = {},
): Promise<ServerProcess> {
  const child = spawn(process.execPath, [BIN, "server", ...args], {
    cwd: dir,
    env: { ...process.env, ...TEST_SERVER_ENV, ...env },
  });
  let stdout = "";
  let stderr = "";
  child.stdout.setEncoding("utf8").on("data", (text: string) => (stdout += text));
  child.stderr.setEncoding("utf8");
  const ready = await new Promise<ReadyLine>((resolve, reject) => {
    child.stderr.on("data", (text: string) => {
      stderr += text;
      const found = readyLine(stderr);
      if (found) resolve(found);
    });
    child.on("exit", (code) => reject(new Error(`server exited ${code}: ${stderr}`)));
  });
  return { child, port: ready.controlPort, adminPort: ready.adminPort, stderr: () => stderr, stdout: () => stdout };
}

export interface ReadyLine {
  controlPort: number;
  dataPort: number;
  /** The admin listener's port; undefined when it is off. */
  adminPort: number | undefined;
}

/** The ports in the server's "ready" log line, once it has been written. */
export function readyLine(stderr: string): ReadyLine | undefined {
  const match = /listening: control tcp \S+ port (\d+), data udp port (\d+)(?:, admin http \S+:(\d+))?/.exec(stderr);
  if (!match) return undefined;
  return {
    controlPort: Number(match[1]),
    dataPort: Number(match[2]),
    adminPort: match[3] === undefined ? undefined : Number(match[3]),
  };
}
