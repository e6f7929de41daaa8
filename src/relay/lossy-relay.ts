/**
 * A UDP relay that emulates a bad path, for tests and for trying a client against a bad network.
 *
 *   client ──► relay socket ──► upstream socket (one per client) ──► target
 *   client ◄── relay socket ◄── upstream socket                  ◄── target
 *
 * Each distinct client address:port gets its own upstream socket, like a NAT mapping, so the
 * target's replies find their way back. Upstream sockets bind to the relay's own IP when the target
 * is of the same family: headwire's server accepts UDP only from the IP of the TCP session, and a
 * test's TCP session comes from 127.0.0.1. A mapping whose client has sent nothing for
 * `idleMappingMs` is forgotten and its socket closed, as a NAT does (RFC 4787 §4.3: only traffic
 * from the inside refreshes it, REQ-6); the client's next datagram opens a new one, from another
 * port.
 *
 * Faults apply in both directions, decided by a seeded PRNG (mulberry32), one stream per client and
 * direction (clients numbered in the order their mappings open), so a failing run replays with the
 * same seed and the same traffic. Every datagram draws the same number of
 * random values whatever happens to it, so the fate of the n-th datagram of a stream depends only
 * on the seed and n: turning corruption on does not change which datagrams are dropped. Queue
 * drops (below) depend on timing as well, as on a real link.
 *
 * Per datagram, in order: drop everything (`block`: UDP blocked); drop (`loss`); flip one random
 * bit (`corrupt`); send twice (`duplicate`); hold back until the next datagram of the same stream
 * has gone, or `reorderHoldMs` has passed (`reorder`); then each copy crosses the direction's link:
 * a bottleneck of `bytesPerSecond` with a FIFO queue of `queueBytes` (a copy that does not fit is
 * dropped: tail drop), then a one-way delay drawn uniformly in [`delayMs`, `delayMs + jitterMs`]
 * (or the older `delayMs: {min, max}` for both directions). Copies leave the link in the order of
 * their arrival times, so jitter reorders, and a fixed delay does not.
 */
import { createSocket, type RemoteInfo, type Socket, type SocketType } from "node:dgram";
import { isIP } from "node:net";
import { performance } from "node:perf_hooks";
import { ConfigError } from "../errors.js";

export interface UdpAddress {
  host: string;
  port: number;
}

/** One direction of the path: its delay and its bottleneck. */
export interface LinkOptions {
  /** Fixed one-way delay, ms. Default 0 (or the relay-wide `delayMs` range when neither is set). */
  delayMs?: number;
  /** Each datagram waits up to this much more, uniformly, ms. Default 0. */
  jitterMs?: number;
  /** Bottleneck rate, bytes of UDP payload a second. Default 0: unlimited. */
  bytesPerSecond?: number;
  /** Bytes the bottleneck queues (the one being sent included); the rest is dropped. Default 65536. */
  queueBytes?: number;
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
  /**
   * Both directions: each datagram waits a uniform random time in [min, max] ms. Default none. A
   * direction's own `delayMs` or `jitterMs` replaces it.
   */
  delayMs?: { min: number; max: number };
  /** The client → target direction's link. */
  toTarget?: LinkOptions;
  /** The target → client direction's link. */
  toClient?: LinkOptions;
  /** Drop every datagram both ways (UDP blocked); see also `setBlocked`. Default false. */
  block?: boolean;
  /** Forget a client's mapping after this long without a datagram from it; 0: never. Default 120000. */
  idleMappingMs?: number;
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
  /** Dropped by `loss`. */
  dropped: number;
  /** Extra copies sent. */
  duplicated: number;
  /** Datagrams held back behind a later one. */
  reordered: number;
  corrupted: number;
  /** Dropped because UDP is blocked. */
  blocked: number;
  /** Copies dropped because the bottleneck's queue was full (tail drop). */
  queueDropped: number;
  /** The most bytes the bottleneck's queue has held at once (any one client). */
  peakQueueBytes: number;
}

export type RelayStats = Record<RelayDirection, DirectionStats>;

/** RFC 4787 §4.3 REQ-5: a NAT's UDP mapping must not expire in less than two minutes. */
const DEFAULT_IDLE_MAPPING_MS = 120_000;
const DEFAULT_QUEUE_BYTES = 65_536;
const MAX_DELAY_MS = 600_000;

interface ResolvedLink {
  delay: { min: number; max: number } | null;
  /** 0: unlimited. */
  bytesPerSecond: number;
  queueBytes: number;
}

interface ResolvedOptions {
  target: UdpAddress;
  seed: number;
  loss: number;
  duplicate: number;
  reorder: number;
  corrupt: number;
  links: Record<RelayDirection, ResolvedLink>;
  block: boolean;
  idleMappingMs: number;
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
  readonly link: ResolvedLink;
  readonly stats: DirectionStats;
  /** Whether UDP is blocked now. */
  blocked(): boolean;
  /** Sends a datagram on; false (and nothing sent) once the relay or the mapping is closed. */
  send(datagram: Buffer): boolean;
  /** Reports that the counts changed. */
  changed(): void;
}

interface TimedEvent {
  at: number;
  sequence: number;
  run: () => void;
}

/**
 * Events at given times (performance.now() ms), run in the order of their times (ties in the
 * order they were added) from one timer: separate timers could fire out of order when their
 * times are close, and a link must not reorder what it does not mean to.
 */
class Timeline {
  private readonly events: TimedEvent[] = [];
  private sequence = 0;
  private timer: NodeJS.Timeout | null = null;
  private disposed = false;

  add(at: number, run: () => void): void {
    if (this.disposed) return;
    const event = { at, sequence: this.sequence++, run };
    let i = this.events.length;
    while (i > 0 && this.events[i - 1]!.at > at) i--;
    this.events.splice(i, 0, event);
    this.arm();
  }

  /** Runs every event that is due; a timer may fire a little early, so the clock decides. */
  runDue(): void {
    const now = performance.now();
    while (!this.disposed && this.events.length > 0 && this.events[0]!.at <= now) this.events.shift()!.run();
  }

  dispose(): void {
    this.disposed = true;
    this.events.length = 0;
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
  }

  private arm(): void {
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
    const next = this.events[0];
    if (next === undefined || this.disposed) return;
    this.timer = setTimeout(
      () => {
        this.timer = null;
        this.runDue();
        this.arm();
      },
      Math.max(0, next.at - performance.now()),
    );
  }
}

/** One direction of one client: its PRNG, the datagram it holds back, and its link. */
class FaultStream {
  private readonly random: () => number;
  private held: { emit: () => void; timer: NodeJS.Timeout } | null = null;
  private readonly timeline = new Timeline();
  /** Bytes in the bottleneck's queue, the one being sent included. */
  private queuedBytes = 0;
  /** When the bottleneck finishes sending what it holds. */
  private linkFreeAt = 0;

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
    if (this.context.blocked()) {
      stats.blocked++;
      this.context.changed();
      return;
    }
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
    const delayMs = delayFor(this.context.link.delay, delay);
    const emit = (): void => {
      for (let i = 0; i < copies; i++) this.enterLink(datagram, delayMs);
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

  /**
   * The bottleneck: a FIFO queue drained at `bytesPerSecond`, then the one-way delay. Tail drop
   * when the queue is full, as a plain router does (RFC 7567 recommends AQM instead; tail drop is
   * the harsher case for a sender to face).
   */
  private enterLink(datagram: Buffer, delayMs: number): void {
    const { link, stats } = this.context;
    if (link.bytesPerSecond === 0) {
      this.propagate(datagram, performance.now(), delayMs);
      return;
    }
    this.timeline.runDue();
    if (this.queuedBytes + datagram.length > link.queueBytes) {
      stats.queueDropped++;
      this.context.changed();
      return;
    }
    this.queuedBytes += datagram.length;
    stats.peakQueueBytes = Math.max(stats.peakQueueBytes, this.queuedBytes);
    const departAt = Math.max(performance.now(), this.linkFreeAt) + (datagram.length * 1000) / link.bytesPerSecond;
    this.linkFreeAt = departAt;
    this.timeline.add(departAt, () => {
      this.queuedBytes -= datagram.length;
      this.propagate(datagram, departAt, delayMs);
    });
  }

  private propagate(datagram: Buffer, departedAt: number, delayMs: number): void {
    if (delayMs <= 0 && departedAt <= performance.now()) this.forward(datagram);
    else this.timeline.add(departedAt + delayMs, () => this.forward(datagram));
  }

  private forward(datagram: Buffer): void {
    if (!this.context.send(datagram)) return;
    this.context.stats.forwarded++;
    this.context.changed();
  }

  /** Forgets the held-back and queued datagrams; for close() and a forgotten mapping. */
  dispose(): void {
    if (this.held !== null) clearTimeout(this.held.timer);
    this.held = null;
    this.timeline.dispose();
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
  closed: boolean;
  /** When the client last sent a datagram (performance.now() ms). */
  lastSeen: number;
  idleTimer: NodeJS.Timeout | null;
}

interface StatsWaiter {
  predicate: (stats: RelayStats) => boolean;
  resolve: () => void;
}

export class LossyRelay {
  /** The relay's listening address: clients send here instead of to the target. */
  readonly address: UdpAddress;
  private closed = false;
  private blocked: boolean;
  private readonly counts: RelayStats = { toTarget: emptyStats(), toClient: emptyStats() };
  private readonly clients = new Map<string, ClientMapping>();
  /** Mappings opened so far: numbers the PRNG streams, so a reopened mapping gets fresh ones. */
  private mappingsOpened = 0;
  private expired = 0;
  private readonly waiters = new Set<StatsWaiter>();

  private constructor(
    private readonly socket: Socket,
    private readonly options: ResolvedOptions,
  ) {
    const bound = socket.address();
    this.address = { host: bound.address, port: bound.port };
    this.blocked = options.block;
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

  /** Client mappings open now (source address:port pairs; a forgotten one no longer counts). */
  get clientCount(): number {
    return this.clients.size;
  }

  /** Mappings forgotten after `idleMappingMs` of silence from their client. */
  get expiredMappings(): number {
    return this.expired;
  }

  /** Blocks (or unblocks) UDP both ways from now on: every datagram is dropped and counted. */
  setBlocked(blocked: boolean): void {
    this.blocked = blocked;
  }

  /**
   * Resolves once `predicate(stats)` holds; rejects after `timeoutMs`. Lets tests synchronise on
   * what the relay has done rather than on sleeps. Checked whenever a count changes or a mapping
   * is forgotten, so a predicate may read `expiredMappings` and `clientCount` too.
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

  /** Stops relaying: pending (held, queued or delayed) datagrams are discarded and every socket is closed. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    const sockets = [this.socket];
    for (const mapping of this.clients.values()) {
      this.disposeMapping(mapping);
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
      mapping = this.openMapping(key, from, this.mappingsOpened++);
      this.clients.set(key, mapping);
    }
    mapping.lastSeen = performance.now();
    mapping.toTarget.handle(message);
  }

  /** A NAT-like mapping: the n-th client gets its own upstream socket and PRNG streams 2n, 2n+1. */
  private openMapping(key: string, client: RemoteInfo, index: number): ClientMapping {
    const { target, host, seed } = this.options;
    const upstream = createSocket(socketType(target.host));
    upstream.on("error", () => {});
    // Bind to the relay's own IP when it is a concrete address of the target's family, so the
    // target sees the source IP the client's TCP session comes from.
    const concrete = socketType(host) === socketType(target.host) && host !== "0.0.0.0" && host !== "::";
    upstream.bind({ address: concrete ? host : undefined, port: 0 });
    const mapping: ClientMapping = {
      upstream,
      closed: false,
      lastSeen: performance.now(),
      idleTimer: null,
      // Sends issued before the bind completes are queued by node:dgram.
      toTarget: new FaultStream(
        streamSeed(seed, index * 2),
        this.streamContext(
          "toTarget",
          () => mapping,
          (d) => upstream.send(d, target.port, target.host),
        ),
      ),
      toClient: new FaultStream(
        streamSeed(seed, index * 2 + 1),
        this.streamContext(
          "toClient",
          () => mapping,
          (d) => this.socket.send(d, client.port, client.address),
        ),
      ),
    };
    upstream.on("message", (message) => {
      if (!this.closed && !mapping.closed) mapping.toClient.handle(message);
    });
    this.watchIdle(key, mapping);
    return mapping;
  }

  /** Forgets the mapping once its client has been silent for `idleMappingMs` (0: never). */
  private watchIdle(key: string, mapping: ClientMapping): void {
    const { idleMappingMs } = this.options;
    if (idleMappingMs === 0) return;
    const check = (): void => {
      mapping.idleTimer = null;
      if (mapping.closed) return;
      const silentMs = performance.now() - mapping.lastSeen;
      if (silentMs < idleMappingMs) {
        mapping.idleTimer = setTimeout(check, idleMappingMs - silentMs);
        return;
      }
      this.disposeMapping(mapping);
      mapping.upstream.close();
      this.clients.delete(key);
      this.expired++;
      this.notifyWaiters();
    };
    mapping.idleTimer = setTimeout(check, idleMappingMs);
  }

  private disposeMapping(mapping: ClientMapping): void {
    mapping.closed = true;
    if (mapping.idleTimer !== null) clearTimeout(mapping.idleTimer);
    mapping.idleTimer = null;
    mapping.toTarget.dispose();
    mapping.toClient.dispose();
  }

  private streamContext(
    direction: RelayDirection,
    mapping: () => ClientMapping,
    send: (datagram: Buffer) => void,
  ): StreamContext {
    return {
      options: this.options,
      link: this.options.links[direction],
      stats: this.counts[direction],
      blocked: () => this.blocked,
      send: (datagram) => {
        if (this.closed || mapping().closed) return false;
        send(datagram);
        return true;
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
  return {
    received: 0,
    forwarded: 0,
    dropped: 0,
    duplicated: 0,
    reordered: 0,
    corrupted: 0,
    blocked: 0,
    queueDropped: 0,
    peakQueueBytes: 0,
  };
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
  const idleMappingMs = options.idleMappingMs ?? DEFAULT_IDLE_MAPPING_MS;
  if (!isWhole(idleMappingMs, 86_400_000)) {
    throw new ConfigError(`options.idleMappingMs must be an integer from 0 to 86400000, got ${String(idleMappingMs)}`);
  }
  const block = options.block ?? false;
  if (typeof block !== "boolean") throw new ConfigError(`options.block must be a boolean, got ${typeof block}`);
  return {
    target: { host: target.host, port: target.port },
    seed: options.seed,
    loss: probability("loss", options.loss),
    duplicate: probability("duplicate", options.duplicate),
    reorder: probability("reorder", options.reorder),
    corrupt: probability("corrupt", options.corrupt),
    links: {
      toTarget: resolveLink("toTarget", options.toTarget, delayMs),
      toClient: resolveLink("toClient", options.toClient, delayMs),
    },
    block,
    idleMappingMs,
    reorderHoldMs,
    host,
    port,
  };
}

function resolveLink(
  name: RelayDirection,
  link: LinkOptions | undefined,
  sharedDelay: { min: number; max: number } | null,
): ResolvedLink {
  const { delayMs, jitterMs, bytesPerSecond = 0, queueBytes = DEFAULT_QUEUE_BYTES } = link ?? {};
  const check = (field: string, value: unknown, min: number, max: number): void => {
    if (value !== undefined && !(isWhole(value, max) && value >= min)) {
      throw new ConfigError(`options.${name}.${field} must be an integer from ${min} to ${max}, got ${String(value)}`);
    }
  };
  check("delayMs", delayMs, 0, MAX_DELAY_MS);
  check("jitterMs", jitterMs, 0, MAX_DELAY_MS);
  check("bytesPerSecond", bytesPerSecond, 0, 10_000_000_000);
  check("queueBytes", queueBytes, 1, 1024 * 1024 * 1024);
  const own = delayMs !== undefined || jitterMs !== undefined;
  const min = delayMs ?? 0;
  return {
    delay: own ? { min, max: min + (jitterMs ?? 0) } : sharedDelay,
    bytesPerSecond,
    queueBytes,
  };
}

function isWhole(value: unknown, max: number): value is number {
  return typeof value === "number" && Number.isInteger(value) && value >= 0 && value <= max;
}

function isPort(value: unknown): value is number {
  return typeof value === "number" && Number.isInteger(value) && value >= 0 && value <= 65535;
}

function isDelay(value: unknown): value is number {
  return isWhole(value, MAX_DELAY_MS);
}
