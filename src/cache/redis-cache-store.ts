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
import { Redis } from "ioredis";
import type { CacheEntry, CacheStore } from "./cache-store.js";

const ENTRY_PREFIX = "headwire:1:entry:";
const FILL_PREFIX = "headwire:1:fill:";

export interface RedisCacheStoreOptions {
  /** redis://host:port/db */
  url: string;
  /** Time allowed for connecting and for each command. */
  commandTimeoutMs: number;
}

export class RedisCacheStore implements CacheStore {
  private readonly redis: Redis;

  constructor(options: RedisCacheStoreOptions) {
    this.redis = new Redis(options.url, {
      lazyConnect: true,
      enableOfflineQueue: false,
      maxRetriesPerRequest: 0,
      connectTimeout: options.commandTimeoutMs,
      commandTimeout: options.commandTimeoutMs,
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

  async get(key: string): Promise<CacheEntry | undefined> {
    const value = await this.redis.getBuffer(ENTRY_PREFIX + key);
    if (!value) return undefined;
    const newline = value.indexOf(0x0a);
    const match = /^(\d{3}) (\d+)$/.exec(value.subarray(0, newline).toString("latin1"));
    if (newline === -1 || !match) return undefined;
    return { key, status: Number(match[1]), storedAtMs: Number(match[2]), header: value.subarray(newline + 1) };
  }

  async set(entry: CacheEntry, retentionMs: number): Promise<void> {
    if (retentionMs <= 0) return;
    const value = Buffer.concat([Buffer.from(`${entry.status} ${entry.storedAtMs}\n`), entry.header]);
    await this.redis.set(ENTRY_PREFIX + entry.key, value, "PX", Math.ceil(retentionMs));
  }

  async delete(key: string): Promise<boolean> {
    return (await this.redis.del(ENTRY_PREFIX + key)) > 0;
  }

  async clear(): Promise<number> {
    let deleted = 0;
    let cursor = "0";
    do {
      const [next, keys] = await this.redis.scan(cursor, "MATCH", `${ENTRY_PREFIX}*`, "COUNT", 500);
      cursor = next;
      if (keys.length > 0) deleted += await this.redis.del(...keys);
    } while (cursor !== "0");
    return deleted;
  }

  async claimFill(key: string, lockMs: number): Promise<boolean> {
    return (await this.redis.set(FILL_PREFIX + key, String(process.pid), "PX", lockMs, "NX")) === "OK";
  }

  async releaseFill(key: string): Promise<void> {
    await this.redis.del(FILL_PREFIX + key);
  }

  async close(): Promise<void> {
    this.redis.disconnect();
  }
}
