/**
 * The global ticket budget (maxTicketBytes) through a real server: uncacheable misses each hold a
 * header of their own until their ticket expires, so past the budget new queries get SERVER_BUSY,
 * and once tickets expire (the server's injected clock moves) queries work again. Cached lookups
 * share their entry's header and cost it once.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { CraftedOrigin } from "../../src/demo/crafted-origin.js";
import { RawSession, startServer, tempDir } from "../helpers.js";

const TTL_MS = 5000;

function header(cacheControl: string): string {
  return `HTTP/1.1 200 OK\r\nCache-Control: ${cacheControl}\r\nX-Pad: ${"p".repeat(400)}\r\n\r\n`;
}

async function setup(t: Parameters<typeof tempDir>[0] & { after: (fn: () => void) => void }) {
  const dir = await tempDir(t);
  const origin = await CraftedOrigin.start({
    "/no-store": { header: header("no-store") },
    "/cached": { header: header("max-age=600") },
  });
  t.after(() => origin.close());
  let now = 1_700_000_000_000;
  // 1024 bytes hold two of the ~450-byte headers, not three.
  const server = await startServer(
    dir,
    { maxTicketBytes: 1024, maxHeaderBytes: 1024, ticketTtlMs: TTL_MS, now: () => now, shutdownGraceMs: 0 },
    t,
  );
  const session = await RawSession.open(server.controlPort);
  t.after(() => session.close());
  await session.next();
  const query = async (path: string): Promise<string> => {
    session.send(`QUERY 127.0.0.1:${origin.port}${path}\n`);
    return (await session.next()) ?? "(closed)";
  };
  return { server, query, advance: (ms: number) => (now += ms) };
}

test("past maxTicketBytes a query gets SERVER_BUSY; once the tickets expire, queries work again", async (t) => {
  const { server, query, advance } = await setup(t);
  assert.match(await query("/no-store"), /^TICKET /);
  assert.match(await query("/no-store"), /^TICKET /);
  assert.equal(await query("/no-store"), "ERROR SERVER_BUSY ticket memory budget reached; retry later");
  assert.match(await query("/no-store"), /^ERROR SERVER_BUSY /);
  assert.equal(server.stats().tickets, 2);
  assert.ok(server.stats().ticketBytes <= 1024, `${server.stats().ticketBytes} bytes held`);
  advance(TTL_MS);
  assert.match(await query("/no-store"), /^TICKET /);
  assert.equal(server.stats().tickets, 1);
});

test("cached lookups share their entry's header: many tickets for it cost its bytes once", async (t) => {
  const { server, query } = await setup(t);
  for (let i = 0; i < 20; i++) assert.match(await query("/cached"), /^TICKET /);
  assert.equal(server.stats().tickets, 20);
  assert.ok(server.stats().ticketBytes < 600, `${server.stats().ticketBytes} bytes held`);
  assert.match(await query("/no-store"), /^TICKET /, "room is left for one uncacheable header");
  assert.match(await query("/no-store"), /^ERROR SERVER_BUSY /, "but not for two");
  assert.match(await query("/cached"), /^TICKET /, "a cached header already held is still served when full");
});
