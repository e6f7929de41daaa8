import { connect } from "node:net";
import { Command, Option } from "commander";
import { FileCacheStore } from "../cache/file-cache-store.js";
import { purge } from "../cache/purge.js";
import { seconds } from "../client/control-connection.js";
import { describeFirstBytes, sniffGreeting } from "../client/greeting-sniff.js";
import { DEFAULT_CLIENT_CONFIG, DEFAULT_CONTROL_PORT, DEFAULT_SERVER_CONFIG } from "../config.js";
import { CacheFileOwnedError, HeadwireError, toHeadwireError } from "../errors.js";
import { GREETING_PREFIX, LineDecoder, parseServerMessage, type ServerMessage } from "../protocol/control.js";
import { parseTarget } from "../url/target.js";
import { hostAndPort } from "./parse.js";

export function cacheCommand(): Command {
  const cache = new Command("cache")
    .summary("look into or purge a server's cache")
    .description(
      "Work on a cache file while its server is down (list, purge); while a server owns the file, ask " +
        "it through its admin HTTP listener (--admin-http, /cache), or over its control channel (purge --server).",
    )
    .addHelpText(
      "after",
      `
Examples:
  headwire cache list --cache-file /var/lib/headwire/cache.txt
  headwire cache list --admin-http 127.0.0.1:50368     # the server is running
  headwire cache purge www.twitch.tv
  headwire cache purge --server 127.0.0.1:50366 --all

While a server owns the cache file (its lock), list and purge ask that server's admin listener
instead: --admin-http HOST:PORT (default ${DEFAULT_SERVER_CONFIG.adminHttp}, HEADWIRE_ADMIN_HTTP), with
--token (HEADWIRE_ADMIN_TOKEN) when it needs one.

Exit status: 0 done, 1 the server refused, 2 bad usage, 3 the server could not be reached (or
is not a headwire server: NOT_HEADWIRE). A closed output (| head -1) ends it quietly.`,
    );
  cache
    .command("list")
    .description(
      "List the entries of a cache: URL, status, when stored, bytes (and, from a running server, until when fresh).",
    )
    .addOption(cacheFileOption())
    .addOption(adminOption())
    .addOption(tokenOption())
    .action(async (opts: { cacheFile: string; adminHttp: string; token?: string }) => {
      const listed = await offline(opts.cacheFile, async (store) => {
        const entries = await store.list();
        for (const entry of entries) {
          const stored = new Date(entry.storedAtMs).toISOString();
          process.stdout.write(`${entry.key}\t${entry.status}\t${stored}\t${entry.header.length} bytes\n`);
        }
        process.stderr.write(`${entries.length} entries in ${opts.cacheFile}\n`);
      });
      process.exitCode = listed === OWNED ? await listOnline(opts) : listed;
    });
  cache
    .command("purge")
    .description(
      "Drop one URL's entries (every query variant) or all of them. Without --server it edits the cache " +
        "file, which only works while no server owns it. With --server it sends PURGE to a running " +
        "server: allowed from loopback, or with --token.",
    )
    .argument("[url]", "the URL to drop")
    .option("--all", "drop every entry")
    .addOption(cacheFileOption())
    .addOption(new Option("-s, --server <host:port>", "purge on this running server (its control port) instead"))
    .addOption(adminOption())
    .addOption(tokenOption())
    .addHelpText(
      "after",
      `
Examples:
  headwire cache purge www.twitch.tv                     # server stopped: edits ./cache.txt
  headwire cache purge --all --cache-file /var/lib/headwire/cache.txt
  headwire cache purge --server 127.0.0.1:50366 www.twitch.tv
  HEADWIRE_ADMIN_TOKEN=… headwire cache purge --server cache1.example:50366 --all`,
    )
    .action(async (url: string | undefined, opts: PurgeOptions) => {
      if ((url === undefined) === !opts.all) {
        process.stderr.write("headwire cache purge: give a URL or --all\n");
        process.exitCode = 2;
        return;
      }
      if (url !== undefined) {
        try {
          parseTarget(url);
        } catch (error) {
          process.stderr.write(`headwire cache purge: ${url}: ${(error as Error).message}\n`);
          process.exitCode = 2;
          return;
        }
      }
      if (opts.server) {
        process.exitCode = await purgeOnline(url, opts);
        return;
      }
      const purged = await purgeOffline(url, opts.cacheFile);
      process.exitCode = purged === OWNED ? await purgeThroughAdmin(url, opts) : purged;
    });
  return cache;
}

/** offline()'s answer when a running server owns the file: ask it instead. */
const OWNED = -1;

function adminOption(): Option {
  return new Option("--admin-http <host:port>", "the running server's admin listener (its --admin-http)")
    .env("HEADWIRE_ADMIN_HTTP")
    .default(DEFAULT_SERVER_CONFIG.adminHttp);
}

function tokenOption(): Option {
  return new Option("--token <token>", "the server's admin token (--admin-token)").env("HEADWIRE_ADMIN_TOKEN");
}

/** One request to a running server's admin listener; its JSON answer, or a HeadwireError that says why not. */
async function adminRequest(
  opts: { adminHttp: string; token?: string },
  method: "GET" | "DELETE",
  path: string,
): Promise<Record<string, unknown>> {
  const base = `http://${opts.adminHttp}`;
  let response: Response;
  try {
    response = await fetch(new URL(path, base), {
      method,
      headers: opts.token ? { authorization: `Bearer ${opts.token}` } : {},
      signal: AbortSignal.timeout(10_000),
    });
  } catch (error) {
    const cause = (error as { cause?: NodeJS.ErrnoException }).cause;
    throw new HeadwireError(
      "SERVER_UNREACHABLE",
      `the cache file is owned by a running server, and its admin listener ${opts.adminHttp} cannot be reached ` +
        `(${cause?.code ?? (error as Error).message}); give its --admin-http`,
    );
  }
  const body = (await response.json().catch(() => ({}))) as Record<string, unknown>;
  if (!response.ok) {
    const error = body.error as { code?: string; message?: string } | undefined;
    const code = error?.code === "FORBIDDEN" ? "FORBIDDEN" : "PROTOCOL_ERROR";
    throw new HeadwireError(code, `${opts.adminHttp}: ${response.status} ${error?.message ?? response.statusText}`);
  }
  return body;
}

async function listOnline(opts: { adminHttp: string; token?: string }): Promise<number> {
  try {
    const body = await adminRequest(opts, "GET", "/cache");
    const entries = body.entries as Array<{
      key: string;
      status: number;
      storedAt: string;
      bytes: number;
      freshUntil: string;
    }>;
    for (const entry of entries) {
      process.stdout.write(
        `${entry.key}\t${entry.status}\t${entry.storedAt}\t${entry.bytes} bytes\tfresh until ${entry.freshUntil}\n`,
      );
    }
    process.stderr.write(`${entries.length} entries on the running server (${opts.adminHttp})\n`);
    return 0;
  } catch (error) {
    return reportFailure("list", error);
  }
}

async function purgeThroughAdmin(url: string | undefined, opts: PurgeOptions): Promise<number> {
  try {
    const query = url === undefined ? "all=1" : `url=${encodeURIComponent(url)}`;
    const body = await adminRequest(opts, "DELETE", `/cache?${query}`);
    process.stdout.write(`purged ${String(body.purged)} entries on the running server (${opts.adminHttp})\n`);
    return 0;
  } catch (error) {
    return reportFailure("purge", error);
  }
}

function reportFailure(command: string, error: unknown): number {
  const failure = toHeadwireError(error, "CONNECTION_LOST");
  process.stderr.write(`headwire cache ${command}: ${failure.message} (${failure.code}) — ${failure.advice}\n`);
  return failure.code === "SERVER_UNREACHABLE" ? 3 : 1;
}

interface PurgeOptions {
  all?: boolean;
  cacheFile: string;
  server?: string;
  adminHttp: string;
  token?: string;
}

function cacheFileOption(): Option {
  return new Option("--cache-file <path>", "the cache file")
    .env("HEADWIRE_CACHE_FILE")
    .default(DEFAULT_SERVER_CONFIG.cacheFile);
}

/**
 * Runs `work` on a cache file this process owns for the duration (so no server can use it
 * meanwhile), and writes what it changed. Every entry is listed, whatever its age: retention is
 * the server's business, not the file's.
 */
async function offline(path: string, work: (store: FileCacheStore) => Promise<void>): Promise<number> {
  const store = new FileCacheStore({
    path,
    maxEntries: 10_000_000,
    maxTotalBytes: Number.MAX_SAFE_INTEGER,
    persistDelayMs: 0,
    retentionOnLoadMs: () => Number.MAX_SAFE_INTEGER,
    log: (message) => process.stderr.write(`headwire cache: ${message}\n`),
  });
  try {
    await store.open();
  } catch (error) {
    if (!(error instanceof CacheFileOwnedError)) throw error;
    return OWNED;
  }
  try {
    await work(store);
    return 0;
  } finally {
    await store.close();
  }
}

async function purgeOffline(url: string | undefined, path: string): Promise<number> {
  return offline(path, async (store) => {
    const count = await purge(store, url);
    process.stdout.write(`purged ${count} entries from ${path}\n`);
  });
}

async function purgeOnline(url: string | undefined, opts: PurgeOptions): Promise<number> {
  const { host, port } = hostAndPort(opts.server!, DEFAULT_CONTROL_PORT);
  const lines = [...(opts.token ? [`AUTH ${opts.token}`] : []), `PURGE ${url ?? "ALL"}`, "TERMINATE"];
  try {
    const replies = await converse(host, port, lines);
    for (const reply of replies) {
      const message = parseServerMessage(reply);
      if (message.kind === "error") throw new HeadwireError(message.code, message.message);
      if (message.kind === "purged") process.stdout.write(`purged ${message.count} entries on ${opts.server}\n`);
    }
    return 0;
  } catch (error) {
    const failure = toHeadwireError(error, "CONNECTION_LOST");
    process.stderr.write(`headwire cache purge: ${failure.message} (${failure.code}) — ${failure.advice}\n`);
    return failure.code === "SERVER_UNREACHABLE" || failure.code === "NOT_HEADWIRE" ? 3 : 1;
  }
}

/**
 * Sends lines on one control session and returns the replies after the greeting. A peer that is
 * not a headwire server (it says something else first, or nothing within the greeting timeout)
 * is NOT_HEADWIRE, with what it said: the lines go out at once, so an HTTP server answers them.
 */
function converse(host: string, port: number, lines: string[]): Promise<string[]> {
  const peer = host.includes(":") ? `[${host}]:${port}` : `${host}:${port}`;
  const greetingTimeoutMs = DEFAULT_CLIENT_CONFIG.greetingTimeoutMs;
  return new Promise((resolve, reject) => {
    const socket = connect({ host, port });
    const decoder = new LineDecoder(8192);
    const replies: string[] = [];
    let firstBytes = Buffer.alloc(0);
    const silence = setTimeout(() => {
      const said = `it sent nothing within ${seconds(greetingTimeoutMs)} of connecting`;
      reject(new HeadwireError("NOT_HEADWIRE", `${peer} is not a headwire server: ${said}`));
      socket.destroy();
    }, greetingTimeoutMs);
    socket.on("connect", () => socket.write(lines.map((line) => `${line}\n`).join("")));
    socket.on("data", (chunk: Buffer) => {
      clearTimeout(silence);
      if (firstBytes.length < 256) firstBytes = Buffer.concat([firstBytes, chunk]).subarray(0, 256);
      for (const event of decoder.push(chunk)) if (event.kind === "line") replies.push(event.text);
    });
    socket.on("error", (error: NodeJS.ErrnoException) =>
      reject(new HeadwireError("SERVER_UNREACHABLE", `cannot reach ${peer}: ${error.code ?? error.message}`)),
    );
    socket.on("close", () => {
      clearTimeout(silence);
      if (sniffGreeting(firstBytes) !== "headwire") {
        const said =
          firstBytes.length > 0
            ? `it answered ${describeFirstBytes(firstBytes)}`
            : "it closed the connection without a greeting";
        return reject(new HeadwireError("NOT_HEADWIRE", `${peer} is not a headwire server: ${said}`));
      }
      // The first line must be the greeting; a server that refuses the session says why instead.
      const [greeting, ...rest] = replies;
      if (greeting === undefined || !greeting.startsWith(GREETING_PREFIX)) {
        const refusal = greeting === undefined ? undefined : safeParse(greeting);
        if (refusal?.kind === "error") return reject(new HeadwireError(refusal.code, refusal.message));
        return reject(new HeadwireError("PROTOCOL_ERROR", `no greeting from ${peer}`));
      }
      resolve(rest);
    });
  });
}

function safeParse(line: string): ServerMessage | undefined {
  try {
    return parseServerMessage(line);
  } catch {
    return undefined;
  }
}
