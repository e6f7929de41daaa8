/**
 * The /proc/net/udp reader: the parser on text taken from a real Linux machine (two sockets with
 * tiny receive buffers that really dropped 17 datagrams each), the reader on a live socket whose
 * kernel drops datagrams, and the reporter's timing on a scripted counter.
 */
import assert from "node:assert/strict";
import { createSocket, type Socket } from "node:dgram";
import { once } from "node:events";
import { existsSync, readFileSync } from "node:fs";
import { test } from "node:test";
import {
  DropsReporter,
  dropsOf,
  parseProcNetUdp,
  procNetUdpPath,
  readSocketDrops,
} from "../../src/client/socket-drops.js";

/** test/client/fixtures/, from dist/test/client/ where the compiled test runs. */
function fixture(name: string): string {
  return readFileSync(new URL(`../../../test/client/fixtures/${name}`, import.meta.url), "latin1");
}

test("parses /proc/net/udp as Linux writes it: address words in host order, port in hex, drops last", () => {
  // Captured on x86-64 (little-endian): a socket on 127.0.0.1:39477 that dropped 17 datagrams,
  // and two on 0.0.0.0.
  const sockets = parseProcNetUdp(fixture("proc-net-udp.txt"), "LE");
  assert.deepEqual(sockets, [
    { localAddress: "0.0.0.0", localPort: 0xc7d4, drops: 0 },
    { localAddress: "0.0.0.0", localPort: 0xcf30, drops: 0 },
    { localAddress: "127.0.0.1", localPort: 39477, drops: 17 },
  ]);
  assert.equal(dropsOf(sockets, { address: "127.0.0.1", port: 39477, family: "IPv4" }), 17);
  assert.equal(dropsOf(sockets, { address: "0.0.0.0", port: 51156, family: "IPv4" }), 0);
  assert.equal(dropsOf(sockets, { address: "0.0.0.0", port: 39477, family: "IPv4" }), undefined, "address differs");
  assert.equal(dropsOf(sockets, { address: "127.0.0.1", port: 1, family: "IPv4" }), undefined, "not listed");
});

test("parses /proc/net/udp6: four words in host order; addresses compared in one spelling", () => {
  const sockets = parseProcNetUdp(fixture("proc-net-udp6.txt"), "LE");
  assert.deepEqual(sockets, [
    { localAddress: "::", localPort: 44829, drops: 0 },
    { localAddress: "::", localPort: 0xb09e, drops: 0 },
    { localAddress: "::1", localPort: 58005, drops: 17 },
  ]);
  assert.equal(dropsOf(sockets, { address: "0:0:0:0:0:0:0:1", port: 58005, family: "IPv6" }), 17);
  assert.equal(dropsOf(sockets, { address: "::", port: 44829, family: "IPv6" }), 0);
});

test("a big-endian machine prints the words in network order", () => {
  const line = "   7: 7F000001:1F90 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 1 2 0 5\n";
  assert.deepEqual(parseProcNetUdp(line, "BE"), [{ localAddress: "127.0.0.1", localPort: 8080, drops: 5 }]);
  assert.deepEqual(parseProcNetUdp(line, "LE"), [{ localAddress: "1.0.0.127", localPort: 8080, drops: 5 }]);
  const mapped = "1: 0000000000000000FFFF00000100007F:0035 0:0 07 0:0 0:0 0 0 0 1 2 0 9";
  assert.deepEqual(parseProcNetUdp(mapped, "LE"), [{ localAddress: "::ffff:7f00:1", localPort: 53, drops: 9 }]);
});

test("lines that are not a socket's are skipped, never thrown on", () => {
  const text = [
    "   sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode ref pointer drops",
    "",
    "  12: 0100007F:C350",
    "  13: 0100007F:C350 00000000:0000 07 00000000:00000000 00:00000000 00000000 0 0 1 2 0 -1",
    "  14: 0100007:C350 00000000:0000 07 00000000:00000000 00:00000000 00000000 0 0 1 2 0 3",
    "garbage",
    "  15: 0100007F:C350 00000000:0000 07 00000000:00000000 00:00000000 00000000 0 0 1 2 0 3",
  ].join("\n");
  assert.deepEqual(parseProcNetUdp(text, "LE"), [{ localAddress: "127.0.0.1", localPort: 0xc350, drops: 3 }]);
  assert.deepEqual(parseProcNetUdp("", "LE"), []);
});

/** A socket that never reads fast enough: a tiny receive buffer, then a burst it cannot hold. */
async function overflowed(t: { after: (fn: () => void) => void }, type: "udp4" | "udp6", host: string) {
  const receiver: Socket = createSocket({ type, recvBufferSize: 4096 });
  receiver.bind(0, host);
  await once(receiver, "listening");
  t.after(() => receiver.close());
  const sender = createSocket(type);
  t.after(() => sender.close());
  sender.bind(0, host);
  await once(sender, "listening");
  let pending = 64;
  for (let i = 0; i < 64; i++) sender.send(Buffer.alloc(1200), receiver.address().port, host, () => pending--);
  const deadline = Date.now() + 20_000;
  while (pending > 0 && Date.now() < deadline) await new Promise((resolve) => setImmediate(resolve));
  return receiver;
}

test("reads a live socket's drops from /proc, IPv4 and IPv6, and nothing for a socket not listed", async (t) => {
  if (!existsSync("/proc/net/udp")) {
    t.skip("no /proc/net/udp here (not Linux): the reader has no evidence to read");
    return;
  }
  for (const [type, host] of [
    ["udp4", "127.0.0.1"],
    ["udp6", "::1"],
  ] as const) {
    const receiver = await overflowed(t, type, host);
    const local = receiver.address();
    assert.equal(procNetUdpPath(local.family), type === "udp6" ? "/proc/net/udp6" : "/proc/net/udp");
    // 64 datagrams of 1200 bytes at once into a buffer of a few: the kernel drops most of them.
    // The burst was sent before this process read anything, so they are counted by now; the
    // loop bounds a slow kernel all the same.
    let drops = await readSocketDrops(local);
    const deadline = Date.now() + 20_000;
    while ((drops ?? 0) === 0 && Date.now() < deadline) drops = await readSocketDrops(local);
    assert.ok(drops !== undefined && drops > 0 && drops <= 64, `${type}: ${drops} drops`);
  }
  assert.equal(await readSocketDrops({ address: "127.0.0.1", port: 0, family: "IPv4" }), undefined);
});

test("the reporter reads only before asking again, at most once per interval, and reports growth", async () => {
  const counts = [0, 3, 3, 5];
  let reads = 0;
  const reports: number[] = [];
  const reporter = new DropsReporter(
    async () => counts[reads++],
    (drops) => reports.push(drops),
  );
  const step = (reasking: boolean, nowMs: number): Promise<boolean> =>
    new Promise((resolve) => {
      if (!reporter.holdBack(reasking, nowMs, 100, () => resolve(true))) resolve(false);
    });
  assert.equal(await step(false, 0), false, "not asking again: nothing read");
  assert.equal(reads, 0);
  assert.equal(await step(true, 0), true, "read (0 drops), then resumed");
  assert.deepEqual(reports, []);
  assert.equal(await step(true, 50), false, "within the interval: not read again");
  assert.equal(await step(true, 100), true);
  assert.deepEqual(reports, [3], "grew: reported");
  assert.equal(await step(true, 200), true);
  assert.deepEqual(reports, [3], "unchanged: not reported again");
  reporter.onTimeout();
  assert.equal(await step(true, 300), true);
  assert.deepEqual(reports, [3, 5]);
  assert.equal(reporter.seen, 5);
  assert.equal(reporter.reportsSent, 2);
});

test("after a timeout an unchanged count is reported again (the last report may have been lost)", async () => {
  const reports: number[] = [];
  const reporter = new DropsReporter(
    async () => 4,
    (drops) => reports.push(drops),
  );
  const step = (nowMs: number): Promise<void> =>
    new Promise((resolve) => assert.ok(reporter.holdBack(true, nowMs, 10, resolve)));
  await step(0);
  await step(10);
  assert.deepEqual(reports, [4]);
  reporter.onTimeout();
  await step(20);
  assert.deepEqual(reports, [4, 4]);
  await step(30);
  assert.deepEqual(reports, [4, 4], "once per timeout");
});

test("while a read is under way the caller holds back; a failed read reports nothing and resumes", async () => {
  let release: (value: number | undefined) => void = () => {};
  let failing = false;
  const reports: number[] = [];
  const reporter = new DropsReporter(
    () =>
      failing ? Promise.reject(new Error("EACCES")) : new Promise<number | undefined>((resolve) => (release = resolve)),
    (drops) => reports.push(drops),
  );
  let resumed = 0;
  assert.equal(
    reporter.holdBack(true, 0, 10, () => resumed++),
    true,
  );
  assert.equal(
    reporter.holdBack(false, 1, 10, () => resumed++),
    true,
    "a read is under way",
  );
  release(2);
  await new Promise((resolve) => setImmediate(resolve));
  assert.equal(resumed, 1);
  assert.deepEqual(reports, [2]);
  failing = true;
  await new Promise<void>((resolve) => assert.ok(reporter.holdBack(true, 20, 10, resolve)));
  assert.deepEqual(reports, [2]);
});
