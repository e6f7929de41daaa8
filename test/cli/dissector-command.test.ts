/** `headwire dissector`: prints the shipped Lua file byte for byte, or its path; documented in --help. */
import assert from "node:assert/strict";
import { readFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { test } from "node:test";
import { DISSECTOR_PATH } from "../../src/cli/dissector-command.js";
import { runCli } from "./run-cli.js";

test("headwire dissector prints dissector/headwire.lua exactly, ready to redirect into the plugin folder", async () => {
  const run = await runCli(["dissector"], { cwd: tmpdir() });
  assert.equal(run.code, 0, run.stderr);
  assert.ok(DISSECTOR_PATH.endsWith("/dissector/headwire.lua"));
  assert.deepEqual(run.stdoutBytes, await readFile(DISSECTOR_PATH));
  assert.match(run.stdout, /Proto\("headwire_ctl"/);
  assert.match(run.stdout, /Proto\("headwire_data"/);
  assert.equal(run.stderr, "");
});

test("headwire dissector --path names the file; --help says how to install and use it", async () => {
  const path = await runCli(["dissector", "--path"], { cwd: tmpdir() });
  assert.equal(path.stdout, `${DISSECTOR_PATH}\n`);
  const help = await runCli(["dissector", "--help"], { cwd: tmpdir() });
  assert.equal(help.code, 0);
  assert.match(help.stdout, /headwire dissector > ~\/\.local\/lib\/wireshark\/plugins\/headwire\.lua/);
  assert.match(help.stdout, /tshark -X lua_script:/);
  const top = await runCli(["--help"], { cwd: tmpdir() });
  assert.match(top.stdout, /dissector \[options\] +print the Wireshark\/tshark dissector/);
});
