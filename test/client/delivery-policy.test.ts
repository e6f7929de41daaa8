import assert from "node:assert/strict";
import { test } from "node:test";
import { DeliveryPolicy, fallbackNotice, newTicketNotice } from "../../src/client/delivery-policy.js";

test("auto: UDP first; DELIVERY_FAILED asks for new tickets, then falls back to TCP for good", () => {
  const policy = new DeliveryPolicy("auto", 2);
  assert.equal(policy.delivery, "udp");
  assert.equal(policy.afterUdpFailure("DELIVERY_FAILED", 1), "new-ticket");
  assert.equal(policy.afterUdpFailure("DELIVERY_FAILED", 2), "new-ticket");
  assert.equal(policy.delivery, "udp", "retries stay on UDP");
  assert.equal(policy.afterUdpFailure("DELIVERY_FAILED", 3), "fall-back-to-tcp");
  assert.equal(policy.delivery, "tcp", "remembered for the session");
});

test("auto: nothing arrived at all (UDP_SILENT): TCP at once, no new ticket", () => {
  const policy = new DeliveryPolicy("auto", 2);
  assert.equal(policy.afterUdpFailure("UDP_SILENT", 1), "fall-back-to-tcp");
  assert.equal(policy.delivery, "tcp");
});

test("udp: new tickets, then the failure is reported; a silent path is reported at once", () => {
  const policy = new DeliveryPolicy("udp", 1);
  assert.equal(policy.afterUdpFailure("DELIVERY_FAILED", 1), "new-ticket");
  assert.equal(policy.afterUdpFailure("DELIVERY_FAILED", 2), "give-up");
  assert.equal(policy.afterUdpFailure("UDP_SILENT", 1), "give-up");
  assert.equal(policy.delivery, "udp");
});

test("failures that are not about UDP are never retried nor sent over TCP", () => {
  for (const mode of ["udp", "auto"] as const) {
    const policy = new DeliveryPolicy(mode, 2);
    for (const code of ["UNTRUSTED_TICKET", "PROTOCOL_ERROR", "WRITE_FAILED"] as const) {
      assert.equal(policy.afterUdpFailure(code, 1), "give-up", `${mode} ${code}`);
    }
    assert.equal(policy.delivery, "udp");
  }
  assert.equal(new DeliveryPolicy("tcp", 2).delivery, "tcp");
});

test("the notices say what happened, with the UDP address as a user would type it", () => {
  assert.equal(
    fallbackNotice("2001:db8::1", 50367, "UDP_SILENT", 1),
    "UDP to [2001:db8::1]:50367 seems blocked (no datagram arrived); delivering over the control connection (TCP) for the rest of this session",
  );
  assert.match(
    fallbackNotice("192.0.2.1", 9, "DELIVERY_FAILED", 3),
    /^UDP to 192\.0\.2\.1:9 seems blocked \(3 tickets failed/,
  );
  assert.equal(
    newTicketNotice("a.example", 1, 2, "lost"),
    "a.example: UDP delivery failed (lost); asking for a new ticket (retry 1 of 2)",
  );
});
