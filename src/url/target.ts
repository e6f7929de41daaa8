/**
 * Turns what a client typed into the one origin request headwire makes, and the cache key for it.
 * Pure: no DNS, no sockets. The WHATWG URL parser does the heavy lifting; on top of it:
 *
 * - A bare host (`www.twitch.tv`, `example.com:8080/x`, `[::1]:8080`, `//host/x`) means `http://`.
 * - Only `http` and `https` are fetched (UNSUPPORTED_SCHEME otherwise).
 * - Scheme and host are lowercased; internationalized names become punycode (`bücher.de` →
 *   `xn--bcher-kva.de`); IPv4 in any WHATWG-accepted spelling (`2130706433`, `0x7f000001`,
 *   `127.1`) becomes dotted decimal; IPv6 is compressed (`[::ffff:127.0.0.1]` → `[::ffff:7f00:1]`).
 * - The default port (80 for http, 443 for https) is dropped.
 * - One trailing dot of a domain name is dropped (`example.com.` → `example.com`); a name with an
 *   empty label (`a..b`) is INVALID_URL.
 * - An empty path becomes `/`; an empty query (`/?`) and any `#fragment` are dropped: the
 *   request-target has no fragment (RFC 9112 §3.2), so it cannot change the response.
 * - Userinfo (`user:pass@`) is refused with INVALID_URL: headwire never sends credentials, and it is
 *   a classic way to disguise the real host (`http://trusted.com@evil.example/`).
 * - Inputs longer than MAX_URL_CHARS, or containing control characters, are INVALID_URL.
 *
 * The normalized URL is the base of the cache key (src/cache/cache-key.ts), so every spelling above
 * shares one cache entry.
 */
import { HeadwireError } from "../errors.js";

/** Longest accepted URL, before and after normalization (percent-encoding can lengthen it). */
export const MAX_URL_CHARS = 8192;

export type TargetScheme = "http" | "https";

export interface FetchTarget {
  /** The normalized absolute URL (the base of its cache key: src/cache/cache-key.ts). */
  url: string;
  scheme: TargetScheme;
  /** ASCII (punycode) host name or IP literal; IPv6 without brackets. */
  host: string;
  port: number;
  /** Path and query sent in the request line; at least "/". */
  path: string;
  /** The Host header value: the host, bracketed for IPv6, with the port unless it is the default. */
  hostHeader: string;
}

const DEFAULT_PORTS: Record<TargetScheme, number> = { http: 80, https: 443 };

/** `scheme:` not followed by a port number (which would make it `host:port`). */
const SCHEME_PREFIX = /^[a-z][a-z0-9+.-]*:(?!\d+(?:[/?#]|$))/i;

export function parseTarget(input: string): FetchTarget {
  const url = parseUrl(input);
  const scheme = url.protocol.slice(0, -1);
  if (scheme !== "http" && scheme !== "https") {
    throw new HeadwireError("UNSUPPORTED_SCHEME", `unsupported scheme ${JSON.stringify(scheme)}: use http or https`);
  }
  if (url.username !== "" || url.password !== "") {
    throw new HeadwireError("INVALID_URL", "URLs with credentials (user:pass@) are not accepted");
  }
  if (url.port === "0") throw new HeadwireError("INVALID_URL", "port 0 cannot be connected to");
  normalizeHost(url);
  url.hash = "";
  if (url.search === "") url.search = ""; // drops a bare "?"
  const href = url.href;
  if (href.length > MAX_URL_CHARS) throw tooLong(href.length);
  const host = url.hostname.replace(/^\[(.*)\]$/, "$1");
  return {
    url: href,
    scheme,
    host,
    port: url.port === "" ? DEFAULT_PORTS[scheme] : Number(url.port),
    path: `${url.pathname}${url.search}`,
    hostHeader: url.host,
  };
}

/** The normalized form of a URL. */
export function normalizeUrl(input: string): string {
  return parseTarget(input).url;
}

function parseUrl(input: string): URL {
  if (input.length > MAX_URL_CHARS) throw tooLong(input.length);
  const text = input.trim();
  if (text === "") throw new HeadwireError("INVALID_URL", "empty URL");
  // The WHATWG parser silently deletes tabs and newlines inside a URL; refuse them instead.
  if (/[\u0000-\u001f\u007f]/.test(text)) throw new HeadwireError("INVALID_URL", "URL contains control characters");
  const absolute = withScheme(text);
  try {
    return new URL(absolute);
  } catch {
    throw new HeadwireError("INVALID_URL", `cannot parse URL ${JSON.stringify(truncate(text, 80))}`);
  }
}

function withScheme(text: string): string {
  if (text.startsWith("//")) return `http:${text}`;
  return SCHEME_PREFIX.test(text) ? text : `http://${text}`;
}

function normalizeHost(url: URL): void {
  const hostname = url.hostname;
  if (hostname.startsWith("[")) return; // IPv6 literal, already canonical
  if (hostname.endsWith(".")) url.hostname = hostname.slice(0, -1);
  if (url.hostname === "" || url.hostname.split(".").includes("")) {
    throw new HeadwireError("INVALID_URL", `host name ${JSON.stringify(hostname)} has an empty label`);
  }
}

function tooLong(length: number): HeadwireError {
  return new HeadwireError("INVALID_URL", `URL is ${length} characters, longer than the limit of ${MAX_URL_CHARS}`);
}

function truncate(text: string, max: number): string {
  return text.length > max ? `${text.slice(0, max)}…` : text;
}
