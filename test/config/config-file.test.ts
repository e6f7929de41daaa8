import assert from "node:assert/strict";
import { readFile } from "node:fs/promises";
import { test } from "node:test";
import { fileURLToPath } from "node:url";
import { fileKeyOf, parseConfigFile } from "../../src/config/config-file.js";
import { longFlagOf } from "../../src/config/schema.js";
import { DEFAULT_SERVER_CONFIG, resolveServerConfig, SERVER_SETTINGS } from "../../src/config.js";
import { ConfigError } from "../../src/errors.js";

const PATH = "/etc/headwire/headwire.toml";
const parse = (text: string) => parseConfigFile(text, PATH, SERVER_SETTINGS);

function refused(text: string, message: string): void {
  assert.throws(
    () => parse(text),
    (error: unknown) => error instanceof ConfigError && error.message === message,
  );
}

test("keys are the flags' names without --; TOML's own integers, booleans and arrays", () => {
  const file = parse(
    [
      "# a comment",
      "port = 50366",
      "ticket-ttl-ms = 30_000",
      "cache-entries = 5",
      'cache = "redis://10.0.0.5:6379/0"',
      'allow = ["10.1.2.0/24", "2001:db8::/32"]',
      "allow-private = false",
      "loopback-admin = false",
    ].join("\n"),
  );
  assert.deepEqual(file.values, {
    controlPort: 50366,
    ticketTtlMs: 30000,
    cacheMaxEntries: 5,
    cacheUrl: "redis://10.0.0.5:6379/0",
    allow: ["10.1.2.0/24", "2001:db8::/32"],
    allowPrivate: false,
    loopbackIsAdmin: false,
  });
  assert.equal(file.sources.ticketTtlMs, `ticket-ttl-ms in ${PATH}`);
  assert.equal(resolveServerConfig(file.values, file.sources).ticketTtlMs, 30000);
});

test("every server setting has a key, and it is its flag's name (a --no- switch without the no-)", () => {
  for (const [key, setting] of Object.entries(SERVER_SETTINGS)) {
    const fileKey = fileKeyOf(key, SERVER_SETTINGS);
    assert.ok(fileKey, key);
    const flag = longFlagOf(key, setting)!;
    assert.equal(flag.startsWith("--no-") ? `--no-${fileKey}` : `--${fileKey}`, flag);
    assert.ok(key in parse(`${fileKey} = ${JSON.stringify(setting.default)}`).values, key);
  }
});

test("a bad value is refused with the flag's name and the file's key", () => {
  const file = parse("ticket-ttl-ms = 0\n");
  assert.throws(
    () => resolveServerConfig(file.values, file.sources),
    (error: unknown) =>
      error instanceof ConfigError &&
      error.message === `--ticket-ttl-ms must be an integer from 1 to 3600000, got 0 (ticket-ttl-ms in ${PATH})`,
  );
  const quoted = parse('max-sessions = "20000"\nallow-private = "yes"\n');
  assert.throws(
    () => resolveServerConfig(quoted.values, quoted.sources),
    /^ConfigError: --max-sessions must be an integer from 1 to 1000000, got "20000" \(max-sessions in /,
  );
  const fraction = parse("max-sessions = 1.5\n");
  assert.throws(() => resolveServerConfig(fraction.values, fraction.sources), /got 1\.5 \(max-sessions in /);
});

test("camelCase names, variables' names and flags with -- are refused with the key to write", () => {
  refused(
    "ticketTtlMs = 30000",
    `${PATH}: unknown setting "ticketTtlMs": write it as ticket-ttl-ms (its flag's name without --)`,
  );
  refused(
    "HEADWIRE_PORT = 1",
    `${PATH}: unknown setting "HEADWIRE_PORT": write it as port (its flag's name without --)`,
  );
  refused("controlPort = 1", `${PATH}: unknown setting "controlPort": write it as port (its flag's name without --)`);
  refused(
    '"--allow-private" = true',
    `${PATH}: unknown setting "--allow-private": write it as allow-private (its flag's name without --)`,
  );
});

test("unknown keys, tables and bad TOML are refused, with the line where TOML says", () => {
  refused(
    "tickets-ttl-ms = 1",
    `${PATH}: unknown setting "tickets-ttl-ms" (the keys are the flags' names without --, listed by headwire server --help)`,
  );
  refused("[server]\nport = 1\n", `${PATH}: [server]: settings are written at the top level, without tables`);
  refused(
    'config = "/etc/other.toml"\n',
    `${PATH}: unknown setting "config" (the keys are the flags' names without --, listed by headwire server --help)`,
  );
  assert.throws(
    () => parse("port = 1\nport = 2\n"),
    /^ConfigError: \/etc\/headwire\/headwire\.toml:2:\d+: not valid TOML: /,
  );
  assert.throws(() => parse("port = = 1\n"), /^ConfigError: \/etc\/headwire\/headwire\.toml:1:\d+: not valid TOML: /);
  assert.throws(() => parse('__proto__ = { "x" = 1 }\n'), /not valid TOML/);
});

test("an empty file sets nothing", () => {
  assert.deepEqual(parse(""), { values: {}, sources: {} });
});

test("the example file in packaging/ is valid, and every value it sets is the default", async () => {
  const path = fileURLToPath(new URL("../../../packaging/headwire.toml", import.meta.url));
  const file = parseConfigFile(await readFile(path, "utf8"), path, SERVER_SETTINGS);
  const config = resolveServerConfig(file.values, file.sources);
  assert.ok(Object.keys(file.values).length >= 15, "it shows the settings an operator reaches for");
  for (const key of Object.keys(file.values) as Array<keyof typeof config>) {
    assert.deepEqual(config[key], DEFAULT_SERVER_CONFIG[key], `${key} in ${path}`);
  }
});
