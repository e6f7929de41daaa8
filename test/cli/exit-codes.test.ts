import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { test } from "node:test";
import { EXIT, EXIT_CLASSES, exitCodeFor, exitOfResult, exitStatusHelp } from "../../src/cli/exit-codes.js";
import { ERROR_CODES, type ErrorCode } from "../../src/errors.js";

test("exit codes: every error code is in exactly one class", () => {
  const seen = new Map<string, number>();
  for (const entry of EXIT_CLASSES) for (const code of entry.codes) seen.set(code, (seen.get(code) ?? 0) + 1);
  for (const code of Object.keys(ERROR_CODES)) assert.equal(seen.get(code), 1, code);
  assert.equal(seen.size, Object.keys(ERROR_CODES).length, "no class names a code that does not exist");
});

test("exit codes: numbered as curl numbers the same classes", () => {
  const expected: Array<[ErrorCode, number]> = [
    ["UNSUPPORTED_SCHEME", 1],
    ["INVALID_URL", 3],
    ["DNS_NOT_FOUND", 6],
    ["CONNECTION_REFUSED", 7],
    ["SERVER_UNREACHABLE", 7],
    ["HTTP_FAILED", 22],
    ["WRITE_FAILED", 23],
    ["CONNECT_TIMEOUT", 28],
    ["HEADER_TIMEOUT", 28],
    ["TLS_FAILURE", 35],
    ["TOO_MANY_REDIRECTS", 47],
    ["CONNECTION_LOST", 56],
    ["PERSIST_FAILED", 1],
  ];
  for (const [code, exit] of expected) assert.equal(exitCodeFor(code), exit, code);
  assert.equal(exitOfResult({}), 0);
  assert.equal(exitOfResult({ error: { code: "TLS_FAILURE" } }), 35);
  // The statuses that are no query's never collide with a class's.
  const classes = new Set(EXIT_CLASSES.map((entry) => entry.exit));
  for (const status of [EXIT.ok, EXIT.usage, EXIT.interrupted]) assert.ok(!classes.has(status), String(status));
});

test("exit codes: the help table lists each status once, in order, with its codes", () => {
  const lines = exitStatusHelp().split("\n");
  for (const line of lines) assert.ok(line.length <= 98, line);
  const statuses = lines.filter((line) => /^ {2}\d/.test(line)).map((line) => Number(line.trim().split(/\s+/)[0]));
  assert.deepEqual(
    statuses,
    [...statuses].sort((a, b) => a - b),
  );
  assert.equal(new Set(statuses).size, statuses.length);
  assert.match(exitStatusHelp(), /^ {2}47 {3}-L hit --max-redirs \(TOO_MANY_REDIRECTS\)$/m);
  assert.match(exitStatusHelp(), /^ {2}0 {4}every query succeeded$/m);
});

test("exit codes: the README's table says what the module does", () => {
  const readme = readFileSync(fileURLToPath(new URL("../../../README.md", import.meta.url)), "utf8");
  const table = readme.slice(readme.indexOf("### Exit status"));
  for (const entry of EXIT_CLASSES) {
    const row = new RegExp(`^\\| ${entry.exit} +\\| ${entry.curl} +\\|(.*)\\|$`, "m").exec(table);
    assert.ok(row, `a row for ${entry.exit}`);
    const named = new Set(row[1]!.match(/[A-Z][A-Z0-9_]+/g));
    assert.deepEqual(
      [...named].filter((word) => Object.hasOwn(ERROR_CODES, word)).sort(),
      [...entry.codes].sort(),
      String(entry.exit),
    );
  }
});
