/**
 * What a query asks of the origin: the request method and how redirects are followed. The
 * control channel carries these as `method=`, `redirects=` and `chain=` (docs/protocol.md); the
 * fetcher acts on them; the cache key includes every value that differs from the default.
 */

/** Only methods whose response header is the point: HEAD for the header alone, GET as browsers ask. */
export type HttpMethod = "GET" | "HEAD";

/** With redirects followed: deliver every hop's header in order ("all") or the last one only. */
export type RedirectChain = "all" | "last";

export interface QueryOptions {
  method: HttpMethod;
  /** Redirects to follow; 0 delivers the first response as it is. */
  redirects: number;
  /** With redirects > 0: deliver every hop's header in order, or only the last one. */
  chain: RedirectChain;
}

export const DEFAULT_QUERY_OPTIONS: QueryOptions = { method: "GET", redirects: 0, chain: "all" };

/** Most redirects a query may ask to follow. */
export const MAX_REDIRECTS = 20;
