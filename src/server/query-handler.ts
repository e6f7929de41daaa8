/**
 * The query path: what the server does with each request a control session reads. A URL becomes
 * a target (memoized), the header service answers it (cache or origin), a delivery ticket is
 * issued for the session's address, and the TICKET line says where and how to collect it. Also
 * the session's admin requests (AUTH, PURGE) and its end (TERMINATE persists the cache).
 */
import { createHash } from "node:crypto";
import { LRUCache } from "lru-cache";
import type { CacheEntry, CacheStore } from "../cache/cache-store.js";
import { purge } from "../cache/purge.js";
import { parseAdvertise, type AdvertisedAddress } from "../config/advertise.js";
import { ConfigError, HeadwireError, toWireError } from "../errors.js";
import type { QueryOptions } from "../http/query-options.js";
import {
  formatError,
  formatTcpTicket,
  formatTicketFrom,
  ticketTail,
  ticketUdpField,
  type CacheOutcome,
  type Delivery,
} from "../protocol/control.js";
import { chunkCount, chunkPayloadBytes, deliveryBudgetBytes } from "../protocol/datagram.js";
import { parseTarget, type FetchTarget } from "../url/target.js";
import type { SessionContext, SessionHandler, SessionReply } from "./control-session.js";
import { sameToken } from "./admin-token.js";
import type { HeaderService } from "./header-service.js";
import type { QueryEvent, ServerEvents } from "./server-events.js";
import type { TicketRegistry } from "./ticket-registry.js";
import { KeyedTokenBuckets } from "../limits/token-bucket.js";
import { SERVER_SETTINGS } from "../config/settings.js";
import { QueryPolicy, queryPolicyOptions, type QueryPolicyOptions, type QueryPolicySettings } from "./query-policy.js";

export interface QueryHandlerOptions {
  service: HeaderService;
  tickets: TicketRegistry;
  store: CacheStore;
  /** Largest UDP payload: fixes the chunk size a ticket announces. */
  maxDatagramBytes: number;
  /** Full deliveries one ticket may cost (the byte budget). */
  retransmitBudget: number;
  ticketTtlMs: number;
  /** Where clients send UDP, HOST or HOST:PORT (src/config/advertise.ts); "" means the address the session reached. */
  advertiseHost: string;
  /** The bound UDP port, known once the data listener is up. */
  dataPort: () => number;
  adminToken: string;
  /** URL memo bounds: inputs remembered, and their characters in all. */
  urlMemoEntries: number;
  urlMemoBytes: number;
  /** Per client address, all its sessions together: the token bucket's rate (0: no limit) and burst. */
  queriesPerSecondPerAddress: number;
  queryBurstPerAddress: number;
  now: () => number;
  /** What a query may ask for (src/server/query-policy.ts); omitted: no insecure=1, default limits. */
  policy?: QueryPolicyOptions;
  /** Where queries, limit hits and internal errors are reported (src/server/server-events.ts). */
  events: ServerEvents;
}

export class QueryHandler implements SessionHandler {
  /**
   * Parsing a URL costs more than the rest of a cached lookup: recent inputs are remembered,
   * bounded by count and by their length, so long URLs cannot make the memo large.
   */
  private readonly targets: LRUCache<string, FetchTarget>;
  private readonly queryRate: KeyedTokenBuckets;
  private readonly policy: QueryPolicy;
  /** The advertised host and port, checked at start; null: the session's address and the bound port. */
  private readonly advertised: AdvertisedAddress | null;
  /** Queries refused by an abuse limit, by error code. */
  readonly limitHits: Record<string, number> = {};
  /** Headers answered on the control session (delivery=tcp) rather than ticketed for UDP. */
  tcpDeliveries = 0;
  /** TICKET lines' `udp=` fields by the host they name. */
  private readonly udpFields = new Map<string, string>();

  constructor(private options: QueryHandlerOptions) {
    this.targets = new LRUCache<string, FetchTarget>({
      max: options.urlMemoEntries,
      maxSize: options.urlMemoBytes,
      sizeCalculation: (target, input) => Math.max(1, input.length + target.url.length),
    });
    const advertised = parseAdvertise(options.advertiseHost);
    if (!advertised.ok) throw new ConfigError(`advertiseHost ${advertised.problem}`);
    this.advertised = advertised.address;
    this.queryRate = new KeyedTokenBuckets(
      options.queriesPerSecondPerAddress,
      options.queryBurstPerAddress,
      options.now,
    );
    this.policy = new QueryPolicy(options.policy ?? defaultPolicy(options.now));
  }

  /** New limits and admin token (a reloaded config), for the queries and AUTHs from now on. */
  reconfigure(
    part: Pick<
      QueryHandlerOptions,
      "queriesPerSecondPerAddress" | "queryBurstPerAddress" | "adminToken" | "retransmitBudget"
    >,
  ): void {
    this.options = { ...this.options, ...part };
    this.queryRate.setRate(part.queriesPerSecondPerAddress, part.queryBurstPerAddress);
  }

  query(
    url: string,
    options: QueryOptions,
    session: SessionContext,
    delivery: Delivery = "udp",
  ): Promise<SessionReply> {
    session.queries++;
    if (!this.options.events.active) return this.answer(url, options, session, delivery, undefined, 0);
    // The one object this query costs when someone listens: the answer fills it in, done() emits it.
    const event = queryEvent(session, url, delivery);
    return this.answer(url, options, session, delivery, event, performance.now());
  }

  /** The query's reply, reported first when someone listens (no promise of its own: this is the hot path). */
  private done(
    event: QueryEvent | undefined,
    started: number,
    session: SessionContext,
    reply: SessionReply,
  ): SessionReply {
    if (event) {
      event.ms = performance.now() - started;
      event.atMs = Date.now();
      if (event.failed) session.errors++;
      session.lastOutcome = event.outcome;
      this.options.events.emit(event);
    }
    return reply;
  }

  private async answer(
    url: string,
    options: QueryOptions,
    session: SessionContext,
    delivery: Delivery,
    event: QueryEvent | undefined,
    started: number,
  ): Promise<SessionReply> {
    // Checked before anything else is spent on the query: one address's rate, all its sessions together.
    if (!this.queryRate.take(session.peerAddress)) return this.rateLimited(event, started, session);
    const refused = this.policy.refusal(options, session.peerAddress);
    if (refused) {
      if (refused.limit) this.countLimitHit(refused.error.code, refused.limit, session);
      if (event) event.outcome = refused.error.code as QueryEvent["outcome"];
      return this.done(event, started, session, formatError(toWireError(refused.error, "BAD_REQUEST")));
    }
    try {
      const target = this.target(url);
      if (event) event.url = target.url;
      const { entry, cache, storeUnavailable, originMs } = await this.options.service.answer(target, options);
      if (event) {
        event.outcome = cache;
        event.failed = false;
        event.status = entry.status;
        event.bytes = entry.header.length;
        event.originMs = originMs ?? null;
      }
      // The session closed while the origin answered: no ticket for nobody (its tickets are revoked).
      if (!session.open) return this.done(event, started, session, "");
      if (delivery === "tcp") {
        return this.done(
          event,
          started,
          session,
          this.tcpDelivery(entry.header, entry.status, cache, storeUnavailable),
        );
      }
      return this.done(event, started, session, this.udpTicket(entry, cache, storeUnavailable, session));
    } catch (error) {
      return this.errorReply(error, event, started, session);
    }
  }

  /**
   * The hot path: a query answered without a promise when its header is fresh in this process's
   * memory (HeaderService.peekFresh), the same reply and the same events as query() gives it.
   * Undefined, with nothing counted or spent, for any other query: the caller then calls query().
   * Apart from query() and answer() so that their options can grow without touching it.
   */
  queryNow(url: string, options: QueryOptions, session: SessionContext, delivery: Delivery): SessionReply | undefined {
    if (delivery !== "udp") return undefined;
    // cache=refresh must reach the origin, and insecure=1 must meet the policy (query() checks it,
    // and takes a refresh token once: checking here too would take two).
    if (options.cache === "refresh" || options.insecure) return undefined;
    let target: FetchTarget;
    try {
      target = this.target(url);
    } catch {
      return undefined; // query() parses it again and answers the error
    }
    const entry = this.options.service.peekFresh(target, options);
    if (!entry) return undefined;
    session.queries++;
    const event = this.options.events.active ? this.hitEvent(session, target.url, entry, delivery) : undefined;
    const started = event ? performance.now() : 0;
    if (!this.queryRate.take(session.peerAddress)) {
      if (event) {
        // As query() reports a refusal: checked before the URL was read, so the URL as sent.
        event.url = url;
        event.failed = true;
        event.status = null;
        event.bytes = null;
      }
      return this.rateLimited(event, started, session);
    }
    try {
      return this.done(event, started, session, this.udpTicket(entry, "HIT", false, session));
    } catch (error) {
      return this.errorReply(error, event, started, session);
    }
  }

  /** query()'s event for a HIT, filled in as answer() fills it. */
  private hitEvent(session: SessionContext, url: string, entry: CacheEntry, delivery: Delivery): QueryEvent {
    const event = queryEvent(session, url, delivery);
    event.outcome = "HIT";
    event.failed = false;
    event.status = entry.status;
    event.bytes = entry.header.length;
    return event;
  }

  /**
   * A ticket for the session's address and its TICKET line. Throws SERVER_BUSY past
   * maxTicketBytes: checked here, once the header is known, not before the answer: a cached
   * header some ticket already holds costs nothing and is still served.
   */
  private udpTicket(
    entry: CacheEntry,
    cache: CacheOutcome,
    storeUnavailable: boolean,
    session: SessionContext,
  ): string {
    const { header } = entry;
    const shape = this.ticketShape(header);
    const ticket = this.options.tickets.issue({
      header,
      peerAddress: session.peerAddress,
      sessionId: session.id,
      chunkPayloadBytes: shape.payloadBytes,
      chunkCount: shape.chunks,
      budgetBytes: shape.budgetBytes,
    });
    const tail =
      cache === "HIT" && !storeUnavailable
        ? this.hitTail(entry, shape)
        : ticketTail({
            bytes: header.length,
            chunks: shape.chunks,
            cache,
            status: entry.status,
            sha256: headerDigest(header),
            storeUnavailable,
            ttlMs: this.options.ticketTtlMs,
          });
    return formatTicketFrom(ticket.tokenHex, this.udpField(session), tail);
  }

  /**
   * A cached header's chunking and budget, and its TICKET tail for a HIT, made once per header
   * Buffer (cached entries are immutable) and per setting they depend on; a store that returns
   * copies just misses the memo.
   */
  private ticketShape(header: Buffer): TicketShape {
    const { maxDatagramBytes, retransmitBudget, ticketTtlMs } = this.options;
    let shape = ticketShapes.get(header);
    if (
      !shape ||
      shape.maxDatagramBytes !== maxDatagramBytes ||
      shape.retransmitBudget !== retransmitBudget ||
      shape.ticketTtlMs !== ticketTtlMs
    ) {
      const payloadBytes = chunkPayloadBytes(maxDatagramBytes);
      const chunks = chunkCount(header.length, payloadBytes);
      shape = {
        maxDatagramBytes,
        retransmitBudget,
        ticketTtlMs,
        payloadBytes,
        chunks,
        budgetBytes: deliveryBudgetBytes(header.length, chunks, retransmitBudget),
        hitTail: undefined,
        hitStatus: 0,
      };
      ticketShapes.set(header, shape);
    }
    return shape;
  }

  private hitTail(entry: CacheEntry, shape: TicketShape): string {
    if (shape.hitTail === undefined || shape.hitStatus !== entry.status) {
      shape.hitStatus = entry.status;
      shape.hitTail = ticketTail({
        bytes: entry.header.length,
        chunks: shape.chunks,
        cache: "HIT",
        status: entry.status,
        sha256: headerDigest(entry.header),
        storeUnavailable: false,
        ttlMs: shape.ticketTtlMs,
      });
    }
    return shape.hitTail;
  }

  /** The TICKET line's `udp=` field for a session: the advertised address, or the one it reached. */
  private udpField(session: SessionContext): string {
    const host = this.advertised?.host ?? session.localAddress;
    let field = this.udpFields.get(host);
    if (field === undefined) {
      field = ticketUdpField(host, this.advertised?.port ?? this.options.dataPort());
      // The server's own addresses: a handful. Bounded anyway, should a server have many.
      if (this.udpFields.size >= 64) this.udpFields.clear();
      this.udpFields.set(host, field);
    }
    return field;
  }

  private rateLimited(event: QueryEvent | undefined, started: number, session: SessionContext): SessionReply {
    this.countLimitHit("RATE_LIMITED", "queriesPerSecondPerAddress", session);
    if (event) event.outcome = "RATE_LIMITED";
    const refusal = new HeadwireError(
      "RATE_LIMITED",
      `more than ${this.options.queriesPerSecondPerAddress} queries a second from ${session.peerAddress}`,
    );
    return this.done(event, started, session, formatError(refusal));
  }

  /** A query that failed: its ERROR line, counted and reported as answer() always did. */
  private errorReply(
    error: unknown,
    event: QueryEvent | undefined,
    started: number,
    session: SessionContext,
  ): SessionReply {
    if (error instanceof HeadwireError) {
      const wire = toWireError(error, "INTERNAL_ERROR");
      if (event) {
        event.outcome = wire.code;
        event.failed = true;
      }
      if (error.code === "ORIGIN_BUSY") {
        // origin-gate.ts says which of its two limits refused: requests in flight, or per second.
        const limit = error.message.includes("in flight") ? "originConcurrentFetches" : "originFetchesPerSecond";
        this.countLimitHit(error.code, limit, session);
      }
      if (error.code === "SERVER_BUSY") this.countLimitHit(error.code, "maxTicketBytes", session);
      return this.done(event, started, session, formatError(wire));
    }
    if (event) event.failed = true;
    this.internalError(error, session);
    return this.done(event, started, session, formatError(new HeadwireError("INTERNAL_ERROR")));
  }

  /**
   * The header on the control session itself, for clients whose UDP does not get through: no
   * ticket is registered (nothing to collect, no budget to spend). Its bytes go through the
   * session's write path, so they count in maxReplyBytes like any reply.
   */
  private tcpDelivery(header: Buffer, status: number, cache: CacheOutcome, storeUnavailable: boolean): SessionReply {
    this.tcpDeliveries++;
    const line = formatTcpTicket({
      bytes: header.length,
      cache,
      status,
      sha256: headerDigest(header),
      storeUnavailable,
    });
    return { line, body: header };
  }

  authorize(token: string): boolean {
    return this.options.adminToken !== "" && sameToken(token, this.options.adminToken);
  }

  async purge(url: string | undefined): Promise<number> {
    try {
      return await purge(this.options.store, url);
    } catch (error) {
      if (error instanceof HeadwireError) throw error;
      throw new HeadwireError("STORE_UNAVAILABLE", `purge failed: ${(error as Error).message}`, { cause: error });
    }
  }

  /**
   * The seed persisted its cache at TERMINATE; BYE waits for it, and promises it: a write that
   * fails is PERSIST_FAILED instead (the store has logged it). The reason sent is the system's
   * error code only: the server's paths are not the client's business.
   */
  async terminated(): Promise<void> {
    try {
      await this.options.store.flush();
    } catch (error) {
      const code = (error as { cause?: NodeJS.ErrnoException }).cause?.code;
      throw new HeadwireError("PERSIST_FAILED", `the cache could not be persisted${code ? ` (${code})` : ""}`, {
        cause: error,
      });
    }
  }

  closed(session: SessionContext): void {
    this.options.tickets.revokeSession(session.id);
  }

  /** Reported once, with its stack: the one place a bug of ours on the query path shows. */
  internalError(error: unknown, session: SessionContext): void {
    this.options.events.emit({
      type: "error",
      where: `session ${session.id}`,
      error,
      sessionId: session.id,
      address: session.peerAddress,
    });
  }

  /** A query refused by a limit: counted by code, and reported with the setting's name. */
  private countLimitHit(code: string, limit: string, session: SessionContext): void {
    this.limitHits[code] = (this.limitHits[code] ?? 0) + 1;
    const { events } = this.options;
    if (events.active) {
      events.emit({ type: "limit", limit, code, address: session.peerAddress, sessionId: session.id });
    }
  }

  private target(url: string): FetchTarget {
    let target = this.targets.get(url);
    if (!target) this.targets.set(url, (target = parseTarget(url)));
    return target;
  }
}

/** What a ticket for one header Buffer is made of, under the settings it was made with. */
interface TicketShape {
  maxDatagramBytes: number;
  retransmitBudget: number;
  ticketTtlMs: number;
  payloadBytes: number;
  chunks: number;
  budgetBytes: number;
  /** The TICKET line after `udp=` for a HIT, made on the first HIT (for the entry's status). */
  hitTail: string | undefined;
  hitStatus: number;
}

const ticketShapes = new WeakMap<Buffer, TicketShape>();

/** The policy of a handler built without one (tests): the settings' defaults. */
function defaultPolicy(now: () => number): QueryPolicyOptions {
  const defaults = Object.fromEntries(Object.entries(SERVER_SETTINGS).map(([name, s]) => [name, s.default]));
  return queryPolicyOptions(defaults as unknown as QueryPolicySettings, now);
}

/** A query's event before its answer: a failure until the answer says otherwise; done() emits it. */
function queryEvent(session: SessionContext, url: string, delivery: Delivery): QueryEvent {
  return {
    type: "query",
    atMs: 0,
    sessionId: session.id,
    address: session.peerAddress,
    port: session.peerPort,
    url,
    outcome: "INTERNAL_ERROR",
    failed: true,
    status: null,
    bytes: null,
    delivery,
    ms: 0,
    originMs: null,
  };
}

/** SHA-256 of a header, computed once per cached header buffer (entries are immutable). */
const digests = new WeakMap<Buffer, Buffer>();
function headerDigest(header: Buffer): Buffer {
  let digest = digests.get(header);
  if (!digest) digests.set(header, (digest = createHash("sha256").update(header).digest()));
  return digest;
}
