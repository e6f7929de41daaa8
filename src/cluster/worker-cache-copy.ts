/**
 * A worker's local copy of the shared cache's entries it has read or stored (issue 15): the
 * IpcCacheStore's peek answers from here without an IPC round trip. The primary's store stays
 * the truth; the copy only ever holds an entry the primary held at some sequence number `seq`
 * and has not invalidated since. It holds entries, not verdicts: freshness is still computed
 * per lookup from the entry (HeaderService.peekFresh), as for any store.
 *
 * The race it guards against: worker B asks the primary for key K, the primary reads the old
 * entry (seq 7), then worker A's PURGE (or a newer set) of K changes the store (seq 8) and the
 * primary broadcasts the invalidation. Both messages travel on B's one IPC channel, but the
 * invalidation may be sent before the get's answer (the answer is sent once the read has
 * resolved). If B kept the answer it would hold the purged entry after the purge had been
 * applied and acknowledged: the PURGE undone by a stale copy. So each answer carries the seq it
 * reflects, and B keeps it only if no invalidation of K (or clear) with a higher seq has
 * arrived while the call was pending. An invalidation that arrives after the answer simply
 * drops the copy. Pure: no I/O, no clock.
 */
import { LRUCache } from "lru-cache";
import type { CacheEntry } from "../cache/cache-store.js";

/**
 * Whether an answer reflecting the store at `answerSeq` may be kept, given the highest seq of an
 * invalidation of its key (or of everything) that arrived while it was pending (undefined: none).
 * Equal is current: a change's own invalidation carries its seq and arrives before its answer.
 */
export function answerIsCurrent(answerSeq: number, invalidatedSeq: number | undefined): boolean {
  return invalidatedSeq === undefined || answerSeq >= invalidatedSeq;
}

export interface WorkerCacheCopyLimits {
  /** Entries kept (cacheMaxEntries); the least recently used is dropped first. 0 keeps none. */
  maxEntries: number;
  /** Header bytes kept in all (cacheMaxBytes). 0 keeps none. */
  maxTotalBytes: number;
}

export class WorkerCacheCopy {
  private readonly lru: LRUCache<string, CacheEntry> | undefined;
  /** Calls to the primary not yet answered, by key (for which invalidations must be remembered). */
  private readonly pending = new Map<string, number>();
  /** The highest seq of an invalidation of each pending key, while it is pending. */
  private readonly invalidated = new Map<string, number>();
  /** The highest seq of a clear, which invalidates every pending key. */
  private clearedSeq: number | undefined;

  constructor(limits: WorkerCacheCopyLimits) {
    this.lru =
      limits.maxEntries > 0 && limits.maxTotalBytes > 0
        ? new LRUCache({
            max: limits.maxEntries,
            maxSize: limits.maxTotalBytes,
            sizeCalculation: (entry) => Math.max(1, entry.header.length),
          })
        : undefined;
  }

  peek(key: string): CacheEntry | undefined {
    return this.lru?.get(key);
  }

  /** A call about `key` goes to the primary; invalidations of it are remembered until it settles. */
  begin(key: string): void {
    this.pending.set(key, (this.pending.get(key) ?? 0) + 1);
  }

  /**
   * The call's answer: the entry the primary held at `seq` (undefined: none). Kept only if
   * still current; otherwise, and when there is none, the copy of `key` is dropped.
   */
  settle(key: string, seq: number, entry: CacheEntry | undefined): void {
    const current = answerIsCurrent(seq, this.highestInvalidation(key));
    this.end(key);
    if (entry && current) this.lru?.set(key, entry);
    else this.lru?.delete(key);
  }

  /** The call failed: nothing is learnt, the copy (if any) is dropped to be safe. */
  abandon(key: string): void {
    this.end(key);
    this.lru?.delete(key);
  }

  /** The primary's invalidation: `keys` (every key when null) changed at `seq`. */
  invalidate(seq: number, keys: readonly string[] | null): void {
    if (keys === null) {
      this.lru?.clear();
      this.clearedSeq = Math.max(this.clearedSeq ?? seq, seq);
      return;
    }
    for (const key of keys) {
      this.lru?.delete(key);
      if (this.pending.has(key)) this.invalidated.set(key, Math.max(this.invalidated.get(key) ?? seq, seq));
    }
  }

  /** The primary has gone: nothing held can be trusted. */
  dropAll(): void {
    this.lru?.clear();
  }

  get size(): number {
    return this.lru?.size ?? 0;
  }

  get totalBytes(): number {
    return this.lru?.calculatedSize ?? 0;
  }

  private highestInvalidation(key: string): number | undefined {
    const own = this.invalidated.get(key);
    if (own === undefined) return this.clearedSeq;
    return this.clearedSeq === undefined ? own : Math.max(own, this.clearedSeq);
  }

  private end(key: string): void {
    const left = (this.pending.get(key) ?? 1) - 1;
    if (left > 0) {
      this.pending.set(key, left);
      return;
    }
    this.pending.delete(key);
    this.invalidated.delete(key);
    // A clear only matters to calls pending when it arrived; once none is, forget it (bounded state).
    if (this.pending.size === 0) this.clearedSeq = undefined;
  }
}
