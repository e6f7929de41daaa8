/**
 * A UDP relay that injects faults, for tests and for trying a client against a bad network.
 *
 *   client ──► relay socket ──► upstream socket (one per client) ──► target
 *   client ◄── relay socket ◄── upstream socket                  ◄── target
 *
 * Each distinct client address:port gets its own upstream socket, like a NAT mapping, so the
 * target's replies find their way back. Upstream sockets bind to the relay's own IP when the target
 * is of the same family: headwire's server accepts UDP only from the IP of the TCP session, and a
 * test's TCP session comes from 127.0.0.1.
 *
 * Faults apply in both directions, decided by a seeded PRNG (mulberry32), one stream per client and
 * direction (clients numbered in the order they are first seen), so a failing run replays with the
 * same seed and the same traffic. Every datagram draws the same number of
 * random values whatever happens to it, so the fate of the n-th datagram of a stream depends only
 * on the seed and n: turning corruption on does not change which datagrams are dropped.
 *
 * Per datagram, in order: drop (`loss`); flip one random bit (`corrupt`); send twice
 * (`duplicate`); hold back until the next datagram of the same stream has gone, or `reorderHoldMs`
 * has passed (`reorder`); wait a random time in `delayMs` before sending (random delays reorder
 * too).
 */
import { createSocket, type RemoteInfo, type Socket, type SocketType } from "node:dgram";
import { isIP } from "node:net";
import { ConfigError } from "../errors.js";

export interface UdpAddress {
  host: string;
  port: number;
}

export interface LossyRelayOptions {
  /** Where datagrams from clients go. An IP literal. */
  target: UdpAddress;
  /** PRNG seed (a 32-bit integer); the same seed and the same traffic give the same faults. */
  seed: number;
  /** Probability, 0 to 1, that a datagram is dropped. Default 0. */
  loss?: number;
  /** Probability that a datagram is sent twice. Default 0. */
  duplicate?: number;
  /** Probability that a datagram is held back behind the next one. Default 0. */
  reorder?: number;
  /** Probability that one random bit of a datagram is flipped. Default 0. */
  corrupt?: number;
  /** Each datagram waits a uniform random time in [min, max] ms before it is sent. Default none. */
  delayMs?: { min: number; max: number };
  /** Longest a reordered datagram waits for a successor before it is sent anyway. Default 50. */
  reorderHoldMs?: number;
  /** Address the relay listens on (and upstream sockets bind to). Default 127.0.0.1. */
  host?: string;
  /** Port the relay listens on. Default 0: an ephemeral port, see `address`. */
  port?: number;
}

export type RelayDirection = "toTarget" | "toClient";

export interface DirectionStats {
  /** Datagrams that reached the relay. */
  received: number;
  /** Datagrams sent on, duplicates included. */
  forwarded: number;
  dropped: number;
  /** Extra copies sent. */
  duplicated: number;
  /** Datagrams held back behind a later one. */
  reordered: number;
  corrupted: number;
}

export type RelayStats = Record<RelayDirection, DirectionStats>;

interface ResolvedOptions {
  target: UdpAddress;
  seed: number;
  loss: number;
  duplicate: number;
  reorder: number;
  corrupt: number;
  delayMs: { min: number; max: number } | null;
  reorderHoldMs: number;
  host: string;
  port: number;
}

/** mulberry32: a tiny, fast 32-bit PRNG; plenty for fault injection, not for anything secret. */
export function mulberry32(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Mixes the seed with a stream number (murmur3's finaliser) so streams are unrelated. */
function streamSeed(seed: number, stream: number): number {
  let h = (seed ^ Math.imul(stream + 1, 0x9e3779b9)) >>> 0;
  h = Math.imul(h ^ (h >>> 16), 0x85ebca6b);
  h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35);
  return (h ^ (h >>> 16)) >>> 0;
}

/** What a fault stream needs from its relay. */
interface StreamContext {
  readonly options: ResolvedOptions;
  readonly stats: DirectionStats;
  /** Sends a datagram on; false (and nothing sent) once the relay is closed. */
  send(datagram: Buffer): boolean;
  /** Runs `action` after `delayMs`, unless the relay closes first. */
  later(action: () => void, delayMs: number): void;
  /** Reports that the counts changed. */
  changed(): void;
}

/** One direction of one client: its PRNG and the datagram it holds back for reordering. */
class FaultStream {
  private readonly random: () => number;
  private held: { emit: () => void; timer: NodeJS.Timeout } | null = null;

  constructor(
    seed: number,
    private readonly context: StreamContext,
  ) {
    this.random = mulberry32(seed);
  }

  handle(input: Buffer): void {
    const { options, stats } = this.context;
    // Always draw the same values, so one datagram's fate never shifts the next one's.
    const lose = this.random();
    const corrupt = this.random();
    const bit = this.random();
    const duplicate = this.random();
    const reorder = this.random();
    const delay = this.random();
    stats.received++;
    if (lose < options.loss) {
      stats.dropped++;
      this.context.changed();
      return;
    }
    let datagram = input;
    if (corrupt < options.corrupt && input.length > 0) {
      datagram = Buffer.from(input);
      const bitIndex = Math.floor(bit * input.length * 8);
      datagram[bitIndex >> 3]! ^= 1 << (bitIndex & 7);
      stats.corrupted++;
    }
    const copies = duplicate < options.duplicate ? 2 : 1;
    if (copies === 2) stats.duplicated++;
    const delayMs = delayFor(options.delayMs, delay);
    const emit = (): void => {
      for (let i = 0; i < copies; i++) this.emitAfter(datagram, delayMs);
    };
    if (reorder < options.reorder && this.held === null) {
      stats.reordered++;
      this.held = { emit, timer: setTimeout(() => this.release(), options.reorderHoldMs) };
    } else {
      emit();
      this.release();
    }
    this.context.changed();
  }

  /** Sends the held-back datagram, if any. */
  private release(): void {
    if (this.held === null) return;
    const { emit, timer } = this.held;
    clearTimeout(timer);
    this.held = null;
    emit();
  }

  private emitAfter(datagram: Buffer, delayMs: number): void {
    if (delayMs <= 0) this.forward(datagram);
    else this.context.later(() => this.forward(datagram), delayMs);
  }

  private forward(datagram: Buffer): void {
    if (!this.context.send(datagram)) return;
    this.context.stats.forwarded++;
    this.context.changed();
  }

  /** Forgets the held-back datagram; for close(). */
  dispose(): void {
    if (this.held !== null) clearTimeout(this.held.timer);
    this.held = null;
  }
}

function delayFor(range: { min: number; max: number } | null, draw: number): number {
  if (range === null) return 0;
  return range.min + Math.floor(draw * (range.max - range.min + 1));
}

interface ClientMapping {
  upstream: Socket;
  toTarget: FaultStream;
  toClient: FaultStream;
}

interface StatsWaiter {
  predicate: (stats: RelayStats) => boolean;
  resolve: () => void;
}

export class LossyRelay {
  /** The relay's listening address: clients send here instead of to the target. */
  readonly address: UdpAddress;
  private closed = false;
  private readonly counts: RelayStats = { toTarget: emptyStats(), toClient: emptyStats() };
  private readonly clients = new Map<string, ClientMapping>();
  private readonly timers = new Set<NodeJS.Timeout>();
  private readonly waiters = new Set<StatsWaiter>();

  private constructor(
    private readonly socket: Socket,
    private readonly options: ResolvedOptions,
  ) {
    const bound = socket.address();
    this.address = { host: bound.address, port: bound.port };
    socket.on("message", (message, from) => this.fromClient(message, from));
  }

  static async start(options: LossyRelayOptions): Promise<LossyRelay> {
    const resolved = resolveOptions(options);
    const socket = createSocket(socketType(resolved.host));
    await new Promise<void>((resolve, reject) => {
      socket.once("error", reject);
      socket.bind({ address: resolved.host, port: resolved.port }, () => {
        socket.off("error", reject);
        resolve();
      });
    });
    // A relay carries on past a failed send (ICMP unreachable and the like), as a network would.
    socket.on("error", () => {});
    return new LossyRelay(socket, resolved);
  }

  /** A copy of the counts so far, per direction. */
  get stats(): RelayStats {
    return { toTarget: { ...this.counts.toTarget }, toClient: { ...this.counts.toClient } };
  }

  /** Clients (source address:port pairs) seen so far. */
  get clientCount(): number {
    return this.clients.size;
  }

  /**
   * Resolves once `predicate(stats)` holds; rejects after `timeoutMs`. Lets tests synchronise on
   * what the relay has done rather than on sleeps.
   */
  waitForStats(predicate: (stats: RelayStats) => boolean, timeoutMs: number): Promise<void> {
    if (predicate(this.stats)) return Promise.resolve();
    return new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiters.delete(waiter);
        reject(
          new Error(`relay stats did not reach the awaited state in ${timeoutMs} ms: ${JSON.stringify(this.stats)}`),
        );
      }, timeoutMs);
      const waiter: StatsWaiter = {
        predicate,
        resolve: () => {
          clearTimeout(timer);
          resolve();
        },
      };
      this.waiters.add(waiter);
    });
  }

  /** Stops relaying: pending (held or delayed) datagrams are discarded and every socket is closed. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const timer of this.timers) clearTimeout(timer);
    this.timers.clear();
    const sockets = [this.socket];
    for (const mapping of this.clients.values()) {
      mapping.toTarget.dispose();
      mapping.toClient.dispose();
      sockets.push(mapping.upstream);
    }
    this.clients.clear();
    await Promise.all(sockets.map((socket) => new Promise<void>((resolve) => socket.close(() => resolve()))));
  }

  private fromClient(message: Buffer, from: RemoteInfo): void {
    if (this.closed) return;
    const key = `${from.address}|${from.port}`;
    let mapping = this.clients.get(key);
    if (mapping === undefined) {
      mapping = this.openMapping(from, this.clients.size);
      this.clients.set(key, mapping);
    }
    mapping.toTarget.handle(message);
  }

  /** A NAT-like mapping: the n-th client gets its own upstream socket and PRNG streams 2n, 2n+1. */
  private openMapping(client: RemoteInfo, index: number): ClientMapping {
    const { target, host, seed } = this.options;
    const upstream = createSocket(socketType(target.host));
    upstream.on("error", () => {});
    // Bind to the relay's own IP when it is a concrete address of the target's family, so the
    // target sees the source IP the client's TCP session comes from.
    const concrete = socketType(host) === socketType(target.host) && host !== "0.0.0.0" && host !== "::";
    upstream.bind({ address: concrete ? host : undefined, port: 0 });
    // Sends issued before the bind completes are queued by node:dgram.
    const toTarget = new FaultStream(
      streamSeed(seed, index * 2),
      this.streamContext(this.counts.toTarget, (d) => upstream.send(d, target.port, target.host)),
    );
    const toClient = new FaultStream(
      streamSeed(seed, index * 2 + 1),
      this.streamContext(this.counts.toClient, (d) => this.socket.send(d, client.port, client.address)),
    );
    upstream.on("message", (message) => {
      if (!this.closed) toClient.handle(message);
    });
    return { upstream, toTarget, toClient };
  }

  private streamContext(stats: DirectionStats, send: (datagram: Buffer) => void): StreamContext {
    return {
      options: this.options,
      stats,
      send: (datagram) => {
        if (this.closed) return false;
        send(datagram);
        return true;
      },
      later: (action, delayMs) => {
        const timer = setTimeout(() => {
          this.timers.delete(timer);
          action();
        }, delayMs);
        this.timers.add(timer);
      },
      changed: () => this.notifyWaiters(),
    };
  }

  private notifyWaiters(): void {
    if (this.waiters.size === 0) return;
    const snapshot = this.stats;
    for (const waiter of this.waiters) {
      if (waiter.predicate(snapshot)) {
        this.waiters.delete(waiter);
        waiter.resolve();
      }
    }
  }
}

function emptyStats(): DirectionStats {
  return { received: 0, forwarded: 0, dropped: 0, duplicated: 0, reordered: 0, corrupted: 0 };
}

function socketType(host: string): SocketType {
  return isIP(host) === 6 ? "udp6" : "udp4";
}

function resolveOptions(options: LossyRelayOptions): ResolvedOptions {
  const probability = (name: string, value: number | undefined): number => {
    if (value === undefined) return 0;
    if (typeof value !== "number" || !(value >= 0 && value <= 1)) {
      throw new ConfigError(`options.${name} must be a probability from 0 to 1, got ${String(value)}`);
    }
    return value;
  };
  const { target } = options;
  if (typeof target?.host !== "string" || isIP(target.host) === 0) {
    throw new ConfigError(`options.target.host must be an IP address, got ${String(target?.host)}`);
  }
  if (!isPort(target.port) || target.port === 0) {
    throw new ConfigError(`options.target.port must be an integer from 1 to 65535, got ${String(target.port)}`);
  }
  if (!Number.isInteger(options.seed)) {
    throw new ConfigError(`options.seed must be an integer, got ${String(options.seed)}`);
  }
  const host = options.host ?? "127.0.0.1";
  if (isIP(host) === 0) throw new ConfigError(`options.host must be an IP address, got ${String(host)}`);
  const port = options.port ?? 0;
  if (!isPort(port)) throw new ConfigError(`options.port must be an integer from 0 to 65535, got ${String(port)}`);
  const delayMs = options.delayMs ?? null;
  if (delayMs !== null && !(isDelay(delayMs.min) && isDelay(delayMs.max) && delayMs.min <= delayMs.max)) {
    throw new ConfigError(`options.delayMs must be integers with 0 <= min <= max, got ${JSON.stringify(delayMs)}`);
  }
  const reorderHoldMs = options.reorderHoldMs ?? 50;
  if (!isDelay(reorderHoldMs) || reorderHoldMs < 1) {
    throw new ConfigError(`options.reorderHoldMs must be a positive integer, got ${String(reorderHoldMs)}`);
  }
  return {
    target: { host: target.host, port: target.port },
    seed: options.seed,
    loss: probability("loss", options.loss),
    duplicate: probability("duplicate", options.duplicate),
    reorder: probability("reorder", options.reorder),
    corrupt: probability("corrupt", options.corrupt),
    delayMs,
    reorderHoldMs,
    host,
    port,
  };
}

function isPort(value: unknown): value is number {
  return typeof value === "number" && Number.isInteger(value) && value >= 0 && value <= 65535;
}

function isDelay(value: unknown): value is number {
  return typeof value === "number" && Number.isInteger(value) && value >= 0 && value <= 600_000;
}
