/**
 * The header service's cache logic, in milliseconds: a real in-memory store, a scripted fetcher
 * and a clock the test moves. No sockets: what is checked is which answer each state gives, and
 * how many times the origin is asked.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import type { CacheEntry, CacheStore } from "../../src/cache/cache-store.js";
import { Freshness } from "../../src/cache/freshness.js";
import { MemoryCacheStore } from "../../src/cache/memory-cache-store.js";
import { HeadwireError } from "../../src/errors.js";
import type { FetchResult } from "../../src/fetch/origin-fetcher.js";
import type { ConditionalFields } from "../../src/http/conditional.js";
import { DEFAULT_QUERY_OPTIONS } from "../../src/http/query-options.js";
import { HeaderService, type HeaderFetcher } from "../../src/server/header-service.js";
import { parseTarget } from "../../src/url/target.js";

const TARGET = parseTarget("example.com/a");
const GET = DEFAULT_QUERY_OPTIONS;
const MAX_STALE_MS = 60_000;
const NEGATIVE_TTL_MS = 2_000;

function header(fields: string, status = "200 OK"): Buffer {
  return Buffer.from(`HTTP/1.1 ${status}\r\n${fields}\r\n`, "latin1");
}

/** Responses in order, or a function of the request's validators (an origin with a rule). */
type Script = Array<FetchResult | Error> | ((conditional: ConditionalFields | undefined) => FetchResult);

/** Answers each fetch with the next scripted response (or throws it), recording what was asked. */
class ScriptedFetcher implements HeaderFetcher {
  readonly asked: Array<ConditionalFields | undefined> = [];
  constructor(private readonly script: Script) {}

  async fetch(_target: unknown, _options: unknown, conditional?: ConditionalFields): Promise<FetchResult> {
    this.asked.push(conditional);
    if (typeof this.script === "function") return this.script(conditional);
    const next = this.script.shift();
    if (next === undefined) throw new Error("the test scripted no more responses");
    if (next instanceof Error) throw next;
    return next;
  }
}

function ok(fields: string, status = 200): FetchResult {
  return {
    header: header(fields, status === 304 ? "304 Not Modified" : "200 OK"),
    status,
    hops: 1,
    httpVersion: "1.1",
  };
}

function setup(script: Script, store?: CacheStore, limits: { maxEntryBytes?: number; maxHeaderBytes?: number } = {}) {
  const clock = { now: 1_700_000_000_000 };
  const now = () => clock.now;
  const fetcher = new ScriptedFetcher(script);
  const logs: string[] = [];
  const used = store ?? new MemoryCacheStore({ maxEntries: 100, maxTotalBytes: 1_000_000, now });
  const service = new HeaderService({
    store: used,
    fetcher,
    freshness: new Freshness({ defaultTtlMs: 10_000, maxStaleMs: MAX_STALE_MS, now }),
    maxEntryBytes: limits.maxEntryBytes ?? 4096,
    maxHeaderBytes: limits.maxHeaderBytes ?? 65_536,
    negativeTtlMs: NEGATIVE_TTL_MS,
    fillLockMs: 1000,
    maxRememberedFailures: 100,
    now,
    log: (line) => logs.push(line),
  });
  return { service, fetcher, clock, logs, store: used };
}

test("a miss is fetched and stored; the next query is a hit without the origin", async () => {
  const { service, fetcher } = setup([ok("Cache-Control: max-age=60\r\n")]);
  assert.equal((await service.answer(TARGET, GET)).cache, "MISS");
  const hit = await service.answer(TARGET, GET);
  assert.equal(hit.cache, "HIT");
  assert.equal(hit.entry.key, "http://example.com/a");
  assert.equal(fetcher.asked.length, 1);
  assert.equal(service.originFetches, 1);
});

test("concurrent misses on one key share one origin fetch", async () => {
  const { service, fetcher } = setup([ok("Cache-Control: max-age=60\r\n")]);
  const answers = await Promise.all(Array.from({ length: 10 }, () => service.answer(TARGET, GET)));
  assert.equal(fetcher.asked.length, 1);
  assert.ok(answers.every((a) => a.cache === "MISS" && a.entry === answers[0]!.entry));
});

test("a stale entry with a validator is revalidated: a 304 freshens it and merges its fields", async () => {
  const { service, fetcher, clock } = setup([
    ok('Cache-Control: max-age=60\r\nETag: "v1"\r\nX-Old: 1\r\n'),
    ok('Cache-Control: max-age=60\r\nETag: "v1"\r\nX-New: 2\r\n', 304),
  ]);
  await service.answer(TARGET, GET);
  clock.now += 61_000;
  const answer = await service.answer(TARGET, GET);
  assert.equal(answer.cache, "REVALIDATED");
  assert.deepEqual(fetcher.asked[1], { "If-None-Match": '"v1"' });
  const text = answer.entry.header.toString("latin1");
  assert.match(text, /^HTTP\/1\.1 200 OK\r\n/);
  assert.match(text, /X-Old: 1\r\n/);
  assert.match(text, /X-New: 2\r\n/);
  assert.equal((await service.answer(TARGET, GET)).cache, "HIT");
});

test("past its retention (fresh life + maxStaleMs) an entry is gone: a plain MISS, as with Redis", async () => {
  const { service, fetcher, clock } = setup([
    ok('Cache-Control: max-age=60\r\nETag: "v1"\r\n'),
    ok('Cache-Control: max-age=60\r\nETag: "v2"\r\n'),
  ]);
  await service.answer(TARGET, GET);
  clock.now += 60_000 + MAX_STALE_MS;
  assert.equal((await service.answer(TARGET, GET)).cache, "MISS");
  assert.equal(fetcher.asked[1], undefined, "no conditional request: nothing was kept to revalidate");
});

test("an origin failure serves the stale entry within maxStaleMs", async () => {
  const { service, clock } = setup([
    ok("Cache-Control: max-age=60\r\n"),
    new HeadwireError("CONNECTION_REFUSED", "refused"),
  ]);
  const first = await service.answer(TARGET, GET);
  clock.now += 61_000;
  const answer = await service.answer(TARGET, GET);
  assert.equal(answer.cache, "STALE");
  assert.equal(answer.entry, first.entry);
});

test("an origin failure is remembered for negativeTtlMs and shared, then asked again", async () => {
  const { service, fetcher, clock } = setup([
    new HeadwireError("CONNECTION_REFUSED", "refused"),
    ok("Cache-Control: max-age=60\r\n"),
  ]);
  for (let i = 0; i < 3; i++) {
    await assert.rejects(
      service.answer(TARGET, GET),
      (e: unknown) => (e as HeadwireError).code === "CONNECTION_REFUSED",
    );
  }
  assert.equal(fetcher.asked.length, 1);
  clock.now += NEGATIVE_TTL_MS;
  assert.equal((await service.answer(TARGET, GET)).cache, "MISS");
});

test("a bug of ours (not a HeadwireError) is neither remembered nor answered with a stale entry", async () => {
  const bug = new TypeError("cannot read properties of undefined");
  const { service, fetcher, clock } = setup([
    ok("Cache-Control: max-age=60\r\n"),
    bug,
    ok("Cache-Control: max-age=60\r\n"),
  ]);
  await service.answer(TARGET, GET);
  clock.now += 61_000;
  await assert.rejects(service.answer(TARGET, GET), (e: unknown) => e === bug);
  assert.equal((await service.answer(TARGET, GET)).cache, "MISS", "the next query asks the origin again");
  assert.equal(fetcher.asked.length, 3);
});

test("uncacheable and oversized headers are delivered (MISS) but never stored", async () => {
  const big = `X-Big: ${"x".repeat(5000)}\r\n`;
  const { service, fetcher } = setup([
    ok("Cache-Control: no-store\r\n"),
    ok("Cache-Control: no-store\r\n"),
    ok(`Cache-Control: max-age=60\r\n${big}`),
    ok(`Cache-Control: max-age=60\r\n${big}`),
  ]);
  for (let i = 0; i < 2; i++) assert.equal((await service.answer(TARGET, GET)).cache, "MISS");
  const large = parseTarget("example.com/large");
  for (let i = 0; i < 2; i++) assert.equal((await service.answer(large, GET)).cache, "MISS");
  assert.equal(fetcher.asked.length, 4);
});

test("a failing store is bypassed: answers come from the origin, flagged, and the outage is logged once", async () => {
  const failing = new MemoryCacheStore({ maxEntries: 10, maxTotalBytes: 10_000 });
  let down = true;
  const unavailable = () => Promise.reject(new Error("connection refused"));
  const store = Object.assign(Object.create(failing) as MemoryCacheStore, {
    get: (key: string): Promise<CacheEntry | undefined> => (down ? unavailable() : failing.get(key)),
    set: (entry: CacheEntry, ms: number): Promise<void> => (down ? unavailable() : failing.set(entry, ms)),
  });
  const { service, logs } = setup(
    [ok("Cache-Control: max-age=60\r\n"), ok("Cache-Control: max-age=60\r\n"), ok("Cache-Control: max-age=60\r\n")],
    store,
  );
  for (let i = 0; i < 2; i++) {
    const answer = await service.answer(TARGET, GET);
    assert.equal(answer.cache, "MISS");
    assert.equal(answer.storeUnavailable, true);
  }
  assert.equal(logs.filter((line) => /unavailable/.test(line)).length, 1);
  down = false;
  assert.equal((await service.answer(TARGET, GET)).storeUnavailable, false);
  assert.equal(logs.filter((line) => /available again/.test(line)).length, 1);
});

/** An origin whose every 304 carries one more 1 KiB field than the last (issue 11: 3.7 MB after 15). */
function growingOrigin() {
  let revalidations = 0;
  return (conditional: ConditionalFields | undefined): FetchResult => {
    if (!conditional) return ok('Cache-Control: max-age=60\r\nETag: "v1"\r\n');
    revalidations++;
    return ok(`Cache-Control: max-age=60\r\nETag: "v1"\r\nX-Grow-${revalidations}: ${"g".repeat(1024)}\r\n`, 304);
  };
}

test("20 revalidations whose 304s each add a 1 KiB field: the entry never grows past maxHeaderBytes", async () => {
  const maxHeaderBytes = 8192;
  const { service, fetcher, clock, store } = setup(growingOrigin(), undefined, {
    maxHeaderBytes,
    maxEntryBytes: 16_384,
  });
  await service.answer(TARGET, GET);
  const outcomes = new Set<string>();
  for (let i = 0; i < 20; i++) {
    clock.now += 61_000;
    const answer = await service.answer(TARGET, GET);
    outcomes.add(answer.cache);
    assert.ok(answer.entry.header.length <= maxHeaderBytes, `answer ${i}: ${answer.entry.header.length} bytes`);
    const stored = await store.get(answer.entry.key);
    assert.ok(stored && stored.header.length <= maxHeaderBytes, `stored ${i}: ${stored?.header.length} bytes`);
  }
  // Both happened: merges that fit were kept, and one that would not fit made a fresh, full fetch.
  assert.deepEqual([...outcomes].sort(), ["MISS", "REVALIDATED"]);
  assert.ok(
    fetcher.asked.slice(1).some((asked) => asked === undefined),
    "an unconditional refetch",
  );
});

test("a merge past maxHeaderBytes whose refetch fails serves the confirmed header as it was, unstored", async () => {
  let refetches = 0;
  const origin = growingOrigin();
  const { service, clock } = setup(
    (conditional) => {
      if (conditional || refetches++ === 0) return origin(conditional);
      throw new HeadwireError("CONNECTION_REFUSED", "refused");
    },
    undefined,
    { maxHeaderBytes: 1024, maxEntryBytes: 16_384 },
  );
  const first = await service.answer(TARGET, GET);
  clock.now += 61_000;
  const answer = await service.answer(TARGET, GET);
  assert.equal(answer.cache, "REVALIDATED");
  assert.equal(answer.entry, first.entry, "the stored header, without the 304's oversized field");
});

test("a merge past cacheMaxEntryBytes is delivered, not stored, and the old entry is deleted", async () => {
  const { service, fetcher, clock, store } = setup(growingOrigin(), undefined, { maxEntryBytes: 1024 });
  const first = await service.answer(TARGET, GET);
  clock.now += 61_000;
  const answer = await service.answer(TARGET, GET);
  assert.equal(answer.cache, "REVALIDATED");
  assert.ok(answer.entry.header.length > 1024, "delivered with the 304's field");
  assert.equal(await store.get(first.entry.key), undefined, "neither stored nor left to be revalidated again");
  assert.equal((await service.answer(TARGET, GET)).cache, "MISS");
  assert.equal(fetcher.asked[2], undefined, "the next query fetches afresh, without validators");
});

// ---- cache=refresh ----

const REFRESH = { ...GET, cache: "refresh" as const };

test("cache=refresh revalidates a fresh entry that has validators (REVALIDATED) and stores the merge", async () => {
  const { service, fetcher } = setup([
    ok('Cache-Control: max-age=60\r\nETag: "v1"\r\n'),
    ok('Cache-Control: max-age=120\r\nETag: "v1"\r\n', 304),
  ]);
  assert.equal((await service.answer(TARGET, GET)).cache, "MISS");
  assert.equal((await service.answer(TARGET, GET)).cache, "HIT", "fresh: a plain query does not ask");
  const refreshed = await service.answer(TARGET, REFRESH);
  assert.equal(refreshed.cache, "REVALIDATED");
  assert.deepEqual(fetcher.asked, [undefined, { "If-None-Match": '"v1"' }]);
  assert.match(refreshed.entry.header.toString("latin1"), /max-age=120/);
  assert.equal((await service.answer(TARGET, GET)).cache, "HIT");
  assert.match((await service.answer(TARGET, GET)).entry.header.toString("latin1"), /max-age=120/);
});

test("cache=refresh refetches a fresh entry without validators (MISS), and a miss too", async () => {
  const { service, fetcher } = setup([
    ok("Cache-Control: max-age=60\r\nX-V: 1\r\n"),
    ok("Cache-Control: max-age=60\r\nX-V: 2\r\n"),
  ]);
  assert.equal((await service.answer(TARGET, REFRESH)).cache, "MISS", "nothing stored: fetched");
  const again = await service.answer(TARGET, REFRESH);
  assert.equal(again.cache, "MISS");
  assert.match(again.entry.header.toString("latin1"), /X-V: 2/);
  assert.equal(fetcher.asked.length, 2);
  assert.match((await service.answer(TARGET, GET)).entry.header.toString("latin1"), /X-V: 2/, "stored");
});

test("cache=refresh does not join a fetch in flight before it; later plain queries join the refresh", async () => {
  const releases: Array<(result: FetchResult) => void> = [];
  const fetcher: HeaderFetcher = {
    fetch: () => new Promise<FetchResult>((resolve) => releases.push(resolve)),
  };
  const { service } = setup([]);
  // The same service, with an origin that answers when the test says.
  (service as unknown as { options: { fetcher: HeaderFetcher } }).options.fetcher = fetcher;
  const early = service.answer(TARGET, GET);
  await waitFor(() => releases.length === 1);
  const refresh = service.answer(TARGET, REFRESH);
  await waitFor(() => releases.length === 2);
  const late = service.answer(TARGET, GET);
  releases[1]!(ok("Cache-Control: max-age=60\r\nX-V: new\r\n"));
  releases[0]!(ok("Cache-Control: max-age=60\r\nX-V: old\r\n"));
  assert.match((await refresh).entry.header.toString("latin1"), /X-V: new/);
  assert.match((await late).entry.header.toString("latin1"), /X-V: new/, "joined the refresh, not the early fetch");
  assert.match((await early).entry.header.toString("latin1"), /X-V: old/);
  assert.equal(releases.length, 2, "the late query asked the origin nothing of its own");
});

test("cache=refresh that fails reports the failure: nothing stale instead, nothing remembered", async () => {
  const { service } = setup([ok("Cache-Control: max-age=60\r\n"), new HeadwireError("CONNECTION_REFUSED", "refused")]);
  await service.answer(TARGET, GET);
  await assert.rejects(service.answer(TARGET, REFRESH), { code: "CONNECTION_REFUSED" });
  assert.equal((await service.answer(TARGET, GET)).cache, "HIT", "the stored entry still answers plain queries");
});

async function waitFor(condition: () => boolean): Promise<void> {
  while (!condition()) await new Promise((resolve) => setImmediate(resolve));
}
