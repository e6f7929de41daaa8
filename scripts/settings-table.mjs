#!/usr/bin/env node
// Rewrites the README's table of server settings from src/config/settings.ts (after `npm run build`),
// then formats it. test/cli/setting-options.test.ts fails while the two differ.
import { readFileSync, writeFileSync } from "node:fs";
import { spawnSync } from "node:child_process";
import { settingsTableRows } from "../dist/src/cli/setting-options.js";
import { SERVER_SETTINGS } from "../dist/src/config.js";

const README = new URL("../README.md", import.meta.url);
const text = readFileSync(README, "utf8");
const section = text.indexOf("## Server configuration");
const start = text.indexOf("\n| flag", section) + 1;
const end = text.indexOf("\n\n", start) + 1;
if (section === -1 || start === 0 || end === 0)
  throw new Error("README.md: no settings table under ## Server configuration");
const row = (cells) => `| ${cells.join(" | ")} |\n`;
const table =
  row(["flag", "environment", "default", "on SIGHUP", "meaning"]) +
  row(["---", "---", "---", "---", "---"]) +
  settingsTableRows(SERVER_SETTINGS).map(row).join("");
writeFileSync(README, text.slice(0, start) + table + text.slice(end));
const prettier = spawnSync("npx", ["prettier", "--write", "README.md"], {
  stdio: "inherit",
  cwd: new URL("..", import.meta.url),
});
process.exit(prettier.status ?? 1);
