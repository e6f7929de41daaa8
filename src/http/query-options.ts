/**
 * What a query asks of the origin: the request method and how redirects are followed. The
 * control channel carries these as `method=`, `redirects=` and `chain=` (docs/protocol.md); the
 * fetcher acts on them; the cache key includes every value that differs from the default.
 */

/** Only methods whose response header is the point: HEAD for the header alone, GET as browsers ask. */
export type HttpMethod = "GET" | "HEAD";

/** With redirects followed: deliver every hop's header in order ("all") or the last one only. */
export type RedirectChain = "all" | "last";

/**
 * Which HTTP version to speak (`http=`), as curl chooses: "auto" offers ALPN `h2,http/1.1` on
 * https and speaks HTTP/2 when the origin picks it, HTTP/1.1 on http:// (no h2c, as curl
 * without --http2); "1.1" offers http/1.1 only (curl --http1.1); "2" requires h2.
 */
export type HttpVersionChoice = "auto" | "1.1" | "2";

/** The version a response was fetched over. */
export type HttpVersion = "1.1" | "2";

export interface QueryOptions {
  method: HttpMethod;
  /** Redirects to follow; 0 delivers the first response as it is. */
  redirects: number;
  /** With redirects > 0: deliver every hop's header in order, or only the last one. */
  chain: RedirectChain;
  /** HTTP version to offer or require. */
  http: HttpVersionChoice;
}

export const DEFAULT_QUERY_OPTIONS: QueryOptions = { method: "GET", redirects: 0, chain: "all", http: "auto" };

/** Most redirects a query may ask to follow. */
export const MAX_REDIRECTS = 20;
