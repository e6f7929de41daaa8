/**
 * Answers "what is the header of this URL?": from the cache while fresh (HIT), revalidated with
 * the origin when stale and it has validators (REVALIDATED), fetched anew (MISS), or served stale
 * because the origin failed (STALE). Concurrent misses on one key share one origin fetch, in this
 * process and, through the store's fill claim, across a fleet.
 */
import { cacheKeyFor } from "../cache/cache-key.js";
import type { CacheEntry, CacheStore } from "../cache/cache-store.js";
import type { Assessment, Freshness } from "../cache/freshness.js";
import { HeadwireError } from "../errors.js";
import type { FetchResult } from "../fetch/origin-fetcher.js";
import type { ConditionalFields } from "../http/conditional.js";
import type { QueryOptions } from "../http/query-options.js";
import type { CacheOutcome } from "../protocol/control.js";
import type { FetchTarget } from "../url/target.js";
import type { ServerEvents } from "./server-events.js";

export interface HeaderFetcher {
  fetch(target: FetchTarget, options: QueryOptions, conditional?: ConditionalFields): Promise<FetchResult>;
}

export interface HeaderAnswer {
  entry: CacheEntry;
  cache: CacheOutcome;
  /** The shared store could not be used for this answer (the origin was asked directly). */
  storeUnavailable: boolean;
  /** How long the origin took to answer, when it was asked for this answer. */
  originMs?: number;
}

export interface HeaderServiceOptions {
  store: CacheStore;
  fetcher: HeaderFetcher;
  freshness: Freshness;
  /** Headers larger than this are delivered but not stored. */
  maxEntryBytes: number;
  /**
   * The largest header delivered (the fetcher refuses larger ones): a 304's merge that would
   * make an entry larger is not applied, the origin is asked afresh instead.
   */
  maxHeaderBytes: number;
  /** How long an origin failure is remembered and shared (never stored as a success). */
  negativeTtlMs: number;
  /** How long a fleet-wide fill claim lasts, and so how long other servers wait for it. */
  fillLockMs: number;
  /** Distinct failing URLs remembered at once (negative caching). */
  maxRememberedFailures: number;
  now: () => number;
  /** Told once when the store fails and once when it works again. */
  log: (message: string) => void;
  /** Where each origin fetch is reported (host, result, duration); nowhere when omitted. */
  events?: ServerEvents;
}

const FILL_POLL_MS = 20;

export class HeaderService {
  private readonly inFlight = new Map<string, Promise<HeaderAnswer>>();
  private readonly failures = new Map<string, { error: HeadwireError; untilMs: number }>();
  private storeFailing = false;
  /** Origin requests started, for tests and metrics. */
  originFetches = 0;
  /** Queries that waited for a fetch already in flight for their key (coalescing), for metrics. */
  coalescedWaits = 0;

  constructor(private options: HeaderServiceOptions) {}

  /** New negative caching and fill-claim settings (a reloaded config), for the queries from now on. */
  reconfigure(part: Pick<HeaderServiceOptions, "negativeTtlMs" | "fillLockMs" | "maxRememberedFailures">): void {
    this.options = { ...this.options, ...part };
  }

  async answer(target: FetchTarget, query: QueryOptions): Promise<HeaderAnswer> {
    const key = cacheKeyFor(target, query);
    if (query.cache === "refresh") return this.answerRefresh(key, target, query);
    const failure = this.failures.get(key);
    if (failure && failure.untilMs > this.options.now()) throw failure.error;
    const cached = await this.storeGet(key);
    if (cached.entry && this.options.freshness.assess(cached.entry).fresh) {
      return { entry: cached.entry, cache: "HIT", storeUnavailable: false };
    }
    let pending = this.inFlight.get(key);
    if (pending) this.coalescedWaits++;
    else {
      pending = this.track(key, this.refresh(key, target, query, cached.entry));
    }
    const answer = await pending;
    return cached.unavailable ? { ...answer, storeUnavailable: true } : answer;
  }

  /**
   * The hot path's answer, without a promise: the entry when the store holds it in this
   * process's memory (CacheStore.peek) and it is fresh, which answer() would give as a HIT.
   * Undefined for anything else (no peek, not held, stale, a remembered failure): then answer().
   */
  peekFresh(target: FetchTarget, query: QueryOptions): CacheEntry | undefined {
    const { store, freshness } = this.options;
    if (!store.peek) return undefined;
    const key = cacheKeyFor(target, query);
    const failure = this.failures.get(key);
    if (failure && failure.untilMs > this.options.now()) return undefined;
    let entry: CacheEntry | undefined;
    try {
      entry = store.peek(key);
    } catch {
      return undefined; // answer() asks the store again and reports it
    }
    if (!entry || !freshness.assess(entry).fresh) return undefined;
    this.storeWorks();
    return entry;
  }

  /** Registers a fetch for its key, so queries arriving meanwhile join it; forgotten when it ends. */
  private track(key: string, fetching: Promise<HeaderAnswer>): Promise<HeaderAnswer> {
    const pending: Promise<HeaderAnswer> = fetching.finally(() => {
      // A refresh may have replaced this fetch as the one to join: only its own entry is removed.
      if (this.inFlight.get(key) === pending) this.inFlight.delete(key);
    });
    this.inFlight.set(key, pending);
    return pending;
  }

  /**
   * cache=refresh, as a request's Cache-Control: no-cache (RFC 9111 §5.2.1.4): whatever is
   * stored, fresh or not, is revalidated with its validators (REVALIDATED on a 304) or fetched
   * anew (MISS), then stored. It never joins a fetch already in flight (that one may have begun
   * before the change the client wants to see); queries arriving after it join it instead. No
   * fleet-wide claim is waited for, for the same reason. A failure is the query's own: nothing
   * stale is served in its place (no-cache forbids it) and nothing is remembered against the
   * key, whose stored entry still answers plain queries.
   */
  private async answerRefresh(key: string, target: FetchTarget, query: QueryOptions): Promise<HeaderAnswer> {
    const stored = await this.storeGet(key);
    const assessment = stored.entry ? this.options.freshness.assess(stored.entry) : undefined;
    const answer = await this.track(key, this.fetchAndStore(key, target, query, stored.entry, assessment));
    return stored.unavailable ? { ...answer, storeUnavailable: true } : answer;
  }

  /** Revalidates or refetches a missing or stale entry; serves it stale if the origin fails. */
  private async refresh(
    key: string,
    target: FetchTarget,
    query: QueryOptions,
    stale: CacheEntry | undefined,
  ): Promise<HeaderAnswer> {
    const assessment = stale ? this.options.freshness.assess(stale) : undefined;
    let claimed = await this.claimFill(key);
    try {
      if (!claimed) {
        const waited = await this.awaitFill(key);
        claimed = waited.claimed;
        if (waited.entry) return { entry: waited.entry, cache: "HIT", storeUnavailable: false };
      } else {
        const filled = await this.filledMeanwhile(key);
        if (filled) return { entry: filled, cache: "HIT", storeUnavailable: false };
      }
      return await this.fetchAndStore(key, target, query, stale, assessment);
    } catch (error) {
      if (error instanceof HeadwireError && stale && assessment && this.options.now() < assessment.staleUntilMs) {
        return { entry: stale, cache: "STALE", storeUnavailable: false };
      }
      // Only the origin's failures are remembered and shared: anything else is a bug of ours,
      // which the caller reports as INTERNAL_ERROR and which must not outlive this query.
      // ORIGIN_BUSY is our own limit, not the origin's failure: the next query may well get through.
      if (error instanceof HeadwireError && error.code !== "ORIGIN_BUSY" && this.options.negativeTtlMs > 0) {
        this.rememberFailure(key, error);
      }
      throw error;
    } finally {
      if (claimed) await this.releaseFill(key);
    }
  }

  private async fetchAndStore(
    key: string,
    target: FetchTarget,
    query: QueryOptions,
    stale: CacheEntry | undefined,
    assessment: Assessment | undefined,
  ): Promise<HeaderAnswer> {
    this.originFetches++;
    // RFC 9111 §4.3.1: a stale entry with validators is revalidated with a conditional request.
    // A redirect chain is one entry made of several responses, so it is simply fetched again.
    const validators = query.redirects === 0 ? assessment?.validators : undefined;
    const started = performance.now();
    const result = await this.timedFetch(target, query, validators);
    const originMs = performance.now() - started;
    const answer =
      stale && validators && result.status === 304
        ? await this.revalidate(key, target, query, stale, result.header)
        : await this.storeFetched(key, result);
    answer.originMs = originMs;
    return answer;
  }

  /** One origin request, reported with its host, result and duration when someone listens. */
  private async timedFetch(
    target: FetchTarget,
    query: QueryOptions,
    validators?: ConditionalFields,
  ): Promise<FetchResult> {
    const events = this.options.events;
    if (!events?.active) return this.options.fetcher.fetch(target, query, validators);
    const started = performance.now();
    let result = "ok";
    try {
      return await this.options.fetcher.fetch(target, query, validators);
    } catch (error) {
      result = error instanceof HeadwireError ? error.code : "INTERNAL_ERROR";
      throw error;
    } finally {
      events.emit({ type: "origin-fetch", host: target.host, result, ms: performance.now() - started });
    }
  }

  /**
   * RFC 9111 §4.3.4 merges a 304's fields into the stored header, and nothing in the RFC bounds
   * what a 304 may add: an origin could grow an entry with every revalidation. So the merged
   * entry is checked like a fetched one. Past maxHeaderBytes it is never delivered: the origin is
   * asked again without validators (a full response, which the fetcher bounds), and if that fails
   * the stored header the 304 confirmed is served as it was. Past maxEntryBytes it is delivered
   * but not stored, and the old entry is deleted so it is not revalidated (and grown) again.
   */
  private async revalidate(
    key: string,
    target: FetchTarget,
    query: QueryOptions,
    stale: CacheEntry,
    notModified: Buffer,
  ): Promise<HeaderAnswer> {
    const entry = this.options.freshness.revalidated(stale, notModified);
    if (entry.header.length > this.options.maxHeaderBytes) {
      await this.storeDelete(key);
      this.originFetches++;
      let result: FetchResult;
      try {
        result = await this.timedFetch(target, query);
      } catch (error) {
        if (!(error instanceof HeadwireError)) throw error;
        return { entry: stale, cache: "REVALIDATED", storeUnavailable: false };
      }
      return this.storeFetched(key, result);
    }
    if (entry.header.length > this.options.maxEntryBytes) {
      const unavailable = !(await this.storeDelete(key));
      return { entry, cache: "REVALIDATED", storeUnavailable: unavailable };
    }
    const unavailable = !(await this.storeSet(entry));
    return { entry, cache: "REVALIDATED", storeUnavailable: unavailable };
  }

  /** A full response from the origin: stored when storable and small enough, answered as a MISS. */
  private async storeFetched(key: string, result: FetchResult): Promise<HeaderAnswer> {
    const { freshness } = this.options;
    const entry: CacheEntry = { key, header: result.header, status: result.status, storedAtMs: this.options.now() };
    let unavailable = false;
    if (freshness.storable(entry) && entry.header.length <= this.options.maxEntryBytes) {
      unavailable = !(await this.storeSet(entry));
    }
    return { entry, cache: "MISS", storeUnavailable: unavailable };
  }

  /**
   * Another server is fetching this key: wait for its entry, up to the claim's lifetime. Ends
   * holding the claim when the other server gave up without storing (we fetch ourselves).
   */
  private async awaitFill(key: string): Promise<{ entry?: CacheEntry; claimed: boolean }> {
    const deadline = Date.now() + this.options.fillLockMs;
    while (Date.now() <= deadline) {
      await new Promise((resolve) => setTimeout(resolve, FILL_POLL_MS));
      const { entry, unavailable } = await this.storeGet(key);
      if (unavailable) return { claimed: false };
      if (entry && this.options.freshness.assess(entry).fresh) return { entry, claimed: false };
      if (await this.claimFill(key)) return { entry: await this.filledMeanwhile(key), claimed: true };
    }
    return { claimed: false };
  }

  /**
   * Just after winning a fleet-wide claim: another server may have completed a whole fill
   * (claim, fetch, store, release) between our read and our claim. Its fresh entry, if any.
   */
  private async filledMeanwhile(key: string): Promise<CacheEntry | undefined> {
    if (!this.options.store.claimFill) return undefined; // a store of our own: nobody else fills it
    const { entry } = await this.storeGet(key);
    return entry && this.options.freshness.assess(entry).fresh ? entry : undefined;
  }

  private async claimFill(key: string): Promise<boolean> {
    if (!this.options.store.claimFill) return true;
    try {
      const claimed = await this.options.store.claimFill(key, this.options.fillLockMs);
      this.storeWorks();
      return claimed;
    } catch (error) {
      this.storeFails(error);
      return true;
    }
  }

  private async releaseFill(key: string): Promise<void> {
    try {
      await this.options.store.releaseFill?.(key);
    } catch (error) {
      this.storeFails(error);
    }
  }

  private async storeGet(key: string): Promise<{ entry: CacheEntry | undefined; unavailable: boolean }> {
    try {
      const entry = await this.options.store.get(key);
      this.storeWorks();
      return { entry, unavailable: false };
    } catch (error) {
      this.storeFails(error);
      return { entry: undefined, unavailable: true };
    }
  }

  /** Deletes an entry that must not be revalidated again; false when the store failed. */
  private async storeDelete(key: string): Promise<boolean> {
    try {
      await this.options.store.delete(key);
      this.storeWorks();
      return true;
    } catch (error) {
      this.storeFails(error);
      return false;
    }
  }

  private async storeSet(entry: CacheEntry): Promise<boolean> {
    try {
      await this.options.store.set(entry, this.options.freshness.retentionMs(entry));
      this.storeWorks();
      return true;
    } catch (error) {
      this.storeFails(error);
      return false;
    }
  }

  private storeFails(error: unknown): void {
    if (this.storeFailing) return;
    this.storeFailing = true;
    this.options.log(`cache store unavailable (${(error as Error).message}); fetching from origins directly`);
  }

  private storeWorks(): void {
    if (!this.storeFailing) return;
    this.storeFailing = false;
    this.options.log("cache store available again");
  }

  /**
   * Every failure lives negativeTtlMs, so the map's insertion order is expiry order: expired ones
   * are dropped from the front, and the oldest beyond maxRememberedFailures too. O(1) amortized,
   * however many distinct URLs fail.
   */
  private rememberFailure(key: string, error: HeadwireError): void {
    const now = this.options.now();
    this.failures.delete(key);
    this.failures.set(key, { error, untilMs: now + this.options.negativeTtlMs });
    for (const [oldest, failure] of this.failures) {
      if (failure.untilMs > now && this.failures.size <= this.options.maxRememberedFailures) break;
      this.failures.delete(oldest);
    }
  }
}
