import assert from "node:assert/strict";
import { test } from "node:test";
import {
  CLIENT_SETTINGS,
  DEFAULT_CLIENT_CONFIG,
  DEFAULT_SERVER_CONFIG,
  resolveClientConfig,
  resolveServerConfig,
  SERVER_SETTINGS,
  serverSettingsAsEnvironment,
  WITHOUT_ABUSE_LIMITS,
} from "../src/config.js";
import { nameOf, type SettingsTable } from "../src/config/schema.js";
import { ConfigError } from "../src/errors.js";
import { CHUNK_OVERHEAD_BYTES } from "../src/protocol/datagram.js";

type Resolve = (overrides: Record<string, unknown>) => unknown;
const SCOPES: Array<[scope: string, table: SettingsTable, resolve: Resolve]> = [
  ["server", SERVER_SETTINGS, resolveServerConfig as Resolve],
  ["client", CLIENT_SETTINGS, resolveClientConfig as Resolve],
];

/** The exact message, and a ConfigError. */
function assertRefused(resolve: () => unknown, message: string): void {
  assert.throws(resolve, (error: unknown) => {
    assert.ok(error instanceof ConfigError, `a ConfigError, not ${String(error)}`);
    assert.equal(error.message, message);
    return true;
  });
}

test("the defaults pass their own checks", () => {
  assert.deepEqual(resolveServerConfig(), DEFAULT_SERVER_CONFIG);
  assert.deepEqual(resolveClientConfig(), DEFAULT_CLIENT_CONFIG);
});

test("the documented message, word for word: the flag's name, never the internal one", () => {
  assertRefused(
    () => resolveServerConfig({ ticketTtlMs: 0 }),
    "--ticket-ttl-ms must be an integer from 1 to 3600000, got 0",
  );
  assertRefused(
    () => resolveServerConfig({ controlPort: 70000 }, { controlPort: "from HEADWIRE_PORT" }),
    "--port must be an integer from 0 to 65535, got 70000 (from HEADWIRE_PORT)",
  );
  // A client setting with no flag is set in code only: its caller knows it by the internal name.
  assertRefused(
    () => resolveClientConfig({ maxDeliveryAttempts: 0 }),
    "client.maxDeliveryAttempts must be an integer from 1 to 1000, got 0",
  );
});

/** Values of the other fields of a cross-field check that let every value of this one pass it. */
const PARTNERS: Record<string, Record<string, number>> = {
  minChunkTimeoutMs: { chunkTimeoutMs: 60_000, maxChunkTimeoutMs: 60_000 },
  chunkTimeoutMs: { minChunkTimeoutMs: 1, maxChunkTimeoutMs: 60_000 },
  maxChunkTimeoutMs: { minChunkTimeoutMs: 1, chunkTimeoutMs: 1 },
  cacheMaxEntryBytes: { cacheMaxBytes: 0 },
  maxTicketBytes: { maxHeaderBytes: 1024 },
};

test("every integer setting: its bounds are accepted, one past them, fractions and strings are refused", () => {
  for (const [scope, table, resolve] of SCOPES) {
    for (const [key, setting] of Object.entries(table)) {
      if (setting.kind !== "integer") continue;
      const { min, max } = setting;
      const around = PARTNERS[key] ?? {};
      for (const ok of [min, max]) {
        assert.equal((resolve({ ...around, [key]: ok }) as Record<string, unknown>)[key], ok, `${scope}.${key}=${ok}`);
      }
      for (const bad of [min - 1, max + 1, min + 0.5, "1", null, Number.NaN]) {
        assertRefused(
          () => resolve({ ...around, [key]: bad }),
          `${nameOf(scope, key, setting)} must be an integer from ${min} to ${max}, got ${typeof bad === "number" ? String(bad) : JSON.stringify(bad)}`,
        );
      }
    }
  }
});

test("strings: their own checks, and a string is required", () => {
  assertRefused(() => resolveServerConfig({ cacheFile: "" }), "--cache-file must be a non-empty path");
  assertRefused(
    () => resolveServerConfig({ cacheUrl: "http://10.0.0.5:6379" }),
    '--cache must be empty, memory or redis://HOST:PORT/DB, got "http://10.0.0.5:6379"',
  );
  assert.equal(resolveServerConfig({ cacheUrl: "memory" }).cacheUrl, "memory");
  assert.equal(resolveServerConfig({ cacheUrl: "redis://10.0.0.5:6379/0" }).cacheUrl, "redis://10.0.0.5:6379/0");
  assert.equal(
    resolveServerConfig({ cacheUrl: "rediss://cache.example:6380" }).cacheUrl,
    "rediss://cache.example:6380",
  );
  assertRefused(
    () => resolveServerConfig({ adminToken: "fifteen-chars.." }),
    "--admin-token must be empty or at least 16 characters",
  );
  assert.equal(resolveServerConfig({ adminToken: "sixteen-chars..." }).adminToken, "sixteen-chars...");
  assertRefused(() => resolveClientConfig({ serverHost: "" }), "client.serverHost must not be empty");
  assertRefused(() => resolveServerConfig({ host: 6 as unknown as string }), "--host must be a string, got number");
});

test("booleans and lists: their types", () => {
  assertRefused(
    () => resolveServerConfig({ allowPrivate: "yes" as unknown as boolean }),
    '--allow-private must be true or false, got "yes"',
  );
  assertRefused(
    () => resolveServerConfig({ allow: "10.0.0.0/8" as unknown as string[] }),
    "--allow must be a list of strings, got string",
  );
  assertRefused(
    () => resolveServerConfig({ allow: ["10.0.0.0/8", 42 as unknown as string] }),
    "--allow[1] must be a string, got number",
  );
  assertRefused(
    () => resolveServerConfig({ allow: ["10.0.0.0/8", "10.1"] }),
    '--allow: "10.1" is not a CIDR range like 203.0.113.0/24 or 2001:db8::/32',
  );
});

test("cross-field: a cached entry may not be larger than the whole cache (when both are limited)", () => {
  assertRefused(
    () => resolveServerConfig({ cacheMaxBytes: 1000, cacheMaxEntryBytes: 1001 }),
    "--cache-max-entry-bytes must not exceed --cache-max-bytes (1000), got 1001",
  );
  assert.equal(resolveServerConfig({ cacheMaxBytes: 1000, cacheMaxEntryBytes: 1000 }).cacheMaxEntryBytes, 1000);
  assert.equal(resolveServerConfig({ cacheMaxBytes: 0, cacheMaxEntryBytes: 1001 }).cacheMaxEntryBytes, 1001);
  assert.equal(resolveServerConfig({ cacheMaxBytes: 1000, cacheMaxEntryBytes: 0 }).cacheMaxBytes, 1000);
});

test("cross-field: the ticket budget holds at least one header of the largest size", () => {
  assertRefused(
    () => resolveServerConfig({ maxHeaderBytes: 4096, maxTicketBytes: 4095 }),
    "--max-ticket-bytes must be at least --max-header-bytes (4096), got 4095",
  );
  assert.equal(resolveServerConfig({ maxHeaderBytes: 4096, maxTicketBytes: 4096 }).maxTicketBytes, 4096);
});

test("cross-field: minChunkTimeoutMs <= chunkTimeoutMs <= maxChunkTimeoutMs", () => {
  assertRefused(
    () => resolveClientConfig({ chunkTimeoutMs: 10 }),
    "--chunk-timeout-ms must be from client.minChunkTimeoutMs (20) to client.maxChunkTimeoutMs (8000), got 10",
  );
  assertRefused(
    () => resolveClientConfig({ chunkTimeoutMs: 8001 }),
    "--chunk-timeout-ms must be from client.minChunkTimeoutMs (20) to client.maxChunkTimeoutMs (8000), got 8001",
  );
  assertRefused(
    () => resolveClientConfig({ minChunkTimeoutMs: 500, maxChunkTimeoutMs: 400, chunkTimeoutMs: 450 }),
    "client.minChunkTimeoutMs must not exceed client.maxChunkTimeoutMs (400), got 500",
  );
  const edges = resolveClientConfig({ minChunkTimeoutMs: 50, chunkTimeoutMs: 50, maxChunkTimeoutMs: 50 });
  assert.deepEqual([edges.minChunkTimeoutMs, edges.chunkTimeoutMs, edges.maxChunkTimeoutMs], [50, 50, 50]);
});

test("the smallest datagram allowed still carries a chunk's header and some payload", () => {
  assert.ok(SERVER_SETTINGS.maxDatagramBytes.min > CHUNK_OVERHEAD_BYTES);
});

test("only settings are kept: the rest of an options object is ignored, lists are copied", () => {
  const allow = ["10.0.0.0/8"];
  const config = resolveServerConfig({ allow, log: () => {} } as Parameters<typeof resolveServerConfig>[0]);
  assert.deepEqual(Object.keys(config).sort(), Object.keys(SERVER_SETTINGS).sort());
  assert.deepEqual(config.allow, allow);
  assert.notEqual(config.allow, allow);
  assert.notEqual(resolveServerConfig().allow, DEFAULT_SERVER_CONFIG.allow);
});

test("the settings that used to be constants keep their values as defaults", () => {
  const d = DEFAULT_SERVER_CONFIG;
  assert.deepEqual(
    [d.redisCommandTimeoutMs, d.urlMemoEntries, d.urlMemoBytes, d.negativeCacheEntries],
    [1000, 10_000, 4 * 1024 * 1024, 10_000],
  );
  assert.deepEqual([d.allowPrivate, d.allow, d.insecureTls, d.caFile], [false, [], false, ""]);
});

test("undefined means the default", () => {
  assert.equal(resolveServerConfig({ ticketTtlMs: undefined }).ticketTtlMs, 30_000);
});

test("the abuse limits off is a valid configuration, and settings become the variables the CLI reads", () => {
  const config = resolveServerConfig({ ...WITHOUT_ABUSE_LIMITS });
  assert.equal(config.queriesPerSecondPerAddress, 0);
  assert.equal(config.originFetchesPerSecond, 0);
  assert.deepEqual(serverSettingsAsEnvironment({ ticketTtlMs: 5, controlPort: 7, cacheUrl: "memory" }), {
    HEADWIRE_TICKET_TTL_MS: "5",
    HEADWIRE_PORT: "7",
    HEADWIRE_CACHE: "memory",
  });
});
