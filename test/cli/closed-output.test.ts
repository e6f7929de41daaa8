/**
 * Every command survives a reader that goes away (`| head -1`: EPIPE on its next write), and an
 * error nobody caught is one line with its code, not a stack trace (src/cli/process-guard.ts).
 * The pipes are real: bash runs `headwire … | head -1` and reports headwire's own exit status.
 */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { once } from "node:events";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { test } from "node:test";
import { fileURLToPath } from "node:url";
import { FileCacheStore } from "../../src/cache/file-cache-store.js";
import { tempDir } from "../helpers.js";
import { BIN } from "./run-cli.js";

const GUARD = fileURLToPath(new URL("../../src/cli/process-guard.js", import.meta.url));

/** Runs `headwire ARGS | head -1` in bash: what head printed, headwire's stderr and exit status. */
async function throughHead(args: string[], cwd: string) {
  const child = spawn(
    "bash",
    ["-c", '"$@" 2>"$HW_ERR" | head -1; echo "${PIPESTATUS[0]}" >"$HW_STATUS"', "bash", process.execPath, BIN, ...args],
    { cwd, env: { ...process.env, NO_COLOR: "1", HW_ERR: join(cwd, "err.txt"), HW_STATUS: join(cwd, "status.txt") } },
  );
  let stdout = "";
  child.stdout.setEncoding("utf8").on("data", (text: string) => (stdout += text));
  await once(child, "close");
  const stderr = await readFile(join(cwd, "err.txt"), "utf8");
  const status = Number((await readFile(join(cwd, "status.txt"), "utf8")).trim());
  return { stdout, stderr, status };
}

async function bigCacheFile(dir: string): Promise<string> {
  const path = join(dir, "cache.txt");
  const store = new FileCacheStore({
    path,
    maxEntries: 100_000,
    maxTotalBytes: 1 << 30,
    persistDelayMs: 0,
    retentionOnLoadMs: () => 1e12,
    log: () => {},
  });
  await store.open();
  // Far more than a pipe's buffer (64 KiB): the listing is still being written when head exits.
  const header = Buffer.from("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
  for (let i = 0; i < 20_000; i++) {
    await store.set({ key: `http://e${i}.example/`, header, status: 200, storedAtMs: Date.now() }, 1e12);
  }
  await store.close();
  return path;
}

function assertNoTrace(stderr: string): void {
  assert.doesNotMatch(stderr, /EPIPE|\n\s+at |node:events|Error:/, `no stack trace: ${stderr}`);
}

test("headwire cache list | head -1 exits 0 and prints no trace", async (t) => {
  const dir = await tempDir(t);
  const cacheFile = await bigCacheFile(dir);
  const run = await throughHead(["cache", "list", "--cache-file", cacheFile], dir);
  assert.match(run.stdout, /^http:\/\/e\d+\.example\/\t200\t/);
  assert.equal(run.status, 0, run.stderr);
  assertNoTrace(run.stderr);
});

for (const args of [["client", "--help"], ["server", "--help"], ["--help"], ["--version"], ["dissector"], ["demo"]]) {
  test(`headwire ${args.join(" ")} | head -1 exits 0 and prints no trace`, async (t) => {
    const dir = await tempDir(t);
    const run = await throughHead(args, dir);
    assert.notEqual(run.stdout, "");
    assert.equal(run.status, 0, run.stderr);
    assertNoTrace(run.stderr);
  });
}

async function guarded(body: string, env: NodeJS.ProcessEnv = {}) {
  const script = `const { guardProcess } = await import(${JSON.stringify(GUARD)}); guardProcess(); ${body}`;
  const child = spawn(process.execPath, ["--input-type=module", "-e", script], { env: { ...process.env, ...env } });
  let stderr = "";
  child.stderr.setEncoding("utf8").on("data", (text: string) => (stderr += text));
  const [code] = (await once(child, "close")) as [number];
  return { code, stderr };
}

test("an error nobody caught is one line with its code and exit status 70; HEADWIRE_DEBUG=1 adds the stack", async () => {
  const plain = await guarded("setTimeout(() => { throw new TypeError('x is not a function'); });");
  assert.equal(plain.code, 70);
  assert.equal(
    plain.stderr,
    "headwire: x is not a function (INTERNAL_ERROR) — a bug in headwire; HEADWIRE_DEBUG=1 shows where\n",
  );
  const rejected = await guarded("Promise.reject(new Error('lost promise'));");
  assert.equal(rejected.code, 70);
  assert.match(rejected.stderr, /^headwire: lost promise \(INTERNAL_ERROR\)/);
  assert.equal(rejected.stderr.split("\n").length, 2, "one line");
  const debug = await guarded("setTimeout(() => { throw new Error('boom'); });", { HEADWIRE_DEBUG: "1" });
  assert.equal(debug.code, 70);
  assert.match(debug.stderr, /^headwire: boom \(INTERNAL_ERROR\)\nError: boom\n\s+at /);
});

test("an expected error that escapes its command keeps its own code and exits 1", async () => {
  const errors = fileURLToPath(new URL("../../src/errors.js", import.meta.url));
  const run = await guarded(
    `const { HeadwireError } = await import(${JSON.stringify(errors)}); ` +
      "setTimeout(() => { throw new HeadwireError('SERVER_UNREACHABLE', 'cannot reach 127.0.0.1:9: ECONNREFUSED'); });",
  );
  assert.equal(run.code, 1);
  assert.equal(run.stderr, "headwire: cannot reach 127.0.0.1:9: ECONNREFUSED (SERVER_UNREACHABLE)\n");
});
