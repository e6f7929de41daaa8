import assert from "node:assert/strict";
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { test, type TestContext } from "node:test";
import { Command } from "commander";
import { loadServerSettings } from "../../src/cli/server-settings.js";
import { addSettingOptions } from "../../src/cli/setting-options.js";
import { DEFAULT_SERVER_CONFIG, SERVER_SETTINGS } from "../../src/config.js";
import { ConfigError } from "../../src/errors.js";
import { tempDir } from "../helpers.js";

function given(args: string[]) {
  const command = new Command("server").exitOverride().configureOutput({ writeErr: () => {}, writeOut: () => {} });
  const read = addSettingOptions(command, SERVER_SETTINGS);
  command.parse(args, { from: "user" });
  return read(command);
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

test("precedence: flags > environment > config file > defaults", async (t) => {
  const dir = await tempDir(t);
  const file = join(dir, "headwire.toml");
  await writeFile(file, "ticket-ttl-ms = 1000\nmax-sessions = 2000\nidle-timeout-ms = 3000\n");
  withEnv(t, { HEADWIRE_TICKET_TTL_MS: "1001", HEADWIRE_MAX_SESSIONS: "2001" });
  const { config, sources, overridden } = await loadServerSettings(given(["--ticket-ttl-ms", "1002"]), file);
  assert.equal(config.ticketTtlMs, 1002, "the flag beats the variable and the file");
  assert.equal(config.maxSessions, 2001, "the variable beats the file");
  assert.equal(config.idleTimeoutMs, 3000, "the file beats the default");
  assert.equal(config.maxLineBytes, DEFAULT_SERVER_CONFIG.maxLineBytes, "the default for the rest");
  assert.deepEqual(sources, {
    maxSessions: "from HEADWIRE_MAX_SESSIONS",
    idleTimeoutMs: `idle-timeout-ms in ${file}`,
  });
  assert.deepEqual(overridden, [
    `ticket-ttl-ms in ${file} is overridden by --ticket-ttl-ms`,
    `max-sessions in ${file} is overridden by HEADWIRE_MAX_SESSIONS`,
  ]);
});

test("a bad value names where it came from; a missing file is a ConfigError too", async (t) => {
  const dir = await tempDir(t);
  const file = join(dir, "headwire.toml");
  await writeFile(file, "max-sessions = 0\n");
  await assert.rejects(
    loadServerSettings(given([]), file),
    (error: unknown) =>
      error instanceof ConfigError &&
      error.message === `--max-sessions must be an integer from 1 to 1000000, got 0 (max-sessions in ${file})`,
  );
  // The flag's value hides the file's bad one: nothing is wrong then.
  assert.equal((await loadServerSettings(given(["--max-sessions", "5"]), file)).config.maxSessions, 5);
  await assert.rejects(
    loadServerSettings(given([]), join(dir, "missing.toml")),
    (error: unknown) =>
      error instanceof ConfigError && /^--config .*missing\.toml cannot be read: ENOENT$/.test(error.message),
  );
});
