/**
 * The control channel's wire format (TCP): one message a line, ending in LF (a CR before it is
 * dropped), at most `maxLineBytes` bytes. Pure: no sockets here. docs/protocol.md is the reference.
 */
import { ERROR_CODES, HeadwireError, isErrorCode, isWireErrorCode, type WireErrorCode } from "../errors.js";
import {
  DEFAULT_QUERY_OPTIONS,
  MAX_QUERY_TIMEOUT_MS,
  MAX_REDIRECTS,
  type QueryOptions,
} from "../http/query-options.js";
import type { RequestHeader } from "../http/request.js";
import { formatHeaderOption, parseHeaderOption } from "../http/request-headers.js";

/**
 * 2: datagrams carry request numbers (datagram version 2), and a query may ask for delivery=tcp.
 * A client and a server of different versions refuse each other at the greeting, with a message
 * that names both versions, instead of failing later on the data channel.
 */
export const PROTOCOL_VERSION = 2;
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
        // A line within one chunk (the usual case) is read where it is, not copied.
        const line = this.parts.length === 1 ? this.parts[0]! : Buffer.concat(this.parts, this.pendingBytes);
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
  // Printable ASCII and tab (every command, and a URL as clients send it): the UTF-8 decoding
  // and the control-character check below would give the same text and find nothing.
  if (printableAscii(line)) return { kind: "line", text: line.toString("latin1") };
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

/** Every byte is 0x20-0x7E or a tab. */
function printableAscii(bytes: Buffer): boolean {
  for (let i = 0; i < bytes.length; i++) {
    const byte = bytes[i]!;
    if ((byte < 0x20 && byte !== 0x09) || byte > 0x7e) return false;
  }
  return true;
}

// ---- client → server ----

/**
 * How a query's header is delivered: collected over UDP with the ticket (the seed's way), or
 * written on this TCP session right after the TICKET line, for paths where UDP does not get
 * through. Not a query option: it changes the transport, never the answer (nor its cache key).
 */
export type Delivery = "udp" | "tcp";
export const DEFAULT_DELIVERY: Delivery = "udp";

export type ClientMessage =
  | { kind: "query"; url: string; options: QueryOptions; delivery: Delivery }
  | { kind: "terminate" }
  | { kind: "ping" }
  | { kind: "auth"; token: string }
  /** `url` undefined means every entry (PURGE ALL). */
  | { kind: "purge"; url: string | undefined };

/**
 * The common line, `QUERY <url>` with one space and no options, read without splitting: what
 * parseClientMessage answers for it, or undefined for any other line (which parseClientMessage
 * then reads). Kept apart from the general parser so that query options can grow there.
 */
export function parsePlainQuery(line: string): ClientMessage | undefined {
  if (line.length <= 6 || !line.startsWith("QUERY ")) return undefined;
  const url = line.slice(6);
  if (url.includes(" ") || url.includes("\t")) return undefined;
  return { kind: "query", url, options: { ...DEFAULT_QUERY_OPTIONS }, delivery: DEFAULT_DELIVERY };
}

export function parseClientMessage(line: string): ClientMessage {
  const plain = parsePlainQuery(line);
  if (plain) return plain;
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
      return { kind: "query", url, ...parseQueryOptions(optionWords) };
    }
    default:
      throw new HeadwireError("UNKNOWN_COMMAND", `unknown command ${JSON.stringify(truncate(command ?? "", 40))}`);
  }
}

function parseQueryOptions(words: string[]): { options: QueryOptions; delivery: Delivery } {
  const options: QueryOptions = { ...DEFAULT_QUERY_OPTIONS };
  const headers: RequestHeader[] = [];
  let delivery = DEFAULT_DELIVERY;
  for (const word of words) {
    const eq = word.indexOf("=");
    const key = eq === -1 ? word : word.slice(0, eq);
    const value = eq === -1 ? "" : word.slice(eq + 1);
    if (key === "method" && (value === "GET" || value === "HEAD")) options.method = value;
    else if (key === "redirects" && /^\d{1,2}$/.test(value) && Number(value) <= MAX_REDIRECTS) {
      options.redirects = Number(value);
    } else if (key === "chain" && (value === "all" || value === "last")) options.chain = value;
    else if (key === "http" && (value === "auto" || value === "1.1" || value === "2")) options.http = value;
    else if (key === "delivery" && (value === "udp" || value === "tcp")) delivery = value;
    else if (key === "insecure" && (value === "0" || value === "1")) options.insecure = value === "1";
    else if (key === "ip" && (value === "any" || value === "4" || value === "6")) options.ip = value;
    else if (key === "cache" && (value === "use" || value === "refresh")) options.cache = value;
    else if (key === "connect-timeout-ms" && isQueryTimeout(value)) options.connectTimeoutMs = Number(value);
    else if (key === "max-time-ms" && isQueryTimeout(value)) options.maxTimeMs = Number(value);
    else if (key === "header" && eq !== -1) headers.push(parseHeaderOption(value));
    else throw new HeadwireError("BAD_REQUEST", `bad query option ${JSON.stringify(truncate(word, 40))}`);
  }
  if (headers.length > 0) options.headers = headers;
  return { options, delivery };
}

/** A per-query time limit: a whole number of ms from 1 to MAX_QUERY_TIMEOUT_MS. */
function isQueryTimeout(value: string): boolean {
  return /^[1-9]\d{0,8}$/.test(value) && Number(value) <= MAX_QUERY_TIMEOUT_MS;
}

export function formatQuery(
  url: string,
  options: Partial<QueryOptions> = {},
  delivery: Delivery = DEFAULT_DELIVERY,
): string {
  const all = { ...DEFAULT_QUERY_OPTIONS, ...options };
  let line = `QUERY ${url}`;
  if (all.method !== DEFAULT_QUERY_OPTIONS.method) line += ` method=${all.method}`;
  if (all.redirects !== DEFAULT_QUERY_OPTIONS.redirects) line += ` redirects=${all.redirects}`;
  if (all.chain !== DEFAULT_QUERY_OPTIONS.chain) line += ` chain=${all.chain}`;
  if (all.http !== DEFAULT_QUERY_OPTIONS.http) line += ` http=${all.http}`;
  if (all.insecure) line += " insecure=1";
  if (all.ip !== DEFAULT_QUERY_OPTIONS.ip) line += ` ip=${all.ip}`;
  if (all.cache !== DEFAULT_QUERY_OPTIONS.cache) line += ` cache=${all.cache}`;
  if (all.connectTimeoutMs !== undefined) line += ` connect-timeout-ms=${all.connectTimeoutMs}`;
  if (all.maxTimeMs !== undefined) line += ` max-time-ms=${all.maxTimeMs}`;
  for (const header of all.headers) line += ` ${formatHeaderOption(header)}`;
  if (delivery !== DEFAULT_DELIVERY) line += ` delivery=${delivery}`;
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

/**
 * The answer to a query with delivery=tcp: what a ticket says of the header, without a token or a
 * UDP address (nothing is collected over UDP). Its `bytes` octets follow the TICKET line.
 */
export interface TcpTicket {
  bytes: number;
  cache: CacheOutcome;
  status: number;
  /** SHA-256 of the header bytes that follow. */
  sha256: Buffer;
  storeUnavailable?: boolean;
}

export type ServerMessage =
  /** idleTimeoutMs: how long the server lets a session sit without a line (absent from older servers). */
  | { kind: "greeting"; server: string; idleTimeoutMs?: number }
  | { kind: "ticket"; ticket: Ticket }
  /** Only the line: its header's bytes follow in the stream (ReplyDecoder reads them). */
  | { kind: "tcp-ticket"; ticket: TcpTicket }
  | { kind: "error"; code: WireErrorCode; message: string }
  | { kind: "bye" }
  | { kind: "pong" }
  | { kind: "purged"; count: number }
  | { kind: "authorized" };

/**
 * `HEADWIRE/2 READY headwire/0.1.0 idle=300000`: the name, then fields a client may use. idle= is
 * the session's idle timeout in ms, so a client waiting on its user sends PING in time. A client
 * that knows no fields reads them as part of the name, and goes on working (backward compatible).
 */
export function formatGreeting(serverName: string, idleTimeoutMs?: number): string {
  return `${GREETING_PREFIX} READY ${serverName}${idleTimeoutMs === undefined ? "" : ` idle=${idleTimeoutMs}`}\n`;
}

/** The greeting after READY: the server's name, then key=value fields (unknown ones are ignored). */
function parseGreeting(rest: string): Extract<ServerMessage, { kind: "greeting" }> {
  const words = rest.trim().split(" ");
  const fields = new Map<string, string>();
  // Fields come after the name: trailing words of the form key=value.
  while (words.length > 1 && /^[a-z]+=\S*$/.test(words[words.length - 1]!)) {
    const [key = "", value = ""] = words.pop()!.split("=");
    fields.set(key, value);
  }
  const server = words.join(" ").trim();
  const idle = fields.get("idle");
  // An idle= this client cannot read is ignored: it is advice for the client, not a rule.
  if (idle === undefined || !/^[1-9]\d{0,9}$/.test(idle)) return { kind: "greeting", server };
  return { kind: "greeting", server, idleTimeoutMs: Number(idle) };
}

export function formatTicket(t: Ticket): string {
  return formatTicketFrom(t.token.toString("hex"), ticketUdpField(t.udpHost, t.udpPort), ticketTail(t));
}

// A TICKET line in three parts, so that the server's hot path can build each part once: the
// `udp=` field per address it is reached on, the tail per cached entry. formatTicket is their
// concatenation, so the two ways of writing a line cannot drift apart.

/** ` udp=<host>:<port>`: an IPv6 address in brackets (RFC 3986 §3.2.2). */
export function ticketUdpField(udpHost: string, udpPort: number): string {
  return ` udp=${udpHost.includes(":") ? `[${udpHost}]` : udpHost}:${udpPort}`;
}

/** Everything after the `udp=` field, line end included: fixed for one header, outcome and TTL. */
export function ticketTail(t: Omit<Ticket, "token" | "udpHost" | "udpPort">): string {
  return (
    ` bytes=${t.bytes} chunks=${t.chunks} cache=${t.cache} status=${t.status} sha256=${t.sha256.toString("hex")}` +
    `${t.ttlMs !== undefined ? ` ttl=${t.ttlMs}` : ""}` +
    `${t.storeUnavailable ? " store=unavailable" : ""}\n`
  );
}

/** The line from its parts: the token in hex (32 digits), ticketUdpField's, ticketTail's. */
export function formatTicketFrom(tokenHex: string, udpField: string, tail: string): string {
  return `TICKET token=${tokenHex}${udpField}${tail}`;
}

/** The line only; the caller writes the header's `bytes` octets right after it. */
export function formatTcpTicket(t: TcpTicket): string {
  return (
    `TICKET delivery=tcp bytes=${t.bytes} cache=${t.cache} status=${t.status} sha256=${t.sha256.toString("hex")}` +
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
    return parseGreeting(rest.slice(5));
  }
  if (head.startsWith("HEADWIRE/")) {
    throw protocolError(`the server speaks ${head}, this client ${GREETING_PREFIX}: upgrade the older one`, line);
  }
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
  if (head === "TICKET") {
    const fields = ticketFields(rest);
    const delivery = fields.get("delivery") ?? DEFAULT_DELIVERY;
    if (delivery === "tcp") return { kind: "tcp-ticket", ticket: parseTcpTicketFields(fields, line) };
    if (delivery !== "udp") throw protocolError("bad ticket field delivery", line);
    return { kind: "ticket", ticket: parseTicketFields(fields, line) };
  }
  throw protocolError("unknown reply", line);
}

function ticketFields(rest: string): Map<string, string> {
  const fields = new Map<string, string>();
  for (const word of rest.split(" ")) {
    const eq = word.indexOf("=");
    if (eq > 0) fields.set(word.slice(0, eq), word.slice(eq + 1));
  }
  return fields;
}

function fieldReader(fields: Map<string, string>, line: string) {
  return (key: string, pattern: RegExp): string => {
    const value = fields.get(key);
    if (value === undefined || !pattern.test(value)) throw protocolError(`bad ticket field ${key}`, line);
    return value;
  };
}

function parseCache(fields: Map<string, string>, line: string): CacheOutcome {
  const cache = fieldReader(fields, line)("cache", /^[A-Z]+$/) as CacheOutcome;
  if (!CACHE_OUTCOMES.includes(cache)) throw protocolError("bad ticket field cache", line);
  return cache;
}

function parseTcpTicketFields(fields: Map<string, string>, line: string): TcpTicket {
  const need = fieldReader(fields, line);
  return {
    bytes: Number(need("bytes", /^\d{1,10}$/)),
    cache: parseCache(fields, line),
    status: Number(need("status", /^\d{3}$/)),
    sha256: Buffer.from(need("sha256", /^[0-9a-f]{64}$/), "hex"),
    storeUnavailable: fields.get("store") === "unavailable",
  };
}

function parseTicketFields(fields: Map<string, string>, line: string): Ticket {
  const need = fieldReader(fields, line);
  const udp = need("udp", /^(\[[0-9a-fA-F:.]+\]|[^\s:[\]]+):\d{1,5}$/);
  const colon = udp.lastIndexOf(":");
  const udpHost = udp.slice(0, colon).replace(/^\[|\]$/g, "");
  const cache = parseCache(fields, line);
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

// ---- the server's reply stream ----

/** A reply as the client sees it: a delivery=tcp ticket comes with the header that followed it. */
export type ControlReply =
  Exclude<ServerMessage, { kind: "tcp-ticket" }> | { kind: "header"; ticket: TcpTicket; header: Buffer };

/** `text` is the reply's line, for tracing. An error ends the stream: nothing after it can be framed. */
export type ReplyEvent = { kind: "reply"; text: string; reply: ControlReply } | { kind: "error"; error: HeadwireError };

/**
 * Splits the server's byte stream into replies: lines, except that a `TICKET delivery=tcp
 * bytes=N` line is followed by exactly N raw octets (any values, LF included), after which lines
 * resume. Pure, like LineDecoder: fed chunks, it keeps its own state.
 */
export class ReplyDecoder {
  private readonly lines: LineDecoder;
  private pending: { ticket: TcpTicket; text: string; parts: Buffer[]; missing: number } | undefined;
  private failed = false;

  /** `maxHeaderBytes`: a larger delivery=tcp header is refused before any of it is kept. */
  constructor(
    maxLineBytes: number,
    private readonly maxHeaderBytes: number,
  ) {
    this.lines = new LineDecoder(maxLineBytes);
  }

  push(chunk: Buffer): ReplyEvent[] {
    const events: ReplyEvent[] = [];
    let start = 0;
    while (start < chunk.length && !this.failed) {
      if (this.pending) {
        const take = Math.min(this.pending.missing, chunk.length - start);
        this.pending.parts.push(chunk.subarray(start, start + take));
        this.pending.missing -= take;
        start += take;
        this.finishHeader(events);
        continue;
      }
      // One line at a time: after a tcp-ticket line, what follows is raw bytes, not lines.
      const newline = chunk.indexOf(0x0a, start);
      const end = newline === -1 ? chunk.length : newline + 1;
      for (const event of this.lines.push(chunk.subarray(start, end))) this.onLine(event, events);
      start = end;
    }
    return events;
  }

  private onLine(event: LineEvent, events: ReplyEvent[]): void {
    if (event.kind === "error") return this.fail(new HeadwireError("PROTOCOL_ERROR", event.error.message), events);
    let message: ServerMessage;
    try {
      message = parseServerMessage(event.text);
    } catch (error) {
      return this.fail(error as HeadwireError, events);
    }
    if (message.kind !== "tcp-ticket") {
      events.push({ kind: "reply", text: event.text, reply: message });
      return;
    }
    const { ticket } = message;
    if (ticket.bytes > this.maxHeaderBytes) {
      const what = `a delivery=tcp header of ${ticket.bytes} bytes (this client accepts ${this.maxHeaderBytes})`;
      return this.fail(new HeadwireError("PROTOCOL_ERROR", what), events);
    }
    this.pending = { ticket, text: event.text, parts: [], missing: ticket.bytes };
    this.finishHeader(events);
  }

  private finishHeader(events: ReplyEvent[]): void {
    if (!this.pending || this.pending.missing > 0) return;
    const { ticket, text, parts } = this.pending;
    this.pending = undefined;
    events.push({ kind: "reply", text, reply: { kind: "header", ticket, header: Buffer.concat(parts, ticket.bytes) } });
  }

  private fail(error: HeadwireError, events: ReplyEvent[]): void {
    this.failed = true;
    events.push({ kind: "error", error });
  }
}

function protocolError(what: string, line: string): HeadwireError {
  return new HeadwireError("PROTOCOL_ERROR", `${what}: ${JSON.stringify(truncate(line, 120))}`);
}

function truncate(text: string, max: number): string {
  return text.length > max ? `${text.slice(0, max)}…` : text;
}
