/**
 * The composition root of the server: wires the control listener (TCP), the data listener (UDP),
 * tickets, the cache with its file, and the origin fetcher; owns start-up and shutdown.
 */
import { createHash, timingSafeEqual } from "node:crypto";
import tls from "node:tls";
import { LRUCache } from "lru-cache";
import { once } from "node:events";
import { createServer, type Server, type Socket } from "node:net";
import { readFile } from "node:fs/promises";
import { CacheFile } from "../cache/cache-file.js";
import type { CacheStore } from "../cache/cache-store.js";
import { Freshness } from "../cache/freshness.js";
import { MemoryCacheStore } from "../cache/memory-cache-store.js";
import { RedisCacheStore } from "../cache/redis-cache-store.js";
import { resolveServerConfig, type ServerConfig } from "../config.js";
import { HeadwireError, toWireError } from "../errors.js";
import { OriginFetcher } from "../fetch/origin-fetcher.js";
import { OutboundGuard } from "../fetch/outbound-guard.js";
import { formatError, formatTicket, type QueryOptions } from "../protocol/control.js";
import { CHUNK_OVERHEAD_BYTES, chunkCount, chunkPayloadBytes } from "../protocol/datagram.js";
import { parseTarget, type FetchTarget } from "../url/target.js";
import { VERSION } from "../version.js";
import { ControlSession, type SessionContext, type SessionHandler } from "./control-session.js";
import { DataServer } from "./data-server.js";
import { cacheKeyVariants, HeaderService, type HeaderFetcher } from "./header-service.js";
import { TicketRegistry } from "./ticket-registry.js";

export interface ServerLog {
  (message: string): void;
}

/** The settings (src/config/settings.ts), and the parts injected rather than configured. */
export interface HeadwireServerOptions extends Partial<ServerConfig> {
  log?: ServerLog;
  /** Replaces the origin fetcher (a benchmark's floor, say). */
  fetcher?: HeaderFetcher;
  /** The clock tickets expire by (tests move it); Date.now by default. */
  now?: () => number;
}

export class HeadwireServer {
  readonly config: ServerConfig;
  readonly service: HeaderService;
  /** The store queries use: memory (persisted to cacheFile) or Redis. */
  readonly cache: CacheStore;
  /** The in-memory store and its file, when the cache is not in Redis. */
  readonly store: MemoryCacheStore;
  readonly cacheFile: CacheFile;
  private readonly redis: RedisCacheStore | undefined;
  private readonly tickets: TicketRegistry;
  private readonly sessions = new Map<number, ControlSession>();
  private readonly log: ServerLog;
  private control: Server | undefined;
  private data: DataServer | undefined;
  private nextSessionId = 1;
  private stopping: Promise<void> | undefined;
  private fetcher: HeaderFetcher | undefined;
  private readonly now: () => number;

  constructor(options: HeadwireServerOptions = {}) {
    this.config = resolveServerConfig(options);
    this.now = options.now ?? Date.now;
    this.log = options.log ?? ((message) => process.stderr.write(`headwire server: ${message}\n`));
    this.store = new MemoryCacheStore({
      maxEntries: this.config.cacheMaxEntries,
      maxTotalBytes: this.config.cacheMaxBytes,
      onChange: () => this.cacheFile.schedule(),
    });
    this.cacheFile = new CacheFile(this.config.cacheFile, this.store, this.config.persistDelayMs, this.log);
    this.redis = this.config.cacheUrl
      ? new RedisCacheStore({ url: this.config.cacheUrl, commandTimeoutMs: this.config.redisCommandTimeoutMs })
      : undefined;
    this.cache = this.redis ?? this.store;
    this.tickets = new TicketRegistry({
      ticketTtlMs: this.config.ticketTtlMs,
      maxTicketsPerSession: this.config.maxTicketsPerSession,
      now: this.now,
    });
    this.fetcher = options.fetcher;
    this.targets = new LRUCache<string, FetchTarget>({
      max: this.config.urlMemoEntries,
      maxSize: this.config.urlMemoBytes,
      sizeCalculation: (target, input) => input.length + target.url.length,
    });
    this.service = new HeaderService({
      store: this.cache,
      fetcher: { fetch: (...args) => this.originFetcher().fetch(...args) },
      freshness: new Freshness({
        defaultTtlMs: this.config.defaultTtlMs,
        maxStaleMs: this.config.maxStaleMs,
        now: this.now,
      }),
      maxEntryBytes: this.config.cacheMaxEntryBytes,
      negativeTtlMs: this.config.negativeTtlMs,
      fillLockMs: this.config.fillLockMs,
      maxRememberedFailures: this.config.negativeCacheEntries,
      now: this.now,
      log: this.log,
    });
  }

  private originFetcher(): HeaderFetcher {
    if (!this.fetcher) throw new Error("server not started");
    return this.fetcher;
  }

  async start(): Promise<this> {
    const ca = this.config.caFile ? await readFile(this.config.caFile, "utf8") : undefined;
    this.fetcher ??= new OriginFetcher({
      connectTimeoutMs: this.config.connectTimeoutMs,
      headerTimeoutMs: this.config.headerTimeoutMs,
      maxHeaderBytes: this.config.maxHeaderBytes,
      userAgent: `headwire/${VERSION}`,
      guard: new OutboundGuard({ allowPrivate: this.config.allowPrivate, allow: this.config.allow }),
      insecureTls: this.config.insecureTls,
      // --ca-file adds to the system's trusted CAs; it does not replace them.
      ...(ca ? { ca: [...tls.rootCertificates, ca].join("\n") } : {}),
    });
    if (this.redis) {
      const connected = await this.redis.connect();
      this.log(
        `cache ${this.config.cacheUrl}: ${connected ? "connected" : "unreachable; fetching directly until it answers"}`,
      );
    } else {
      await this.cacheFile.acquire();
      const loaded = await this.cacheFile.load();
      this.log(`cache ${this.config.cacheFile}: ${loaded.entries} entries loaded`);
    }
    this.data = await DataServer.start(this.tickets, {
      host: this.config.host,
      port: this.config.dataPort,
      maxDatagramBytes: this.config.maxDatagramBytes,
      receiveBufferBytes: this.config.dataReceiveBufferBytes,
      maxChunksPerRequest: MAX_CHUNKS_PER_REQUEST,
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
    this.log(`listening: control tcp ${this.config.host} port ${this.controlPort}, data udp port ${this.dataPort}`);
    return this;
  }

  get controlPort(): number {
    const address = this.control?.address();
    return typeof address === "object" && address ? address.port : 0;
  }

  get dataPort(): number {
    return this.data?.port ?? 0;
  }

  get dataStats() {
    return this.data?.stats;
  }

  get sessionCount(): number {
    return this.sessions.size;
  }

  /** Drops one URL's entries (every query option variant), or every entry; returns how many. */
  async purge(url: string | undefined): Promise<number> {
    if (url === undefined) return this.cache.clear();
    let count = 0;
    for (const key of cacheKeyVariants(parseTarget(url))) if (await this.cache.delete(key)) count++;
    return count;
  }

  private accept(socket: Socket): void {
    if (this.stopping || this.sessions.size >= this.config.maxSessions) {
      const code = this.stopping ? "SHUTTING_DOWN" : "SERVER_BUSY";
      socket.on("error", () => socket.destroy());
      socket.end(formatError(new HeadwireError(code)));
      return;
    }
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
      },
      this.handler,
    );
    this.sessions.set(id, session);
  }

  private readonly handler: SessionHandler = {
    query: (url, options, session) => this.query(url, options, session),
    authorize: (token) => this.authorize(token),
    purge: (url) => this.purge(url),
    terminated: () => (this.redis ? Promise.resolve() : this.cacheFile.flush()),
    closed: (session) => {
      this.sessions.delete(session.id);
      this.tickets.revokeSession(session.id);
    },
  };

  private async query(url: string, options: QueryOptions, session: SessionContext): Promise<string> {
    try {
      const target = this.parseTargetMemo(url);
      const { entry, cache, storeUnavailable } = await this.service.answer(target, options);
      // The session closed while the origin answered: no ticket for nobody (its tickets are revoked).
      if (!this.sessions.has(session.id)) return "";
      const payloadBytes = chunkPayloadBytes(this.config.maxDatagramBytes);
      const chunks = chunkCount(entry.header.length, payloadBytes);
      const ticket = this.tickets.issue({
        header: entry.header,
        peerAddress: session.peerAddress,
        sessionId: session.id,
        chunkPayloadBytes: payloadBytes,
        chunkCount: chunks,
        budgetBytes: deliveryBudgetBytes(entry.header.length, chunks, this.config.retransmitBudget),
      });
      return formatTicket({
        token: ticket.token,
        udpHost: this.config.advertiseHost || session.localAddress,
        udpPort: this.dataPort,
        bytes: entry.header.length,
        chunks,
        cache,
        status: entry.status,
        sha256: headerDigest(entry.header),
        storeUnavailable,
        ttlMs: this.config.ticketTtlMs,
      });
    } catch (error) {
      return formatError(toWireError(error, "ORIGIN_ERROR"));
    }
  }

  /**
   * Stops accepting, lets in-flight queries finish and their headers be collected (bounded by
   * shutdownGraceMs), closes the sessions, persists the cache and closes the listeners.
   */
  stop(): Promise<void> {
    this.stopping ??= this.shutdown();
    return this.stopping;
  }

  private async shutdown(): Promise<void> {
    this.control?.close();
    const deadline = Date.now() + this.config.shutdownGraceMs;
    await Promise.race([
      Promise.all([...this.sessions.values()].map((session) => session.drained())),
      delay(this.config.shutdownGraceMs),
    ]);
    while (this.tickets.pendingDeliveries() > 0 && Date.now() < deadline) await delay(20);
    for (const session of this.sessions.values()) session.end(new HeadwireError("SHUTTING_DOWN"));
    await Promise.race([
      Promise.all([...this.sessions.values()].map((session) => session.drained())),
      delay(Math.max(0, deadline - Date.now())),
    ]);
    for (const session of this.sessions.values()) session.destroy();
    if (this.redis) await this.redis.close();
    else {
      await this.cacheFile.flush();
      await this.cacheFile.release();
    }
    this.tickets.close();
    await this.data?.close();
    await new Promise<void>((resolve) => (this.control ? this.control.close(() => resolve()) : resolve()));
    this.log(
      this.redis ? "stopped" : `stopped; cache persisted to ${this.config.cacheFile} (${this.store.size} entries)`,
    );
  }

  /**
   * Parsing a URL costs more than the rest of a cached lookup: recent inputs are remembered,
   * bounded by count and by their length, so long URLs cannot make the memo large.
   */
  private readonly targets: LRUCache<string, FetchTarget>;
  private parseTargetMemo(url: string): FetchTarget {
    let target = this.targets.get(url);
    if (!target) this.targets.set(url, (target = parseTarget(url)));
    return target;
  }

  private authorize(token: string): boolean {
    return this.config.adminToken !== "" && sameToken(token, this.config.adminToken);
  }
}

/** Chunks one UDP request may ask for (docs/protocol.md, "Budget and amplification"). */
export const MAX_CHUNKS_PER_REQUEST = 64;

/** Constant-time comparison, so the admin token cannot be guessed byte by byte from timings. */
function sameToken(given: string, expected: string): boolean {
  const a = createHash("sha256").update(given).digest();
  const b = createHash("sha256").update(expected).digest();
  return timingSafeEqual(a, b);
}

/**
 * The most UDP bytes one ticket may cause: `budget` full deliveries. docs/protocol.md derives the
 * worst-case amplification factor from this.
 */
export function deliveryBudgetBytes(headerBytes: number, chunks: number, budget: number): number {
  return budget * (headerBytes + chunks * CHUNK_OVERHEAD_BYTES);
}

function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms).unref());
}

/** SHA-256 of a header, computed once per cached header buffer (entries are immutable). */
const digests = new WeakMap<Buffer, Buffer>();
function headerDigest(header: Buffer): Buffer {
  let digest = digests.get(header);
  if (!digest) digests.set(header, (digest = createHash("sha256").update(header).digest()));
  return digest;
}
