/**
 * Fetches the response header of a URL from its origin, on raw TCP/TLS sockets so that the bytes
 * delivered are exactly the bytes the origin sent (node:http would parse and rebuild them).
 *
 * One hop: resolve the name → check every address with the OutboundGuard → connect to a checked
 * IP (never to the name, so DNS cannot answer differently between check and connect) → TLS with
 * SNI and certificate checks against the URL's host → send a minimal HTTP/1.1 request → read until
 * the header ends. Then the connection is kept for the next request to the same address and TLS
 * identity (origin-pool.ts) when the response says where it ends and its body is short (read
 * and dropped after the header is delivered), and closed otherwise, without reading the body.
 *
 * Time limits per hop: connectTimeoutMs covers name resolution, TCP and the TLS handshake;
 * headerTimeoutMs covers the whole header after that, so an origin dripping a byte a second fails.
 * A query may ask for shorter ones (connect-timeout-ms=, max-time-ms=), never longer.
 *
 * Only the I/O is here: the request bytes, the redirect rules and where the header ends are pure
 * modules in http/.
 */
import { promises as dns } from "node:dns";
import net from "node:net";
import tls from "node:tls";
import type { OriginGate } from "./origin-gate.js";
import { ConfigError, HeadwireError, toHeadwireError, type ErrorCode } from "../errors.js";
import type { ConditionalFields } from "../http/conditional.js";
import { HeaderBlockScanner } from "../http/header-block.js";
import type {
  HttpMethod,
  HttpVersion,
  HttpVersionChoice,
  IpFamilyChoice,
  QueryOptions,
} from "../http/query-options.js";
import { redirectLocation, redirectTarget } from "../http/redirect.js";
import { responseFraming } from "../http/message-framing.js";
import { buildRequest, isSendableFieldValue } from "../http/request.js";
import type { FetchTarget } from "../url/target.js";
import type { OutboundGuard } from "./outbound-guard.js";
import { exchangeH2 } from "./h2-exchange.js";
import type { OriginPool } from "./origin-pool.js";
import { tlsFailure } from "./tls-errors.js";

export interface ResolvedAddress {
  address: string;
  family: number;
}

export type AddressLookup = (host: string) => Promise<ResolvedAddress[]>;

export interface OriginFetcherOptions {
  connectTimeoutMs: number;
  headerTimeoutMs: number;
  /** Largest header accepted; with chain "all" it bounds the whole delivered chain. */
  maxHeaderBytes: number;
  /** Sent as the User-Agent header, e.g. "headwire/0.1.0". */
  userAgent: string;
  guard: OutboundGuard;
  /** Accept any certificate (tests, debugging). */
  insecureTls?: boolean;
  /** Trusted CA certificates (PEM); replaces Node's bundle, so callers that add to it pass both (the server does). */
  ca?: Buffer | string;
  /** Per-origin limits (requests in flight, requests per second), entered once per hop. */
  gate?: OriginGate;
  /** Name resolution; defaults to the system resolver (dns.lookup, all addresses). */
  lookup?: AddressLookup;
  /** Idle connections kept for the next request; without one, each request has its own. */
  pool?: OriginPool;
}

export interface FetchResult {
  /** The delivered header bytes: one hop's, or every hop's in order (chain "all"). */
  header: Buffer;
  /** Status code of the last response. */
  status: number;
  /** Responses fetched (1 + redirects followed). */
  hops: number;
  /** The HTTP version of the last response (each hop of a chain negotiates its own). */
  httpVersion: HttpVersion;
}

interface HopResult {
  header: Buffer;
  status: number;
  httpVersion: HttpVersion;
  /** The final section of the response (interim 1xx sections excluded), to read Location from. */
  finalSection: Buffer;
}

const DNS_FAILURES: ReadonlySet<string> = new Set(["ENOTFOUND", "EAI_AGAIN", "EAI_NONAME", "EAI_NODATA", "EAI_FAIL"]);
const CLOSED_FAILURES: ReadonlySet<string> = new Set(["ECONNRESET", "EPIPE", "ECONNABORTED"]);

const systemLookup: AddressLookup = (host) => dns.lookup(host, { all: true });

export class OriginFetcher {
  private options: Required<Omit<OriginFetcherOptions, "ca" | "gate" | "pool">> &
    Pick<OriginFetcherOptions, "ca" | "gate" | "pool">;

  constructor(options: OriginFetcherOptions) {
    checkPositiveInteger("connectTimeoutMs", options.connectTimeoutMs);
    checkPositiveInteger("headerTimeoutMs", options.headerTimeoutMs);
    checkPositiveInteger("maxHeaderBytes", options.maxHeaderBytes);
    if (typeof options.userAgent !== "string" || !isSendableFieldValue(options.userAgent)) {
      throw new ConfigError("options.userAgent must be non-empty printable ASCII text");
    }
    if (options.guard === undefined) throw new ConfigError("options.guard is required");
    this.options = { insecureTls: false, lookup: systemLookup, ...options };
  }

  /**
   * New timeouts and outbound guard (a reloaded config), for the fetches started from now on;
   * a fetch under way keeps the ones it started with.
   */
  reconfigure(part: Pick<OriginFetcherOptions, "connectTimeoutMs" | "headerTimeoutMs" | "guard">): void {
    checkPositiveInteger("connectTimeoutMs", part.connectTimeoutMs);
    checkPositiveInteger("headerTimeoutMs", part.headerTimeoutMs);
    this.options = { ...this.options, ...part };
  }

  /**
   * Fetches the header of `target`, following redirects as `query` asks. `conditional` fields
   * (If-None-Match, If-Modified-Since: RFC 9111 §4.3.1) go on the first request only.
   */
  async fetch(target: FetchTarget, query: QueryOptions, conditional: ConditionalFields = {}): Promise<FetchResult> {
    const delivered: Buffer[] = [];
    let deliveredBytes = 0;
    let current = target;
    for (let hops = 1; ; hops++) {
      const budget = query.chain === "all" ? this.options.maxHeaderBytes - deliveredBytes : this.options.maxHeaderBytes;
      // Each hop is a request to its host, and counts against that host's limits.
      const leave = this.options.gate?.enter(current.host);
      let hop: HopResult;
      try {
        hop = await this.fetchHop(current, query, budget, hops === 1 ? conditional : {});
      } finally {
        leave?.();
      }
      if (query.chain === "last") delivered.length = 0;
      delivered.push(hop.header);
      deliveredBytes += hop.header.length;
      const location = redirectLocation(hop.status, hop.finalSection);
      if (location === undefined || query.redirects === 0) {
        return { header: Buffer.concat(delivered), status: hop.status, hops, httpVersion: hop.httpVersion };
      }
      if (hops > query.redirects) {
        throw new HeadwireError("TOO_MANY_REDIRECTS", `still redirected after following ${query.redirects} redirects`);
      }
      current = redirectTarget(location, current);
    }
  }

  /** The time limits of one hop: the server's, or the query's where it asks for less. */
  private limitsFor(query: QueryOptions): HopLimits {
    return {
      connectTimeoutMs: Math.min(query.connectTimeoutMs ?? Infinity, this.options.connectTimeoutMs),
      headerTimeoutMs: Math.min(query.maxTimeMs ?? Infinity, this.options.headerTimeoutMs),
    };
  }

  /** One request and its response header. */
  private async fetchHop(
    target: FetchTarget,
    query: QueryOptions,
    maxHeaderBytes: number,
    conditional: ConditionalFields,
  ): Promise<HopResult> {
    const { userAgent } = this.options;
    const { method, http, headers } = query;
    const limits = this.limitsFor(query);
    const { headerTimeoutMs } = limits;
    const request = buildRequest(target, method, userAgent, conditional, headers);
    if (http === "2" && target.scheme === "http") {
      // RFC 9113 §3.3: HTTP/2 over cleartext needs prior knowledge; curl without it speaks 1.1.
      throw new HeadwireError(
        "HTTP2_REFUSED",
        `${target.hostHeader} is plain http://, and HTTP/2 (http=2) is only negotiated over https`,
      );
    }
    const deadline = { atMs: Date.now() + limits.connectTimeoutMs, ms: limits.connectTimeoutMs };
    const addresses = await this.resolveChecked(target, deadline, query.ip);
    const exchange = { request, method, maxHeaderBytes, headerTimeoutMs };
    const pooled = this.takePooled(target, addresses, http, query.insecure);
    if (pooled) {
      const reused = await this.exchangeH1(pooled, true, target, exchange).catch((error: unknown) => {
        // RFC 9112 §9.3.1: the origin may close an idle connection as we reuse it; a request it
        // never answered (not a byte came back) is sent again, once, on a new connection.
        if (error instanceof StaleConnection) return undefined;
        throw error;
      });
      if (reused) return reused;
    }
    const { socket, address } = await this.connect(target, addresses, deadline, http, query.insecure);
    if (socket instanceof tls.TLSSocket && socket.alpnProtocol === "h2") {
      try {
        const h2 = await exchangeH2(socket, {
          target,
          method,
          userAgent,
          conditional,
          headers,
          maxHeaderBytes,
          headerTimeoutMs,
        });
        return { ...h2, httpVersion: "2" };
      } finally {
        socket.destroy();
      }
    }
    if (http === "2") {
      socket.destroy();
      throw new HeadwireError(
        "HTTP2_REFUSED",
        `${target.hostHeader} did not agree to HTTP/2 in the TLS handshake (ALPN); it speaks HTTP/1.1 only`,
      );
    }
    const key = this.poolKey(target, address, http, query.insecure);
    return this.exchangeH1({ socket, key }, false, target, exchange);
  }

  /**
   * The request and its response header on an HTTP/1.1 connection; then the connection is kept
   * (once its body is read, if short) under `key`, or closed. `reused`: the connection came from
   * the pool, and its close before any answer rejects with StaleConnection.
   */
  private async exchangeH1(
    { socket, key }: { socket: net.Socket; key: string },
    reused: boolean,
    target: FetchTarget,
    exchange: H1Exchange,
  ): Promise<HopResult> {
    const scanner = new HeaderBlockScanner(exchange.maxHeaderBytes);
    let received: number;
    try {
      received = await readHeader(socket, exchange.request, scanner, exchange.headerTimeoutMs, target);
    } catch (error) {
      socket.destroy();
      if (reused && scanner.bytesSeen === 0 && (error as HeadwireError).code === "ORIGIN_CLOSED") {
        throw new StaleConnection();
      }
      throw error;
    }
    const scan = scanner.result();
    const header = scanner.header();
    const final = scan.blocks.at(-1)!;
    const finalSection = header.subarray(final.start, final.end);
    const framing = responseFraming(exchange.method, scan.status, finalSection);
    if (this.options.pool && framing.persistent) {
      this.options.pool.keepAfterBody(key, socket, framing.bodyBytes, received - scan.end, exchange.headerTimeoutMs);
    } else {
      socket.destroy();
    }
    return { header, status: scan.status, finalSection, httpVersion: "1.1" };
  }

  /** An idle connection to one of `addresses` (in the order they would be tried) made for this kind of request. */
  private takePooled(
    target: FetchTarget,
    addresses: string[],
    http: HttpVersionChoice,
    insecure: boolean,
  ): { socket: net.Socket; key: string } | undefined {
    const { pool } = this.options;
    if (!pool || http === "2") return undefined;
    for (const address of addresses) {
      const key = this.poolKey(target, address, http, insecure);
      const socket = pool.take(key);
      if (socket) return { socket, key };
    }
    return undefined;
  }

  /**
   * What a kept connection was made with, all of which a request must match to use it: the
   * checked address and port, and for TLS the name verified on the certificate (or that none
   * was), and the protocols offered (a connection that settled on HTTP/1.1 when h2 was not
   * offered must not serve a request that would have been offered h2).
   */
  private poolKey(target: FetchTarget, address: string, http: HttpVersionChoice, insecure: boolean): string {
    if (target.scheme === "http") return `http ${address} ${target.port}`;
    const verified = this.options.insecureTls || insecure ? "unverified" : "verified";
    return `https ${address} ${target.port} ${target.host} ${verified} ${http === "1.1" ? "1.1" : "auto"}`;
  }

  /**
   * Every address the host resolves to, of the family the query asks for (ip=4|6, as curl -4/-6
   * resolves); all of them must pass the guard.
   */
  private async resolveChecked(target: FetchTarget, deadline: Deadline, ip: IpFamilyChoice): Promise<string[]> {
    const resolved = net.isIP(target.host) !== 0 ? [target.host] : await this.resolve(target.host, deadline);
    const addresses = ip === "any" ? resolved : resolved.filter((address) => net.isIP(address) === Number(ip));
    if (addresses.length === 0) {
      const what =
        net.isIP(target.host) !== 0
          ? `${target.host} is not an IPv${ip} address`
          : `${target.host} has no IPv${ip} address`;
      throw new HeadwireError("DNS_NOT_FOUND", `${what} (the query asked for ip=${ip})`);
    }
    for (const address of addresses) {
      if (net.isIP(address) === 0) throw new HeadwireError("BLOCKED_ADDRESS", `${address} is not an IP address`);
      this.options.guard.check(address, address === target.host ? undefined : target.host);
    }
    return addresses;
  }

  private async resolve(host: string, deadline: Deadline): Promise<string[]> {
    let results: ResolvedAddress[];
    try {
      results = await withTimeout(this.options.lookup(host), deadline.atMs - Date.now(), () => {
        return new HeadwireError("CONNECT_TIMEOUT", `resolving ${host} timed out after ${deadline.ms} ms`);
      });
    } catch (error) {
      if (error instanceof HeadwireError) throw error;
      const code = errorCode(error);
      if (code !== undefined && DNS_FAILURES.has(code)) {
        throw new HeadwireError("DNS_NOT_FOUND", `${host} does not resolve (${code})`, { cause: error });
      }
      throw toHeadwireError(error, "ORIGIN_ERROR");
    }
    if (results.length === 0) throw new HeadwireError("DNS_NOT_FOUND", `${host} resolves to no address`);
    return results.map((r) => r.address);
  }

  /** Connects to the first address that accepts, then starts TLS for https. */
  private async connect(
    target: FetchTarget,
    addresses: string[],
    deadline: Deadline,
    http: HttpVersionChoice,
    insecure: boolean,
  ): Promise<{ socket: net.Socket; address: string }> {
    let lastError: HeadwireError | undefined;
    for (const address of addresses) {
      try {
        const socket = await connectTcp(address, target.port, deadline);
        if (target.scheme === "http") return { socket, address };
        return { socket: await this.startTls(socket, target, deadline, http, insecure), address };
      } catch (error) {
        lastError = toHeadwireError(error, "ORIGIN_ERROR");
        // A timeout spent the whole deadline; a TLS failure would repeat on the next address.
        if (lastError.code !== "CONNECTION_REFUSED" && lastError.code !== "ORIGIN_ERROR") throw lastError;
      }
    }
    throw lastError ?? new HeadwireError("ORIGIN_ERROR", `no address to connect to for ${target.host}`);
  }

  private startTls(
    socket: net.Socket,
    target: FetchTarget,
    deadline: Deadline,
    http: HttpVersionChoice,
    insecure: boolean,
  ): Promise<tls.TLSSocket> {
    const { ca } = this.options;
    // The server's --insecure, or the query's insecure=1 (the query handler checked it may ask).
    const insecureTls = this.options.insecureTls || insecure;
    const tlsSocket = tls.connect({
      socket,
      // RFC 6066 §3: SNI carries host names only, never IP literals.
      ...(net.isIP(target.host) === 0 ? { servername: target.host } : {}),
      ...(ca !== undefined ? { ca } : {}),
      rejectUnauthorized: !insecureTls,
      // RFC 7301: offer what curl offers (h2 first, RFC 9113 §3.2); http=1.1 as curl --http1.1.
      ALPNProtocols: http === "1.1" ? ["http/1.1"] : ["h2", "http/1.1"],
      // Check the certificate against the URL's host, not the IP we connected to.
      checkServerIdentity: (_hostname, cert) => tls.checkServerIdentity(target.host, cert),
    });
    tlsSocket.on("error", ignoreLateError);
    return settleOnce<tls.TLSSocket>(tlsSocket, deadline.atMs - Date.now(), {
      readyEvent: "secureConnect",
      onTimeout: () =>
        new HeadwireError(
          "CONNECT_TIMEOUT",
          `the TLS handshake with ${target.hostHeader} timed out after ${deadline.ms} ms`,
        ),
      onError: (error) => tlsFailure(error, target.hostHeader, tlsSocket),
      onClose: () =>
        new HeadwireError("TLS_FAILURE", `${target.hostHeader} closed the connection during the TLS handshake`),
    });
  }
}

/** When the connect phase (DNS, TCP, TLS) must be over, and its length for messages. */
interface Deadline {
  atMs: number;
  ms: number;
}

interface HopLimits {
  connectTimeoutMs: number;
  headerTimeoutMs: number;
}

/** One HTTP/1.1 request of a hop, and what bounds its answer. */
interface H1Exchange {
  request: Buffer;
  method: HttpMethod;
  maxHeaderBytes: number;
  headerTimeoutMs: number;
}

/** A kept connection turned out closed before it answered: the request goes on a new one. */
class StaleConnection extends Error {}

function connectTcp(address: string, port: number, deadline: Deadline): Promise<net.Socket> {
  const where = net.isIPv6(address) ? `[${address}]:${port}` : `${address}:${port}`;
  const socket = net.connect({ host: address, port, noDelay: true });
  socket.on("error", ignoreLateError);
  return settleOnce<net.Socket>(socket, deadline.atMs - Date.now(), {
    readyEvent: "connect",
    onTimeout: () => new HeadwireError("CONNECT_TIMEOUT", `connecting to ${where} timed out after ${deadline.ms} ms`),
    onError: (error) => connectError(error, where),
    onClose: () => new HeadwireError("ORIGIN_ERROR", `connection to ${where} closed while connecting`),
  });
}

/**
 * Each phase (connect, handshake, header) listens for errors itself and reports them; this
 * permanent listener keeps an error arriving between phases, or after the socket is given up,
 * from crashing the process. Such an error also closes the socket, which the next phase sees.
 */
function ignoreLateError(): void {}

interface SettleHandlers {
  readyEvent: string;
  onTimeout: () => HeadwireError;
  onError: (error: Error) => HeadwireError;
  onClose: () => HeadwireError;
}

/** Resolves with the socket on its ready event; on error, close or timeout destroys it and rejects. */
function settleOnce<T extends net.Socket>(socket: T, timeoutMs: number, handlers: SettleHandlers): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const cleanup = (): void => {
      clearTimeout(timer);
      socket.off(handlers.readyEvent, onReady).off("error", onError).off("close", onClose);
    };
    const fail = (error: HeadwireError): void => {
      cleanup();
      socket.destroy();
      reject(error);
    };
    const onReady = (): void => {
      cleanup();
      resolve(socket);
    };
    const onError = (error: Error): void => fail(handlers.onError(error));
    const onClose = (): void => fail(handlers.onClose());
    const timer = setTimeout(() => fail(handlers.onTimeout()), Math.max(0, timeoutMs));
    socket.once(handlers.readyEvent, onReady).once("error", onError).once("close", onClose);
  });
}

/**
 * Writes the request and feeds the answer to the scanner until the header ends; resolves with
 * the bytes read, which may go past the header into the body. The request asks nothing about
 * the connection (as curl's does not), so the origin keeps it open: the caller then reads a
 * short body and keeps the connection, or destroys it (RFC 9112 §9.3, §9.6).
 */
function readHeader(
  socket: net.Socket,
  request: Buffer,
  scanner: HeaderBlockScanner,
  timeoutMs: number,
  target: FetchTarget,
): Promise<number> {
  let received = 0;
  return new Promise<number>((resolve, reject) => {
    const settle = (error?: unknown): void => {
      clearTimeout(timer);
      socket.off("data", onData).off("end", onEnd).off("error", onError).off("close", onEnd);
      socket.pause();
      if (error === undefined) resolve(received);
      else reject(error);
    };
    const onData = (chunk: Buffer): void => {
      received += chunk.length;
      try {
        if (scanner.push(chunk)) settle();
      } catch (error) {
        settle(error);
      }
    };
    const onEnd = (): void => {
      try {
        scanner.finish();
        settle();
      } catch (error) {
        settle(error);
      }
    };
    const onError = (error: Error): void => settle(readError(error));
    const timer = setTimeout(() => {
      const what = `the header from ${target.hostHeader} timed out after ${timeoutMs} ms`;
      settle(new HeadwireError("HEADER_TIMEOUT", what));
    }, timeoutMs);
    socket.on("data", onData).once("end", onEnd).once("close", onEnd).once("error", onError);
    // A kept connection was paused between requests: a new 'data' listener does not resume it.
    socket.resume();
    socket.write(request);
  });
}

function withTimeout<T>(promise: Promise<T>, timeoutMs: number, onTimeout: () => Error): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const expired = new Promise<never>((_resolve, reject) => {
    timer = setTimeout(() => reject(onTimeout()), Math.max(0, timeoutMs));
  });
  return Promise.race([promise, expired]).finally(() => clearTimeout(timer));
}

function connectError(error: Error, where: string): HeadwireError {
  const code = errorCode(error);
  const mapped: ErrorCode =
    code === "ECONNREFUSED" ? "CONNECTION_REFUSED" : code === "ETIMEDOUT" ? "CONNECT_TIMEOUT" : "ORIGIN_ERROR";
  return new HeadwireError(mapped, `connecting to ${where} failed: ${error.message}`, { cause: error });
}

function readError(error: Error): HeadwireError {
  const code = errorCode(error);
  const mapped: ErrorCode = code !== undefined && CLOSED_FAILURES.has(code) ? "ORIGIN_CLOSED" : "ORIGIN_ERROR";
  return new HeadwireError(mapped, `reading the header failed: ${error.message}`, { cause: error });
}

function errorCode(error: unknown): string | undefined {
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === "string" ? code : undefined;
}

function checkPositiveInteger(name: string, value: unknown): void {
  if (typeof value !== "number" || !Number.isInteger(value) || value < 1) {
    throw new ConfigError(`options.${name} must be a positive integer, got ${String(value)}`);
  }
}
