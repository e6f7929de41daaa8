/**
 * The messages a worker and the primary exchange about the shared cache, over the cluster's IPC
 * channel (advanced serialization: Buffers arrive as Uint8Arrays, no base64). Each request has an
 * id, its answer carries it back. Pure types and guards.
 */
import type { CacheEntry, CacheStore } from "../cache/cache-store.js";

/** The CacheStore calls a worker forwards; open and close are the primary's alone. */
export type CacheOp =
  "get" | "set" | "delete" | "deleteMany" | "clear" | "list" | "stats" | "flush" | "claimFill" | "releaseFill";

export interface CacheRequest {
  headwire: "cache";
  id: number;
  op: CacheOp;
  args: unknown[];
}

export interface CacheAnswer {
  headwire: "cache-answer";
  id: number;
  ok: boolean;
  /** The result when ok; the error's message otherwise. */
  value: unknown;
  /**
   * The primary's change sequence number this answer reflects: for get, the number before the
   * store was read; for set, delete, deleteMany and clear, the number of that change. A worker
   * keeps a copy of an entry only if no invalidation after it has already arrived
   * (answerIsCurrent in worker-cache-copy.ts).
   */
  seq: number;
}

/**
 * The primary's broadcast after each change to the store (set, delete, deleteMany, clear):
 * every worker drops its copies of `keys` (all of them when null) and acknowledges with a
 * CacheAck of the same seq. The change's own answer goes out only after every ready worker
 * has acknowledged, so once a PURGE or a refresh has been answered no worker still serves the
 * old entry from its copy.
 */
export interface CacheInvalidation {
  headwire: "cache-invalidate";
  seq: number;
  keys: string[] | null;
}

export interface CacheAck {
  headwire: "cache-ack";
  seq: number;
}

export function isCacheRequest(message: unknown): message is CacheRequest {
  return typeof message === "object" && message !== null && (message as { headwire?: unknown }).headwire === "cache";
}

export function isCacheAnswer(message: unknown): message is CacheAnswer {
  return (
    typeof message === "object" && message !== null && (message as { headwire?: unknown }).headwire === "cache-answer"
  );
}

export function isCacheInvalidation(message: unknown): message is CacheInvalidation {
  return (
    typeof message === "object" &&
    message !== null &&
    (message as { headwire?: unknown }).headwire === "cache-invalidate"
  );
}

export function isCacheAck(message: unknown): message is CacheAck {
  return (
    typeof message === "object" && message !== null && (message as { headwire?: unknown }).headwire === "cache-ack"
  );
}

/** An entry as it arrived over IPC (its header a Uint8Array), as a CacheEntry again. */
export function entryFromIpc(entry: CacheEntry): CacheEntry {
  const header = entry.header as Uint8Array;
  return {
    ...entry,
    header: Buffer.isBuffer(header) ? header : Buffer.from(header.buffer, header.byteOffset, header.byteLength),
  };
}

export type StoreMethods = Pick<CacheStore, CacheOp & keyof CacheStore>;
