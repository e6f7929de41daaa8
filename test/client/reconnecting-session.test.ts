/**
 * ReconnectingSession against real in-process headwire servers on loopback: a stopped server is
 * connected to again, with each attempt told, and given up on after reconnectAttempts; a server
 * with a short idle timeout is kept open by PINGs.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { HeadwireClient } from "../../src/client/headwire-client.js";
import { ReconnectingSession, reconnectWaitMs } from "../../src/client/reconnecting-session.js";
import { CraftedOrigin, REALISTIC_HEADERS } from "../../src/demo/crafted-origin.js";
import { VERSION } from "../../src/version.js";
import { startServer, tempDir } from "../helpers.js";

test("reconnectWaitMs doubles from the back-off, capped at 5 s (or the back-off, if longer)", () => {
  assert.deepEqual(
    [1, 2, 3, 4, 5, 6, 7].map((attempt) => reconnectWaitMs(attempt, 200)),
    [200, 400, 800, 1600, 3200, 5000, 5000],
  );
  assert.equal(reconnectWaitMs(3, 8000), 8000);
});

test("a server gone for good: each attempt is said, then the query fails with the last reason", async (t) => {
  const dir = await tempDir(t);
  const origin = await CraftedOrigin.start(REALISTIC_HEADERS);
  t.after(() => origin.close());
  const server = await startServer(dir);
  const port = server.controlPort;
  const notices: string[] = [];
  const session = await ReconnectingSession.start({
    connect: () =>
      HeadwireClient.connect({
        serverHost: "127.0.0.1",
        serverPort: port,
        outDir: dir,
        reconnectAttempts: 3,
        reconnectBackoffMs: 20,
      }),
    notice: (text) => notices.push(text),
  });
  t.after(() => session.destroy());
  const first = await session.query({ url: `127.0.0.1:${origin.port}/twitch`, write: false });
  assert.equal(first.error, undefined);
  await server.stop();
  await assert.rejects(session.query({ url: `127.0.0.1:${origin.port}/twitch`, write: false }), {
    code: "SERVER_UNREACHABLE",
    message: `cannot reach 127.0.0.1:${port}: ECONNREFUSED (gave up after 3 attempts to connect again)`,
  });
  assert.equal(notices.length, 3, notices.join(""));
  assert.match(
    notices[0]!,
    /^\* connection lost \(the server is shutting down or restarting\); connecting again in \d+ ms \(attempt 1 of 3\)\n$/,
  );
  assert.equal(
    notices[1],
    `* could not connect (cannot reach 127.0.0.1:${port}: ECONNREFUSED); connecting again in 40 ms (attempt 2 of 3)\n`,
  );
  assert.equal(
    notices[2],
    `* could not connect (cannot reach 127.0.0.1:${port}: ECONNREFUSED); connecting again in 80 ms (attempt 3 of 3)\n`,
  );
  // The server back: the next query tries again, from the first attempt.
  await startServer(dir, { controlPort: port }, t);
  const again = await session.query({ url: `127.0.0.1:${origin.port}/twitch`, write: false });
  assert.equal(again.error, undefined);
  assert.equal(notices.at(-1), `* connected again to headwire/${VERSION}\n`);
  await session.terminate();
});

test("keep-alive: PINGs a third of the server's idle timeout apart keep an idle session open", async (t) => {
  const dir = await tempDir(t);
  const origin = await CraftedOrigin.start(REALISTIC_HEADERS);
  t.after(() => origin.close());
  const idleTimeoutMs = 1500;
  const server = await startServer(dir, { idleTimeoutMs }, t);
  let pings = 0;
  let enough: () => void;
  const pinged = new Promise<void>((resolve) => (enough = resolve));
  server.events.onTrace((event) => {
    if (event.type === "line" && event.direction === "in" && event.text === "PING" && ++pings >= 7) enough();
  });
  const notices: string[] = [];
  const session = await ReconnectingSession.start({
    connect: () => HeadwireClient.connect({ serverHost: "127.0.0.1", serverPort: server.controlPort, outDir: dir }),
    notice: (text) => notices.push(text),
    keepAlive: true,
  });
  t.after(() => session.destroy());
  assert.equal(session.keepAliveMs, 500, "a third of idle=1500 from the greeting");
  // Seven PINGs: over twice the idle timeout without a query.
  await pinged;
  const result = await session.query({ url: `127.0.0.1:${origin.port}/twitch`, write: false });
  assert.equal(result.error, undefined);
  assert.deepEqual(notices, [], "never lost, never connected again");
  await session.terminate();
});
