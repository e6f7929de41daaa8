/**
 * Delivery tickets: what a UDP request may collect. A ticket is issued on a TCP session, holds
 * one header, and is honoured only from that session's IP address (as vsftpd accepts a data
 * connection only from the control connection's peer) and only until it expires.
 */
import { randomFillSync } from "node:crypto";
import { HeadwireError } from "../errors.js";
import { CHUNK_OVERHEAD_BYTES, TOKEN_BYTES } from "../protocol/datagram.js";

export interface DeliveryTicket {
  token: Buffer;
  /** The token in hex: the registry's key, and what the TICKET line says (made once). */
  tokenHex: string;
  /** Set when the registry lets go of it (expired, revoked, or its session's oldest past the cap). */
  removed: boolean;
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
  /**
   * Which chunks were sent at least once (allocated on the first send of a multi-chunk header),
   * and how many: at chunkCount the ticket has been delivered once.
   */
  sentOnce: Uint8Array | undefined;
  distinctChunksSent: number;
  /** Chunk datagrams sent for this ticket so far (every copy). */
  datagramsSent: number;
  /** The highest DROPS count the client has reported: a report credits only what it adds. */
  reportedDrops: number;
  /** Chunk datagrams, and bytes, given back to the budget for the client's own drops. */
  creditedDatagrams: number;
  creditedBytes: number;
}

/** What one DROPS report gave back to a ticket's budget, and whether a cap cut it. */
export interface BufferLossCredit {
  datagrams: number;
  bytes: number;
  capped: boolean;
}

/** The fields a ticket starts with: the counters all start at 0. */
type TicketCounters =
  | "token"
  | "tokenHex"
  | "removed"
  | "expiresAtMs"
  | "bytesSent"
  | "sentOnce"
  | "distinctChunksSent"
  | "datagramsSent"
  | "reportedDrops"
  | "creditedDatagrams"
  | "creditedBytes";

export interface TicketRegistryOptions {
  ticketTtlMs: number;
  /** Live tickets one session may hold; issuing one more revokes its oldest. */
  maxTicketsPerSession: number;
  /**
   * Header bytes all live tickets may hold at once (each distinct header Buffer counted once;
   * unbounded when omitted). Past it, issue() refuses with SERVER_BUSY until tickets expire or
   * are revoked.
   */
  maxTicketBytes?: number;
  now?: () => number;
}

/** A ticket not asked for this long after its issue is taken as abandoned by a stopping server. */
const UNCOLLECTED_AFTER_MS = 1000;

export class TicketRegistry {
  /** Bytes charged to tickets' budgets since the start, all tickets together (metrics). */
  budgetBytesSpent = 0;
  /** In insertion order, which is expiry order: every ticket lives the same ticketTtlMs. */
  private readonly tickets = new Map<string, DeliveryTicket>();
  private readonly bySession = new Map<number, SessionTickets>();
  private readonly now: () => number;
  private maxTicketBytes: number;
  /**
   * Bytes of the distinct header Buffers the tickets in the map hold, and how many tickets hold
   * each. Tickets for one cached entry share its Buffer, so a flood of cache hits costs its bytes
   * once; every uncacheable miss (and every read from Redis) is a Buffer of its own, counted in
   * full. Bytes the cache holds too are counted while a ticket holds them: an overestimate of what
   * tickets alone keep alive, never an underestimate.
   */
  private heldBytes = 0;
  /** A count in a box: holding or releasing a held header is one lookup, not a get and a set. */
  private readonly holders = new Map<Buffer, { count: number }>();
  private readonly sweeper: NodeJS.Timeout;
  private pool = Buffer.alloc(0);
  private poolOffset = 0;
  /** Woken when a delivery completes or tickets go away (deliveriesSettled waits on it). */
  private readonly settleWaiters = new Set<() => void>();

  constructor(private options: TicketRegistryOptions) {
    this.now = options.now ?? Date.now;
    this.maxTicketBytes = options.maxTicketBytes ?? Infinity;
    this.sweeper = setInterval(() => this.sweep(), Math.min(1000, options.ticketTtlMs)).unref();
  }

  /**
   * New limits (a reloaded config) for the tickets issued from now on: live tickets are not
   * revoked, a session over a lowered cap loses its oldest ones as it is issued new ones, and a
   * lowered byte budget refuses new tickets until enough expire. (ticketTtlMs is not here: a
   * ticket's issue time is read back from its expiry and that lifetime.)
   */
  reconfigure(part: Required<Pick<TicketRegistryOptions, "maxTicketsPerSession" | "maxTicketBytes">>): void {
    this.options = { ...this.options, maxTicketsPerSession: part.maxTicketsPerSession };
    this.maxTicketBytes = part.maxTicketBytes;
  }

  /** 128 bits from the CSPRNG, taken from a 4 KiB pool refilled (never reused) when spent. */
  private newToken(): Buffer {
    if (this.poolOffset + TOKEN_BYTES > this.pool.length) {
      this.pool = randomFillSync(Buffer.allocUnsafe(256 * TOKEN_BYTES));
      this.poolOffset = 0;
    }
    const token = this.pool.subarray(this.poolOffset, this.poolOffset + TOKEN_BYTES);
    this.poolOffset += TOKEN_BYTES;
    return token;
  }

  /**
   * Header bytes the live tickets hold, each distinct Buffer once (expired tickets are swept
   * first, so the figure is current).
   */
  get bytes(): number {
    this.sweep();
    return this.heldBytes;
  }

  /**
   * A new ticket; throws SERVER_BUSY when its header would take the live tickets past
   * maxTicketBytes (counting the bytes the session's oldest ticket gives back, if this one
   * revokes it).
   */
  issue(fields: Omit<DeliveryTicket, TicketCounters>): DeliveryTicket {
    if (!this.fits(fields.header, fields.sessionId)) throw ticketBudgetReached();
    const token = this.newToken();
    const ticket: DeliveryTicket = {
      token,
      tokenHex: token.toString("hex"),
      removed: false,
      header: fields.header,
      peerAddress: fields.peerAddress,
      sessionId: fields.sessionId,
      expiresAtMs: this.now() + this.options.ticketTtlMs,
      chunkPayloadBytes: fields.chunkPayloadBytes,
      chunkCount: fields.chunkCount,
      bytesSent: 0,
      budgetBytes: fields.budgetBytes,
      sentOnce: undefined,
      distinctChunksSent: 0,
      datagramsSent: 0,
      reportedDrops: 0,
      creditedDatagrams: 0,
      creditedBytes: 0,
    };
    const key = ticket.tokenHex;
    this.tickets.set(key, ticket);
    this.hold(ticket.header);
    let held = this.bySession.get(ticket.sessionId);
    if (!held) this.bySession.set(ticket.sessionId, (held = new SessionTickets()));
    held.add(ticket);
    // A loop, not an if: after a reload lowered the cap, a session may hold more than one too many.
    while (held.live > this.options.maxTicketsPerSession) {
      const oldest = held.oldest()!;
      this.remove(oldest.tokenHex, oldest);
    }
    return ticket;
  }

  /** The live ticket for this token, or undefined (unknown or expired; expired ones are dropped). */
  find(token: Buffer): DeliveryTicket | undefined {
    const key = token.toString("hex");
    const ticket = this.tickets.get(key);
    if (ticket && ticket.expiresAtMs <= this.now()) {
      this.remove(key, ticket);
      return undefined;
    }
    return ticket;
  }

  /**
   * Charges one chunk datagram of `bytes` to the ticket's budget; false (nothing charged) when it
   * would go over. Tracks which chunks went out at least once: a ticket whose every chunk did has
   * been delivered once, which is what a stopping server waits for.
   */
  charge(ticket: DeliveryTicket, index: number, bytes: number): boolean {
    if (ticket.bytesSent + bytes > ticket.budgetBytes) return false;
    ticket.bytesSent += bytes;
    ticket.datagramsSent++;
    this.budgetBytesSpent += bytes;
    const before = ticket.distinctChunksSent;
    if (ticket.chunkCount === 1) ticket.distinctChunksSent = 1;
    else {
      ticket.sentOnce ??= new Uint8Array(ticket.chunkCount);
      if (!ticket.sentOnce[index]) {
        ticket.sentOnce[index] = 1;
        ticket.distinctChunksSent++;
      }
    }
    if (before < ticket.chunkCount && ticket.distinctChunksSent >= ticket.chunkCount) this.wakeSettleWaiters();
    return true;
  }

  /**
   * Gives back to the ticket's budget the datagrams its client reports its own kernel dropped
   * (`drops`, cumulative for the client's socket): only what the report adds to the highest one
   * before it, so duplicated or reordered reports never credit twice. Each drop is worth one chunk
   * datagram of the header's largest size: the report cannot say which chunks were lost, and a
   * credit at the mean size would fall short of sending them again whenever the last chunk is
   * the short one. Capped by the chunk datagrams actually sent (a client cannot have lost more
   * than it was sent) and by `capBytes` given back in all: the server cannot check the client's
   * kernel, so a client that lies gets at most `capBytes` more.
   */
  credit(ticket: DeliveryTicket, drops: number, capBytes: number): BufferLossCredit {
    const newDrops = Math.max(0, drops - ticket.reportedDrops);
    ticket.reportedDrops = Math.max(ticket.reportedDrops, drops);
    const unaccounted = Math.max(0, ticket.datagramsSent - ticket.creditedDatagrams);
    let datagrams = Math.min(newDrops, unaccounted);
    const largest = Math.min(ticket.chunkPayloadBytes, ticket.header.length) + CHUNK_OVERHEAD_BYTES;
    const bytes = Math.max(0, Math.min(datagrams * largest, capBytes - ticket.creditedBytes));
    // A credit cut by the cap counts the datagrams it still pays for (the last one maybe in part).
    if (bytes < datagrams * largest) datagrams = Math.ceil(bytes / largest);
    ticket.creditedDatagrams += datagrams;
    ticket.creditedBytes += bytes;
    ticket.budgetBytes += bytes;
    return { datagrams, bytes, capped: datagrams < newDrops };
  }

  /**
   * Whether a ticket for `header` fits the budget now: a Buffer already held costs nothing more,
   * and the bytes the session's oldest ticket gives back (when this one revokes it) are counted.
   */
  private fits(header: Buffer, sessionId: number): boolean {
    if (this.holders.has(header)) return true;
    let bytes = this.bytes + header.length;
    const held = this.bySession.get(sessionId);
    if (held && held.live >= this.options.maxTicketsPerSession) {
      const oldest = held.oldest();
      if (oldest && this.holders.get(oldest.header)?.count === 1) bytes -= oldest.header.length;
    }
    return bytes <= this.maxTicketBytes;
  }

  private hold(header: Buffer): void {
    const held = this.holders.get(header);
    if (held) return void held.count++;
    this.heldBytes += header.length;
    this.holders.set(header, { count: 1 });
  }

  private release(header: Buffer): void {
    const held = this.holders.get(header);
    if (!held) return;
    if (held.count > 1) return void held.count--;
    this.holders.delete(header);
    this.heldBytes -= header.length;
  }

  private remove(key: string, ticket: DeliveryTicket): void {
    if (ticket.removed) return;
    ticket.removed = true;
    if (this.tickets.delete(key)) this.release(ticket.header);
    const held = this.bySession.get(ticket.sessionId);
    if (held && held.removed() === 0) this.bySession.delete(ticket.sessionId);
  }

  /** Drops the tickets of a session that has closed: nobody can use them any more. */
  revokeSession(sessionId: number): void {
    const held = this.bySession.get(sessionId);
    if (!held) return;
    for (const ticket of held.liveTickets()) {
      ticket.removed = true;
      if (this.tickets.delete(ticket.tokenHex)) this.release(ticket.header);
    }
    this.bySession.delete(sessionId);
    this.wakeSettleWaiters();
  }

  /**
   * Tickets a stopping server waits for: live, not yet sent in full once, and being collected
   * (or issued under UNCOLLECTED_AFTER_MS ago).
   */
  pendingDeliveries(): number {
    this.sweep();
    const now = this.now();
    let pending = 0;
    for (const ticket of this.tickets.values()) {
      if (ticket.distinctChunksSent >= ticket.chunkCount) continue;
      // A client collects right after its TICKET: one that has not asked at all by now is not
      // collecting, and a shutdown does not wait for it.
      const issuedAtMs = ticket.expiresAtMs - this.options.ticketTtlMs;
      if (ticket.bytesSent > 0 || now - issuedAtMs < UNCOLLECTED_AFTER_MS) pending++;
    }
    return pending;
  }

  /**
   * Resolves once no delivery is pending, or after timeoutMs. Woken by completed deliveries and
   * revoked sessions, and by a timer at the next moment a pending ticket stops counting (it
   * expires, or it goes uncollected past UNCOLLECTED_AFTER_MS): no polling.
   */
  async deliveriesSettled(timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (this.pendingDeliveries() > 0) {
      const remainingMs = deadline - Date.now();
      if (remainingMs <= 0) return;
      await new Promise<void>((resolve) => {
        const wake = (): void => {
          clearTimeout(timer);
          this.settleWaiters.delete(wake);
          resolve();
        };
        const timer = setTimeout(wake, Math.min(remainingMs, this.nextSettleChangeMs()));
        timer.unref();
        this.settleWaiters.add(wake);
      });
    }
  }

  /** How long until pendingDeliveries() can change without any delivery happening. */
  private nextSettleChangeMs(): number {
    const now = this.now();
    let next = Infinity;
    for (const ticket of this.tickets.values()) {
      if (ticket.distinctChunksSent >= ticket.chunkCount) continue;
      next = Math.min(next, ticket.expiresAtMs - now);
      if (ticket.bytesSent === 0) {
        const issuedAtMs = ticket.expiresAtMs - this.options.ticketTtlMs;
        next = Math.min(next, issuedAtMs + UNCOLLECTED_AFTER_MS - now);
      }
    }
    // At least 1 ms, so a clock that does not move (a test's) cannot spin the loop.
    return Math.max(1, Math.ceil(next));
  }

  private wakeSettleWaiters(): void {
    for (const wake of [...this.settleWaiters]) wake();
  }

  get size(): number {
    return this.tickets.size;
  }

  /** Expired tickets are at the front: stop at the first live one. */
  sweep(): void {
    const now = this.now();
    for (const [key, ticket] of this.tickets) {
      if (ticket.expiresAtMs > now) break;
      this.remove(key, ticket);
    }
  }

  close(): void {
    clearInterval(this.sweeper);
    this.tickets.clear();
    this.holders.clear();
    this.heldBytes = 0;
    this.bySession.clear();
    this.wakeSettleWaiters();
  }
}

/**
 * One session's tickets in the order they were issued (which is expiry order), as a queue: the
 * oldest live one is found at the front, removed ones are skipped (a flag, not a search), and
 * the front is trimmed as they go. What a Set of keys did, without a hash per step.
 */
class SessionTickets {
  private queue: DeliveryTicket[] = [];
  private head = 0;
  live = 0;

  add(ticket: DeliveryTicket): void {
    this.queue.push(ticket);
    this.live++;
  }

  /** One of this session's tickets was removed; how many live ones are left. */
  removed(): number {
    this.live--;
    this.trim();
    return this.live;
  }

  oldest(): DeliveryTicket | undefined {
    this.trim();
    return this.queue[this.head];
  }

  liveTickets(): DeliveryTicket[] {
    return this.queue.slice(this.head).filter((ticket) => !ticket.removed);
  }

  /** Skips removed tickets at the front; drops the skipped part once it is half the array. */
  private trim(): void {
    while (this.head < this.queue.length && this.queue[this.head]!.removed) this.head++;
    if (this.head >= 32 && this.head * 2 >= this.queue.length) {
      this.queue = this.queue.slice(this.head);
      this.head = 0;
    }
  }
}

/** What a query past maxTicketBytes is told. */
export function ticketBudgetReached(): HeadwireError<"SERVER_BUSY"> {
  return new HeadwireError("SERVER_BUSY", "ticket memory budget reached; retry later");
}

/** "::ffff:127.0.0.1" and "127.0.0.1" are the same peer. */
export function canonicalAddress(address: string): string {
  const lower = address.toLowerCase();
  return lower.startsWith("::ffff:") && lower.includes(".") ? lower.slice(7) : lower;
}
