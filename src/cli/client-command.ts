import { createInterface } from "node:readline";
import { Command, Option } from "commander";
import { DEFAULT_CLIENT_CONFIG } from "../config.js";
import { ERROR_CODES, HeadwireError, toHeadwireError } from "../errors.js";
import { HeadwireClient, type QueryResult } from "../client/headwire-client.js";
import { hostAndPort, integer } from "./parse.js";

/** Exit codes of `headwire client`, documented in --help and the README. */
export const CLIENT_EXIT = { ok: 0, queryFailed: 1, usage: 2, sessionFailed: 3 } as const;

const END_WORDS = new Set(["terminate", "exit", "quit"]);

export function clientCommand(): Command {
  return new Command("client")
    .summary("query a headwire server")
    .description(
      "Open one session with a headwire server and ask it for the HTTP response header of each URL:\n" +
        "the URLs given as arguments, else one URL a line from standard input (a prompt on a terminal).\n" +
        "Each header is written, byte for byte as the origin sent it, to <out>/<URL>.txt.",
    )
    .argument("[url...]", "URLs to query; the session ends after them")
    .addOption(
      new Option("-s, --server <host:port>", "server to use")
        .env("HEADWIRE_SERVER")
        .default(`127.0.0.1:${DEFAULT_CLIENT_CONFIG.serverPort}`),
    )
    .option("-o, --out <dir>", "directory the header files are written to", ".")
    .addOption(
      new Option("--method <method>", "request method towards the origin").choices(["GET", "HEAD"]).default("GET"),
    )
    .addOption(new Option("-L, --redirects <n>", "follow up to n redirects").argParser(integer).default(0))
    .addOption(
      new Option("--chain <which>", "with -L: deliver every hop's header, or the last")
        .choices(["all", "last"])
        .default("all"),
    )
    .addOption(
      new Option("--chunk-timeout-ms <ms>", "wait before asking again for lost chunks")
        .argParser(integer)
        .default(DEFAULT_CLIENT_CONFIG.chunkTimeoutMs),
    )
    .addOption(
      new Option("--reply-timeout-ms <ms>", "wait for the server's reply to a query")
        .argParser(integer)
        .default(DEFAULT_CLIENT_CONFIG.replyTimeoutMs),
    )
    .addHelpText(
      "after",
      `
File names: the URL as typed, with "http://" dropped and every character outside
[A-Za-z0-9._-] replaced, made safe (see docs/protocol.md, "File names"): www.twitch.tv → www.twitch.tv.txt

At the prompt: type a URL, or terminate / exit / Ctrl-D to end the session.

Exit codes:
  0  every query succeeded
  1  at least one query failed (its error was printed; the session went on)
  2  bad usage
  3  the server could not be reached, or the session was lost

Examples:
  headwire client www.twitch.tv                       # writes ./www.twitch.tv.txt
  headwire client --server [::1]:50366 -o headers https://example.com/
  printf 'a.example\\nb.example\\n' | headwire client  # one URL a line`,
    )
    .action(async (urls: string[], opts) => {
      process.exitCode = await runClient(urls, opts);
    });
}

interface ClientOptions {
  server: string;
  out: string;
  method: "GET" | "HEAD";
  redirects: number;
  chain: "all" | "last";
  chunkTimeoutMs: number;
  replyTimeoutMs: number;
}

async function runClient(urls: string[], opts: ClientOptions): Promise<number> {
  let server;
  try {
    server = hostAndPort(opts.server);
  } catch (error) {
    process.stderr.write(`headwire client: --server ${opts.server}: ${(error as Error).message}\n`);
    return CLIENT_EXIT.usage;
  }
  let client: HeadwireClient;
  try {
    client = await HeadwireClient.connect({
      serverHost: server.host,
      serverPort: server.port,
      outDir: opts.out,
      chunkTimeoutMs: opts.chunkTimeoutMs,
      replyTimeoutMs: opts.replyTimeoutMs,
    });
  } catch (error) {
    reportFatal(toHeadwireError(error, "SERVER_UNREACHABLE"));
    return CLIENT_EXIT.sessionFailed;
  }
  const queryOptions = { method: opts.method, redirects: opts.redirects, chain: opts.chain };
  let failures = 0;
  let ending = false;
  const runOne = async (url: string) => {
    const result = await client.query({ url, options: queryOptions });
    printResult(result);
    if (result.error) failures++;
  };
  try {
    if (urls.length > 0) {
      for (const url of urls) await runOne(url);
    } else {
      const interactive = Boolean(process.stdin.isTTY && process.stdout.isTTY);
      const lines = createInterface({
        input: process.stdin,
        output: interactive ? process.stdout : undefined,
        terminal: interactive,
      });
      if (interactive) {
        process.stdout.write(`connected to ${client.serverName}; type a URL, or terminate to end\n`);
        lines.setPrompt("headwire> ");
        lines.prompt();
      }
      // A server that goes away while we wait for input ends the session at once.
      void client.closed.then(() => {
        if (!ending) lines.close();
      });
      for await (const raw of lines) {
        const line = raw.trim();
        if (END_WORDS.has(line.toLowerCase())) break;
        if (line !== "") await runOne(line);
        if (interactive) lines.prompt();
      }
      lines.close();
    }
    ending = true;
    await client.terminate();
  } catch (error) {
    reportFatal(toHeadwireError(error, "CONNECTION_LOST"));
    client.destroy();
    return CLIENT_EXIT.sessionFailed;
  }
  return failures > 0 ? CLIENT_EXIT.queryFailed : CLIENT_EXIT.ok;
}

function printResult(result: QueryResult): void {
  if (result.error) {
    const advice = ERROR_CODES[result.error.code];
    process.stderr.write(`${result.url}: error ${result.error.code}: ${result.error.message} — ${advice}\n`);
    return;
  }
  process.stdout.write(
    `${result.statusLine} | ${result.bytes} bytes | ${result.cache} | ${result.ms} ms | ${result.file ?? "-"}\n`,
  );
}

function reportFatal(error: HeadwireError): void {
  process.stderr.write(`headwire client: ${error.message} (${error.code}) — ${error.advice}\n`);
}
