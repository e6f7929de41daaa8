/**
 * The client library: one control session, a UDP collection per query, and the header written to
 * `<out>/<file name>` only once it has arrived whole and checked.
 */
import { randomBytes } from "node:crypto";
import type { Socket } from "node:dgram";
import { mkdir, rename, unlink, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { resolveClientConfig, type ClientConfig } from "../config.js";
import { HeadwireError, toHeadwireError, type ErrorCode } from "../errors.js";
import type { QueryOptions } from "../http/query-options.js";
import { parseStatusLine } from "../http/status-line.js";
import type { CacheOutcome } from "../protocol/control.js";
import { ControlConnection, type ClientTrace } from "./control-connection.js";
import { headerFileName } from "./file-name.js";
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
}

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
  private constructor(
    readonly config: ClientConfig,
    private readonly connection: ControlConnection,
    private readonly trace?: ClientTrace,
    private readonly dataAddress?: DataAddress,
  ) {}

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

  /** Resolves when the server has closed the session. */
  get closed(): Promise<void> {
    return this.connection.closed;
  }

  /**
   * Runs one query. Errors the server reports, or a failed delivery, come back in the result:
   * the session goes on. A lost session throws (CONNECTION_LOST), since nothing more can be asked.
   */
  async query(request: QueryRequest): Promise<QueryResult> {
    const started = performance.now();
    const elapsed = () => Math.round(performance.now() - started);
    // The fresh UDP port is bound while the server answers, not after.
    const prebound = bindFreshPort(this.connection.remoteFamily === "IPv6" ? "udp6" : "udp4");
    let reply;
    try {
      reply = await this.connection.query(request.url, request.options);
    } catch (error) {
      releaseSocket(prebound);
      throw error;
    }
    if (reply.kind !== "ticket") releaseSocket(prebound);
    if (reply.kind === "error") {
      return { url: request.url, ms: elapsed(), error: { code: reply.code, message: reply.message } };
    }
    if (reply.kind !== "ticket")
      throw new HeadwireError("PROTOCOL_ERROR", `unexpected reply to a query: ${reply.kind}`);
    const { ticket } = reply;
    if (ticket.bytes > this.config.maxHeaderBytes || ticket.chunks > Math.max(1, ticket.bytes)) {
      releaseSocket(prebound);
      const failure = `a ticket for ${ticket.bytes} bytes in ${ticket.chunks} chunks (this client accepts ${this.config.maxHeaderBytes})`;
      return { url: request.url, ms: elapsed(), error: { code: "PROTOCOL_ERROR", message: failure } };
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
      return { url: request.url, ms: elapsed(), error: { code: "UNTRUSTED_TICKET", message: failure } };
    }
    try {
      const target = this.dataAddress
        ? { ...ticket, udpHost: this.dataAddress.host, udpPort: this.dataAddress.port }
        : ticket;
      const { header } = await receiveHeader(target, this.config, this.trace, prebound);
      const result: QueryResult = {
        url: request.url,
        status: ticket.status,
        statusLine: finalStatusLine(header),
        bytes: header.length,
        cache: ticket.cache,
        storeUnavailable: ticket.storeUnavailable ?? false,
        ms: 0,
        header,
      };
      if (request.write !== false) {
        try {
          result.file = await this.writeHeader(request.url, header);
        } catch (error) {
          throw new HeadwireError("WRITE_FAILED", `cannot write the header file: ${(error as Error).message}`);
        }
      }
      result.ms = elapsed();
      return result;
    } catch (error) {
      const failure = toHeadwireError(error, "DELIVERY_FAILED");
      return { url: request.url, ms: elapsed(), error: { code: failure.code, message: failure.message } };
    }
  }

  /** Writes through a temporary file and a rename: a reader never sees half a header. */
  private async writeHeader(url: string, header: Buffer): Promise<string> {
    await mkdir(this.config.outDir, { recursive: true });
    const path = join(this.config.outDir, headerFileName(url));
    const temporary = `${path}.${randomBytes(6).toString("hex")}.part`;
    try {
      await writeFile(temporary, header);
      await rename(temporary, path);
    } catch (error) {
      await unlink(temporary).catch(() => {});
      throw error;
    }
    return path;
  }

  async terminate(): Promise<void> {
    await this.connection.terminate();
  }

  destroy(): void {
    this.connection.destroy();
  }
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
