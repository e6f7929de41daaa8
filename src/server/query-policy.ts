/**
 * What this server lets a query ask for, beyond what the protocol can say: insecure=1 only when
 * the operator allows it (--allow-insecure-queries), a bounded set of request fields (header=),
 * and cache=refresh at a rate of its own per client address, since every refresh costs an origin
 * request the cache would otherwise save. Checked before anything is fetched; a refusal is a
 * stable code with a message that names the switch or setting involved.
 */
import { HeadwireError } from "../errors.js";
import type { QueryOptions } from "../http/query-options.js";
import { checkHeaderLimits } from "../http/request-headers.js";
import { KeyedTokenBuckets } from "../limits/token-bucket.js";

export interface QueryPolicyOptions {
  /** insecure=1 is honoured (--allow-insecure-queries, or --insecure, which verifies nothing anyway). */
  allowInsecureQueries: boolean;
  maxRequestHeaders: number;
  maxRequestHeaderBytes: number;
  /** cache=refresh queries per second per client address (0: no limit), and their burst. */
  refreshesPerSecondPerAddress: number;
  refreshBurstPerAddress: number;
  now: () => number;
}

/** The settings a policy is made of, by their names in src/config/settings.ts. */
export interface QueryPolicySettings {
  allowInsecureQueries: boolean;
  insecureTls: boolean;
  maxRequestHeaders: number;
  maxRequestHeaderBytes: number;
  refreshesPerSecondPerAddress: number;
  refreshBurstPerAddress: number;
}

export function queryPolicyOptions(settings: QueryPolicySettings, now: () => number): QueryPolicyOptions {
  return {
    allowInsecureQueries: settings.allowInsecureQueries || settings.insecureTls,
    maxRequestHeaders: settings.maxRequestHeaders,
    maxRequestHeaderBytes: settings.maxRequestHeaderBytes,
    refreshesPerSecondPerAddress: settings.refreshesPerSecondPerAddress,
    refreshBurstPerAddress: settings.refreshBurstPerAddress,
    now,
  };
}

/** Which limit refused a query, for the server's limit counters and events. */
export interface PolicyRefusal {
  error: HeadwireError;
  /** The setting whose limit it is, when a limit (not a switch) refused. */
  limit?: string;
}

export class QueryPolicy {
  private readonly refreshes: KeyedTokenBuckets;

  constructor(private readonly options: QueryPolicyOptions) {
    this.refreshes = new KeyedTokenBuckets(
      options.refreshesPerSecondPerAddress,
      options.refreshBurstPerAddress,
      options.now,
    );
  }

  /** undefined when the query may go ahead; else why not. Takes a refresh token when it asks for one. */
  refusal(options: QueryOptions, address: string): PolicyRefusal | undefined {
    if (options.insecure && !this.options.allowInsecureQueries) {
      const what =
        "insecure=1 (curl -k) is refused: this server verifies origins' certificates unless it runs with --allow-insecure-queries";
      return { error: new HeadwireError("FORBIDDEN_OPTION", what) };
    }
    if (options.headers.length > 0) {
      try {
        checkHeaderLimits(options.headers, {
          maxHeaders: this.options.maxRequestHeaders,
          maxBytes: this.options.maxRequestHeaderBytes,
        });
      } catch (error) {
        const limit =
          options.headers.length > this.options.maxRequestHeaders ? "maxRequestHeaders" : "maxRequestHeaderBytes";
        return { error: error as HeadwireError, limit };
      }
    }
    if (options.cache === "refresh" && !this.refreshes.take(address)) {
      const what =
        `more than ${this.options.refreshesPerSecondPerAddress} cache=refresh queries (--fresh) a second from ${address} ` +
        "(refreshesPerSecondPerAddress): ask without it and the cache answers";
      return { error: new HeadwireError("RATE_LIMITED", what), limit: "refreshesPerSecondPerAddress" };
    }
    return undefined;
  }
}
