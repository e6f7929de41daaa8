/**
 * All of headwire's settings, with their defaults and units in their names. Options are checked
 * once, when a server or client is built, so bad configuration fails at start.
 */
export const DEFAULT_CONTROL_PORT = 50366;
export const DEFAULT_DATA_PORT = 50367;

export interface ServerConfig {
  /** Address both listeners bind to; "::" listens on IPv6 and IPv4 where the system allows. */
  host: string;
  controlPort: number;
  dataPort: number;
  /** Host clients should send UDP requests to; empty means "the address the TCP session reached". */
  advertiseHost: string;
  /** Longest control line, in bytes, newline excluded. */
  maxLineBytes: number;
  /** A session with no complete line for this long (and no query being answered) is closed with IDLE_TIMEOUT. */
  idleTimeoutMs: number;
  /** Sessions beyond this are greeted with SERVER_BUSY and closed. */
  maxSessions: number;
  /** Queries a single session may have waiting for an answer at once (pipelining). */
  maxQueuedQueriesPerSession: number;
  /** How long a delivery ticket can be collected over UDP. */
  ticketTtlMs: number;
  /**
   * Live tickets one session may hold; a new one revokes the session's oldest. Keeps a fast
   * client from holding ticketTtlMs × its query rate of headers in memory.
   */
  maxTicketsPerSession: number;
  /** Largest UDP payload the server sends. 1200 keeps clear of IP fragmentation on any path. */
  maxDatagramBytes: number;
  /** Kernel receive queue of the UDP socket: a burst of requests from many clients must fit. */
  dataReceiveBufferBytes: number;
  /** Bytes sent for one ticket stay within retransmitBudget × (header bytes + 40 × chunks): that many full deliveries. */
  retransmitBudget: number;
  /** Connect timeout towards origins. */
  connectTimeoutMs: number;
  /** Time allowed for the whole response header after connecting. */
  headerTimeoutMs: number;
  /** Largest response header accepted from an origin (and so the largest delivered). */
  maxHeaderBytes: number;
  /** Path of the persisted cache file. */
  cacheFile: string;
  /**
   * Where the cache lives: "redis://host:port/db" for a fleet's shared cache, "memory" for this
   * process only (not persisted); empty for memory + cacheFile.
   */
  cacheUrl: string;
  /** Time allowed for connecting to Redis and for each command. */
  redisCommandTimeoutMs: number;
  /** Entries kept in the LRU cache. */
  cacheMaxEntries: number;
  /** Header bytes kept in the LRU cache in all. */
  cacheMaxBytes: number;
  /** Headers larger than this are delivered but not cached. */
  cacheMaxEntryBytes: number;
  /** Freshness lifetime of responses that carry no freshness information (RFC 9111 §4.2). */
  defaultTtlMs: number;
  /** How long past freshness an entry may be served (as STALE) when its origin fails. */
  maxStaleMs: number;
  /** How long an origin failure is remembered for a URL and shared by everyone asking. */
  negativeTtlMs: number;
  /** How long one server of a fleet may hold a URL's fill claim in the shared cache. */
  fillLockMs: number;
  /** Token that lets a remote session use admin commands (PURGE) after AUTH. */
  adminToken: string;
  /** Sessions from loopback may use admin commands without AUTH. */
  loopbackIsAdmin: boolean;
  /** Delay between a cache change and its persistence (changes in between are written together). */
  persistDelayMs: number;
  /** Longest a shutdown waits for in-flight queries before persisting and exiting anyway. */
  shutdownGraceMs: number;
}

export const DEFAULT_SERVER_CONFIG: ServerConfig = {
  host: "::",
  controlPort: DEFAULT_CONTROL_PORT,
  dataPort: DEFAULT_DATA_PORT,
  advertiseHost: "",
  maxLineBytes: 8192,
  idleTimeoutMs: 300_000,
  maxSessions: 20_000,
  maxQueuedQueriesPerSession: 32,
  ticketTtlMs: 10_000,
  maxTicketsPerSession: 64,
  maxDatagramBytes: 1200,
  dataReceiveBufferBytes: 4 * 1024 * 1024,
  retransmitBudget: 4,
  connectTimeoutMs: 5_000,
  headerTimeoutMs: 10_000,
  maxHeaderBytes: 256 * 1024,
  cacheFile: "cache.txt",
  cacheUrl: "",
  redisCommandTimeoutMs: 1000,
  cacheMaxEntries: 1000,
  cacheMaxBytes: 64 * 1024 * 1024,
  cacheMaxEntryBytes: 256 * 1024,
  defaultTtlMs: 300_000,
  maxStaleMs: 3_600_000,
  negativeTtlMs: 2_000,
  fillLockMs: 5_000,
  adminToken: "",
  loopbackIsAdmin: true,
  persistDelayMs: 200,
  shutdownGraceMs: 10_000,
};

export interface ClientConfig {
  serverHost: string;
  serverPort: number;
  /** Directory the header files are written to. */
  outDir: string;
  /** Time allowed to open the control connection. */
  connectTimeoutMs: number;
  /** Time allowed for the server's reply to one query (it may fetch from the origin meanwhile). */
  replyTimeoutMs: number;
  /**
   * Initial wait for the next chunk before asking again for what is missing. Once chunks arrive
   * the wait adapts to the measured round-trip time (RFC 6298's estimator), between
   * minChunkTimeoutMs and maxChunkTimeoutMs, and doubles on each silent round.
   */
  chunkTimeoutMs: number;
  minChunkTimeoutMs: number;
  maxChunkTimeoutMs: number;
  /** Requests for missing chunks before delivery is given up. */
  maxDeliveryAttempts: number;
  /** Chunks asked for at once (the receive window). */
  windowChunks: number;
  /** Largest header the client accepts a ticket for (a hostile server cannot make it allocate more). */
  maxHeaderBytes: number;
}

export const DEFAULT_CLIENT_CONFIG: ClientConfig = {
  serverHost: "127.0.0.1",
  serverPort: DEFAULT_CONTROL_PORT,
  outDir: ".",
  connectTimeoutMs: 5_000,
  replyTimeoutMs: 30_000,
  chunkTimeoutMs: 200,
  minChunkTimeoutMs: 20,
  maxChunkTimeoutMs: 1000,
  maxDeliveryAttempts: 12,
  windowChunks: 32,
  maxHeaderBytes: 16 * 1024 * 1024,
};

type NumericKeys<T> = { [K in keyof T]: T[K] extends number ? K : never }[keyof T];

interface Bound {
  min: number;
  max: number;
}

const SERVER_BOUNDS: Record<NumericKeys<ServerConfig>, Bound> = {
  controlPort: { min: 0, max: 65535 },
  dataPort: { min: 0, max: 65535 },
  maxLineBytes: { min: 64, max: 1_048_576 },
  idleTimeoutMs: { min: 1, max: 86_400_000 },
  maxSessions: { min: 1, max: 1_000_000 },
  maxQueuedQueriesPerSession: { min: 1, max: 10_000 },
  ticketTtlMs: { min: 1, max: 3_600_000 },
  maxTicketsPerSession: { min: 1, max: 100_000 },
  maxDatagramBytes: { min: 256, max: 65_507 },
  dataReceiveBufferBytes: { min: 65_536, max: 1024 * 1024 * 1024 },
  retransmitBudget: { min: 1, max: 64 },
  connectTimeoutMs: { min: 1, max: 600_000 },
  headerTimeoutMs: { min: 1, max: 600_000 },
  maxHeaderBytes: { min: 1024, max: 16 * 1024 * 1024 },
  cacheMaxEntries: { min: 0, max: 10_000_000 },
  cacheMaxBytes: { min: 0, max: 64 * 1024 * 1024 * 1024 },
  cacheMaxEntryBytes: { min: 0, max: 16 * 1024 * 1024 },
  defaultTtlMs: { min: 0, max: 365 * 86_400_000 },
  maxStaleMs: { min: 0, max: 365 * 86_400_000 },
  negativeTtlMs: { min: 0, max: 3_600_000 },
  fillLockMs: { min: 1, max: 600_000 },
  redisCommandTimeoutMs: { min: 1, max: 600_000 },
  persistDelayMs: { min: 0, max: 600_000 },
  shutdownGraceMs: { min: 0, max: 600_000 },
};

const CLIENT_BOUNDS: Record<NumericKeys<ClientConfig>, Bound> = {
  serverPort: { min: 1, max: 65535 },
  connectTimeoutMs: { min: 1, max: 600_000 },
  replyTimeoutMs: { min: 1, max: 3_600_000 },
  chunkTimeoutMs: { min: 1, max: 60_000 },
  minChunkTimeoutMs: { min: 1, max: 60_000 },
  maxChunkTimeoutMs: { min: 1, max: 60_000 },
  maxDeliveryAttempts: { min: 1, max: 1000 },
  windowChunks: { min: 1, max: 4096 },
  maxHeaderBytes: { min: 1024, max: 1024 * 1024 * 1024 },
};

export class ConfigError extends Error {
  override name = "ConfigError";
}

function checkIntegers<T extends object>(what: string, config: T, bounds: Record<string, Bound>): void {
  for (const [key, { min, max }] of Object.entries(bounds)) {
    const value = (config as Record<string, unknown>)[key];
    if (typeof value !== "number" || !Number.isInteger(value) || value < min || value > max) {
      throw new ConfigError(`${what}.${key} must be an integer from ${min} to ${max}, got ${String(value)}`);
    }
  }
}

export function resolveServerConfig(overrides: Partial<ServerConfig> = {}): ServerConfig {
  const config = { ...DEFAULT_SERVER_CONFIG, ...stripUndefined(overrides) };
  checkIntegers("server", config, SERVER_BOUNDS);
  if (config.maxHeaderBytes > 0xffff_ffff) throw new ConfigError("server.maxHeaderBytes is too large");
  if (typeof config.cacheFile !== "string" || config.cacheFile === "") {
    throw new ConfigError("server.cacheFile must be a non-empty path");
  }
  if (
    config.cacheUrl !== "" &&
    config.cacheUrl !== "memory" &&
    !/^rediss?:\/\/[^/\s]+(\/\d{1,2})?$/.test(config.cacheUrl)
  ) {
    throw new ConfigError(
      `server.cacheUrl must be empty, memory or redis://HOST:PORT/DB, got ${JSON.stringify(config.cacheUrl)}`,
    );
  }
  if (config.adminToken !== "" && config.adminToken.length < 16) {
    throw new ConfigError("server.adminToken must be empty or at least 16 characters");
  }
  return config;
}

export function resolveClientConfig(overrides: Partial<ClientConfig> = {}): ClientConfig {
  const config = { ...DEFAULT_CLIENT_CONFIG, ...stripUndefined(overrides) };
  checkIntegers("client", config, CLIENT_BOUNDS);
  if (config.serverHost === "") throw new ConfigError("client.serverHost must not be empty");
  return config;
}

function stripUndefined<T extends object>(value: Partial<T>): Partial<T> {
  return Object.fromEntries(Object.entries(value).filter(([, v]) => v !== undefined)) as Partial<T>;
}
