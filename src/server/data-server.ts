/**
 * The UDP data channel. It answers only well-formed REQUEST datagrams that carry a live token,
 * from the IP address the token was issued to, and never sends more for a ticket than its budget:
 * anything else is dropped in silence and counted, so the port cannot be used to reflect or
 * amplify traffic towards a third party. A DROPS report, checked the same way, is never answered:
 * it gives back to the ticket's budget what the client's own kernel dropped, within a cap.
 */
import { createSocket, type RemoteInfo, type Socket } from "node:dgram";
import { once } from "node:events";
import { isIP } from "node:net";
import {
  decodeDatagram,
  encodeChunk,
  fullDeliveryBytes,
  MAX_RANGE_CHUNKS,
  type DropsDatagram,
  type RequestDatagram,
} from "../protocol/datagram.js";
import type { DatagramTrace, ServerEvents } from "./server-events.js";
import { canonicalAddress, type DeliveryTicket, type TicketRegistry } from "./ticket-registry.js";

export interface DataServerOptions {
  host: string;
  port: number;
  maxDatagramBytes: number;
  /** Kernel receive queue size (the system may cap it: net.core.rmem_max). */
  receiveBufferBytes: number;
  /** Chunks one request may ask for, across all its ranges. */
  maxChunksPerRequest: number;
  /** Full deliveries a ticket may get back for its client's reported drops (0: no credit). */
  bufferLossCreditDeliveries: number;
  /** Where a bug of ours met while handling a datagram is told, once per distinct stack. */
  log?: (message: string) => void;
  /** Where budget hits and the trace (each request served) are reported; nowhere when omitted. */
  events?: ServerEvents;
}

/** Where one datagram goes to (or comes from): what of a RemoteInfo the server uses. */
export type DatagramPeer = Pick<RemoteInfo, "address" | "port">;

export interface DataServerStats {
  requests: number;
  chunksSent: number;
  bytesSent: number;
  /** DROPS reports from tickets' owners (never answered). */
  dropReports: number;
  /** What those reports gave back to budgets, and how many of them a cap cut short. */
  credited: { datagrams: number; bytes: number; cappedReports: number };
  /** REQUESTs and DROPS reports dropped, by reason (a DROPS is never over budget). */
  dropped: {
    malformed: number;
    oversized: number;
    notRequest: number;
    unknownToken: number;
    foreignAddress: number;
    overBudget: number;
    /** From a source no reply can go to: port 0, or an address that is not an IP address. */
    unsendable: number;
    /** A bug of ours met while handling it (logged with its stack). */
    internalError: number;
  };
  /** Chunks the kernel refused to send (reported by the send callback, or thrown by send). */
  sendErrors: number;
}

/** Distinct internal-error stacks logged at most: a datagram that trips a bug may come a million times. */
const MAX_LOGGED_STACKS = 32;

export class DataServer {
  readonly stats: DataServerStats = {
    requests: 0,
    chunksSent: 0,
    bytesSent: 0,
    dropReports: 0,
    credited: { datagrams: 0, bytes: 0, cappedReports: 0 },
    dropped: {
      malformed: 0,
      oversized: 0,
      notRequest: 0,
      unknownToken: 0,
      foreignAddress: 0,
      overBudget: 0,
      unsendable: 0,
      internalError: 0,
    },
    sendErrors: 0,
  };
  private readonly loggedStacks = new Set<string>();
  /** One callback for every send: it runs once per datagram, so it is made once. */
  private readonly sent = (error: Error | null): void => {
    if (error) this.stats.sendErrors++;
  };
  private constructor(
    private readonly socket: Socket,
    private readonly tickets: TicketRegistry,
    private readonly options: DataServerOptions,
  ) {
    socket.on("message", (message, remote) => this.handle(message, remote));
    // A send error (an ICMP unreachable reported late, say) concerns one peer, not the server.
    socket.on("error", () => {});
  }

  static async start(tickets: TicketRegistry, options: DataServerOptions): Promise<DataServer> {
    // A burst of REQUESTs from many clients must not overflow the kernel's default ~208 KiB queue
    // (each queued datagram costs ~1 KiB of buffer): a drop costs that client a retransmission timeout.
    const socket = createSocket({
      type: options.host.includes(":") ? "udp6" : "udp4",
      ipv6Only: false,
      recvBufferSize: options.receiveBufferBytes,
    });
    // exclusive: in a cluster worker (--workers) a shared handle would let the primary spread one
    // port's datagrams over all workers, and a ticket lives in the worker that issued it.
    socket.bind({ port: options.port, address: options.host, exclusive: true });
    await Promise.race([
      once(socket, "listening"),
      once(socket, "error").then(([error]) => {
        throw error;
      }),
    ]);
    return new DataServer(socket, tickets, options);
  }

  private boundPort: number | undefined;

  get port(): number {
    // Read once: socket.address() is a getsockname(2) syscall, and every TICKET line needs the port.
    return (this.boundPort ??= this.socket.address().port);
  }

  /**
   * Handles one received datagram (the socket's "message" listener; public so tests can hand it
   * datagrams no real socket can send, from port 0). Whatever happens, one datagram can cost only
   * itself: an exception here is a bug of ours, which drops this datagram, is counted and logged,
   * and the server goes on.
   */
  handle(message: Buffer, remote: DatagramPeer): void {
    try {
      this.serve(message, remote);
    } catch (error) {
      this.stats.dropped.internalError++;
      this.logOnce(error, remote);
    }
  }

  private serve(message: Buffer, remote: DatagramPeer): void {
    // A source port of 0 cannot be answered (send() throws ERR_SOCKET_BAD_PORT), yet any host can
    // put it in a UDP header: such a datagram is not worth decoding.
    if (!sendable(remote)) return void this.stats.dropped.unsendable++;
    if (message.length > this.options.maxDatagramBytes) return void this.stats.dropped.oversized++;
    const datagram = decodeDatagram(message);
    if (!datagram) return void this.stats.dropped.malformed++;
    if (datagram.type === "chunk") return void this.stats.dropped.notRequest++;
    const ticket = this.tickets.find(datagram.token);
    if (!ticket) return void this.stats.dropped.unknownToken++;
    // Only the control connection's peer may collect (the vsftpd rule): a stolen token is useless
    // elsewhere, and only that peer may speak for the ticket's budget.
    if (canonicalAddress(remote.address) !== ticket.peerAddress) return void this.stats.dropped.foreignAddress++;
    if (datagram.type === "drops") return this.credit(ticket, datagram);
    this.stats.requests++;
    const events = this.options.events;
    const trace: DatagramTrace | undefined = events?.tracing
      ? {
          type: "udp",
          sessionId: ticket.sessionId,
          address: remote.address,
          port: remote.port,
          requestNumber: datagram.requestNumber,
          requestBytes: message.length,
          chunks: [],
          chunkBytes: [],
          dropped: null,
          atMs: Date.now(),
        }
      : undefined;
    let allowance = this.options.maxChunksPerRequest;
    ranges: for (const range of datagram.ranges) {
      const last = Math.min(range.first + Math.min(range.count, MAX_RANGE_CHUNKS), ticket.chunkCount);
      for (let index = range.first; index < last && allowance > 0; index++, allowance--) {
        const outcome = this.sendChunk(ticket, index, remote, datagram, trace);
        if (outcome === "overBudget") {
          this.stats.dropped.overBudget++;
          if (trace) trace.dropped = "overBudget";
          if (events?.active) {
            const address = ticket.peerAddress;
            events.emit({
              type: "limit",
              limit: "retransmitBudget",
              code: "OVER_BUDGET",
              address,
              sessionId: ticket.sessionId,
            });
          }
          break ranges;
        }
        if (outcome === "unsendable") break ranges;
      }
    }
    if (trace) events?.trace(trace);
  }

  /**
   * A DROPS report from the ticket's owner: its kernel's count of datagrams dropped on the socket
   * the client collects on. Never answered (amplification factor 0); the ticket's budget gets back
   * what the report adds, capped (TicketRegistry.credit).
   */
  private credit(ticket: DeliveryTicket, report: DropsDatagram): void {
    this.stats.dropReports++;
    const capBytes =
      this.options.bufferLossCreditDeliveries * fullDeliveryBytes(ticket.header.length, ticket.chunkCount);
    const credit = this.tickets.credit(ticket, report.drops, capBytes);
    this.stats.credited.datagrams += credit.datagrams;
    this.stats.credited.bytes += credit.bytes;
    if (credit.capped) this.stats.credited.cappedReports++;
  }

  /**
   * Sends chunk `index` in answer to `request`: in its version (a version-1 client gets version-1
   * chunks, as before) and echoing its request number, which makes every chunk an unambiguous
   * round-trip sample for the client.
   */
  private sendChunk(
    ticket: DeliveryTicket,
    index: number,
    remote: DatagramPeer,
    request: RequestDatagram,
    trace: DatagramTrace | undefined,
  ): "sent" | "overBudget" | "unsendable" {
    const offset = index * ticket.chunkPayloadBytes;
    const payload = ticket.header.subarray(offset, offset + ticket.chunkPayloadBytes);
    const datagram = encodeChunk({
      version: request.version,
      requestNumber: request.requestNumber,
      token: ticket.token,
      index,
      count: ticket.chunkCount,
      total: ticket.header.length,
      offset,
      payload,
    });
    if (!this.tickets.charge(ticket, index, datagram.length)) return "overBudget";
    try {
      // With a callback, an asynchronous failure (a lookup, EMSGSIZE, an unreachable reported
      // later) is passed to it rather than emitted; a synchronous one (a bad port or address
      // that slipped past sendable()) is thrown. Either concerns this peer only.
      this.socket.send(datagram, remote.port, remote.address, this.sent);
    } catch {
      this.stats.sendErrors++;
      this.stats.dropped.unsendable++;
      return "unsendable";
    }
    this.stats.chunksSent++;
    this.stats.bytesSent += datagram.length;
    if (trace) {
      trace.chunks.push(index);
      trace.chunkBytes.push(datagram.length);
    }
    return "sent";
  }

  /** Logs a bug once per distinct stack, with the stack: a datagram that trips one may be sent again and again. */
  private logOnce(error: unknown, remote: DatagramPeer): void {
    const detail = error instanceof Error ? (error.stack ?? error.message) : String(error);
    if (this.loggedStacks.has(detail) || this.loggedStacks.size >= MAX_LOGGED_STACKS) return;
    this.loggedStacks.add(detail);
    this.options.log?.(`internal error on a datagram from ${remote.address} port ${remote.port} (dropped): ${detail}`);
  }

  async close(): Promise<void> {
    await new Promise<void>((resolve) => this.socket.close(() => resolve()));
  }
}

/** Whether a reply can be addressed to this peer: a port from 1 to 65535 and an IP address. */
function sendable(remote: DatagramPeer): boolean {
  return Number.isInteger(remote.port) && remote.port > 0 && remote.port <= 65535 && isIP(remote.address) !== 0;
}
