/**
 * Cache keys: which stored entry answers which query. The key is the normalized URL
 * (src/url/target.ts, so every spelling of a URL shares one entry) for a plain GET, with the
 * non-default query options after a `#`: normalized URLs never carry a fragment (RFC 9112 §3.2),
 * so the two parts cannot collide.
 */
import { DEFAULT_QUERY_OPTIONS, MAX_REDIRECTS, type QueryOptions } from "../http/query-options.js";
import type { FetchTarget } from "../url/target.js";

export function cacheKeyFor(target: FetchTarget, options: QueryOptions): string {
  const extras: string[] = [];
  if (options.method !== DEFAULT_QUERY_OPTIONS.method) extras.push(`method=${options.method}`);
  if (options.redirects !== DEFAULT_QUERY_OPTIONS.redirects) {
    extras.push(`redirects=${options.redirects}`, `chain=${options.chain}`);
  }
  // The version changes the bytes (HTTP/2 blocks are rendered with lowercase names).
  if (options.http !== DEFAULT_QUERY_OPTIONS.http) extras.push(`http=${options.http}`);
  return extras.length === 0 ? target.url : `${target.url}#${extras.join(",")}`;
}

/** Every cache key a URL can have: one per combination of query options (for purging it). */
export function cacheKeyVariants(target: FetchTarget): string[] {
  const keys: string[] = [];
  for (const method of ["GET", "HEAD"] as const) {
    for (let redirects = 0; redirects <= MAX_REDIRECTS; redirects++) {
      for (const chain of redirects === 0 ? (["all"] as const) : (["all", "last"] as const)) {
        for (const http of ["auto", "1.1", "2"] as const)
          keys.push(cacheKeyFor(target, { method, redirects, chain, http }));
      }
    }
  }
  return keys;
}
