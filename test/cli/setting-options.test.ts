import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { test, type TestContext } from "node:test";
import { Command, CommanderError } from "commander";
import { clientCommand } from "../../src/cli/client-command.js";
import { serverCommand } from "../../src/cli/server-command.js";
import { addSettingOptions, settingsTableRows } from "../../src/cli/setting-options.js";
import { CLIENT_SETTINGS, resolveServerConfig, SERVER_SETTINGS } from "../../src/config.js";
import { envOf, flagsOf, longFlagOf } from "../../src/config/schema.js";
import { ConfigError } from "../../src/errors.js";

/** A bare command with the server's settings, parsing without exiting, its errors captured. */
function serverSettings(args: string[]) {
  const command = new Command("server").exitOverride().configureOutput({ writeErr: () => {}, writeOut: () => {} });
  const read = addSettingOptions(command, SERVER_SETTINGS);
  command.parse(args, { from: "user" });
  return read(command);
}

/** The values given, without their sources. */
function serverValues(args: string[]) {
  return serverSettings(args).values;
}

function withEnv(t: TestContext, env: Record<string, string>): void {
  for (const [name, value] of Object.entries(env)) {
    const before = process.env[name];
    process.env[name] = value;
    t.after(() => {
      if (before === undefined) delete process.env[name];
      else process.env[name] = before;
    });
  }
}

test("every server setting has a flag, and only the guard and TLS switches (and --no-loopback-admin) lack a variable", () => {
  const withoutEnv: string[] = [];
  for (const [key, setting] of Object.entries(SERVER_SETTINGS)) {
    assert.ok(flagsOf(key, setting), key);
    if (envOf(key, setting) === undefined) withoutEnv.push(key);
  }
  assert.deepEqual(withoutEnv.sort(), [
    "allow",
    "allowInsecureQueries",
    "allowPrivate",
    "caFile",
    "insecureTls",
    "loopbackIsAdmin",
  ]);
});

test("the documented flags and variables keep their names", () => {
  const names = (key: keyof typeof SERVER_SETTINGS) => [
    flagsOf(key, SERVER_SETTINGS[key]),
    envOf(key, SERVER_SETTINGS[key]),
  ];
  assert.deepEqual(names("controlPort"), ["-p, --port <port>", "HEADWIRE_PORT"]);
  assert.deepEqual(names("dataPort"), ["--data-port <port>", "HEADWIRE_DATA_PORT"]);
  assert.deepEqual(names("cacheMaxEntries"), ["--cache-entries <n>", "HEADWIRE_CACHE_ENTRIES"]);
  assert.deepEqual(names("cacheUrl"), ["--cache <url>", "HEADWIRE_CACHE"]);
  assert.deepEqual(names("advertiseHost"), ["--advertise <host[:port]>", "HEADWIRE_ADVERTISE"]);
  assert.deepEqual(names("ticketTtlMs"), ["--ticket-ttl-ms <ms>", "HEADWIRE_TICKET_TTL_MS"]);
  assert.deepEqual(names("maxQueuedQueriesPerSession"), [
    "--max-queued-queries-per-session <n>",
    "HEADWIRE_MAX_QUEUED_QUERIES_PER_SESSION",
  ]);
  assert.deepEqual(names("insecureTls"), ["--insecure", undefined]);
});

test("headwire server's options are the generated ones, and its help lists every setting", () => {
  const command = serverCommand();
  assert.deepEqual(
    command.options.map((option) => option.flags).filter((flags) => flags !== "--config <file>"),
    Object.entries(SERVER_SETTINGS).map(([key, setting]) => flagsOf(key, setting)),
  );
  const help = command.helpInformation({ error: false }).replace(/\s+/g, " ");
  for (const [key, setting] of Object.entries(SERVER_SETTINGS)) {
    assert.ok(help.includes(longFlagOf(key, setting)!), key);
    assert.ok(help.includes(setting.help.replace(/\s+/g, " ")), key);
    const env = envOf(key, setting);
    if (env) assert.ok(help.includes(`env: ${env}`), key);
  }
});

test("headwire client's help lists its settings that have a flag", () => {
  const help = clientCommand().helpInformation({ error: false }).replace(/\s+/g, " ");
  for (const [key, setting] of Object.entries(CLIENT_SETTINGS)) {
    const flag = longFlagOf(key, setting);
    if (flag === undefined) continue;
    assert.ok(help.includes(flag) && help.includes(setting.help), key);
  }
});

test("no flag, no variable: nothing given, so the defaults (and a config file's values) apply", () => {
  const values = serverValues([]);
  assert.deepEqual(values, {}, "a default shown in the help is not a value given");
  assert.deepEqual(resolveServerConfig(values), resolveServerConfig());
});

test("flags map to their settings, the renamed ones included", () => {
  const values = serverValues([
    "-p",
    "0",
    "--data-port",
    "7",
    "--cache-entries",
    "5",
    "--cache",
    "redis://10.0.0.5:6379/0",
    "--advertise",
    "203.0.113.7",
    "--no-loopback-admin",
    "--allow-private",
    "--allow",
    "10.0.0.0/8",
    "192.168.0.0/16",
    "--insecure",
    "--ca-file",
    "ca.pem",
    "--redis-command-timeout-ms",
    "250",
    "--url-memo-entries",
    "3",
    "--url-memo-bytes",
    "2048",
    "--negative-cache-entries",
    "9",
  ]);
  assert.deepEqual(values, {
    ...values,
    controlPort: 0,
    dataPort: 7,
    cacheMaxEntries: 5,
    cacheUrl: "redis://10.0.0.5:6379/0",
    advertiseHost: "203.0.113.7",
    loopbackIsAdmin: false,
    allowPrivate: true,
    allow: ["10.0.0.0/8", "192.168.0.0/16"],
    insecureTls: true,
    caFile: "ca.pem",
    redisCommandTimeoutMs: 250,
    urlMemoEntries: 3,
    urlMemoBytes: 2048,
    negativeCacheEntries: 9,
  });
});

test("a variable beats the default, a flag beats the variable", (t) => {
  withEnv(t, { HEADWIRE_TICKET_TTL_MS: "1234", HEADWIRE_PORT: "4000", HEADWIRE_CACHE: "redis://h:1/2" });
  const fromEnv = serverSettings([]);
  assert.deepEqual(fromEnv.values, { ticketTtlMs: 1234, controlPort: 4000, cacheUrl: "redis://h:1/2" });
  assert.deepEqual(fromEnv.sources, {
    ticketTtlMs: "from HEADWIRE_TICKET_TTL_MS",
    controlPort: "from HEADWIRE_PORT",
    cacheUrl: "from HEADWIRE_CACHE",
  });
  const fromFlag = serverSettings(["--ticket-ttl-ms", "99", "--port", "5000"]);
  assert.deepEqual([fromFlag.values.ticketTtlMs, fromFlag.values.controlPort], [99, 5000]);
  assert.deepEqual(fromFlag.sources, { cacheUrl: "from HEADWIRE_CACHE" }, "a flag's value needs no source");
});

test("a bad value, from a flag or a variable, gets the setting's own message with its flag's name; commander only parses", (t) => {
  const refusal = (args: string[]) => () => {
    const { values, sources } = serverSettings(args);
    return resolveServerConfig(values, sources);
  };
  const refused = (message: string) => (error: unknown) => error instanceof ConfigError && error.message === message;
  assert.throws(
    refusal(["--ticket-ttl-ms", "soon"]),
    refused('--ticket-ttl-ms must be an integer from 1 to 3600000, got "soon"'),
  );
  assert.throws(
    refusal(["--ticket-ttl-ms", "0", "--max-sessions", "1"]),
    refused("--ticket-ttl-ms must be an integer from 1 to 3600000, got 0"),
  );
  assert.throws(
    () => serverSettings(["--ticket-ttl"]),
    (error: unknown) => error instanceof CommanderError && error.code === "commander.unknownOption",
  );
  withEnv(t, { HEADWIRE_MAX_SESSIONS: "lots" });
  assert.throws(
    refusal([]),
    refused('--max-sessions must be an integer from 1 to 1000000, got "lots" (from HEADWIRE_MAX_SESSIONS)'),
  );
  assert.equal(resolveServerConfig(serverValues(["--max-sessions", "7"])).maxSessions, 7, "the flag wins");
});

test("the README's table of server settings is the settings table (scripts/settings-table.mjs rewrites it)", () => {
  const readme = readFileSync(new URL("../../../README.md", import.meta.url), "utf8");
  const section = readme.slice(readme.indexOf("## Server configuration"));
  const rows = section
    .split("\n")
    .filter((line) => line.startsWith("| `"))
    .map((line) =>
      line
        .slice(1, -1)
        .split("|")
        .map((cell) => cell.trim()),
    );
  assert.deepEqual(rows, settingsTableRows(SERVER_SETTINGS));
});

test("a list flag that takes one value is repeated, and leaves the arguments after it alone", () => {
  const command = new Command("client")
    .argument("[URL...]")
    .exitOverride()
    .configureOutput({ writeErr: () => {}, writeOut: () => {} });
  const read = addSettingOptions(command, CLIENT_SETTINGS);
  command.parse(["--trust-udp-host", "udp.example.net", "--trust-udp-host", "203.0.113.9", "example.com"], {
    from: "user",
  });
  assert.deepEqual(read(command).values.trustUdpHosts, ["udp.example.net", "203.0.113.9"]);
  assert.deepEqual(command.args, ["example.com"]);
});
