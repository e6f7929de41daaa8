import cluster from "node:cluster";
import { IpcCacheStore } from "../cluster/ipc-cache-store.js";
import { isStopMessage, ServerPrimary, WORKER_INDEX_VARIABLE, type WorkerReady } from "../cluster/server-primary.js";
import { workerAdvertise, workerCount, workerDataPort, workerPortsProblem } from "../cluster/worker-ports.js";
import type { HeadwireServerOptions } from "../server/headwire-server.js";
import { Command, Option } from "commander";
import { ConfigError, SERVER_SETTINGS } from "../config.js";
import { HeadwireServer } from "../server/headwire-server.js";
import { keepRunningWhenOutputCloses } from "./process-guard.js";
import { loadServerSettings } from "./server-settings.js";
import { addSettingOptions } from "./setting-options.js";
import type { ServerConfig } from "../config.js";
import { logEvents } from "../observe/event-log.js";
import { ServerLogger } from "../observe/logger.js";

/** Exit status of `headwire server` on bad usage or bad settings (flag, variable or config file). */
export const SERVER_BAD_CONFIG_EXIT = 2;
const HINT = "(headwire server --help lists every setting)";

/**
 * The program's settings are copied onto each command (main.ts); the server keeps a short hint
 * after a usage error rather than its whole manual, which would bury the one line that matters.
 */
class ServerCommand extends Command {
  override copyInheritedSettings(source: Command): this {
    super.copyInheritedSettings(source);
    return this.showHelpAfterError(HINT);
  }
}

export function serverCommand(): Command {
  const command = new ServerCommand("server")
    .summary("run the headwire server")
    .description(
      "Listen for clients on a TCP control port and a UDP data port, fetch the HTTP response header of " +
        "each URL they ask for (or take it from the cache, RFC 9111 freshness), and deliver it over UDP " +
        "to the address of the TCP session only. The cache lives in memory and in --cache-file (written " +
        "shortly after each change and at TERMINATE), or in Redis for a fleet (--cache). An outbound " +
        "guard refuses origins on loopback, private and other non-public addresses unless allowed.",
    )
    .addHelpText(
      "after",
      `
Every option but the outbound guard and TLS switches can also be set with the environment
variable shown beside it: HEADWIRE_ and the flag in capitals (e.g. HEADWIRE_TICKET_TTL_MS).
Every option can be set in the TOML file --config names, keyed by the flag's name without --
(ticket-ttl-ms = 30000, allow = ["10.1.2.0/24"], loopback-admin = false for --no-loopback-admin).
Precedence: flags > environment variables > config file > defaults. Bad values, and unknown
keys in the file, stop the server at start (exit 2) with the flag's name in the message.

Log:
  JSON lines on standard error (time, level, msg and fields; pretty on a terminal): one line
  per query and per session start and end, a warning per limit hit (at most
  --limit-warnings-per-second), errors with their stacks, "ready" with the ports. Standard
  output stays empty. Fields and levels: docs/operations.md.

Files:
  <cache-file>        the cache, human-readable (format in docs/operations.md)
  <cache-file>.lock   the PID of the server that owns the cache file; a second server is refused

Exit status:
  0  stopped by SIGINT or SIGTERM, cache persisted
  1  could not start (port in use, cache file owned by another server or not a regular file),
     or stopped but the cache could not be persisted (the lock is released),
     or stopped on an internal error (logged with its stack; cache persisted, lock released)
  2  bad usage or bad configuration: a flag, a variable or the config file

Signals:
  SIGINT, SIGTERM  stop: no new sessions, queries in flight finish, the cache is persisted
                   (a second one while stopping is only acknowledged)
  SIGHUP           persist the cache now, re-read --config and apply the settings that can
                   change while running (limits, allow-lists, TTLs: one log line per change,
                   and one per change that needs a restart); a bad file changes nothing

Examples:
  headwire server                                  # ports 50366/tcp and 50367/udp on all addresses
  headwire server --port 0 --data-port 0           # ephemeral ports, named in the "ready" log line
  headwire server --allow-private --cache-file /var/lib/headwire/cache.txt
  headwire server --cache redis://10.0.0.5:6379/0 --advertise 203.0.113.7   # one of a fleet
  headwire server --config /etc/headwire/headwire.toml     # settings in a file (packaging/)
  headwire server --workers auto                   # one worker per CPU: UDP 50367, 50368, … (docs/operations.md)

On SIGINT or SIGTERM the server stops accepting sessions, finishes the queries in flight,
persists the cache and exits 0 (1 when the cache could not be written). A closed standard output
or error (a pipe whose reader has gone) changes nothing: the lines are dropped.`,
    )
    .addOption(
      new Option("--config <file>", "TOML file of settings, keyed by flag names; re-read on SIGHUP").env(
        "HEADWIRE_CONFIG",
      ),
    )
    .action(async (opts: { config?: string }, self: Command) => {
      keepRunningWhenOutputCloses();
      const given = readSettings(self);
      let server: HeadwireServer;
      let overridden: string[];
      const worker = cluster.isWorker ? Number(process.env[WORKER_INDEX_VARIABLE]) : undefined;
      try {
        const settings = await loadServerSettings(given, opts.config);
        const count = workerCount(settings.config.workers);
        const ports = workerPortsProblem(count, settings.config.dataPort, settings.config.advertiseHost);
        if (ports !== undefined) throw new ConfigError(ports);
        if (cluster.isPrimary && count > 1) return await runPrimary(count, settings);
        server = new HeadwireServer(worker === undefined ? settings.values : workerSettings(worker, settings));
        overridden = worker === undefined ? settings.overridden : [];
      } catch (error) {
        // No log yet (its settings may be what is wrong): one plain line.
        if (error instanceof ConfigError) {
          say(`headwire server: ${error.message}\n${HINT}\n`);
          process.exit(SERVER_BAD_CONFIG_EXIT);
        }
        say(`headwire server: cannot start: ${(error as Error).message}\n`);
        process.exit(1);
      }
      const logger = serverLogger(server.config);
      const log = logger.pino;
      const exit = async (code: number): Promise<never> => {
        await logger.flushBeforeExit();
        process.exit(code);
      };
      logEvents(server.events, log, { limitWarningsPerSecond: server.config.limitWarningsPerSecond });
      for (const line of overridden) log.warn({ event: "config" }, line);
      try {
        await server.start();
      } catch (error) {
        log.fatal({ event: "start-failed", err: error }, `cannot start: ${(error as Error).message}`);
        return exit(1);
      }
      if (worker !== undefined) {
        const ready: WorkerReady = { headwire: "ready", controlPort: server.controlPort, dataPort: server.dataPort };
        process.send?.(ready);
      }
      let stopping = false;
      let reloads = Promise.resolve();
      const stop = (signal: string) => {
        if (stopping) {
          // A second Ctrl-C must not kill the process half-way (lock left, cache unwritten).
          log.warn(
            { event: "signal", signal },
            `${signal}: already stopping (at most --shutdown-grace-ms); SIGKILL ends it at once`,
          );
          return;
        }
        stopping = true;
        log.info({ event: "signal", signal }, `${signal}: stopping`);
        void server.stop().then(
          () => exit(0),
          (error: unknown) => {
            log.error({ event: "stop-failed", err: error }, `stopped, but ${(error as Error).message}`);
            return exit(1);
          },
        );
      };
      process.on("SIGINT", () => stop("SIGINT"));
      process.on("SIGTERM", () => stop("SIGTERM"));
      // A worker is stopped by its primary (which may get the signal alone); a terminal's Ctrl-C
      // reaches both, and the worker's second stop is no news.
      process.on("message", (message) => {
        if (isStopMessage(message) && !stopping) stop("primary's stop");
      });
      // A bug that escapes every handler: say it with its stack, persist and release the lock
      // as a stop does, and exit 1 (the process's state can no longer be trusted to go on).
      process.on("uncaughtException", (error: Error) => {
        log.fatal({ event: "error", err: error }, `internal error, stopping: ${error.stack ?? error.message}`);
        if (stopping) return void exit(1);
        stopping = true;
        void server.stop().finally(() => exit(1));
      });
      // SIGHUP's default is to end the process (without persisting, lock left behind): a server
      // started from a terminal that closes, or a supervisor asking for a reload, must not die.
      process.on("SIGHUP", () => {
        if (stopping) return;
        server.flushCache().then(
          () =>
            log.info(
              { event: "signal", signal: "SIGHUP" },
              `SIGHUP: cache flushed${opts.config === undefined ? "; no --config to re-read" : ""}`,
            ),
          (error: unknown) =>
            log.error(
              { event: "signal", signal: "SIGHUP", err: error },
              `SIGHUP: cache not flushed: ${(error as Error).message}`,
            ),
        );
        // One re-read at a time, in the order the signals came: the last SIGHUP's file is the one in force.
        const file = opts.config;
        if (file !== undefined) reloads = reloads.then(() => reload(server, file, logger));
      });
    });
  // Every setting is an option (src/config/settings.ts), after the command's own text.
  const readSettings = addSettingOptions(command, SERVER_SETTINGS);
  /** The file again, under the same flags and variables; the server logs each change. A bad file changes nothing. */
  const reload = async (server: HeadwireServer, file: string, logger: ServerLogger) => {
    const log = logger.pino;
    try {
      const settings = await loadServerSettings(readSettings(command), file);
      for (const line of settings.overridden) log.warn({ event: "config", signal: "SIGHUP" }, `SIGHUP: ${line}`);
      const { applied } = server.reconfigure(settings.values, settings.sources);
      if (applied.some((change) => change.key === "logLevel"))
        logger.setLevel(server.config.logLevel as Parameters<ServerLogger["setLevel"]>[0]);
    } catch (error) {
      if (!(error instanceof ConfigError)) throw error;
      log.error(
        { event: "config", signal: "SIGHUP", file },
        `SIGHUP: ${file} not applied, nothing changed: ${error.message}`,
      );
    }
  };
  return command;
}

/**
 * Worker `index`'s settings: the command's, with its own data port and advertised port, and the
 * primary's cache (Redis directly: it is shared already, and coalesces a fleet's misses itself).
 */
function workerSettings(
  index: number,
  settings: Awaited<ReturnType<typeof loadServerSettings>>,
): HeadwireServerOptions {
  const { config } = settings;
  return {
    ...settings.values,
    dataPort: workerDataPort(config.dataPort, index),
    advertiseHost: workerAdvertise(config.advertiseHost, index),
    ...(config.cacheUrl.startsWith("redis")
      ? {}
      : {
          store: new IpcCacheStore(process as never, config.cacheUrl === "memory" ? "memory" : "file", {
            maxEntries: config.cacheMaxEntries,
            maxTotalBytes: config.cacheMaxBytes,
          }),
        }),
  };
}

/** The primary of `--workers N`: the workers, their ready line, the signals; it never returns while it runs. */
async function runPrimary(count: number, settings: Awaited<ReturnType<typeof loadServerSettings>>): Promise<void> {
  for (const line of settings.overridden) say(`headwire server: ${line}\n`);
  const log = (message: string) => say(`headwire server: ${message}\n`);
  let primary: ServerPrimary;
  try {
    primary = await ServerPrimary.start({ count, config: settings.config, log });
  } catch (error) {
    say(`headwire server: cannot start: ${(error as Error).message}\n`);
    process.exit(1);
  }
  process.stdout.write(
    `headwire server ready: control tcp port ${primary.controlPort}, data udp ports ${primary.dataPorts.join(", ")} ` +
      `(${count} workers, pids ${primary.pids.join(", ")})\n`,
  );
  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) {
      say(`headwire server: ${signal}: already stopping (at most --shutdown-grace-ms); SIGKILL ends it at once\n`);
      return;
    }
    stopping = true;
    say(`headwire server: ${signal}: stopping ${count} workers\n`);
    primary.stop().then(
      () => process.exit(0),
      (error: unknown) => {
        say(`headwire server: stopped, but ${error instanceof Error ? error.message : String(error)}\n`);
        process.exit(1);
      },
    );
  };
  process.on("SIGINT", () => stop("SIGINT"));
  process.on("SIGTERM", () => stop("SIGTERM"));
  process.on("uncaughtException", (error: Error) => {
    say(`headwire server: internal error, stopping: ${error.stack ?? error.message}\n`);
    if (stopping) process.exit(1);
    stopping = true;
    void primary.stop().finally(() => process.exit(1));
  });
  process.on("SIGHUP", () => {
    if (stopping) return;
    say(`headwire server: SIGHUP: passed to ${count} workers\n`);
    primary.reload();
  });
}

/** The log on standard error: JSON lines, or pretty ones for a terminal (`--log-format auto`). */
function serverLogger(config: ServerConfig): ServerLogger {
  const terminal = process.stderr.isTTY === true;
  const pretty = config.logFormat === "pretty" || (config.logFormat === "auto" && terminal);
  return new ServerLogger({
    format: pretty ? "pretty" : "json",
    level: config.logLevel,
    bufferBytes: config.logBufferBytes,
    colorize: terminal && !process.env.NO_COLOR,
  });
}

/** The one line written before the log exists (bad configuration). */
function say(text: string): void {
  process.stderr.write(text);
}
