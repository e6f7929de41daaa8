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
/** Printable ASCII (spaces allowed): what a field value may carry without being misread. */
const HEADER_VALUE_TEXT = /^[\x20-\x7e]+$/;

/** Whether `text` can be sent as a field value as it is (non-empty printable ASCII). */
export function isSendableFieldValue(text: string): boolean {
  return HEADER_VALUE_TEXT.test(text);
}

/**
 * RFC 9112 §3: request-line, then Host (RFC 9112 §3.2 requires it) and a few fixed fields.
 * RFC 9112 §9.6: "Connection: close" tells the origin not to keep the connection; the fetcher
 * closes it after the header. Throws INVALID_URL for a path or host that cannot be sent, and
 * ORIGIN_ERROR for a conditional value that cannot.
 */
export function buildRequest(
  target: FetchTarget,
  method: HttpMethod,
  userAgent: string,
  conditional: ConditionalFields,
): Buffer {
  if (!HEADER_LINE_TEXT.test(target.path) || !HEADER_LINE_TEXT.test(target.hostHeader)) {
    throw new HeadwireError("INVALID_URL", "the URL's path or host has characters that cannot be sent");
  }
  const lines = [
    `${method} ${target.path} HTTP/1.1`,
    `Host: ${target.hostHeader}`,
    `User-Agent: ${userAgent}`,
    "Accept: */*",
    "Connection: close",
  ];
  for (const [name, value] of Object.entries(conditional)) {
    if (value === undefined) continue;
    if (!HEADER_VALUE_TEXT.test(value)) throw new HeadwireError("ORIGIN_ERROR", `cannot send ${name}: ${value}`);
    lines.push(`${name}: ${value}`);
  }
  return Buffer.from(`${lines.join("\r\n")}\r\n\r\n`, "latin1");
}
