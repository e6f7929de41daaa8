/**
 * Answers "what is the header of this URL?": from the cache, or by fetching it from the origin.
 * Concurrent misses on the same key share one origin fetch.
 */
import type { CacheEntry, CacheStore } from "../cache/cache-store.js";
import type { FetchResult } from "../fetch/origin-fetcher.js";
import type { CacheOutcome, QueryOptions } from "../protocol/control.js";
import { DEFAULT_QUERY_OPTIONS } from "../protocol/control.js";
import type { FetchTarget } from "../url/target.js";

export interface HeaderFetcher {
  fetch(target: FetchTarget, options: QueryOptions): Promise<FetchResult>;
}

export interface HeaderAnswer {
  entry: CacheEntry;
  cache: CacheOutcome;
}

/**
 * The cache key: the normalized URL for a plain GET, with the non-default query options after a
 * `#` (normalized URLs never carry a fragment, so the two cannot collide).
 */
export function cacheKeyFor(target: FetchTarget, options: QueryOptions): string {
  const extras: string[] = [];
  if (options.method !== DEFAULT_QUERY_OPTIONS.method) extras.push(`method=${options.method}`);
  if (options.redirects !== DEFAULT_QUERY_OPTIONS.redirects) {
    extras.push(`redirects=${options.redirects}`, `chain=${options.chain}`);
  }
  return extras.length === 0 ? target.cacheKey : `${target.cacheKey}#${extras.join(",")}`;
}

export class HeaderService {
  private readonly inFlight = new Map<string, Promise<CacheEntry>>();
  /** Origin requests started, for tests and metrics. */
  originFetches = 0;

  constructor(
    private readonly store: CacheStore,
    private readonly fetcher: HeaderFetcher,
    private readonly now: () => number = Date.now,
  ) {}

  async answer(target: FetchTarget, options: QueryOptions): Promise<HeaderAnswer> {
    const key = cacheKeyFor(target, options);
    const cached = await this.store.get(key);
    if (cached) return { entry: cached, cache: "HIT" };
    let pending = this.inFlight.get(key);
    if (!pending) {
      pending = this.fetchAndStore(key, target, options).finally(() => this.inFlight.delete(key));
      this.inFlight.set(key, pending);
    }
    return { entry: await pending, cache: "MISS" };
  }

  private async fetchAndStore(key: string, target: FetchTarget, options: QueryOptions): Promise<CacheEntry> {
    this.originFetches++;
    const result = await this.fetcher.fetch(target, options);
    const entry: CacheEntry = { key, header: result.header, status: result.status, storedAtMs: this.now() };
    await this.store.set(entry);
    return entry;
  }
}
