/**
 * The composition root of the server: builds the parts from one validated config and wires them:
 * the cache store (whichever the config names), the origin fetcher, the header service, tickets,
 * the query handler, the control listener (TCP) and the data listener (UDP). It owns start-up
 * and shutdown, and shows itself through stats(), never through its parts.
 */
import { once } from "node:events";
import { readFileSync } from "node:fs";
import { createServer, type Server, type Socket } from "node:net";
import tls from "node:tls";
import type { CacheStore, CacheStoreStats } from "../cache/cache-store.js";
import { createCacheStore } from "../cache/create-cache-store.js";
import { Freshness } from "../cache/freshness.js";
import { purge } from "../cache/purge.js";
import { ConfigError, resolveServerConfig, SERVER_SETTINGS, type ServerConfig } from "../config.js";
import { longFlagOf, type Reload, type Setting, type SettingSources } from "../config/schema.js";
import { HeadwireError } from "../errors.js";
import { OriginFetcher } from "../fetch/origin-fetcher.js";
import { OriginPool, type OriginPoolOptions, type OriginPoolStats } from "../fetch/origin-pool.js";
import { OriginGate } from "../fetch/origin-gate.js";
import { OutboundGuard } from "../fetch/outbound-guard.js";
import { formatError } from "../protocol/control.js";
import { MAX_CHUNKS_PER_REQUEST } from "../protocol/datagram.js";
import { KeyedTokenBuckets } from "../limits/token-bucket.js";
import { VERSION } from "../version.js";
import { closeAfter, ControlSession, ReplyBytes, type SessionContext } from "./control-session.js";
import { openFilesLimit, sessionCeiling } from "./file-descriptors.js";
import { DataServer, type DataServerStats } from "./data-server.js";
import { HeaderService, type HeaderFetcher } from "./header-service.js";
import { AdminHttp, type CacheEntryView, type Readiness } from "../admin/admin-http.js";
import { parseAdminAddress } from "../config/admin-address.js";
import { ServerMetrics } from "../observe/metrics.js";
import { StatusBoard } from "../observe/status-board.js";
import { QueryHandler } from "./query-handler.js";
import { queryPolicyOptions } from "./query-policy.js";
import { eventText, ServerEvents, type NoticeEvent } from "./server-events.js";
import { canonicalAddress, TicketRegistry } from "./ticket-registry.js";

export interface ServerLog {
  (message: string): void;
}

/** Settings (src/config/settings.ts) and the parts a caller may inject instead of the real ones. */
export interface HeadwireServerOptions extends Partial<ServerConfig> {
  /**
   * Told each message the server has for a log, as one line of text (the CLI's logger reads
   * server.events instead, for every field). Nothing is written anywhere when omitted.
   */
  log?: ServerLog;
  /** Replaces the origin fetcher (a benchmark's floor, say). */
  fetcher?: HeaderFetcher;
  /** Replaces the store the config names (a test that watches its writes, an embedding program). */
  store?: CacheStore;
  /** The clock tickets and freshness go by (tests move it); Date.now by default. */
  now?: () => number;
}

/**
 * A snapshot of what the server holds and has done, for tests, the benchmark and metrics. Taken
 * synchronously (counters); the cache's figures may need a round trip (Redis): cacheStats().
 */
export interface ServerStats {
  sessions: number;
  /** Live delivery tickets. */
  tickets: number;
  /** Header bytes the live tickets hold (each shared Buffer once), against maxTicketBytes. */
  ticketBytes: number;
  /** Origin requests started since the server was built. */
  originFetches: number;
  /** Kept origin connections: idle now, reused and kept since the start. */
  originConnections: OriginPoolStats;
  /** The UDP data channel's counters; undefined before start(). */
  data: DataServerStats | undefined;
  /** Reply bytes buffered for clients that have not read them (maxReplyBytes). */
  replyBytes: number;
  /** Requests refused by an abuse limit, by error code (SESSION_LIMIT, RATE_LIMITED, ORIGIN_BUSY, ...). */
  limitHits: Record<string, number>;
  /** Headers written on control sessions (delivery=tcp) instead of ticketed for UDP. */
  tcpDeliveries: number;
  /** Queries that waited for an origin fetch already in flight for their key. */
  coalescedWaits: number;
  /** Datagram bytes charged to tickets' budgets since the start. */
  budgetBytesSpent: number;
}

/** One setting a reload changed, or would have changed had it not needed a restart. */
export interface SettingChange {
  key: keyof ServerConfig;
  /** The setting as an operator names it: its flag (`--ticket-ttl-ms`). */
  flag: string;
  /** The values as logs show them (a secret as "(hidden)"). */
  from: string;
  to: string;
  /** When it applies: "now", or "new sessions" (absent in needsRestart). */
  reload?: Reload;
}

/** What reconfigure() did: the changes applied, and those that wait for a restart (still the old value). */
export interface ReconfigureResult {
  applied: SettingChange[];
  needsRestart: SettingChange[];
}

/** The settings a running server can change (marked `reload` in src/config/settings.ts). */
type ReloadableKey = {
  [K in keyof typeof SERVER_SETTINGS]: (typeof SERVER_SETTINGS)[K] extends { reload: Reload } ? K : never;
}[keyof typeof SERVER_SETTINGS];

export class HeadwireServer {
  /** The settings in force: the start's, with what reconfigure() applied since. */
  private current: ServerConfig;
  private readonly store: CacheStore;
  private readonly service: HeaderService;
  private readonly tickets: TicketRegistry;
  private readonly handler: QueryHandler;
  private readonly freshness: Freshness;
  /** The origin fetcher built from the config (undefined when one was injected: its guard and timeouts are its own). */
  private readonly fetcher: OriginFetcher | undefined;
  private readonly originGate: OriginGate;
  /** Idle origin connections (empty while a fetcher was injected). */
  private readonly originPool: OriginPool;
  private readonly sessions = new Map<number, ControlSession>();
  /** Sessions open per client address (maxSessionsPerAddress). */
  private readonly sessionsByAddress = new Map<string, number>();
  /** New sessions per client address (connectionsPerSecondPerAddress). */
  private readonly connectionRate: KeyedTokenBuckets;
  /** Reply bytes not yet written, all sessions together (maxReplyBytes). */
  private readonly replyBytes: ReplyBytes;
  /** Connections refused by limit, by code (queries refused are counted by the query handler). */
  private readonly limitHits: Record<string, number> = {};
  private readonly now: () => number;
  /** maxSessions, or fewer when the open-file limit would not let that many be answered. */
  private maxSessions: number;
  /** Everything the server reports (src/server/server-events.ts): logs, metrics and the status page listen here. */
  readonly events = new ServerEvents();
  private control: Server | undefined;
  private data: DataServer | undefined;
  private admin: AdminHttp | undefined;
  /** The metrics and the status page's state: only with an admin listener, which serves them. */
  private readonly metrics: ServerMetrics | undefined;
  private readonly board: StatusBoard | undefined;
  private cacheLoaded = false;
  private readonly startedAtMs = Date.now();
  private nextSessionId = 1;
  private stopping: Promise<void> | undefined;

  constructor(options: HeadwireServerOptions = {}) {
    this.current = resolveServerConfig(options);
    const now = options.now ?? Date.now;
    this.now = now;
    this.replyBytes = new ReplyBytes(this.config.maxReplyBytes);
    this.connectionRate = new KeyedTokenBuckets(
      this.config.connectionsPerSecondPerAddress,
      this.config.connectionBurstPerAddress,
      now,
    );
    this.maxSessions = sessionCeiling(this.config.maxSessions, openFilesLimit(), this.config.originIdleConnections);
    if (options.log) {
      const log = options.log;
      this.events.on((event) => {
        const text = eventText(event);
        if (text !== undefined) log(text);
      });
    }
    const freshness = new Freshness({
      defaultTtlMs: this.config.defaultTtlMs,
      maxStaleMs: this.config.maxStaleMs,
      now,
    });
    this.freshness = freshness;
    this.originGate = new OriginGate({
      concurrentFetches: this.config.originConcurrentFetches,
      fetchesPerSecond: this.config.originFetchesPerSecond,
      fetchBurst: this.config.originFetchBurst,
      now,
    });
    this.originPool = new OriginPool(originPoolOptions(this.config));
    this.fetcher = options.fetcher ? undefined : originFetcher(this.config, this.originGate, this.originPool);
    this.store =
      options.store ??
      createCacheStore(this.config, {
        now,
        log: this.notice("warn"),
        retentionMs: (entry) => freshness.retentionMs(entry),
        onPersist: (ok, ms, error) => this.events.emit({ type: "persist", ok, ms, error: error ?? null }),
      });
    this.tickets = new TicketRegistry({
      ticketTtlMs: this.config.ticketTtlMs,
      maxTicketsPerSession: this.config.maxTicketsPerSession,
      maxTicketBytes: this.config.maxTicketBytes,
      now,
    });
    this.service = new HeaderService({
      store: this.store,
      fetcher: options.fetcher ?? this.fetcher!,
      freshness,
      maxEntryBytes: this.config.cacheMaxEntryBytes,
      maxHeaderBytes: this.config.maxHeaderBytes,
      negativeTtlMs: this.config.negativeTtlMs,
      fillLockMs: this.config.fillLockMs,
      maxRememberedFailures: this.config.negativeCacheEntries,
      now,
      log: this.notice("warn"),
      events: this.events,
    });
    this.handler = new QueryHandler({
      service: this.service,
      tickets: this.tickets,
      store: this.store,
      maxDatagramBytes: this.config.maxDatagramBytes,
      retransmitBudget: this.config.retransmitBudget,
      ticketTtlMs: this.config.ticketTtlMs,
      advertiseHost: this.config.advertiseHost,
      dataPort: () => this.dataPort,
      adminToken: this.config.adminToken,
      urlMemoEntries: this.config.urlMemoEntries,
      urlMemoBytes: this.config.urlMemoBytes,
      queriesPerSecondPerAddress: this.config.queriesPerSecondPerAddress,
      queryBurstPerAddress: this.config.queryBurstPerAddress,
      now,
      policy: queryPolicyOptions(this.config, now),
      events: this.events,
    });
    if (this.config.adminHttp !== "off") {
      this.metrics = new ServerMetrics(this);
      this.board = new StatusBoard(this.events, {
        recentQueries: this.config.statusRecentQueries,
        recentProblems: this.config.statusRecentProblems,
        traceEvents: this.config.statusTraceEvents,
        traceSessions: this.config.statusTraceSessions,
        watchers: this.config.statusWatchers,
        watcherBufferBytes: this.config.statusWatcherBufferBytes,
      });
    }
  }

  async start(): Promise<this> {
    if (this.maxSessions < this.config.maxSessions) {
      this.notice("warn")(
        `warning: the open-files limit (${openFilesLimit()}) holds only ${this.maxSessions} sessions, not ` +
          `maxSessions ${this.config.maxSessions}; raise it (ulimit -n, systemd LimitNOFILE=) to hold more`,
      );
    }
    this.notice("info")(`cache ${await this.store.open()}`);
    this.cacheLoaded = true;
    try {
      this.data = await DataServer.start(this.tickets, {
        host: this.config.host,
        port: this.config.dataPort,
        maxDatagramBytes: this.config.maxDatagramBytes,
        receiveBufferBytes: this.config.dataReceiveBufferBytes,
        maxChunksPerRequest: MAX_CHUNKS_PER_REQUEST,
        bufferLossCreditDeliveries: this.config.bufferLossCreditDeliveries,
        log: this.notice("error"),
        events: this.events,
      });
      // allowHalfOpen: a client may send its requests and FIN; it still gets the replies (ControlSession).
      this.control = createServer({ allowHalfOpen: true }, (socket) => this.accept(socket));
      this.control.listen({ port: this.config.controlPort, host: this.config.host, ipv6Only: false });
      await Promise.race([
        once(this.control, "listening"),
        once(this.control, "error").then(([error]) => {
          throw error;
        }),
      ]);
      const adminAddress = parseAdminAddress(this.config.adminHttp);
      if (adminAddress.ok && adminAddress.address && this.metrics && this.board) {
        this.admin = await AdminHttp.start(this, {
          address: adminAddress.address,
          token: this.config.adminToken,
          loopbackIsAdmin: this.config.loopbackIsAdmin,
          metrics: this.metrics,
          board: this.board,
        });
      }
    } catch (error) {
      // A start that fails (a port taken) gives back what it took: the store's lock, the UDP port.
      if (this.control?.listening) this.control.close();
      this.metrics?.close();
      this.board?.close();
      await this.data?.close();
      this.tickets.close();
      // The start's own failure is the one to report; the store has written nothing yet.
      await this.store.close().catch(() => {});
      throw error;
    }
    this.events.emit({
      type: "ready",
      host: this.config.host,
      controlPort: this.controlPort,
      dataPort: this.dataPort,
      admin: this.admin?.address ?? null,
    });
    return this;
  }

  /** The settings in force (reconfigure() changes the reloadable ones). */
  get config(): Readonly<ServerConfig> {
    return this.current;
  }

  /**
   * Applies a new set of settings to the running server (SIGHUP's re-read of the config file):
   * `next` is the whole set, as given to the constructor (a setting absent takes its default).
   * The settings marked `reload` in src/config/settings.ts change now or for new sessions; any
   * other that differs keeps its value until a restart and is listed in needsRestart. Each
   * change is logged. Bad settings throw a ConfigError and change nothing.
   */
  reconfigure(next: Partial<ServerConfig>, sources: SettingSources = {}): ReconfigureResult {
    const wanted = resolveServerConfig(next, sources);
    const result: ReconfigureResult = { applied: [], needsRestart: [] };
    const merged: Record<string, unknown> = { ...this.current };
    for (const key of Object.keys(SERVER_SETTINGS) as Array<keyof ServerConfig>) {
      if (sameValue(this.current[key], wanted[key])) continue;
      const setting: Setting = SERVER_SETTINGS[key];
      const shown = (value: unknown) => (setting.secret ? "(hidden)" : shownValue(value));
      const change: SettingChange = {
        key,
        flag: longFlagOf(key, SERVER_SETTINGS[key])!,
        from: shown(this.current[key]),
        to: shown(wanted[key]),
      };
      if (setting.reload === undefined) {
        result.needsRestart.push(change);
        continue;
      }
      merged[key] = wanted[key];
      result.applied.push({ ...change, reload: setting.reload });
    }
    // The settings that will run together (new limits beside restart-bound ones) must agree too.
    const config = resolveServerConfig(merged as Partial<ServerConfig>);
    const guard = new OutboundGuard({ allowPrivate: config.allowPrivate, allow: [...config.allow] });
    this.current = config;
    for (const change of result.applied) this.apply(change.key as ReloadableKey, guard);
    for (const { flag, from, to, reload } of result.applied) {
      this.notice("info")(
        `reload: ${flag} ${from} → ${to} (${reload === "now" ? "applied" : "applied to new sessions"})`,
      );
    }
    for (const { flag, from, to } of result.needsRestart) {
      this.notice("info")(`reload: ${flag} ${from} → ${to} needs a restart (still ${from})`);
    }
    if (result.applied.length + result.needsRestart.length === 0) this.notice("info")("reload: no setting changed");
    return result;
  }

  /**
   * Takes a reloaded setting to the part that holds it (this.current already has its value).
   * The switch is exhaustive over the reloadable settings: marking one `reload` in the table
   * without saying here how it applies does not compile.
   */
  private apply(key: ReloadableKey, guard: OutboundGuard): void {
    const config = this.current;
    switch (key) {
      // The log is the program's, not the server's: `headwire server` sets its level from reconfigure()'s result.
      case "logLevel":
        break;
      // Read from this.current where they are used: at each new connection, each new session, the shutdown.
      case "maxSessionsPerAddress":
      case "shutdownGraceMs":
      case "loopbackIsAdmin":
      case "maxQueuedQueriesPerSession":
      case "idleTimeoutMs":
      case "linesPerSecondPerSession":
      case "badLineBurst":
      case "badLinesPerSecond":
      case "maxLineBytes":
        return;
      case "maxSessions":
        this.maxSessions = sessionCeiling(config.maxSessions, openFilesLimit(), config.originIdleConnections);
        return;
      case "connectionsPerSecondPerAddress":
      case "connectionBurstPerAddress":
        this.connectionRate.setRate(config.connectionsPerSecondPerAddress, config.connectionBurstPerAddress);
        return;
      case "queriesPerSecondPerAddress":
      case "queryBurstPerAddress":
      case "adminToken":
      case "retransmitBudget":
        this.handler.reconfigure({
          queriesPerSecondPerAddress: config.queriesPerSecondPerAddress,
          queryBurstPerAddress: config.queryBurstPerAddress,
          adminToken: config.adminToken,
          retransmitBudget: config.retransmitBudget,
        });
        return;
      case "maxTicketsPerSession":
      case "maxTicketBytes":
        this.tickets.reconfigure({
          maxTicketsPerSession: config.maxTicketsPerSession,
          maxTicketBytes: config.maxTicketBytes,
        });
        return;
      case "maxReplyBytes":
        this.replyBytes.max = config.maxReplyBytes;
        return;
      case "originConcurrentFetches":
      case "originFetchesPerSecond":
      case "originFetchBurst":
        this.originGate.reconfigure({
          concurrentFetches: config.originConcurrentFetches,
          fetchesPerSecond: config.originFetchesPerSecond,
          fetchBurst: config.originFetchBurst,
        });
        return;
      case "originIdleConnections":
        this.maxSessions = sessionCeiling(config.maxSessions, openFilesLimit(), config.originIdleConnections);
        this.originPool.reconfigure(originPoolOptions(config));
        return;
      case "originKeepAliveMs":
      case "originIdleConnectionsPerAddress":
      case "originDrainMaxBytes":
        this.originPool.reconfigure(originPoolOptions(config));
        return;
      case "connectTimeoutMs":
      case "headerTimeoutMs":
      case "allowPrivate":
      case "allow":
        this.fetcher?.reconfigure({
          connectTimeoutMs: config.connectTimeoutMs,
          headerTimeoutMs: config.headerTimeoutMs,
          guard,
        });
        return;
      case "defaultTtlMs":
      case "maxStaleMs":
        this.freshness.reconfigure({ defaultTtlMs: config.defaultTtlMs, maxStaleMs: config.maxStaleMs });
        return;
      case "negativeTtlMs":
      case "fillLockMs":
      case "negativeCacheEntries":
        this.service.reconfigure({
          negativeTtlMs: config.negativeTtlMs,
          fillLockMs: config.fillLockMs,
          maxRememberedFailures: config.negativeCacheEntries,
        });
        return;
      default: {
        const unhandled: never = key;
        throw new Error(`no way to apply the reloaded setting ${String(unhandled)}`);
      }
    }
  }

  get controlPort(): number {
    const address = this.control?.address();
    return typeof address === "object" && address ? address.port : 0;
  }

  get dataPort(): number {
    return this.data?.port ?? 0;
  }

  /** The admin listener's bound port; 0 when it is off. */
  get adminPort(): number {
    return this.admin?.port ?? 0;
  }

  get sessionCount(): number {
    return this.sessions.size;
  }

  stats(): ServerStats {
    return {
      sessions: this.sessions.size,
      tickets: this.tickets.size,
      ticketBytes: this.tickets.bytes,
      originFetches: this.service.originFetches,
      originConnections: this.originPool.stats,
      data: this.data
        ? { ...this.data.stats, credited: { ...this.data.stats.credited }, dropped: { ...this.data.stats.dropped } }
        : undefined,
      replyBytes: this.replyBytes.used,
      limitHits: sumCounts(this.limitHits, this.handler.limitHits),
      tcpDeliveries: this.handler.tcpDeliveries,
      coalescedWaits: this.service.coalescedWaits,
      budgetBytesSpent: this.tickets.budgetBytesSpent,
    };
  }

  /** The cache store's kind, entries and bytes (counted in Redis for a fleet's shared store). */
  cacheStats(): Promise<CacheStoreStats> {
    return this.store.stats();
  }

  /**
   * Whether this server should be sent traffic (Kubernetes readinessProbe): its listeners bound,
   * the cache loaded, Redis reachable when the cache is there; not while stopping.
   */
  async readiness(): Promise<Readiness> {
    const reasons: string[] = [];
    if (this.stopping) reasons.push("stopping");
    if (!this.control?.listening) reasons.push("control listener not bound");
    if (!this.data) reasons.push("data listener not bound");
    if (!this.cacheLoaded) reasons.push("cache not loaded");
    if (this.store.ping) {
      try {
        await this.store.ping();
      } catch (error) {
        reasons.push(`cache store unreachable: ${(error as Error).message}`);
      }
    }
    return { ready: reasons.length === 0, reasons };
  }

  /** Whether the store answers now: a Redis PING (bounded by redisCommandTimeoutMs); true for a local store. */
  async storeReachable(): Promise<boolean> {
    if (!this.store.ping) return true;
    return this.store.ping().then(
      () => true,
      () => false,
    );
  }

  /** Every cache entry, for /cache and `headwire cache list`: most recently stored first. */
  async cacheEntries(): Promise<CacheEntryView[]> {
    const now = this.now();
    const entries = await this.store.list();
    return entries
      .sort((a, b) => b.storedAtMs - a.storedAtMs)
      .map((entry) => {
        const freshUntilMs = this.freshness.freshUntilMs(entry);
        return {
          key: entry.key,
          status: entry.status,
          bytes: entry.header.length,
          storedAt: new Date(entry.storedAtMs).toISOString(),
          freshUntil: new Date(freshUntilMs).toISOString(),
          fresh: now < freshUntilMs,
        };
      });
  }

  /** What the status page shows at load (then kept up to date by its event stream). */
  async statusSnapshot(): Promise<unknown> {
    const now = Date.now();
    const cache = await this.store.stats().catch(() => undefined);
    const entries = await this.cacheEntries().catch(() => []);
    const outcomes = this.board?.outcomes ?? {};
    const answered = Object.values(outcomes).reduce((sum, n) => sum + n, 0);
    return {
      version: VERSION,
      startedAt: new Date(this.startedAtMs).toISOString(),
      controlPort: this.controlPort,
      dataPort: this.dataPort,
      sessions: this.sessionContexts().map((context) => ({
        id: context.id,
        address: context.peerAddress,
        port: context.peerPort,
        ageMs: now - context.startedAtMs,
        queries: context.queries,
        errors: context.errors,
        lastOutcome: context.lastOutcome,
      })),
      cache: {
        kind: cache?.kind ?? this.store.kind,
        entries: cache?.entries ?? null,
        bytes: cache?.bytes ?? null,
        outcomes,
        hitRatio: answered === 0 ? null : (outcomes.HIT ?? 0) / answered,
        recent: entries.slice(0, 20),
      },
      queries: this.board?.queries.toArray().reverse() ?? [],
      problems: this.board?.problems.toArray().reverse() ?? [],
      watching: this.board?.watching ?? 0,
    };
  }

  /** Makes the cache's changes durable now (SIGHUP); rejects when they could not be written. */
  flushCache(): Promise<void> {
    return this.store.flush();
  }

  /** Drops one URL's entries (every query option variant), or every entry; returns how many. */
  purge(url: string | undefined): Promise<number> {
    return purge(this.store, url);
  }

  private accept(socket: Socket): void {
    const address = canonicalAddress(socket.remoteAddress ?? "");
    const refusal = this.refusal(address);
    if (refusal) {
      this.limitHits[refusal.error.code] = (this.limitHits[refusal.error.code] ?? 0) + 1;
      if (refusal.limit && this.events.active) {
        this.events.emit({ type: "limit", limit: refusal.limit, code: refusal.error.code, address, sessionId: null });
      }
      socket.on("error", () => socket.destroy());
      closeAfter(socket, formatError(refusal.error));
      return;
    }
    this.sessionsByAddress.set(address, (this.sessionsByAddress.get(address) ?? 0) + 1);
    socket.once("close", () => {
      const left = (this.sessionsByAddress.get(address) ?? 1) - 1;
      if (left > 0) this.sessionsByAddress.set(address, left);
      else this.sessionsByAddress.delete(address);
    });
    const id = this.nextSessionId++;
    const session = new ControlSession(
      socket,
      id,
      `headwire/${VERSION}`,
      {
        loopbackIsAdmin: this.config.loopbackIsAdmin,
        maxLineBytes: this.config.maxLineBytes,
        idleTimeoutMs: this.config.idleTimeoutMs,
        maxQueuedQueries: this.config.maxQueuedQueriesPerSession,
        linesPerSecond: this.config.linesPerSecondPerSession,
        badLineBurst: this.config.badLineBurst,
        badLinesPerSecond: this.config.badLinesPerSecond,
        replyBytes: this.replyBytes,
        now: this.now,
        events: this.events,
      },
      this.handler,
    );
    this.sessions.set(id, session);
    const { context } = session;
    if (this.events.active) {
      this.events.emit({ type: "session-start", sessionId: id, address, port: context.peerPort });
    }
    socket.once("close", () => {
      this.sessions.delete(id);
      if (!this.events.active) return;
      this.events.emit({
        type: "session-end",
        sessionId: id,
        address,
        port: context.peerPort,
        queries: context.queries,
        errors: context.errors,
        ms: Date.now() - context.startedAtMs,
      });
    });
  }

  /** The open sessions' contexts (address, age, counts), for the status page. */
  sessionContexts(): SessionContext[] {
    return [...this.sessions.values()].map((session) => session.context);
  }

  /** A log function for a part: its messages become notice events at `level`. */
  private notice(level: NoticeEvent["level"]): ServerLog {
    return (msg) => this.events.emit({ type: "notice", level, msg });
  }

  /** Why a new connection from `address` is refused, if it is, and the limit's setting (none for a stop). */
  private refusal(
    address: string,
  ): { error: HeadwireError<"SHUTTING_DOWN" | "SERVER_BUSY" | "SESSION_LIMIT">; limit?: string } | undefined {
    if (this.stopping) return { error: new HeadwireError("SHUTTING_DOWN") };
    if (this.sessions.size >= this.maxSessions)
      return { error: new HeadwireError("SERVER_BUSY"), limit: "maxSessions" };
    // A client closed for its bad lines (TOO_MANY_ERRORS) must not simply reconnect at once, for ever.
    if (!this.connectionRate.take(address)) {
      const message = `more than ${this.config.connectionsPerSecondPerAddress} new sessions a second from ${address}; retry later`;
      return { error: new HeadwireError("SESSION_LIMIT", message), limit: "connectionsPerSecondPerAddress" };
    }
    if ((this.sessionsByAddress.get(address) ?? 0) >= this.config.maxSessionsPerAddress) {
      const message = `${this.config.maxSessionsPerAddress} sessions from ${address} already; close one or retry later`;
      return { error: new HeadwireError("SESSION_LIMIT", message), limit: "maxSessionsPerAddress" };
    }
    return undefined;
  }

  /**
   * Stops accepting, lets in-flight queries finish and their headers be collected (bounded by
   * shutdownGraceMs), closes the sessions, persists the cache and closes the listeners. Rejects
   * when the cache could not be persisted (everything is closed and released all the same).
   */
  stop(): Promise<void> {
    this.stopping ??= this.shutdown();
    return this.stopping;
  }

  private async shutdown(): Promise<void> {
    this.control?.close();
    const deadline = Date.now() + this.config.shutdownGraceMs;
    const sessionsDrained = (): Promise<unknown> =>
      Promise.race([
        Promise.all([...this.sessions.values()].map((session) => session.drained())),
        delay(Math.max(0, deadline - Date.now())),
      ]);
    await sessionsDrained();
    await this.tickets.deliveriesSettled(Math.max(0, deadline - Date.now()));
    for (const session of this.sessions.values()) session.end(new HeadwireError("SHUTTING_DOWN"));
    await sessionsDrained();
    for (const session of this.sessions.values()) session.destroy();
    // The store is closed (its lock released) whatever becomes of its last write; a write that
    // failed makes stop() reject once everything else is closed too, so the caller exits non-zero.
    const cache = await this.store.close().then(
      (said) => ({ said, failure: undefined }),
      (failure: unknown) => ({ said: undefined, failure }),
    );
    this.tickets.close();
    this.originPool.close();
    await this.data?.close();
    await new Promise<void>((resolve) => (this.control ? this.control.close(() => resolve()) : resolve()));
    await this.admin?.close();
    this.metrics?.close();
    this.board?.close();
    if (cache.failure !== undefined) {
      const reason = cache.failure instanceof Error ? cache.failure.message : String(cache.failure);
      this.events.emit({ type: "stop", cache: reason, persisted: false });
      throw cache.failure;
    }
    this.events.emit({ type: "stop", cache: cache.said ?? "", persisted: true });
  }
}

/** Lists and strings compare by their contents. */
function sameValue(a: unknown, b: unknown): boolean {
  return Array.isArray(a) && Array.isArray(b) ? a.length === b.length && a.every((item, i) => item === b[i]) : a === b;
}

/** A value as a reload's log line shows it: numbers and switches as they are, text and lists as JSON. */
function shownValue(value: unknown): string {
  return typeof value === "string" || Array.isArray(value) ? JSON.stringify(value) : String(value);
}

/** The real origin fetcher: DNS, the outbound guard, TCP/TLS. Its CA file is read here, at construction. */
function originFetcher(config: ServerConfig, gate: OriginGate, pool: OriginPool): OriginFetcher {
  let ca: string | undefined;
  if (config.caFile) {
    try {
      ca = readFileSync(config.caFile, "utf8");
    } catch (error) {
      throw new ConfigError(`--ca-file ${config.caFile} cannot be read: ${(error as Error).message}`);
    }
  }
  return new OriginFetcher({
    connectTimeoutMs: config.connectTimeoutMs,
    headerTimeoutMs: config.headerTimeoutMs,
    maxHeaderBytes: config.maxHeaderBytes,
    userAgent: `headwire/${VERSION}`,
    guard: new OutboundGuard({ allowPrivate: config.allowPrivate, allow: [...config.allow] }),
    insecureTls: config.insecureTls,
    gate,
    pool,
    // --ca-file adds to the system's trusted CAs; it does not replace them.
    ...(ca ? { ca: [...tls.rootCertificates, ca].join("\n") } : {}),
  });
}

function originPoolOptions(config: ServerConfig): OriginPoolOptions {
  return {
    idleMs: config.originKeepAliveMs,
    maxIdle: config.originIdleConnections,
    maxIdlePerKey: config.originIdleConnectionsPerAddress,
    maxDrainBytes: config.originDrainMaxBytes,
  };
}

function sumCounts(a: Record<string, number>, b: Record<string, number>): Record<string, number> {
  const sum = { ...a };
  for (const [key, count] of Object.entries(b)) sum[key] = (sum[key] ?? 0) + count;
  return sum;
}

function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms).unref());
}
