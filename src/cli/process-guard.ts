/**
 * What every command does with a closed output and with an error nobody caught: one handler for
 * the whole program (installed by main.ts), so no command prints a stack trace to a user.
 *
 * A closed output: `headwire cache list | head -1` — head reads its line and exits, and the next
 * write meets EPIPE. Node ignores SIGPIPE, so the write fails with an 'error' event instead, which
 * unhandled ends the process with a stack trace. The reader has what it wanted: the command stops
 * quietly with the status it has so far (0 unless it already failed), as a shell tool killed by
 * SIGPIPE would have stopped, but without the scary status. A long-running server instead drops
 * the lines it cannot write and goes on (keepRunningWhenOutputCloses).
 *
 * An uncaught error: one line with its code (INTERNAL_ERROR for a bug of ours), exit 70
 * (EX_SOFTWARE, sysexits.h); HEADWIRE_DEBUG=1 shows the stack as well.
 */
import { isExpectedError, isHeadwireError } from "../errors.js";

/** Exit status for a bug of ours (EX_SOFTWARE in sysexits.h); bin/headwire uses it when dist/ is missing. */
export const INTERNAL_ERROR_EXIT = 70;
/** Exit status for an expected failure (a named error) that reached the top without its command catching it. */
const UNCAUGHT_FAILURE_EXIT = 1;

type ClosedOutputPolicy = "exit" | "drop";
let policy: ClosedOutputPolicy = "exit";

/** Installs the handlers; main.ts calls it once, before any command runs. */
export function guardProcess(env: NodeJS.ProcessEnv = process.env): void {
  for (const stream of [process.stdout, process.stderr]) {
    stream.on("error", (error: NodeJS.ErrnoException) => onOutputError(error, env));
  }
  process.on("uncaughtException", (error) => reportUncaught(error, env));
  // A rejection nobody awaited is thrown as an uncaught exception (Node's default, --unhandled-rejections=throw).
}

/**
 * `headwire server 2>&1 | tee log`, then Ctrl-C: tee dies first, and the server's next line meets
 * a closed pipe. Ending there would stop the server in the middle of its shutdown (a temporary
 * file and the lock left). The log is only a witness: lines that cannot be written are dropped,
 * and the server stops as it would have.
 */
export function keepRunningWhenOutputCloses(): void {
  policy = "drop";
}

function isClosedOutput(error: NodeJS.ErrnoException): boolean {
  // EPIPE: the reader is gone; ERR_STREAM_DESTROYED: a write after Node itself closed the stream.
  return error.code === "EPIPE" || error.code === "ERR_STREAM_DESTROYED";
}

function onOutputError(error: NodeJS.ErrnoException, env: NodeJS.ProcessEnv): void {
  if (isClosedOutput(error)) {
    if (policy === "exit") process.exit(Number(process.exitCode ?? 0));
    return;
  }
  reportUncaught(error, env);
}

/** Also for a command that catches an error it did not expect: the same one line. */
export function reportUncaught(error: unknown, env: NodeJS.ProcessEnv = process.env): void {
  // A command with its own last-resort handler (the server persists its cache and releases its
  // lock first) takes over.
  if (process.listenerCount("uncaughtException") > 1) return;
  if (error && typeof error === "object" && isClosedOutput(error as NodeJS.ErrnoException)) {
    if (policy === "exit") process.exit(Number(process.exitCode ?? 0));
    return;
  }
  const expected = isExpectedError(error);
  const code = isHeadwireError(error) ? error.code : expected ? (error as Error).name : "INTERNAL_ERROR";
  const message = error instanceof Error ? error.message : String(error);
  const debug = env.HEADWIRE_DEBUG === "1" && error instanceof Error && error.stack ? `\n${error.stack}` : "";
  const hint = expected || debug ? "" : " — a bug in headwire; HEADWIRE_DEBUG=1 shows where";
  writeQuietly(`headwire: ${oneLine(message)} (${code})${hint}${debug}\n`);
  process.exit(expected ? UNCAUGHT_FAILURE_EXIT : INTERNAL_ERROR_EXIT);
}

function oneLine(text: string): string {
  return text.replace(/[\u0000-\u001f\u007f]+/g, " ").trim();
}

/** The last words must not fail in turn (a closed standard error). */
function writeQuietly(text: string): void {
  try {
    process.stderr.write(text);
  } catch {
    // Nowhere left to say it.
  }
}
