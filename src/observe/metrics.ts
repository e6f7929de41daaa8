/**
 * The server's Prometheus metrics (prom-client), one Registry per server: tests and embedding
 * programs run several servers in one process, and each must show only its own figures.
 *
 * Two sources, chosen by cost. What needs labels or durations per query (outcomes, error codes,
 * origin latency, limit hits, persist durations, bytes by delivery) is counted from the server's
 * events (src/server/server-events.ts). What the parts already count (sessions, tickets, the
 * data channel's datagrams and drops, coalesced waits, budget spent, the cache's size) is read
 * from their snapshot when Prometheus scrapes, so it costs nothing between scrapes.
 */
import { createRequire } from "node:module";
import { Counter, Gauge, Histogram, Registry } from "prom-client";
import type { CacheStoreStats } from "../cache/cache-store.js";
import type { ServerStats } from "../server/headwire-server.js";
import type { ServerEvent, ServerEvents } from "../server/server-events.js";

/** What the metrics read at scrape time. */
export interface MetricsSubject {
  readonly events: ServerEvents;
  stats(): ServerStats;
  cacheStats(): Promise<CacheStoreStats>;
  /** Whether the store answers now (a Redis PING; always true for a store of this process). */
  storeReachable(): Promise<boolean>;
}

/** Seconds: from a cached lookup (~50 µs) to an origin at its header timeout. */
const LATENCY_BUCKETS = [0.0001, 0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];
const PERSIST_BUCKETS = [0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5];

export class ServerMetrics {
  readonly registry = new Registry();
  private readonly stopListening: () => void;

  constructor(subject: MetricsSubject) {
    const registry = this.registry;
    const registers = [registry];
    collectDefaultMetricsButGc(registry);

    // No histogram per query: its observe() is the dearest thing on a cached lookup's path; the
    // origin's latency (per fetch, not per lookup) is the one measured. Per query, plain counts (an object field each): prom-client's labelled inc() hashes its
    // labels on every call, which a cached lookup (some 10 µs when pipelined) should not pay.
    // They are handed to prom-client when scraped.
    const byOutcome: Record<string, number> = {};
    const byErrorCode: Record<string, number> = {};
    const byDelivery: Record<string, number> = {};
    countsCounter(
      registers,
      "headwire_queries_total",
      "Queries answered, by outcome: HIT, MISS, REVALIDATED, STALE, or ERROR",
      "outcome",
      byOutcome,
    );
    countsCounter(
      registers,
      "headwire_query_errors_total",
      "Queries answered with an ERROR, by error code",
      "code",
      byErrorCode,
    );
    countsCounter(
      registers,
      "headwire_delivered_bytes_total",
      "Header bytes answered, by delivery: udp (ticketed) or tcp (on the control session)",
      "delivery",
      byDelivery,
    );
    const originFetches = new Counter({
      name: "headwire_origin_fetches_total",
      help: "Origin requests, by result: ok or the error code",
      labelNames: ["result"],
      registers,
    });
    const originDuration = new Histogram({
      name: "headwire_origin_fetch_duration_seconds",
      help: "Origin requests, from connect to the end of the header",
      buckets: LATENCY_BUCKETS,
      registers,
    });
    const limitHits = new Counter({
      name: "headwire_limit_hits_total",
      help: "Requests refused or held back by a limit, by the limit's setting and the code",
      labelNames: ["limit", "code"],
      registers,
    });
    const sessionsOpened = new Counter({
      name: "headwire_sessions_opened_total",
      help: "Control sessions accepted",
      registers,
    });
    const persistDuration = new Histogram({
      name: "headwire_persist_duration_seconds",
      help: "Writes of the cache file (temporary file, fsync, rename)",
      buckets: PERSIST_BUCKETS,
      registers,
    });
    const persistFailures = new Counter({
      name: "headwire_persist_failures_total",
      help: "Writes of the cache file that failed (retried later)",
      registers,
    });
    const internalErrors = new Counter({
      name: "headwire_internal_errors_total",
      help: "Bugs of ours met (each logged with its stack)",
      registers,
    });

    // Read from the parts' own counters when scraped.
    snapshotGauge(registers, "headwire_sessions", "Control sessions open", () => subject.stats().sessions);
    snapshotGauge(registers, "headwire_tickets", "Delivery tickets live", () => subject.stats().tickets);
    snapshotGauge(
      registers,
      "headwire_ticket_bytes",
      "Header bytes the live tickets hold",
      () => subject.stats().ticketBytes,
    );
    snapshotGauge(
      registers,
      "headwire_reply_bytes",
      "Reply bytes waiting for clients to read them",
      () => subject.stats().replyBytes,
    );
    snapshotGauge(
      registers,
      "headwire_origin_connections_idle",
      "Origin connections kept open, unused, for the next request to the same address",
      () => subject.stats().originConnections.idle,
    );
    snapshotCounter(
      registers,
      "headwire_origin_connections_reused_total",
      "Origin requests sent on a kept connection instead of a new one",
      () => subject.stats().originConnections.reused,
    );
    snapshotCounter(
      registers,
      "headwire_coalesced_waits_total",
      "Queries that waited for a fetch already in flight",
      () => subject.stats().coalescedWaits,
    );
    snapshotCounter(
      registers,
      "headwire_budget_spent_bytes_total",
      "Datagram bytes charged to tickets' budgets",
      () => subject.stats().budgetBytesSpent,
    );
    snapshotCounter(
      registers,
      "headwire_datagram_requests_total",
      "REQUEST datagrams served",
      () => subject.stats().data?.requests ?? 0,
    );
    snapshotCounter(
      registers,
      "headwire_datagrams_sent_total",
      "CHUNK datagrams sent",
      () => subject.stats().data?.chunksSent ?? 0,
    );
    snapshotCounter(
      registers,
      "headwire_datagram_bytes_sent_total",
      "CHUNK datagram bytes sent",
      () => subject.stats().data?.bytesSent ?? 0,
    );
    snapshotCounter(
      registers,
      "headwire_datagram_send_errors_total",
      "Chunks the kernel refused to send",
      () => subject.stats().data?.sendErrors ?? 0,
    );
    new Counter({
      name: "headwire_datagrams_dropped_total",
      help: "Datagrams received and dropped, by reason",
      labelNames: ["reason"],
      registers,
      collect() {
        this.reset();
        const dropped = subject.stats().data?.dropped;
        if (dropped) for (const [reason, count] of Object.entries(dropped)) this.inc({ reason }, count);
      },
    });
    const cacheEntries = new Gauge({
      name: "headwire_cache_entries",
      help: "Entries in the cache store (a fleet's shared store counts every server's)",
      registers,
      async collect() {
        const stats = await subject.cacheStats().catch(() => undefined);
        if (stats) this.set(stats.entries);
      },
    });
    new Gauge({
      name: "headwire_cache_bytes",
      help: "Header bytes in the cache store (absent where the store cannot tell: Redis)",
      registers,
      async collect() {
        const stats = await subject.cacheStats().catch(() => undefined);
        if (stats?.bytes !== undefined) this.set(stats.bytes);
      },
    });
    void cacheEntries;
    new Gauge({
      name: "headwire_cache_store_up",
      help: "1 when the cache store answers (Redis PING at the scrape), 0 when it does not",
      registers,
      async collect() {
        this.set((await subject.storeReachable()) ? 1 : 0);
      },
    });

    this.stopListening = subject.events.on((event: ServerEvent) => {
      switch (event.type) {
        case "query": {
          const outcome = event.failed ? "ERROR" : event.outcome;
          byOutcome[outcome] = (byOutcome[outcome] ?? 0) + 1;
          if (event.failed) byErrorCode[event.outcome] = (byErrorCode[event.outcome] ?? 0) + 1;
          else if (event.bytes !== null) byDelivery[event.delivery] = (byDelivery[event.delivery] ?? 0) + event.bytes;
          return;
        }
        case "origin-fetch":
          originFetches.inc({ result: event.result });
          originDuration.observe(event.ms / 1000);
          return;
        case "limit":
          limitHits.inc({ limit: event.limit, code: event.code });
          return;
        case "session-start":
          sessionsOpened.inc();
          return;
        case "persist":
          persistDuration.observe(event.ms / 1000);
          if (!event.ok) persistFailures.inc();
          return;
        case "error":
          internalErrors.inc();
          return;
        default:
          return;
      }
    });
  }

  get contentType(): string {
    return this.registry.contentType;
  }

  /** The Prometheus text exposition of every metric. */
  text(): Promise<string> {
    return this.registry.metrics();
  }

  close(): void {
    this.stopListening();
    this.registry.clear();
  }
}

function snapshotGauge(registers: Registry[], name: string, help: string, read: () => number): void {
  new Gauge({
    name,
    help,
    registers,
    collect() {
      this.set(read());
    },
  });
}

/** A counter the part keeps itself: set to its value at each scrape (it only grows). */
function snapshotCounter(registers: Registry[], name: string, help: string, read: () => number): void {
  new Counter({
    name,
    help,
    registers,
    collect() {
      this.reset();
      this.inc(read());
    },
  });
}

/** A labelled counter whose values are counted elsewhere, by label value, and set at each scrape. */
function countsCounter(
  registers: Registry[],
  name: string,
  help: string,
  label: string,
  counts: Record<string, number>,
): void {
  new Counter({
    name,
    help,
    labelNames: [label],
    registers,
    collect() {
      this.reset();
      for (const [value, count] of Object.entries(counts)) this.inc({ [label]: value }, count);
    },
  });
}

/**
 * prom-client's default metrics (process CPU, memory, file descriptors, event-loop lag, heap,
 * handles, version), each registered as collectDefaultMetrics() would, but its GC histogram: that
 * one keeps a PerformanceObserver on every garbage collection, which cost some 10 % of pipelined
 * cached-lookup throughput here (measured: 54k/s without it, 49k/s with it, on one session). The
 * modules are prom-client's own (lib/metrics/<name>.js, listed by metricsList), so the metrics are
 * exactly its defaults.
 */
function collectDefaultMetricsButGc(registry: Registry): void {
  const require = createRequire(import.meta.url);
  const { metricsList } = require("prom-client/lib/defaultMetrics") as { metricsList: string[] };
  for (const name of metricsList) {
    if (name === "gc") continue;
    const register = require(`prom-client/lib/metrics/${name}`) as (
      registry: Registry,
      config: { eventLoopMonitoringPrecision: number },
    ) => void;
    register(registry, { eventLoopMonitoringPrecision: 10 });
  }
}
