/** Runs bin/headwire as a child process, as a user or a script would, and collects what it prints. */
import { spawn } from "node:child_process";
import { fileURLToPath } from "node:url";

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
    env: { ...process.env, NO_COLOR: "1", HEADWIRE_HISTORY: "", ...options.env },
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
