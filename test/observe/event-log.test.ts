/**
 * The event log on a real pino logger writing into memory: errors carry their stacks, limit
 * warnings are rate-limited and the next one says how many were held back, the level changes at
 * run time.
 */
import assert from "node:assert/strict";
import { openSync, readFileSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { pino } from "pino";
import { logEvents } from "../../src/observe/event-log.js";
import { ServerLogger } from "../../src/observe/logger.js";
import { ServerEvents } from "../../src/server/server-events.js";

function memoryLogger(): { logger: pino.Logger; lines: () => Array<Record<string, unknown>> } {
  const written: string[] = [];
  const logger = pino(
    { level: "info", formatters: { level: (label) => ({ level: label }) } },
    { write: (line: string) => void written.push(line) },
  );
  return { logger, lines: () => written.map((line) => JSON.parse(line) as Record<string, unknown>) };
}

test("event log: an error is logged with its stack", () => {
  const events = new ServerEvents();
  const { logger, lines } = memoryLogger();
  logEvents(events, logger, { limitWarningsPerSecond: 10 });
  const error = new Error("a bug of ours");
  events.emit({ type: "error", where: "session 4", error, sessionId: 4, address: "127.0.0.1" });
  const [line] = lines();
  assert.equal(line?.level, "error");
  assert.equal(line?.session, 4);
  assert.match(line?.msg as string, /^internal error in session 4 \(127\.0\.0\.1\): Error: a bug of ours\n\s+at /);
  assert.equal((line?.err as { stack: string }).stack, error.stack);
});

test("event log: limit warnings pass at limitWarningsPerSecond; the next one counts those held back", () => {
  const events = new ServerEvents();
  const { logger, lines } = memoryLogger();
  let nowMs = 1_000_000;
  logEvents(events, logger, { limitWarningsPerSecond: 10, now: () => nowMs });
  const hit = () =>
    events.emit({
      type: "limit",
      limit: "queriesPerSecondPerAddress",
      code: "RATE_LIMITED",
      address: "127.0.0.1",
      sessionId: 1,
    });
  for (let i = 0; i < 25; i++) hit();
  assert.equal(lines().length, 10, "the burst, then nothing");
  assert.ok(lines().every((line) => line.level === "warn" && line.suppressed === 0));
  nowMs += 100; // one token back
  hit();
  const last = lines().at(-1)!;
  assert.equal(lines().length, 11);
  assert.equal(last.suppressed, 15);
  assert.match(last.msg as string, /; 15 more limit warnings not logged before this one$/);
  hit();
  assert.equal(lines().length, 11, "no token left");
});

test("event log: the access line follows the level, which can change at run time", () => {
  const events = new ServerEvents();
  const { logger, lines } = memoryLogger();
  logEvents(events, logger, { limitWarningsPerSecond: 10 });
  const query = () =>
    events.emit({
      type: "query",
      atMs: Date.now(),
      sessionId: 1,
      address: "127.0.0.1",
      port: 40000,
      url: "http://a.example/",
      outcome: "HIT",
      failed: false,
      status: 200,
      bytes: 10,
      delivery: "udp",
      ms: 0.0512345,
      originMs: null,
    });
  query();
  logger.level = "warn";
  query();
  logger.level = "info";
  query();
  assert.equal(lines().length, 2);
  assert.equal(lines()[0]?.ms, 0.051, "milliseconds to the microsecond");
  assert.equal(lines()[0]?.msg, "HIT http://a.example/");
});

test("ServerLogger: JSON lines with time, level and msg on its file descriptor; setLevel at run time", async (t) => {
  const dir = await mkdtemp(join(tmpdir(), "headwire-log-"));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const path = join(dir, "log.jsonl");
  // flushBeforeExit() ends the destination, which closes the descriptor.
  const fd = openSync(path, "w");
  const log = new ServerLogger({ format: "json", level: "info", bufferBytes: 65_536, fd });
  log.pino.info({ event: "x" }, "first");
  log.pino.debug("not at info");
  log.setLevel("debug");
  assert.equal(log.level, "debug");
  log.pino.debug("now at debug");
  await log.flushBeforeExit();
  const lines = readFileSync(path, "utf8")
    .trim()
    .split("\n")
    .map((line) => JSON.parse(line) as Record<string, unknown>);
  assert.deepEqual(
    lines.map((line) => [line.level, line.msg]),
    [
      ["info", "first"],
      ["debug", "now at debug"],
    ],
  );
  assert.ok(!Number.isNaN(Date.parse(lines[0]!.time as string)));
  assert.equal(lines[0]!.event, "x");
  assert.equal(log.dropped, 0);
});

test("ServerLogger: the pretty form, for a terminal, writes one readable line a message", async (t) => {
  const dir = await mkdtemp(join(tmpdir(), "headwire-log-"));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const path = join(dir, "pretty.log");
  const log = new ServerLogger({ format: "pretty", level: "info", bufferBytes: 65_536, fd: openSync(path, "w") });
  log.pino.info({ event: "ready", controlPort: 50366 }, "listening: control tcp :: port 50366");
  log.pino.warn({ event: "limit", limit: "maxLineBytes" }, "limit maxLineBytes hit");
  await log.flushBeforeExit();
  const text = readFileSync(path, "utf8");
  assert.match(
    text,
    /^\[\d\d:\d\d:\d\d\.\d{3}\] INFO: listening: control tcp :: port 50366 \{"event":"ready","controlPort":50366\}\n/,
  );
  assert.match(text, /\] WARN: limit maxLineBytes hit \{"event":"limit","limit":"maxLineBytes"\}\n/);
  assert.doesNotMatch(text, /\x1b\[/, "no colour unless asked");
});
