/**
 * Purging: the one way an operator drops entries, used by the server's PURGE command, the offline
 * `headwire cache purge` and the admin endpoints. A URL is dropped with every query-option
 * variant of its key, in one deletion (one round trip to Redis), after listing the store for
 * the variants with request fields, which cannot be enumerated.
 */
import { parseTarget } from "../url/target.js";
import { cacheKeyVariants, isKeyOf } from "./cache-key.js";
import type { CacheStore } from "./cache-store.js";

/** Drops one URL's entries, or every entry when url is undefined; returns how many were dropped. */
export async function purge(store: CacheStore, url: string | undefined): Promise<number> {
  if (url === undefined) return store.clear();
  const target = parseTarget(url);
  // Keys with request fields (header=) cannot be listed in advance: the stored ones are found by
  // listing the store (a SCAN on Redis), a cost a purge, an operator's rare act, can bear.
  const withFields = (await store.list())
    .map((entry) => entry.key)
    .filter((key) => isKeyOf(key, target) && key.includes("header="));
  return store.deleteMany([...cacheKeyVariants(target), ...withFields]);
}
