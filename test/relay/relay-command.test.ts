import { test } from "node:test";
import assert from "node:assert/strict";
import { relayCommand, relayOptions } from "../../src/cli/relay-command.js";
import type { LossyRelayOptions } from "../../src/relay/lossy-relay.js";

/** The options `headwire relay <args>` would start its relay with (the relay is not started). */
function optionsOf(args: string[]): LossyRelayOptions {
  let options: LossyRelayOptions | undefined;
  const command = relayCommand()
    .exitOverride()
    .configureOutput({ writeErr: () => {} })
    .action((flags) => {
      options = relayOptions(flags);
    });
  command.parse(["--target", "127.0.0.1:9", ...args], { from: "user" });
  assert.ok(options);
  return options;
}

test("relay flags: one value sets both directions, two set to-target then to-client", () => {
  const options = optionsOf([
    "--latency-ms",
    "300",
    "--jitter-ms",
    "20,5",
    "--bytes-per-second",
    "0,1000000",
    "--queue-bytes",
    "65536",
    "--block",
    "--idle-mapping-ms",
    "30000",
  ]);
  assert.deepEqual(options.toTarget, { delayMs: 300, jitterMs: 20, bytesPerSecond: 0, queueBytes: 65536 });
  assert.deepEqual(options.toClient, { delayMs: 300, jitterMs: 5, bytesPerSecond: 1_000_000, queueBytes: 65536 });
  assert.equal(options.block, true);
  assert.equal(options.idleMappingMs, 30_000);
  assert.deepEqual(options.target, { host: "127.0.0.1", port: 9 });
});

test("relay flags: today's flags keep their meaning, and the new ones default to a clean path", () => {
  const options = optionsOf(["--delay-ms", "40", "--loss", "0.3"]);
  assert.deepEqual(options.delayMs, { min: 0, max: 40 });
  assert.equal(options.loss, 0.3);
  assert.deepEqual(options.toTarget, {});
  assert.deepEqual(options.toClient, {});
  assert.equal(options.block, false);
  assert.equal(options.idleMappingMs, 120_000);
});

test("relay flags: a malformed per-direction value is refused with the flag's name", () => {
  for (const bad of ["1,2,3", "-5", "x", "10,"]) {
    assert.throws(
      () => optionsOf(["--latency-ms", bad]),
      (error: Error) => error.message.includes("--latency-ms") && error.message.includes("N,M"),
      bad,
    );
  }
});
