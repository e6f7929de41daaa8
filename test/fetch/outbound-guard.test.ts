import { test } from "node:test";
import assert from "node:assert/strict";
import { ConfigError } from "../../src/errors.js";
import { HeadwireError } from "../../src/errors.js";
import { OutboundGuard } from "../../src/fetch/outbound-guard.js";

const strict = new OutboundGuard({ allowPrivate: false, allow: [] });

const BLOCKED: Record<string, string> = {
  "127.0.0.1": "loopback",
  "127.255.255.254": "loopback",
  "10.0.0.1": "private",
  "172.16.0.1": "private",
  "192.168.1.1": "private",
  "169.254.169.254": "linkLocal (cloud metadata)",
  "100.64.0.1": "carrierGradeNat",
  "0.0.0.0": "unspecified",
  "255.255.255.255": "broadcast",
  "224.0.0.1": "multicast",
  "240.0.0.1": "reserved",
  "192.0.2.1": "reserved (TEST-NET-1)",
  "::1": "loopback",
  "::": "unspecified",
  "fe80::1": "linkLocal",
  "fe80::1%eth0": "linkLocal with a zone",
  "fc00::1": "uniqueLocal",
  "fd12:3456::1": "uniqueLocal",
  "ff02::1": "multicast",
  "2001:db8::1": "reserved (documentation)",
  "::ffff:127.0.0.1": "IPv4-mapped loopback",
  "::ffff:7f00:1": "IPv4-mapped loopback, hex",
  "::ffff:169.254.169.254": "IPv4-mapped metadata",
  "::ffff:10.0.0.1": "IPv4-mapped private",
  "::127.0.0.1": "IPv4-compatible loopback",
  "::a9fe:a9fe": "IPv4-compatible metadata",
  "64:ff9b::7f00:1": "NAT64 of loopback",
  "2002:7f00:1::": "6to4 of loopback",
  "2130706433": "loopback as one number",
  "0x7f000001": "loopback in hex",
  "127.1": "loopback, short form",
  "017700000001": "loopback in octal",
};

test("non-unicast addresses and their disguises are refused", () => {
  for (const [address, why] of Object.entries(BLOCKED)) {
    assert.equal(strict.isAllowed(address), false, `${address}: ${why}`);
    assert.throws(
      () => strict.check(address),
      (error: unknown) => error instanceof HeadwireError && error.code === "BLOCKED_ADDRESS",
      `${address}: ${why}`,
    );
  }
});

test("things that are not IP addresses are refused, even with allowPrivate", () => {
  const open = new OutboundGuard({ allowPrivate: true, allow: [] });
  for (const address of ["", "localhost", "localhost.", "example.com", "1.2.3.4.5", "[::1]", "::1::"]) {
    assert.equal(strict.isAllowed(address), false, address);
    assert.equal(open.isAllowed(address), false, address);
  }
});

test("public unicast addresses pass", () => {
  for (const address of ["8.8.8.8", "1.1.1.1", "93.184.216.34", "2606:4700:4700::1111", "::ffff:8.8.8.8"]) {
    assert.equal(strict.isAllowed(address), true, address);
    assert.doesNotThrow(() => strict.check(address));
  }
});

test("the refusal names the address, its range and the switches that open it, in one sentence", () => {
  assert.throws(() => strict.check("::ffff:169.254.169.254"), {
    message: new RegExp(
      "^::ffff:169\\.254\\.169\\.254 \\(169\\.254\\.169\\.254\\), a link-local address: origins there are " +
        "refused unless the server runs with --allow-private \\(or --allow 169\\.254\\.0\\.0/16\\)$",
    ),
  });
  assert.throws(() => strict.check("10.1.2.3"), {
    message:
      "10.1.2.3, a private address: origins there are refused unless the server runs with --allow-private (or --allow 10.0.0.0/8)",
  });
  assert.throws(() => strict.check("::1", "localhost"), {
    message:
      "localhost resolves to ::1, a loopback address: origins there are refused unless the server runs with --allow-private (or --allow ::1/128)",
  });
  assert.throws(() => strict.check("0.0.0.0"), { message: /^0\.0\.0\.0, an unspecified address: .*--allow-private/ });
});

test("allowPrivate lifts the block", () => {
  const open = new OutboundGuard({ allowPrivate: true, allow: [] });
  for (const address of ["127.0.0.1", "10.0.0.1", "::1", "169.254.169.254", "::ffff:127.0.0.1"]) {
    assert.equal(open.isAllowed(address), true, address);
  }
});

test("allow CIDRs open exactly their range, IPv4-mapped forms included", () => {
  const guard = new OutboundGuard({ allowPrivate: false, allow: ["127.0.0.2/32", "10.1.0.0/16", "fd00:1::/32"] });
  assert.equal(guard.isAllowed("127.0.0.2"), true);
  assert.equal(guard.isAllowed("::ffff:127.0.0.2"), true);
  assert.equal(guard.isAllowed("127.0.0.1"), false);
  assert.equal(guard.isAllowed("::ffff:127.0.0.1"), false);
  assert.equal(guard.isAllowed("10.1.255.255"), true);
  assert.equal(guard.isAllowed("10.2.0.1"), false);
  assert.equal(guard.isAllowed("fd00:1::5"), true);
  assert.equal(guard.isAllowed("fd00:2::5"), false);
  assert.equal(guard.isAllowed("8.8.8.8"), true);
});

test("bad allow entries fail at construction with a precise message", () => {
  const cases: [unknown, RegExp][] = [
    ["127.0.0.1", /allow\[0\] "127\.0\.0\.1" is not a CIDR range/],
    ["127.1/32", /allow\[0\] "127\.1\/32" is not a CIDR range/],
    ["0x7f000001/32", /is not a CIDR range/],
    ["10.0.0.0/33", /allow\[0\] "10\.0\.0\.0\/33" has a prefix length above 32/],
    ["::/129", /prefix length above 128/],
    ["foo/8", /is not a CIDR range/],
    ["", /is not a CIDR range/],
    [42, /allow\[0\] must be a CIDR string, got number/],
  ];
  for (const [cidr, message] of cases) {
    assert.throws(
      () => new OutboundGuard({ allowPrivate: false, allow: [cidr as string] }),
      (error: unknown) => error instanceof ConfigError && message.test(error.message),
      String(cidr),
    );
  }
  assert.throws(() => new OutboundGuard({ allowPrivate: false, allow: ["8.8.8.0/24", "nope"] }), /allow\[1\]/);
  assert.throws(() => new OutboundGuard({ allowPrivate: "yes" as unknown as boolean, allow: [] }), ConfigError);
});
