/**
 * Delivery tickets: what a UDP request may collect. A ticket is issued on a TCP session, holds
 * one header, and is honoured only from that session's IP address (as vsftpd accepts a data
 * connection only from the control connection's peer) and only until it expires.
 */
import { randomBytes } from "node:crypto";
import { TOKEN_BYTES } from "../protocol/datagram.js";

export interface DeliveryTicket {
  token: Buffer;
  header: Buffer;
  /** IP address of the TCP session the ticket was issued on (IPv4-mapped forms unwrapped). */
  peerAddress: string;
  sessionId: number;
  expiresAtMs: number;
  chunkPayloadBytes: number;
  chunkCount: number;
  /** UDP payload bytes sent for this ticket so far, and the most that may ever be sent. */
  bytesSent: number;
  budgetBytes: number;
  /** Distinct chunks sent at least once; at chunkCount the ticket has been delivered once. */
  chunksSentOnce: Set<number>;
}

export interface TicketRegistryOptions {
  ticketTtlMs: number;
  now?: () => number;
}

export class TicketRegistry {
  private readonly tickets = new Map<string, DeliveryTicket>();
  private readonly now: () => number;
  private readonly sweeper: NodeJS.Timeout;

  constructor(private readonly options: TicketRegistryOptions) {
    this.now = options.now ?? Date.now;
    this.sweeper = setInterval(() => this.sweep(), Math.max(1000, options.ticketTtlMs)).unref();
  }

  issue(fields: Omit<DeliveryTicket, "token" | "expiresAtMs" | "bytesSent" | "chunksSentOnce">): DeliveryTicket {
    const ticket: DeliveryTicket = {
      ...fields,
      token: randomBytes(TOKEN_BYTES), // 128 bits from the CSPRNG
      expiresAtMs: this.now() + this.options.ticketTtlMs,
      bytesSent: 0,
      chunksSentOnce: new Set(),
    };
    this.tickets.set(ticket.token.toString("hex"), ticket);
    return ticket;
  }

  /** The live ticket for this token, or undefined (unknown or expired; expired ones are dropped). */
  find(token: Buffer): DeliveryTicket | undefined {
    const key = token.toString("hex");
    const ticket = this.tickets.get(key);
    if (ticket && ticket.expiresAtMs <= this.now()) {
      this.tickets.delete(key);
      return undefined;
    }
    return ticket;
  }

  /** Drops the tickets of a session that has closed: nobody can use them any more. */
  revokeSession(sessionId: number): void {
    for (const [key, ticket] of this.tickets) if (ticket.sessionId === sessionId) this.tickets.delete(key);
  }

  /** Tickets still live and not yet sent in full at least once. */
  pendingDeliveries(): number {
    this.sweep();
    let pending = 0;
    for (const ticket of this.tickets.values()) if (ticket.chunksSentOnce.size < ticket.chunkCount) pending++;
    return pending;
  }

  get size(): number {
    return this.tickets.size;
  }

  sweep(): void {
    const now = this.now();
    for (const [key, ticket] of this.tickets) if (ticket.expiresAtMs <= now) this.tickets.delete(key);
  }

  close(): void {
    clearInterval(this.sweeper);
    this.tickets.clear();
  }
}

/** "::ffff:127.0.0.1" and "127.0.0.1" are the same peer. */
export function canonicalAddress(address: string): string {
  const lower = address.toLowerCase();
  return lower.startsWith("::ffff:") && lower.includes(".") ? lower.slice(7) : lower;
}
