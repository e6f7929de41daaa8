/**
 * The cache contract. Callers hold a CacheStore and never know which one: memory (with the
 * cache.txt file behind it) on one server, Redis for a fleet.
 */
export interface CacheEntry {
  /** Normalized URL (see src/url/target.ts), with non-default query options after a `#`. */
  key: string;
  /** The origin's header block(s), byte for byte. */
  header: Buffer;
  /** Status code of the final response. */
  status: number;
  /** When the header was received from the origin (or last revalidated), in ms since the epoch. */
  storedAtMs: number;
}

export interface CacheStore {
  get(key: string): Promise<CacheEntry | undefined>;
  /** Stores an entry to be kept for at most retentionMs (the store may evict it sooner). */
  set(entry: CacheEntry, retentionMs: number): Promise<void>;
  delete(key: string): Promise<boolean>;
  clear(): Promise<number>;
  /**
   * Fleet-wide coalescing (optional): claims the right to fetch `key` for lockMs. A store shared
   * by several servers answers false while another server holds it.
   */
  claimFill?(key: string, lockMs: number): Promise<boolean>;
  releaseFill?(key: string): Promise<void>;
  close(): Promise<void>;
}
