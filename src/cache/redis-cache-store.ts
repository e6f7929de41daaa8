/**
 * A cache shared by a fleet of servers, in Redis. Entries expire in Redis when they are no longer
 * useful (fresh lifetime plus the stale window), and a short per-URL claim (SET NX PX) lets one
 * server fetch a URL while the others wait for its entry. When Redis is down every call fails
 * at once (no offline queue), so the server can fetch directly and say so, and ioredis keeps
 * reconnecting in the background.
 *
 * Keys: `headwire:1:entry:<cache key>` holds `<status> <storedAtMs>\n<header bytes>`;
 * `headwire:1:fill:<cache key>` is the fill claim.
 */
import { randomBytes } from "node:crypto";
import { Redis } from "ioredis";
import type { CacheEntry, CacheStore, CacheStoreStats } from "./cache-store.js";

const ENTRY_PREFIX = "headwire:1:entry:";
const FILL_PREFIX = "headwire:1:fill:";

/**
 * Deletes a fill claim only if it is still ours: a claim that outlived its lock may have been
 * taken over by another server, whose claim must stand.
 */
const RELEASE_IF_OURS = `if redis.call("GET", KEYS[1]) == ARGV[1] then return redis.call("DEL", KEYS[1]) end return 0`;

export interface RedisCacheStoreOptions {
  /** redis://host:port/db */
  url: string;
  /** Time allowed for connecting and for each command. */
  commandTimeoutMs: number;
}

/** Keys asked for per SCAN step (listing, counting, clearing). */
const SCAN_COUNT = 500;

export class RedisCacheStore implements CacheStore {
  readonly kind = "redis" as const;
  private readonly redis: Redis;
  /** The value of each claim this server holds, by cache key. */
  private readonly claims = new Map<string, string>();

  constructor(private readonly options: RedisCacheStoreOptions) {
    this.redis = new Redis(options.url, {
      lazyConnect: true,
      enableOfflineQueue: false,
      maxRetriesPerRequest: 0,
      connectTimeout: options.commandTimeoutMs,
      commandTimeout: options.commandTimeoutMs,
      disconnectTimeout: options.commandTimeoutMs,
      retryStrategy: (attempt) => Math.min(attempt * 100, 1000),
    });
    // Failures surface through the commands; the connection keeps retrying on its own.
    this.redis.on("error", () => {});
  }

  /** Connects; a server starts even when Redis is down (it fetches directly meanwhile). */
  async connect(): Promise<boolean> {
    try {
      await this.redis.connect();
      return true;
    } catch {
      return false;
    }
  }

  async open(): Promise<string> {
    const connected = await this.connect();
    return `${this.options.url}: ${connected ? "connected" : "unreachable; fetching directly until it answers"}`;
  }

  async get(key: string): Promise<CacheEntry | undefined> {
    return decodeEntry(key, await this.redis.getBuffer(ENTRY_PREFIX + key));
  }

  async set(entry: CacheEntry, retentionMs: number): Promise<void> {
    if (retentionMs <= 0) return;
    const value = Buffer.concat([Buffer.from(`${entry.status} ${entry.storedAtMs}\n`), entry.header]);
    await this.redis.set(ENTRY_PREFIX + entry.key, value, "PX", Math.ceil(retentionMs));
  }

  async delete(key: string): Promise<boolean> {
    return (await this.redis.del(ENTRY_PREFIX + key)) > 0;
  }

  /** One DEL for every key: one round trip however many variants a purge names. */
  async deleteMany(keys: readonly string[]): Promise<number> {
    if (keys.length === 0) return 0;
    return this.redis.del(...keys.map((key) => ENTRY_PREFIX + key));
  }

  async clear(): Promise<number> {
    let deleted = 0;
    for await (const keys of this.scanEntryKeys()) deleted += await this.redis.del(...keys);
    return deleted;
  }

  /** Every server's entries, in Redis's order (it keeps no recency). */
  async list(): Promise<CacheEntry[]> {
    const entries: CacheEntry[] = [];
    for await (const keys of this.scanEntryKeys()) {
      const values = await this.redis.mgetBuffer(...keys);
      keys.forEach((redisKey, i) => {
        const entry = decodeEntry(redisKey.slice(ENTRY_PREFIX.length), values[i] ?? null);
        if (entry) entries.push(entry);
      });
    }
    return entries;
  }

  /** Counts entry keys with SCAN (bytes would cost a read of every entry: not reported). */
  /** One round trip (PING), bounded by commandTimeoutMs: what a readiness probe asks. */
  async ping(): Promise<void> {
    await this.redis.ping();
  }

  async stats(): Promise<CacheStoreStats> {
    let entries = 0;
    for await (const keys of this.scanEntryKeys()) entries += keys.length;
    return { kind: this.kind, entries, bytes: undefined };
  }

  /** Every write is acknowledged by Redis before set() resolves: nothing is pending. */
  async flush(): Promise<void> {}

  private async *scanEntryKeys(): AsyncGenerator<string[]> {
    let cursor = "0";
    do {
      const [next, keys] = await this.redis.scan(cursor, "MATCH", `${ENTRY_PREFIX}*`, "COUNT", SCAN_COUNT);
      cursor = next;
      if (keys.length > 0) yield keys;
    } while (cursor !== "0");
  }

  async claimFill(key: string, lockMs: number): Promise<boolean> {
    const claim = randomBytes(12).toString("hex");
    const claimed = (await this.redis.set(FILL_PREFIX + key, claim, "PX", Math.ceil(lockMs), "NX")) === "OK";
    if (claimed) this.claims.set(key, claim);
    return claimed;
  }

  async releaseFill(key: string): Promise<void> {
    const claim = this.claims.get(key);
    if (claim === undefined) return;
    this.claims.delete(key);
    await this.redis.eval(RELEASE_IF_OURS, 1, FILL_PREFIX + key, claim);
  }

  /** Lets commands already sent finish (QUIT), or just drops the connection when it is down. */
  async close(): Promise<string> {
    if (this.redis.status === "ready") {
      try {
        await this.redis.quit();
        return `${this.options.url}: disconnected`;
      } catch {
        // the connection went down meanwhile
      }
    }
    this.redis.disconnect();
    return `${this.options.url}: disconnected`;
  }
}

/** `<status> <storedAtMs>\n<header bytes>`; anything else (a foreign value) reads as absent. */
function decodeEntry(key: string, value: Buffer | null): CacheEntry | undefined {
  if (!value) return undefined;
  const newline = value.indexOf(0x0a);
  const match = /^(\d{3}) (\d+)$/.exec(value.subarray(0, newline).toString("latin1"));
  if (newline === -1 || !match) return undefined;
  return { key, status: Number(match[1]), storedAtMs: Number(match[2]), header: value.subarray(newline + 1) };
}
