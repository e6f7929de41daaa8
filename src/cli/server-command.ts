import { Command, Option } from "commander";
import { DEFAULT_SERVER_CONFIG, type ServerConfig } from "../config.js";
import { HeadwireServer } from "../server/headwire-server.js";
import { integer } from "./parse.js";

/** Every numeric limit is a flag named after its setting (ticketTtlMs → --ticket-ttl-ms), and HEADWIRE_TICKET_TTL_MS. */
const LIMITS: ReadonlyArray<[LimitKey, string]> = [
  ["cacheMaxBytes", "header bytes kept in the LRU cache in all"],
  ["cacheMaxEntryBytes", "larger headers are delivered but not cached"],
  ["defaultTtlMs", "lifetime of responses without freshness information"],
  ["maxStaleMs", "serve stale this long past freshness when the origin fails"],
  ["negativeTtlMs", "remember an origin failure this long"],
  ["fillLockMs", "fleet: how long one server may claim a URL's fetch"],
  ["persistDelayMs", "write the cache file this long after a change"],
  ["ticketTtlMs", "how long a delivery ticket can be collected"],
  ["idleTimeoutMs", "close sessions idle this long"],
  ["maxSessions", "sessions held at once"],
  ["maxQueuedQueriesPerSession", "pipelined queries one session may have waiting"],
  ["maxTicketsPerSession", "live tickets per session; more revoke the oldest"],
  ["dataReceiveBufferBytes", "kernel receive queue of the UDP socket"],
  ["maxLineBytes", "longest control line"],
  ["connectTimeoutMs", "connect timeout towards origins"],
  ["headerTimeoutMs", "time allowed for an origin's whole header"],
  ["maxHeaderBytes", "largest header accepted from an origin"],
  ["maxDatagramBytes", "largest UDP payload sent"],
  ["retransmitBudget", "full deliveries one ticket may cost at most"],
  ["shutdownGraceMs", "longest wait for in-flight work at shutdown"],
];

type LimitKey = {
  [K in keyof ServerConfig]: ServerConfig[K] extends number ? K : never;
}[keyof ServerConfig];

export function serverCommand(): Command {
  const d = DEFAULT_SERVER_CONFIG;
  const command = new Command("server")
    .summary("run the headwire server")
    .description(
      "Listen for clients on a TCP control port and a UDP data port, fetch the HTTP response header of " +
        "each URL they ask for (or take it from the cache, RFC 9111 freshness), and deliver it over UDP " +
        "to the address of the TCP session only. The cache lives in memory and in --cache-file (written " +
        "shortly after each change and at TERMINATE), or in Redis for a fleet (--cache). An outbound " +
        "guard refuses origins on loopback, private and other non-public addresses unless allowed.",
    )
    .addOption(new Option("--host <address>", "address to bind both ports to").env("HEADWIRE_HOST").default(d.host))
    .addOption(
      new Option("-p, --port <port>", "TCP control port")
        .env("HEADWIRE_PORT")
        .argParser(integer)
        .default(d.controlPort),
    )
    .addOption(
      new Option("--data-port <port>", "UDP data port")
        .env("HEADWIRE_DATA_PORT")
        .argParser(integer)
        .default(d.dataPort),
    )
    .addOption(
      new Option("--advertise <host>", "host clients send UDP to (behind NAT or a load balancer)").env(
        "HEADWIRE_ADVERTISE",
      ),
    )
    .addOption(new Option("--cache-file <path>", "persisted cache").env("HEADWIRE_CACHE_FILE").default(d.cacheFile))
    .addOption(
      new Option(
        "--cache <url>",
        "shared cache for a fleet: redis://HOST:PORT/DB (default: memory + --cache-file)",
      ).env("HEADWIRE_CACHE"),
    )
    .addOption(
      new Option("--cache-entries <n>", "entries kept in the LRU cache")
        .env("HEADWIRE_CACHE_ENTRIES")
        .argParser(integer)
        .default(d.cacheMaxEntries),
    )
    .addOption(
      new Option("--admin-token <token>", "lets remote sessions use PURGE after AUTH <token> (≥ 16 characters)").env(
        "HEADWIRE_ADMIN_TOKEN",
      ),
    )
    .option(
      "--no-loopback-admin",
      "loopback sessions need AUTH for admin commands too (set it when a proxy on this host forwards clients)",
    )
    .option("--allow-private", "let origins be loopback or private addresses (never on a public server)", false)
    .option("--allow <cidr...>", "let origins be in these address ranges too")
    .option("--insecure", "do not verify origins' TLS certificates", false)
    .option("--ca-file <path>", "PEM file of extra CAs trusted for origins")
    .addHelpText(
      "after",
      `
Every option can also be set with the environment variable shown beside it, or
HEADWIRE_<OPTION_IN_CAPITALS> for the limits (e.g. HEADWIRE_TICKET_TTL_MS). Bad values
stop the server at start with a precise message.

Files:
  <cache-file>        the cache, human-readable (format in docs/operations.md)
  <cache-file>.lock   the PID of the server that owns the cache file; a second server is refused

Exit status:
  0  stopped by SIGINT or SIGTERM, cache persisted
  1  could not start (port in use, cache file owned by another server, bad configuration)
  2  bad usage

Examples:
  headwire server                                  # ports 50366/tcp and 50367/udp on all addresses
  headwire server --port 0 --data-port 0           # ephemeral ports, printed on the ready line
  headwire server --allow-private --cache-file /var/lib/headwire/cache.txt
  headwire server --cache redis://10.0.0.5:6379/0 --advertise 203.0.113.7   # one of a fleet

On SIGINT or SIGTERM the server stops accepting sessions, finishes the queries in flight,
persists the cache and exits 0.`,
    )
    .action(async (opts) => {
      const overrides: Partial<ServerConfig> = {
        ...Object.fromEntries(LIMITS.map(([key]) => [key, opts[key]])),
        host: opts.host,
        controlPort: opts.port,
        dataPort: opts.dataPort,
        advertiseHost: opts.advertise ?? "",
        cacheFile: opts.cacheFile,
        cacheMaxEntries: opts.cacheEntries,
        cacheUrl: opts.cache ?? "",
        adminToken: opts.adminToken ?? "",
        loopbackIsAdmin: opts.loopbackAdmin,
      };
      let server: HeadwireServer;
      try {
        server = new HeadwireServer({
          ...overrides,
          allowPrivate: opts.allowPrivate,
          allow: opts.allow ?? [],
          insecureTls: opts.insecure,
          caFile: opts.caFile,
        });
        await server.start();
      } catch (error) {
        process.stderr.write(`headwire server: cannot start: ${(error as Error).message}\n`);
        process.exit(1);
      }
      process.stdout.write(
        `headwire server ready: control tcp port ${server.controlPort}, data udp port ${server.dataPort}\n`,
      );
      const stop = (signal: string) => {
        process.stderr.write(`headwire server: ${signal}: stopping\n`);
        server.stop().then(
          () => process.exit(0),
          (error: unknown) => {
            process.stderr.write(`headwire server: shutdown failed: ${String(error)}\n`);
            process.exit(1);
          },
        );
      };
      process.once("SIGINT", () => stop("SIGINT"));
      process.once("SIGTERM", () => stop("SIGTERM"));
    });
  for (const [key, description] of LIMITS) command.addOption(limitOption(key, description));
  return command;
}

function limitOption(key: LimitKey, description: string): Option {
  const flag = key.replace(/[A-Z]/g, (letter) => `-${letter.toLowerCase()}`);
  const unit = key.endsWith("Ms") ? "<ms>" : "<n>";
  return new Option(`--${flag} ${unit}`, description)
    .env(`HEADWIRE_${flag.toUpperCase().replace(/-/g, "_")}`)
    .argParser(integer)
    .default(DEFAULT_SERVER_CONFIG[key]);
}
