/**
 * HTTP freshness for a shared cache (RFC 9111), decided by http-cache-semantics, with one
 * headwire rule on top: a response that carries no freshness information at all (no max-age,
 * s-maxage or Expires) is fresh for `defaultTtlMs` instead of the Last-Modified heuristic.
 * Time comes from an injected clock, so tests move it instead of sleeping.
 */
import CachePolicy from "http-cache-semantics";
import { conditionalFieldsOf, type ConditionalFields } from "../http/conditional.js";
import { scanHeaderBlocks, sectionFields } from "../http/header-block.js";
import type { CacheEntry } from "./cache-store.js";

export interface FreshnessOptions {
  /** Lifetime of responses that carry no freshness information. */
  defaultTtlMs: number;
  /** How long past its freshness a stale entry may still be served when the origin fails. */
  maxStaleMs: number;
  now: () => number;
}

export interface Assessment {
  fresh: boolean;
  /** Validators for a conditional request; undefined when the entry has none. */
  validators: ConditionalFields | undefined;
  /** Until when the entry may be served stale because the origin failed. */
  staleUntilMs: number;
}

/** The clock CachePolicy reads its "now" from; set around construction to the response time. */
let constructionTimeMs = 0;

class ClockedPolicy extends CachePolicy {
  clock: (() => number) | undefined;
  now(): number {
    return this.clock ? this.clock() : constructionTimeMs;
  }
}

interface Parsed {
  policy: ClockedPolicy;
  /** Until when the entry is fresh: fixed for an entry, since its age grows with the clock. */
  freshUntilMs: number;
  validators: ConditionalFields | undefined;
}

/** RFC 9111 §3.2: fields a 304 must not overwrite in the stored response. */
const NOT_UPDATED_BY_304 = new Set(["content-length", "content-encoding", "transfer-encoding", "content-range"]);

export class Freshness {
  /** Entries are immutable: their parsed policy is kept beside them. */
  private parsed = new WeakMap<CacheEntry, Parsed>();

  constructor(private options: FreshnessOptions) {}

  /**
   * New lifetimes (a reloaded config). The parsed policies are dropped, since an entry's
   * freshUntilMs was computed with the old defaultTtlMs; each is parsed again when next asked.
   */
  reconfigure(part: Pick<FreshnessOptions, "defaultTtlMs" | "maxStaleMs">): void {
    this.options = { ...this.options, ...part };
    this.parsed = new WeakMap();
  }

  /** no-store, private (in a shared cache), odd status codes and the like are not stored. */
  storable(entry: CacheEntry): boolean {
    return this.parse(entry).policy.storable();
  }

  assess(entry: CacheEntry): Assessment {
    const { freshUntilMs, validators } = this.parse(entry);
    return {
      fresh: this.options.now() < freshUntilMs,
      validators,
      staleUntilMs: freshUntilMs + this.options.maxStaleMs,
    };
  }

  /** Until when the entry is fresh, in ms since the epoch (the admin listing). */
  freshUntilMs(entry: CacheEntry): number {
    return this.parse(entry).freshUntilMs;
  }

  /** How long a store should keep the entry: while fresh, and then while it may serve stale. */
  retentionMs(entry: CacheEntry): number {
    return Math.max(0, this.assess(entry).staleUntilMs - this.options.now());
  }

  /**
   * RFC 9111 §4.3.4: a 304 freshens the stored response: each field the 304 carries replaces the
   * stored one (except those §3.2 excludes), and the entry counts as received now.
   */
  revalidated(entry: CacheEntry, notModified: Buffer): CacheEntry {
    return { ...entry, header: updateHeader(entry.header, notModified), storedAtMs: this.options.now() };
  }

  private parse(entry: CacheEntry): Parsed {
    let parsed = this.parsed.get(entry);
    if (!parsed) {
      const section = finalSection(entry.header);
      const headers: Record<string, string | string[]> = {};
      for (const field of sectionFields(section)) {
        const previous = headers[field.name];
        // headwire never sends cookies or credentials, so a Set-Cookie is what any anonymous client
        // gets: it must not stop sharing (http-cache-semantics would make such responses stale at once
        // in a shared cache unless "public"), so the policy does not see it.
        if (field.name === "set-cookie") continue;
        headers[field.name] = previous === undefined ? field.value : `${previous as string}, ${field.value}`;
      }
      constructionTimeMs = entry.storedAtMs;
      const policy = new ClockedPolicy(
        { url: "/", method: "GET", headers: {} },
        { status: entry.status, headers },
        { shared: true },
      );
      policy.clock = this.options.now;
      const cacheControl = String(headers["cache-control"] ?? "");
      const explicit = /(^|[\s,])(s-maxage|max-age|no-cache)\b/i.test(cacheControl) || headers.expires !== undefined;
      // Age grows with the clock as fast as "now" does, so now + remaining lifetime is a constant.
      const freshUntilMs = explicit
        ? this.options.now() + (policy.maxAge() - policy.age()) * 1000
        : entry.storedAtMs + this.options.defaultTtlMs;
      parsed = { policy, freshUntilMs, validators: validatorsOf(policy) };
      this.parsed.set(entry, parsed);
    }
    return parsed;
  }
}

/** RFC 9111 §4.3.1: the stored response's validators, as the fields of a conditional request. */
function validatorsOf(policy: CachePolicy): ConditionalFields | undefined {
  return conditionalFieldsOf(policy.revalidationHeaders({ url: "/", method: "GET", headers: {} }));
}

/** The final response's section of a stored header (after any 1xx or redirect hops). */
function finalSection(header: Buffer): Buffer {
  const blocks = scanHeaderBlocks(header)?.blocks;
  const last = blocks?.[blocks.length - 1];
  return last ? header.subarray(last.start, last.end) : header;
}

/**
 * Rewrites the final section of a stored header with the fields of a 304, keeping every other
 * byte as the origin sent it (line ends included).
 */
export function updateHeader(stored: Buffer, notModified: Buffer): Buffer {
  const blocks = scanHeaderBlocks(stored)?.blocks;
  const last = blocks?.[blocks.length - 1];
  if (!last) return stored;
  const text = stored.subarray(last.start, last.end).toString("latin1");
  const eol = /^[^\n]*\r\n/.test(text) ? "\r\n" : "\n";
  const updates = new Map<string, { rawName: string; values: string[] }>();
  for (const field of sectionFields(notModified)) {
    if (NOT_UPDATED_BY_304.has(field.name)) continue;
    const update = updates.get(field.name) ?? { rawName: field.rawName, values: [] };
    update.values.push(field.value);
    updates.set(field.name, update);
  }
  const lines = text.split(/(?<=\n)/); // each line with its own line end
  const out: string[] = [lines[0] ?? ""];
  const written = new Set<string>();
  let skippingFold = false;
  for (const line of lines.slice(1)) {
    const isBlank = line === "\n" || line.startsWith("\r");
    if (isBlank) {
      for (const [name, update] of updates) {
        if (!written.has(name)) for (const value of update.values) out.push(`${update.rawName}: ${value}${eol}`);
      }
      out.push(line);
      continue;
    }
    if (line.startsWith(" ") || line.startsWith("\t")) {
      if (!skippingFold) out.push(line);
      continue;
    }
    const colon = line.indexOf(":");
    const name = colon > 0 ? line.slice(0, colon).toLowerCase() : "";
    const update = updates.get(name);
    skippingFold = update !== undefined;
    if (!update) {
      out.push(line);
    } else if (!written.has(name)) {
      written.add(name);
      const rawName = line.slice(0, colon);
      for (const value of update.values) out.push(`${rawName}: ${value}${eol}`);
    }
  }
  return Buffer.concat([
    stored.subarray(0, last.start),
    Buffer.from(out.join(""), "latin1"),
    stored.subarray(last.end),
  ]);
}
