/**
 * One server's cache, persisted: a bounded LRU in memory that owns cache.txt. open() takes the
 * file's lock and loads it; every change schedules a write persistDelayMs later (changes in
 * between are written together, off the query path); flush() writes now; close() flushes and
 * releases the lock.
 */
import { CacheFile, type CacheFileLog } from "./cache-file.js";
import type { CacheEntry, CacheStore, CacheStoreStats } from "./cache-store.js";
import { MemoryCacheStore } from "./memory-cache-store.js";

export interface FileCacheStoreOptions {
  path: string;
  maxEntries: number;
  maxTotalBytes: number;
  /** Delay between a change and its write; 0 writes on the next turn of the event loop. */
  persistDelayMs: number;
  /**
   * How long a loaded entry is kept (cache.txt holds no expiry: it is derived from the entry,
   * as when it was stored; Freshness#retentionMs on a server).
   */
  retentionOnLoadMs: (entry: CacheEntry) => number;
  now?: () => number;
  log: CacheFileLog;
}

export class FileCacheStore implements CacheStore {
  readonly kind = "file" as const;
  readonly file: CacheFile;
  private readonly memory: MemoryCacheStore;
  private timer: NodeJS.Timeout | undefined;
  private writing: Promise<void> = Promise.resolve();
  private dirty = false;
  private opened = false;
  private writtenWaiters: Array<() => void> = [];

  constructor(private readonly options: FileCacheStoreOptions) {
    this.file = new CacheFile(options.path, options.log);
    this.memory = new MemoryCacheStore({
      maxEntries: options.maxEntries,
      maxTotalBytes: options.maxTotalBytes,
      ...(options.now ? { now: options.now } : {}),
      onChange: () => this.schedule(),
    });
  }

  async open(): Promise<string> {
    await this.file.acquire();
    this.opened = true;
    try {
      const loaded = await this.file.load();
      this.memory.load(loaded.entries, this.options.retentionOnLoadMs);
      return `${this.options.path}: ${loaded.entries.length} entries loaded`;
    } catch (error) {
      await this.release();
      throw error;
    }
  }

  get(key: string): Promise<CacheEntry | undefined> {
    return this.memory.get(key);
  }

  set(entry: CacheEntry, retentionMs: number): Promise<void> {
    return this.memory.set(entry, retentionMs);
  }

  delete(key: string): Promise<boolean> {
    return this.memory.delete(key);
  }

  deleteMany(keys: readonly string[]): Promise<number> {
    return this.memory.deleteMany(keys);
  }

  clear(): Promise<number> {
    return this.memory.clear();
  }

  list(): Promise<CacheEntry[]> {
    return this.memory.list();
  }

  async stats(): Promise<CacheStoreStats> {
    return { ...(await this.memory.stats()), kind: this.kind };
  }

  /** Writes now if anything changed since the last write; resolves when it is on disk. */
  flush(): Promise<void> {
    if (this.timer) {
      clearTimeout(this.timer);
      this.timer = undefined;
    }
    this.writing = this.writing.then(async () => {
      if (!this.dirty || !this.opened) return;
      this.dirty = false;
      try {
        await this.file.write(this.memory.snapshot());
        for (const resolve of this.writtenWaiters.splice(0)) resolve();
      } catch (error) {
        this.dirty = true;
        this.options.log(`cache file ${this.options.path} could not be written: ${(error as Error).message}`);
      }
    });
    return this.writing;
  }

  async close(): Promise<string> {
    await this.flush();
    await this.release();
    return `persisted to ${this.options.path} (${this.size} entries)`;
  }

  /** Entries held now (the offline `headwire cache` commands print it). */
  get size(): number {
    return this.memory.snapshot().length;
  }

  /** Resolves after the next completed write. */
  nextWrite(): Promise<void> {
    return new Promise((resolve) => this.writtenWaiters.push(resolve));
  }

  private async release(): Promise<void> {
    if (!this.opened) return;
    this.opened = false;
    await this.file.release();
  }

  /** Schedules a write persistDelayMs from now, unless one is already scheduled. */
  private schedule(): void {
    this.dirty = true;
    if (this.timer) return;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      void this.flush();
    }, this.options.persistDelayMs);
    this.timer.unref();
  }
}
