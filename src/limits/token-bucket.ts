/**
 * A token bucket (RFC 2697's committed rate and burst, in spirit): `burst` tokens at most, refilled
 * at `perSecond`. Pure and synchronous, on an injected clock: it sits on the per-line and
 * per-query hot path, where a promise-based limiter (rate-limiter-flexible) would cost an
 * allocation per call and one reading Date.now (limiter) could not be tested on a moved clock.
 */
export class TokenBucket {
  private tokens: number;
  private updatedAtMs: number;

  constructor(
    private perSecond: number,
    private burst: number,
    private readonly now: () => number,
  ) {
    this.tokens = burst;
    this.updatedAtMs = now();
  }

  /**
   * A new rate and burst (a reloaded config): what was earned at the old rate is kept, up to
   * the new burst, so a reload neither forgives a client that spent its tokens nor punishes one.
   */
  setRate(perSecond: number, burst: number): void {
    this.refill();
    this.perSecond = perSecond;
    this.burst = burst;
    this.tokens = Math.min(this.tokens, burst);
  }

  /** Takes one token if there is one. A rate of 0 means no refill: the burst is all there is. */
  take(): boolean {
    this.refill();
    if (this.tokens < 1) return false;
    this.tokens -= 1;
    return true;
  }

  /** Milliseconds until a token is there (0 when one is); Infinity with no refill. */
  msUntilToken(): number {
    this.refill();
    if (this.tokens >= 1) return 0;
    if (this.perSecond === 0) return Infinity;
    return Math.ceil(((1 - this.tokens) * 1000) / this.perSecond);
  }

  /** Full: nothing taken that has not grown back (a limiter may forget it). */
  get full(): boolean {
    this.refill();
    return this.tokens >= this.burst;
  }

  private refill(): void {
    const now = this.now();
    const elapsedMs = now - this.updatedAtMs;
    if (elapsedMs <= 0) return;
    this.updatedAtMs = now;
    this.tokens = Math.min(this.burst, this.tokens + (elapsedMs * this.perSecond) / 1000);
  }
}

/**
 * One bucket per key (a client address, an origin host), created on first use and forgotten once
 * full again, so the map holds only keys that were active recently. A rate of 0 disables the limit.
 */
export class KeyedTokenBuckets {
  private readonly buckets = new Map<string, TokenBucket>();
  private sweptAtMs: number;

  constructor(
    private perSecond: number,
    private burst: number,
    private readonly now: () => number,
  ) {
    this.sweptAtMs = now();
  }

  /** A new rate and burst for every key (TokenBucket.setRate); 0 turns the limit off and forgets the keys. */
  setRate(perSecond: number, burst: number): void {
    this.perSecond = perSecond;
    this.burst = burst;
    if (perSecond === 0) this.buckets.clear();
    for (const bucket of this.buckets.values()) bucket.setRate(perSecond, burst);
  }

  take(key: string): boolean {
    if (this.perSecond === 0) return true;
    this.sweep();
    let bucket = this.buckets.get(key);
    if (!bucket) this.buckets.set(key, (bucket = new TokenBucket(this.perSecond, this.burst, this.now)));
    return bucket.take();
  }

  get size(): number {
    return this.buckets.size;
  }

  /** At most once a second, drop the buckets that have refilled: O(keys) amortized over a second. */
  private sweep(): void {
    const now = this.now();
    if (now - this.sweptAtMs < 1000) return;
    this.sweptAtMs = now;
    for (const [key, bucket] of this.buckets) if (bucket.full) this.buckets.delete(key);
  }
}
