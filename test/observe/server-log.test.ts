/**
 * The server's log as an operator reads it: JSON lines on stderr of a real `headwire server`
 * process, after real queries (a miss, a hit, an error, a limit hit), checked field by field;
 * and a log pipe that is closed, or that nobody reads, does not stop the server serving.
 */
import assert from "node:assert/strict";
import { once } from "node:events";
import { test } from "node:test";
import { HeadwireClient } from "../../src/client/headwire-client.js";
import { CraftedOrigin } from "../../src/demo/crafted-origin.js";
import { RawSession, tempDir } from "../helpers.js";
import { spawnServer } from "../cli/run-cli.js";

const CACHEABLE = { header: "HTTP/1.1 200 OK\r\nCache-Control: max-age=600\r\nX-Test: log\r\n\r\n" };

type LogLine = Record<string, unknown>;

function logLines(stderr: string): LogLine[] {
  return stderr
    .split("\n")
    .filter((line) => line !== "")
    .map((line) => JSON.parse(line) as LogLine);
}

/** Resolves with the log lines once one satisfies `found`; bounded by the test runner's timeout. */
async function logShows(stderr: () => string, found: (line: LogLine) => boolean): Promise<LogLine[]> {
  for (;;) {
    const lines = logLines(stderr().slice(0, stderr().lastIndexOf("\n") + 1));
    if (lines.some(found)) return lines;
    await new Promise((resolve) => setImmediate(resolve));
  }
}

test("log: JSON lines with time, level and msg; an access line per query (miss, hit, error), session lines, a limit warning, ready and stop", async (t) => {
  const dir = await tempDir(t);
  const origin = await CraftedOrigin.start({ "/a": CACHEABLE });
  t.after(() => origin.close());
  const server = await spawnServer(dir, ["--log-format", "json"]);
  const client = await HeadwireClient.connect({ serverPort: server.port, outDir: dir });
  const miss = await client.query({ url: `127.0.0.1:${origin.port}/a` });
  const hit = await client.query({ url: `127.0.0.1:${origin.port}/a` });
  assert.equal(miss.cache, "MISS");
  assert.equal(hit.cache, "HIT");
  const failed = await client.query({ url: "ftp://example.com/x" });
  assert.equal(failed.error?.code, "UNSUPPORTED_SCHEME");
  await client.terminate();
  // A line past maxLineBytes (8192): LINE_TOO_LONG, and the limit's warning.
  const raw = await RawSession.open(server.port);
  t.after(() => raw.close());
  await raw.next(); // greeting
  raw.send(`QUERY ${"x".repeat(9000)}\n`);
  assert.match((await raw.next()) ?? "", /^ERROR LINE_TOO_LONG/);
  const lines = await logShows(server.stderr, (line) => line.event === "limit");

  for (const line of lines) {
    assert.equal(typeof line.time, "string", JSON.stringify(line));
    assert.ok(!Number.isNaN(Date.parse(line.time as string)), `time is ISO 8601: ${String(line.time)}`);
    assert.ok(["debug", "info", "warn", "error", "fatal"].includes(line.level as string), JSON.stringify(line));
    assert.equal(typeof line.msg, "string");
  }
  const ready = lines.find((line) => line.event === "ready");
  assert.ok(ready, "a ready line");
  assert.equal(ready.controlPort, server.port);
  assert.equal(ready.level, "info");
  assert.equal(server.stdout(), "", "stdout stays free");

  const queries = lines.filter((line) => line.event === "query");
  assert.equal(queries.length, 3, JSON.stringify(queries));
  const [first, second, third] = queries as [LogLine, LogLine, LogLine];
  const url = `http://127.0.0.1:${origin.port}/a`;
  const sessionStart = lines.find((line) => line.event === "session-start");
  assert.ok(sessionStart);
  const common = {
    session: sessionStart.session,
    client: "127.0.0.1",
    clientPort: sessionStart.clientPort,
    delivery: "udp",
    level: "info",
    event: "query",
  };
  assert.deepEqual(pick(first, [...Object.keys(common), "url", "outcome", "status", "bytes"]), {
    ...common,
    url,
    outcome: "MISS",
    status: 200,
    bytes: CACHEABLE.header.length,
  });
  assert.equal(typeof first.originMs, "number", "a miss waited for the origin");
  assert.ok((first.ms as number) >= (first.originMs as number));
  assert.deepEqual(pick(second, [...Object.keys(common), "url", "outcome", "status", "bytes", "originMs"]), {
    ...common,
    url,
    outcome: "HIT",
    status: 200,
    bytes: CACHEABLE.header.length,
    originMs: null,
  });
  assert.deepEqual(pick(third, [...Object.keys(common), "outcome", "status", "bytes"]), {
    ...common,
    outcome: "UNSUPPORTED_SCHEME",
    status: null,
    bytes: null,
  });
  assert.equal(typeof sessionStart.clientPort, "number");
  const sessionEnd = lines.find((line) => line.event === "session-end" && line.session === sessionStart.session);
  assert.ok(sessionEnd, "the session's end");
  assert.equal(sessionEnd.queries, 3);
  assert.equal(sessionEnd.errors, 1);
  const limit = lines.find((line) => line.event === "limit");
  assert.deepEqual(pick(limit!, ["level", "limit", "code", "client"]), {
    level: "warn",
    limit: "maxLineBytes",
    code: "LINE_TOO_LONG",
    client: "127.0.0.1",
  });

  server.child.kill("SIGTERM");
  const [code] = await once(server.child, "exit");
  assert.equal(code, 0, server.stderr());
  const stop = logLines(server.stderr()).find((line) => line.event === "stop");
  assert.ok(stop, server.stderr());
  assert.match(stop.msg as string, /^stopped; cache persisted to /);
});

test("log: with its stderr closed, the server serves and stops cleanly; with a stderr nobody reads, too", async (t) => {
  const dir = await tempDir(t);
  const origin = await CraftedOrigin.start({ "/a": CACHEABLE });
  t.after(() => origin.close());
  for (const mode of ["closed", "unread"] as const) {
    const server = await spawnServer(dir, ["--log-format", "json", "--log-buffer-bytes", "4096"]);
    if (mode === "closed") server.child.stderr!.destroy();
    else {
      server.child.stderr!.removeAllListeners("data");
      server.child.stderr!.pause();
    }
    // Some 600 KB of access lines: more than the pipe, the reader's buffer and the log's buffer hold.
    const session = await RawSession.open(server.port);
    await session.next();
    const long = `ftp://example.com/${"p".repeat(1000)}`;
    for (let i = 0; i < 600; i++) {
      session.send(`QUERY ${long}${i}\n`);
      assert.match((await session.next()) ?? "", /^ERROR UNSUPPORTED_SCHEME/, `${mode}: query ${i}`);
    }
    const client = await HeadwireClient.connect({ serverPort: server.port, outDir: dir });
    const result = await client.query({ url: `127.0.0.1:${origin.port}/a` });
    assert.equal(result.status, 200, `${mode}: a real query is still served`);
    await client.terminate();
    session.close();
    server.child.kill("SIGTERM");
    const [code] = await once(server.child, "exit");
    assert.equal(code, 0, `${mode}: stopped cleanly`);
  }
});

function pick(line: LogLine, keys: string[]): LogLine {
  return Object.fromEntries(keys.map((key) => [key, line[key]]));
}
