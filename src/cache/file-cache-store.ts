/**
 * One server's cache, persisted: a bounded LRU in memory that owns cache.txt. open() takes the
 * file's lock and loads it; every change schedules a write persistDelayMs later (changes in
 * between are written together, off the query path); flush() writes now; close() flushes and
 * releases the lock.
 *
 * Each write rewrites the whole file (it stays one readable, atomically replaced file). Under a
 * stream of new entries (a bulk batch of 10,000 new URLs) writing every persistDelayMs would cost
 * the square of their number, so while changes keep coming each delay is twice the one before, up
 * to persistMaxDelayMs; a quiet spell that long brings it back to persistDelayMs. A change is thus
 * on disk at most persistMaxDelayMs (plus the writes under way) after it was made.
 *
 * A write that fails is never reported as a success: flush() and close() reject with a
 * CachePersistError, the changes stay pending for the next attempt, and the log says it once per
 * run of failures (and again when a write succeeds after them).
 */
import { CachePersistError } from "../errors.js";
import { CacheFile, type CacheFileLog } from "./cache-file.js";
import { cacheFileLimitBytes } from "./cache-file-format.js";
import type { CacheEntry, CacheStore, CacheStoreStats } from "./cache-store.js";
import { MemoryCacheStore } from "./memory-cache-store.js";

/** After a scheduled write failed, the next attempt is made this long later (or at the next change). */
const RETRY_DELAY_MS = 5000;

export interface FileCacheStoreOptions {
  path: string;
  maxEntries: number;
  maxTotalBytes: number;
  /** Delay between a change and its write; 0 writes on the next turn of the event loop. */
  persistDelayMs: number;
  /**
   * The longest delay while changes keep coming (the delay doubles from persistDelayMs up to it);
   * persistDelayMs when absent or smaller: no back-off.
   */
  persistMaxDelayMs?: number;
  /**
   * How long a loaded entry is kept (cache.txt holds no expiry: it is derived from the entry,
   * as when it was stored; Freshness#retentionMs on a server).
   */
  retentionOnLoadMs: (entry: CacheEntry) => number;
  now?: () => number;
  log: CacheFileLog;
  /** Told after each write of cache.txt: whether it succeeded and how long it took (metrics, logs). */
  onPersist?: (ok: boolean, ms: number, error: Error | undefined) => void;
}

/**
 * The delay of a write scheduled now (pure). A change that comes within the last delay of the
 * previous write's start means changes keep coming: twice the last delay (from 0: 1 ms), at most
 * `maxMs`. After a quiet spell of `maxMs`, `baseMs` again. `maxMs` below `baseMs` means no back-off.
 */
export function persistDelay(lastDelayMs: number, sinceLastWriteMs: number, baseMs: number, maxMs: number): number {
  const cap = Math.max(baseMs, maxMs);
  if (sinceLastWriteMs >= cap) return baseMs;
  if (sinceLastWriteMs < lastDelayMs || lastDelayMs === 0) return Math.min(cap, Math.max(1, 2 * lastDelayMs));
  return Math.min(cap, Math.max(baseMs, lastDelayMs));
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
  /** Writes failed in a row (the first is logged, and the success that ends the run). */
  private failures = 0;
  /** The delay the next scheduled write waits (persistDelayMs, doubled while changes keep coming). */
  private delayMs: number;
  /**
   * When the last write started (performance.now()): a change soon after it (during the write, or
   * just after) means changes keep coming.
   */
  private lastWriteStartMs = Number.NEGATIVE_INFINITY;

  constructor(private readonly options: FileCacheStoreOptions) {
    this.delayMs = options.persistDelayMs;
    this.file = new CacheFile(
      options.path,
      options.log,
      cacheFileLimitBytes(options.maxTotalBytes, options.maxEntries),
    );
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

  /**
   * Writes now if anything changed since the last write; resolves when it is on disk, rejects
   * with a CachePersistError when it could not be written (the changes stay pending).
   */
  flush(): Promise<void> {
    if (this.timer) {
      clearTimeout(this.timer);
      this.timer = undefined;
    }
    const run = this.writing.then(() => this.writeIfDirty());
    // Writes stay in sequence whatever became of the one before.
    this.writing = run.catch(() => {});
    return run;
  }

  /** Flushes and gives the file up; the lock is released even when the last write fails. */
  async close(): Promise<string> {
    try {
      await this.flush();
    } finally {
      await this.release();
      // A retry a failed last write scheduled: nobody owns the file any more.
      clearTimeout(this.timer);
      this.timer = undefined;
    }
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

  private async writeIfDirty(): Promise<void> {
    if (!this.dirty || !this.opened) return;
    this.dirty = false;
    const started = performance.now();
    this.lastWriteStartMs = started;
    try {
      await this.file.write(this.memory.snapshot());
    } catch (error) {
      this.dirty = true;
      const failure = new CachePersistError(
        `cache file ${this.options.path} could not be written: ${(error as Error).message}`,
        { cause: error },
      );
      this.options.onPersist?.(false, performance.now() - started, failure);
      if (this.failures++ === 0) this.options.log(`${failure.message}; the cache stays in memory, retrying`);
      // Whoever asked (a TERMINATE, SIGHUP, the timer), the changes are tried again later, so a
      // disk that recovers gets them without waiting for the next change.
      this.scheduleWrite(Math.max(RETRY_DELAY_MS, this.options.persistDelayMs));
      throw failure;
    }
    this.options.onPersist?.(true, performance.now() - started, undefined);
    if (this.failures > 0) {
      this.options.log(`cache file ${this.options.path} written again after ${this.failures} failed attempts`);
      this.failures = 0;
    }
    for (const resolve of this.writtenWaiters.splice(0)) resolve();
  }

  private async release(): Promise<void> {
    if (!this.opened) return;
    this.opened = false;
    await this.file.release();
  }

  /** Schedules a write (backedOffDelay() from now), unless one is already scheduled. */
  private schedule(): void {
    this.dirty = true;
    if (this.timer) return;
    this.scheduleWrite(this.backedOffDelay());
  }

  private backedOffDelay(): number {
    const { persistDelayMs, persistMaxDelayMs } = this.options;
    const sinceWrite = performance.now() - this.lastWriteStartMs;
    this.delayMs = persistDelay(this.delayMs, sinceWrite, persistDelayMs, persistMaxDelayMs ?? persistDelayMs);
    return this.delayMs;
  }

  /**
   * A scheduled write has nobody to answer: its failure is logged (once per run, by
   * writeIfDirty), which schedules the next attempt.
   */
  private scheduleWrite(delayMs: number): void {
    if (this.timer || !this.opened) return;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.flush().catch(() => {});
    }, delayMs);
    this.timer.unref();
  }
}
