/**
 * The counts behind a batch's progress and its summary line. Memory stays bounded whatever the
 * number of queries: latencies are kept as a histogram of whole milliseconds, not one by one.
 */
import type { QueryResult } from "../client/headwire-client.js";
import type { CacheOutcome } from "../protocol/control.js";
import { PLAIN_STYLE, type TerminalStyle } from "./terminal-style.js";

const CACHE_OUTCOMES: readonly CacheOutcome[] = ["HIT", "MISS", "STALE", "REVALIDATED"];

export class BatchTally {
  queries = 0;
  succeeded = 0;
  readonly failuresByCode = new Map<string, number>();
  readonly cache = new Map<CacheOutcome, number>();
  /** Latency of succeeded queries: milliseconds → how many. */
  private readonly latencyCounts = new Map<number, number>();

  get failed(): number {
    return this.queries - this.succeeded;
  }

  record(result: QueryResult): void {
    this.queries++;
    if (result.error) {
      bump(this.failuresByCode, result.error.code);
      return;
    }
    this.succeeded++;
    if (result.cache) bump(this.cache, result.cache);
    bump(this.latencyCounts, Math.max(0, Math.round(result.ms)));
  }

  /** Nearest-rank percentile (p in 0..100) of succeeded queries' latency; undefined when none. */
  latencyPercentile(p: number): number | undefined {
    if (this.succeeded === 0) return undefined;
    const rank = Math.max(1, Math.ceil((p / 100) * this.succeeded));
    let seen = 0;
    for (const ms of [...this.latencyCounts.keys()].sort((a, b) => a - b)) {
      seen += this.latencyCounts.get(ms)!;
      if (seen >= rank) return ms;
    }
    return undefined;
  }

  /**
   * `10000 queries: 9998 succeeded, 2 failed (DNS_NOT_FOUND 2) | HIT 9000 MISS 998 | p50 3 ms p95 9 ms | 4.1 s`
   * Failure codes are listed most frequent first; STALE and REVALIDATED only when they occurred.
   */
  summaryLine(elapsedMs: number, style: TerminalStyle = PLAIN_STYLE): string {
    const codes = [...this.failuresByCode.entries()]
      .sort(([a, x], [b, y]) => y - x || (a < b ? -1 : 1))
      .map(([code, count]) => `${code} ${count}`);
    const failed = `${this.failed} failed${codes.length > 0 ? ` (${codes.join(", ")})` : ""}`;
    const cache = CACHE_OUTCOMES.filter((o) => o === "HIT" || o === "MISS" || this.cache.has(o))
      .map((o) => `${o} ${this.cache.get(o) ?? 0}`)
      .join(" ");
    const p50 = this.latencyPercentile(50);
    const p95 = this.latencyPercentile(95);
    const latency = p50 === undefined ? "p50 - p95 -" : `p50 ${p50} ms p95 ${p95} ms`;
    return (
      `${this.queries} queries: ${style.green(`${this.succeeded} succeeded`)}, ` +
      `${this.failed > 0 ? style.red(failed) : failed} | ${cache} | ${latency} | ${(elapsedMs / 1000).toFixed(1)} s`
    );
  }
}

function bump<K>(map: Map<K, number>, key: K): void {
  map.set(key, (map.get(key) ?? 0) + 1);
}
