/**
 * The client's end of the control channel: one TCP session, kept for all its queries (as in the
 * seed's capture). Replies come in the order of the requests; a delivery=tcp reply carries its
 * header's bytes after its line (ReplyDecoder frames them).
 */
import { connect, type Socket } from "node:net";
import { DEFAULT_CLIENT_CONFIG } from "../config.js";
import { HeadwireError } from "../errors.js";
import type { QueryOptions } from "../http/query-options.js";
import { formatQuery, GREETING_PREFIX, ReplyDecoder, type ControlReply, type Delivery } from "../protocol/control.js";
import { describeFirstBytes, sniffGreeting } from "./greeting-sniff.js";

/** Replies are short; anything longer than this from a server is a protocol error. */
const MAX_REPLY_LINE_BYTES = 8192;

/**
 * Sees every message on both channels, and notes on what the client does ("note": connected, a
 * collection finished); the demo and `headwire client -v` print them. Optional: without one, the
 * texts are never built (`trace?.(...)` evaluates no argument).
 */
export type ClientTrace = (channel: "tcp" | "udp", direction: "send" | "recv" | "note", text: string) => void;

interface Waiter {
  resolve: (message: ControlReply) => void;
  reject: (error: HeadwireError) => void;
  timer?: NodeJS.Timeout;
}

/** The time limits of a session, from the client's settings. */
export interface SessionTimeouts {
  connectTimeoutMs: number;
  /** From the connection to a whole greeting line: past it the peer is not a headwire server (the client's default if absent). */
  greetingTimeoutMs?: number;
  replyTimeoutMs: number;
  /** The largest header accepted on this session (delivery=tcp; the client's default if absent). */
  maxHeaderBytes?: number;
}

/** A wait, for messages: "40 ms", "0.2 s", "3 s", "1.5 s". */
export function seconds(ms: number): string {
  if (ms < 100) return `${Math.round(ms)} ms`;
  return `${Number((ms / 1000).toFixed(1))} s`;
}

export class ControlConnection {
  /** The server's greeting text after READY (its name and version). */
  serverName = "";
  /** The server's idle timeout, when its greeting tells it (idle=): PING before it runs out. */
  idleTimeoutMs: number | undefined;
  private readonly waiters: Waiter[] = [];
  /**
   * Lines written in one turn of the event loop go out in one write(2): a batch's jobs sharing
   * this session often ask their next URLs together (their files were written together).
   */
  private corked = false;
  private readonly decoder: ReplyDecoder;
  private failure: HeadwireError | undefined;
  private closedResolve!: () => void;
  /** The peer's bytes until they are known to be a headwire server's (sniffGreeting). */
  private firstBytes: Buffer | undefined = Buffer.alloc(0);
  private readonly peer: string;
  readonly closed: Promise<void> = new Promise((resolve) => (this.closedResolve = resolve));

  private constructor(
    private readonly socket: Socket,
    private readonly replyTimeoutMs: number,
    maxHeaderBytes: number,
    peer: string,
    private readonly trace?: ClientTrace,
  ) {
    this.peer = peer;
    this.decoder = new ReplyDecoder(MAX_REPLY_LINE_BYTES, maxHeaderBytes);
    socket.setNoDelay(true);
    socket.on("data", (chunk: Buffer) => this.onData(chunk));
    socket.on("error", (error) => this.fail(new HeadwireError("CONNECTION_LOST", error.message)));
    socket.on("close", () => {
      // Closed before a whole greeting: whatever listens there is not a headwire server, or it
      // refused us without a word (a headwire server says why, with ERROR, before it closes).
      if (this.firstBytes !== undefined) {
        const said = this.firstBytes.length > 0 ? `answered ${describeFirstBytes(this.firstBytes)} and ` : "";
        this.fail(
          new HeadwireError(
            "NOT_HEADWIRE",
            `${this.peer} is not a headwire server: it ${said}closed the connection without a greeting`,
          ),
        );
      }
      this.fail(new HeadwireError("CONNECTION_LOST", "the server closed the session"));
      this.closedResolve();
    });
  }

  static async open(host: string, port: number, timeouts: SessionTimeouts, trace?: ClientTrace) {
    const socket = connect({ host, port });
    const peer = host.includes(":") ? `[${host}]:${port}` : `${host}:${port}`;
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        socket.destroy();
        reject(
          new HeadwireError("SERVER_UNREACHABLE", `no answer from ${peer} within ${timeouts.connectTimeoutMs} ms`),
        );
      }, timeouts.connectTimeoutMs);
      socket.once("connect", () => {
        clearTimeout(timer);
        resolve();
      });
      socket.once("error", (error: NodeJS.ErrnoException) => {
        clearTimeout(timer);
        reject(new HeadwireError("SERVER_UNREACHABLE", `cannot reach ${peer}: ${error.code ?? error.message}`));
      });
    });
    trace?.(
      "tcp",
      "note",
      `connected ${socket.localAddress}:${socket.localPort} → ${socket.remoteAddress}:${socket.remotePort}`,
    );
    const connection = new ControlConnection(
      socket,
      timeouts.replyTimeoutMs,
      timeouts.maxHeaderBytes ?? DEFAULT_CLIENT_CONFIG.maxHeaderBytes,
      peer,
      trace,
    );
    const greeting = await connection.greeting(timeouts.greetingTimeoutMs ?? DEFAULT_CLIENT_CONFIG.greetingTimeoutMs);
    connection.serverName = greeting.server;
    connection.idleTimeoutMs = greeting.idleTimeoutMs;
    return connection;
  }

  /**
   * The first line, within greetingTimeoutMs. A headwire server greets at once; an HTTP or TLS
   * server waits for its client to speak first, so silence is what a wrong port usually looks
   * like (nginx, say), and bytes that cannot begin a greeting (an SSH banner) end it at once.
   */
  private async greeting(greetingTimeoutMs: number): Promise<Extract<ControlReply, { kind: "greeting" }>> {
    const silence = setTimeout(() => {
      const message =
        `${this.peer} is not a headwire server: it sent nothing within ${seconds(greetingTimeoutMs)} of connecting ` +
        `(a headwire server greets at once; an HTTP or TLS server waits for its client to speak; ` +
        `headwire listens on ${DEFAULT_CLIENT_CONFIG.serverPort} by default)`;
      this.fail(new HeadwireError("NOT_HEADWIRE", message));
      this.socket.destroy();
    }, greetingTimeoutMs);
    let greeting: ControlReply;
    try {
      greeting = await this.next(false);
    } catch (error) {
      this.socket.destroy();
      throw error;
    } finally {
      clearTimeout(silence);
    }
    if (greeting.kind === "error") {
      this.socket.destroy();
      throw new HeadwireError(greeting.code, greeting.message);
    }
    if (greeting.kind !== "greeting") {
      this.socket.destroy();
      throw new HeadwireError(
        "PROTOCOL_ERROR",
        `the server did not greet with ${GREETING_PREFIX}: it sent ${greeting.kind}`,
      );
    }
    return greeting;
  }

  /** Why the session ended, if the server (or the network) ended it. */
  get lost(): HeadwireError | undefined {
    return this.failure;
  }

  /** The server address this session is connected to: the only UDP host trusted without asking. */
  get remoteAddress(): string | undefined {
    return this.socket.remoteAddress;
  }

  /** "IPv4" or "IPv6": the family of the server address this session reached. */
  get remoteFamily(): string | undefined {
    return this.socket.remoteFamily;
  }

  /** With delivery "tcp" the answer is a "header" reply: the header came on this session. */
  query(url: string, options: Partial<QueryOptions> = {}, delivery: Delivery = "udp"): Promise<ControlReply> {
    const line = formatQuery(url, options, delivery);
    const reply = this.next(true, line.trimEnd());
    this.write(line);
    return reply;
  }

  /**
   * PING, and its PONG: a session waiting on its user stays under the server's idle timeout
   * (every line refreshes it, docs/protocol.md). Replies come in order, so a query asked while a
   * PING is on its way just waits for the PONG first.
   */
  async ping(): Promise<void> {
    const reply = this.next(true, "PING");
    this.write("PING\n");
    const pong = await reply;
    if (pong.kind === "error") throw new HeadwireError(pong.code, pong.message);
    if (pong.kind !== "pong") throw new HeadwireError("PROTOCOL_ERROR", `unexpected reply to PING: ${pong.kind}`);
  }

  /**
   * Sends TERMINATE and waits for the server's BYE and close. The server may answer ERROR
   * instead (PERSIST_FAILED: it could not write its cache): the session is over all the same,
   * and the error is thrown once it has closed.
   */
  async terminate(): Promise<void> {
    // A server that is stopping ends idle sessions itself, after answering what was asked: the
    // session is over, nothing was lost.
    if (this.failure?.code === "SHUTTING_DOWN") return;
    if (this.failure) throw this.failure;
    const bye = this.next().catch(() => undefined);
    this.write("TERMINATE\n");
    const reply = await bye;
    this.socket.end();
    await this.closed;
    // A stopping server that closes the session as TERMINATE crosses its SHUTTING_DOWN on the way
    // ends it just the same: everything asked was answered before.
    if (reply?.kind === "error" && reply.code !== "SHUTTING_DOWN") throw new HeadwireError(reply.code, reply.message);
  }

  destroy(): void {
    // Said as it is: this end closed the session, not the server.
    this.fail(new HeadwireError("CONNECTION_LOST", "the session was closed by this client"));
    this.socket.destroy();
  }

  private write(line: string): void {
    this.trace?.("tcp", "send", line.trimEnd());
    // Uncorked once the current callback and its promise jobs are done (process.nextTick).
    if (!this.corked) {
      this.corked = true;
      this.socket.cork();
      process.nextTick(() => {
        this.corked = false;
        this.socket.uncork();
      });
    }
    this.socket.write(line);
  }

  /**
   * The next reply. `asked` (the request's line) names it if no reply comes within
   * replyTimeoutMs: REPLY_TIMEOUT. The session is closed then, because replies carry no request
   * id: a late reply would be taken for the next request's. Without a timeout (the greeting has
   * its own), it waits for as long as the session lasts.
   */
  private next(timed = true, asked = "the request"): Promise<ControlReply> {
    if (this.failure) return Promise.reject(this.afterFailure(this.failure));
    return new Promise((resolve, reject) => {
      const waiter: Waiter = { resolve, reject };
      if (timed) waiter.timer = setTimeout(() => this.replyTimedOut(asked, waiter), this.replyTimeoutMs);
      this.waiters.push(waiter);
    });
  }

  /**
   * The query that waited too long fails with REPLY_TIMEOUT; the queries pipelined behind it (a
   * batch's) fail with CONNECTION_LOST, which their callers answer by asking them again on a new
   * session: they were not late themselves.
   */
  private replyTimedOut(asked: string, late: Waiter): void {
    const message =
      `no reply to ${asked} within ${this.replyTimeoutMs} ms (--reply-timeout-ms); the session was closed, ` +
      "since a late reply would be taken for the next query's";
    const failure = new HeadwireError("REPLY_TIMEOUT", message);
    this.waiters.splice(this.waiters.indexOf(late), 1);
    late.reject(failure);
    this.fail(failure);
    this.socket.destroy();
  }

  /** What a request still waiting (or asked after the end) is told: a reply timeout was another's. */
  private afterFailure(failure: HeadwireError): HeadwireError {
    if (failure.code !== "REPLY_TIMEOUT") return failure;
    return new HeadwireError("CONNECTION_LOST", `the session was closed after another query's reply timeout`);
  }

  private onData(chunk: Buffer): void {
    if (this.firstBytes !== undefined) {
      // Until a greeting line has been seen, the bytes are looked at before the decoder reads them.
      this.firstBytes = Buffer.concat([this.firstBytes, chunk]).subarray(0, MAX_REPLY_LINE_BYTES);
      const verdict = sniffGreeting(this.firstBytes);
      if (verdict === "foreign") {
        const message = `${this.peer} is not a headwire server: it answered ${describeFirstBytes(this.firstBytes)}`;
        this.fail(new HeadwireError("NOT_HEADWIRE", message));
        this.socket.destroy();
        return;
      }
      if (verdict === "headwire") this.firstBytes = undefined;
    }
    for (const event of this.decoder.push(chunk)) {
      if (event.kind === "error") {
        this.fail(event.error);
        this.socket.destroy();
        return;
      }
      this.trace?.("tcp", "recv", event.text);
      if (event.reply.kind === "header") this.trace?.("tcp", "recv", `<${event.reply.header.length} header bytes>`);
      const message = event.reply;
      const waiter = this.waiters.shift();
      if (!waiter) {
        // An unsolicited ERROR (IDLE_TIMEOUT, SHUTTING_DOWN) precedes the server's close.
        if (message.kind === "error") this.fail(new HeadwireError(message.code, message.message));
        continue;
      }
      clearTimeout(waiter.timer);
      waiter.resolve(message);
    }
  }

  private fail(error: HeadwireError): void {
    this.failure ??= error;
    const told = this.afterFailure(this.failure);
    for (const waiter of this.waiters.splice(0)) {
      clearTimeout(waiter.timer);
      waiter.reject(told);
    }
  }
}
