/**
 * One client's TCP session: reads lines, answers each in order, and ends on TERMINATE, on idle
 * timeout, or when the server shuts down. Bad input gets an ERROR line and the session goes on.
 */
import type { Socket } from "node:net";
import { HeadwireError, toWireError, type WireErrorCode } from "../errors.js";
import type { QueryOptions } from "../http/query-options.js";
import {
  AUTHORIZED_LINE,
  BYE_LINE,
  formatPurged,
  formatError,
  formatGreeting,
  LineDecoder,
  parseClientMessage,
  PONG_LINE,
  type Delivery,
} from "../protocol/control.js";
import { canonicalAddress } from "./ticket-registry.js";
import { traceText, type ServerEvents } from "./server-events.js";
import { TokenBucket } from "../limits/token-bucket.js";

export interface SessionContext {
  id: number;
  /** The client's IP address (IPv4-mapped forms unwrapped). */
  peerAddress: string;
  peerPort: number;
  /** The server address the client reached (where it should send UDP too). */
  localAddress: string;
  /** May use admin commands: the session comes from loopback, or said AUTH with the admin token. */
  admin: boolean;
  /** False once the connection has closed (an answer that arrives later has nobody to go to). */
  open: boolean;
  /** When the session was accepted (Date.now). */
  startedAtMs: number;
  /** Queries asked, and those answered with an ERROR (for the session's end and the status page). */
  queries: number;
  errors: number;
  /** The last query's outcome (HIT, MISS, ... or its error code); null before the first. */
  lastOutcome: string | null;
}

/**
 * What a session writes for one request: a line, or a line followed by raw bytes (a delivery=tcp
 * TICKET line and its header). The body is written as it is, never copied into the line.
 */
export type SessionReply = string | { line: string; body: Buffer };

export interface SessionHandler {
  /** Answers one query with a reply line (TICKET ... or ERROR ...), or a delivery=tcp TICKET and its header; "" sends nothing. */
  query(url: string, options: QueryOptions, session: SessionContext, delivery: Delivery): Promise<SessionReply>;
  /**
   * Optional fast path: the reply to a query when it can be made now (a fresh cached header),
   * else undefined and nothing done (query() is then called). No promise on the hot path.
   */
  queryNow?(url: string, options: QueryOptions, session: SessionContext, delivery: Delivery): SessionReply | undefined;
  /** AUTH: true when the token is the server's admin token. */
  authorize(token: string): boolean;
  /** PURGE (admin only): drops one URL's entries, or all; answers with the count dropped. */
  purge(url: string | undefined): Promise<number>;
  /** The client said TERMINATE: the seed's moment to persist the cache. BYE waits for it. */
  terminated(session: SessionContext): Promise<void>;
  closed(session: SessionContext): void;
  /** A request failed with something that is not a HeadwireError: a bug of ours. Log it; the reply is INTERNAL_ERROR. */
  internalError(error: unknown, session: SessionContext): void;
}

export interface SessionLimits {
  /** Loopback peers may use admin commands without AUTH. */
  loopbackIsAdmin: boolean;
  maxLineBytes: number;
  idleTimeoutMs: number;
  maxQueuedQueries: number;
  /** Lines read per second; past it the session is not read, so TCP pushes back on the sender. */
  linesPerSecond: number;
  /** Bad lines at once, then badLinesPerSecond: past them the session is closed (TOO_MANY_ERRORS). */
  badLineBurst: number;
  badLinesPerSecond: number;
  /** Reply bytes waiting to be written, all sessions together (shared), and their ceiling. */
  replyBytes: ReplyBytes;
  now?: () => number;
  /** Where limit hits and the trace (each line in and out) are reported; nowhere when omitted. */
  events?: ServerEvents;
}

/** Reply bytes buffered in the server for clients that have not read them yet, all sessions together. */
export class ReplyBytes {
  used = 0;
  /** Changed by a reloaded config; bytes already buffered stay, and count against the new bound. */
  constructor(public max: number) {}

  get exceeded(): boolean {
    return this.used > this.max;
  }
}

export class ControlSession {
  readonly context: SessionContext;
  private readonly decoder: LineDecoder;
  /** Replies in the order their requests came: each waits for the one before. */
  private tail: Promise<void> = Promise.resolve();
  private ending = false;
  private idleTimer: NodeJS.Timeout;
  /** When the last complete line was read (performance.now): the idle timeout counts from it. */
  private lastLineAt = performance.now();
  /** Queries asked and not answered yet (the SERVER_BUSY limit counts these only). */
  private queuedQueries = 0;
  private pendingReplies = 0;
  private waitingForDrain = false;
  private readingHeld = false;
  /** Replies are being gathered for one write (corkUntilNextTick). */
  private corked = false;
  /** Replies of any kind not written yet; beyond this the session is not read until they are. */
  private readonly maxPendingReplies: number;
  /** Bytes read and not yet cut into lines: lines are taken one at a time, as the limits allow. */
  private backlog: Buffer | undefined;
  private readonly lineBucket: TokenBucket;
  private readonly badLineBucket: TokenBucket;
  /** Wakes the reader when the line bucket has a token again. */
  private refillTimer: NodeJS.Timeout | undefined;
  /** This session's share of limits.replyBytes. */
  private bufferedReplyBytes = 0;

  constructor(
    private readonly socket: Socket,
    id: number,
    serverName: string,
    private readonly limits: SessionLimits,
    private readonly handler: SessionHandler,
  ) {
    this.context = {
      id,
      peerAddress: canonicalAddress(socket.remoteAddress ?? ""),
      peerPort: socket.remotePort ?? 0,
      localAddress: canonicalAddress(socket.localAddress ?? ""),
      admin: limits.loopbackIsAdmin && isLoopback(socket.remoteAddress ?? ""),
      open: true,
      startedAtMs: Date.now(),
      queries: 0,
      errors: 0,
      lastOutcome: null,
    };
    this.decoder = new LineDecoder(limits.maxLineBytes);
    this.maxPendingReplies = Math.max(64, 4 * limits.maxQueuedQueries);
    const now = limits.now ?? Date.now;
    this.lineBucket = new TokenBucket(limits.linesPerSecond, limits.linesPerSecond, now);
    this.badLineBucket = new TokenBucket(limits.badLinesPerSecond, limits.badLineBurst, now);
    socket.setNoDelay(true);
    // Idle means no complete request: bytes dripped without a line end do not keep a session open.
    this.idleTimer = setTimeout(() => this.onIdle(), limits.idleTimeoutMs);
    socket.on("data", (chunk: Buffer) => this.onData(chunk));
    socket.on("error", () => socket.destroy());
    // A client that half-closes (sends FIN after its last request) still gets every reply promised.
    socket.on("end", () => this.end());
    socket.on("close", () => {
      this.context.open = false;
      this.ending = true;
      this.backlog = undefined;
      clearTimeout(this.idleTimer);
      clearTimeout(this.refillTimer);
      this.countBufferedReplies(0);
      handler.closed(this.context);
    });
    // The idle timeout is told, so a client waiting on its user knows how often to PING.
    const greeting = formatGreeting(serverName, limits.idleTimeoutMs);
    if (limits.events?.tracing) this.traceOut(greeting);
    socket.write(greeting);
  }

  /** A limit held this session back or refused its request: reported with the setting's name. */
  private limitHit(limit: string, code: string): void {
    const events = this.limits.events;
    if (events?.active) {
      events.emit({ type: "limit", limit, code, address: this.context.peerAddress, sessionId: this.context.id });
    }
  }

  private onIdle(): void {
    // A session waiting for its own answers is not idle.
    if (this.queuedQueries > 0) return this.armIdle(this.limits.idleTimeoutMs);
    const quietMs = performance.now() - this.lastLineAt;
    if (quietMs < this.limits.idleTimeoutMs) return this.armIdle(this.limits.idleTimeoutMs - quietMs);
    this.end(new HeadwireError("IDLE_TIMEOUT"));
  }

  private armIdle(ms: number): void {
    clearTimeout(this.idleTimer);
    this.idleTimer = setTimeout(() => this.onIdle(), Math.max(1, Math.ceil(ms)));
  }

  /**
   * Input is taken a line at a time, and only while the limits allow: the line rate, the replies
   * waiting to be written. The rest of a chunk waits in the backlog with reading paused, so a
   * flood costs its sender TCP backpressure, not the server a reply per byte.
   */
  private onData(chunk: Buffer): void {
    this.backlog = this.backlog ? Buffer.concat([this.backlog, chunk]) : chunk;
    this.pump();
  }

  /** Processes what the limits allow, then reads on only if everything read has been processed. */
  private pump(): void {
    while (this.backlog && !this.ending && !this.repliesBackedUp()) {
      const newline = this.backlog.indexOf(0x0a);
      if (newline !== -1 && !this.lineBucket.take()) {
        this.wakeWhenRefilled();
        break;
      }
      const end = newline === -1 ? this.backlog.length : newline + 1;
      const piece = this.backlog.subarray(0, end);
      this.backlog = end === this.backlog.length ? undefined : this.backlog.subarray(end);
      try {
        for (const event of this.decoder.push(piece)) {
          if (this.ending) break;
          // Not a timer re-arm per line: the timer, when it fires, looks at when the last line came.
          this.lastLineAt = performance.now();
          if (event.kind === "error") this.badLine(event.error);
          else this.onLine(event.text);
        }
      } catch (error) {
        // A bug of ours on this session's input ends this session only, never the process.
        this.handler.internalError(error, this.context);
        this.end(new HeadwireError("INTERNAL_ERROR"));
      }
    }
    if (this.ending) this.backlog = undefined;
    this.updateReading();
  }

  private wakeWhenRefilled(): void {
    if (this.refillTimer) return;
    // Not a refusal: the session is read more slowly. Reported once per wait, not per line.
    this.limitHit("linesPerSecondPerSession", "LINE_RATE");
    this.refillTimer = setTimeout(() => {
      this.refillTimer = undefined;
      this.pump();
    }, this.lineBucket.msUntilToken());
  }

  /**
   * A bad line gets its ERROR while the session's error budget lasts; past it the session is
   * closed: malformed input must cost its sender more than the server.
   */
  private badLine(error: HeadwireError<WireErrorCode>): void {
    if (error.code === "LINE_TOO_LONG") this.limitHit("maxLineBytes", error.code);
    if (this.badLineBucket.take()) return this.replyNow(formatError(error));
    this.limitHit("badLineBurst", "TOO_MANY_ERRORS");
    this.end(new HeadwireError("TOO_MANY_ERRORS", `too many bad lines (last: ${error.code})`));
  }

  private onLine(line: string): void {
    const events = this.limits.events;
    if (events?.tracing) {
      const atMs = Date.now();
      events.trace({
        type: "line",
        sessionId: this.context.id,
        direction: "in",
        text: traceText(line),
        bytes: line.length + 1,
        atMs,
      });
    }
    let message;
    try {
      message = parseClientMessage(line);
    } catch (error) {
      return this.badLine(toWireError(error, "BAD_REQUEST"));
    }
    if (message.kind === "ping") return this.replyNow(PONG_LINE);
    if (message.kind === "auth") {
      // A wrong token is refused even on a session that is already admin (from loopback).
      const granted = this.handler.authorize(message.token);
      if (granted) this.context.admin = true;
      const line = granted ? AUTHORIZED_LINE : formatError(new HeadwireError("FORBIDDEN", "wrong admin token"));
      return this.replyNow(line);
    }
    if (message.kind === "purge") {
      if (!this.context.admin) return this.replyNow(formatError(new HeadwireError("FORBIDDEN")));
      const { url } = message;
      return this.reply(async () => formatPurged(await this.handler.purge(url)));
    }
    if (message.kind === "terminate") {
      this.ending = true;
      // BYE says the cache is persisted: only when it is. Either way the session ends.
      this.tail = this.tail
        .then(() => this.handler.terminated(this.context))
        .then(
          () => BYE_LINE,
          (error: unknown) => formatError(toWireError(error, "PERSIST_FAILED")),
        )
        .then((line) => this.closeWith(line));
      return;
    }
    if (this.queuedQueries >= this.limits.maxQueuedQueries) {
      this.limitHit("maxQueuedQueriesPerSession", "SERVER_BUSY");
      return this.replyNow(formatError(new HeadwireError("SERVER_BUSY", "too many queries queued")));
    }
    if (this.limits.replyBytes.exceeded) {
      this.limitHit("maxReplyBytes", "SERVER_BUSY");
      return this.replyNow(formatError(new HeadwireError("SERVER_BUSY", "too many replies waiting to be read")));
    }
    const { url, options, delivery } = message;
    // Nothing ahead of it: a reply that can be made now is written now, in order.
    if (this.pendingReplies === 0 && this.handler.queryNow) {
      const now = this.handler.queryNow(url, options, this.context, delivery);
      if (now !== undefined) return this.write(now);
    }
    this.queuedQueries++;
    this.reply(() => this.handler.query(url, options, this.context, delivery).finally(() => this.queuedQueries--));
  }

  /**
   * A reply known at once: written now when nothing is ahead of it, else queued behind the
   * replies already promised (their order is the requests' order). No promise when none is needed.
   */
  private replyNow(line: string): void {
    if (this.pendingReplies === 0) this.write(line);
    else this.reply(() => Promise.resolve(line));
  }

  private reply(produce: () => Promise<SessionReply>): void {
    this.pendingReplies++;
    const answer = produce().catch((error: unknown) => {
      if (error instanceof HeadwireError) return formatError(toWireError(error, "INTERNAL_ERROR"));
      this.handler.internalError(error, this.context);
      return formatError(new HeadwireError("INTERNAL_ERROR"));
    });
    this.tail = this.tail.then(async () => {
      const line = await answer;
      this.pendingReplies--;
      this.write(line);
      // Replies flowing again may let the backlog go on.
      if (this.backlog && !this.repliesBackedUp()) this.pump();
      else this.updateReading();
    });
  }

  private write(reply: SessionReply): void {
    if (this.socket.destroyed || !this.socket.writable || reply === "") return;
    // A header is the one large reply: it is checked against the reply-bytes ceiling again when it
    // is written (not only when its query was read), so pipelined delivery=tcp queries cannot
    // buffer maxQueuedQueries headers at once past it. The client learns it as for any query.
    if (typeof reply !== "string" && this.limits.replyBytes.exceeded) {
      this.limitHit("maxReplyBytes", "SERVER_BUSY");
      reply = formatError(new HeadwireError("SERVER_BUSY", "too many replies waiting to be read"));
    }
    if (this.limits.events?.tracing) this.traceOut(reply);
    this.corkUntilNextTick();
    const written = typeof reply === "string" ? this.socket.write(reply) : this.writeWithBody(reply);
    // Backpressure: a client that sends queries but does not read the replies stops being read
    // until it catches up, so unread replies cannot pile up in the server's memory.
    if (!written && !this.waitingForDrain) {
      this.waitingForDrain = true;
      this.socket.once("drain", () => {
        this.waitingForDrain = false;
        this.countBufferedReplies(this.socket.writableLength);
        this.pump();
      });
    }
    this.countBufferedReplies(this.socket.writableLength);
  }

  /**
   * Replies written in one turn (the lines of one read answered from the cache, or replies that
   * became ready together) go out in one write(2) instead of one each.
   */
  private corkUntilNextTick(): void {
    if (this.corked) return;
    this.corked = true;
    this.socket.cork();
    process.nextTick(() => {
      this.corked = false;
      this.socket.uncork();
      this.countBufferedReplies(this.socket.writableLength);
    });
  }

  private traceOut(reply: SessionReply): void {
    const line = typeof reply === "string" ? reply : reply.line;
    const bytes = typeof reply === "string" ? reply.length : reply.line.length + reply.body.length;
    this.limits.events?.trace({
      type: "line",
      sessionId: this.context.id,
      direction: "out",
      text: traceText(line),
      bytes,
      atMs: Date.now(),
    });
  }

  /** The line, then exactly its body's bytes (docs/protocol.md, "Delivery over TCP"). */
  private writeWithBody(reply: { line: string; body: Buffer }): boolean {
    this.socket.write(reply.line);
    return this.socket.write(reply.body);
  }

  /** Keeps this session's share of the server-wide count of reply bytes not yet written. */
  private countBufferedReplies(bytes: number): void {
    this.limits.replyBytes.used += bytes - this.bufferedReplyBytes;
    this.bufferedReplyBytes = bytes;
  }

  private repliesBackedUp(): boolean {
    return this.waitingForDrain || this.pendingReplies >= this.maxPendingReplies;
  }

  /** Reads the client only while everything read is processed and its replies are flowing. */
  private updateReading(): void {
    const hold = this.backlog !== undefined || this.repliesBackedUp();
    if (hold === this.readingHeld || this.socket.destroyed) return;
    this.readingHeld = hold;
    if (hold) this.socket.pause();
    else this.socket.resume();
  }

  /** Ends the session after the replies already promised, with an optional last ERROR line. */
  end(reason?: HeadwireError<WireErrorCode>): void {
    if (this.ending) return;
    this.ending = true;
    this.tail = this.tail.then(() => this.closeWith(reason ? formatError(reason) : undefined));
  }

  private closeWith(lastLine: string | undefined): void {
    if (lastLine !== undefined && this.limits.events?.tracing) this.traceOut(lastLine);
    closeAfter(this.socket, lastLine);
  }

  /** Resolves when every reply promised so far is written. */
  drained(): Promise<void> {
    return this.tail;
  }

  destroy(): void {
    this.socket.destroy();
  }
}

/**
 * Writes the last line (if any) and closes: closed, not half-closed. Once the line is handed to
 * the kernel the socket is destroyed, so a client that never closes its end keeps no slot.
 */
export function closeAfter(socket: Socket, lastLine?: string): void {
  const close = () => socket.destroy();
  if (lastLine === undefined) socket.end(close);
  else socket.end(lastLine, close);
}

/** Loopback peers are the machine's own operators. */
function isLoopback(address: string): boolean {
  const canonical = canonicalAddress(address);
  return canonical === "::1" || canonical.startsWith("127.");
}
