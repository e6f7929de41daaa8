/**
 * The one place a cache store is chosen: from the configuration, never by branching elsewhere.
 * `--cache redis://…` shares a fleet's cache; `--cache memory` keeps it in this process only (lost
 * at exit: containers, benchmarks); by default it is in memory and persisted to `--cache-file`.
 */
import type { ServerConfig } from "../config.js";
import type { CacheEntry, CacheStore } from "./cache-store.js";
import { FileCacheStore } from "./file-cache-store.js";
import { MemoryCacheStore } from "./memory-cache-store.js";
import { RedisCacheStore } from "./redis-cache-store.js";

/** What a store needs besides settings. */
export interface CacheStoreParts {
  now: () => number;
  log: (message: string) => void;
  /** How long an entry loaded from disk is kept (Freshness#retentionMs). */
  retentionMs: (entry: CacheEntry) => number;
  /** Told after each write of the cache file (the file store only). */
  onPersist?: (ok: boolean, ms: number, error: Error | undefined) => void;
}

export type CacheStoreSettings = Pick<
  ServerConfig,
  | "cacheUrl"
  | "cacheFile"
  | "cacheMaxEntries"
  | "cacheMaxBytes"
  | "persistDelayMs"
  | "persistMaxDelayMs"
  | "redisCommandTimeoutMs"
>;

export function createCacheStore(config: CacheStoreSettings, parts: CacheStoreParts): CacheStore {
  if (config.cacheUrl.startsWith("redis")) {
    return new RedisCacheStore({ url: config.cacheUrl, commandTimeoutMs: config.redisCommandTimeoutMs });
  }
  if (config.cacheUrl === "memory") {
    return new MemoryCacheStore({
      maxEntries: config.cacheMaxEntries,
      maxTotalBytes: config.cacheMaxBytes,
      now: parts.now,
    });
  }
  return new FileCacheStore({
    path: config.cacheFile,
    maxEntries: config.cacheMaxEntries,
    maxTotalBytes: config.cacheMaxBytes,
    persistDelayMs: config.persistDelayMs,
    persistMaxDelayMs: config.persistMaxDelayMs,
    retentionOnLoadMs: parts.retentionMs,
    now: parts.now,
    log: parts.log,
    ...(parts.onPersist ? { onPersist: parts.onPersist } : {}),
  });
}
