/**
 * `headwire client --batch FILE`: every URL of a file, `jobs` queries in flight at once. Each job
 * pulls the next URL from one shared streaming reader, so memory and file descriptors stay bounded
 * (at most one UDP socket per job, one TCP session per `queriesPerSession` jobs) however long the
 * file is. The jobs of one session pipeline their queries on it (replies come in order); a lost
 * session is opened again once for all of them, and each asks its URL in flight again.
 */
import { createReadStream } from "node:fs";
import { stat } from "node:fs/promises";
import type { Readable } from "node:stream";
import { HeadwireError, toHeadwireError } from "../errors.js";
import type { HeadwireClient, QueryResult } from "../client/headwire-client.js";
// How a session may end without the batch's fault (each is worth a new session), shared with the
// prompt's session; a REPLY_TIMEOUT fails its URL, and the next one is asked on a new session.
import { RECONNECT_WAIT_CAP_MS, SESSION_ENDINGS } from "../client/reconnecting-session.js";
import type { QueryOptions } from "../http/query-options.js";
import { BatchTally } from "./batch-tally.js";
import { createProgress } from "./batch-progress.js";
import { ResultPrinter, visibleInLine, type OutputMode } from "./client-output.js";
import { EXIT, exitCodeFor } from "./exit-codes.js";
import { deliver, failsWithF, httpFailed } from "./output-target.js";
import { styleFor } from "./terminal-style.js";
import { checkUrl } from "./url-check.js";
import { MAX_URL_LINE_BYTES, readUrlLines, type UrlLine } from "./url-lines.js";

/** A session that ends the batch exits with its code's status (src/cli/exit-codes.ts): 7 or 56. */
export const BATCH_EXIT = {
  ok: EXIT.ok,
  queryFailed: EXIT.failed,
  usage: EXIT.usage,
  interrupted: EXIT.interrupted,
} as const;

export interface BatchOptions {
  /** A file path, or "-" for standard input. */
  source: string;
  /** Queries in flight at once. */
  jobs: number;
  /** Of those, how many one session carries (pipelined): sessions = ceil(jobs / queriesPerSession). */
  queriesPerSession: number;
  mode: OutputMode;
  progress: boolean;
  queryOptions: Partial<QueryOptions>;
  /** -f/--fail: a final status of 400 or more is a failure, and its header gets no file. */
  fail?: boolean;
  /** Opens one session; called once per job, when that job takes its first URL. */
  connect: () => Promise<HeadwireClient>;
  /** -s hides the summary line, and the failure lines unless -S (default: both shown). */
  shows?: { summary: boolean; errors: boolean };
  stdin?: NodeJS.ReadableStream;
  stdout?: NodeJS.WritableStream & { isTTY?: boolean };
  stderr?: NodeJS.WritableStream & { isTTY?: boolean };
}

export async function runBatch(options: BatchOptions): Promise<number> {
  const stdin = options.stdin ?? process.stdin;
  const stdout = options.stdout ?? process.stdout;
  const stderr = options.stderr ?? process.stderr;
  const errStyle = styleFor(stderr);

  let input: NodeJS.ReadableStream;
  let total: number | undefined;
  if (options.source === "-") input = stdin;
  else {
    try {
      const info = await stat(options.source);
      if (info.isDirectory()) throw Object.assign(new Error("is a directory"), { code: "EISDIR" });
      // A regular file can be read twice: once to count its URLs (for the bar), once to query them.
      if (info.isFile()) total = await countUrls(options.source);
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code ?? (error as Error).message;
      stderr.write(`headwire client: --batch ${options.source}: cannot read it (${code})\n`);
      return BATCH_EXIT.usage;
    }
    input = createReadStream(options.source);
  }

  const tally = new BatchTally();
  const progress = createProgress({ stream: stderr, total, enabled: options.progress });
  const printer = new ResultPrinter({
    mode: options.mode,
    stdout,
    errorLine: options.shows?.errors === false ? () => undefined : (text) => progress.log(text),
    outStyle: styleFor(stdout),
    errStyle,
    quietSuccess: true,
    labelHeaders: true,
  });
  const urls = readUrlLines(input as AsyncIterable<Buffer>);
  let fatal: HeadwireError | undefined;
  let readFailure: Error | undefined;
  let interrupted = false;
  const onInterrupt = () => {
    if (interrupted) {
      progress.stop(); // gives the cursor back on a terminal
      process.exit(BATCH_EXIT.interrupted);
    }
    interrupted = true;
    // Sessions waiting for a line (a pipe that stays open) stop waiting.
    (input as Readable).destroy();
    progress.log("interrupted: finishing the queries in flight (Ctrl-C again to quit at once)\n");
  };
  process.on("SIGINT", onInterrupt);

  let reconnectSaid = false;
  /**
   * A new session after the last one was lost: bounded attempts with a doubling wait (the
   * previous session's reconnectAttempts and reconnectBackoffMs). Said once per batch on stderr.
   * Throws the last failure when every attempt failed, or the loss itself when none is allowed.
   */
  const reconnect = async (lost: HeadwireError, config: HeadwireClient["config"]): Promise<HeadwireClient> => {
    const { reconnectAttempts, reconnectBackoffMs } = config;
    if (reconnectAttempts === 0) throw lost;
    if (!reconnectSaid) {
      reconnectSaid = true;
      progress.log(
        `headwire client: ${visibleInLine(lost.message)} (${lost.code}); connecting again ` +
          `(up to ${reconnectAttempts} attempts) and resuming the batch where it was\n`,
      );
    }
    let failure: HeadwireError = lost;
    const longest = Math.max(RECONNECT_WAIT_CAP_MS, reconnectBackoffMs);
    for (let attempt = 0; attempt < reconnectAttempts && !interrupted && !fatal; attempt++) {
      await new Promise((resolve) => setTimeout(resolve, Math.min(longest, reconnectBackoffMs * 2 ** attempt)));
      try {
        return await options.connect();
      } catch (error) {
        failure = toHeadwireError(error, "SERVER_UNREACHABLE");
      }
    }
    throw failure;
  };

  const started = performance.now();
  const shared: SharedSession[] = [];
  const job = async (_: unknown, index: number) => {
    // Jobs 0..q-1 share the first session, q..2q-1 the second, and so on.
    const slot = (shared[Math.floor(index / options.queriesPerSession)] ??= new SharedSession());
    slot.users++;
    let client: HeadwireClient | undefined;
    try {
      while (!fatal && !interrupted) {
        const next = await urls.next().catch((error: Error) => {
          if (!interrupted) readFailure ??= error;
          return { done: true as const, value: undefined };
        });
        if (next.done || readFailure) break;
        let result: QueryResult;
        // An over-long line is not sent; nor is a URL the client can tell is malformed.
        const checked = next.value.overlong ? overlongResult(next.value) : checkedUrl(next.value);
        if (typeof checked !== "string") result = checked;
        else {
          client = await slot.get(options.connect, reconnect);
          // A lost session throws (a server's answer, even an error, comes back as a result): the
          // URL in flight has no file yet, so it is asked again on a new session, and nothing
          // already recorded is asked twice; at most reconnectAttempts times, as sessions that
          // end at once would otherwise ask it forever.
          for (let asked = 1; ; asked++) {
            try {
              result = await client.query({
                url: checked,
                options: options.queryOptions,
                // With -f the status decides whether a file is written: after the answer.
                write: options.mode !== "print" && !options.fail,
              });
              if (options.fail) result = await failOrWrite(result, options.mode, client.config.outDir, stdout);
              // A stopping server answers a query it will not serve with SHUTTING_DOWN: not the
              // URL's failure, the session's end. A REPLY_TIMEOUT is this URL's failure (the
              // session it closed is replaced for the next URL).
              const code = result.error?.code;
              const ended = code !== undefined && code !== "REPLY_TIMEOUT" && SESSION_ENDINGS.has(code);
              if (!ended || asked > client.config.reconnectAttempts) break;
              throw new HeadwireError(result.error!.code, result.error!.message);
            } catch (error) {
              const lost = toHeadwireError(error, "CONNECTION_LOST");
              if (!SESSION_ENDINGS.has(lost.code) || interrupted || fatal) throw lost;
              if (asked > client.config.reconnectAttempts) {
                result = { url: checked, ms: 0, error: { code: lost.code, message: lost.message } };
                break;
              }
              client = await slot.replace(client, lost, reconnect);
            }
          }
        }
        tally.record(result);
        progress.update(tally);
        await printer.report(result);
      }
      await slot.release();
    } catch (error) {
      fatal ??= toHeadwireError(error, client ? "CONNECTION_LOST" : "SERVER_UNREACHABLE");
      client?.destroy();
    }
  };
  try {
    await Promise.all(Array.from({ length: options.jobs }, job));
  } finally {
    process.off("SIGINT", onInterrupt);
    progress.stop();
  }

  const summary = tally.summaryLine(
    performance.now() - started,
    options.mode === "lines" ? styleFor(stdout) : errStyle,
  );
  // Standard output carries data with --json and --print; the summary then goes to standard error.
  if (options.shows?.summary !== false) (options.mode === "lines" ? stdout : stderr).write(`${summary}\n`);
  if (readFailure) {
    stderr.write(`headwire client: --batch ${options.source}: reading failed: ${readFailure.message}\n`);
    if (!fatal) return BATCH_EXIT.usage;
  }
  if (fatal) {
    if (options.shows?.errors !== false)
      stderr.write(`headwire client: ${visibleInLine(fatal.message)} (${fatal.code}) — ${fatal.advice}
`);
    // PERSIST_FAILED comes after every answer (at TERMINATE): a failed step (1), not a lost session (56).
    return exitCodeFor(fatal.code);
  }
  if (interrupted) return BATCH_EXIT.interrupted;
  return tally.failed > 0 ? BATCH_EXIT.queryFailed : BATCH_EXIT.ok;
}

type Reconnect = (lost: HeadwireError, config: HeadwireClient["config"]) => Promise<HeadwireClient>;

/** One session shared by several jobs of a batch (their queries pipelined on it). */
class SharedSession {
  users = 0;
  private client: HeadwireClient | undefined;
  private opening: Promise<HeadwireClient> | undefined;

  /**
   * The open session: the first one (`connect`), or after the last one ended between two queries
   * (an idle timeout, a server stopping) a new one with `reconnect`'s bounded, backed-off attempts.
   */
  get(connect: () => Promise<HeadwireClient>, reconnect: Reconnect): Promise<HeadwireClient> {
    const current = this.client;
    if (current && !current.lost) return Promise.resolve(current);
    if (current?.lost) return this.replace(current, current.lost, reconnect);
    return (this.opening ??= this.open(connect));
  }

  /** `old` ended with `lost`: a new session, opened once for every job that shared it. */
  replace(old: HeadwireClient, lost: HeadwireError, reconnect: Reconnect): Promise<HeadwireClient> {
    if (this.client === old) {
      this.client = undefined;
      old.destroy();
      this.opening ??= this.open(() => reconnect(lost, old.config));
    }
    if (this.opening) return this.opening;
    // Opening a new one failed (the batch ends with that failure): so does this job.
    if (!this.client) return Promise.reject(lost);
    if (!this.client.lost) return Promise.resolve(this.client);
    // The session that replaced `old` has ended too: the next one, from it.
    return this.replace(this.client, this.client.lost, reconnect);
  }

  async release(): Promise<void> {
    if (--this.users > 0) return;
    await this.client?.terminate();
  }

  private async open(connect: () => Promise<HeadwireClient>): Promise<HeadwireClient> {
    try {
      this.client = await connect();
      return this.client;
    } finally {
      this.opening = undefined;
    }
  }
}

async function countUrls(path: string): Promise<number> {
  let count = 0;
  const lines = readUrlLines(createReadStream(path));
  while (!(await lines.next()).done) count++;
  return count;
}

/** -f in a batch: HTTP_FAILED for a status of 400 or more, else the file written (unless --print). */
async function failOrWrite(
  result: QueryResult,
  mode: OutputMode,
  outDir: string,
  stdout: NodeJS.WritableStream,
): Promise<QueryResult> {
  if (failsWithF(result)) return httpFailed(result);
  if (mode === "print" || result.error) return result;
  return deliver(result, { print: false, outDir, fail: false }, stdout);
}

/** The URL to send (src/cli/url-check.ts), or its INVALID_URL result naming the line. */
function checkedUrl(line: UrlLine): string | QueryResult {
  try {
    return checkUrl(line.url);
  } catch (error) {
    if (!(error instanceof HeadwireError)) throw error;
    return { url: line.url, ms: 0, error: { code: error.code, message: `line ${line.lineNumber}: ${error.message}` } };
  }
}

function overlongResult(line: UrlLine): QueryResult {
  return {
    url: line.url,
    ms: 0,
    error: {
      code: "LINE_TOO_LONG",
      message: `line ${line.lineNumber} is longer than ${MAX_URL_LINE_BYTES} bytes and was not sent`,
    },
  };
}
