/**
 * A query's own request fields (`header=NAME:VALUE` on the QUERY line, curl -H and -A): how they
 * are written on a control line, read back, checked and put in a cache key. Pure: no sockets.
 *
 * A QUERY line is split on spaces and holds no control characters, so a field travels
 * percent-encoded: every byte outside visible ASCII (%x21-7E), and `%`, `,` and `#` themselves,
 * is written `%XX` (two hex digits). Values are bytes, held one char per byte (latin1) like every
 * field value in src/http/request.ts: a client sends a value typed as UTF-8 as its UTF-8 bytes,
 * as curl does. `NAME:` with an empty value sends no field of that name and drops headwire's
 * default one (User-Agent, Accept), as `curl -H 'Accept:'` does.
 */
import { HeadwireError } from "../errors.js";
import { isFieldValueBytes, type RequestHeader } from "./request.js";

/** RFC 9110 §5.1: field-name = token; token = 1*tchar. */
const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;

/**
 * Fields a query may not set, with the reason given. The connection's own fields belong to the
 * fetcher's framing (RFC 9110 §7.6.1, RFC 9112 §6, RFC 9113 §8.2.2 forbids them in HTTP/2);
 * Host is the URL's; the conditional ones are the cache's to send when it revalidates
 * (RFC 9111 §4.3.1), and a 304 stored as an entry would answer plain queries wrongly.
 */
const REFUSED: ReadonlyMap<string, string> = new Map([
  ["host", "Host is the URL's host: put the host in the URL"],
  ["connection", "Connection is the fetcher's (RFC 9110 §7.6.1)"],
  ["keep-alive", "Keep-Alive is the fetcher's (RFC 9110 §7.6.1)"],
  ["te", "TE is the fetcher's (RFC 9110 §10.1.4)"],
  ["upgrade", "Upgrade is the fetcher's (RFC 9110 §7.8)"],
  ["transfer-encoding", "a request without a body has no Transfer-Encoding (RFC 9112 §6.1)"],
  ["content-length", "a request without a body has no Content-Length (RFC 9110 §8.6)"],
  ["http2-settings", "HTTP2-Settings is the fetcher's (RFC 9113 §3.1)"],
  ["if-none-match", "conditional fields are the cache's own (RFC 9111 §4.3.1): ask with cache=refresh"],
  ["if-modified-since", "conditional fields are the cache's own (RFC 9111 §4.3.1): ask with cache=refresh"],
  ["if-match", "conditional fields are the cache's own (RFC 9111 §4.3.1)"],
  ["if-unmodified-since", "conditional fields are the cache's own (RFC 9111 §4.3.1)"],
  ["if-range", "conditional fields are the cache's own (RFC 9111 §4.3.1)"],
]);

/** Limits on a query's fields (settings maxRequestHeaders, maxRequestHeaderBytes). */
export interface RequestHeaderLimits {
  maxHeaders: number;
  /** Every field's `name: value` bytes together. */
  maxBytes: number;
}

/** One byte as the encoding writes it. */
function encodeByte(code: number): string {
  return `%${code.toString(16).toUpperCase().padStart(2, "0")}`;
}

/** Percent-encodes a latin1 string (one char per byte) for a QUERY line or a cache key. */
export function percentEncode(text: string): string {
  let out = "";
  for (let i = 0; i < text.length; i++) {
    const code = text.charCodeAt(i);
    const plain = code >= 0x21 && code <= 0x7e && code !== 0x25 && code !== 0x2c && code !== 0x23;
    out += plain ? text[i] : encodeByte(code & 0xff);
  }
  return out;
}

/** The inverse of percentEncode: `%XX` becomes its byte, other text its UTF-8 bytes; a latin1 string. */
export function percentDecode(text: string): string {
  const bytes: number[] = [];
  const utf8 = new TextEncoder();
  for (let i = 0; i < text.length; i++) {
    if (text[i] === "%") {
      const hex = text.slice(i + 1, i + 3);
      if (!/^[0-9A-Fa-f]{2}$/.test(hex)) {
        throw new HeadwireError(
          "BAD_REQUEST",
          `bad percent-encoding ${JSON.stringify(text.slice(i, i + 3))} in header=`,
        );
      }
      bytes.push(parseInt(hex, 16));
      i += 2;
    } else {
      bytes.push(...utf8.encode(text[i]!));
    }
  }
  return Buffer.from(bytes).toString("latin1");
}

/**
 * Checks one field as a query gives it: a token name that is not refused, and a value that is
 * RFC 9110 §5.5 field-content (no CR, LF, NUL or other controls but HTAB) once optional
 * whitespace around it is dropped, as an HTTP parser drops it. Throws BAD_REQUEST with the reason.
 */
export function checkRequestHeader(name: string, rawValue: string): RequestHeader {
  if (!TOKEN.test(name)) {
    throw new HeadwireError(
      "BAD_REQUEST",
      `header name ${JSON.stringify(shorten(name))} is not a token (RFC 9110 §5.1)`,
    );
  }
  const lower = name.toLowerCase();
  const refused = lower.startsWith("proxy-") ? `${name} is for proxies, not origins` : REFUSED.get(lower);
  if (refused !== undefined) throw new HeadwireError("BAD_REQUEST", `header ${name} cannot be set: ${refused}`);
  const value = rawValue.replace(/^[ \t]+|[ \t]+$/g, "");
  if (value !== "" && !isFieldValueBytes(value)) {
    throw new HeadwireError(
      "BAD_REQUEST",
      `header ${name} has a value that is not field-content (RFC 9110 §5.5): control characters are not allowed`,
    );
  }
  return { name, value };
}

/** Reads one `header=` option's value (after the `=`), percent-encoded `NAME:VALUE`. */
export function parseHeaderOption(encoded: string): RequestHeader {
  const decoded = percentDecode(encoded);
  const colon = decoded.indexOf(":");
  if (colon <= 0) throw new HeadwireError("BAD_REQUEST", "header= takes NAME:VALUE (percent-encoded)");
  return checkRequestHeader(decoded.slice(0, colon), decoded.slice(colon + 1));
}

/** One field as a QUERY line carries it: `header=NAME:VALUE`, percent-encoded. */
export function formatHeaderOption(header: RequestHeader): string {
  return `header=${percentEncode(header.name)}:${percentEncode(header.value)}`;
}

/**
 * The fields in a cache key's canonical form: names lowercased (RFC 9110 §5.1: they are
 * case-insensitive), ordered by name, fields of one name kept in the order given (their order is
 * their meaning, RFC 9110 §5.3), values percent-encoded; `header=name:value` joined by commas.
 */
export function canonicalHeaders(headers: readonly RequestHeader[]): string {
  return headers
    .map((header, index) => ({ name: header.name.toLowerCase(), value: header.value, index }))
    .sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : a.index - b.index))
    .map((h) => `header=${percentEncode(h.name)}:${percentEncode(h.value)}`)
    .join(",");
}

/** Throws BAD_REQUEST when a query's fields pass the server's limits. */
export function checkHeaderLimits(headers: readonly RequestHeader[], limits: RequestHeaderLimits): void {
  if (headers.length > limits.maxHeaders) {
    throw new HeadwireError(
      "BAD_REQUEST",
      `${headers.length} header= fields, more than this server's ${limits.maxHeaders} (maxRequestHeaders)`,
    );
  }
  const bytes = headers.reduce((sum, h) => sum + h.name.length + 2 + h.value.length, 0);
  if (bytes > limits.maxBytes) {
    throw new HeadwireError(
      "BAD_REQUEST",
      `header= fields of ${bytes} bytes, more than this server's ${limits.maxBytes} (maxRequestHeaderBytes)`,
    );
  }
}

/** A `Name: value` line as curl -H takes it, the value's UTF-8 text as bytes; checked like header=. */
export function headerFromCurlArgument(line: string): RequestHeader {
  const colon = line.indexOf(":");
  if (colon <= 0)
    throw new HeadwireError("BAD_REQUEST", `-H ${JSON.stringify(shorten(line))}: write it as 'Name: value'`);
  const value = Buffer.from(line.slice(colon + 1), "utf8").toString("latin1");
  return checkRequestHeader(line.slice(0, colon).trim(), value);
}

function shorten(text: string): string {
  return text.length > 40 ? `${text.slice(0, 40)}…` : text;
}
