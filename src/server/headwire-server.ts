/**
 * The composition root of the server: wires the control listener (TCP), the data listener (UDP),
 * tickets, the cache with its file, and the origin fetcher; owns start-up and shutdown.
 */
import { createHash } from "node:crypto";
import { once } from "node:events";
import { createServer, type Server, type Socket } from "node:net";
import { readFile } from "node:fs/promises";
import { CacheFile } from "../cache/cache-file.js";
import { MemoryCacheStore } from "../cache/memory-cache-store.js";
import { resolveServerConfig, type ServerConfig } from "../config.js";
import { HeadwireError, toHeadwireError } from "../errors.js";
import { OriginFetcher } from "../fetch/origin-fetcher.js";
import { OutboundGuard } from "../fetch/outbound-guard.js";
import { formatError, formatTicket, type QueryOptions } from "../protocol/control.js";
import { CHUNK_OVERHEAD_BYTES, chunkCount, chunkPayloadBytes } from "../protocol/datagram.js";
import { parseTarget } from "../url/target.js";
import { VERSION } from "../version.js";
import { ControlSession, type SessionContext, type SessionHandler } from "./control-session.js";
import { DataServer } from "./data-server.js";
import { HeaderService, type HeaderFetcher } from "./header-service.js";
import { TicketRegistry } from "./ticket-registry.js";

export interface ServerLog {
  (message: string): void;
}

export interface HeadwireServerOptions extends Partial<ServerConfig> {
  /** Outbound guard: allow loopback and private origins (tests, demo, private deployments). */
  allowPrivate?: boolean;
  /** Outbound guard: CIDR ranges to allow on top of public addresses. */
  allow?: string[];
  /** Skip TLS certificate verification towards origins. */
  insecureTls?: boolean;
  /** PEM file of extra certificate authorities trusted for origins. */
  caFile?: string;
  log?: ServerLog;
  /** Replaces the origin fetcher (a benchmark's floor, say). */
  fetcher?: HeaderFetcher;
  /** The clock tickets expire by (tests move it); Date.now by default. */
  now?: () => number;
}

export class HeadwireServer {
  readonly config: ServerConfig;
  readonly service: HeaderService;
  readonly store: MemoryCacheStore;
  readonly cacheFile: CacheFile;
  private readonly tickets: TicketRegistry;
  private readonly sessions = new Map<number, ControlSession>();
  private readonly log: ServerLog;
  private control: Server | undefined;
  private data: DataServer | undefined;
  private nextSessionId = 1;
  private inFlightQueries = 0;
  private stopping: Promise<void> | undefined;
  private readonly fetcher: HeaderFetcher | undefined;
  private readonly options: HeadwireServerOptions;

  constructor(options: HeadwireServerOptions = {}) {
    this.options = options;
    this.config = resolveServerConfig(options);
    this.log = options.log ?? ((message) => process.stderr.write(`headwire server: ${message}\n`));
    this.store = new MemoryCacheStore({ maxEntries: this.config.cacheMaxEntries });
    this.cacheFile = new CacheFile(this.config.cacheFile, this.store, this.config.persistDelayMs, this.log);
    this.store.onChange = () => this.cacheFile.schedule();
    this.tickets = new TicketRegistry({
      ticketTtlMs: this.config.ticketTtlMs,
      ...(options.now ? { now: options.now } : {}),
    });
    this.fetcher = options.fetcher;
    this.service = new HeaderService(this.store, {
      fetch: (target, queryOptions) => this.originFetcher().fetch(target, queryOptions),
    });
  }

  private fetcherInstance: HeaderFetcher | undefined;
  private originFetcher(): HeaderFetcher {
    if (!this.fetcherInstance) throw new Error("server not started");
    return this.fetcherInstance;
  }

  async start(): Promise<this> {
    const ca = this.options.caFile ? await readFile(this.options.caFile) : undefined;
    this.fetcherInstance =
      this.fetcher ??
      new OriginFetcher({
        connectTimeoutMs: this.config.connectTimeoutMs,
        headerTimeoutMs: this.config.headerTimeoutMs,
        maxHeaderBytes: this.config.maxHeaderBytes,
        userAgent: `headwire/${VERSION}`,
        guard: new OutboundGuard({ allowPrivate: this.options.allowPrivate ?? false, allow: this.options.allow ?? [] }),
        insecureTls: this.options.insecureTls ?? false,
        ...(ca ? { ca } : {}),
      });
    const loaded = await this.cacheFile.load();
    this.log(`cache ${this.config.cacheFile}: ${loaded.entries} entries loaded`);
    this.data = await DataServer.start(this.tickets, {
      host: this.config.host,
      port: this.config.dataPort,
      maxDatagramBytes: this.config.maxDatagramBytes,
      maxChunksPerRequest: 64,
    });
    this.control = createServer((socket) => this.accept(socket));
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
    terminated: () => this.cacheFile.flush(),
    closed: (session) => {
      this.sessions.delete(session.id);
      this.tickets.revokeSession(session.id);
    },
  };

  private async query(url: string, options: QueryOptions, session: SessionContext): Promise<string> {
    this.inFlightQueries++;
    try {
      const target = parseTarget(url);
      const { entry, cache } = await this.service.answer(target, options);
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
        sha256: createHash("sha256").update(entry.header).digest(),
      });
    } catch (error) {
      return formatError(toHeadwireError(error, "ORIGIN_ERROR"));
    } finally {
      this.inFlightQueries--;
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
    await this.cacheFile.flush();
    this.tickets.close();
    await this.data?.close();
    await new Promise<void>((resolve) => (this.control ? this.control.close(() => resolve()) : resolve()));
    this.log(`stopped; cache persisted to ${this.config.cacheFile} (${this.store.size} entries)`);
  }

  /** Queries being answered right now. */
  get busyQueries(): number {
    return this.inFlightQueries;
  }
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
