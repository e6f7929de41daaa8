/**
 * What follows a response header on its connection, read from the header alone: whether the
 * connection can carry another request once the body (if any) is read, and how long that body
 * is. Pure: the origin fetcher asks it after each HTTP/1.1 header, to keep the connection for
 * the next request to the same origin instead of closing it (RFC 9112 §9.3).
 */
import { sectionFields } from "./header-block.js";
import type { HttpMethod } from "./query-options.js";

/** The connection is at the end of this response once `bodyBytes` more bytes are read. */
export interface Persistent {
  persistent: true;
  bodyBytes: number;
}

/** The connection cannot carry another request (or we cannot tell where this response ends). */
export interface NotPersistent {
  persistent: false;
  /** Why, for logs and tests. */
  reason: string;
}

export type ResponseFraming = Persistent | NotPersistent;

const NO_BODY: Persistent = { persistent: true, bodyBytes: 0 };

/**
 * `finalSection`: the final (non-1xx) response's status line and fields, as the origin sent them.
 */
export function responseFraming(method: HttpMethod, status: number, finalSection: Buffer): ResponseFraming {
  // RFC 9112 §9.3: HTTP/1.0 connections persist only by a keep-alive negotiation we do not make.
  if (!finalSection.subarray(0, 9).equals(HTTP11)) return closed("not an HTTP/1.1 response");
  // RFC 9110 §15.2.2: after 101 the connection speaks another protocol.
  if (status === 101) return closed("101 Switching Protocols");
  let contentLength: string | undefined;
  let chunked = false;
  for (const field of sectionFields(finalSection)) {
    if (field.name === "connection" && hasToken(field.value, "close")) return closed("Connection: close");
    if (field.name === "transfer-encoding") chunked = true;
    if (field.name === "content-length") {
      // RFC 9110 §8.6: a list of identical values is one value; differing ones are an error.
      for (const part of field.value.split(",")) {
        const value = part.trim();
        if (contentLength !== undefined && contentLength !== value) return closed("conflicting Content-Length");
        contentLength = value;
      }
    }
  }
  // RFC 9112 §6.3 rule 1: a response to HEAD, a 204 and a 304 end at their header, whatever
  // framing fields they carry.
  if (method === "HEAD" || status === 204 || status === 304) return NO_BODY;
  // RFC 9112 §6.3 rules 3–4: Transfer-Encoding wins over Content-Length; we do not read chunked
  // framing, and a Content-Length beside it is a smuggling sign: close in both cases.
  if (chunked) return closed("Transfer-Encoding (the body's end is not read)");
  if (contentLength === undefined) return closed("no Content-Length (the body ends when the connection closes)");
  if (!/^\d{1,15}$/.test(contentLength)) return closed(`invalid Content-Length ${JSON.stringify(contentLength)}`);
  return { persistent: true, bodyBytes: Number(contentLength) };
}

const HTTP11 = Buffer.from("HTTP/1.1 ", "latin1");

function closed(reason: string): NotPersistent {
  return { persistent: false, reason };
}

/** Whether a comma-separated list of tokens (RFC 9110 §5.6.1) holds `token`, case-insensitively. */
function hasToken(value: string, token: string): boolean {
  return value.split(",").some((part) => part.trim().toLowerCase() === token);
}
