/**
 * Every failure headwire reports carries one of these stable codes. The same codes appear in
 * control-channel replies (`ERROR <CODE> <message>`), in the client's output and in docs/protocol.md.
 */
export const ERROR_CODES = {
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
  STORE_UNAVAILABLE: "The server's shared cache store cannot be reached; retry later.",
  INTERNAL_ERROR: "The server failed on its own (a bug, logged there); the query can be retried.",
  // Fetching from the origin.
  DNS_NOT_FOUND: "The origin's host name does not resolve.",
  CONNECTION_REFUSED: "The origin refused the connection.",
  CONNECT_TIMEOUT: "The origin did not accept the connection in time.",
  HEADER_TIMEOUT: "The origin did not send its whole header in time.",
  HEADER_TOO_LARGE: "The origin's header is larger than the server's limit.",
  NOT_HTTP: "The origin did not answer with HTTP.",
  TLS_FAILURE: "The TLS handshake with the origin failed.",
  ORIGIN_CLOSED: "The origin closed the connection before the header ended.",
  TOO_MANY_REDIRECTS: "The redirect chain is longer than allowed.",
  BLOCKED_ADDRESS: "The origin's address is refused by the server's outbound guard.",
  ORIGIN_ERROR: "The connection to the origin failed.",
  // Client side.
  SERVER_UNREACHABLE: "The headwire server cannot be reached; check --server and that it runs.",
  CONNECTION_LOST: "The headwire server closed the session.",
  PROTOCOL_ERROR: "The peer sent something the protocol does not allow.",
  DELIVERY_FAILED: "The header did not arrive over UDP; check that UDP reaches the server, then retry.",
  WRITE_FAILED: "The header arrived but its file could not be written; check --out and free space.",
} as const;

export type ErrorCode = keyof typeof ERROR_CODES;

export function isErrorCode(value: string): value is ErrorCode {
  return Object.hasOwn(ERROR_CODES, value);
}

/** An error a caller can act on: a stable code and a human message. */
export class HeadwireError extends Error {
  readonly code: ErrorCode;

  constructor(code: ErrorCode, message: string = ERROR_CODES[code], options?: { cause?: unknown }) {
    super(message, options);
    this.name = "HeadwireError";
    this.code = code;
  }

  /** What a user can do about it, from the code's table. */
  get advice(): string {
    return ERROR_CODES[this.code];
  }
}

export function toHeadwireError(error: unknown, fallback: ErrorCode): HeadwireError {
  if (error instanceof HeadwireError) return error;
  const message = error instanceof Error ? error.message : String(error);
  return new HeadwireError(fallback, message, { cause: error });
}
