/**
 * `headwire server --workers N`: the primary process. It forks N workers (node:cluster: each runs
 * the same command with HEADWIRE_WORKER_INDEX set), which all listen on the one control port; the
 * primary accepts control connections and hands them to the workers in turn (cluster's
 * round-robin scheduling, the default on Linux). Each worker binds its own UDP data port
 * (worker-ports.ts), so a ticket is served by the worker that issued it and by no other.
 *
 * The primary holds the one cache of the machine (SharedCacheHost) — cache.txt and its lock, or
 * the memory store — and the fill claims that coalesce misses across workers. With Redis
 * (--cache redis://…) the workers use Redis directly, as a fleet of servers does.
 *
 * A worker that dies is replaced under the same index (the same data port); its sessions' TCP
 * connections die with it, which their clients see as the connection closed, and they reconnect.
 * stop() asks every worker to drain (as one server's SIGTERM does), waits for them
 * (shutdownGraceMs and a margin), then persists the cache, once.
 */
import cluster, { type Worker } from "node:cluster";
import { once } from "node:events";
import type { CacheStore } from "../cache/cache-store.js";
import { createCacheStore } from "../cache/create-cache-store.js";
import { Freshness } from "../cache/freshness.js";
import type { ServerConfig } from "../config.js";
import { isCacheAck, isCacheRequest, type CacheInvalidation } from "./cache-messages.js";
import { SharedCacheHost } from "./shared-cache-host.js";

/** The variable that tells a forked process it is worker i, and which ports are its own. */
export const WORKER_INDEX_VARIABLE = "HEADWIRE_WORKER_INDEX";
/** After shutdownGraceMs, how much longer a worker may take to close and exit before it is killed. */
const EXIT_MARGIN_MS = 5_000;
/** A replacement that dies before it is ready is tried again this long later, not in a tight loop. */
const RESTART_RETRY_MS = 1_000;

/** What a worker tells the primary once it listens. */
export interface WorkerReady {
  headwire: "ready";
  controlPort: number;
  dataPort: number;
}

/** What the primary tells a worker: drain and exit, as SIGTERM would. */
export const STOP_MESSAGE = { headwire: "stop" } as const;

export function isWorkerReady(message: unknown): message is WorkerReady {
  return typeof message === "object" && message !== null && (message as { headwire?: unknown }).headwire === "ready";
}

export function isStopMessage(message: unknown): boolean {
  return typeof message === "object" && message !== null && (message as { headwire?: unknown }).headwire === "stop";
}

export interface ServerPrimaryOptions {
  count: number;
  config: ServerConfig;
  log: (message: string) => void;
}

interface Slot {
  worker: Worker;
  ready: boolean;
  exited: boolean;
  dataPort: number;
  /** The highest invalidation seq the worker has acknowledged. */
  acked: number;
  /** Changes waiting for this worker's ack of their seq; resolved on the ack or when it exits. */
  ackWaiters: { seq: number; resolve: () => void }[];
}

export class ServerPrimary {
  private readonly slots: Slot[] = [];
  private readonly store: CacheStore | undefined;
  private readonly host: SharedCacheHost | undefined;
  private stopping: Promise<void> | undefined;
  /** Workers replaced since start (a crash, a kill), for the log and tests. */
  restarts = 0;
  controlPort = 0;

  private constructor(private readonly options: ServerPrimaryOptions) {
    const { config } = options;
    if (!config.cacheUrl.startsWith("redis")) {
      const freshness = new Freshness({
        defaultTtlMs: config.defaultTtlMs,
        maxStaleMs: config.maxStaleMs,
        now: Date.now,
      });
      this.store = createCacheStore(config, {
        now: Date.now,
        log: options.log,
        retentionMs: (entry) => freshness.retentionMs(entry),
      });
      this.host = new SharedCacheHost(this.store, Date.now, (invalidation) => this.broadcast(invalidation));
    }
  }

  /** Opens the cache, starts every worker and resolves once all listen; rejects (all stopped) if one cannot. */
  static async start(options: ServerPrimaryOptions): Promise<ServerPrimary> {
    const primary = new ServerPrimary(options);
    // Buffers cross as bytes (structured clone), not as JSON arrays of numbers.
    cluster.setupPrimary({ serialization: "advanced" });
    if (primary.store) options.log(`cache ${await primary.store.open()} (shared by ${options.count} workers)`);
    try {
      await Promise.all(Array.from({ length: options.count }, (_, index) => primary.fork(index)));
    } catch (error) {
      await primary.stop().catch(() => {});
      throw error;
    }
    return primary;
  }

  /** Each worker's data port, by index. */
  get dataPorts(): number[] {
    return this.slots.map((slot) => slot.dataPort);
  }

  /** The live workers' process ids, by index. */
  get pids(): number[] {
    return this.slots.map((slot) => slot.worker.process.pid ?? 0);
  }

  /** SIGHUP for every worker: each persists (through the primary) and re-reads --config. */
  reload(): void {
    for (const { worker } of this.slots) worker.process.kill("SIGHUP");
  }

  stop(): Promise<void> {
    this.stopping ??= this.shutdown();
    return this.stopping;
  }

  /** Forks worker `index` and resolves when it listens; rejects when it exits first. */
  private fork(index: number): Promise<void> {
    const worker = cluster.fork({ [WORKER_INDEX_VARIABLE]: String(index) });
    const slot: Slot = { worker, ready: false, exited: false, dataPort: 0, acked: 0, ackWaiters: [] };
    this.slots[index] = slot;
    // A worker that has gone holds no copy: no change waits for it any more.
    worker.once("disconnect", () => this.settleAcks(slot, Infinity));
    worker.once("exit", () => this.settleAcks(slot, Infinity));
    worker.on("message", (message: unknown) => {
      if (isCacheAck(message)) this.settleAcks(slot, message.seq);
      else if (isCacheRequest(message)) {
        if (!this.host) return;
        void this.host.answer(message).then((answer) => {
          if (worker.isConnected()) worker.send(answer);
        });
      }
    });
    return new Promise<void>((resolve, reject) => {
      worker.on("message", (message: unknown) => {
        if (!isWorkerReady(message)) return;
        slot.ready = true;
        slot.dataPort = message.dataPort;
        this.controlPort = message.controlPort;
        resolve();
      });
      worker.once("exit", (code, signal) => {
        slot.exited = true;
        const how = signal ? `signal ${signal}` : `code ${code}`;
        if (!slot.ready) reject(new Error(`worker ${index} exited (${how}) before it was listening`));
        if (this.stopping || this.slots[index] !== slot) return;
        this.restarts++;
        this.options.log(`worker ${index} (pid ${worker.process.pid}) exited (${how}); starting a replacement`);
        this.replace(index);
      });
    });
  }

  /**
   * Sends a change's invalidation to every worker and resolves once each ready one has dropped
   * its copies (its ack), or has exited. A worker not yet ready gets it too but is not waited
   * for: it serves no lookup before it is ready, and its copy starts empty. Without the wait a
   * PURGE through worker A could be answered while worker B, its invalidation still unread in
   * its channel, answers a session's next query from the purged copy.
   */
  private broadcast(invalidation: CacheInvalidation): Promise<void> {
    const waits: Promise<void>[] = [];
    for (const slot of this.slots) {
      if (slot.exited || !slot.worker.isConnected()) continue;
      slot.worker.send(invalidation);
      if (slot.ready && slot.acked < invalidation.seq) {
        waits.push(new Promise((resolve) => slot.ackWaiters.push({ seq: invalidation.seq, resolve })));
      }
    }
    return Promise.all(waits).then(() => undefined);
  }

  private settleAcks(slot: Slot, seq: number): void {
    slot.acked = Math.max(slot.acked, seq);
    const waiting = slot.ackWaiters;
    slot.ackWaiters = waiting.filter((waiter) => waiter.seq > slot.acked);
    for (const waiter of waiting) if (waiter.seq <= slot.acked) waiter.resolve();
  }

  private replace(index: number): void {
    this.fork(index).then(
      () => this.options.log(`worker ${index} replaced (pid ${this.slots[index]!.worker.process.pid})`),
      (error: Error) => {
        if (this.stopping) return;
        this.options.log(`${error.message}; trying again in ${RESTART_RETRY_MS} ms`);
        setTimeout(() => {
          if (!this.stopping) this.replace(index);
        }, RESTART_RETRY_MS);
      },
    );
  }

  private async shutdown(): Promise<void> {
    const live = this.slots.filter((slot) => !slot.exited);
    const exits = live.map((slot) => once(slot.worker, "exit"));
    for (const { worker } of live) if (worker.isConnected()) worker.send(STOP_MESSAGE);
    const bound = this.options.config.shutdownGraceMs + EXIT_MARGIN_MS;
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<"late">((resolve) => (timer = setTimeout(() => resolve("late"), bound)));
    if ((await Promise.race([Promise.all(exits), late])) === "late") {
      for (const [index, { worker, exited }] of this.slots.entries()) {
        if (!exited) {
          this.options.log(`worker ${index} still running ${bound} ms after the stop; killing it`);
          worker.process.kill("SIGKILL");
        }
      }
      await Promise.all(exits);
    }
    clearTimeout(timer);
    if (!this.store) {
      this.options.log("stopped; every worker has stopped");
      return;
    }
    // Once, after the last worker: nothing writes to the store any more.
    try {
      this.options.log(`stopped; cache ${await this.store.close()}`);
    } catch (error) {
      this.options.log(`stopped; cache NOT persisted: ${(error as Error).message}`);
      throw error;
    }
  }
}
