/**
 * The client's congestion window, pure: how many chunks may be asked for and not yet received.
 * The client drives the data channel (the server only answers), so the window lives here and
 * counts chunks, as RFC 9002 counts bytes in flight. docs/protocol.md, "Congestion control and
 * pacing", lists what follows the RFCs and where it departs.
 */
export interface CongestionWindowOptions {
  /** RFC 9002 §7.2: 10 datagrams. */
  initialWindow: number;
  /** Never below this (RFC 9002 §7.2 says 2; see the departure in docs/protocol.md). */
  minWindow: number;
  /** The receive window: never above this. */
  maxWindow: number;
}

/**
 * Backlog, in chunks, from which a loss is taken for congestion (TCP Veno's β, Fu & Liew 2003):
 * with fewer chunks queued on the path than this, a loss is taken as random and does not shrink
 * the window.
 */
export const CONGESTIVE_BACKLOG_CHUNKS = 3;

export class CongestionWindow {
  private cwnd: number;
  private ssthresh = Infinity;
  /** Losses of requests numbered up to this belong to the congestion event already answered. */
  private recoveryUntil = 0;
  /** The state before the last timeout, kept until it is known whether the timeout was spurious. */
  private beforeTimeout: { cwnd: number; ssthresh: number; recoveryUntil: number; lastSent: number } | undefined;

  constructor(private readonly options: CongestionWindowOptions) {
    this.cwnd = Math.min(options.maxWindow, Math.max(options.minWindow, options.initialWindow));
  }

  /** Chunks that may be outstanding now. */
  get window(): number {
    return Math.max(1, Math.floor(this.cwnd));
  }

  get slowStart(): boolean {
    return this.cwnd < this.ssthresh;
  }

  /**
   * A chunk arrived (RFC 9002 §7.3.1 slow start: +1 per chunk; §7.3.3 congestion avoidance:
   * +1 per window). Chunks asked for before the current recovery began do not grow it (§7.3.2).
   */
  onDelivered(requestNumber: number): void {
    if (this.beforeTimeout) {
      // RFC 3522 (Eifel detection), with request numbers for timestamps: the first chunk after a
      // timeout answers a request sent before it, so the timeout was spurious (the path is only
      // slower than the RTO), and RFC 4015's response undoes it. A chunk asked for after the
      // timeout coming first confirms the timeout.
      const { lastSent, ...before } = this.beforeTimeout;
      this.beforeTimeout = undefined;
      if (requestNumber <= lastSent) Object.assign(this, before);
    }
    if (requestNumber <= this.recoveryUntil) return;
    this.cwnd += this.slowStart ? 1 : 1 / this.cwnd;
    this.cwnd = Math.min(this.cwnd, this.options.maxWindow);
  }

  /**
   * A chunk asked for in request `requestNumber` was lost (a gap or a timeout); `lastSent` is the
   * newest request number sent so far, `backlogChunks` the path's estimated queue. Halves the
   * window once per congestion event (RFC 9002 §7.3.2: losses of requests sent before the event
   * began do not count again) unless the loss came without a queue. Returns whether it shrank.
   */
  onLoss(requestNumber: number, lastSent: number, backlogChunks: number): boolean {
    if (requestNumber <= this.recoveryUntil) return false;
    if (backlogChunks < CONGESTIVE_BACKLOG_CHUNKS) return false;
    this.recoveryUntil = lastSent;
    this.ssthresh = Math.max(this.options.minWindow, this.cwnd / 2);
    this.cwnd = this.ssthresh;
    return true;
  }

  /**
   * The retransmission timer expired: nothing came back for an RTO, which no random loss explains
   * as well as a full queue or a broken path. Halved whatever the backlog, once per event.
   */
  onTimeout(lastSent: number): void {
    if (lastSent <= this.recoveryUntil) return;
    this.beforeTimeout ??= { cwnd: this.cwnd, ssthresh: this.ssthresh, recoveryUntil: this.recoveryUntil, lastSent };
    this.beforeTimeout.lastSent = lastSent;
    this.recoveryUntil = lastSent;
    this.ssthresh = Math.max(this.options.minWindow, this.cwnd / 2);
    this.cwnd = this.ssthresh;
  }
}

/**
 * Vegas/Veno's estimate of chunks queued on the path: the window times the share of the round
 * trip that is queueing (smoothed RTT above the smallest seen).
 */
export function backlogChunks(window: number, srttMs: number | undefined, minRttMs: number | undefined): number {
  if (srttMs === undefined || minRttMs === undefined || srttMs <= 0) return 0;
  return (window * Math.max(0, srttMs - minRttMs)) / srttMs;
}

/**
 * RFC 9002 §7.7: send at 1.25 × cwnd per smoothed RTT, so a window is spread over the round trip
 * instead of leaving in one burst. Chunks per millisecond.
 */
export function pacingRatePerMs(window: number, srttMs: number): number {
  return (1.25 * window) / Math.max(1, srttMs);
}
