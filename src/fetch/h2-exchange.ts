/**
 * One HTTP/2 request on a TLS socket whose ALPN chose "h2" (RFC 9113 §3.2), with Node's own
 * http2 module: a session on that socket (connected, checked and SNI'd by the fetcher, so the
 * outbound guard and certificate checks hold as for HTTP/1.1), one HEADERS frame with
 * END_STREAM, and the response header blocks (1xx interim ones, then the final one) rendered as
 * curl renders them. The body is never read: the session is destroyed once the final block is in.
 */
import http2 from "node:http2";
import type tls from "node:tls";
import { HeadwireError } from "../errors.js";
import type { ConditionalFields } from "../http/conditional.js";
import { isInterimStatus } from "../http/header-block.js";
import { renderH2Block, type RawHeaderList } from "../http/h2-header-block.js";
import type { HttpMethod } from "../http/query-options.js";
import type { RequestHeader } from "../http/request.js";
import type { FetchTarget } from "../url/target.js";

export interface H2Request {
  target: FetchTarget;
  method: HttpMethod;
  userAgent: string;
  conditional: ConditionalFields;
  headers: readonly RequestHeader[];
  maxHeaderBytes: number;
  headerTimeoutMs: number;
}

export interface H2Response {
  /** Every block rendered, interim ones first. */
  header: Buffer;
  status: number;
  /** The final block, to read Location from. */
  finalSection: Buffer;
}

/**
 * The request's fields in curl's order: the pseudo-headers (RFC 9113 §8.3.1), then user-agent
 * and accept unless the query gave its own, the query's fields, the conditional ones. Names are
 * lowercase (RFC 9113 §8.2.2).
 */
export function h2RequestHeaders(
  request: Omit<H2Request, "maxHeaderBytes" | "headerTimeoutMs">,
): http2.OutgoingHttpHeaders {
  const { target, method, userAgent, conditional, headers } = request;
  const own = new Set(headers.map((h) => h.name.toLowerCase()));
  const out: http2.OutgoingHttpHeaders = {
    ":method": method,
    ":scheme": target.scheme,
    ":authority": target.hostHeader,
    ":path": target.path,
  };
  if (!own.has("user-agent")) out["user-agent"] = userAgent;
  if (!own.has("accept")) out.accept = "*/*";
  for (const { name, value } of headers) {
    // An empty value drops the default of that name and sends nothing (curl -H 'Accept:').
    if (value === "") continue;
    const key = name.toLowerCase();
    const before = out[key];
    out[key] = before === undefined ? value : [...(Array.isArray(before) ? before : [String(before)]), value];
  }
  for (const [name, value] of Object.entries(conditional)) if (value !== undefined) out[name.toLowerCase()] = value;
  return out;
}

export function exchangeH2(socket: tls.TLSSocket, request: H2Request): Promise<H2Response> {
  const { target, maxHeaderBytes, headerTimeoutMs } = request;
  return new Promise<H2Response>((resolve, reject) => {
    const blocks: Buffer[] = [];
    let bytes = 0;
    const session = http2.connect(`https://${target.hostHeader}`, {
      createConnection: () => socket,
      // The origin learns our limit (RFC 9113 §6.5.2) and Node refuses a larger block itself.
      settings: { enablePush: false, maxHeaderListSize: Math.max(maxHeaderBytes, 1024) },
      maxHeaderListPairs: Math.max(128, Math.ceil(maxHeaderBytes / 4)),
    });
    let settled = false;
    const settle = (error: unknown, value?: H2Response): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      session.destroy();
      if (error === undefined) resolve(value!);
      else reject(error);
    };
    const timer = setTimeout(() => {
      const what = `the header from ${target.hostHeader} timed out after ${headerTimeoutMs} ms`;
      settle(new HeadwireError("HEADER_TIMEOUT", what));
    }, headerTimeoutMs);
    const add = (raw: RawHeaderList): { text: Buffer; status: number } => {
      const block = renderH2Block(raw);
      bytes += block.text.length;
      if (bytes > maxHeaderBytes) {
        throw new HeadwireError("HEADER_TOO_LARGE", `the origin's header is larger than ${maxHeaderBytes} bytes`);
      }
      blocks.push(block.text);
      return block;
    };
    session.on("error", (error) => settle(h2Error(error, target)));
    session.on("close", () =>
      settle(
        new HeadwireError("ORIGIN_CLOSED", `${target.hostHeader} closed the HTTP/2 session before the header ended`),
      ),
    );
    const stream = session.request(h2RequestHeaders(request), { endStream: true });
    stream.on("error", (error) => settle(h2Error(error, target)));
    stream.on("close", () =>
      settle(
        new HeadwireError("ORIGIN_CLOSED", `${target.hostHeader} reset the HTTP/2 stream before the header ended`),
      ),
    );
    // Interim 1xx blocks come as "headers" before "response" (Node's http2 client).
    stream.on("headers", (_headers: unknown, _flags: unknown, raw: RawHeaderList) => {
      try {
        const block = add(raw);
        if (!isInterimStatus(block.status)) throw new HeadwireError("NOT_HTTP", "an HTTP/2 interim block is not 1xx");
      } catch (error) {
        settle(error);
      }
    });
    stream.on("response", (_headers: unknown, _flags: unknown, raw: RawHeaderList) => {
      try {
        const block = add(raw);
        settle(undefined, { header: Buffer.concat(blocks), status: block.status, finalSection: block.text });
      } catch (error) {
        settle(error);
      }
    });
  });
}

function h2Error(error: Error, target: FetchTarget): HeadwireError {
  const code = (error as { code?: unknown }).code;
  if (code === "ERR_HTTP2_HEADER_SINGLE_VALUE" || code === "ERR_HTTP2_INVALID_HEADER_VALUE") {
    return new HeadwireError("BAD_REQUEST", `a request field cannot be sent over HTTP/2: ${error.message}`, {
      cause: error,
    });
  }
  return new HeadwireError("ORIGIN_ERROR", `HTTP/2 with ${target.hostHeader} failed: ${error.message}`, {
    cause: error,
  });
}
