/**
 * The cache contract. Callers hold a CacheStore and never know which one: memory (with the
 * cache.txt file behind it) today, Redis for a fleet later.
 */
export interface CacheEntry {
  /** Normalized URL (see src/url/target.ts); also the key. */
  key: string;
  /** The origin's header block(s), byte for byte. */
  header: Buffer;
  /** Status code of the final response. */
  status: number;
  /** When the header was received from the origin, in ms since the epoch. */
  storedAtMs: number;
}

export interface CacheStore {
  get(key: string): Promise<CacheEntry | undefined>;
  set(entry: CacheEntry): Promise<void>;
  delete(key: string): Promise<boolean>;
  clear(): Promise<void>;
  /** Entries from least to most recently used. */
  entries(): Promise<CacheEntry[]>;
  /** Called after every change; the file persistence hooks here. */
  onChange?: () => void;
  close(): Promise<void>;
}
