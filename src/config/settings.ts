/**
 * Every setting of headwire, each written once: its kind and bounds, default, flag, environment
 * variable and help. The config types, the defaults, the checks, the `headwire server` options
 * and the README's table are all derived from here (src/config/schema.ts says how).
 *
 * Units are in the names (`ticketTtlMs`, `maxHeaderBytes`). A flag is derived from the name
 * (`ticketTtlMs` → `--ticket-ttl-ms`, HEADWIRE_TICKET_TTL_MS, `ticket-ttl-ms` in a config file)
 * unless given; the given ones are older than the rule and documented, so they stay.
 *
 * `reload` says what a running server does when SIGHUP's re-read changes a setting: "now",
 * "new sessions", or (absent) nothing until a restart. HeadwireServer.apply() says how each
 * reloadable one reaches the part that reads it.
 */
import { parseAdminAddress } from "./admin-address.js";
import { parseAdvertise } from "./advertise.js";
import { cidrProblem } from "./cidr.js";
import { workerCountProblem } from "../cluster/worker-ports.js";
import type { SettingsTable } from "./schema.js";

export const DEFAULT_CONTROL_PORT = 50366;
export const DEFAULT_DATA_PORT = 50367;
export const DEFAULT_ADMIN_PORT = 50368;

const REDIS_URL = /^rediss?:\/\/[^/\s]+(\/\d{1,2})?$/;
const MIN_ADMIN_TOKEN_CHARS = 16;
const DAY_MS = 86_400_000;
const MiB = 1024 * 1024;
const DELIVERY_MODES: readonly string[] = ["udp", "tcp", "auto"];
const LOG_FORMATS: readonly string[] = ["auto", "json", "pretty"];
/** pino's levels; silent logs nothing. */
export const LOG_LEVELS: readonly string[] = ["trace", "debug", "info", "warn", "error", "fatal", "silent"];

export const SERVER_SETTINGS = {
  host: {
    kind: "string",
    default: "::",
    flag: "--host <address>",
    help: 'address both ports bind to ("::" is IPv6 and IPv4 where the system allows)',
  },
  controlPort: {
    kind: "integer",
    min: 0,
    max: 65535,
    default: DEFAULT_CONTROL_PORT,
    flag: "-p, --port <port>",
    help: "TCP control port (0: ephemeral)",
  },
  dataPort: {
    kind: "integer",
    min: 0,
    max: 65535,
    default: DEFAULT_DATA_PORT,
    flag: "--data-port <port>",
    help: "UDP data port (0: ephemeral)",
  },
  /**
   * More than one: a primary process shares the control port among N worker processes
   * (node:cluster), each with its own data port (src/cluster/worker-ports.ts).
   */
  workers: {
    kind: "string",
    default: "1",
    flag: "--workers <n|auto>",
    help: "server processes sharing the control port, each with its own UDP data port (data port + index); auto: one per CPU",
    check: (value) => workerCountProblem(value),
  },
  /** Empty: tickets name the address the TCP session reached, and the bound data port. */
  advertiseHost: {
    kind: "string",
    default: "",
    flag: "--advertise <host[:port]>",
    defaultText: "the address the client reached",
    help: "host[:port] clients send UDP to (behind NAT, a port mapping or a load balancer; IPv6 in brackets)",
    check: (value) => {
      const parsed = parseAdvertise(value);
      return parsed.ok ? undefined : parsed.problem;
    },
  },
  cacheFile: {
    kind: "string",
    default: "cache.txt",
    flag: "--cache-file <path>",
    help: "persisted cache (when the cache is in memory)",
    check: (path) => (path === "" ? "must be a non-empty path" : undefined),
  },
  cacheMaxEntries: {
    kind: "integer",
    min: 0,
    max: 10_000_000,
    default: 1000,
    flag: "--cache-entries <n>",
    help: "entries kept in the LRU cache (1000 headers is a few MiB)",
  },
  cacheUrl: {
    kind: "string",
    default: "",
    flag: "--cache <url>",
    defaultText: "memory + --cache-file",
    help: "where the cache lives: redis://HOST:PORT/DB for a fleet's shared cache (docs/operations.md), memory for this process only",
    check: (url) =>
      url === "" || url === "memory" || REDIS_URL.test(url)
        ? undefined
        : `must be empty, memory or redis://HOST:PORT/DB, got ${JSON.stringify(url)}`,
  },
  cacheMaxBytes: {
    kind: "integer",
    min: 0,
    max: 64 * 1024 * MiB,
    default: 64 * MiB,
    help: "header bytes kept in the LRU cache in all",
  },
  cacheMaxEntryBytes: {
    kind: "integer",
    min: 0,
    max: 16 * MiB,
    default: 256 * 1024,
    help: "larger headers are delivered but not cached",
  },
  /** RFC 9111 §4.2.2 lets a cache choose this lifetime (heuristic freshness). */
  defaultTtlMs: {
    kind: "integer",
    reload: "now",
    min: 0,
    max: 365 * DAY_MS,
    default: 300_000,
    help: "lifetime of responses without freshness information",
  },
  maxStaleMs: {
    kind: "integer",
    reload: "now",
    min: 0,
    max: 365 * DAY_MS,
    default: 3_600_000,
    help: "serve stale (STALE) this long past freshness when the origin fails",
  },
  negativeTtlMs: {
    kind: "integer",
    reload: "now",
    min: 0,
    max: 3_600_000,
    default: 2_000,
    help: "an origin failure is remembered and shared this long",
  },
  fillLockMs: {
    kind: "integer",
    reload: "now",
    min: 1,
    max: 600_000,
    default: 5_000,
    help: "fleet: how long one server may claim a URL's fetch",
  },
  persistDelayMs: {
    kind: "integer",
    min: 0,
    max: 600_000,
    default: 200,
    help: "cache file written this long after a change (batched)",
  },
  /**
   * While changes keep coming (a bulk batch of new URLs), each write of cache.txt waits twice as
   * long as the one before, up to this: a write rewrites the whole file, so writing every
   * persistDelayMs under a stream of new entries would cost the square of their number. An entry
   * is on disk at most this long (plus the write itself) after it was stored; a quiet spell of
   * persistMaxDelayMs brings the delay back to persistDelayMs.
   */
  persistMaxDelayMs: {
    kind: "integer",
    min: 0,
    max: 600_000,
    default: 2_000,
    help: "while changes keep coming, writes of the cache file back off (doubling from --persist-delay-ms) up to this",
  },
  /** Set it false when a proxy on this host forwards remote clients: they would all look local. */
  loopbackIsAdmin: {
    kind: "boolean",
    reload: "new sessions",
    default: true,
    flag: "--no-loopback-admin",
    env: false,
    defaultText: "loopback is admin",
    help: "loopback sessions need AUTH for admin commands too (a local proxy forwards clients)",
  },
  adminToken: {
    kind: "string",
    reload: "now",
    secret: true,
    default: "",
    flag: "--admin-token <token>",
    help: `lets remote sessions AUTH <token> and PURGE (≥ ${MIN_ADMIN_TOKEN_CHARS} characters)`,
    check: (token) =>
      token === "" || token.length >= MIN_ADMIN_TOKEN_CHARS
        ? undefined
        : `must be empty or at least ${MIN_ADMIN_TOKEN_CHARS} characters`,
  },
  maxQueuedQueriesPerSession: {
    kind: "integer",
    reload: "new sessions",
    min: 1,
    max: 10_000,
    default: 32,
    help: "pipelined queries one session may have waiting",
  },
  /** Keeps a fast client from holding ticketTtlMs × its query rate of headers in memory. */
  maxTicketsPerSession: {
    kind: "integer",
    reload: "now",
    min: 1,
    max: 100_000,
    default: 64,
    help: "live tickets per session; a new one revokes the oldest",
  },
  /**
   * One bound for every session together (maxTicketsPerSession bounds one). Each distinct header
   * Buffer is counted once: tickets for a cached entry share it, so cached lookups cost about the
   * cache's own bytes (cacheMaxBytes, 64 MiB by default), and the rest is left for uncacheable
   * misses: 128 MiB is 512 headers of the largest size (maxHeaderBytes) or ~100,000 typical
   * 1.3 KiB ones, i.e. ~10,000 uncacheable misses/s for ticketTtlMs.
   */
  maxTicketBytes: {
    kind: "integer",
    reload: "now",
    min: 1024,
    max: 64 * 1024 * MiB,
    default: 128 * MiB,
    help: "header bytes all live tickets may hold; past it, queries get SERVER_BUSY",
  },
  /** A burst of requests from many clients must fit. */
  dataReceiveBufferBytes: {
    kind: "integer",
    min: 65_536,
    max: 1024 * MiB,
    default: 4 * MiB,
    help: "kernel receive queue of the UDP socket",
  },
  /**
   * 30 s: a 226-chunk header over a 600 ms round trip with 30 % loss takes 7-10 s to collect
   * (docs/protocol.md); memory stays bounded by maxTicketBytes and maxTicketsPerSession.
   */
  ticketTtlMs: {
    kind: "integer",
    min: 1,
    max: 3_600_000,
    default: 30_000,
    help: "how long a delivery ticket can be collected over UDP",
  },
  /** Unless a query of the session is being answered. */
  idleTimeoutMs: {
    kind: "integer",
    reload: "new sessions",
    min: 1,
    max: DAY_MS,
    default: 300_000,
    help: "sessions without a complete line this long are closed (IDLE_TIMEOUT)",
  },
  maxSessions: {
    kind: "integer",
    reload: "now",
    min: 1,
    max: 1_000_000,
    default: 20_000,
    help: "sessions at once; more get SERVER_BUSY",
  },
  // ---- Abuse limits (issue 11): what one client may cost the server and make it send to others ----
  maxSessionsPerAddress: {
    kind: "integer",
    reload: "now",
    min: 1,
    max: 1_000_000,
    default: 64,
    help: "sessions at once from one client address; more get SESSION_LIMIT",
  },
  connectionsPerSecondPerAddress: {
    kind: "integer",
    reload: "now",
    min: 0,
    max: 1_000_000,
    default: 20,
    help: "new sessions a second from one client address (0: no limit); more get SESSION_LIMIT",
  },
  connectionBurstPerAddress: {
    kind: "integer",
    reload: "now",
    min: 1,
    max: 1_000_000,
    default: 40,
    help: "new sessions one client address may open at once before connectionsPerSecondPerAddress applies",
  },
  queriesPerSecondPerAddress: {
    kind: "integer",
    reload: "now",
    min: 0,
    max: 1_000_000,
    default: 200,
    help: "queries per second from one client address, all its sessions together (0: no limit); more get RATE_LIMITED",
  },
  queryBurstPerAddress: {
    kind: "integer",
    reload: "now",
    min: 1,
    max: 1_000_000,
    default: 400,
    help: "queries one client address may send at once before queriesPerSecondPerAddress applies",
  },
  /** cache=refresh (client --fresh) always costs an origin request: its own, lower, limit. */
  refreshesPerSecondPerAddress: {
    kind: "integer",
    min: 0,
    max: 1_000_000,
    default: 2,
    help: "cache=refresh queries (client --fresh) per second from one client address (0: no limit); more get RATE_LIMITED",
  },
  refreshBurstPerAddress: {
    kind: "integer",
    min: 1,
    max: 1_000_000,
    default: 10,
    help: "cache=refresh queries one client address may send at once before refreshesPerSecondPerAddress applies",
  },
  /** A query's own request fields (header=, client -H/-A): part of its cache key, so bounded. */
  maxRequestHeaders: {
    kind: "integer",
    min: 0,
    max: 100,
    default: 16,
    help: "most header= request fields one query may send the origin (client -H, -A)",
  },
  maxRequestHeaderBytes: {
    kind: "integer",
    min: 0,
    max: 65_536,
    default: 4096,
    help: "bytes of one query's header= request fields together, each counted as `name: value`",
  },
  linesPerSecondPerSession: {
    kind: "integer",
    reload: "new sessions",
    min: 1,
    max: 1_000_000,
    default: 1000,
    help: "control lines read per second from one session; past it the session is not read (TCP pushes back)",
  },
  badLineBurst: {
    kind: "integer",
    reload: "new sessions",
    min: 1,
    max: 1_000_000,
    default: 20,
    help: "bad lines (empty, unknown, malformed) a session may send at once; past it and badLinesPerSecond it is closed with TOO_MANY_ERRORS",
  },
  badLinesPerSecond: {
    kind: "integer",
    reload: "new sessions",
    min: 0,
    max: 1_000_000,
    default: 1,
    help: "bad lines forgiven per second after badLineBurst",
  },
  maxReplyBytes: {
    kind: "integer",
    reload: "now",
    min: 65_536,
    max: 64 * 1024 * MiB,
    default: 64 * MiB,
    help: "reply bytes waiting to be written to all clients; past it sessions are not read and queries get SERVER_BUSY",
  },
  originConcurrentFetches: {
    kind: "integer",
    reload: "now",
    min: 0,
    max: 1_000_000,
    default: 16,
    help: "requests in flight to one origin host (each redirect hop counts; 0: no limit); more get ORIGIN_BUSY",
  },
  originFetchesPerSecond: {
    kind: "integer",
    reload: "now",
    min: 0,
    max: 1_000_000,
    default: 20,
    help: "requests per second to one origin host (each redirect hop counts; 0: no limit); more get ORIGIN_BUSY",
  },
  originFetchBurst: {
    kind: "integer",
    reload: "now",
    min: 1,
    max: 1_000_000,
    default: 40,
    help: "requests one origin host may be sent at once before originFetchesPerSecond applies",
  },
  originKeepAliveMs: {
    kind: "integer",
    reload: "now",
    min: 0,
    max: 600_000,
    default: 4_000,
    help: "an origin connection is kept this long unused for the next request to the same address (0: a connection per request)",
  },
  originIdleConnections: {
    kind: "integer",
    reload: "now",
    min: 0,
    max: 100_000,
    default: 256,
    help: "idle origin connections kept in all (each holds a file descriptor); past it the oldest is closed",
  },
  originIdleConnectionsPerAddress: {
    kind: "integer",
    reload: "now",
    min: 0,
    max: 100_000,
    default: 64,
    help: "idle connections kept to one origin address and port (and, for https, one certificate name)",
  },
  originDrainMaxBytes: {
    kind: "integer",
    reload: "now",
    min: 0,
    max: 16 * MiB,
    default: 65_536,
    help: "a response body up to this long is read and dropped after its header, so that its connection can be kept; longer ones close it",
  },
  maxLineBytes: {
    kind: "integer",
    reload: "new sessions",
    min: 64,
    max: 1_048_576,
    default: 8192,
    help: "longest control line, newline excluded",
  },
  connectTimeoutMs: {
    kind: "integer",
    reload: "now",
    min: 1,
    max: 600_000,
    default: 5_000,
    help: "connect timeout towards origins",
  },
  headerTimeoutMs: {
    kind: "integer",
    reload: "now",
    min: 1,
    max: 600_000,
    default: 10_000,
    help: "time allowed for an origin's whole header after connecting",
  },
  maxHeaderBytes: {
    kind: "integer",
    min: 1024,
    max: 16 * MiB,
    default: 256 * 1024,
    help: "largest header accepted from an origin (and so delivered)",
  },
  /** 1200 keeps clear of IP fragmentation on any path (IPv6's minimum MTU is 1280). */
  maxDatagramBytes: {
    kind: "integer",
    min: 256,
    max: 65_507,
    default: 1200,
    help: "largest UDP payload sent",
  },
  /** Bytes sent for one ticket stay within retransmitBudget × (header bytes + 44 × chunks). */
  retransmitBudget: {
    kind: "integer",
    reload: "now",
    min: 1,
    max: 64,
    default: 4,
    help: "full deliveries one ticket may cost at most",
  },
  /**
   * Datagrams a client reports its own kernel dropped (a DROPS datagram) are given back to its
   * ticket's budget, up to this many full deliveries: the server cannot check the client's kernel,
   * so the credit is bounded (docs/protocol.md, "Budget and amplification").
   */
  bufferLossCreditDeliveries: {
    kind: "integer",
    min: 0,
    max: 8,
    default: 1,
    help: "full deliveries a ticket may get back for datagrams its client reports its own kernel dropped (0: none)",
  },
  shutdownGraceMs: {
    kind: "integer",
    reload: "now",
    min: 0,
    max: 600_000,
    default: 10_000,
    help: "longest wait for in-flight work at shutdown",
  },
  /** Past it the shared cache counts as unavailable and the origin is asked directly. */
  redisCommandTimeoutMs: {
    kind: "integer",
    min: 1,
    max: 60_000,
    default: 1000,
    help: "fleet: time allowed for one Redis command",
  },
  /** Parsing a URL costs more than the rest of a cached lookup, so recent inputs are remembered. */
  urlMemoEntries: {
    kind: "integer",
    min: 1,
    max: 1_000_000,
    default: 10_000,
    help: "parsed URLs remembered",
  },
  /** Counted as the lengths of the input and the normalized URL: long URLs cannot make the memo large. */
  urlMemoBytes: {
    kind: "integer",
    min: 1024,
    max: 1024 * MiB,
    default: 4 * MiB,
    help: "bytes of URLs in the parsed-URL memo in all",
  },
  negativeCacheEntries: {
    kind: "integer",
    reload: "now",
    min: 1,
    max: 10_000_000,
    default: 10_000,
    help: "distinct failing URLs remembered at once",
  },
  /** The outbound guard (src/fetch/outbound-guard.ts); the demo and tests need it, origins on loopback. */
  allowPrivate: {
    kind: "boolean",
    reload: "now",
    default: false,
    flag: "--allow-private",
    env: false,
    help: "let origins be loopback or private addresses (never on a public server)",
  },
  /** CIDR ranges; the outbound guard checks their syntax. */
  allow: {
    kind: "list",
    reload: "now",
    default: [],
    flag: "--allow <cidr...>",
    env: false,
    help: "let origins be in these CIDR ranges too (e.g. 10.1.2.0/24)",
    check: cidrProblem,
  },
  insecureTls: {
    kind: "boolean",
    default: false,
    flag: "--insecure",
    env: false,
    help: "do not verify origins' TLS certificates",
  },
  /** Per query, not for every query as --insecure: an unverified answer is cached apart (insecure=1 in its key). */
  allowInsecureQueries: {
    kind: "boolean",
    default: false,
    env: false,
    help: "let a query skip TLS certificate checks with insecure=1 (client -k); refused with FORBIDDEN_OPTION otherwise",
  },
  /** Added to the system's trusted CAs, not in their place. */
  caFile: {
    kind: "string",
    default: "",
    flag: "--ca-file <path>",
    env: false,
    help: "PEM file of extra CAs trusted for origins",
  },
  logFormat: {
    kind: "string",
    default: "auto",
    flag: "--log-format <format>",
    defaultText: "auto: pretty on a terminal, json otherwise",
    help: "json (one object a line on stderr) or pretty (for people)",
    check: (value) =>
      LOG_FORMATS.includes(value) ? undefined : `must be auto, json or pretty, got ${JSON.stringify(value)}`,
  },
  logLevel: {
    kind: "string",
    default: "info",
    flag: "--log-level <level>",
    reload: "now",
    help: "least level logged: trace, debug, info (one line a query), warn, error, fatal or silent",
    check: (value) =>
      LOG_LEVELS.includes(value) ? undefined : `must be one of ${LOG_LEVELS.join(", ")}, got ${JSON.stringify(value)}`,
  },
  /** Log lines wait here while stderr is slow; past it they are dropped (and counted), never waited for. */
  logBufferBytes: {
    kind: "integer",
    min: 4096,
    max: 1024 * MiB,
    default: 4 * MiB,
    help: "log bytes held for a slow stderr; beyond, lines are dropped and counted",
  },
  limitWarningsPerSecond: {
    kind: "integer",
    min: 1,
    max: 10_000,
    default: 10,
    help: "limit-hit warnings logged a second (a burst as large); the rest are counted in the next",
  },
  adminHttp: {
    kind: "string",
    default: `127.0.0.1:${DEFAULT_ADMIN_PORT}`,
    flag: "--admin-http <ip:port|off>",
    help: "admin HTTP listener: /metrics, /healthz, /readyz, /cache, the status page; beyond loopback it needs --admin-token",
    check: (value) => {
      const parsed = parseAdminAddress(value);
      return parsed.ok ? undefined : parsed.problem;
    },
  },
  statusRecentQueries: {
    kind: "integer",
    min: 1,
    max: 100_000,
    default: 200,
    help: "queries the status page keeps (newest first)",
  },
  statusRecentProblems: {
    kind: "integer",
    min: 1,
    max: 100_000,
    default: 100,
    help: "errors and limit hits the status page keeps",
  },
  statusTraceEvents: {
    kind: "integer",
    min: 1,
    max: 100_000,
    default: 400,
    help: "lines and datagrams kept per session for its sequence diagram, while the page is watched",
  },
  statusTraceSessions: {
    kind: "integer",
    min: 1,
    max: 100_000,
    default: 256,
    help: "sessions whose trace is kept at once (the oldest is forgotten)",
  },
  statusWatchers: {
    kind: "integer",
    min: 1,
    max: 10_000,
    default: 32,
    help: "status pages watching at once (server-sent event streams)",
  },
  statusWatcherBufferBytes: {
    kind: "integer",
    min: 4096,
    max: 1024 * MiB,
    default: MiB,
    help: "bytes a status page may fall behind by; past it its stream is closed (it reconnects)",
  },
} as const satisfies SettingsTable;

/** The client's settings; most have no flag of their own (`--server` sets serverHost and serverPort). */
export const CLIENT_SETTINGS = {
  serverHost: {
    kind: "string",
    default: "127.0.0.1",
    flag: false,
    help: "host of the headwire server",
    check: (host) => (host === "" ? "must not be empty" : undefined),
  },
  serverPort: {
    kind: "integer",
    min: 1,
    max: 65535,
    default: DEFAULT_CONTROL_PORT,
    flag: false,
    help: "control port of the headwire server",
  },
  outDir: {
    kind: "string",
    default: ".",
    // -o is curl's --output (one file); --output-dir is curl's name (7.73) for a directory.
    flag: "--output-dir <dir>",
    env: false,
    help: "directory the header files are written to, one per URL (created if missing)",
  },
  connectTimeoutMs: {
    kind: "integer",
    min: 1,
    max: 600_000,
    default: 5_000,
    flag: false,
    help: "time allowed to open the control connection",
  },
  /**
   * A headwire server greets at once on connect; a wrong port (an HTTP or TLS server, which waits
   * for its client to speak first) would otherwise hold the client until --reply-timeout-ms.
   */
  greetingTimeoutMs: {
    kind: "integer",
    min: 1,
    max: 600_000,
    default: 3_000,
    help: "wait for the server's greeting after connecting; past it the peer is not a headwire server (NOT_HEADWIRE)",
  },
  /** The server may fetch from the origin meanwhile. */
  replyTimeoutMs: {
    kind: "integer",
    min: 1,
    max: 3_600_000,
    default: 30_000,
    env: false,
    help: "wait for the server's reply to a query",
  },
  /**
   * Once chunks arrive the wait adapts to the measured round-trip time (RFC 6298's estimator),
   * between minChunkTimeoutMs and maxChunkTimeoutMs, and doubles on each silent round.
   */
  /** RFC 6298 §2.1: 1 s before the first sample; a shorter one re-asks everything on slow paths. */
  chunkTimeoutMs: {
    kind: "integer",
    min: 1,
    max: 60_000,
    default: 1000,
    env: false,
    help: "wait before asking again for lost UDP chunks",
  },
  minChunkTimeoutMs: {
    kind: "integer",
    min: 1,
    max: 60_000,
    default: 20,
    flag: false,
    help: "shortest wait for lost chunks, however short the round trip",
  },
  maxChunkTimeoutMs: {
    kind: "integer",
    min: 1,
    max: 60_000,
    default: 8000,
    flag: false,
    help: "longest wait for lost chunks, however many silent rounds",
  },
  maxDeliveryAttempts: {
    kind: "integer",
    min: 1,
    max: 1000,
    default: 12,
    flag: false,
    help: "requests for missing chunks before delivery is given up",
  },
  /** The congestion window starts at 10 (RFC 9002 §7.2) and grows up to this. */
  windowChunks: {
    kind: "integer",
    min: 1,
    max: 4096,
    default: 64,
    flag: false,
    help: "chunks asked for and not yet received, at most (the receive window)",
  },
  /**
   * Four initial RTOs: with not one datagram back by then (after ~16 probes, see PROBES_PER_RTO in
   * src/client/header-receiver.ts), UDP is taken as blocked and the query ends in UDP_SILENT
   * rather than waiting for the ticket to expire.
   */
  silentAfterMs: {
    kind: "integer",
    min: 1,
    max: 600_000,
    default: 4000,
    flag: false,
    help: "no datagram at all from the server's UDP port this long after the first request: UDP_SILENT",
  },
  /** A hostile server cannot make the client allocate more. */
  maxHeaderBytes: {
    kind: "integer",
    min: 1024,
    max: 1024 * MiB,
    default: 16 * MiB,
    flag: false,
    help: "largest header the client accepts a ticket for",
  },
  /**
   * A ticket without ttl, or with a longer one, is bounded by this: a server that drips one chunk
   * at a time resets the silent rounds with each, and would otherwise hold a query forever.
   */
  maxTicketTtlMs: {
    kind: "integer",
    min: 1,
    max: 3_600_000,
    default: 30_000,
    env: false,
    help: "longest time one header's UDP collection may take, whatever the ticket's ttl",
  },
  /**
   * auto keeps UDP first (the seed's delivery) and needs nothing from a user whose UDP is blocked:
   * after a UDP failure the query is asked again with delivery=tcp, and TCP is kept for the session.
   */
  delivery: {
    kind: "string",
    default: "auto",
    flag: "--delivery <mode>",
    help: "how headers come: udp, tcp (on the control connection), or auto (UDP, then TCP for the session once UDP fails)",
    check: (mode) =>
      DELIVERY_MODES.includes(mode) ? undefined : `must be udp, tcp or auto, got ${JSON.stringify(mode)}`,
  },
  /**
   * A session outlives its server: after IDLE_TIMEOUT, SHUTTING_DOWN or a lost connection the
   * client connects again (a restart takes seconds) and goes on where it was: a batch, the
   * prompt, a pipe or the URL arguments (the query in flight is asked again).
   */
  reconnectAttempts: {
    kind: "integer",
    min: 0,
    max: 100,
    default: 8,
    help: "new connections tried after a session is lost (IDLE_TIMEOUT, SHUTTING_DOWN, a lost connection), before giving up (0: none)",
  },
  /** The first wait before connecting again; each further attempt waits twice as long, up to 5 s. */
  reconnectBackoffMs: {
    kind: "integer",
    min: 1,
    max: 60_000,
    default: 200,
    help: "wait before the first new connection after a lost session (doubles each attempt, at most 5 s)",
  },
  /**
   * A batch pipelines its queries (replies come in order, docs/protocol.md): several queries on one
   * session cost the client and the server fewer sockets, reads and writes than a session each
   * (measured: docs/performance.md, "Bulk"). The server queues at most
   * --max-queued-queries-per-session (32 by default) per session.
   */
  queriesPerSession: {
    kind: "integer",
    min: 1,
    max: 1000,
    default: 8,
    help: "with --batch: queries one session has in flight at once (--jobs N opens N / this many sessions)",
  },
  /**
   * A session waiting on its user (the prompt, a pipe) sends PING so the server does not close it
   * as idle. A server's greeting names its idle timeout (idle=), and a third of that is used when
   * shorter; this is the interval when the greeting does not say (older servers, 300 s by default).
   */
  keepAliveMs: {
    kind: "integer",
    min: 100,
    max: 86_400_000,
    default: 60_000,
    help: "at the prompt or reading a pipe: PING this often while waiting for input (at most a third of the server's idle timeout)",
  },
  /** A ticket whose delivery failed is not the last word: a new ticket has a fresh budget. */
  deliveryRetries: {
    kind: "integer",
    min: 0,
    max: 10,
    default: 2,
    help: "new tickets asked for after a failed UDP delivery, before DELIVERY_FAILED (or TCP, in auto)",
  },
  /**
   * A ticket's udp= host must be the control server's address or one of these: otherwise a
   * hostile server could make clients send REQUESTs to a third party (docs/protocol.md).
   */
  trustUdpHosts: {
    kind: "list",
    default: [],
    flag: "--trust-udp-host <host>",
    env: false,
    help: "accept tickets that send UDP to HOST (a server behind NAT with --advertise); repeatable",
  },
} as const satisfies SettingsTable;
