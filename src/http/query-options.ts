/**
 * What a query asks of the origin: the request method, how redirects are followed, the HTTP
 * version, TLS verification, the address family, time limits, its own request fields and whether
 * the cache may answer. The control channel carries these as `option=value` words on the QUERY
 * line (docs/protocol.md); the fetcher acts on them; the cache key includes every value that
 * changes what the origin sends (src/cache/cache-key.ts), never the time limits or cache=refresh.
 */
import type { RequestHeader } from "./request.js";

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

/** Which addresses to connect to (`ip=`): any, IPv4 only (curl -4), IPv6 only (curl -6). */
export type IpFamilyChoice = "any" | "4" | "6";

/** `cache=refresh`: revalidate or refetch whatever the cache holds (client --fresh). */
export type CacheChoice = "use" | "refresh";

export interface QueryOptions {
  method: HttpMethod;
  /** Redirects to follow; 0 delivers the first response as it is. */
  redirects: number;
  /** With redirects > 0: deliver every hop's header in order, or only the last one. */
  chain: RedirectChain;
  /** HTTP version to offer or require. */
  http: HttpVersionChoice;
  /** Skip TLS certificate checks (curl -k); honoured only on a server run with --allow-insecure-queries. */
  insecure: boolean;
  /** Address family to resolve and connect over. */
  ip: IpFamilyChoice;
  /** Whether a fresh cached entry may answer, or the origin must be asked again. */
  cache: CacheChoice;
  /** At most this long to connect (resolve, TCP, TLS), in ms; the server's own limit when lower or undefined. */
  connectTimeoutMs: number | undefined;
  /** At most this long for the header after connecting, in ms; the server's own limit when lower or undefined. */
  maxTimeMs: number | undefined;
  /** Request fields of the query's own (`header=`), in the order given; an empty value drops a default field. */
  headers: readonly RequestHeader[];
}

export const DEFAULT_QUERY_OPTIONS: QueryOptions = {
  method: "GET",
  redirects: 0,
  chain: "all",
  http: "auto",
  insecure: false,
  ip: "any",
  cache: "use",
  connectTimeoutMs: undefined,
  maxTimeMs: undefined,
  headers: [],
};

/** Most redirects a query may ask to follow. */
export const MAX_REDIRECTS = 20;

/** Longest per-query time limit (`connect-timeout-ms=`, `max-time-ms=`): the servers' own limits stop at it too. */
export const MAX_QUERY_TIMEOUT_MS = 600_000;
