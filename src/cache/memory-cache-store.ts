import { LRUCache } from "lru-cache";
import { ConfigError } from "../errors.js";
import type { CacheEntry, CacheStore, CacheStoreStats } from "./cache-store.js";

export interface MemoryCacheStoreOptions {
  /** Entries kept; the least recently used one is evicted first. 0 disables caching. */
  maxEntries: number;
  /** Header bytes kept in all; least recently used entries are evicted to stay under it. */
  maxTotalBytes: number;
  /** The clock retention is measured by (tests move it); Date.now by default. */
  now?: () => number;
  /** Called after every change (the file store persists from here). */
  onChange?: () => void;
}

interface Held {
  entry: CacheEntry;
  /** Past this the entry is gone, as the contract says (set's retentionMs). */
  expiresAtMs: number;
}

/** A bounded least-recently-used cache in this process's memory. */
export class MemoryCacheStore implements CacheStore {
  readonly kind = "memory" as const;
  private readonly lru: LRUCache<string, Held> | undefined;
  private readonly onChange: () => void;
  private readonly now: () => number;

  constructor(options: MemoryCacheStoreOptions) {
    for (const name of ["maxEntries", "maxTotalBytes"] as const) {
      if (!Number.isInteger(options[name]) || options[name] < 0) {
        throw new ConfigError(`options.${name} must be a non-negative integer`);
      }
    }
    this.onChange = options.onChange ?? (() => {});
    this.now = options.now ?? Date.now;
    this.lru =
      options.maxEntries > 0 && options.maxTotalBytes > 0
        ? new LRUCache({
            max: options.maxEntries,
            maxSize: options.maxTotalBytes,
            sizeCalculation: (held) => Math.max(1, held.entry.header.length),
          })
        : undefined;
  }

  async open(): Promise<string> {
    return "in memory";
  }

  async get(key: string): Promise<CacheEntry | undefined> {
    return this.peek(key);
  }

  peek(key: string): CacheEntry | undefined {
    const held = this.lru?.get(key);
    if (!held) return undefined;
    if (held.expiresAtMs <= this.now()) {
      // Past its retention: gone, as it is from Redis (no change to announce: nothing a reader
      // of the store could still see has changed).
      this.lru?.delete(key);
      return undefined;
    }
    return held.entry;
  }

  async set(entry: CacheEntry, retentionMs: number): Promise<void> {
    if (!this.lru || !(retentionMs > 0)) return;
    this.lru.set(entry.key, { entry, expiresAtMs: this.now() + retentionMs });
    this.onChange();
  }

  async delete(key: string): Promise<boolean> {
    const deleted = this.lru?.delete(key) ?? false;
    if (deleted) this.onChange();
    return deleted;
  }

  async deleteMany(keys: readonly string[]): Promise<number> {
    let deleted = 0;
    for (const key of keys) if (this.lru?.delete(key)) deleted++;
    if (deleted > 0) this.onChange();
    return deleted;
  }

  async clear(): Promise<number> {
    const count = this.snapshot().length;
    this.lru?.clear();
    this.onChange();
    return count;
  }

  async list(): Promise<CacheEntry[]> {
    return this.snapshot().reverse();
  }

  async stats(): Promise<CacheStoreStats> {
    const live = this.snapshot();
    return { kind: this.kind, entries: live.length, bytes: live.reduce((sum, e) => sum + e.header.length, 0) };
  }

  async flush(): Promise<void> {}

  async close(): Promise<string> {
    return `in memory, not persisted (${this.snapshot().length} entries dropped)`;
  }

  /** Live entries from least to most recently used, without touching recency. */
  snapshot(): CacheEntry[] {
    if (!this.lru) return [];
    const now = this.now();
    const entries: CacheEntry[] = [];
    for (const held of this.lru.rvalues()) if (held && held.expiresAtMs > now) entries.push(held.entry);
    return entries;
  }

  /** Loads entries (least recently used first) without announcing a change. */
  load(entries: readonly CacheEntry[], retentionMs: (entry: CacheEntry) => number): void {
    if (!this.lru) return;
    for (const entry of entries) {
      const keepMs = retentionMs(entry);
      if (keepMs > 0) this.lru.set(entry.key, { entry, expiresAtMs: this.now() + keepMs });
    }
  }

  /** Entries held, expired ones not yet dropped included (they go on the next get or eviction). */
  get size(): number {
    return this.lru?.size ?? 0;
  }

  get totalBytes(): number {
    return this.lru?.calculatedSize ?? 0;
  }
}
