import assert from "node:assert/strict";
import { test } from "node:test";
import { InvalidArgumentError } from "commander";
import { hostAndPort, integer } from "../../src/cli/parse.js";
import { DEFAULT_CONTROL_PORT, DEFAULT_DATA_PORT } from "../../src/config.js";

test("hostAndPort: a missing port is the one the caller gives (relay --target: the data port)", () => {
  assert.deepEqual(hostAndPort("10.0.0.5", DEFAULT_DATA_PORT), { host: "10.0.0.5", port: 50367 });
  assert.deepEqual(hostAndPort("10.0.0.5", DEFAULT_CONTROL_PORT), { host: "10.0.0.5", port: 50366 });
  assert.deepEqual(hostAndPort("[::1]", DEFAULT_DATA_PORT), { host: "::1", port: 50367 });
  assert.deepEqual(hostAndPort("::1", DEFAULT_DATA_PORT), { host: "::1", port: 50367 });
});

test("hostAndPort: a given port wins, in every spelling", () => {
  assert.deepEqual(hostAndPort("10.0.0.5:40000", DEFAULT_DATA_PORT), { host: "10.0.0.5", port: 40000 });
  assert.deepEqual(hostAndPort("[::1]:40000", DEFAULT_DATA_PORT), { host: "::1", port: 40000 });
  assert.deepEqual(hostAndPort("cache1.example:1", DEFAULT_CONTROL_PORT), { host: "cache1.example", port: 1 });
});

test("hostAndPort: a missing host or a bad port is a usage error", () => {
  for (const bad of ["", ":50366", "h:0", "h:65536", "h:x"]) {
    assert.throws(() => hostAndPort(bad, DEFAULT_CONTROL_PORT), InvalidArgumentError, JSON.stringify(bad));
  }
});

test("integer: whole numbers only", () => {
  assert.equal(integer("0"), 0);
  assert.equal(integer("3600000"), 3_600_000);
  for (const bad of ["", "-1", "1.5", "1e3", " 1", "0x10"]) assert.throws(() => integer(bad), /must be a whole number/);
});

test("hostAndPort: a bare IPv6 address with a port is refused with the bracketed spelling; a bare address takes the default port", () => {
  assert.throws(
    () => hostAndPort("::1:50366", DEFAULT_CONTROL_PORT),
    (error: Error) =>
      error instanceof InvalidArgumentError &&
      error.message.startsWith("use [::1]:50366 for an IPv6 address with a port"),
  );
  assert.throws(() => hostAndPort("2001:db8::1:99999", DEFAULT_CONTROL_PORT), /use \[2001:db8::1\]:99999/);
  assert.throws(
    () => hostAndPort("a:b:c", DEFAULT_CONTROL_PORT),
    /not a host, host:port, IPv6 address or \[IPv6\]:port/,
  );
  assert.deepEqual(hostAndPort("::1", DEFAULT_CONTROL_PORT), { host: "::1", port: 50366 });
  assert.deepEqual(hostAndPort("2001:db8::5", DEFAULT_CONTROL_PORT), { host: "2001:db8::5", port: 50366 });
});
