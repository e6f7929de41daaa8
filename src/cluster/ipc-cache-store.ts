/**
 * A worker's cache: the primary's store, reached over the cluster's IPC channel (one CacheStore
 * per machine, SharedCacheHost on the other side). Callers hold a CacheStore and do not know it is
 * remote. open() and close() do not open or close the primary's store: the primary loads it
 * before any worker starts and persists it once, after the last worker has stopped.
 *
 * peek() answers from a local copy of the entries this worker has read or stored
 * (WorkerCacheCopy, bounded like the primary's LRU), so a cached lookup costs no IPC round trip
 * (issue 15: a flat per-worker cost). get() still asks the primary, which is the truth (its
 * retention, other workers' changes), and refreshes the copy from the answer. The primary's
 * invalidations (after every set, delete, deleteMany, clear) drop copies before they are
 * acknowledged; see worker-cache-copy.ts for the race the answers' sequence numbers close.
 */
import type { CacheEntry, CacheStore, CacheStoreStats } from "../cache/cache-store.js";
import {
  entryFromIpc,
  isCacheAnswer,
  isCacheInvalidation,
  type CacheAck,
  type CacheOp,
  type CacheRequest,
} from "./cache-messages.js";
import { WorkerCacheCopy, type WorkerCacheCopyLimits } from "./worker-cache-copy.js";

interface Answered {
  value: unknown;
  seq: number;
}

/** The channel to the primary (process in a worker); a test may give its own end. */
export interface IpcChannel {
  send(message: unknown): boolean;
  on(event: "message", listener: (message: unknown) => void): unknown;
  on(event: "disconnect", listener: () => void): unknown;
  readonly connected: boolean;
}

export class IpcCacheStore implements CacheStore {
  readonly kind = "memory" as CacheStore["kind"];
  private nextId = 1;
  private readonly pending = new Map<number, { resolve: (value: Answered) => void; reject: (error: Error) => void }>();
  private readonly copy: WorkerCacheCopy;

  /**
   * @param kind what the primary holds (its stats() say so too)
   * @param limits the local copy's bounds: the same entry and byte limits as the primary's LRU
   */
  constructor(
    private readonly channel: IpcChannel,
    kind: CacheStore["kind"],
    limits: WorkerCacheCopyLimits,
  ) {
    this.kind = kind;
    this.copy = new WorkerCacheCopy(limits);
    channel.on("message", (message) => {
      if (isCacheInvalidation(message)) {
        // Dropped before the ack: the change's answer (to whichever worker made it) waits for it.
        this.copy.invalidate(message.seq, message.keys);
        const ack: CacheAck = { headwire: "cache-ack", seq: message.seq };
        if (this.channel.connected) this.channel.send(ack);
        return;
      }
      if (!isCacheAnswer(message)) return;
      const waiting = this.pending.get(message.id);
      if (!waiting) return;
      this.pending.delete(message.id);
      if (message.ok) waiting.resolve({ value: message.value, seq: message.seq });
      else waiting.reject(new Error(`shared cache: ${String(message.value)}`));
    });
    channel.on("disconnect", () => {
      const gone = new Error("shared cache: the primary process has gone");
      this.copy.dropAll();
      for (const waiting of this.pending.values()) waiting.reject(gone);
      this.pending.clear();
    });
  }

  /** The local copy (for tests and stats of this worker). */
  get localCopy(): Pick<WorkerCacheCopy, "size" | "totalBytes"> {
    return this.copy;
  }

  open(): Promise<string> {
    return Promise.resolve("shared through the primary process");
  }

  async get(key: string): Promise<CacheEntry | undefined> {
    this.copy.begin(key);
    let answered: Answered;
    try {
      answered = await this.call("get", key);
    } catch (error) {
      this.copy.abandon(key);
      throw error;
    }
    const entry = answered.value === undefined ? undefined : entryFromIpc(answered.value as CacheEntry);
    this.copy.settle(key, answered.seq, entry);
    return entry;
  }

  /** The local copy's entry, without waiting; the caller assesses its freshness, as for any store. */
  peek(key: string): CacheEntry | undefined {
    return this.copy.peek(key);
  }

  /**
   * Resolves once the primary holds the entry and every ready worker has dropped its older copy
   * (so another worker's next lookup sees this entry or asks the primary); this worker then keeps it.
   */
  async set(entry: CacheEntry, retentionMs: number): Promise<void> {
    this.copy.begin(entry.key);
    let answered: Answered;
    try {
      answered = await this.call("set", entry, retentionMs);
    } catch (error) {
      this.copy.abandon(entry.key);
      throw error;
    }
    // retentionMs ≤ 0 stores nothing at the primary, so nothing is kept here either.
    this.copy.settle(entry.key, answered.seq, retentionMs > 0 ? entry : undefined);
  }

  /** These resolve once every ready worker has dropped its copies (the primary waits for their acks). */
  async delete(key: string): Promise<boolean> {
    return (await this.call("delete", key)).value as boolean;
  }

  async deleteMany(keys: readonly string[]): Promise<number> {
    return (await this.call("deleteMany", [...keys])).value as number;
  }

  async clear(): Promise<number> {
    return (await this.call("clear")).value as number;
  }

  async list(): Promise<CacheEntry[]> {
    return ((await this.call("list")).value as CacheEntry[]).map(entryFromIpc);
  }

  async stats(): Promise<CacheStoreStats> {
    return (await this.call("stats")).value as CacheStoreStats;
  }

  async flush(): Promise<void> {
    await this.call("flush");
  }

  /** The primary persists the store once, after every worker has stopped. */
  close(): Promise<string> {
    return Promise.resolve("left to the primary process, which persists it");
  }

  async claimFill(key: string, lockMs: number): Promise<boolean> {
    return (await this.call("claimFill", key, lockMs)).value as boolean;
  }

  async releaseFill(key: string): Promise<void> {
    await this.call("releaseFill", key);
  }

  private call(op: CacheOp, ...args: unknown[]): Promise<Answered> {
    if (!this.channel.connected) return Promise.reject(new Error("shared cache: the primary process has gone"));
    const id = this.nextId++;
    const request: CacheRequest = { headwire: "cache", id, op, args };
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      this.channel.send(request);
    });
  }
}
