/**
 * Cache keys: which stored entry answers which query. The key is the normalized URL
 * (src/url/target.ts, so every spelling of a URL shares one entry) for a plain GET, with the
 * non-default query options after a `#`: normalized URLs never carry a fragment (RFC 9112 §3.2),
 * so the two parts cannot collide. The options come in a fixed order: method, redirects and chain,
 * http, insecure, ip, then the request fields (request-headers.ts, canonicalHeaders), e.g.
 * `http://a.test/#method=HEAD,ip=4,header=accept:text/html`.
 */
import { DEFAULT_QUERY_OPTIONS, MAX_REDIRECTS, type QueryOptions } from "../http/query-options.js";
import { canonicalHeaders } from "../http/request-headers.js";
import type { FetchTarget } from "../url/target.js";

export function cacheKeyFor(target: FetchTarget, options: QueryOptions): string {
  const extras: string[] = [];
  if (options.method !== DEFAULT_QUERY_OPTIONS.method) extras.push(`method=${options.method}`);
  if (options.redirects !== DEFAULT_QUERY_OPTIONS.redirects) {
    extras.push(`redirects=${options.redirects}`, `chain=${options.chain}`);
  }
  // The version changes the bytes (HTTP/2 blocks are rendered with lowercase names).
  if (options.http !== DEFAULT_QUERY_OPTIONS.http) extras.push(`http=${options.http}`);
  // An unverified answer must never reach a query that asked for TLS checks.
  if (options.insecure) extras.push("insecure=1");
  // Another address family may reach another server, with another answer.
  if (options.ip !== DEFAULT_QUERY_OPTIONS.ip) extras.push(`ip=${options.ip}`);
  // Request fields change what the origin sends (RFC 9110 §12.5.5, Vary): last, in canonical form.
  if (options.headers.length > 0) extras.push(canonicalHeaders(options.headers));
  // Not in the key: connect-timeout-ms and max-time-ms (how long to wait, not what is asked) and
  // cache=refresh (how old an answer may be; the refreshed entry is the plain query's entry).
  return extras.length === 0 ? target.url : `${target.url}#${extras.join(",")}`;
}

/**
 * Every cache key a URL can have without request fields: one per combination of the other query
 * options (for purging it). Keys with request fields cannot be listed in advance: isKeyOf finds them.
 */
export function cacheKeyVariants(target: FetchTarget): string[] {
  const keys: string[] = [];
  for (const method of ["GET", "HEAD"] as const) {
    for (let redirects = 0; redirects <= MAX_REDIRECTS; redirects++) {
      for (const chain of redirects === 0 ? (["all"] as const) : (["all", "last"] as const)) {
        for (const http of ["auto", "1.1", "2"] as const) {
          for (const insecure of [false, true]) {
            for (const ip of ["any", "4", "6"] as const) {
              const options = { ...DEFAULT_QUERY_OPTIONS, method, redirects, chain, http, insecure, ip };
              keys.push(cacheKeyFor(target, options));
            }
          }
        }
      }
    }
  }
  return keys;
}

/** Whether a stored key is one of this URL's, whatever its options (request fields included). */
export function isKeyOf(key: string, target: FetchTarget): boolean {
  return key === target.url || key.startsWith(`${target.url}#`);
}
