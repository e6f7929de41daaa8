/**
 * Issue 12 item 5, the real thing: a client whose own kernel drops chunks (a tiny receive buffer,
 * and a thread that stops reading) gets them again although its ticket's budget is spent, because
 * it reports the kernel's count (DROPS) and the server credits it. The server runs in a worker
 * thread with retransmitBudget 1 (exactly one full delivery) and a header of 50 chunks; the
 * test's receiver blocks its thread at its first chunk, while the rest of its first window
 * arrives, until /proc says the kernel dropped some. Without the credit the delivery must fail;
 * with it, the header arrives byte-exact and the server's counters show the credit.
 */
import assert from "node:assert/strict";
import { once } from "node:events";
import { existsSync, readFileSync } from "node:fs";
import { test } from "node:test";
import { Worker } from "node:worker_threads";
import { bindFreshPort, receiveHeader, type ReceiveOptions } from "../../src/client/header-receiver.js";
import { dropsOf, parseProcNetUdp, procNetUdpPath } from "../../src/client/socket-drops.js";
import { parseServerMessage, type Ticket } from "../../src/protocol/control.js";
import { chunkCount, chunkPayloadBytes } from "../../src/protocol/datagram.js";
import type { DataServerStats } from "../../src/server/data-server.js";
import { RawSession } from "../helpers.js";
import type { BufferLossServerData } from "./buffer-loss-server.js";

const CHUNKS = 50;
const PAYLOAD = chunkPayloadBytes(1200);
const HEADER = (() => {
  const start = "HTTP/1.1 200 OK\r\nCache-Control: max-age=600\r\n";
  const end = "\r\n";
  const pad = CHUNKS * PAYLOAD - 100 - start.length - end.length;
  let lines = "";
  for (let i = 0; lines.length < pad; i++) lines += `X-Line-${i}: ${"v".repeat(60)}\r\n`;
  return start + lines + end;
})();

/**
 * 8 KiB asked for is 16 KiB of kernel accounting: about 7 chunk datagrams of ~2.3 KiB each on
 * loopback, fewer than the 9 of the first window still in flight when the receiver stops reading.
 */
const TINY_BUFFER_BYTES = 8192;

/**
 * Timers far above any loopback round trip, even on a loaded machine: a chunk asked for twice
 * spuriously would cost a budget of exactly one delivery a datagram no credit gives back, and
 * this test is about the drops alone. Loss detection (later requests answered) works regardless.
 */
const OPTIONS: ReceiveOptions = {
  chunkTimeoutMs: 2000,
  minChunkTimeoutMs: 2000,
  maxChunkTimeoutMs: 2000,
  maxDeliveryAttempts: 3,
  windowChunks: 64,
  silentAfterMs: 20_000,
  maxTicketTtlMs: 60_000,
};

async function serverInWorker(t: { after: (fn: () => Promise<void>) => void }, credit: number) {
  const data: BufferLossServerData = { header: HEADER, bufferLossCreditDeliveries: credit };
  const worker = new Worker(new URL("./buffer-loss-server.js", import.meta.url), { workerData: data });
  t.after(async () => {
    worker.postMessage("stop");
    await once(worker, "exit");
  });
  const [ready] = (await once(worker, "message")) as [{ controlPort: number; url: string }];
  const stats = async (): Promise<DataServerStats> => {
    const reply = once(worker, "message");
    worker.postMessage("stats");
    return ((await reply) as [{ data: DataServerStats }])[0].data;
  };
  return { ...ready, stats };
}

async function ticketFor(t: { after: (fn: () => void) => void }, controlPort: number, url: string): Promise<Ticket> {
  const session = await RawSession.open(controlPort);
  t.after(() => session.close());
  await session.next();
  session.send(`QUERY ${url}\n`);
  const message = parseServerMessage((await session.next()) ?? "");
  assert.equal(message.kind, "ticket");
  const ticket = (message as { ticket: Ticket }).ticket;
  assert.equal(ticket.chunks, CHUNKS);
  return ticket;
}

/**
 * Collects the ticket on a socket with a tiny receive buffer. At the first chunk the receiver's
 * thread stops (inside the trace hook, which runs as the chunk is taken) until the kernel's drop
 * counter for its port is above zero: a synchronous poll of /proc with a deadline, the condition
 * itself, not a guess of how long the rest of the window takes.
 */
async function collectWithDrops(ticket: Ticket) {
  const socket = await bindFreshPort("udp4", TINY_BUFFER_BYTES);
  const local = socket.address();
  let dropsWhileBlocked = 0;
  let blocked = false;
  const trace = (channel: string, direction: string): void => {
    if (blocked || channel !== "udp" || direction !== "recv") return;
    blocked = true;
    const deadline = Date.now() + 30_000;
    while (dropsWhileBlocked === 0 && Date.now() < deadline) {
      dropsWhileBlocked = dropsOf(parseProcNetUdp(readFileSync(procNetUdpPath(local.family), "latin1")), local) ?? 0;
    }
  };
  const outcome = await receiveHeader(ticket, OPTIONS, trace, Promise.resolve(socket)).then(
    (result) => ({ ...result, error: undefined }),
    (error: unknown) => ({ header: undefined, stats: undefined, error }),
  );
  assert.ok(dropsWhileBlocked > 0, "the kernel dropped chunks while the receiver's thread was blocked");
  return { ...outcome, dropsWhileBlocked };
}

const noProc = !existsSync("/proc/net/udp");
const skip = noProc ? "no /proc/net/udp here (not Linux): no drop counter, no DROPS report, no credit" : false;

test(
  "chunks the client's own kernel dropped are given back: the header arrives byte-exact on a budget of one delivery",
  { skip },
  async (t) => {
    assert.equal(chunkCount(Buffer.byteLength(HEADER), PAYLOAD), CHUNKS);
    const server = await serverInWorker(t, 1);
    const ticket = await ticketFor(t, server.controlPort, server.url);
    const { header, stats, error, dropsWhileBlocked } = await collectWithDrops(ticket);
    assert.equal(error, undefined, `the delivery failed: ${String(error)}`);
    assert.equal(header?.toString("latin1"), HEADER);
    const data = await server.stats();
    assert.ok(
      stats!.dropsSeen >= dropsWhileBlocked,
      `${stats!.dropsSeen} drops seen, ${dropsWhileBlocked} while blocked`,
    );
    assert.ok(stats!.dropReportsSent >= 1);
    assert.equal(data.dropReports, stats!.dropReportsSent, "every report reached the server (loopback)");
    assert.equal(data.credited.datagrams, stats!.dropsSeen, "each drop the kernel counted credited once");
    assert.equal(data.credited.cappedReports, 0);
    const full = Buffer.byteLength(HEADER) + CHUNKS * 44;
    assert.ok(data.bytesSent > full, `${data.bytesSent} bytes sent: more than one delivery, the lost chunks again`);
    assert.ok(data.bytesSent <= full + data.credited.bytes, "within the budget and its credit");
    assert.equal(data.dropped.foreignAddress + data.dropped.unknownToken + data.dropped.malformed, 0);
  },
);

test(
  "without the credit (bufferLossCreditDeliveries 0) the same drops spend the budget: the delivery fails",
  { skip },
  async (t) => {
    const server = await serverInWorker(t, 0);
    const ticket = await ticketFor(t, server.controlPort, server.url);
    const { error, stats } = await collectWithDrops(ticket);
    assert.equal(stats, undefined);
    assert.equal((error as { code?: string }).code, "DELIVERY_FAILED", String(error));
    const data = await server.stats();
    assert.ok(data.dropReports >= 1, "the client reported its drops");
    assert.equal(data.credited.bytes, 0);
    assert.ok(data.dropped.overBudget >= 1, "re-requests refused: the budget was spent");
    assert.ok(data.bytesSent <= Buffer.byteLength(HEADER) + CHUNKS * 44, "at most one delivery");
  },
);
