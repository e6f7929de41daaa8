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
  timer: NodeJS.Timeout;
}

export class ControlConnection {
  /** The server's greeting text after READY (its name and version). */
  serverName = "";
  private readonly waiters: Waiter[] = [];
  private readonly decoder: ReplyDecoder;
  private failure: HeadwireError | undefined;
  private closedResolve!: () => void;
  readonly closed: Promise<void> = new Promise((resolve) => (this.closedResolve = resolve));

  private constructor(
    private readonly socket: Socket,
    private readonly replyTimeoutMs: number,
    maxHeaderBytes: number,
    private readonly trace?: ClientTrace,
  ) {
    this.decoder = new ReplyDecoder(MAX_REPLY_LINE_BYTES, maxHeaderBytes);
    socket.setNoDelay(true);
    socket.on("data", (chunk: Buffer) => this.onData(chunk));
    socket.on("error", (error) => this.fail(new HeadwireError("CONNECTION_LOST", error.message)));
    socket.on("close", () => {
      this.fail(new HeadwireError("CONNECTION_LOST", "the server closed the session"));
      this.closedResolve();
    });
  }

  static async open(
    host: string,
    port: number,
    /** maxHeaderBytes: the largest header accepted on this session (delivery=tcp; the client's default if absent). */
    timeouts: { connectTimeoutMs: number; replyTimeoutMs: number; maxHeaderBytes?: number },
    trace?: ClientTrace,
  ) {
    const socket = connect({ host, port });
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        socket.destroy();
        reject(
          new HeadwireError(
            "SERVER_UNREACHABLE",
            `no answer from ${host}:${port} within ${timeouts.connectTimeoutMs} ms`,
          ),
        );
      }, timeouts.connectTimeoutMs);
      socket.once("connect", () => {
        clearTimeout(timer);
        resolve();
      });
      socket.once("error", (error: NodeJS.ErrnoException) => {
        clearTimeout(timer);
        reject(new HeadwireError("SERVER_UNREACHABLE", `cannot reach ${host}:${port}: ${error.code ?? error.message}`));
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
      trace,
    );
    const greeting = await connection.next();
    if (greeting.kind === "error") throw new HeadwireError(greeting.code, greeting.message);
    if (greeting.kind !== "greeting") {
      connection.destroy();
      throw new HeadwireError("PROTOCOL_ERROR", `the server did not greet with ${GREETING_PREFIX}`);
    }
    connection.serverName = greeting.server;
    return connection;
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
    const reply = this.next();
    this.write(formatQuery(url, options, delivery));
    return reply;
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
    this.socket.destroy();
  }

  private write(line: string): void {
    this.trace?.("tcp", "send", line.trimEnd());
    this.socket.write(line);
  }

  private next(): Promise<ControlReply> {
    if (this.failure) return Promise.reject(this.failure);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.fail(new HeadwireError("CONNECTION_LOST", `no reply within ${this.replyTimeoutMs} ms`));
        this.socket.destroy();
      }, this.replyTimeoutMs);
      this.waiters.push({ resolve, reject, timer });
    });
  }

  private onData(chunk: Buffer): void {
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
    for (const waiter of this.waiters.splice(0)) {
      clearTimeout(waiter.timer);
      waiter.reject(this.failure);
    }
  }
}
