import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { once } from "node:events";
import { test } from "node:test";
import { openFilesLimit, RESERVED_FILE_DESCRIPTORS, sessionCeiling } from "../../src/server/file-descriptors.js";
import { BIN } from "../cli/run-cli.js";
import { RawSession, tempDir, UNLIMITED_ENV } from "../helpers.js";

const LIMITS = `Limit                     Soft Limit           Hard Limit           Units
Max cpu time              unlimited            unlimited            seconds
Max open files            1024                 524288               files
`;

test("the open-files soft limit is read from /proc/self/limits; unlimited or unreadable is no ceiling", () => {
  assert.equal(openFilesLimit(LIMITS), 1024);
  assert.equal(openFilesLimit(LIMITS.replace("1024   ", "unlimited")), undefined);
  assert.equal(openFilesLimit("nothing here"), undefined);
  assert.equal(typeof openFilesLimit(), "number", "this machine's, as the server reads it");
});

test("sessions in force: maxSessions, or the open-files limit less the reserve, whichever is lower", () => {
  assert.equal(sessionCeiling(20_000, 1024), 1024 - RESERVED_FILE_DESCRIPTORS);
  assert.equal(sessionCeiling(100, 1024), 100);
  assert.equal(sessionCeiling(20_000, undefined), 20_000);
  assert.equal(sessionCeiling(20_000, 10), 1);
});

test("under a low open-files limit, clients past the ceiling are told SERVER_BUSY, never dropped in silence", async (t) => {
  const dir = await tempDir(t);
  const openFiles = RESERVED_FILE_DESCRIPTORS + 40;
  const server = spawn(
    "sh",
    [
      "-c",
      `ulimit -n ${openFiles} && exec "$0" "$@"`,
      process.execPath,
      BIN,
      "server",
      "--host",
      "127.0.0.1",
      "--port",
      "0",
      "--data-port",
      "0",
    ],
    { cwd: dir, env: { ...process.env, ...UNLIMITED_ENV } },
  );
  t.after(async () => {
    server.kill("SIGKILL");
    await once(server, "exit").catch(() => {});
  });
  let stderr = "";
  server.stderr.setEncoding("utf8");
  const port = await new Promise<number>((resolve, reject) => {
    server.stderr.on("data", (text: string) => {
      stderr += text;
      const match = /control tcp \S+ port (\d+)/.exec(stderr);
      if (match) resolve(Number(match[1]));
    });
    server.on("exit", (code) => reject(new Error(`server exited ${code}: ${stderr}`)));
  });
  assert.match(stderr, new RegExp(`open-files limit \\(${openFiles}\\) holds only 40 sessions, not maxSessions 20000`));
  const sessions: RawSession[] = [];
  t.after(() => {
    for (const session of sessions) session.close();
  });
  for (let i = 0; i < 40; i++) {
    const session = await RawSession.open(port);
    sessions.push(session);
    assert.match((await session.next()) ?? "", /^HEADWIRE\/1 READY /, `session ${i} is greeted`);
  }
  for (let i = 0; i < 10; i++) {
    const refused = await RawSession.open(port);
    sessions.push(refused);
    assert.match((await refused.next()) ?? "", /^ERROR SERVER_BUSY /, `extra session ${i} is told why`);
  }
});
