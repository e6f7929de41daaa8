import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { once } from "node:events";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { test } from "node:test";
import { parseCache } from "../../src/cache/cache-file-format.js";
import { CacheFileOwnedError } from "../../src/errors.js";
import { HeadwireClient } from "../../src/client/headwire-client.js";
import { CraftedOrigin } from "../../src/demo/crafted-origin.js";
import { RawSession, startServer, tempDir } from "../helpers.js";
import { BIN, spawnServer } from "../cli/run-cli.js";

const CACHEABLE = { header: "HTTP/1.1 200 OK\r\nCache-Control: max-age=600\r\n\r\n" };

test("SIGKILL at random moments during heavy churn: every restart loads a valid cache", async (t) => {
  const dir = await tempDir(t);
  const origin = await CraftedOrigin.start({});
  t.after(() => origin.close());
  for (let i = 0; i < 400; i++) origin.set(`/p${i}`, CACHEABLE);
  let seed = 7;
  const random = () => (seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31;
  let loadedBefore = 0;
  for (let round = 0; round < 8; round++) {
    const server = await spawnServer(dir, ["--cache-entries", "50", "--persist-delay-ms", "1"]);
    const loaded = /cache cache\.txt: (\d+) entries loaded/.exec(server.stderr());
    assert.ok(loaded, `round ${round}: ${server.stderr()}`);
    assert.doesNotMatch(server.stderr(), /corrupt/);
    if (round > 0) assert.ok(Number(loaded[1]) > 0, `round ${round} loaded ${loaded[1]} entries`);
    loadedBefore = Number(loaded[1]);
    // Heavy churn: 4 sessions querying distinct URLs (a 50-entry cache evicts all the time).
    const killAfter = 20 + Math.floor(random() * 120);
    let done = 0;
    const exited = once(server.child, "exit");
    const clients = await Promise.all(
      Array.from({ length: 4 }, () => HeadwireClient.connect({ serverPort: server.port, outDir: dir })),
    );
    await Promise.all(
      clients.map(async (client, c) => {
        for (let q = 0; ; q++) {
          const result = await client
            .query({ url: `127.0.0.1:${origin.port}/p${(round * 97 + c * 50 + q) % 400}`, write: false })
            .catch(() => undefined);
          if (!result || result.error) return;
          if (++done === killAfter) server.child.kill("SIGKILL");
        }
      }),
    );
    await exited;
    for (const client of clients) client.destroy();
    const data = await readFile(join(dir, "cache.txt")).catch(() => undefined);
    if (data) assert.doesNotThrow(() => parseCache(data), `round ${round}: the file on disk is whole`);
  }
  assert.ok(loadedBefore > 0);
});

test("a second server on the same cache file gets a clear error", async (t) => {
  const dir = await tempDir(t);
  await startServer(dir, {}, t);
  await assert.rejects(startServer(dir), CacheFileOwnedError);
  const child = spawn(
    process.execPath,
    [BIN, "server", "--port", "0", "--data-port", "0", "--admin-http", "off", "--cache-file", join(dir, "other.txt")],
    { cwd: dir },
  );
  t.after(() => child.kill());
  // The in-process server above owns cache.txt; a process that wants other.txt is fine, so point a
  // third one at cache.txt through the CLI:
  const refused = spawn(process.execPath, [BIN, "server", "--port", "0", "--data-port", "0", "--admin-http", "off"], {
    cwd: dir,
  });
  let stderr = "";
  refused.stderr.setEncoding("utf8").on("data", (text: string) => (stderr += text));
  const [code] = await once(refused, "exit");
  assert.equal(code, 1);
  assert.match(stderr, /cannot start: .*cache\.txt is already used by a server|owned by the running process/);
});

test("PURGE: loopback sessions may purge; others need AUTH with the admin token", async (t) => {
  const dir = await tempDir(t);
  const origin = await CraftedOrigin.start({ "/a": CACHEABLE, "/b": CACHEABLE });
  t.after(() => origin.close());
  const token = "correct-horse-battery-staple";
  const local = await startServer(dir, {}, t);
  const session = await RawSession.open(local.controlPort);
  t.after(() => session.close());
  await session.next();
  const a = `127.0.0.1:${origin.port}/a`;
  session.send(`QUERY ${a}\nQUERY ${a} method=HEAD\nQUERY 127.0.0.1:${origin.port}/b\n`);
  for (let i = 0; i < 3; i++) assert.match((await session.next()) ?? "", /cache=MISS/);
  session.send(`PURGE http://${a}\n`);
  assert.equal(await session.next(), "PURGED 2", "both variants of /a");
  session.send(`QUERY ${a}\n`);
  assert.match((await session.next()) ?? "", /cache=MISS/);
  session.send("PURGE ALL\n");
  assert.equal(await session.next(), "PURGED 2");

  const remoteDir = await tempDir(t);
  const strict = await startServer(remoteDir, { loopbackIsAdmin: false, adminToken: token }, t);
  const remote = await RawSession.open(strict.controlPort);
  t.after(() => remote.close());
  await remote.next();
  remote.send("PURGE ALL\n");
  assert.match((await remote.next()) ?? "", /^ERROR FORBIDDEN /);
  remote.send("AUTH wrong-token-wrong-token\n");
  assert.match((await remote.next()) ?? "", /^ERROR FORBIDDEN /);
  remote.send(`AUTH ${token}\nPURGE ALL\n`);
  assert.equal(await remote.next(), "AUTHORIZED");
  assert.equal(await remote.next(), "PURGED 0");
});

test("headwire cache list/purge go to the admin listener while the server runs, and to the file while it is down", async (t) => {
  const dir = await tempDir(t);
  const origin = await CraftedOrigin.start({ "/a": CACHEABLE, "/b": CACHEABLE });
  t.after(() => origin.close());
  const server = await spawnServer(dir);
  const client = await HeadwireClient.connect({ serverPort: server.port, outDir: dir });
  await client.query({ url: `127.0.0.1:${origin.port}/a` });
  await client.query({ url: `127.0.0.1:${origin.port}/b` });
  await client.terminate();
  const cli = async (args: string[]) => {
    const child = spawn(process.execPath, [BIN, "cache", ...args], { cwd: dir });
    let out = "";
    child.stdout.setEncoding("utf8").on("data", (text: string) => (out += text));
    child.stderr.setEncoding("utf8").on("data", (text: string) => (out += text));
    const [code] = await once(child, "exit");
    return { code, out };
  };
  // While the server owns the file, list and purge go to its admin listener.
  const adminHttp = `127.0.0.1:${server.adminPort!}`;
  const running = await cli(["list", "--admin-http", adminHttp]);
  assert.equal(running.code, 0, running.out);
  assert.match(
    running.out,
    new RegExp(`http://127\\.0\\.0\\.1:${origin.port}/a\\t200\\t\\S+\\t\\d+ bytes\\tfresh until `),
  );
  assert.match(running.out, /2 entries on the running server/);
  const unreachable = await cli(["purge", `127.0.0.1:${origin.port}/a`, "--admin-http", "127.0.0.1:1"]);
  assert.equal(unreachable.code, 3, unreachable.out);
  assert.match(unreachable.out, /owned by a running server, and its admin listener 127\.0\.0\.1:1 cannot be reached/);
  const throughAdmin = await cli(["purge", `127.0.0.1:${origin.port}/a`, "--admin-http", adminHttp]);
  assert.equal(throughAdmin.code, 0, throughAdmin.out);
  assert.match(throughAdmin.out, /purged 1 entries on the running server/);
  const online = await cli(["purge", "--server", `127.0.0.1:${server.port}`, `127.0.0.1:${origin.port}/b`]);
  assert.equal(online.code, 0, online.out);
  assert.match(online.out, /purged 1 entries on/);
  const client2 = await HeadwireClient.connect({ serverPort: server.port, outDir: dir });
  await client2.query({ url: `127.0.0.1:${origin.port}/b` });
  await client2.terminate();

  server.child.kill("SIGTERM");
  await once(server.child, "exit");
  const listed = await cli(["list"]);
  assert.equal(listed.code, 0);
  assert.match(listed.out, new RegExp(`http://127\\.0\\.0\\.1:${origin.port}/b\\t200\\t`));
  assert.doesNotMatch(listed.out, /\/a\t/);
  const purged = await cli(["purge", "--all"]);
  assert.equal(purged.code, 0, purged.out);
  assert.match(purged.out, /purged 1 entries from cache\.txt/);
  assert.deepEqual(parseCache(await readFile(join(dir, "cache.txt"))), []);
});

test("--no-loopback-admin: even loopback sessions need AUTH", async (t) => {
  const dir = await tempDir(t);
  const server = await spawnServer(dir, ["--no-loopback-admin", "--admin-token", "0123456789abcdef0123"]);
  t.after(() => server.child.kill());
  const session = await RawSession.open(server.port);
  t.after(() => session.close());
  await session.next();
  session.send("PURGE ALL\n");
  assert.match((await session.next()) ?? "", /^ERROR FORBIDDEN /);
  session.send("AUTH 0123456789abcdef0123\nPURGE ALL\n");
  assert.equal(await session.next(), "AUTHORIZED");
  assert.equal(await session.next(), "PURGED 0");
});

test("headwire cache purge with an invalid URL is a usage error (exit 2), not a crash", async (t) => {
  const dir = await tempDir(t);
  const child = spawn(process.execPath, [BIN, "cache", "purge", "ftp://example.com/"], { cwd: dir });
  let stderr = "";
  child.stderr.setEncoding("utf8").on("data", (text: string) => (stderr += text));
  const [code] = await once(child, "exit");
  assert.equal(code, 2);
  assert.match(stderr, /unsupported scheme/);
  assert.doesNotMatch(stderr, /\n\s+at /, "no stack trace");
});
