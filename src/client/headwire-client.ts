/**
 * The client library: one control session, a UDP collection per query, and the header written to
 * `<out>/<file name>` only once it has arrived whole and checked.
 */
import { createHash } from "node:crypto";
import type { Socket } from "node:dgram";
import { mkdir } from "node:fs/promises";
import { join } from "node:path";
import { resolveClientConfig, type ClientConfig } from "../config.js";
import { HeadwireError, toHeadwireError, type ErrorCode } from "../errors.js";
import type { QueryOptions } from "../http/query-options.js";
import { parseStatusLine } from "../http/status-line.js";
import type { CacheOutcome, Delivery } from "../protocol/control.js";
import { ControlConnection, type ClientTrace } from "./control-connection.js";
import { DeliveryPolicy, fallbackNotice, isDeliveryMode, newTicketNotice } from "./delivery-policy.js";
import { headerFileName } from "./file-name.js";
import { writeHeaderFile } from "./header-file-writer.js";
import { bindFreshPort, receiveHeader } from "./header-receiver.js";
import { isTrustedUdpHost } from "./ticket-trust.js";

export interface QueryResult {
  url: string;
  /** Path of the written file; absent on error or when nothing was written. */
  file?: string;
  status?: number;
  /** The header's first line, for display. */
  statusLine?: string;
  bytes?: number;
  cache?: CacheOutcome;
  /** The server's shared cache store was down; it asked the origin directly. */
  storeUnavailable?: boolean;
  ms: number;
  error?: { code: ErrorCode; message: string };
  /** The header itself, when the query succeeded. */
  header?: Buffer;
  /** How the header was asked for the last time (udp, or tcp after a fallback or with --delivery tcp). */
  delivery?: Delivery;
  /** What the client did on the way, for the user: new tickets asked for, a fallback to TCP. */
  notices?: string[];
}

/** One ask for a header: it came, its UDP collection failed (a policy decides what next), or it failed for good. */
type Attempt =
  | { kind: "header"; header: Buffer; status: number; cache: CacheOutcome; storeUnavailable?: boolean }
  | { kind: "udp-failed"; error: HeadwireError; udpHost: string; udpPort: number }
  | { kind: "failed"; error: HeadwireError };

export interface DataAddress {
  host: string;
  port: number;
}

export interface QueryRequest {
  url: string;
  options?: Partial<QueryOptions>;
  /** Write the header to a file (default) or only return it. */
  write?: boolean;
}

export class HeadwireClient {
  /** The session's delivery: a fallback to TCP is remembered here. */
  private readonly policy: DeliveryPolicy;

  private constructor(
    readonly config: ClientConfig,
    private readonly connection: ControlConnection,
    private readonly trace?: ClientTrace,
    private readonly dataAddress?: DataAddress,
  ) {
    // resolveClientConfig has checked it; the narrowing is for the type only.
    const mode = isDeliveryMode(config.delivery) ? config.delivery : "udp";
    this.policy = new DeliveryPolicy(mode, config.deliveryRetries);
  }

  /** How this session's next query asks for its header ("tcp" once auto mode has fallen back). */
  get delivery(): Delivery {
    return this.policy.delivery;
  }

  /**
   * Opens a session. `dataAddress` sends UDP requests there instead of where tickets say (a
   * relay, a port forward), like curl's --connect-to.
   */
  static async connect(
    overrides: Partial<ClientConfig> = {},
    trace?: ClientTrace,
    dataAddress?: DataAddress,
  ): Promise<HeadwireClient> {
    const config = resolveClientConfig(overrides);
    const connection = await ControlConnection.open(config.serverHost, config.serverPort, config, trace);
    return new HeadwireClient(config, connection, trace, dataAddress);
  }

  get serverName(): string {
    return this.connection.serverName;
  }

  /** Why the server (or the network) ended the session, once it has. */
  get lost(): HeadwireError | undefined {
    return this.connection.lost;
  }

  /** The server's idle timeout, when its greeting tells it: a session waiting on its user PINGs within it. */
  get idleTimeoutMs(): number | undefined {
    return this.connection.idleTimeoutMs;
  }

  /** PING and its PONG: the session stays open while its user is idle (docs/protocol.md). */
  ping(): Promise<void> {
    return this.connection.ping();
  }

  /** Resolves when the server has closed the session. */
  get closed(): Promise<void> {
    return this.connection.closed;
  }

  /**
   * Runs one query. Errors the server reports, or a failed delivery, come back in the result:
   * the session goes on. A lost session throws (CONNECTION_LOST), since nothing more can be asked.
   * A failed UDP delivery is asked again with a new ticket, or over TCP (DeliveryPolicy); what
   * was done is said in the result's notices.
   */
  async query(request: QueryRequest): Promise<QueryResult> {
    const started = performance.now();
    const elapsed = () => Math.round(performance.now() - started);
    const notices: string[] = [];
    for (let ticketsTried = 1; ; ticketsTried++) {
      const delivery = this.policy.delivery;
      let attempt: Attempt;
      try {
        attempt = delivery === "tcp" ? await this.overTcp(request) : await this.overUdp(request);
      } catch (error) {
        // No reply in time: this query failed, and the session is closed (a late reply would be
        // taken for the next query's); a caller that goes on connects again.
        if (!(error instanceof HeadwireError) || error.code !== "REPLY_TIMEOUT") throw error;
        return {
          url: request.url,
          ms: elapsed(),
          error: { code: error.code, message: error.message },
          delivery,
          notices,
        };
      }
      if (attempt.kind === "header") return this.delivered(request, attempt, delivery, notices, elapsed);
      if (attempt.kind === "udp-failed") {
        const { error, udpHost, udpPort } = attempt;
        const action = this.policy.afterUdpFailure(error.code, ticketsTried);
        if (action === "new-ticket") {
          notices.push(newTicketNotice(request.url, ticketsTried, this.config.deliveryRetries, error.message));
          continue;
        }
        if (action === "fall-back-to-tcp") {
          notices.push(fallbackNotice(udpHost, udpPort, error.code, ticketsTried));
          continue;
        }
      }
      const { code, message } = attempt.error;
      const tried = attempt.kind === "udp-failed" && ticketsTried > 1 ? ` (${ticketsTried} tickets tried)` : "";
      return { url: request.url, ms: elapsed(), error: { code, message: `${message}${tried}` }, delivery, notices };
    }
  }

  /** One ask with delivery=udp: a ticket, then its collection over UDP. */
  private async overUdp(request: QueryRequest): Promise<Attempt> {
    // The fresh UDP port is bound while the server answers, not after.
    const prebound = bindFreshPort(this.connection.remoteFamily === "IPv6" ? "udp6" : "udp4");
    let reply;
    try {
      reply = await this.connection.query(request.url, request.options, "udp");
    } catch (error) {
      releaseSocket(prebound);
      throw error;
    }
    if (reply.kind !== "ticket") releaseSocket(prebound);
    if (reply.kind === "error") return { kind: "failed", error: new HeadwireError(reply.code, reply.message) };
    if (reply.kind !== "ticket")
      throw new HeadwireError("PROTOCOL_ERROR", `unexpected reply to a query: ${reply.kind}`);
    const { ticket } = reply;
    if (ticket.bytes > this.config.maxHeaderBytes || ticket.chunks > Math.max(1, ticket.bytes)) {
      releaseSocket(prebound);
      const failure = `a ticket for ${ticket.bytes} bytes in ${ticket.chunks} chunks (this client accepts ${this.config.maxHeaderBytes})`;
      return { kind: "failed", error: new HeadwireError("PROTOCOL_ERROR", failure) };
    }
    // --udp-via names the UDP destination itself; otherwise the ticket's host must be trusted.
    if (
      !this.dataAddress &&
      !isTrustedUdpHost(ticket.udpHost, this.connection.remoteAddress, this.config.trustUdpHosts)
    ) {
      releaseSocket(prebound);
      const failure =
        `the server asked to collect the header from ${ticket.udpHost}, which is not the server's address ` +
        `(${this.connection.remoteAddress ?? "unknown"}); pass --trust-udp-host ${ticket.udpHost} if the server ` +
        "runs behind NAT with --advertise";
      return { kind: "failed", error: new HeadwireError("UNTRUSTED_TICKET", failure) };
    }
    const target = this.dataAddress
      ? { ...ticket, udpHost: this.dataAddress.host, udpPort: this.dataAddress.port }
      : ticket;
    try {
      const { header } = await receiveHeader(target, this.config, this.trace, prebound);
      return { kind: "header", header, ...ticket };
    } catch (error) {
      const failure = toHeadwireError(error, "DELIVERY_FAILED");
      return { kind: "udp-failed", error: failure, udpHost: target.udpHost, udpPort: target.udpPort };
    }
  }

  /** One ask with delivery=tcp: the header follows its TICKET line on this session. */
  private async overTcp(request: QueryRequest): Promise<Attempt> {
    const reply = await this.connection.query(request.url, request.options, "tcp");
    if (reply.kind === "error") {
      // A server older than delivery=tcp refuses the option itself.
      const older = reply.code === "BAD_REQUEST" && reply.message.includes("delivery=");
      const message = older
        ? `${reply.message} (this server does not offer delivery over TCP; use --delivery udp)`
        : reply.message;
      return { kind: "failed", error: new HeadwireError(reply.code, message) };
    }
    if (reply.kind !== "header")
      throw new HeadwireError("PROTOCOL_ERROR", `unexpected reply to a delivery=tcp query: ${reply.kind}`);
    const { ticket, header } = reply;
    // TCP checks its segments, but the digest is the end-to-end promise, as over UDP.
    if (!createHash("sha256").update(header).digest().equals(ticket.sha256)) {
      const failure = "the header received over TCP does not match its SHA-256";
      return { kind: "failed", error: new HeadwireError("DELIVERY_FAILED", failure) };
    }
    return { kind: "header", header, ...ticket };
  }

  private async delivered(
    request: QueryRequest,
    attempt: Extract<Attempt, { kind: "header" }>,
    delivery: Delivery,
    notices: string[],
    elapsed: () => number,
  ): Promise<QueryResult> {
    const { header } = attempt;
    const result: QueryResult = {
      url: request.url,
      status: attempt.status,
      statusLine: finalStatusLine(header),
      bytes: header.length,
      cache: attempt.cache,
      storeUnavailable: attempt.storeUnavailable ?? false,
      ms: 0,
      header,
      delivery,
      notices,
    };
    if (request.write !== false) {
      try {
        result.file = await this.writeHeader(request.url, header);
      } catch (error) {
        const message = `cannot write the header file: ${(error as Error).message}`;
        return { url: request.url, ms: elapsed(), error: { code: "WRITE_FAILED", message }, delivery, notices };
      }
    }
    result.ms = elapsed();
    return result;
  }

  /**
   * Writes through a temporary file and a rename: a reader never sees half a header (rename(2) is
   * atomic within a directory). The directory is made once per process and directory, not per
   * query; where the writes run is header-file-writer.ts's business (this thread, or one worker
   * thread in a batch: measured, docs/performance.md, the bulk phase).
   */
  private async writeHeader(url: string, header: Buffer): Promise<string> {
    await outDirReady(this.config.outDir);
    const path = join(this.config.outDir, headerFileName(url));
    await writeHeaderFile(path, header);
    return path;
  }

  async terminate(): Promise<void> {
    await this.connection.terminate();
  }

  destroy(): void {
    this.connection.destroy();
  }
}

/** Output directories made (or being made) by this process: mkdir once, not per file. */
const outDirs = new Map<string, Promise<void>>();

function outDirReady(dir: string): Promise<void> {
  let made = outDirs.get(dir);
  if (!made) {
    made = mkdir(dir, { recursive: true }).then(() => undefined);
    // A failure is not remembered: the next file tries again (the directory may be fixed by then).
    made.catch(() => outDirs.delete(dir));
    outDirs.set(dir, made);
  }
  return made;
}

/** Closes a socket bound in advance and not used. */
function releaseSocket(socket: Promise<Socket>): void {
  void socket.then(
    (bound) => bound.close(),
    () => {},
  );
}

/** The final response's status line (after any 1xx or redirect hops), for display. */
function finalStatusLine(header: Buffer): string {
  const lines = header.toString("latin1").split("\n");
  const statusLines = lines.filter((line) => parseStatusLine(line) !== undefined);
  return (statusLines[statusLines.length - 1] ?? lines[0] ?? "").replace(/\r$/, "");
}
