/**
 * The primary's side of the shared cache: one CacheStore per machine (the memory LRU persisted to
 * cache.txt, or memory alone), held by the primary, which answers its workers' calls over IPC.
 * One process owns cache.txt and its lock, as with a single server, so the file is written by
 * one writer and persisted once at shutdown. Fill claims are held here too: a miss in one worker
 * claims the URL's fetch, and the other workers wait for its entry (HeaderService's fleet
 * coalescing, with the primary as the fleet's arbiter), so N workers fetch a URL once.
 */
import type { CacheStore } from "../cache/cache-store.js";
import { entryFromIpc, type CacheAnswer, type CacheRequest } from "./cache-messages.js";

export class SharedCacheHost {
  /** Claimed keys and when each claim lapses (a worker that dies holding one does not block it for ever). */
  private readonly claims = new Map<string, number>();

  constructor(
    private readonly store: CacheStore,
    private readonly now: () => number = Date.now,
  ) {}

  /** Runs one worker's request against the store; the answer never rejects (a failure is its message). */
  async answer(request: CacheRequest): Promise<CacheAnswer> {
    try {
      return { headwire: "cache-answer", id: request.id, ok: true, value: await this.run(request) };
    } catch (error) {
      return {
        headwire: "cache-answer",
        id: request.id,
        ok: false,
        value: error instanceof Error ? error.message : String(error),
      };
    }
  }

  private run({ op, args }: CacheRequest): Promise<unknown> | unknown {
    const store = this.store;
    switch (op) {
      case "get":
        return store.get(args[0] as string);
      case "set":
        return store.set(entryFromIpc(args[0] as Parameters<CacheStore["set"]>[0]), args[1] as number);
      case "delete":
        return store.delete(args[0] as string);
      case "deleteMany":
        return store.deleteMany(args[0] as string[]);
      case "clear":
        return store.clear();
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
