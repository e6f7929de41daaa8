/**
 * The UDP data channel. It answers only well-formed REQUEST datagrams that carry a live token,
 * from the IP address the token was issued to, and never sends more for a ticket than its budget:
 * anything else is dropped in silence and counted, so the port cannot be used to reflect or
 * amplify traffic towards a third party.
 */
import { createSocket, type RemoteInfo, type Socket } from "node:dgram";
import { once } from "node:events";
import { decodeDatagram, encodeChunk, MAX_RANGE_CHUNKS } from "../protocol/datagram.js";
import { canonicalAddress, type DeliveryTicket, type TicketRegistry } from "./ticket-registry.js";

export interface DataServerOptions {
  host: string;
  port: number;
  maxDatagramBytes: number;
  /** Kernel receive queue size (the system may cap it: net.core.rmem_max). */
  receiveBufferBytes: number;
  /** Chunks one request may ask for, across all its ranges. */
  maxChunksPerRequest: number;
}

export interface DataServerStats {
  requests: number;
  chunksSent: number;
  bytesSent: number;
  dropped: {
    malformed: number;
    oversized: number;
    notRequest: number;
    unknownToken: number;
    foreignAddress: number;
    overBudget: number;
  };
}

export class DataServer {
  readonly stats: DataServerStats = {
    requests: 0,
    chunksSent: 0,
    bytesSent: 0,
    dropped: { malformed: 0, oversized: 0, notRequest: 0, unknownToken: 0, foreignAddress: 0, overBudget: 0 },
  };
  private constructor(
    private readonly socket: Socket,
    private readonly tickets: TicketRegistry,
    private readonly options: DataServerOptions,
  ) {
    socket.on("message", (message, remote) => this.onMessage(message, remote));
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
    socket.bind(options.port, options.host);
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

  private onMessage(message: Buffer, remote: RemoteInfo): void {
    if (message.length > this.options.maxDatagramBytes) return void this.stats.dropped.oversized++;
    const datagram = decodeDatagram(message);
    if (!datagram) return void this.stats.dropped.malformed++;
    if (datagram.type !== "request") return void this.stats.dropped.notRequest++;
    const ticket = this.tickets.find(datagram.token);
    if (!ticket) return void this.stats.dropped.unknownToken++;
    // Only the control connection's peer may collect (the vsftpd rule): a stolen token is useless elsewhere.
    if (canonicalAddress(remote.address) !== ticket.peerAddress) return void this.stats.dropped.foreignAddress++;
    this.stats.requests++;
    let allowance = this.options.maxChunksPerRequest;
    for (const range of datagram.ranges) {
      const last = Math.min(range.first + Math.min(range.count, MAX_RANGE_CHUNKS), ticket.chunkCount);
      for (let index = range.first; index < last && allowance > 0; index++, allowance--) {
        if (!this.sendChunk(ticket, index, remote)) return void this.stats.dropped.overBudget++;
      }
    }
  }

  private sendChunk(ticket: DeliveryTicket, index: number, remote: RemoteInfo): boolean {
    const offset = index * ticket.chunkPayloadBytes;
    const payload = ticket.header.subarray(offset, offset + ticket.chunkPayloadBytes);
    const datagram = encodeChunk({
      token: ticket.token,
      index,
      count: ticket.chunkCount,
      total: ticket.header.length,
      offset,
      payload,
    });
    if (!this.tickets.charge(ticket, index, datagram.length)) return false;
    this.stats.chunksSent++;
    this.stats.bytesSent += datagram.length;
    this.socket.send(datagram, remote.port, remote.address);
    return true;
  }

  async close(): Promise<void> {
    await new Promise<void>((resolve) => this.socket.close(() => resolve()));
  }
}
