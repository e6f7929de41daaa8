/**
 * What `headwire client` prints for each query, in its three forms: a human line (the default),
 * one JSON object a line (`--json`), or the header itself on standard output (`--print`).
 */
import { once } from "node:events";
import { ERROR_CODES, type ErrorCode } from "../errors.js";
import type { QueryResult } from "../client/headwire-client.js";
import type { CacheOutcome } from "../protocol/control.js";
import { exitOfResult } from "./exit-codes.js";
import { visible, type TerminalStyle } from "./terminal-style.js";

export type OutputMode = "lines" | "json" | "print";

/** One `--json` line. Every field is always present, in this order; absent values are null. */
export interface QueryRecord {
  url: string;
  /** Path of the written file (-o FILE, or --output-dir joined with the file name); null with --print or on error. */
  file: string | null;
  /** The final status; on error null, but kept for HTTP_FAILED (-f: the status is the failure). */
  status: number | null;
  bytes: number | null;
  cache: CacheOutcome | null;
  ms: number;
  error: { code: ErrorCode; message: string } | null;
  /** The exit status this query alone would give (src/cli/exit-codes.ts): 0, or curl's number for its failure. */
  exit: number;
}

export function toRecord(result: QueryResult): QueryRecord {
  return {
    url: result.url,
    file: result.file ?? null,
    status: result.error && result.error.code !== "HTTP_FAILED" ? null : (result.status ?? null),
    bytes: result.error ? null : (result.bytes ?? null),
    cache: result.error ? null : (result.cache ?? null),
    ms: result.ms,
    error: result.error ? { code: result.error.code, message: result.error.message } : null,
    exit: exitOfResult(result),
  };
}

const hex = (c: string) => `\\x${c.charCodeAt(0).toString(16).padStart(2, "0")}`;

/**
 * Network text for one line of output: every control character, tab, CR and LF included, as
 * `\xHH`. A bare CR would send the cursor back and let what follows overwrite the line: an
 * origin's `HTTP/1.1 500 Bad\rHTTP/1.1 200 OK` would read as a 200.
 */
export function visibleInLine(text: string): string {
  return visible(text).replace(/[\t\r\n]/g, hex);
}

/** `HTTP/1.1 301 Moved Permanently | 713 bytes | MISS | 12 ms | www.twitch.tv.txt` */
export function formatResultLine(result: QueryResult, style: TerminalStyle): string {
  const status = visibleInLine(result.statusLine ?? String(result.status ?? ""));
  const statusClass = Math.floor((result.status ?? 0) / 100);
  const paint =
    statusClass === 2 ? style.green : statusClass === 3 ? style.cyan : statusClass >= 4 ? style.yellow : style.bold;
  const cache = result.cache === "HIT" ? style.green(result.cache) : style.yellow(result.cache ?? "-");
  return `${paint(status)} | ${result.bytes} bytes | ${cache} | ${result.ms} ms | ${visibleInLine(result.file ?? "-")}\n`;
}

/** One line, whatever the message holds: `<url>: error <CODE>: <message> — <what to do>`. */
export function formatErrorLine(url: string, code: ErrorCode, message: string, style: TerminalStyle): string {
  const oneLine = (text: string) => visible(text.replace(/[\r\n]+/g, " "));
  return `${oneLine(url)}: ${style.red(style.bold(`error ${code}`))}: ${oneLine(message)} ${style.dim(`— ${ERROR_CODES[code]}`)}\n`;
}

/** `headwire client: UDP to 192.0.2.1:50367 seems blocked (...); delivering over ... (TCP) ...` */
export function formatNoticeLine(notice: string, style: TerminalStyle): string {
  return `${style.dim("headwire client:")} ${visibleInLine(notice)}\n`;
}

/**
 * One `--json` line. JSON.stringify escapes C0 controls but leaves DEL, the C1 controls (U+0080 to
 * U+009F, which some terminals obey as escape sequences: U+009B is CSI) and U+2028/U+2029 raw:
 * they are written as \uXXXX too, so a line of output holds no control character at all and
 * parses to the same record.
 */
export function formatJsonLine(result: QueryResult): string {
  const json = JSON.stringify(toRecord(result)).replace(
    /[\u007f-\u009f\u2028\u2029]/g,
    (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`,
  );
  return `${json}\n`;
}

export interface ResultPrinterOptions {
  mode: OutputMode;
  stdout: NodeJS.WritableStream & { isTTY?: boolean };
  /** Where error lines go; batch mode routes them above its progress bar. */
  errorLine: (text: string) => void;
  outStyle: TerminalStyle;
  errStyle: TerminalStyle;
  /** Batch mode without --json: a success is its file, and only failures are printed. */
  quietSuccess?: boolean;
  /** Batch mode with --print: each header follows a `==> URL <==` line (headerLabel). */
  labelHeaders?: boolean;
}

export class ResultPrinter {
  constructor(private readonly options: ResultPrinterOptions) {}

  /** Prints one result; resolves once standard output can take more (a slow reader slows the queries). */
  async report(result: QueryResult): Promise<void> {
    const { mode, stdout, errorLine, outStyle, errStyle, quietSuccess } = this.options;
    // What the client did on the way (a new ticket, a fallback to TCP) goes to standard error in
    // every mode: --json's records keep exactly their fields.
    for (const notice of result.notices ?? []) errorLine(formatNoticeLine(notice, errStyle));
    if (mode === "json") return write(stdout, formatJsonLine(result));
    if (result.error) {
      errorLine(formatErrorLine(result.url, result.error.code, result.error.message, errStyle));
      return;
    }
    if (mode === "print") {
      if (this.options.labelHeaders) await write(stdout, headerLabel(result.url));
      return write(stdout, headerForStream(result.header ?? Buffer.alloc(0), stdout));
    }
    if (!quietSuccess) return write(stdout, formatResultLine(result, outStyle));
  }
}

/**
 * The line before each header of a batch with --print, as `head` labels each of several files:
 * `==> www.twitch.tv <==`. The header that follows ends with its empty line, which separates it
 * from the next label. The URL is made one safe line (visibleInLine).
 */
export function headerLabel(url: string): string {
  return `==> ${visibleInLine(url)} <==\n`;
}

/**
 * The header's bytes as they arrived, or made harmless when the reader is a terminal: controls as
 * `\xHH`, line ends kept, but a CR that does not end a line (it would overwrite it) shown too.
 */
export function headerForStream(header: Buffer, stream: { isTTY?: boolean }): Buffer | string {
  return stream.isTTY ? visible(header.toString("latin1")).replace(/\r(?!\n)/g, hex) : header;
}

export async function write(stream: NodeJS.WritableStream, data: string | Buffer): Promise<void> {
  if (!stream.write(data)) await once(stream, "drain");
}
