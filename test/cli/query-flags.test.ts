/** The client's curl-like flags as query options: parsed by commander as `headwire client` does. */
import assert from "node:assert/strict";
import { test } from "node:test";
import { Command } from "commander";
import { addQueryFlags, queryOptionsFromFlags, type QueryFlagValues } from "../../src/cli/query-flags.js";

function parse(...args: string[]): ReturnType<typeof queryOptionsFromFlags> {
  const command = addQueryFlags(new Command().exitOverride().configureOutput({ writeErr: () => {} }));
  command.parse(args, { from: "user" });
  return queryOptionsFromFlags(command.opts<QueryFlagValues>());
}

test("no flags: no options (the defaults travel as nothing)", () => {
  assert.deepEqual(parse(), {});
});

test("-k, -4, -6, --fresh and the times in seconds (fractions allowed) as curl takes them", () => {
  assert.deepEqual(parse("-k", "-4", "--fresh", "--connect-timeout", "2.5", "-m", "0.25"), {
    insecure: true,
    ip: "4",
    cache: "refresh",
    connectTimeoutMs: 2500,
    maxTimeMs: 250,
  });
  assert.deepEqual(parse("-6"), { ip: "6" });
  assert.throws(() => parse("-4", "-6"), /cannot be used with/);
  for (const bad of ["0", "-1", "abc", "601", "1e3"]) assert.throws(() => parse("-m", bad), /must be seconds/, bad);
});

test("-H repeats in order, -A sets User-Agent unless an -H did, 'Name:' drops a default, bad lines are refused", () => {
  assert.deepEqual(parse("-H", "Accept-Language: fr", "-H", "Accept:", "-A", "curl/8.5.0"), {
    headers: [
      { name: "User-Agent", value: "curl/8.5.0" },
      { name: "Accept-Language", value: "fr" },
      { name: "Accept", value: "" },
    ],
  });
  assert.deepEqual(parse("-A", "x", "-H", "user-agent: y"), { headers: [{ name: "user-agent", value: "y" }] });
  // The value typed as UTF-8 is sent as its bytes, as curl sends it.
  assert.deepEqual(parse("-H", "X-Word: café"), { headers: [{ name: "X-Word", value: "caf\u00c3\u00a9" }] });
  assert.throws(() => parse("-H", "Host: evil.test"), /header Host cannot be set/);
  assert.throws(() => parse("-H", "no colon"), /write it as 'Name: value'/);
  assert.throws(() => parse("-H", "Bad Name: x"), /is not a token/);
  assert.throws(() => parse("-A", "a\u0001b"), /not field-content/);
});
