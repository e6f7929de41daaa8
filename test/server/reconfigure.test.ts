/**
 * HeadwireServer.reconfigure(): a running server takes the settings marked `reload` in
 * src/config/settings.ts at once (or for new sessions), lists the rest as needing a restart and
 * keeps their old values, logs each change, and changes nothing at all when the new set is bad.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { SERVER_SETTINGS, type ServerConfig } from "../../src/config.js";
import { CraftedOrigin, REALISTIC_HEADERS } from "../../src/demo/crafted-origin.js";
import { ConfigError } from "../../src/errors.js";
import type { HeadwireServer } from "../../src/server/headwire-server.js";
import { RawSession, startServer, tempDir, UNLIMITED } from "../helpers.js";

/** The settings startServer gives, so that a reconfigure() with them and one change changes only that one. */
function startSettings(dir: string): Partial<ServerConfig> {
  return {
    host: "127.0.0.1",
    controlPort: 0,
    dataPort: 0,
    cacheFile: `${dir}/cache.txt`,
    allowPrivate: true,
    adminHttp: "off",
    ...UNLIMITED,
  };
}

async function greeted(server: HeadwireServer): Promise<RawSession> {
  const session = await RawSession.open(server.controlPort);
  assert.match((await session.next()) ?? "", /^HEADWIRE\/2 READY /);
  return session;
}

test("reconfigure: a rate limit and the outbound guard apply at once; a port needs a restart and keeps its value", async (t) => {
  const dir = await tempDir(t);
  const origin = await CraftedOrigin.start(REALISTIC_HEADERS);
  t.after(() => origin.close());
  const logged: string[] = [];
  // A clock that stands still: the rate limit's bucket refills on it, so however slow this
  // machine, no token grows back between the queries below.
  const startedAtMs = Date.now();
  const server = await startServer(dir, { log: (line) => logged.push(line), now: () => startedAtMs }, t);
  const session = await greeted(server);
  t.after(() => session.close());
  session.send(`QUERY 127.0.0.1:${origin.port}/twitch\n`);
  assert.match((await session.next()) ?? "", /^TICKET .* cache=MISS status=301 /);
  const port = server.controlPort;

  const result = server.reconfigure({
    ...startSettings(dir),
    allowPrivate: false,
    queriesPerSecondPerAddress: 1,
    queryBurstPerAddress: 2,
    controlPort: 1,
    idleTimeoutMs: 60_000,
  });
  assert.deepEqual(
    result.applied.map(({ flag, from, to, reload }) => [flag, from, to, reload]),
    [
      ["--idle-timeout-ms", "300000", "60000", "new sessions"],
      ["--queries-per-second-per-address", "0", "1", "now"],
      ["--query-burst-per-address", String(SERVER_SETTINGS.queryBurstPerAddress.default), "2", "now"],
      ["--allow-private", "true", "false", "now"],
    ],
  );
  assert.deepEqual(
    result.needsRestart.map(({ flag, from, to }) => [flag, from, to]),
    [["--port", "0", "1"]],
  );
  assert.equal(server.config.controlPort, 0, "a restart-only setting keeps its value");
  assert.equal(server.controlPort, port);
  assert.equal(server.config.queriesPerSecondPerAddress, 1);
  assert.ok(logged.includes("reload: --allow-private true → false (applied)"), logged.join("\n"));
  assert.ok(logged.includes("reload: --idle-timeout-ms 300000 → 60000 (applied to new sessions)"), logged.join("\n"));
  assert.ok(logged.includes("reload: --port 0 → 1 needs a restart (still 0)"), logged.join("\n"));

  // The guard now refuses the loopback origin (a URL not cached yet, so the origin is asked),
  // and the session that was open before the reload has the new query rate: a burst of 2.
  session.send(`QUERY 127.0.0.1:${origin.port}/google\n`);
  assert.match((await session.next()) ?? "", /^ERROR BLOCKED_ADDRESS /);
  session.send(`QUERY 127.0.0.1:${origin.port}/twitch\n`);
  assert.match((await session.next()) ?? "", /^TICKET .* cache=HIT /, "the cache still answers");
  session.send(`QUERY 127.0.0.1:${origin.port}/twitch\n`);
  assert.match((await session.next()) ?? "", /^ERROR RATE_LIMITED /);
  assert.equal(server.stats().limitHits.RATE_LIMITED, 1);
});

test("reconfigure: a bad set of settings throws with the flag's name and changes nothing", async (t) => {
  const dir = await tempDir(t);
  const logged: string[] = [];
  const server = await startServer(dir, { log: (line) => logged.push(line) }, t);
  const before = { ...server.config };
  assert.throws(
    () => server.reconfigure({ ...startSettings(dir), maxSessionsPerAddress: 0, allowPrivate: false }),
    (error: unknown) =>
      error instanceof ConfigError && error.message.startsWith("--max-sessions-per-address must be an integer from 1"),
  );
  // Each value fine alone, the two together not: refused as a whole as well.
  assert.throws(
    () => server.reconfigure({ ...startSettings(dir), maxTicketBytes: 4096, maxHeaderBytes: 8192 }),
    (error: unknown) =>
      error instanceof ConfigError && /^--max-ticket-bytes must be at least --max-header-bytes/.test(error.message),
  );
  assert.deepEqual(server.config, before);
  assert.ok(!logged.some((line) => line.startsWith("reload:")), logged.join("\n"));
});

test("reconfigure: the same settings change nothing and say so; the admin token's value is never logged", async (t) => {
  const dir = await tempDir(t);
  const logged: string[] = [];
  const server = await startServer(dir, { log: (line) => logged.push(line) }, t);
  assert.deepEqual(server.reconfigure(startSettings(dir)), { applied: [], needsRestart: [] });
  assert.ok(logged.includes("reload: no setting changed"));
  const token = "a-brand-new-token-for-admins";
  const result = server.reconfigure({ ...startSettings(dir), adminToken: token });
  assert.deepEqual(
    result.applied.map(({ flag, from, to }) => [flag, from, to]),
    [["--admin-token", "(hidden)", "(hidden)"]],
  );
  assert.ok(!logged.some((line) => line.includes(token)), logged.join("\n"));
  const session = await greeted(server);
  t.after(() => session.close());
  session.send(`AUTH ${token}\n`);
  assert.equal(await session.next(), "AUTHORIZED");
});

test("every setting a reload may change is marked in the table, and the rest need a restart", () => {
  const reloadable = Object.entries(SERVER_SETTINGS)
    .filter(([, setting]) => "reload" in setting)
    .map(([key]) => key);
  // The ones that are built once at start (bound ports, the cache's shape, the ticket lifetime) are not.
  for (const key of ["host", "controlPort", "dataPort", "cacheUrl", "cacheFile", "cacheMaxBytes", "ticketTtlMs"]) {
    assert.ok(!reloadable.includes(key), key);
  }
  for (const key of [
    "queriesPerSecondPerAddress",
    "originFetchesPerSecond",
    "allow",
    "allowPrivate",
    "maxTicketBytes",
  ]) {
    assert.ok(reloadable.includes(key), key);
  }
});
