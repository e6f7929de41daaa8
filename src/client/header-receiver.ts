/**
 * Collects one header over UDP: from a fresh ephemeral port, asks the server for a window of
 * chunks, keeps asking for what is missing (adaptive timeouts, bounded attempts, backoff),
 * reassembles, and checks the length and SHA-256 the TCP ticket announced. Duplicates,
 * reordering and corrupt datagrams are harmless: each chunk is checked (CRC-32) and stored once.
 * Only datagrams from the address and port the REQUESTs went to count (vsftpd's rule for its data
 * connection): anyone else who learnt the token, or guesses the port, is ignored. The whole
 * collection is bounded in time, even when chunks keep trickling in.
 */
import { createHash } from "node:crypto";
import { createSocket, type RemoteInfo, type Socket } from "node:dgram";
import { lookup } from "node:dns/promises";
import { once } from "node:events";
import { isIP } from "node:net";
import { HeadwireError } from "../errors.js";
import type { Ticket } from "../protocol/control.js";
import { decodeDatagram, encodeRequest, MAX_RANGES_PER_REQUEST, type ChunkRange } from "../protocol/datagram.js";
import type { ClientTrace } from "./control-connection.js";
import { canonicalHost } from "./ticket-trust.js";

export interface ReceiveOptions {
  /** First wait for a chunk before asking again, until a round trip has been measured. */
  chunkTimeoutMs: number;
  /** Bounds of the adaptive wait. */
  minChunkTimeoutMs: number;
  maxChunkTimeoutMs: number;
  /** Silent rounds in a row before giving up. */
  maxDeliveryAttempts: number;
  /** Chunks asked for and not yet received, at most. */
  windowChunks: number;
  /**
   * The longest a collection may take: a ticket without `ttl`, or with a longer one, is bounded by
   * this, so a server that drips chunks cannot hold the client forever.
   */
  maxTicketTtlMs: number;
}

export interface ReceiveStats {
  requestsSent: number;
  chunksReceived: number;
  duplicates: number;
  rejected: number;
  /** Datagrams from another address or port than the one asked: ignored. */
  foreign: number;
  silentRounds: number;
}

/** Where the REQUESTs go, and the only source whose datagrams are read. */
interface DataPeer {
  address: string;
  port: number;
  /** The address as canonicalHost spells it, to compare sources with. */
  canonical: string;
}

/**
 * Requests sent after a silence go out this many times: on a lossy path a lost re-request costs a
 * whole timeout, a duplicate only one more chunk (within the server's per-ticket budget).
 */
const REASK_COPIES = 2;

/** A UDP socket on a fresh ephemeral port, bound and ready. */
export async function bindFreshPort(family: "udp4" | "udp6"): Promise<Socket> {
  const socket = createSocket(family);
  socket.on("error", () => {});
  socket.bind(0);
  await once(socket, "listening");
  return socket;
}

/**
 * Collects the ticket's header. `prebound` is a fresh socket bound while the ticket was awaited
 * (binding is off the critical path then); it is used when its family fits, and closed either way.
 */
export async function receiveHeader(
  ticket: Ticket,
  options: ReceiveOptions,
  trace?: ClientTrace,
  prebound?: Promise<Socket>,
): Promise<{ header: Buffer; stats: ReceiveStats }> {
  const peer = await resolveDataPeer(ticket.udpHost, ticket.udpPort);
  const family = isIP(peer.address) === 6 ? "udp6" : "udp4";
  let socket = await prebound?.catch(() => undefined);
  if (socket && socket.address().family !== (family === "udp6" ? "IPv6" : "IPv4")) {
    socket.close();
    socket = undefined;
  }
  socket ??= await bindFreshPort(family);
  try {
    return await new Reassembly(socket, peer, ticket, options, trace).run();
  } finally {
    socket.close();
  }
}

/**
 * The address REQUESTs go to: a ticket's host may be a name (a server run with --advertise), and
 * chunks are compared with one address, so it is resolved once, here.
 */
async function resolveDataPeer(host: string, port: number): Promise<DataPeer> {
  const peer = (address: string): DataPeer => ({ address, port, canonical: canonicalHost(address) });
  if (isIP(host) !== 0) return peer(host);
  try {
    return peer((await lookup(host)).address);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code ?? (error as Error).message;
    throw new HeadwireError("DELIVERY_FAILED", `cannot resolve the ticket's UDP host ${host} (${code})`);
  }
}

/** RFC 6298 §2: smoothed round-trip time and its variation give the retransmission timeout. */
class RetransmissionTimer {
  private srttMs: number | undefined;
  private rttvarMs = 0;
  private rtoMs: number;

  constructor(private readonly options: ReceiveOptions) {
    this.rtoMs = options.chunkTimeoutMs;
  }

  sample(rttMs: number): void {
    if (this.srttMs === undefined) {
      this.srttMs = rttMs;
      this.rttvarMs = rttMs / 2;
    } else {
      this.rttvarMs = 0.75 * this.rttvarMs + 0.25 * Math.abs(this.srttMs - rttMs);
      this.srttMs = 0.875 * this.srttMs + 0.125 * rttMs;
    }
    this.rtoMs = this.srttMs + 4 * this.rttvarMs;
  }

  /** The wait after `silentRounds` rounds without progress: doubled each time, within bounds. */
  timeoutMs(silentRounds: number): number {
    const base = Math.max(this.options.minChunkTimeoutMs, this.rtoMs);
    return Math.min(this.options.maxChunkTimeoutMs, base * 2 ** silentRounds);
  }
}

class Reassembly {
  private readonly header: Buffer;
  private readonly received: Uint8Array;
  /** When each chunk was first asked for; chunks asked again give no round-trip sample (Karn). */
  private readonly askedAtMs: Float64Array;
  private readonly askedAgain: Uint8Array;
  private receivedCount = 0;
  /** Chunks below this index have all been asked for at least once. */
  private nextToAsk = 0;
  private readonly timer: RetransmissionTimer;
  readonly stats: ReceiveStats = {
    requestsSent: 0,
    chunksReceived: 0,
    duplicates: 0,
    rejected: 0,
    foreign: 0,
    silentRounds: 0,
  };

  constructor(
    private readonly socket: Socket,
    private readonly peer: DataPeer,
    private readonly ticket: Ticket,
    private readonly options: ReceiveOptions,
    private readonly trace?: ClientTrace,
  ) {
    this.header = Buffer.alloc(ticket.bytes);
    this.received = new Uint8Array(ticket.chunks);
    this.askedAtMs = new Float64Array(ticket.chunks);
    this.askedAgain = new Uint8Array(ticket.chunks);
    this.timer = new RetransmissionTimer(options);
  }

  run(): Promise<{ header: Buffer; stats: ReceiveStats }> {
    return new Promise((resolve, reject) => {
      let timeout: NodeJS.Timeout | undefined;
      let silentRounds = 0;
      // The server forgets the ticket after its ttl: asking later is pointless. A ticket without
      // one, or with a longer one than this client allows, gets the client's bound: chunks that
      // keep trickling in (each one resets the silent rounds) must not hold the query forever.
      const ttlMs = Math.min(this.ticket.ttlMs ?? Infinity, this.options.maxTicketTtlMs);
      const expiresAt = performance.now() + ttlMs;
      const expired = () =>
        new HeadwireError(
          "DELIVERY_FAILED",
          this.ticket.ttlMs !== undefined && this.ticket.ttlMs <= this.options.maxTicketTtlMs
            ? `${this.receivedCount} of ${this.ticket.chunks} chunks arrived before the ticket expired (${ttlMs} ms)`
            : `${this.receivedCount} of ${this.ticket.chunks} chunks arrived in ${ttlMs} ms, the longest this client waits for a ticket (maxTicketTtlMs)`,
        );
      const expiry = setTimeout(() => finish(expired()), ttlMs);
      const finish = (error?: HeadwireError) => {
        clearTimeout(timeout);
        clearTimeout(expiry);
        this.socket.removeAllListeners("message");
        if (error) return reject(error);
        const digest = createHash("sha256").update(this.header).digest();
        if (!digest.equals(this.ticket.sha256)) {
          return reject(new HeadwireError("DELIVERY_FAILED", "the reassembled header does not match its SHA-256"));
        }
        resolve({ header: this.header, stats: this.stats });
      };
      const arm = () => {
        clearTimeout(timeout);
        const untilExpiry = Math.max(1, expiresAt - performance.now());
        timeout = setTimeout(onSilence, Math.min(this.timer.timeoutMs(silentRounds), untilExpiry));
      };
      const onSilence = () => {
        silentRounds++;
        this.stats.silentRounds++;
        if (performance.now() >= expiresAt) return finish(expired());
        if (silentRounds >= this.options.maxDeliveryAttempts) {
          return finish(
            new HeadwireError(
              "DELIVERY_FAILED",
              `${this.receivedCount} of ${this.ticket.chunks} chunks arrived after ${silentRounds} attempts`,
            ),
          );
        }
        this.askMissing();
        arm();
      };
      this.socket.on("message", (message: Buffer, from: RemoteInfo) => {
        if (from.port !== this.peer.port || canonicalHost(from.address) !== this.peer.canonical) {
          this.stats.foreign++;
          return;
        }
        if (!this.accept(message)) return;
        silentRounds = 0;
        if (this.receivedCount === this.ticket.chunks) return finish();
        this.askAhead();
        arm();
      });
      this.askAhead();
      arm();
    });
  }

  /** Stores a valid chunk of this ticket; true when it was new. */
  private accept(message: Buffer): boolean {
    const datagram = decodeDatagram(message);
    if (
      !datagram ||
      datagram.type !== "chunk" ||
      !datagram.token.equals(this.ticket.token) ||
      datagram.count !== this.ticket.chunks ||
      datagram.total !== this.ticket.bytes
    ) {
      this.stats.rejected++;
      return false;
    }
    const { index } = datagram;
    if (this.received[index]) {
      this.stats.duplicates++;
      return false;
    }
    this.trace?.(
      "udp",
      "recv",
      `CHUNK ${index + 1}/${datagram.count} (${message.length} bytes, ${datagram.payload.length} of the header)`,
    );
    datagram.payload.copy(this.header, datagram.offset);
    this.received[index] = 1;
    this.receivedCount++;
    this.stats.chunksReceived++;
    if (!this.askedAgain[index]) this.timer.sample(performance.now() - this.askedAtMs[index]!);
    return true;
  }

  /** Keeps the window full: asks for new chunks so that at most windowChunks are outstanding. */
  private askAhead(): void {
    const outstanding = this.nextToAsk - this.receivedBelow(this.nextToAsk);
    const room = this.options.windowChunks - outstanding;
    if (room <= 0 || this.nextToAsk >= this.ticket.chunks) return;
    const count = Math.min(room, this.ticket.chunks - this.nextToAsk);
    const now = performance.now();
    for (let i = this.nextToAsk; i < this.nextToAsk + count; i++) this.askedAtMs[i] = now;
    this.send([{ first: this.nextToAsk, count }], 1);
    this.nextToAsk += count;
  }

  /** After silence: asks again for every chunk asked for and missing, up to one window. */
  private askMissing(): void {
    const ranges: ChunkRange[] = [];
    let budget = this.options.windowChunks;
    for (let i = 0; i < this.nextToAsk && budget > 0 && ranges.length < MAX_RANGES_PER_REQUEST; i++) {
      if (this.received[i]) continue;
      this.askedAgain[i] = 1;
      const last = ranges[ranges.length - 1];
      if (last && last.first + last.count === i) last.count++;
      else ranges.push({ first: i, count: 1 });
      budget--;
    }
    if (ranges.length > 0) this.send(ranges, REASK_COPIES);
    else this.askAhead();
  }

  private receivedBelow(limit: number): number {
    let count = 0;
    for (let i = 0; i < limit; i++) count += this.received[i]!;
    return count;
  }

  private send(ranges: ChunkRange[], copies: number): void {
    const datagram = encodeRequest(this.ticket.token, ranges);
    if (this.trace) {
      const wanted = ranges.map((r) => (r.count === 1 ? `${r.first}` : `${r.first}-${r.first + r.count - 1}`));
      const from = this.socket.address().port;
      this.trace("udp", "send", `REQUEST chunks ${wanted.join(",")} (${datagram.length} bytes, from port ${from})`);
    }
    for (let copy = 0; copy < copies; copy++) {
      this.stats.requestsSent++;
      this.socket.send(datagram, this.peer.port, this.peer.address);
    }
  }
}
