/**
 * Purging: the one way an operator drops entries, used by the server's PURGE command, the offline
 * `headwire cache purge` and the admin endpoints. A URL is dropped with every query-option
 * variant of its key, in one store call (one round trip to Redis).
 */
import { parseTarget } from "../url/target.js";
import { cacheKeyVariants } from "./cache-key.js";
import type { CacheStore } from "./cache-store.js";

/** Drops one URL's entries, or every entry when url is undefined; returns how many were dropped. */
export async function purge(store: CacheStore, url: string | undefined): Promise<number> {
  if (url === undefined) return store.clear();
  return store.deleteMany(cacheKeyVariants(parseTarget(url)));
}
