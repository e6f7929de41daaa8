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
import { VERSION } from "../version.js";
import { runBatch } from "./client-batch.js";
import { ResultPrinter, visibleInLine, type OutputMode } from "./client-output.js";
import { END_WORDS, historyFilePath, runPrompt } from "./client-prompt.js";
import { hostAndPort, integer } from "./parse.js";
import { addQueryFlags, QUERY_FLAGS_HELP, queryOptionsFromFlags, type QueryFlagValues } from "./query-flags.js";
import { addSettingOptions, type GivenSettings } from "./setting-options.js";
import { styleFor } from "./terminal-style.js";
import { verboseTrace } from "./verbose-trace.js";

/** Exit codes of `headwire client`, documented in --help and the README. */
export const CLIENT_EXIT = { ok: 0, queryFailed: 1, usage: 2, sessionFailed: 3, interrupted: 130 } as const;

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
        "header is written, byte for byte as the origin sent it, to a file in the output directory, and " +
        "summed up in one line: status line | bytes | cache outcome | milliseconds | file.",
    )
    .usage("[options] [URL...]\n       headwire client [options] --batch FILE")
    .argument("[URL...]", "URLs to query; the session ends after them")
    .addOption(
      new Option("-s, --server <host:port>", "server to use; [v6addr]:port for IPv6")
        .env("HEADWIRE_SERVER")
        .default(`${DEFAULT_CLIENT_CONFIG.serverHost}:${DEFAULT_CLIENT_CONFIG.serverPort}`),
    );
  // The client's settings that have a flag (src/config/settings.ts): --out and the timeouts.
  const readSettings = addSettingOptions(command, CLIENT_SETTINGS);
  return addQueryFlags(command)
    .option("-b, --batch <file>", "query every URL in FILE, one a line (- reads standard input)")
    .addOption(
      new Option("-j, --jobs <n>", `with --batch: sessions querying at once (1-${MAX_JOBS})`)
        .argParser(jobs)
        .default(DEFAULT_JOBS),
    )
    .addOption(new Option("--json", "print one JSON object a line per query, for scripts").conflicts("print"))
    .option("--print", "write each header to standard output instead of a file")
    .option("--no-progress", "with --batch: no progress bar or progress lines")
    .addOption(
      new Option("--method <method>", "request method towards the origin").choices(["GET", "HEAD"]).default("GET"),
    )
    .addOption(new Option("-L, --redirects <n>", "follow up to n redirects (0-20)").argParser(integer).default(0))
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
  --batch FILE     every line of FILE (- for standard input), over --jobs sessions at once
  a terminal       an interactive prompt with line editing and history (see PROMPT)
  a pipe or file   one URL a line from standard input, until its end or a line "terminate"

OUTPUT
  By default each query prints one line on standard output, and each error one line on
  standard error with its stable code and what to do about it:
    HTTP/1.1 301 Moved Permanently | 713 bytes | MISS | 12 ms | www.twitch.tv.txt
    ftp://x/: error UNSUPPORTED_SCHEME: unsupported scheme "ftp": use http or https — Only http and https URLs can be fetched.
  --json prints instead, on standard output, one object a line with exactly these fields:
    {"url":"www.twitch.tv","file":"www.twitch.tv.txt","status":301,"bytes":713,"cache":"MISS","ms":12,"error":null}
    {"url":"ftp://x/","file":null,"status":null,"bytes":null,"cache":null,"ms":1,
     "error":{"code":"UNSUPPORTED_SCHEME","message":"unsupported scheme \\"ftp\\": use http or https"}}
  file is --out joined with the file name; status is the final response's status code; cache is
  HIT, MISS, STALE or REVALIDATED; ms is the whole query, delivery and file included.
  --print writes each header's bytes to standard output and no file (control characters are
  shown as \\xHH when standard output is a terminal); errors still go to standard error.
  Colours are used on a terminal unless NO_COLOR is set.

FILE NAMES
  A header is written to <out>/<name>.txt, where <name> is the URL as typed with "http://"
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

BATCH
  --batch FILE reads FILE as it goes (never whole into memory): one URL a line; blank lines and
  lines starting with # are skipped. The URLs are shared among --jobs sessions (8 by default),
  each asking for one URL at a time. Standard error shows a progress bar on a terminal, else a
  line at every tenth of the file and every 10 s. Failures are printed one line each as they
  happen; succeeded queries print nothing (their files are the result; use --json for a line
  each). At the end one summary line, on standard output (standard error with --json or --print):
    10000 queries: 9998 succeeded, 2 failed (DNS_NOT_FOUND 2) | HIT 9000 MISS 998 | p50 3 ms p95 9 ms | 4.1 s
  p50 and p95 are the latency percentiles of the succeeded queries. Ctrl-C stops taking new URLs,
  lets the queries in flight finish and prints the summary; a second Ctrl-C quits at once.
  A lost session connects again (--reconnect-attempts, with back-off) and the batch resumes
  where it was; only when every attempt fails does it stop (exit status 3). With --print each
  header follows a line "==> URL <==".

VERBOSE
  -v shows on standard error what crosses the wire, as curl -v does: "> " sent, "< " received,
  "* " notes. Control lines as they are; datagrams with their sizes, addresses (local → remote),
  chunk ranges, retransmissions and the round-trip estimate. Standard output does not change.
    * TCP connected 127.0.0.1:57701 → 127.0.0.1:50366
    < HEADWIRE/2 READY headwire/0.1.0
    > QUERY www.twitch.tv
    < TICKET token=9f… udp=127.0.0.1:50367 bytes=713 chunks=1 cache=MISS status=301 sha256=…
    > UDP REQUEST 1 chunks 0 (36 B, 127.0.0.1:64484 → 127.0.0.1:50367, window 10, rtt none yet, …)
    < UDP CHUNK 1/1 (757 B, 127.0.0.1:50367 → 127.0.0.1:64484, 713 of the header at 0, request 1, …)
    * UDP header complete: 1 chunks in 1 requests, 0 duplicates, 0 rejected, …; SHA-256 matches

ENVIRONMENT
  HEADWIRE_SERVER    default for --server
  HEADWIRE_HISTORY   the prompt's history file (default ~/.headwire_history); empty: none kept
  NO_COLOR           when set and not empty, no colours

EXIT STATUS
  0    every query succeeded
  1    at least one query failed (its error was printed; the session went on), or the server
       answered TERMINATE with PERSIST_FAILED (it could not write its cache)
  2    bad usage: an unknown option, a bad value, an unreadable --batch file
  3    the server could not be reached, or the session was lost
  130  interrupted (Ctrl-C) during --batch

EXAMPLES
  headwire client www.twitch.tv                     # writes ./www.twitch.tv.txt
  headwire client --server [::1]:50366 -o headers https://example.com/
  headwire client                                   # the prompt, on a terminal
  printf 'a.example\\nb.example/x?y=1\\n' | headwire client
  headwire client --batch urls.txt -j 32 -o headers
  headwire client --batch urls.txt --json > results.jsonl
  jq -r 'select(.error) | .url' results.jsonl       # the URLs that failed
  grep -v '^#' urls.txt | headwire client --batch - --no-progress
  headwire client --print -L 5 --chain last http://example.com/ | grep -i '^location:'
  headwire client -v www.twitch.tv 2>trace.txt      # the whole exchange, line by line

SEE ALSO
  headwire server --help; docs/protocol.md for the protocol and its error codes.`;

/** The options that are not client settings; those are read from CLIENT_SETTINGS. */
interface ClientOptions extends QueryFlagValues {
  server: string;
  batch?: string;
  jobs: number;
  json?: boolean;
  print?: boolean;
  progress: boolean;
  method: "GET" | "HEAD";
  redirects: number;
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
  let server: { host: string; port: number };
  try {
    server = hostAndPort(opts.server, DEFAULT_CLIENT_CONFIG.serverPort);
  } catch (error) {
    return usageError(`--server ${opts.server}: ${(error as Error).message}`);
  }
  if (opts.batch !== undefined && urls.length > 0) return usageError("give URLs as arguments or --batch, not both");
  if (opts.redirects > 20) return usageError("--redirects must be from 0 to 20");
  let udpVia: { host: string; port: number } | undefined;
  try {
    udpVia = opts.udpVia === undefined ? undefined : hostAndPort(opts.udpVia, DEFAULT_DATA_PORT);
  } catch (error) {
    return usageError(`--udp-via ${opts.udpVia}: ${(error as Error).message}`);
  }
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
  const mode: OutputMode = opts.json ? "json" : opts.print ? "print" : "lines";
  const trace = opts.verbose ? verboseTrace((text) => process.stderr.write(text)) : undefined;
  const connect = () => HeadwireClient.connect(config, trace, udpVia);
  const queryOptions = {
    method: opts.method,
    redirects: opts.redirects,
    chain: opts.chain,
    ...queryOptionsFromFlags(opts),
  };
  exitQuietlyOnClosedStdout();

  if (opts.batch !== undefined) {
    return runBatch({ source: opts.batch, jobs: opts.jobs, mode, progress: opts.progress, queryOptions, connect });
  }

  let client: HeadwireClient;
  try {
    client = await connect();
  } catch (error) {
    reportFatal(toHeadwireError(error, "SERVER_UNREACHABLE"));
    return CLIENT_EXIT.sessionFailed;
  }
  const printer = new ResultPrinter({
    mode,
    stdout: process.stdout,
    errorLine: (text) => process.stderr.write(text),
    outStyle: styleFor(process.stdout),
    errStyle: styleFor(process.stderr),
  });
  let failures = 0;
  const runQuery = async (url: string) => {
    const result = await client.query({ url, options: queryOptions, write: mode !== "print" });
    await printer.report(result);
    if (result.error) failures++;
    return result;
  };
  let ending = false;
  // Reading the user's input, the session may end under us: that is a lost session (exit 3).
  let endedWhileReading = false;
  void client.closed.then(() => {
    if (!ending && urls.length === 0) endedWhileReading = true;
  });
  try {
    if (urls.length > 0) {
      for (const url of urls) await runQuery(url);
    } else if (process.stdin.isTTY && process.stdout.isTTY) {
      await runPrompt({ client, runQuery, style: styleFor(process.stdout), historyFile: historyFilePath() });
    } else {
      const lines = createInterface({ input: process.stdin, terminal: false });
      // A server that goes away while we wait for input ends the session at once: each wait for
      // the next line races the session's end (closing readline from outside while its iterator
      // is between two lines is not a reliable way to stop it).
      const input = lines[Symbol.asyncIterator]();
      const sessionOver = client.closed.then(() => ({ done: true as const, value: undefined }));
      for (;;) {
        const next = await Promise.race([input.next(), sessionOver]);
        if (next.done) break;
        const line = next.value.trim();
        if (END_WORDS.has(line.toLowerCase())) break;
        if (line !== "") await runQuery(line);
      }
      lines.close();
    }
    ending = true;
    if (endedWhileReading && client.lost) throw client.lost;
    await client.terminate();
  } catch (error) {
    const failure = toHeadwireError(error, "CONNECTION_LOST");
    reportFatal(failure);
    client.destroy();
    // The answers arrived; the server failed to persist its cache after them: a failed step.
    return failure.code === "PERSIST_FAILED" ? CLIENT_EXIT.queryFailed : CLIENT_EXIT.sessionFailed;
  }
  return failures > 0 ? CLIENT_EXIT.queryFailed : CLIENT_EXIT.ok;
}

function reportFatal(error: HeadwireError): void {
  const style = styleFor(process.stderr);
  process.stderr.write(
    `headwire client: ${visibleInLine(error.message)} (${style.red(error.code)}) ${style.dim(`— ${error.advice}`)}\n`,
  );
}

/** `headwire client --json ... | head` closes our standard output early: stop without a stack trace. */
function exitQuietlyOnClosedStdout(): void {
  process.stdout.on("error", (error: NodeJS.ErrnoException) => {
    if (error.code === "EPIPE") process.exit(CLIENT_EXIT.ok);
    throw error;
  });
}
