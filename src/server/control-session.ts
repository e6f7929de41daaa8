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
} from "../protocol/control.js";
import { canonicalAddress } from "./ticket-registry.js";

export interface SessionContext {
  id: number;
  /** The client's IP address (IPv4-mapped forms unwrapped). */
  peerAddress: string;
  /** The server address the client reached (where it should send UDP too). */
  localAddress: string;
  /** May use admin commands: the session comes from loopback, or said AUTH with the admin token. */
  admin: boolean;
  /** False once the connection has closed (an answer that arrives later has nobody to go to). */
  open: boolean;
}

export interface SessionHandler {
  /** Answers one query with a reply line (TICKET ... or ERROR ...); "" sends nothing. */
  query(url: string, options: QueryOptions, session: SessionContext): Promise<string>;
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
}

export class ControlSession {
  readonly context: SessionContext;
  private readonly decoder: LineDecoder;
  /** Replies in the order their requests came: each waits for the one before. */
  private tail: Promise<void> = Promise.resolve();
  private ending = false;
  private readonly idleTimer: NodeJS.Timeout;
  /** Queries asked and not answered yet (the SERVER_BUSY limit counts these only). */
  private queuedQueries = 0;
  private pendingReplies = 0;
  private waitingForDrain = false;
  private readingHeld = false;
  /** Replies of any kind not written yet; beyond this the session is not read until they are. */
  private readonly maxPendingReplies: number;

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
      localAddress: canonicalAddress(socket.localAddress ?? ""),
      admin: limits.loopbackIsAdmin && isLoopback(socket.remoteAddress ?? ""),
      open: true,
    };
    this.decoder = new LineDecoder(limits.maxLineBytes);
    this.maxPendingReplies = Math.max(64, 4 * limits.maxQueuedQueries);
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
      clearTimeout(this.idleTimer);
      handler.closed(this.context);
    });
    socket.write(formatGreeting(serverName));
  }

  private onIdle(): void {
    // A session waiting for its own answers is not idle.
    if (this.queuedQueries > 0) this.idleTimer.refresh();
    else this.end(new HeadwireError("IDLE_TIMEOUT"));
  }

  private onData(chunk: Buffer): void {
    for (const event of this.decoder.push(chunk)) {
      if (this.ending) return;
      this.idleTimer.refresh();
      if (event.kind === "error") this.reply(async () => formatError(event.error));
      else this.onLine(event.text);
    }
  }

  private onLine(line: string): void {
    let message;
    try {
      message = parseClientMessage(line);
    } catch (error) {
      const failure = toWireError(error, "BAD_REQUEST");
      return this.reply(async () => formatError(failure));
    }
    if (message.kind === "ping") return this.reply(async () => PONG_LINE);
    if (message.kind === "auth") {
      // A wrong token is refused even on a session that is already admin (from loopback).
      const granted = this.handler.authorize(message.token);
      if (granted) this.context.admin = true;
      const line = granted ? AUTHORIZED_LINE : formatError(new HeadwireError("FORBIDDEN", "wrong admin token"));
      return this.reply(async () => line);
    }
    if (message.kind === "purge") {
      if (!this.context.admin) return this.reply(async () => formatError(new HeadwireError("FORBIDDEN")));
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
        .then((line) => void this.socket.end(line));
      return;
    }
    if (this.queuedQueries >= this.limits.maxQueuedQueries) {
      return this.reply(async () => formatError(new HeadwireError("SERVER_BUSY", "too many queries queued")));
    }
    const { url, options } = message;
    this.queuedQueries++;
    this.reply(() => this.handler.query(url, options, this.context).finally(() => this.queuedQueries--));
  }

  private reply(produce: () => Promise<string>): void {
    this.pendingReplies++;
    this.updateReading();
    const answer = produce().catch((error: unknown) => {
      if (error instanceof HeadwireError) return formatError(toWireError(error, "INTERNAL_ERROR"));
      this.handler.internalError(error, this.context);
      return formatError(new HeadwireError("INTERNAL_ERROR"));
    });
    this.tail = this.tail.then(async () => {
      const line = await answer;
      this.pendingReplies--;
      if (this.socket.destroyed || !this.socket.writable || line === "") return this.updateReading();
      // Backpressure: a client that sends queries but does not read the replies stops being read
      // until it catches up, so unread replies cannot pile up in the server's memory.
      if (!this.socket.write(line) && !this.waitingForDrain) {
        this.waitingForDrain = true;
        this.socket.once("drain", () => {
          this.waitingForDrain = false;
          this.updateReading();
        });
      }
      this.updateReading();
    });
  }

  /** Reads the client only while its replies are flowing: bounded memory whatever it sends. */
  private updateReading(): void {
    const hold = this.waitingForDrain || this.pendingReplies >= this.maxPendingReplies;
    if (hold === this.readingHeld || this.socket.destroyed) return;
    this.readingHeld = hold;
    if (hold) this.socket.pause();
    else this.socket.resume();
  }

  /** Ends the session after the replies already promised, with an optional last ERROR line. */
  end(reason?: HeadwireError<WireErrorCode>): void {
    if (this.ending) return;
    this.ending = true;
    this.tail = this.tail.then(() => {
      if (reason) this.socket.end(formatError(reason));
      else this.socket.end();
    });
  }

  /** Resolves when every reply promised so far is written. */
  drained(): Promise<void> {
    return this.tail;
  }

  destroy(): void {
    this.socket.destroy();
  }
}

/** Loopback peers are the machine's own operators. */
function isLoopback(address: string): boolean {
  const canonical = canonicalAddress(address);
  return canonical === "::1" || canonical.startsWith("127.");
}
