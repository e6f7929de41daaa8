import assert from "node:assert/strict";
import { test } from "node:test";
import { canonicalHost, isTrustedUdpHost } from "../../src/client/ticket-trust.js";

test("one spelling per host: IPv6 compressed, IPv4-mapped as IPv4, names in lower case", () => {
  assert.equal(canonicalHost("::FFFF:127.0.0.1"), "127.0.0.1");
  assert.equal(canonicalHost("2001:DB8:0:0:0:0:0:1"), "2001:db8::1");
  assert.equal(canonicalHost("Headwire.Example."), "headwire.example");
  assert.equal(canonicalHost("127.1"), "127.1", "only strict IP literals are read as addresses");
});

test("a ticket's UDP host is trusted when it is the control peer or a host the user named", () => {
  assert.ok(isTrustedUdpHost("127.0.0.1", "::ffff:127.0.0.1", []));
  assert.ok(isTrustedUdpHost("::1", "0:0:0:0:0:0:0:1", []));
  assert.ok(isTrustedUdpHost("udp.example.net", "10.0.0.1", ["UDP.example.net"]));
  assert.ok(isTrustedUdpHost("203.0.113.9", "10.0.0.1", ["udp.example.net", "203.0.113.9"]));
  assert.equal(isTrustedUdpHost("127.0.0.2", "127.0.0.1", []), false);
  assert.equal(isTrustedUdpHost("victim.example", "127.0.0.1", ["other.example"]), false);
  assert.equal(isTrustedUdpHost("127.0.0.1", undefined, []), false, "no peer known: nothing trusted by default");
});
