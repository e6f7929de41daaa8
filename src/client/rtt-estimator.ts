/**
 * RFC 6298's retransmission timer, pure: samples in, RTO out. With datagram version 2 every chunk
 * echoes the number of the request it answers, so every sample is unambiguous and Karn's rule
 * (RFC 6298 §5 note) is not needed: a chunk asked for twice still measures the round trip of the
 * request it answers.
 */
export interface RttEstimatorOptions {
  /** The RTO before any sample (RFC 6298 §2.1: 1 s). */
  initialRtoMs: number;
  /** Bounds of the RTO (RFC 6298 §2.4 and §2.5). */
  minRtoMs: number;
  maxRtoMs: number;
}

/** Clock granularity G of RFC 6298 §2: Node's timers fire at best each millisecond. */
const CLOCK_GRANULARITY_MS = 1;

export class RttEstimator {
  private srtt: number | undefined;
  private rttvar = 0;
  private minRtt = Infinity;
  private latestRtt: number | undefined;
  private rto: number;

  constructor(private readonly options: RttEstimatorOptions) {
    this.rto = this.clamp(options.initialRtoMs);
  }

  /** RFC 6298 §2.2 (first sample) and §2.3 (later ones); the back-off ends (§5.7). */
  sample(rttMs: number): void {
    const r = Math.max(0, rttMs);
    this.latestRtt = r;
    this.minRtt = Math.min(this.minRtt, r);
    if (this.srtt === undefined) {
      this.srtt = r;
      this.rttvar = r / 2;
    } else {
      this.rttvar = 0.75 * this.rttvar + 0.25 * Math.abs(this.srtt - r);
      this.srtt = 0.875 * this.srtt + 0.125 * r;
    }
    this.rto = this.clamp(this.srtt + Math.max(CLOCK_GRANULARITY_MS, 4 * this.rttvar));
  }

  /** RFC 6298 §5.5: the timer expired, so the RTO doubles; it stays so until the next sample. */
  backOff(): void {
    this.rto = this.clamp(this.rto * 2);
  }

  get rtoMs(): number {
    return this.rto;
  }

  /** Undefined until the first sample. */
  get srttMs(): number | undefined {
    return this.srtt;
  }

  get rttvarMs(): number {
    return this.rttvar;
  }

  get minRttMs(): number | undefined {
    return this.srtt === undefined ? undefined : this.minRtt;
  }

  get latestRttMs(): number | undefined {
    return this.latestRtt;
  }

  private clamp(ms: number): number {
    return Math.min(this.options.maxRtoMs, Math.max(this.options.minRtoMs, ms));
  }
}
