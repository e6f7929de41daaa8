import { LRUCache } from "lru-cache";
import type { CacheEntry, CacheStore } from "./cache-store.js";

export interface MemoryCacheStoreOptions {
  /** Entries kept; the least recently used one is evicted first. 0 disables caching. */
  maxEntries: number;
  /** Header bytes kept in all; least recently used entries are evicted to stay under it. */
  maxTotalBytes: number;
  /** Called after every change (the cache file hooks here). */
  onChange?: () => void;
}

/** A bounded least-recently-used cache in this process's memory. */
export class MemoryCacheStore implements CacheStore {
  private readonly lru: LRUCache<string, CacheEntry> | undefined;
  private readonly onChange: () => void;

  constructor(options: MemoryCacheStoreOptions) {
    for (const name of ["maxEntries", "maxTotalBytes"] as const) {
      if (!Number.isInteger(options[name]) || options[name] < 0) {
        throw new RangeError(`options.${name} must be a non-negative integer`);
      }
    }
    this.onChange = options.onChange ?? (() => {});
    this.lru =
      options.maxEntries > 0 && options.maxTotalBytes > 0
        ? new LRUCache({
            max: options.maxEntries,
            maxSize: options.maxTotalBytes,
            sizeCalculation: (entry) => Math.max(1, entry.header.length),
          })
        : undefined;
  }

  async get(key: string): Promise<CacheEntry | undefined> {
    return this.lru?.get(key);
  }

  /** Freshness decides what is served; entries stay until evicted, so a stale one can revalidate. */
  async set(entry: CacheEntry, _retentionMs: number): Promise<void> {
    if (!this.lru) return;
    this.lru.set(entry.key, entry);
    this.onChange();
  }

  async delete(key: string): Promise<boolean> {
    const deleted = this.lru?.delete(key) ?? false;
    if (deleted) this.onChange();
    return deleted;
  }

  async clear(): Promise<number> {
    const count = this.size;
    this.lru?.clear();
    this.onChange();
    return count;
  }

  /** Entries from least to most recently used, without touching recency. */
  snapshot(): CacheEntry[] {
    return this.lru ? [...this.lru.rvalues()].filter((e): e is CacheEntry => e !== undefined) : [];
  }

  /** Loads entries (least recently used first) without announcing a change. */
  load(entries: readonly CacheEntry[]): void {
    for (const entry of entries) this.lru?.set(entry.key, entry);
  }

  get size(): number {
    return this.lru?.size ?? 0;
  }

  get totalBytes(): number {
    return this.lru?.calculatedSize ?? 0;
  }

  async close(): Promise<void> {}
}
