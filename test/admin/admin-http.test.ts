/**
 * The admin HTTP listener of a real server on loopback: /metrics after a scripted session (each
 * counter moved by exactly what the session did), the probes (readyz flips when a real
 * redis-server stops), /cache and DELETE /cache, and the token rule.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { HeadwireClient } from "../../src/client/headwire-client.js";
import { ConfigError, resolveServerConfig } from "../../src/config.js";
import { CraftedOrigin } from "../../src/demo/crafted-origin.js";
import type { HeadwireServer } from "../../src/server/headwire-server.js";
import { RawSession, startServer, tempDir } from "../helpers.js";
import { startRedis } from "../redis-server.js";

const CACHEABLE = { header: "HTTP/1.1 200 OK\r\nCache-Control: max-age=600\r\n\r\n" };
const TOKEN = "a-test-admin-token-0123456789";

function admin(server: HeadwireServer, path: string, init: RequestInit = {}): Promise<Response> {
  return fetch(`http://127.0.0.1:${server.adminPort}${path}`, init);
}

/** `name{labels} value` lines of the Prometheus text, as a map from `name{labels}` to the value. */
function samples(text: string): Map<string, number> {
  const found = new Map<string, number>();
  for (const line of text.split("\n")) {
    if (line === "" || line.startsWith("#")) continue;
    const space = line.lastIndexOf(" ");
    found.set(line.slice(0, space), Number(line.slice(space + 1)));
  }
  return found;
}

async function scrape(server: HeadwireServer): Promise<Map<string, number>> {
  const response = await admin(server, "/metrics");
  assert.equal(response.status, 200);
  assert.match(response.headers.get("content-type") ?? "", /^text\/plain; version=0\.0\.4/);
  return samples(await response.text());
}

test("/metrics: each counter moves by exactly what a scripted session did; each server has its own registry", async (t) => {
  const dir = await tempDir(t);
  const origin = await CraftedOrigin.start({ "/a": CACHEABLE, "/b": CACHEABLE });
  t.after(() => origin.close());
  const server = await startServer(dir, { adminHttp: "127.0.0.1:0" }, t);
  const other = await startServer(await tempDir(t), { adminHttp: "127.0.0.1:0" }, t);
  const before = await scrape(server);
  assert.ok(before.has("process_cpu_user_seconds_total"), "prom-client's default process metrics");
  assert.ok(before.has("nodejs_eventloop_lag_seconds"));

  const client = await HeadwireClient.connect({ serverPort: server.controlPort, outDir: dir });
  assert.equal((await client.query({ url: `127.0.0.1:${origin.port}/a` })).cache, "MISS");
  assert.equal((await client.query({ url: `127.0.0.1:${origin.port}/a` })).cache, "HIT");
  assert.equal((await client.query({ url: `127.0.0.1:${origin.port}/b` })).cache, "MISS");
  assert.equal((await client.query({ url: "ftp://example.com/" })).error?.code, "UNSUPPORTED_SCHEME");
  await client.terminate();
  const raw = await RawSession.open(server.controlPort);
  t.after(() => raw.close());
  await raw.next();
  raw.send(`QUERY ${"x".repeat(9000)}\n`);
  assert.match((await raw.next()) ?? "", /^ERROR LINE_TOO_LONG/);

  const after = await scrape(server);
  const moved = (name: string) => (after.get(name) ?? 0) - (before.get(name) ?? 0);
  assert.equal(moved('headwire_queries_total{outcome="MISS"}'), 2);
  assert.equal(moved('headwire_queries_total{outcome="HIT"}'), 1);
  assert.equal(moved('headwire_queries_total{outcome="ERROR"}'), 1);
  assert.equal(moved('headwire_query_errors_total{code="UNSUPPORTED_SCHEME"}'), 1);
  assert.equal(moved('headwire_origin_fetches_total{result="ok"}'), 2);
  assert.equal(moved("headwire_origin_fetch_duration_seconds_count"), 2);
  assert.equal(moved('headwire_delivered_bytes_total{delivery="udp"}'), 3 * CACHEABLE.header.length);
  assert.equal(moved("headwire_sessions_opened_total"), 2);
  assert.equal(moved('headwire_limit_hits_total{limit="maxLineBytes",code="LINE_TOO_LONG"}'), 1);
  assert.equal(after.get("headwire_cache_entries"), 2);
  assert.equal(after.get("headwire_cache_bytes"), 2 * CACHEABLE.header.length);
  assert.equal(after.get("headwire_sessions"), 1, "the raw session is still open");
  // The data channel's figures are the server's own counters, read at the scrape.
  const data = server.stats().data!;
  assert.equal(after.get("headwire_datagrams_sent_total"), data.chunksSent);
  assert.ok(data.chunksSent >= 3, "one chunk per header at least");
  assert.equal(after.get("headwire_datagram_requests_total"), data.requests);
  assert.equal(after.get("headwire_budget_spent_bytes_total"), data.bytesSent);
  assert.equal(after.get('headwire_datagrams_dropped_total{reason="unknownToken"}'), 0);

  const elsewhere = await scrape(other);
  assert.equal(elsewhere.get('headwire_queries_total{outcome="MISS"}') ?? 0, 0, "the other server saw nothing");
});

test("/healthz and /readyz; readyz is 503 with the reason while Redis is down, and ready again after", async (t) => {
  const dir = await tempDir(t);
  const plain = await startServer(dir, { adminHttp: "127.0.0.1:0" }, t);
  assert.equal((await admin(plain, "/healthz")).status, 200);
  const ready = await admin(plain, "/readyz");
  assert.equal(ready.status, 200);
  assert.equal(await ready.text(), "ready\n");

  const redis = await startRedis(t);
  if (!redis) return;
  const server = await startServer(
    await tempDir(t),
    { adminHttp: "127.0.0.1:0", cacheUrl: redis.url(), redisCommandTimeoutMs: 500 },
    t,
  );
  assert.equal((await admin(server, "/readyz")).status, 200);
  assert.equal((await scrape(server)).get("headwire_cache_store_up"), 1);
  await redis.stop();
  const down = await admin(server, "/readyz");
  assert.equal(down.status, 503);
  assert.match(await down.text(), /^not ready: cache store unreachable: /);
  assert.equal((await scrape(server)).get("headwire_cache_store_up"), 0, "the alert's metric");
  assert.equal((await admin(server, "/healthz")).status, 200, "the process still serves");
  await redis.start();
  // ioredis reconnects on its own (at most a second apart): ready again once it has.
  for (let attempt = 0; ; attempt++) {
    const again = await admin(server, "/readyz");
    if (again.status === 200) break;
    assert.ok(attempt < 200, "ready again after Redis came back");
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
});

test("/cache lists entries with status, bytes, stored and fresh until; DELETE /cache?url= purges one URL", async (t) => {
  const dir = await tempDir(t);
  const origin = await CraftedOrigin.start({ "/a": CACHEABLE, "/b": CACHEABLE });
  t.after(() => origin.close());
  const server = await startServer(dir, { adminHttp: "127.0.0.1:0" }, t);
  const client = await HeadwireClient.connect({ serverPort: server.controlPort, outDir: dir });
  await client.query({ url: `127.0.0.1:${origin.port}/a` });
  await client.query({ url: `127.0.0.1:${origin.port}/b` });
  await client.terminate();
  const listed = (await (await admin(server, "/cache")).json()) as { entries: Array<Record<string, unknown>> };
  assert.deepEqual(listed.entries.map((entry) => entry.key).sort(), [
    `http://127.0.0.1:${origin.port}/a`,
    `http://127.0.0.1:${origin.port}/b`,
  ]);
  for (const entry of listed.entries) {
    assert.equal(entry.status, 200);
    assert.equal(entry.bytes, CACHEABLE.header.length);
    assert.equal(entry.fresh, true);
    const stored = Date.parse(entry.storedAt as string);
    // freshUntil is now + (max-age − age) × 1000 (src/cache/freshness.ts), with the age in
    // fractional seconds: the float sum can land a hair under the millisecond, and toISOString()
    // truncates it, so 599,999 ms is the same instant as 600,000 (CI saw it); nothing else is.
    const lifetime = Date.parse(entry.freshUntil as string) - stored;
    assert.ok(lifetime === 600_000 || lifetime === 599_999, `max-age=600 from when it was stored, got ${lifetime} ms`);
  }
  const bad = await admin(server, "/cache?url=ftp%3A%2F%2Fx%2F", { method: "DELETE" });
  assert.equal(bad.status, 400);
  assert.equal(((await bad.json()) as { error: { code: string } }).error.code, "UNSUPPORTED_SCHEME");
  const purged = await admin(server, `/cache?url=${encodeURIComponent(`127.0.0.1:${origin.port}/a`)}`, {
    method: "DELETE",
  });
  assert.deepEqual(await purged.json(), { purged: 1 });
  const left = (await (await admin(server, "/cache")).json()) as { entries: Array<{ key: string }> };
  assert.deepEqual(
    left.entries.map((entry) => entry.key),
    [`http://127.0.0.1:${origin.port}/b`],
  );
  assert.equal((await server.cacheStats()).entries, 1);
});

test("the token: a bind beyond loopback without one is refused at start; with one, Bearer is required and checked", async (t) => {
  assert.throws(
    () => resolveServerConfig({ adminHttp: "0.0.0.0:50368" }),
    (error: unknown) =>
      error instanceof ConfigError &&
      /--admin-http 0\.0\.0\.0:50368 is beyond loopback: it needs --admin-token/.test(error.message),
  );
  assert.doesNotThrow(() => resolveServerConfig({ adminHttp: "0.0.0.0:50368", adminToken: TOKEN }));
  assert.throws(() => resolveServerConfig({ adminHttp: "localhost:1" }), /must name an IP address/);
  assert.throws(() => resolveServerConfig({ adminHttp: "127.0.0.1" }), /must be off or IP:PORT/);
  // Loopback callers are not trusted here (loopbackIsAdmin off): the token is what lets them in.
  const server = await startServer(
    await tempDir(t),
    { adminHttp: "127.0.0.1:0", adminToken: TOKEN, loopbackIsAdmin: false },
    t,
  );
  assert.equal((await admin(server, "/metrics")).status, 401);
  assert.equal(
    (await admin(server, "/cache", { headers: { authorization: "Bearer wrong-token-0123456789" } })).status,
    401,
  );
  assert.equal((await admin(server, "/cache", { headers: { authorization: `Bearer ${TOKEN}` } })).status, 200);
  assert.equal((await admin(server, "/healthz")).status, 200, "probes are open");
  const login = await admin(server, `/?token=${TOKEN}`, { redirect: "manual" });
  assert.equal(login.status, 303);
  const cookie = (login.headers.get("set-cookie") ?? "").split(";")[0]!;
  assert.equal((await admin(server, "/api/status", { headers: { cookie } })).status, 200, "the page's cookie");
});
