/**
 * Every failure headwire reports, in one place: the stable codes and their advice, and the few
 * error classes a caller can catch and act on. Anything else thrown is a bug.
 *
 * Two kinds of code. Wire codes are what a server sends in `ERROR <CODE> <message>` (documented
 * in docs/protocol.md, "Error codes"). Local codes are the client's own, about what happened on
 * its side of the wire; a server never sends one, and a client refuses one that arrives.
 */
export const WIRE_ERROR_CODES = {
  // Control channel: the request itself is wrong. The session goes on.
  LINE_TOO_LONG: "The line is longer than the control channel's limit; send a shorter URL.",
  BAD_ENCODING: "The line is not printable UTF-8 text; send the URL as text.",
  UNKNOWN_COMMAND: "The command is not part of the protocol; send QUERY <url> or TERMINATE.",
  BAD_REQUEST: "The command's arguments are wrong; see docs/protocol.md.",
  INVALID_URL: "The URL cannot be parsed; check its spelling.",
  UNSUPPORTED_SCHEME: "Only http and https URLs can be fetched.",
  // Control channel: the server's state.
  IDLE_TIMEOUT: "The session was idle too long and is closed; reconnect.",
  SERVER_BUSY: "The server holds too many sessions or queries; retry later.",
  SHUTTING_DOWN: "The server is shutting down; retry on another server or later.",
  FORBIDDEN: "Admin commands need a session from loopback, or AUTH with the server's admin token.",
  SESSION_LIMIT: "Too many sessions from your address at once; close one, or retry later.",
  RATE_LIMITED: "Too many queries from your address; slow down and retry in a second.",
  FORBIDDEN_OPTION:
    "The query asks for an option this server does not allow; the message names the switch that allows it.",
  TOO_MANY_ERRORS: "The session sent too many bad lines and is closed; fix the client, then reconnect.",
  ORIGIN_BUSY: "The server is already sending this origin as many requests as it allows; retry later.",
  STORE_UNAVAILABLE: "The server's shared cache store cannot be reached; retry later.",
  INTERNAL_ERROR: "The server failed on its own; this is a bug (logged there), the query can be retried.",
  PERSIST_FAILED: "The server could not write its cache to disk (logged there); the answers given still hold.",
  // Fetching from the origin.
  DNS_NOT_FOUND: "The origin's host name does not resolve.",
  CONNECTION_REFUSED: "The origin refused the connection.",
  CONNECT_TIMEOUT: "The origin did not accept the connection in time.",
  HEADER_TIMEOUT: "The origin did not send its whole header in time.",
  HEADER_TOO_LARGE: "The origin's header is larger than the server's limit.",
  NOT_HTTP: "The origin did not answer with HTTP.",
  TLS_FAILURE: "The TLS handshake with the origin failed.",
  HTTP2_REFUSED: "The query asked for HTTP/2 (http=2) and the origin does not speak it; ask with http=auto.",
  ORIGIN_CLOSED: "The origin closed the connection before the header ended.",
  TOO_MANY_REDIRECTS: "The redirect chain is longer than allowed.",
  BLOCKED_ADDRESS: "The origin's address is refused by the server's outbound guard.",
  ORIGIN_ERROR: "The connection to the origin failed.",
} as const;

export const LOCAL_ERROR_CODES = {
  SERVER_UNREACHABLE: "The headwire server cannot be reached; check --server and that it runs.",
  CONNECTION_LOST:
    "The session with the headwire server ended (the server closed it, or the network lost it); connect again.",
  NOT_HEADWIRE: "Whatever listens at --server is not a headwire server; check the host and the port.",
  REPLY_TIMEOUT:
    "The server did not answer in time (--reply-timeout-ms); it may be overloaded, or its origin slow: retry, or allow longer.",
  PROTOCOL_ERROR: "The peer sent something the protocol does not allow.",
  DELIVERY_FAILED: "The header did not arrive over UDP; check that UDP reaches the server, then retry.",
  UDP_SILENT: "No datagram arrived from the server's UDP port; UDP seems blocked on this path.",
  WRITE_FAILED: "The header arrived but its file could not be written; check -o/--output-dir and free space.",
  HTTP_FAILED:
    "With -f/--fail a final status of 400 or more is a failure: no file was written (-D still gets the header).",
  UNTRUSTED_TICKET:
    "The ticket names a UDP host that is not the server's address; pass --trust-udp-host HOST if the server runs behind NAT with --advertise.",
} as const;

/** Every code with its advice: what a user can do about it. */
export const ERROR_CODES = { ...WIRE_ERROR_CODES, ...LOCAL_ERROR_CODES } as const;

export type WireErrorCode = keyof typeof WIRE_ERROR_CODES;
export type LocalErrorCode = keyof typeof LOCAL_ERROR_CODES;
export type ErrorCode = WireErrorCode | LocalErrorCode;

export function isErrorCode(value: string): value is ErrorCode {
  return Object.hasOwn(ERROR_CODES, value);
}

export function isWireErrorCode(value: string): value is WireErrorCode {
  return Object.hasOwn(WIRE_ERROR_CODES, value);
}

/**
 * A failure a caller can act on: a stable code, a human message, and the code's advice. The code
 * type narrows where only some codes may go (a server's replies take wire codes only).
 */
export class HeadwireError<C extends ErrorCode = ErrorCode> extends Error {
  override name = "HeadwireError";
  readonly code: C;

  constructor(code: C, message: string = ERROR_CODES[code], options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
  }

  /** What a user can do about it, from the code's table. */
  get advice(): string {
    return ERROR_CODES[this.code];
  }
}

/** A setting or option with a bad value (`--ticket-ttl-ms must be an integer from 1 to 3600000, got 0`). */
export class ConfigError extends Error {
  override name = "ConfigError";
}

/** A cache file that does not follow its format (src/cache/cache-file-format.ts); it is moved aside. */
export class CacheFileError extends Error {
  override name = "CacheFileError";
}

/** Another process (or another server in this one) owns the cache file. */
export class CacheFileOwnedError extends Error {
  override name = "CacheFileOwnedError";
}

/** A cache file that could not be written (a full disk, a directory gone): nothing was persisted. */
export class CachePersistError extends Error {
  override name = "CachePersistError";
}

export function isHeadwireError(error: unknown): error is HeadwireError {
  return error instanceof HeadwireError;
}

/**
 * One of ours: a failure headwire expects and explains (bad input, a peer, the network, a
 * setting, a file). Anything else is a bug, to be reported with its stack.
 */
export function isExpectedError(
  error: unknown,
): error is HeadwireError | ConfigError | CacheFileError | CacheFileOwnedError | CachePersistError {
  return (
    error instanceof HeadwireError ||
    error instanceof ConfigError ||
    error instanceof CacheFileError ||
    error instanceof CacheFileOwnedError ||
    error instanceof CachePersistError
  );
}

/** An expected failure as it is: anything else (a system error, say) under the fallback code, keeping its message. */
export function toHeadwireError(error: unknown, fallback: ErrorCode): HeadwireError {
  if (error instanceof HeadwireError) return error;
  const message = error instanceof Error ? error.message : String(error);
  return new HeadwireError(fallback, message, { cause: error });
}

/**
 * For a server's reply: like toHeadwireError, but a local code (which only a bug could bring
 * here) becomes INTERNAL_ERROR, so a server never sends a code a client must refuse.
 */
export function toWireError(error: unknown, fallback: WireErrorCode): HeadwireError<WireErrorCode> {
  const failure = toHeadwireError(error, fallback);
  if (isWireError(failure)) return failure;
  return new HeadwireError("INTERNAL_ERROR", `${failure.code}: ${failure.message}`, { cause: error });
}

function isWireError(error: HeadwireError): error is HeadwireError<WireErrorCode> {
  return isWireErrorCode(error.code);
}
