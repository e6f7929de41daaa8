/**
 * Collects one header over UDP: from a fresh ephemeral port, asks the server for chunks in
 * numbered requests, as the congestion window allows and paced over the round trip, asks again
 * for what is lost (a gap behind later answers, or a retransmission timeout), reassembles, and checks the length and SHA-256 the TCP ticket announced. Duplicates,
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
import {
  decodeDatagram,
  encodeDrops,
  encodeRequest,
  MAX_DROPS,
  MAX_REQUEST_NUMBER,
  type ChunkRange,
} from "../protocol/datagram.js";
import { backlogChunks, CongestionWindow, pacingRatePerMs } from "./congestion-window.js";
import { RttEstimator } from "./rtt-estimator.js";
import { DropsReporter, readSocketDrops } from "./socket-drops.js";
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
  /** Chunks asked for and not yet received, at most: the receive window, the congestion window's cap. */
  windowChunks: number;
  /**
   * When not one datagram has come back from the server's UDP port this long after the first
   * request, UDP is taken as blocked on this path: UDP_SILENT. Default SILENT_AFTER_MS.
   */
  silentAfterMs?: number;
  /**
   * The longest a collection may take: a ticket without `ttl`, or with a longer one, is bounded by
   * this, so a server that drips chunks cannot hold the client forever.
   */
  maxTicketTtlMs: number;
  /** The socket's receive buffer (SO_RCVBUF, capped at net.core.rmem_max); CLIENT_RECEIVE_BUFFER_BYTES by default. */
  recvBufferBytes?: number;
}

export interface ReceiveStats {
  requestsSent: number;
  chunksReceived: number;
  duplicates: number;
  rejected: number;
  /** Datagrams from another address or port than the one asked: ignored. */
  foreign: number;
  silentRounds: number;
  /** The wait that expired, for each silent round in turn (RFC 6298 back-off shows here). */
  silentRoundWaitsMs: number[];
  /** Datagrams the kernel dropped on this socket (its receive buffer full), as last read; DROPS reports sent. */
  dropsSeen: number;
  dropReportsSent: number;
}

/** Where the REQUESTs go, and the only source whose datagrams are read. */
interface DataPeer {
  address: string;
  port: number;
  /** The address as canonicalHost spells it, to compare sources with. */
  canonical: string;
}

/** silentAfterMs when the caller gives none (as CLIENT_SETTINGS.silentAfterMs). */
export const SILENT_AFTER_MS = 4000;

/**
 * The client socket's receive buffer: a full window of the largest datagrams (64 × 64 KiB would be
 * absurd; 64 × ~1.3 KiB of payload costs ~64 × 2.3 KiB of kernel accounting) with room for a
 * process that pauses a while. Linux caps it at net.core.rmem_max (208 KiB by default).
 */
export const CLIENT_RECEIVE_BUFFER_BYTES = 1024 * 1024;

/** RFC 9002 §7.2: the initial window, 10 datagrams. */
export const INITIAL_WINDOW_CHUNKS = 10;

/** Chunks one REQUEST asks for at most: a lost request then loses few chunks' worth of round trip. */
const MAX_CHUNKS_PER_ASK = 4;

/**
 * Probes per initial RTO while the server is silent: at 30 % loss each way (and 5 % corruption) a
 * probe's round trip fails about half the time, so 4 s of probes every 250 ms give a spurious
 * UDP_SILENT about once in 10⁴ queries. Each probe asks for one chunk: it costs the server's budget
 * one chunk at most, and the budget's floor (MIN_BUDGET_DATAGRAMS) covers a dozen.
 */
const PROBES_PER_RTO = 4;

/**
 * Once round trips are measured, a tail loss probe (RFC 8985 §7) goes out after this many smoothed
 * RTTs without a new chunk, and again each time, without the RTO's back-off: on a lossy path the
 * last missing chunks would otherwise wait 1, 2, 4, 8 RTOs.
 */
const PROBE_AFTER_SRTTS = 2;

/**
 * In the tail (every chunk asked for, some still missing) probes go out every half SRTT: at 30 %
 * loss each way half the round trips fail, and the slowest of 226 chunks would need about seven
 * rounds of RTOs, more than a ticket lives. A probe is one request of at most MAX_CHUNKS_PER_ASK
 * chunks, so this costs at most 8 chunks per round trip, and the server's budget bounds it.
 */
const TAIL_PROBE_SRTTS = 0.5;

/** RFC 9002 §6.1.1: a request answered three numbers later than another means that one was lost. */
const REQUEST_THRESHOLD = 3;

/** RFC 9002 §6.1.2: or it is older than 9/8 of the round trip when a later one is answered. */
const TIME_THRESHOLD = 9 / 8;

/**
 * The family each socket bindFreshPort made was bound in: receiveHeader checks a prebound socket
 * against the ticket without a getsockname(2) per query (a 10,000-URL batch makes 10,000 sockets).
 */
const boundFamily = new WeakMap<Socket, "udp4" | "udp6">();

/** A UDP socket on a fresh ephemeral port, bound and ready, its receive buffer sized for a window. */
export async function bindFreshPort(
  family: "udp4" | "udp6",
  recvBufferBytes = CLIENT_RECEIVE_BUFFER_BYTES,
): Promise<Socket> {
  const socket = createSocket({ type: family, recvBufferSize: recvBufferBytes });
  socket.on("error", () => {});
  socket.bind(0);
  await once(socket, "listening");
  boundFamily.set(socket, family);
  return socket;
}

function familyOf(socket: Socket): "udp4" | "udp6" {
  return boundFamily.get(socket) ?? (socket.address().family === "IPv6" ? "udp6" : "udp4");
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
  if (socket && familyOf(socket) !== family) {
    socket.close();
    socket = undefined;
  }
  socket ??= await bindFreshPort(family, options.recvBufferBytes);
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

/** One REQUEST sent and not yet settled: what it asked for, and when. */
interface SentRequest {
  number: number;
  sentAtMs: number;
  /** Its chunks still missing and counted in flight. */
  chunks: Set<number>;
}

class Reassembly {
  private readonly header: Buffer;
  private readonly received: Uint8Array;
  /** The request each chunk in flight was last asked in (0: not in flight). */
  private readonly askedIn: Uint32Array;
  private receivedCount = 0;
  /** Chunks below this index have all been asked for at least once. */
  private nextToAsk = 0;
  /** Chunks taken for lost, to ask again before any new one. */
  private readonly lost: number[] = [];
  private readonly inFlight = new Map<number, SentRequest>();
  /**
   * When each request left, by number, kept after it is taken for lost: a late chunk still gives a
   * true sample. Probes (one-chunk requests outside the window) are here too.
   */
  private readonly sentAtMs = new Map<number, number>();
  private lastProbed = -1;
  /** When each chunk was last asked for, by a request or a probe. */
  private readonly lastAskedAtMs: Float64Array;
  private inFlightChunks = 0;
  private lastRequestNumber = 0;
  private largestAnswered = 0;
  private readonly rtt: RttEstimator;
  private readonly cwnd: CongestionWindow;
  /** Pacing (RFC 9002 §7.7): chunks that may be asked now, refilled at the pacing rate. */
  private tokens = INITIAL_WINDOW_CHUNKS;
  private tokensAtMs = performance.now();
  private heardFromServer = false;
  readonly stats: ReceiveStats = {
    requestsSent: 0,
    chunksReceived: 0,
    duplicates: 0,
    rejected: 0,
    foreign: 0,
    silentRounds: 0,
    silentRoundWaitsMs: [],
    dropsSeen: 0,
    dropReportsSent: 0,
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
    this.askedIn = new Uint32Array(ticket.chunks);
    this.lastAskedAtMs = new Float64Array(ticket.chunks);
    this.rtt = new RttEstimator({
      initialRtoMs: options.chunkTimeoutMs,
      minRtoMs: options.minChunkTimeoutMs,
      maxRtoMs: options.maxChunkTimeoutMs,
    });
    const maxWindow = Math.max(1, options.windowChunks);
    this.cwnd = new CongestionWindow({
      initialWindow: Math.min(INITIAL_WINDOW_CHUNKS, maxWindow),
      minWindow: Math.min(INITIAL_WINDOW_CHUNKS, maxWindow),
      maxWindow,
    });
    this.tokens = Math.min(INITIAL_WINDOW_CHUNKS, maxWindow);
  }

  run(): Promise<{ header: Buffer; stats: ReceiveStats }> {
    return new Promise((resolve, reject) => {
      let rtoTimer: NodeJS.Timeout | undefined;
      let paceTimer: NodeJS.Timeout | undefined;
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
      const silentAfterMs = this.options.silentAfterMs ?? SILENT_AFTER_MS;
      const silence = setTimeout(() => {
        if (this.heardFromServer) return;
        finish(
          new HeadwireError(
            "UDP_SILENT",
            `not one datagram came back from ${this.peer.address} port ${this.peer.port} in ${silentAfterMs} ms ` +
              `(${this.stats.requestsSent} requests sent); UDP to that address seems blocked on this path`,
          ),
        );
      }, silentAfterMs);
      // Besides the backed-off retransmissions, one missing chunk is asked for again after a quiet
      // spell: every quarter initial RTO until the server is first heard from (on a path that
      // loses half the round trips, three requests in silentAfterMs would often all be lost and
      // UDP taken for blocked), then every PROBE_AFTER_SRTTS smoothed RTTs without a new chunk.
      let probeTimer: NodeJS.Timeout | undefined;
      const armProbe = () => {
        clearTimeout(probeTimer);
        const srtt = this.rtt.srttMs;
        const tail = this.nextToAsk >= this.ticket.chunks;
        const waitMs =
          srtt === undefined
            ? this.options.chunkTimeoutMs / PROBES_PER_RTO
            : (tail ? TAIL_PROBE_SRTTS : PROBE_AFTER_SRTTS) * srtt;
        probeTimer = setTimeout(onProbe, Math.max(this.options.minChunkTimeoutMs, Math.ceil(waitMs)));
      };
      const onProbe = () => {
        this.sendProbe();
        armProbe();
      };
      let done = false;
      // What the kernel dropped on this socket is reported before chunks are asked for again, so
      // that the server gives it back to the budget first (docs/protocol.md, "Budget and amplification").
      // The socket's address is asked for once, when the counter is first read (most
      // collections never read it: no re-asking, no timeout).
      let local: ReturnType<Socket["address"]> | undefined;
      const drops = new DropsReporter(
        () => readSocketDrops((local ??= this.socket.address())),
        (count) => done || this.sendDrops(count),
      );
      const finish = (error?: HeadwireError) => {
        if (done) return;
        done = true;
        clearTimeout(probeTimer);
        clearTimeout(rtoTimer);
        clearTimeout(paceTimer);
        clearTimeout(expiry);
        clearTimeout(silence);
        this.socket.removeAllListeners("message");
        if (error) return reject(error);
        const digest = createHash("sha256").update(this.header).digest();
        if (!digest.equals(this.ticket.sha256)) {
          return reject(new HeadwireError("DELIVERY_FAILED", "the reassembled header does not match its SHA-256"));
        }
        this.trace?.(
          "udp",
          "note",
          `header complete: ${this.ticket.chunks} chunks in ${this.stats.requestsSent} requests, ${this.stats.duplicates} duplicates, ${this.stats.rejected} rejected, ${this.rttTraceDetail()}; SHA-256 matches`,
        );
        resolve({ header: this.header, stats: this.stats });
      };
      // RFC 6298 §5.1 and §5.3: the timer runs while chunks are in flight, restarted by progress.
      let armedMs = 0;
      const armRto = () => {
        clearTimeout(rtoTimer);
        const untilExpiry = Math.max(1, expiresAt - performance.now());
        armedMs = Math.min(this.rtt.rtoMs, untilExpiry);
        rtoTimer = setTimeout(onRto, armedMs);
      };
      const onRto = () => {
        silentRounds++;
        this.stats.silentRounds++;
        this.stats.silentRoundWaitsMs.push(armedMs);
        if (performance.now() >= expiresAt) return finish(expired());
        if (silentRounds >= this.options.maxDeliveryAttempts) {
          return finish(
            new HeadwireError(
              "DELIVERY_FAILED",
              `${this.receivedCount} of ${this.ticket.chunks} chunks arrived after ${silentRounds} attempts`,
            ),
          );
        }
        // RFC 6298 §5.4–5.6: everything in flight is taken for lost, the RTO doubles (and stays
        // doubled until a sample comes), and the window shrinks.
        this.rtt.backOff();
        this.cwnd.onTimeout(this.lastRequestNumber);
        this.declareLost(() => true);
        this.allowBurstAfterTimeout();
        drops.onTimeout();
        pump();
        armRto();
      };
      const pump = () => {
        clearTimeout(paceTimer);
        paceTimer = undefined;
        if (drops.holdBack(this.reasking(), performance.now(), this.rtt.srttMs ?? 0, () => done || pump())) return;
        const waitMs = this.askAsAllowed();
        if (waitMs !== undefined) paceTimer = setTimeout(pump, waitMs);
      };
      this.socket.on("message", (message: Buffer, from: RemoteInfo) => {
        if (from.port !== this.peer.port || canonicalHost(from.address) !== this.peer.canonical) {
          this.stats.foreign++;
          return;
        }
        this.heardFromServer = true;
        if (!this.accept(message)) return;
        silentRounds = 0;
        if (this.receivedCount === this.ticket.chunks) return finish();
        pump();
        armRto();
        // In the tail the probes keep their pace whatever trickles in; before it, a new chunk
        // shows the path works and postpones the next probe.
        if (this.nextToAsk < this.ticket.chunks || probeTimer === undefined) armProbe();
      });
      pump();
      armRto();
      armProbe();
    });
  }

  /**
   * Handles one datagram from the server: a round-trip sample from its echoed request number, loss
   * detection, and the chunk stored. True when it was a new chunk.
   */
  private accept(message: Buffer): boolean {
    const datagram = decodeDatagram(message);
    if (
      !datagram ||
      datagram.type !== "chunk" ||
      datagram.version !== 2 ||
      !datagram.token.equals(this.ticket.token) ||
      datagram.count !== this.ticket.chunks ||
      datagram.total !== this.ticket.bytes
    ) {
      this.trace?.("udp", "note", `a datagram of ${message.length} B dropped: bad CRC, or not a chunk of this ticket`);
      this.stats.rejected++;
      return false;
    }
    const { index, requestNumber } = datagram;
    const sentAtMs = this.sentAtMs.get(requestNumber);
    const now = performance.now();
    // Unambiguous: the chunk answers this very request, whether or not it was asked before.
    if (sentAtMs !== undefined) this.rtt.sample(now - sentAtMs);
    if (requestNumber > this.largestAnswered && requestNumber <= this.lastRequestNumber) {
      this.largestAnswered = requestNumber;
    }
    if (this.received[index]) {
      this.trace?.("udp", "recv", `CHUNK ${index + 1}/${datagram.count} again, a duplicate (request ${requestNumber})`);
      this.stats.duplicates++;
      this.settle(index);
      return false;
    }
    this.trace?.(
      "udp",
      "recv",
      `CHUNK ${index + 1}/${datagram.count} (${this.datagramTraceDetail("recv", message.length)}, ${datagram.payload.length} of the header at ${datagram.offset}, request ${requestNumber}, ${this.rttTraceDetail()})`,
    );
    datagram.payload.copy(this.header, datagram.offset);
    this.received[index] = 1;
    this.receivedCount++;
    this.stats.chunksReceived++;
    this.settle(index);
    this.cwnd.onDelivered(requestNumber);
    this.detectLosses(now);
    return true;
  }

  /** A received chunk leaves flight (and the lost queue, when it was taken for lost too early). */
  private settle(index: number): void {
    const number = this.askedIn[index]!;
    if (number === 0) return;
    this.askedIn[index] = 0;
    const request = this.inFlight.get(number);
    if (request?.chunks.delete(index)) {
      this.inFlightChunks--;
      if (request.chunks.size === 0) this.inFlight.delete(number);
    }
  }

  /** RFC 9002 §6.1: a request is lost once one three numbers later, or 9/8 RTT younger, was answered. */
  private detectLosses(now: number): void {
    const rttMs = Math.max(this.rtt.srttMs ?? 0, this.rtt.latestRttMs ?? 0);
    const lostBefore = now - TIME_THRESHOLD * rttMs;
    this.declareLost(
      (request) =>
        request.number < this.largestAnswered &&
        (request.number + REQUEST_THRESHOLD <= this.largestAnswered || request.sentAtMs <= lostBefore),
    );
  }

  /** Moves the missing chunks of the requests `isLost` picks to the lost queue. */
  private declareLost(isLost: (request: SentRequest) => boolean): void {
    for (const request of [...this.inFlight.values()]) {
      if (!isLost(request)) continue;
      this.inFlight.delete(request.number);
      const backlog = backlogChunks(this.cwnd.window, this.rtt.srttMs, this.rtt.minRttMs);
      this.cwnd.onLoss(request.number, this.lastRequestNumber, backlog);
      for (const index of request.chunks) {
        this.askedIn[index] = 0;
        this.inFlightChunks--;
        if (!this.received[index]) this.lost.push(index);
      }
    }
  }

  /**
   * Asks for lost chunks first, then new ones, as far as the congestion window and the pacing
   * tokens allow. Returns how long to wait before there is a token again, when the window has
   * room and something is left to ask; undefined otherwise.
   */
  private askAsAllowed(): number | undefined {
    const now = performance.now();
    const window = this.cwnd.window;
    // Before the first sample, the initial window leaves at once (RFC 9002 §7.7 allows a burst
    // of the initial window); after it, a window per 0.8 RTT.
    const srtt = this.rtt.srttMs;
    const rate = srtt === undefined ? 0 : pacingRatePerMs(window, srtt);
    this.tokens = Math.min(INITIAL_WINDOW_CHUNKS, this.tokens + (now - this.tokensAtMs) * rate);
    this.tokensAtMs = now;
    for (;;) {
      const room = Math.min(window - this.inFlightChunks, Math.floor(this.tokens), MAX_CHUNKS_PER_ASK);
      if (!this.hasMoreToAsk()) return undefined;
      if (window - this.inFlightChunks <= 0) return undefined;
      if (room <= 0) return rate > 0 ? Math.max(1, Math.ceil((1 - this.tokens) / rate)) : undefined;
      const chunks = this.takeToAsk(room);
      this.tokens -= chunks.length;
      this.sendRequest(chunks, now);
    }
  }

  /** After a timeout the lost chunks go out at once, up to the initial window, as after a PTO. */
  private allowBurstAfterTimeout(): void {
    this.tokens = Math.max(this.tokens, Math.min(INITIAL_WINDOW_CHUNKS, this.cwnd.window));
  }

  /** Whether lost chunks wait to be asked for again. */
  private reasking(): boolean {
    while (this.lost.length > 0 && this.received[this.lost[0]!]) this.lost.shift();
    return this.lost.length > 0;
  }

  /** A DROPS report: never answered; the server credits the ticket's budget with what it adds. */
  private sendDrops(count: number): void {
    this.stats.dropsSeen = count;
    this.stats.dropReportsSent++;
    this.trace?.(
      "udp",
      "send",
      `DROPS ${count} (datagrams this socket's kernel dropped, after request ${this.lastRequestNumber})`,
    );
    const datagram = encodeDrops(this.ticket.token, this.lastRequestNumber, Math.min(count, MAX_DROPS));
    this.socket.send(datagram, this.peer.port, this.peer.address);
  }

  private hasMoreToAsk(): boolean {
    while (this.lost.length > 0 && this.received[this.lost[0]!]) this.lost.shift();
    while (this.nextToAsk < this.ticket.chunks && this.received[this.nextToAsk]) this.nextToAsk++;
    return this.lost.length > 0 || this.nextToAsk < this.ticket.chunks;
  }

  private takeToAsk(count: number): number[] {
    const chunks: number[] = [];
    while (chunks.length < count && this.lost.length > 0) {
      const index = this.lost.shift()!;
      if (!this.received[index] && this.askedIn[index] === 0) chunks.push(index);
    }
    while (chunks.length < count && this.nextToAsk < this.ticket.chunks) {
      const index = this.nextToAsk++;
      if (!this.received[index]) chunks.push(index);
    }
    return chunks;
  }

  /**
   * A one-chunk request, outside the window's accounting, for the next chunk asked for and still
   * missing after the one probed last (in turn, so that several missing chunks all get probed).
   */
  private sendProbe(): void {
    const now = performance.now();
    const srtt = this.rtt.srttMs;
    // Before any sample, one chunk per probe (the budget of a small header must outlast a slow
    // first round trip); after, the chunks whose last request should have been answered by now.
    const most = srtt === undefined ? 1 : MAX_CHUNKS_PER_ASK;
    const askedBefore = srtt === undefined ? Infinity : now - TIME_THRESHOLD * srtt;
    const asked = Math.max(1, this.nextToAsk);
    const chunks: number[] = [];
    let index = this.lastProbed;
    for (let step = 0; step < asked && chunks.length < most; step++) {
      index = (index + 1) % asked;
      if (!this.received[index] && this.lastAskedAtMs[index]! <= askedBefore) chunks.push(index);
    }
    if (chunks.length === 0) return;
    this.lastProbed = chunks[chunks.length - 1]!;
    for (const i of chunks) this.lastAskedAtMs[i] = now;
    const number = this.nextRequestNumber();
    this.sentAtMs.set(number, now);
    this.stats.requestsSent++;
    const ranges = toRanges(chunks);
    const datagram = encodeRequest(this.ticket.token, ranges, number);
    this.trace?.(
      "udp",
      "send",
      `REQUEST ${number} chunks ${chunks.join(",")} (${this.datagramTraceDetail("send", datagram.length)}, probe: asked again, ${this.rttTraceDetail()})`,
    );
    this.socket.send(datagram, this.peer.port, this.peer.address);
  }

  private nextRequestNumber(): number {
    // Request numbers wrap after 2³² − 1 requests, which no ticket's budget comes near.
    this.lastRequestNumber = this.lastRequestNumber >= MAX_REQUEST_NUMBER ? 1 : this.lastRequestNumber + 1;
    return this.lastRequestNumber;
  }

  private sendRequest(chunks: number[], now: number): void {
    const again = this.trace ? chunks.filter((index) => this.lastAskedAtMs[index]! > 0).length : 0;
    const number = this.nextRequestNumber();
    this.inFlight.set(number, { number, sentAtMs: now, chunks: new Set(chunks) });
    this.sentAtMs.set(number, now);
    for (const index of chunks) {
      this.askedIn[index] = number;
      this.lastAskedAtMs[index] = now;
    }
    this.inFlightChunks += chunks.length;
    const ranges = toRanges(chunks);
    const datagram = encodeRequest(this.ticket.token, ranges, number);
    if (this.trace) {
      const wanted = ranges.map((r) => (r.count === 1 ? `${r.first}` : `${r.first}-${r.first + r.count - 1}`));
      const retransmitted = again > 0 ? `, ${again} asked again (retransmission)` : "";
      this.trace(
        "udp",
        "send",
        `REQUEST ${number} chunks ${wanted.join(",")} (${this.datagramTraceDetail("send", datagram.length)}, window ${this.cwnd.window}${retransmitted}, ${this.rttTraceDetail()})`,
      );
    }
    this.stats.requestsSent++;
    this.socket.send(datagram, this.peer.port, this.peer.address);
  }

  /** For the trace only: size and addresses, "local → remote" as the datagram travels. */
  private datagramTraceDetail(direction: "send" | "recv", bytes: number): string {
    const local = this.socket.address();
    const here = `${hostPort(local.address)}:${local.port}`;
    const there = `${hostPort(this.peer.address)}:${this.peer.port}`;
    return `${bytes} B, ${direction === "send" ? `${here} → ${there}` : `${there} → ${here}`}`;
  }

  /** For the trace only: the round-trip estimate as it stands (RFC 6298). */
  private rttTraceDetail(): string {
    const ms = (value: number | undefined) => (value === undefined ? "none yet" : `${value.toFixed(1)} ms`);
    return `rtt ${ms(this.rtt.latestRttMs)}, srtt ${ms(this.rtt.srttMs)}, rto ${Math.round(this.rtt.rtoMs)} ms`;
  }
}

/** An address as it is written before ":port": IPv6 in brackets, a wildcard bind as "*". */
function hostPort(address: string): string {
  if (address === "0.0.0.0" || address === "::") return "*";
  return address.includes(":") ? `[${address}]` : address;
}

/** Chunk indices as ranges, in the order given (consecutive ones merged). */
function toRanges(chunks: readonly number[]): ChunkRange[] {
  const ranges: ChunkRange[] = [];
  for (const index of chunks) {
    const last = ranges[ranges.length - 1];
    if (last && last.first + last.count === index) last.count++;
    else ranges.push({ first: index, count: 1 });
  }
  return ranges;
}
