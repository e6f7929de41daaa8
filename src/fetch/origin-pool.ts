/**
 * Idle HTTP/1.1 connections to origins, kept for the next request to the same place (RFC 9112
 * §9.3), as curl and browsers keep them: a batch of URLs on one host then costs one TCP (and
 * TLS) handshake per connection instead of one per URL, on our side and on the origin's.
 *
 * A connection is kept under a key naming everything that made it: the scheme, the IP address
 * connected to (the one the outbound guard passed), the port, and for TLS the name checked on
 * the certificate, whether it was checked, and the ALPN protocols offered. A request takes a
 * connection only under its own key, so nothing it would have refused (another address, an
 * unchecked certificate, a protocol it did not offer) reaches it through the pool.
 *
 * Bounds: `maxIdle` connections in all, `maxIdlePerKey` per key, each closed after `idleMs`
 * unused (origins close idle connections too: nginx after 75 s, Apache after 5 s; a shorter
 * wait here avoids most races with them). Idle sockets are read: bytes arriving unasked, or
 * the origin's close, end the connection at once.
 */
import type net from "node:net";

export interface OriginPoolOptions {
  /** Longest a connection waits unused (0: connections are never kept). */
  idleMs: number;
  /** Idle connections kept in all. */
  maxIdle: number;
  /** Idle connections kept to one key (one address, port and TLS identity). */
  maxIdlePerKey: number;
  /** A body up to this long is read (and dropped) so that its connection can be kept; 0: never. */
  maxDrainBytes: number;
}

export interface OriginPoolStats {
  /** Connections idle now. */
  idle: number;
  /** Requests sent on a kept connection, since the start. */
  reused: number;
  /** Connections kept after a response, since the start. */
  kept: number;
}

interface IdleConnection {
  socket: net.Socket;
  key: string;
  timer: NodeJS.Timeout;
  /** Order of keeping, to find the oldest idle connection of all. */
  sequence: number;
  release: () => void;
}

export class OriginPool {
  private readonly byKey = new Map<string, IdleConnection[]>();
  private idleCount = 0;
  private reusedCount = 0;
  private keptCount = 0;
  private sequence = 0;
  private closed = false;

  constructor(private options: OriginPoolOptions) {}

  reconfigure(options: OriginPoolOptions): void {
    this.options = options;
    // A lower bound applies to what is idle now too.
    for (const list of [...this.byKey.values()]) {
      while (list.length > this.options.maxIdlePerKey) this.drop(list[0]!);
    }
    while (this.idleCount > this.options.maxIdle) this.dropOldest();
  }

  get stats(): OriginPoolStats {
    return { idle: this.idleCount, reused: this.reusedCount, kept: this.keptCount };
  }

  /** The most recently kept connection under `key` (likeliest still open), taken out of the pool. */
  take(key: string): net.Socket | undefined {
    const list = this.byKey.get(key);
    for (let idle = list?.pop(); idle !== undefined; idle = list?.pop()) {
      this.forget(idle);
      if (!usable(idle.socket)) {
        idle.socket.destroy();
        continue;
      }
      idle.socket.pause();
      this.reusedCount++;
      return idle.socket;
    }
    return undefined;
  }

  /**
   * Keeps a connection whose last response has been read whole; a full pool closes its oldest
   * idle connection to make room, and a closed or disabled pool closes this one.
   */
  keep(key: string, socket: net.Socket): void {
    const { idleMs, maxIdle, maxIdlePerKey } = this.options;
    if (this.closed || idleMs === 0 || maxIdle === 0 || maxIdlePerKey === 0 || !usable(socket)) {
      socket.destroy();
      return;
    }
    const list = this.byKey.get(key) ?? [];
    this.byKey.set(key, list);
    if (list.length >= maxIdlePerKey) this.drop(list[0]!);
    else if (this.idleCount >= maxIdle) this.dropOldest();
    const end = (): void => this.drop(idle);
    const idle: IdleConnection = {
      socket,
      key,
      timer: setTimeout(end, idleMs).unref(),
      sequence: this.sequence++,
      release: () => {
        socket.off("data", end).off("end", end).off("close", end).off("error", end);
      },
    };
    // Unasked bytes (RFC 9112 §9.3.1: a server sends nothing between responses) or the
    // origin's close end the idle connection; reading is how either is seen.
    socket.on("data", end).on("end", end).on("close", end).on("error", end);
    socket.resume();
    list.push(idle);
    this.idleCount++;
    this.keptCount++;
  }

  /**
   * Keeps the connection once the `bodyBytes` of the response after its header have been read
   * and dropped (`alreadyRead` of them came with the header), within `timeoutMs`; a body longer
   * than maxDrainBytes, a byte more than announced, the origin's close or the timeout close it
   * instead. The caller does not wait: its header is complete.
   */
  keepAfterBody(key: string, socket: net.Socket, bodyBytes: number, alreadyRead: number, timeoutMs: number): void {
    let remaining = bodyBytes - alreadyRead;
    if (remaining === 0) return this.keep(key, socket);
    if (remaining < 0 || remaining > this.options.maxDrainBytes) return void socket.destroy();
    const settle = (keep: boolean): void => {
      clearTimeout(timer);
      socket.off("data", onData).off("end", onEnd).off("close", onEnd).off("error", onEnd);
      socket.pause();
      if (keep) this.keep(key, socket);
      else socket.destroy();
    };
    const onData = (chunk: Buffer): void => {
      remaining -= chunk.length;
      if (remaining <= 0) settle(remaining === 0);
    };
    const onEnd = (): void => settle(false);
    const timer = setTimeout(() => settle(false), timeoutMs).unref();
    socket.on("data", onData).once("end", onEnd).once("close", onEnd).once("error", onEnd);
    socket.resume();
  }

  /** Closes every idle connection; connections kept from now on are closed at once. */
  close(): void {
    this.closed = true;
    for (const list of [...this.byKey.values()]) for (const idle of [...list]) this.drop(idle);
  }

  private forget(idle: IdleConnection): void {
    clearTimeout(idle.timer);
    idle.release();
    this.idleCount--;
    const list = this.byKey.get(idle.key);
    if (list?.length === 0) this.byKey.delete(idle.key);
  }

  private drop(idle: IdleConnection): void {
    const list = this.byKey.get(idle.key);
    const index = list?.indexOf(idle) ?? -1;
    if (index === -1) return;
    list!.splice(index, 1);
    this.forget(idle);
    idle.socket.destroy();
  }

  /** Least recently kept across all keys: each key's list is oldest first. */
  private dropOldest(): void {
    let oldest: IdleConnection | undefined;
    for (const list of this.byKey.values()) {
      const first = list[0];
      if (first !== undefined && (oldest === undefined || first.sequence < oldest.sequence)) oldest = first;
    }
    if (oldest) this.drop(oldest);
  }
}

/** Open both ways, and not ended by the origin. */
function usable(socket: net.Socket): boolean {
  return !socket.destroyed && !socket.readableEnded && socket.writable;
}
