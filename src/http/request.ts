/**
 * The request headwire sends an origin, byte for byte (RFC 9112 §3): a request-line, Host, a few
 * fixed fields and any conditional fields. Minimal on purpose: headwire never sends cookies or
 * credentials, so every client gets the answer an anonymous visitor gets.
 */
import { HeadwireError } from "../errors.js";
import type { ConditionalFields } from "./conditional.js";
import type { HttpMethod } from "./query-options.js";
import type { FetchTarget } from "../url/target.js";

/** Visible ASCII only: a request-target or Host with a space or control byte would split the line. */
const HEADER_LINE_TEXT = /^[\x21-\x7e]+$/;
/** Printable ASCII (spaces allowed): what headwire's own values (User-Agent) are made of. */
const HEADER_VALUE_TEXT = /^[\x20-\x7e]+$/;
/**
 * RFC 9110 §5.5: field-value = *field-content; field-content = field-vchar [ 1*( SP / HTAB /
 * field-vchar ) field-vchar ]; field-vchar = VCHAR / obs-text (%x80-FF). One char per byte
 * (latin1), so a validator an origin sent with obs-text (an entity-tag's etagc includes it,
 * RFC 9110 §8.8.3) goes back byte for byte. CR, LF, NUL and every other control but HTAB stay
 * out: they would end the field or the request early.
 */
const FIELD_VALUE_BYTES = /^[\x21-\x7e\x80-\xff](?:[\t\x20-\x7e\x80-\xff]*[\x21-\x7e\x80-\xff])?$/;

/** Whether `text` can be sent as a field value as it is (non-empty printable ASCII). */
export function isSendableFieldValue(text: string): boolean {
  return HEADER_VALUE_TEXT.test(text);
}

/**
 * Whether `text`, one char per byte, is a field value an origin may have sent and may be sent
 * back as it is: RFC 9110 §5.5 field-content, obs-text included, no leading or trailing space.
 */
export function isFieldValueBytes(text: string): boolean {
  return FIELD_VALUE_BYTES.test(text);
}

/** A request field a query asked for (`header=`), checked by checkRequestHeader (request-headers.ts). */
export interface RequestHeader {
  name: string;
  value: string;
}

/**
 * RFC 9112 §3: request-line, then Host (RFC 9112 §3.2 requires it), User-Agent and Accept, in
 * the order curl sends them by default, and no Connection field: curl sends none, so the origin
 * answers as it answers curl and browsers ("Connection: keep-alive" from nginx). The fetcher
 * reads the header and then closes the socket itself (RFC 9112 §9.6 lets either side close).
 * A query's own fields follow, in the order given; one named User-Agent or Accept replaces
 * headwire's default, which is then left out, as curl does with -H.
 * Conditional values are latin1 (one char per byte, obs-text allowed).
 * Throws INVALID_URL for a path or host that cannot be sent, and ORIGIN_ERROR for a conditional
 * value that cannot (a control byte, a char above U+00FF).
 */
export function buildRequest(
  target: FetchTarget,
  method: HttpMethod,
  userAgent: string,
  conditional: ConditionalFields,
  headers: readonly RequestHeader[] = [],
): Buffer {
  if (!HEADER_LINE_TEXT.test(target.path) || !HEADER_LINE_TEXT.test(target.hostHeader)) {
    throw new HeadwireError("INVALID_URL", "the URL's path or host has characters that cannot be sent");
  }
  const own = new Set(headers.map((h) => h.name.toLowerCase()));
  const lines = [`${method} ${target.path} HTTP/1.1`, `Host: ${target.hostHeader}`];
  if (!own.has("user-agent")) lines.push(`User-Agent: ${userAgent}`);
  if (!own.has("accept")) lines.push("Accept: */*");
  // An empty value drops the default of that name and sends nothing (curl -H 'Accept:').
  for (const { name, value } of headers) if (value !== "") lines.push(`${name}: ${value}`);
  for (const [name, value] of Object.entries(conditional)) {
    if (value === undefined) continue;
    // A validator is sent back exactly as the origin gave it (RFC 9110 §13.1): never re-encoded.
    if (!FIELD_VALUE_BYTES.test(value)) throw new HeadwireError("ORIGIN_ERROR", `cannot send ${name}: ${value}`);
    lines.push(`${name}: ${value}`);
  }
  return Buffer.from(`${lines.join("\r\n")}\r\n\r\n`, "latin1");
}
