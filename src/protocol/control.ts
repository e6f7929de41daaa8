/**
 * The control channel's wire format (TCP): one message a line, ending in LF (a CR before it is
 * dropped), at most `maxLineBytes` bytes. Pure: no sockets here. docs/protocol.md is the reference.
 */
import { ERROR_CODES, HeadwireError, isErrorCode, isWireErrorCode, type WireErrorCode } from "../errors.js";
import { DEFAULT_QUERY_OPTIONS, MAX_REDIRECTS, type QueryOptions } from "../http/query-options.js";

export const PROTOCOL_VERSION = 1;
export const GREETING_PREFIX = `HEADWIRE/${PROTOCOL_VERSION}`;

export type CacheOutcome = "HIT" | "MISS" | "STALE" | "REVALIDATED";
const CACHE_OUTCOMES: readonly CacheOutcome[] = ["HIT", "MISS", "STALE", "REVALIDATED"];

export type LineEvent = { kind: "line"; text: string } | { kind: "error"; error: HeadwireError<WireErrorCode> };

/**
 * Splits a byte stream into lines. An over-long line yields one LINE_TOO_LONG error and is skipped
 * up to its end; a line that is not printable UTF-8 yields BAD_ENCODING. Memory stays within
 * maxLineBytes whatever the peer sends.
 */
export class LineDecoder {
  private parts: Buffer[] = [];
  private pendingBytes = 0;
  private discarding = false;

  constructor(private readonly maxLineBytes: number) {}

  push(chunk: Buffer): LineEvent[] {
    const events: LineEvent[] = [];
    let start = 0;
    while (start < chunk.length) {
      const newline = chunk.indexOf(0x0a, start);
      const end = newline === -1 ? chunk.length : newline;
      if (!this.discarding) {
        this.parts.push(chunk.subarray(start, end));
        this.pendingBytes += end - start;
      }
      const limit = this.maxLineBytes + 1; // room for a CR before the LF
      if (!this.discarding && this.pendingBytes > limit) {
        this.parts = [];
        this.pendingBytes = 0;
        this.discarding = true;
        events.push({ kind: "error", error: tooLong(this.maxLineBytes) });
      }
      if (newline === -1) break;
      if (this.discarding) {
        this.discarding = false;
      } else {
        const line = Buffer.concat(this.parts, this.pendingBytes);
        this.parts = [];
        this.pendingBytes = 0;
        events.push(decodeLine(line, this.maxLineBytes));
      }
      start = newline + 1;
    }
    return events;
  }

  /** Bytes held for an unfinished line. */
  get bufferedBytes(): number {
    return this.pendingBytes;
  }
}

function tooLong(maxLineBytes: number): HeadwireError<WireErrorCode> {
  return new HeadwireError("LINE_TOO_LONG", `line longer than ${maxLineBytes} bytes`);
}

// ignoreBOM: a byte-order mark is kept, so "\uFEFFPING" is not silently read as PING.
const decoder = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });

function decodeLine(raw: Buffer, maxLineBytes: number): LineEvent {
  const line = raw.length > 0 && raw[raw.length - 1] === 0x0d ? raw.subarray(0, raw.length - 1) : raw;
  if (line.length > maxLineBytes) return { kind: "error", error: tooLong(maxLineBytes) };
  let text: string;
  try {
    text = decoder.decode(line);
  } catch {
    return { kind: "error", error: new HeadwireError("BAD_ENCODING", "line is not valid UTF-8") };
  }
  // C0 controls (tab allowed), DEL and C1 controls are never part of a command or a URL.
  if (/[\u0000-\u0008\u000a-\u001f\u007f-\u009f]/.test(text)) {
    return { kind: "error", error: new HeadwireError("BAD_ENCODING", "line contains control characters") };
  }
  return { kind: "line", text };
}

// ---- client → server ----

export type ClientMessage =
  | { kind: "query"; url: string; options: QueryOptions }
  | { kind: "terminate" }
  | { kind: "ping" }
  | { kind: "auth"; token: string }
  /** `url` undefined means every entry (PURGE ALL). */
  | { kind: "purge"; url: string | undefined };

export function parseClientMessage(line: string): ClientMessage {
  const words = line.split(/[ \t]+/).filter((w) => w !== "");
  const [command, ...args] = words;
  switch (command?.toUpperCase()) {
    case undefined:
      throw new HeadwireError("BAD_REQUEST", "empty line");
    case "TERMINATE":
      if (args.length > 0) throw new HeadwireError("BAD_REQUEST", "TERMINATE takes no arguments");
      return { kind: "terminate" };
    case "PING":
      return { kind: "ping" };
    case "AUTH":
      if (args.length !== 1) throw new HeadwireError("BAD_REQUEST", "AUTH takes one token");
      return { kind: "auth", token: args[0]! };
    case "PURGE": {
      if (args.length !== 1) throw new HeadwireError("BAD_REQUEST", "PURGE takes a URL or ALL");
      const target = args[0]!;
      return { kind: "purge", url: target.toUpperCase() === "ALL" ? undefined : target };
    }
    case "QUERY": {
      const [url, ...optionWords] = args;
      if (url === undefined)
        throw new HeadwireError("BAD_REQUEST", "QUERY needs a URL: QUERY <url> [option=value ...]");
      return { kind: "query", url, options: parseQueryOptions(optionWords) };
    }
    default:
      throw new HeadwireError("UNKNOWN_COMMAND", `unknown command ${JSON.stringify(truncate(command ?? "", 40))}`);
  }
}

function parseQueryOptions(words: string[]): QueryOptions {
  const options = { ...DEFAULT_QUERY_OPTIONS };
  for (const word of words) {
    const eq = word.indexOf("=");
    const key = eq === -1 ? word : word.slice(0, eq);
    const value = eq === -1 ? "" : word.slice(eq + 1);
    if (key === "method" && (value === "GET" || value === "HEAD")) options.method = value;
    else if (key === "redirects" && /^\d{1,2}$/.test(value) && Number(value) <= MAX_REDIRECTS) {
      options.redirects = Number(value);
    } else if (key === "chain" && (value === "all" || value === "last")) options.chain = value;
    else throw new HeadwireError("BAD_REQUEST", `bad query option ${JSON.stringify(truncate(word, 40))}`);
  }
  return options;
}

export function formatQuery(url: string, options: Partial<QueryOptions> = {}): string {
  const all = { ...DEFAULT_QUERY_OPTIONS, ...options };
  let line = `QUERY ${url}`;
  if (all.method !== DEFAULT_QUERY_OPTIONS.method) line += ` method=${all.method}`;
  if (all.redirects !== DEFAULT_QUERY_OPTIONS.redirects) line += ` redirects=${all.redirects}`;
  if (all.chain !== DEFAULT_QUERY_OPTIONS.chain) line += ` chain=${all.chain}`;
  return `${line}\n`;
}

// ---- server → client ----

export interface Ticket {
  /** 16 random bytes, hex on the wire. */
  token: Buffer;
  udpHost: string;
  udpPort: number;
  bytes: number;
  chunks: number;
  cache: CacheOutcome;
  status: number;
  /** SHA-256 of the header bytes. */
  sha256: Buffer;
  /** Set when the shared cache store was unavailable and the origin was asked directly. */
  storeUnavailable?: boolean;
  /** How long the ticket can be collected from now, in ms (absent from older servers). */
  ttlMs?: number;
}

export type ServerMessage =
  | { kind: "greeting"; server: string }
  | { kind: "ticket"; ticket: Ticket }
  | { kind: "error"; code: WireErrorCode; message: string }
  | { kind: "bye" }
  | { kind: "pong" }
  | { kind: "purged"; count: number }
  | { kind: "authorized" };

export function formatGreeting(serverName: string): string {
  return `${GREETING_PREFIX} READY ${serverName}\n`;
}

export function formatTicket(t: Ticket): string {
  const host = t.udpHost.includes(":") ? `[${t.udpHost}]` : t.udpHost;
  return (
    `TICKET token=${t.token.toString("hex")} udp=${host}:${t.udpPort} bytes=${t.bytes} chunks=${t.chunks}` +
    ` cache=${t.cache} status=${t.status} sha256=${t.sha256.toString("hex")}` +
    `${t.ttlMs !== undefined ? ` ttl=${t.ttlMs}` : ""}` +
    `${t.storeUnavailable ? " store=unavailable" : ""}\n`
  );
}

/** Only wire codes: a local code (the client's own) never goes on the wire. */
export function formatError(error: HeadwireError<WireErrorCode>): string {
  // The message is one line of text: no line ends can leak into the stream.
  // Cut by code points, so a character outside the BMP is never split in half.
  const message = Array.from(error.message.replace(/[\u0000-\u001f\u007f]+/g, " "))
    .slice(0, 512)
    .join("");
  return `ERROR ${error.code} ${message}\n`;
}

export const BYE_LINE = "BYE\n";
export const PONG_LINE = "PONG\n";
export const AUTHORIZED_LINE = "AUTHORIZED\n";

export function formatPurged(count: number): string {
  return `PURGED ${count}\n`;
}

export function parseServerMessage(line: string): ServerMessage {
  const space = line.indexOf(" ");
  const head = space === -1 ? line : line.slice(0, space);
  const rest = space === -1 ? "" : line.slice(space + 1);
  if (head === GREETING_PREFIX) {
    if (!rest.startsWith("READY")) throw protocolError("bad greeting", line);
    return { kind: "greeting", server: rest.slice(5).trim() };
  }
  if (head.startsWith("HEADWIRE/")) throw protocolError("unsupported protocol version", line);
  if (head === "BYE") return { kind: "bye" };
  if (head === "PONG") return { kind: "pong" };
  if (head === "AUTHORIZED") return { kind: "authorized" };
  if (head === "PURGED" && /^\d{1,10}$/.test(rest)) return { kind: "purged", count: Number(rest) };
  if (head === "ERROR") {
    const sp = rest.indexOf(" ");
    const code = sp === -1 ? rest : rest.slice(0, sp);
    if (!isErrorCode(code)) throw protocolError("unknown error code", line);
    // A client's own codes say what happened on its side; a server claiming one is lying or broken.
    if (!isWireErrorCode(code)) throw protocolError("local error code from the server", line);
    return { kind: "error", code, message: sp === -1 ? ERROR_CODES[code] : rest.slice(sp + 1) };
  }
  if (head === "TICKET") return { kind: "ticket", ticket: parseTicketFields(rest, line) };
  throw protocolError("unknown reply", line);
}

function parseTicketFields(rest: string, line: string): Ticket {
  const fields = new Map<string, string>();
  for (const word of rest.split(" ")) {
    const eq = word.indexOf("=");
    if (eq > 0) fields.set(word.slice(0, eq), word.slice(eq + 1));
  }
  const need = (key: string, pattern: RegExp): string => {
    const value = fields.get(key);
    if (value === undefined || !pattern.test(value)) throw protocolError(`bad ticket field ${key}`, line);
    return value;
  };
  const udp = need("udp", /^(\[[0-9a-fA-F:.]+\]|[^\s:[\]]+):\d{1,5}$/);
  const colon = udp.lastIndexOf(":");
  const udpHost = udp.slice(0, colon).replace(/^\[|\]$/g, "");
  const cache = need("cache", /^[A-Z]+$/) as CacheOutcome;
  if (!CACHE_OUTCOMES.includes(cache)) throw protocolError("bad ticket field cache", line);
  const udpPort = Number(udp.slice(colon + 1));
  if (udpPort < 1 || udpPort > 65535) throw protocolError("bad ticket field udp", line);
  return {
    token: Buffer.from(need("token", /^[0-9a-f]{32}$/), "hex"),
    udpHost,
    udpPort,
    bytes: Number(need("bytes", /^\d{1,10}$/)),
    chunks: Number(need("chunks", /^\d{1,10}$/)),
    cache,
    status: Number(need("status", /^\d{3}$/)),
    sha256: Buffer.from(need("sha256", /^[0-9a-f]{64}$/), "hex"),
    storeUnavailable: fields.get("store") === "unavailable",
    ...(/^\d{1,9}$/.test(fields.get("ttl") ?? "") ? { ttlMs: Number(fields.get("ttl")) } : {}),
  };
}

function protocolError(what: string, line: string): HeadwireError {
  return new HeadwireError("PROTOCOL_ERROR", `${what}: ${JSON.stringify(truncate(line, 120))}`);
}

function truncate(text: string, max: number): string {
  return text.length > max ? `${text.slice(0, max)}…` : text;
}
