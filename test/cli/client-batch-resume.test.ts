/**
 * A batch outlives its server (issue 13, item 5): the server process is stopped (SIGTERM) in the
 * middle of a batch and a new one started on the same control port; every session connects
 * again and the batch goes on, no URL lost or asked twice, every file byte-exact.
 */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { once } from "node:events";
import { readFile, readdir } from "node:fs/promises";
import { join } from "node:path";
import { test } from "node:test";
import { headerFileName } from "../../src/client/file-name.js";
import { CraftedOrigin } from "../../src/demo/crafted-origin.js";
import { tempDir } from "../helpers.js";
import { BIN, spawnServer, spawnServerWith, type ServerProcess } from "./run-cli.js";

const URLS = 600;

function numberedHeader(i: number): string {
  return `HTTP/1.1 200 OK\r\nCache-Control: max-age=3600\r\nX-Number: ${i}\r\nContent-Length: 0\r\n\r\n`;
}

/** Resolves once `dir` holds at least `count` finished header files (bounded: 120 s). */
async function filesAtLeast(dir: string, count: number): Promise<void> {
  const deadline = Date.now() + 120_000;
  for (;;) {
    const names = await readdir(dir).catch(() => [] as string[]);
    if (names.filter((name) => name.endsWith(".txt")).length >= count) return;
    if (Date.now() > deadline) throw new Error(`fewer than ${count} files in ${dir} after 120 s`);
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}

async function stop(server: ServerProcess): Promise<void> {
  if (server.child.exitCode !== null || server.child.signalCode !== null) return;
  const exited = once(server.child, "exit");
  server.child.kill("SIGTERM");
  await exited;
}

test("batch: a server restarted mid-batch; the sessions reconnect, no URL lost or repeated, files byte-exact", async (t) => {
  const dir = await tempDir(t);
  const routes = Object.fromEntries(Array.from({ length: URLS }, (_, i) => [`/r/${i}`, { header: numberedHeader(i) }]));
  const origin = await CraftedOrigin.start(routes);
  t.after(() => origin.close());
  // An in-memory cache: the second server starts empty and must ask the origin again.
  const first = await spawnServer(dir, ["--cache", "memory"]);
  const servers = [first];
  t.after(async () => {
    for (const server of servers) await stop(server);
  });

  const urls = Array.from({ length: URLS }, (_, i) => `127.0.0.1:${origin.port}/r/${i}`);
  const client = spawn(
    process.execPath,
    [
      BIN,
      "client",
      "--server",
      `127.0.0.1:${first.port}`,
      "--batch",
      "-",
      "-j",
      "8",
      "--output-dir",
      "out",
      "--json",
      "--no-progress",
    ],
    { cwd: dir, env: { ...process.env, NO_COLOR: "1" } },
  );
  let stdout = "";
  let stderr = "";
  client.stdout.setEncoding("utf8").on("data", (text: string) => (stdout += text));
  client.stderr.setEncoding("utf8").on("data", (text: string) => (stderr += text));
  const closed = once(client, "close");

  // A third of the URLs on the first server, all answered.
  client.stdin.write(`${urls.slice(0, 200).join("\n")}\n`);
  await filesAtLeast(join(dir, "out"), 200);
  // The next hundred go out while the server stops: some are asked of the stopping server, some
  // of none; each must end up answered once.
  const stopped = stop(first);
  client.stdin.write(`${urls.slice(200, 300).join("\n")}\n`);
  await stopped;
  const second = await spawnServerWith(dir, [
    "--host",
    "127.0.0.1",
    "--port",
    String(first.port),
    "--data-port",
    "0",
    "--allow-private",
    "--cache",
    "memory",
  ]);
  servers.push(second);
  client.stdin.end(`${urls.slice(300).join("\n")}\n`);
  const [code] = (await closed) as [number | null];

  assert.equal(code, 0, stderr);
  const records = stdout
    .trim()
    .split("\n")
    .map((line) => JSON.parse(line) as { url: string; error: unknown; status: number });
  // Each URL exactly once, none failed.
  assert.equal(records.length, URLS, stderr);
  assert.deepEqual(new Set(records.map((r) => r.url)).size, URLS);
  assert.deepEqual(
    records.filter((r) => r.error !== null),
    [],
  );
  const summary = stderr.trim().split("\n").at(-1)!;
  assert.match(summary, new RegExp(`^${URLS} queries: ${URLS} succeeded, 0 failed \\| HIT \\d+ MISS \\d+ \\|`));
  // Said once, with what ended the session.
  const notices = stderr.split("\n").filter((line) => line.includes("connecting again"));
  assert.equal(notices.length, 1, stderr);
  assert.match(notices[0]!, /\((SHUTTING_DOWN|CONNECTION_LOST|IDLE_TIMEOUT)\); connecting again \(up to 8 attempts\)/);
  // Every file byte-exact, and no temporary file left.
  const names = await readdir(join(dir, "out"));
  assert.equal(names.length, URLS);
  for (let i = 0; i < URLS; i++) {
    const bytes = await readFile(join(dir, "out", headerFileName(urls[i]!)), "latin1");
    assert.equal(bytes, numberedHeader(i));
  }
  // The second server answered the URLs after the restart: it asked the origin for them.
  assert.ok(origin.requests.get(`/r/${URLS - 1}`)! >= 1);
});
