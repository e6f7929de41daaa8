import { createInterface } from "node:readline";
import { Command, InvalidArgumentError, Option } from "commander";
import {
  CLIENT_SETTINGS,
  DEFAULT_CLIENT_CONFIG,
  DEFAULT_DATA_PORT,
  resolveClientConfig,
  type ClientConfig,
} from "../config.js";

type ClientSettings = typeof CLIENT_SETTINGS;
import { ConfigError, HeadwireError, toHeadwireError } from "../errors.js";
import { HeadwireClient } from "../client/headwire-client.js";
import { ReconnectingSession } from "../client/reconnecting-session.js";
import { VERSION } from "../version.js";
import type { QueryResult } from "../client/headwire-client.js";
import { runBatch } from "./client-batch.js";
import { ResultPrinter, visibleInLine, type OutputMode } from "./client-output.js";
import { END_WORDS, historyFilePath, runPrompt } from "./client-prompt.js";
import { addCurlOptions, outputTargetOf, queryOptionsOf, showsErrors, type CurlFlags } from "./curl-options.js";
import { EXIT, exitCodeFor, exitOfResult, exitStatusHelp } from "./exit-codes.js";
import { deliver, headersOnStdout, targetProblem } from "./output-target.js";
import { checkUrl } from "./url-check.js";
import { hostAndPort, integer } from "./parse.js";
import { addQueryFlags, QUERY_FLAGS_HELP, queryOptionsFromFlags, type QueryFlagValues } from "./query-flags.js";
import { addSettingOptions, type GivenSettings } from "./setting-options.js";
import { styleFor } from "./terminal-style.js";
import { verboseTrace } from "./verbose-trace.js";

/** Exit codes of `headwire client` that are not a query's: the rest is src/cli/exit-codes.ts. */
export const CLIENT_EXIT = {
  ok: EXIT.ok,
  queryFailed: EXIT.failed,
  usage: EXIT.usage,
  interrupted: EXIT.interrupted,
} as const;

export const MAX_JOBS = 1000;
const DEFAULT_JOBS = 8;

function jobs(value: string): number {
  const n = integer(value);
  if (n < 1 || n > MAX_JOBS) throw new InvalidArgumentError(`must be from 1 to ${MAX_JOBS}`);
  return n;
}

/**
 * The program's settings are copied onto each command (main.ts); the client keeps a short hint
 * after a usage error rather than its whole manual.
 */
class ClientCommand extends Command {
  override copyInheritedSettings(source: Command): this {
    super.copyInheritedSettings(source);
    return this.showHelpAfterError("(headwire client --help shows every option, with examples)");
  }
}

export function clientCommand(): Command {
  const command = new ClientCommand("client")
    .summary("query a headwire server, one URL at a time or a file of them")
    .description(
      "Open a session with a headwire server and ask it for the HTTP response header of each URL. Each " +
        "header is written, byte for byte as the origin sent it, to a file in the output directory (or " +
        "where -o says), and summed up in one line: status line | bytes | cache outcome | milliseconds | " +
        "file. The flags curl has mean what they mean in curl: -I, -L, --max-redirs, -f, -o, -D, -s, -S, -v.",
    )
    .usage("[options] [URL...]\n       headwire client [options] --batch FILE")
    .argument("[URL...]", "URLs to query; the session ends after them")
    .addOption(
      // Long only: -s is curl's --silent, and curl users type it meaning that.
      new Option("--server <host:port>", "server to use; [v6addr]:port for IPv6 (a bare v6addr: port 50366)")
        .env("HEADWIRE_SERVER")
        .default(`${DEFAULT_CLIENT_CONFIG.serverHost}:${DEFAULT_CLIENT_CONFIG.serverPort}`),
    );
  // The client's settings that have a flag (src/config/settings.ts): --output-dir and the timeouts.
  const readSettings = addSettingOptions(command, CLIENT_SETTINGS);
  addCurlOptions(command);
  return addQueryFlags(command)
    .option("-b, --batch <file>", "query every URL in FILE, one a line (- reads standard input)")
    .addOption(
      new Option(
        "-j, --jobs <n>",
        `with --batch: queries in flight at once, --queries-per-session on each session (1-${MAX_JOBS})`,
      )
        .argParser(jobs)
        .default(DEFAULT_JOBS),
    )
    .addOption(new Option("--json", "print one JSON object a line per query, for scripts").conflicts("print"))
    .option("--print", "write each header to standard output instead of a file")
    .option("--no-progress", "with --batch: no progress bar or progress lines")
    .addOption(
      new Option("--chain <which>", "with -L: deliver every hop's header, or the last")
        .choices(["all", "last"])
        .default("all"),
    )
    .option(
      "--udp-via <host:port>",
      `send UDP requests there instead of where tickets say (a relay such as headwire relay, a port forward; port ${DEFAULT_DATA_PORT} if none)`,
    )
    .option("-v, --verbose", "show every control line and datagram on standard error, as curl -v does")
    .version(VERSION, "-V, --version", "print the version and exit")
    .addHelpText("after", QUERY_FLAGS_HELP + CLIENT_HELP)
    .action(async (urls: string[], opts: ClientOptions, self: Command) => {
      process.exitCode = await runClient(urls, opts, readSettings(self));
    });
}

const CLIENT_HELP = `
WHERE THE URLS COME FROM
  URL arguments    each is queried in turn, then the session ends
  --batch FILE     every line of FILE (- for standard input), --jobs queries at once
  a terminal       an interactive prompt with line editing and history (see PROMPT)
  a pipe or file   one URL a line from standard input, until its end or a line "terminate"

OUTPUT
  By default each query prints one line on standard output, and each error one line on
  standard error with its stable code and what to do about it:
    HTTP/1.1 301 Moved Permanently | 713 bytes | MISS | 12 ms | www.twitch.tv.txt
    ftp://x/: error UNSUPPORTED_SCHEME: unsupported scheme "ftp": use http or https — Only http and https URLs can be fetched.
  --json prints instead, on standard output, one object a line with exactly these fields:
    {"url":"www.twitch.tv","file":"www.twitch.tv.txt","status":301,"bytes":713,"cache":"MISS","ms":12,"error":null,"exit":0}
    {"url":"ftp://x/","file":null,"status":null,"bytes":null,"cache":null,"ms":1,
     "error":{"code":"UNSUPPORTED_SCHEME","message":"unsupported scheme \\"ftp\\": use http or https"},"exit":1}
  file is where the header was written; status is the final response's status code (null on
  error, except with -f, where the status is the failure); cache is HIT, MISS, STALE or
  REVALIDATED; ms is the whole query, delivery and file included; exit is the exit status this
  query alone would give (see EXIT STATUS).
  Colours are used on a terminal unless NO_COLOR is set.

WHERE THE HEADER GOES (as curl's body: headwire's response is a header)
  default            a file per URL in --output-dir DIR (. by default), named as FILE NAMES says
  -o FILE            the one URL's header to FILE (refused with several URLs or --batch: use
                     --output-dir); a FILE that is a directory fails (WRITE_FAILED), never written into
  -o - / --print     to standard output, no file (control characters shown as \\xHH on a terminal)
  -D FILE / -D -     the header to FILE (or standard output) as well, as curl -D; one URL for a FILE
  -f, --fail         a final status of 400 or more is a failure (HTTP_FAILED, exit 22): as curl -f,
                     nothing goes where -o or --output-dir says, but -D still gets the header
  -s, --silent       no summary lines and no error lines (the exit status still tells; --json
                     records are still printed); -S, --show-error brings the error lines back.
                     With --batch, -s also turns off the progress bar and the summary line. Usage
                     errors always show.
  With a header on standard output (-o -, --print, -D -) no summary line is printed there.
  With --batch, -o - and -D - are --print (each header after a "==> URL <==" line, no files);
  -o FILE and -D FILE take one URL argument.

REDIRECTS AND METHOD
  -L, --location     follow redirects (301, 302, 303, 307, 308) up to --max-redirs (default 20,
                     the server's limit; curl's default is 50); still redirected after that:
                     TOO_MANY_REDIRECTS, exit 47. Without -L a redirect is delivered as it is.
  --chain all|last   with -L: deliver every hop's header in order (the default, as curl -L -D -
                     shows them), or the last one only
  -I, --head         ask with HEAD (the same as --method HEAD)

URLS
  Each URL is checked before it is sent: spaces and the other characters browsers
  percent-encode (", <, >, \`, and ' in a query) are encoded in the path, query and fragment;
  a URL no browser would accept is refused (INVALID_URL, exit 3) with where it is wrong:
    http://a b:x/: error INVALID_URL: bad URL "http://a b:x/": the port "x" is not a number (column 12)
  An argument that starts with "-" is an option, never a URL.

FILE NAMES
  A header is written to <output-dir>/<name>.txt, where <name> is the URL as sent (as typed, but
  percent-encoded as URLS says) with "http://"
  dropped ("https://" becomes "https_"), made safe on every common file system: characters
  outside [A-Za-z0-9._-] become "_"; names starting with "." or "-", and Windows device names
  (CON, NUL, COM1...), get a "_" in front; a name over 200 bytes is cut. Whenever anything was
  replaced or cut, "~" and 16 hex digits of the URL's SHA-256 are added, so distinct URLs never
  share a file. Examples:
    www.twitch.tv                  → www.twitch.tv.txt
    https://example.com/a?b=1      → https_example.com_a_b_1~<hash>.txt
    example.com/../../etc/passwd   → example.com_.._.._etc_passwd~<hash>.txt
  A file appears only once its header has arrived whole and matched its SHA-256 (it is written
  to a temporary file, then renamed). The full rule is in src/client/file-name.ts.

PROMPT
  On a terminal, without URL arguments or --batch, the client shows a prompt:
    <URL>        query it                      last       show the last header in full
    help         list the commands             terminate  end the session (or exit, quit, Ctrl-D)
  Left/Right, Home/End, Ctrl-W and Ctrl-U edit the line; Up/Down recall earlier lines, kept
  between runs in ~/.headwire_history (HEADWIRE_HISTORY). Ctrl-C clears the line; twice on an
  empty line it ends the session.

SESSIONS THAT RECOVER
  The prompt, a pipe and URL arguments keep their session: after IDLE_TIMEOUT, SHUTTING_DOWN
  (a server restarting) or a lost connection the client connects again, with back-off
  (--reconnect-attempts, --reconnect-backoff-ms), says each attempt on standard error and asks
  the query that was in flight again:
    * connection lost (the server is shutting down or restarting); connecting again in 0.2 s (attempt 1 of 8)
    * connected again to headwire/0.1.0
  Only when every attempt fails does it give up: the prompt says so and stays (the next URL
  tries again); a pipe or URL arguments stop (exit status 7 or 56). While it waits for input
  it sends PING, a third of the server's idle timeout apart (its greeting says it), or
  --keep-alive-ms.
  A reply that does not come within --reply-timeout-ms fails its query (REPLY_TIMEOUT) and
  closes the session, as a late reply would be taken for the next query's; the next query
  connects again. A peer that is not a headwire server (no greeting within
  --greeting-timeout-ms, or another protocol's first bytes) ends at once with NOT_HEADWIRE.

BATCH
  --batch FILE reads FILE as it goes (never whole into memory): one URL a line; blank lines and
  lines starting with # are skipped. --jobs queries (8 by default) are in flight at once, pipelined
  --queries-per-session (8) on each session: -j 64 opens 8 sessions. Standard error shows a progress bar on a terminal, else a
  line at every tenth of the file and every 10 s. Failures are printed one line each as they
  happen; succeeded queries print nothing (their files are the result; use --json for a line
  each). At the end one summary line, on standard output (standard error with --json or --print):
    10000 queries: 9998 succeeded, 2 failed (DNS_NOT_FOUND 2) | HIT 9000 MISS 998 | p50 3 ms p95 9 ms | 4.1 s
  p50 and p95 are the latency percentiles of the succeeded queries. Ctrl-C stops taking new URLs,
  lets the queries in flight finish and prints the summary; a second Ctrl-C quits at once.
  A lost session connects again (--reconnect-attempts, with back-off) and the batch resumes
  where it was; only when every attempt fails does it stop (exit status 7, or 56 when the
  session was lost). With --print each
  header follows a line "==> URL <==".

VERBOSE
  -v shows on standard error what crosses the wire, as curl -v does: "> " sent, "< " received,
  "* " notes. Control lines as they are; datagrams with their sizes, addresses (local → remote),
  chunk ranges, retransmissions and the round-trip estimate. Standard output does not change.
    * TCP connected 127.0.0.1:57701 → 127.0.0.1:50366
    < HEADWIRE/2 READY headwire/0.1.0 idle=300000
    > QUERY www.twitch.tv
    < TICKET token=9f… udp=127.0.0.1:50367 bytes=713 chunks=1 cache=MISS status=301 sha256=…
    > UDP REQUEST 1 chunks 0 (36 B, 127.0.0.1:64484 → 127.0.0.1:50367, window 10, rtt none yet, …)
    < UDP CHUNK 1/1 (757 B, 127.0.0.1:50367 → 127.0.0.1:64484, 713 of the header at 0, request 1, …)
    * UDP header complete: 1 chunks in 1 requests, 0 duplicates, 0 rejected, …; SHA-256 matches

ENVIRONMENT
  HEADWIRE_SERVER    default for --server (an IPv6 address with a port needs brackets:
                     [::1]:50366; a bare ::1 means port 50366)
  HEADWIRE_HISTORY   the prompt's history file (default ~/.headwire_history); empty: none kept
  NO_COLOR           when set and not empty, no colours
  HEADWIRE_DEBUG     1: an unexpected error also shows its stack (it is one line otherwise)

EXIT STATUS
  Numbered as curl numbers the same classes (src/cli/exit-codes.ts). With one URL argument the
  status is that query's; with several URLs, standard input, the prompt or --batch it is 1 when
  any query failed (each --json record's "exit" says which class). A server that cannot be
  reached is 7 and a lost session 56, in every mode, as curl's for a proxy (the server stands
  where curl's proxy would); a server that is not a headwire server (NOT_HEADWIRE) is 7 too,
  and a lost session only once every attempt to connect again failed. A closed standard output
  (headwire client --json ... | head -1) ends the client quietly; a bug in headwire is one
  line with its code and exit status 70 (HEADWIRE_DEBUG=1 shows the stack).
${exitStatusHelp()}

EXAMPLES
  headwire client www.twitch.tv                     # writes ./www.twitch.tv.txt
  headwire client --server [::1]:50366 -o example.txt https://example.com/
  headwire client -sS -f -L -D - https://example.com/ || echo "failed: $?"
  headwire client                                   # the prompt, on a terminal
  printf 'a.example\\nb.example/x?y=1\\n' | headwire client
  headwire client --batch urls.txt -j 32 --output-dir headers
  headwire client --batch urls.txt --json > results.jsonl
  jq -r 'select(.error) | .url' results.jsonl       # the URLs that failed
  grep -v '^#' urls.txt | headwire client --batch - --no-progress
  headwire client --print -L --max-redirs 5 --chain last http://example.com/ | grep -i '^location:'
  headwire client -v www.twitch.tv 2>trace.txt      # the whole exchange, line by line

SEE ALSO
  headwire server --help; docs/protocol.md for the protocol and its error codes.`;

/** The options that are not client settings; those are read from CLIENT_SETTINGS. */
interface ClientOptions extends CurlFlags, QueryFlagValues {
  server: string;
  batch?: string;
  jobs: number;
  json?: boolean;
  print?: boolean;
  progress: boolean;
  chain: "all" | "last";
  udpVia?: string;
  verbose?: boolean;
}

function usageError(text: string): number {
  process.stderr.write(`headwire client: ${text}\n(see headwire client --help)\n`);
  return CLIENT_EXIT.usage;
}

async function runClient(
  urls: string[],
  opts: ClientOptions,
  settings: GivenSettings<ClientSettings>,
): Promise<number> {
  // An argument starting with "-" is never a URL: commander lets "-4" through as a negative number.
  const dashed = urls.find((url) => url.startsWith("-"));
  if (dashed !== undefined) return usageError(`unknown option ${JSON.stringify(dashed)} (a URL never starts with "-")`);
  // `-L 5` took a count before -L became curl's switch: "5" would be queried as the address 0.0.0.5.
  const number = urls.find((url) => /^\d+$/.test(url));
  if (number !== undefined) {
    return usageError(`${number} is not a URL; -L takes no number (as curl's): use -L --max-redirs ${number}`);
  }
  let server: { host: string; port: number };
  try {
    server = hostAndPort(opts.server, DEFAULT_CLIENT_CONFIG.serverPort);
  } catch (error) {
    return usageError(`--server ${opts.server}: ${(error as Error).message}`);
  }
  if (opts.batch !== undefined && urls.length > 0) return usageError("give URLs as arguments or --batch, not both");
  let udpVia: { host: string; port: number } | undefined;
  try {
    udpVia = opts.udpVia === undefined ? undefined : hostAndPort(opts.udpVia, DEFAULT_DATA_PORT);
  } catch (error) {
    return usageError(`--udp-via ${opts.udpVia}: ${(error as Error).message}`);
  }
  // --out is the older name of --output-dir; --output-dir wins when both are given.
  if (opts.out !== undefined && settings.values.outDir === undefined) settings.values.outDir = opts.out;
  let config: ClientConfig;
  try {
    // Checked here too, so a bad value is a usage error rather than a failed session.
    config = resolveClientConfig(
      { ...settings.values, serverHost: server.host, serverPort: server.port },
      settings.sources,
    );
  } catch (error) {
    if (error instanceof ConfigError) return usageError(error.message);
    throw error;
  }
  const target = outputTargetOf(opts, opts.print ?? false, config.outDir);
  const problem = targetProblem(target, urls.length, opts.batch !== undefined, opts.json ?? false);
  if (problem !== null) return usageError(problem);
  const errorsShown = showsErrors(opts);
  const trace = opts.verbose ? verboseTrace((text) => process.stderr.write(text)) : undefined;
  const connect = () => HeadwireClient.connect(config, trace, udpVia);
  const queryOptions = { ...queryOptionsOf(opts), chain: opts.chain, ...queryOptionsFromFlags(opts) };

  if (opts.batch !== undefined) {
    const print = headersOnStdout(target);
    const mode: OutputMode = opts.json ? "json" : print ? "print" : "lines";
    const progress = opts.progress && !opts.silent;
    const shows = { summary: !opts.silent, errors: errorsShown };
    const fail = target.fail;
    const { queriesPerSession } = config;
    return runBatch({
      source: opts.batch,
      jobs: opts.jobs,
      queriesPerSession,
      mode,
      progress,
      queryOptions,
      connect,
      shows,
      fail,
    });
  }

  // URL arguments, a pipe, the prompt: one session that connects again when it ends; PINGs keep
  // it open while it waits for input.
  const interactive = urls.length === 0;
  let client: ReconnectingSession;
  try {
    const notice = (text: string) => void process.stderr.write(styleFor(process.stderr).dim(text));
    client = await ReconnectingSession.start({ connect, notice, keepAlive: interactive });
  } catch (error) {
    const failure = toHeadwireError(error, "SERVER_UNREACHABLE");
    if (errorsShown) reportFatal(failure);
    return exitCodeFor(failure.code);
  }
  // Headers go to standard output, or -s: no summary line there (a success is its file).
  const quietSuccess = (opts.silent ?? false) || headersOnStdout(target);
  const printer = new ResultPrinter({
    mode: opts.json ? "json" : "lines",
    stdout: process.stdout,
    errorLine: errorsShown ? (text) => process.stderr.write(text) : () => undefined,
    outStyle: styleFor(process.stdout),
    errStyle: styleFor(process.stderr),
    quietSuccess,
  });
  let failures = 0;
  let last: QueryResult | undefined;
  const runQuery = async (typed: string) => {
    let result: QueryResult;
    let url = typed;
    try {
      url = checkUrl(typed);
      result = await client.query({ url, options: queryOptions, write: false });
      result = await deliver(result, target, process.stdout);
    } catch (error) {
      if (!(error instanceof HeadwireError && error.code === "INVALID_URL")) throw error;
      result = { url: typed, ms: 0, error: { code: error.code, message: error.message } };
    }
    await printer.report(result);
    if (result.error) failures++;
    last = result;
    return result;
  };
  try {
    if (urls.length > 0) {
      for (const url of urls) await runQuery(url);
    } else if (process.stdin.isTTY && process.stdout.isTTY) {
      await runPrompt({ client, runQuery, style: styleFor(process.stdout), historyFile: historyFilePath() });
    } else {
      // A server that goes away while we wait for input is no news: the next line connects again.
      const lines = createInterface({ input: process.stdin, terminal: false });
      for await (const raw of lines) {
        const line = raw.trim();
        if (END_WORDS.has(line.toLowerCase())) break;
        if (line !== "") await runQuery(line);
      }
      lines.close();
    }
    await client.terminate();
  } catch (error) {
    const failure = toHeadwireError(error, "CONNECTION_LOST");
    if (errorsShown) reportFatal(failure);
    client.destroy();
    // The answers arrived; the server failed to persist its cache after them: a failed step (1).
    // Otherwise the session was lost: 56, as curl's broken connection (src/cli/exit-codes.ts).
    return exitCodeFor(failure.code);
  }
  // One URL argument: its own status, numbered as curl's. Several: 1 when any failed.
  if (urls.length === 1 && last !== undefined) return exitOfResult(last);
  return failures > 0 ? CLIENT_EXIT.queryFailed : CLIENT_EXIT.ok;
}

function reportFatal(error: HeadwireError): void {
  const style = styleFor(process.stderr);
  process.stderr.write(
    `headwire client: ${visibleInLine(error.message)} (${style.red(error.code)}) ${style.dim(`— ${error.advice}`)}\n`,
  );
}
