import { test } from "node:test";
import assert from "node:assert/strict";
import {
  backlogChunks,
  CONGESTIVE_BACKLOG_CHUNKS,
  CongestionWindow,
  pacingRatePerMs,
} from "../../src/client/congestion-window.js";

const OPTIONS = { initialWindow: 10, minWindow: 10, maxWindow: 64 };
const QUEUED = CONGESTIVE_BACKLOG_CHUNKS;

test("starts at the initial window of 10 (RFC 9002 §7.2) and doubles per round in slow start", () => {
  const cwnd = new CongestionWindow(OPTIONS);
  assert.equal(cwnd.window, 10);
  for (let i = 0; i < 10; i++) cwnd.onDelivered(1);
  assert.equal(cwnd.window, 20);
  for (let i = 0; i < 100; i++) cwnd.onDelivered(2);
  assert.equal(cwnd.window, 64, "capped by the receive window");
});

test("a congestive loss halves the window once per event, then growth is additive", () => {
  const cwnd = new CongestionWindow(OPTIONS);
  for (let i = 0; i < 30; i++) cwnd.onDelivered(1);
  assert.equal(cwnd.window, 40);
  assert.equal(cwnd.onLoss(5, 12, QUEUED), true);
  assert.equal(cwnd.window, 20);
  assert.equal(cwnd.onLoss(9, 14, QUEUED), false, "a request sent before the event began: same event");
  assert.equal(cwnd.window, 20);
  cwnd.onDelivered(10);
  assert.equal(cwnd.window, 20, "chunks asked for before the recovery do not grow it");
  for (let i = 0; i < 20; i++) cwnd.onDelivered(13);
  assert.equal(cwnd.window, 20);
  assert.ok(!cwnd.slowStart);
  cwnd.onDelivered(13);
  assert.equal(cwnd.window, 21, "one chunk more per window delivered");
  assert.equal(cwnd.onLoss(13, 20, QUEUED), true, "a request sent after the event: a new one");
  assert.equal(cwnd.window, 10);
  assert.equal(cwnd.onLoss(21, 30, QUEUED), true);
  assert.equal(cwnd.window, 10, "never below the minimum");
});

test("a loss with no queue on the path (random loss) does not shrink the window; a timeout does", () => {
  const cwnd = new CongestionWindow(OPTIONS);
  for (let i = 0; i < 20; i++) cwnd.onDelivered(1);
  assert.equal(cwnd.onLoss(2, 5, QUEUED - 0.5), false);
  assert.equal(cwnd.window, 30);
  cwnd.onTimeout(5);
  assert.equal(cwnd.window, 15);
  cwnd.onTimeout(5);
  assert.equal(cwnd.window, 15, "the same requests' timeout counts once");
});

test("backlog and pacing rate", () => {
  assert.equal(backlogChunks(20, undefined, undefined), 0);
  assert.equal(backlogChunks(20, 600, 600), 0);
  assert.equal(backlogChunks(20, 800, 600), 5);
  assert.equal(pacingRatePerMs(20, 1000), 0.025);
});
