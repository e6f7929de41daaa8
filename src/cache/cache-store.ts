/**
 * The cache contract. Callers hold a CacheStore and never know which one: memory, memory persisted
 * to cache.txt (one server), or Redis (a fleet). One behavioural suite
 * (test/cache/cache-store-contract.ts) runs against every implementation, so a difference between
 * stores is a failing test, not a surprise in production.
 */
export interface CacheEntry {
  /** Cache key (src/cache/cache-key.ts): the normalized URL, non-default query options after a `#`. */
  key: string;
  /** The origin's header block(s), byte for byte. */
  header: Buffer;
  /** Status code of the final response. */
  status: number;
  /** When the header was received from the origin (or last revalidated), in ms since the epoch. */
  storedAtMs: number;
}

export type CacheStoreKind = "memory" | "file" | "redis";

export interface CacheStoreStats {
  kind: CacheStoreKind;
  /** Entries held now (a fleet's shared store counts every server's). */
  entries: number;
  /** Header bytes held now; undefined where the store cannot tell cheaply (Redis). */
  bytes: number | undefined;
}

export interface CacheStore {
  readonly kind: CacheStoreKind;
  /**
   * Makes the store usable (loads a file, connects to Redis) and says what it found, for the
   * start-up log. A store that cannot be reached still opens: every call then fails, and the
   * server fetches from origins directly until it answers.
   */
  open(): Promise<string>;
  get(key: string): Promise<CacheEntry | undefined>;
  /**
   * What get() would answer, without waiting, where this process holds the entries in memory
   * (optional: a store behind a network or another process has no peek, and callers then use
   * get()). For the cached lookup's hot path, which then costs no promise.
   */
  peek?(key: string): CacheEntry | undefined;
  /**
   * Stores an entry to be kept for at most retentionMs from now (the store may evict it sooner);
   * retentionMs ≤ 0 stores nothing. Past it, get() answers undefined in every store.
   */
  set(entry: CacheEntry, retentionMs: number): Promise<void>;
  delete(key: string): Promise<boolean>;
  /** Deletes several keys at once (one round trip where the store is remote); returns how many existed. */
  deleteMany(keys: readonly string[]): Promise<number>;
  clear(): Promise<number>;
  /** The entries held, most recently used first where the store knows (for listing, not for queries). */
  list(): Promise<CacheEntry[]>;
  stats(): Promise<CacheStoreStats>;
  /** Rejects when a store behind a network (Redis) cannot be reached now; absent where it cannot fail so. */
  ping?(): Promise<void>;
  /** Makes every change so far durable (the file store writes it); resolves when done. */
  flush(): Promise<void>;
  /** Flushes, then gives up what the store holds (file lock, connection); says what became of it, for the log. */
  close(): Promise<string>;
  /**
   * Fleet-wide coalescing (optional): claims the right to fetch `key` for lockMs. A store shared
   * by several servers answers false while another server holds it.
   */
  claimFill?(key: string, lockMs: number): Promise<boolean>;
  releaseFill?(key: string): Promise<void>;
}
