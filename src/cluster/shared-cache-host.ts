/**
 * The primary's side of the shared cache: one CacheStore per machine (the memory LRU persisted to
 * cache.txt, or memory alone), held by the primary, which answers its workers' calls over IPC.
 * One process owns cache.txt and its lock, as with a single server, so the file is written by
 * one writer and persisted once at shutdown. Fill claims are held here too: a miss in one worker
 * claims the URL's fetch, and the other workers wait for its entry (HeaderService's fleet
 * coalescing, with the primary as the fleet's arbiter), so N workers fetch a URL once.
 *
 * Workers keep local copies of entries (worker-cache-copy.ts). Every change to the store gets
 * the next sequence number and is broadcast as an invalidation; its answer goes back only once
 * every ready worker has acknowledged, so a PURGE or refresh that has been answered is seen by
 * every worker's next lookup.
 */
import type { CacheStore } from "../cache/cache-store.js";
import { entryFromIpc, type CacheAnswer, type CacheInvalidation, type CacheRequest } from "./cache-messages.js";

/** Sends an invalidation to every worker; resolves once each ready one has acknowledged it (or gone). */
export type Broadcast = (invalidation: CacheInvalidation) => Promise<void>;

export class SharedCacheHost {
  /** Claimed keys and when each claim lapses (a worker that dies holding one does not block it for ever). */
  private readonly claims = new Map<string, number>();
  /** The sequence number of the last change applied to the store. */
  private seq = 0;
  /** Changes run one after another, so their sequence numbers follow the order the store saw them. */
  private changes: Promise<unknown> = Promise.resolve();

  constructor(
    private readonly store: CacheStore,
    private readonly now: () => number = Date.now,
    private readonly broadcast: Broadcast = () => Promise.resolve(),
  ) {}

  /** Runs one worker's request against the store; the answer never rejects (a failure is its message). */
  async answer(request: CacheRequest): Promise<CacheAnswer> {
    // Read before the store is: an answer reflects at least every change up to this number (see get).
    const readSeq = this.seq;
    try {
      const { value, seq } = await this.run(request, readSeq);
      return { headwire: "cache-answer", id: request.id, ok: true, value, seq };
    } catch (error) {
      return {
        headwire: "cache-answer",
        id: request.id,
        ok: false,
        value: error instanceof Error ? error.message : String(error),
        seq: readSeq,
      };
    }
  }

  private async run({ op, args }: CacheRequest, readSeq: number): Promise<{ value: unknown; seq: number }> {
    const store = this.store;
    switch (op) {
      // The number is taken before the read, never after: a change applied during the read then
      // has a higher number, and its invalidation makes the worker drop this answer rather than
      // keep an entry older than the number claims.
      case "get":
        return { value: await store.get(args[0] as string), seq: readSeq };
      case "set": {
        const entry = entryFromIpc(args[0] as Parameters<CacheStore["set"]>[0]);
        return this.change([entry.key], () => store.set(entry, args[1] as number));
      }
      case "delete":
        return this.change([args[0] as string], () => store.delete(args[0] as string));
      case "deleteMany":
        return this.change(args[0] as string[], () => store.deleteMany(args[0] as string[]));
      case "clear":
        return this.change(null, () => store.clear());
      default:
        return { value: await this.runOther(op, args), seq: readSeq };
    }
  }

  /**
   * Applies one change, then numbers it (after, not before: a get that reads the old entry must
   * carry a lower number than the change's invalidation), broadcasts it and waits for the acks.
   */
  private async change(keys: string[] | null, apply: () => Promise<unknown>): Promise<{ value: unknown; seq: number }> {
    const applied = this.changes.then(async () => {
      const value = await apply();
      return { value, seq: ++this.seq };
    });
    this.changes = applied.catch(() => {});
    const { value, seq } = await applied;
    await this.broadcast({ headwire: "cache-invalidate", seq, keys });
    return { value, seq };
  }

  private runOther(op: CacheRequest["op"], args: unknown[]): Promise<unknown> | unknown {
    const store = this.store;
    switch (op) {
      case "get":
      case "set":
      case "delete":
      case "deleteMany":
      case "clear":
        throw new Error(`${op} is a change or a read, run above`);
      case "list":
        return store.list();
      case "stats":
        return store.stats();
      case "flush":
        return store.flush();
      case "claimFill":
        return this.claim(args[0] as string, args[1] as number);
      case "releaseFill":
        this.claims.delete(args[0] as string);
        return undefined;
      default: {
        const unknown: never = op;
        throw new Error(`unknown cache operation ${String(unknown)}`);
      }
    }
  }

  /** A store that coalesces itself (Redis, across a fleet) is asked; otherwise the primary decides. */
  private async claim(key: string, lockMs: number): Promise<boolean> {
    if (this.store.claimFill) return this.store.claimFill(key, lockMs);
    const now = this.now();
    const until = this.claims.get(key);
    if (until !== undefined && until > now) return false;
    this.claims.set(key, now + lockMs);
    return true;
  }
}
