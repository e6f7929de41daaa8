/**
 * A worker's cache: the primary's store, reached over the cluster's IPC channel (one CacheStore
 * per machine, SharedCacheHost on the other side). Callers hold a CacheStore and do not know it is
 * remote. open() and close() do not open or close the primary's store: the primary loads it
 * before any worker starts and persists it once, after the last worker has stopped.
 */
import type { CacheEntry, CacheStore, CacheStoreStats } from "../cache/cache-store.js";
import { entryFromIpc, isCacheAnswer, type CacheOp, type CacheRequest } from "./cache-messages.js";

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
  private readonly pending = new Map<number, { resolve: (value: unknown) => void; reject: (error: Error) => void }>();

  /** @param kind what the primary holds (its stats() say so too) */
  constructor(
    private readonly channel: IpcChannel,
    kind: CacheStore["kind"],
  ) {
    this.kind = kind;
    channel.on("message", (message) => {
      if (!isCacheAnswer(message)) return;
      const waiting = this.pending.get(message.id);
      if (!waiting) return;
      this.pending.delete(message.id);
      if (message.ok) waiting.resolve(message.value);
      else waiting.reject(new Error(`shared cache: ${String(message.value)}`));
    });
    channel.on("disconnect", () => {
      const gone = new Error("shared cache: the primary process has gone");
      for (const waiting of this.pending.values()) waiting.reject(gone);
      this.pending.clear();
    });
  }

  open(): Promise<string> {
    return Promise.resolve("shared through the primary process");
  }

  async get(key: string): Promise<CacheEntry | undefined> {
    const entry = (await this.call("get", key)) as CacheEntry | undefined;
    return entry === undefined ? undefined : entryFromIpc(entry);
  }

  async set(entry: CacheEntry, retentionMs: number): Promise<void> {
    await this.call("set", entry, retentionMs);
  }

  delete(key: string): Promise<boolean> {
    return this.call("delete", key) as Promise<boolean>;
  }

  deleteMany(keys: readonly string[]): Promise<number> {
    return this.call("deleteMany", [...keys]) as Promise<number>;
  }

  clear(): Promise<number> {
    return this.call("clear") as Promise<number>;
  }

  async list(): Promise<CacheEntry[]> {
    return ((await this.call("list")) as CacheEntry[]).map(entryFromIpc);
  }

  stats(): Promise<CacheStoreStats> {
    return this.call("stats") as Promise<CacheStoreStats>;
  }

  async flush(): Promise<void> {
    await this.call("flush");
  }

  /** The primary persists the store once, after every worker has stopped. */
  close(): Promise<string> {
    return Promise.resolve("left to the primary process, which persists it");
  }

  claimFill(key: string, lockMs: number): Promise<boolean> {
    return this.call("claimFill", key, lockMs) as Promise<boolean>;
  }

  async releaseFill(key: string): Promise<void> {
    await this.call("releaseFill", key);
  }

  private call(op: CacheOp, ...args: unknown[]): Promise<unknown> {
    if (!this.channel.connected) return Promise.reject(new Error("shared cache: the primary process has gone"));
    const id = this.nextId++;
    const request: CacheRequest = { headwire: "cache", id, op, args };
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      this.channel.send(request);
    });
  }
}
