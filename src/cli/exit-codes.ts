/**
 * The exit status of `headwire client`, numbered as curl numbers the same classes of failure
 * (curl's `libcurl-errors(3)`, CURLE_*), so a script written for curl reads headwire's the same
 * way. The one table below is what --help's EXIT STATUS and the README print, and what each
 * `--json` record's "exit" field holds.
 *
 * The headwire server stands where curl's proxy would (`curl -x`): it is the host the client
 * connects to, and the origin is reached through it. So a server that cannot be reached is 7, as
 * curl's proxy that refuses (CURLE_COULDNT_CONNECT), and a session lost under a query is 56, as
 * curl's connection that breaks mid-transfer (CURLE_RECV_ERROR). Before this table a lost or
 * unreachable server was 3, which is curl's URL_MALFORMAT: a script retrying on "server down"
 * would have retried a typo.
 */
import type { ErrorCode } from "../errors.js";

/** Statuses that are not a query's error code. */
export const EXIT = {
  ok: 0,
  /** A failure with no curl class, or, with several URLs, at least one failed query. */
  failed: 1,
  /** Bad usage: an unknown option, a bad value, an unreadable --batch file (curl's FAILED_INIT). */
  usage: 2,
  urlMalformed: 3,
  /** The headwire server could not be reached (as curl's proxy: COULDNT_CONNECT). */
  serverUnreachable: 7,
  /** The session was lost (as curl's connection breaking: RECV_ERROR). */
  sessionLost: 56,
  /** Ctrl-C during --batch: 128 + SIGINT, as a shell reports it. */
  interrupted: 130,
} as const;

interface ExitClass {
  exit: number;
  /** curl's name for the class, without CURLE_. */
  curl: string;
  /** What it means here, for the help table. */
  meaning: string;
  codes: readonly ErrorCode[];
}

/**
 * Every error code in exactly one class (a unit test checks it). Codes with no class of curl's
 * are 1, headwire's "failed" (curl's 1 is UNSUPPORTED_PROTOCOL, which UNSUPPORTED_SCHEME is too).
 */
export const EXIT_CLASSES: readonly ExitClass[] = [
  {
    exit: 1,
    curl: "UNSUPPORTED_PROTOCOL",
    meaning: "not http or https; or a failure curl has no number for (the message names its code)",
    codes: [
      "UNSUPPORTED_SCHEME",
      "BAD_REQUEST",
      "UNKNOWN_COMMAND",
      "SERVER_BUSY",
      "SESSION_LIMIT",
      "RATE_LIMITED",
      "FORBIDDEN_OPTION",
      "TOO_MANY_ERRORS",
      "ORIGIN_BUSY",
      "STORE_UNAVAILABLE",
      "INTERNAL_ERROR",
      "PERSIST_FAILED",
      "FORBIDDEN",
      "BLOCKED_ADDRESS",
      "UNTRUSTED_TICKET",
    ],
  },
  {
    exit: 3,
    curl: "URL_MALFORMAT",
    meaning: "the URL is malformed (checked before it is sent)",
    codes: ["INVALID_URL", "LINE_TOO_LONG", "BAD_ENCODING"],
  },
  {
    exit: 6,
    curl: "COULDNT_RESOLVE_HOST",
    meaning: "the origin's host name does not resolve",
    codes: ["DNS_NOT_FOUND"],
  },
  {
    exit: 7,
    curl: "COULDNT_CONNECT",
    meaning: "the origin refused or failed the connection; or the headwire server cannot be reached, or is not one",
    codes: ["CONNECTION_REFUSED", "ORIGIN_ERROR", "SERVER_UNREACHABLE", "NOT_HEADWIRE"],
  },
  {
    exit: 8,
    curl: "WEIRD_SERVER_REPLY",
    meaning: "the origin (or server) did not answer with its protocol",
    codes: ["NOT_HTTP", "PROTOCOL_ERROR"],
  },
  {
    exit: 16,
    curl: "HTTP2",
    meaning: "HTTP/2 was required (http=2) and the origin does not speak it",
    codes: ["HTTP2_REFUSED"],
  },
  {
    exit: 22,
    curl: "HTTP_RETURNED_ERROR",
    meaning: "with -f/--fail, the final status is 400 or more",
    codes: ["HTTP_FAILED"],
  },
  {
    exit: 23,
    curl: "WRITE_ERROR",
    meaning: "the header arrived but its file could not be written",
    codes: ["WRITE_FAILED"],
  },
  {
    exit: 28,
    curl: "OPERATION_TIMEDOUT",
    meaning: "the origin did not connect, or send its header, in time; or the server did not reply in time",
    codes: ["CONNECT_TIMEOUT", "HEADER_TIMEOUT", "REPLY_TIMEOUT"],
  },
  { exit: 35, curl: "SSL_CONNECT_ERROR", meaning: "the TLS handshake with the origin failed", codes: ["TLS_FAILURE"] },
  { exit: 47, curl: "TOO_MANY_REDIRECTS", meaning: "-L hit --max-redirs", codes: ["TOO_MANY_REDIRECTS"] },
  {
    exit: 56,
    curl: "RECV_ERROR",
    meaning: "the origin closed before its header ended; the header did not arrive; the session was lost",
    codes: ["ORIGIN_CLOSED", "DELIVERY_FAILED", "UDP_SILENT", "CONNECTION_LOST", "IDLE_TIMEOUT", "SHUTTING_DOWN"],
  },
  {
    exit: 100,
    curl: "TOO_LARGE",
    meaning: "the origin's header is larger than the server's limit",
    codes: ["HEADER_TOO_LARGE"],
  },
];

const BY_CODE: ReadonlyMap<ErrorCode, number> = new Map(
  EXIT_CLASSES.flatMap((entry) => entry.codes.map((code) => [code, entry.exit] as const)),
);

/** The exit status for a failure with this code (curl's number for its class, else 1). */
export function exitCodeFor(code: ErrorCode): number {
  return BY_CODE.get(code) ?? EXIT.failed;
}

/** The exit status of one query: 0, or its error's code. */
export function exitOfResult(result: { error?: { code: ErrorCode } }): number {
  return result.error ? exitCodeFor(result.error.code) : EXIT.ok;
}

/** The EXIT STATUS section of `headwire client --help`, from the table above, wrapped to the help's width. */
export function exitStatusHelp(): string {
  const rows: Array<[number, string]> = [
    [EXIT.ok, "every query succeeded"],
    ...EXIT_CLASSES.map((entry): [number, string] => [entry.exit, `${entry.meaning} (${entry.codes.join(", ")})`]),
    [EXIT.usage, "bad usage: an unknown option, a bad value, an unreadable --batch file"],
    [EXIT.interrupted, "interrupted (Ctrl-C) during --batch"],
  ];
  return rows
    .sort(([a], [b]) => a - b)
    .map(([exit, text]) => wrap(`  ${String(exit).padEnd(4)} ${text}`, HELP_WIDTH, " ".repeat(7)))
    .join("\n");
}

const HELP_WIDTH = 98;

/** Words onto lines of at most `width` characters; each line after the first starts with `indent`. */
function wrap(text: string, width: number, indent: string): string {
  const lines: string[] = [];
  let line = "";
  for (const word of text.split(/(?<=\S) (?=\S)/)) {
    if (line !== "" && line.length + 1 + word.length > width) {
      lines.push(line);
      line = `${indent}${word}`;
    } else line = line === "" ? word : `${line} ${word}`;
  }
  lines.push(line);
  return lines.join("\n");
}
