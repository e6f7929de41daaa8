import { LRUCache } from "lru-cache";
import type { CacheEntry, CacheStore } from "./cache-store.js";

export interface MemoryCacheStoreOptions {
  /** Entries kept; the least recently used one is evicted first. 0 disables caching. */
  maxEntries: number;
}

/** A bounded least-recently-used cache in this process's memory. */
export class MemoryCacheStore implements CacheStore {
  onChange?: () => void;
  private readonly lru: LRUCache<string, CacheEntry> | undefined;

  constructor(options: MemoryCacheStoreOptions) {
    if (!Number.isInteger(options.maxEntries) || options.maxEntries < 0) {
      throw new RangeError("options.maxEntries must be a non-negative integer");
    }
    this.lru = options.maxEntries > 0 ? new LRUCache({ max: options.maxEntries }) : undefined;
  }

  async get(key: string): Promise<CacheEntry | undefined> {
    return this.lru?.get(key);
  }

  async set(entry: CacheEntry): Promise<void> {
    if (!this.lru) return;
    this.lru.set(entry.key, entry);
    this.onChange?.();
  }

  async delete(key: string): Promise<boolean> {
    const deleted = this.lru?.delete(key) ?? false;
    if (deleted) this.onChange?.();
    return deleted;
  }

  async clear(): Promise<void> {
    this.lru?.clear();
    this.onChange?.();
  }

  async entries(): Promise<CacheEntry[]> {
    // rvalues() walks from least to most recently used, without touching recency.
    return this.lru ? [...this.lru.rvalues()].filter((e): e is CacheEntry => e !== undefined) : [];
  }

  /** Loads entries (oldest first) without announcing a change. */
  load(entries: readonly CacheEntry[]): void {
    for (const entry of entries) this.lru?.set(entry.key, entry);
  }

  get size(): number {
    return this.lru?.size ?? 0;
  }

  async close(): Promise<void> {}
}
