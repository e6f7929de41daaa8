/**
 * What headwire may send one origin host, so nobody can use it to hammer a third party: requests
 * in flight at once and requests per second, each redirect hop counted as a request. A request
 * past either limit is refused at once with ORIGIN_BUSY (not queued: a queue would only move the
 * pile-up into our memory), and a stale entry is served instead where there is one.
 */
import { HeadwireError } from "../errors.js";
import { KeyedTokenBuckets } from "../limits/token-bucket.js";

export interface OriginGateOptions {
  /** Requests in flight to one host at once; 0: no limit. */
  concurrentFetches: number;
  /** Requests per second to one host (token bucket), and how many at once; 0: no limit. */
  fetchesPerSecond: number;
  fetchBurst: number;
  now: () => number;
}

export class OriginGate {
  private readonly inFlight = new Map<string, number>();
  private readonly rate: KeyedTokenBuckets;

  constructor(private options: OriginGateOptions) {
    this.rate = new KeyedTokenBuckets(options.fetchesPerSecond, options.fetchBurst, options.now);
  }

  /** New limits (a reloaded config); requests in flight stay admitted and count against them. */
  reconfigure(limits: Omit<OriginGateOptions, "now">): void {
    this.options = { ...this.options, ...limits };
    this.rate.setRate(limits.fetchesPerSecond, limits.fetchBurst);
  }

  /** Admits one request to `host`; returns the function that ends it. Throws ORIGIN_BUSY past a limit. */
  enter(host: string): () => void {
    const key = host.toLowerCase();
    const current = this.inFlight.get(key) ?? 0;
    const { concurrentFetches, fetchesPerSecond } = this.options;
    if (concurrentFetches > 0 && current >= concurrentFetches) {
      throw new HeadwireError("ORIGIN_BUSY", `${concurrentFetches} requests to ${host} in flight already`);
    }
    if (!this.rate.take(key)) {
      throw new HeadwireError("ORIGIN_BUSY", `more than ${fetchesPerSecond} requests a second to ${host}`);
    }
    this.inFlight.set(key, current + 1);
    let left = false;
    return () => {
      if (left) return;
      left = true;
      const remaining = (this.inFlight.get(key) ?? 1) - 1;
      if (remaining > 0) this.inFlight.set(key, remaining);
      else this.inFlight.delete(key);
    };
  }

  /** Hosts with requests in flight now. */
  get busyHosts(): number {
    return this.inFlight.size;
  }
}
