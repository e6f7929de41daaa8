/**
 * `headwire server` as a process: what it promises about persistence and its lifecycle (issue 11):
 * a failed persist is never reported as a success, SIGHUP does not kill it, a closed log pipe
 * changes nothing, and every exit path releases the cache file's lock.
 */
import assert from "node:assert/strict";
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { once } from "node:events";
import { mkdir, readdir, readFile, symlink, writeFile } from "node:fs/promises";
import { createServer } from "node:net";
import { join } from "node:path";
import { test } from "node:test";
import { CraftedOrigin, REALISTIC_HEADERS } from "../../src/demo/crafted-origin.js";
import { SERVER_SETTINGS } from "../../src/config/settings.js";
import { RESERVED_FILE_DESCRIPTORS } from "../../src/server/file-descriptors.js";
import { RawSession, tempDir, TEST_SERVER_ENV } from "../helpers.js";
import { BIN, runCli, spawnServer, spawnServerWith } from "./run-cli.js";

/** Resolves when the process has written a line matching `pattern` on stderr; rejects if it exits first. */
function stderrShows(child: ChildProcess, seen: () => string, pattern: RegExp): Promise<void> {
  return new Promise((resolve, reject) => {
    const check = () => {
      if (!pattern.test(seen())) return;
      child.stderr?.off("data", check);
      child.off("exit", exited);
      resolve();
    };
    const exited = (code: number | null, signal: string | null) =>
      reject(new Error(`the server exited (${code ?? signal}) before printing ${pattern}: ${seen()}`));
    child.stderr?.on("data", check);
    child.once("exit", exited);
    check();
  });
}

/** Exit code (or signal) of a process, once it has exited. */
async function exitOf(child: ChildProcess): Promise<number | string | null> {
  if (child.exitCode !== null || child.signalCode !== null) return child.exitCode ?? child.signalCode;
  const [code, signal] = (await once(child, "exit")) as [number | null, string | null];
  return code ?? signal;
}

/** The server's files in `dir`: the cache, its lock, temporary files (the client's header files are not). */
async function serverFiles(dir: string): Promise<string[]> {
  return (await readdir(dir)).filter((name) => /^\.?cache\.txt/.test(name)).sort();
}

/** A server killed by a failed test must not outlive it. */
function reap(t: { after: (fn: () => void) => void }, child: ChildProcess): void {
  t.after(() => {
    if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
  });
}

test("server: a persist that fails is PERSIST_FAILED at TERMINATE (client exits 1), and the server exits 1 with the lock released", async (t) => {
  const dir = await tempDir(t);
  const origin = await CraftedOrigin.start(REALISTIC_HEADERS);
  t.after(() => origin.close());
  // No scheduled write: the only writes are TERMINATE's and the final one.
  const server = await spawnServer(dir, ["--persist-delay-ms", "600000"]);
  reap(t, server.child);
  // The full disk, as root (these tests run as root, who ignores permissions, so a read-only
  // directory would not fail): a directory where cache.txt goes makes every write fail (the
  // rename of the temporary file over it is EISDIR), whoever the process runs as.
  await mkdir(join(dir, "cache.txt"));
  const client = await runCli(["client", "--server", `127.0.0.1:${server.port}`, `127.0.0.1:${origin.port}/legacy`], {
    cwd: dir,
  });
  assert.match(client.stdout, /^HTTP\/1\.0 200 OK \|/, "the answer itself arrived");
  assert.match(client.stderr, /\(PERSIST_FAILED\)/);
  assert.equal(client.code, 1, client.stderr);

  server.child.kill("SIGTERM");
  assert.equal(await exitOf(server.child), 1, server.stderr());
  assert.match(server.stderr(), /could not be written: EISDIR/);
  assert.match(server.stderr(), /stopped; cache NOT persisted/);
  assert.doesNotMatch(server.stderr(), /stopped; cache persisted/);
  assert.deepEqual(
    await serverFiles(dir),
    ["cache.txt"],
    "no lock, no temporary file left (cache.txt is the directory)",
  );
});

test("server: SIGHUP flushes the cache and the server goes on serving", async (t) => {
  const dir = await tempDir(t);
  const origin = await CraftedOrigin.start(REALISTIC_HEADERS);
  t.after(() => origin.close());
  const server = await spawnServer(dir, ["--persist-delay-ms", "600000"]);
  reap(t, server.child);
  const first = await runCli(["client", "--server", `127.0.0.1:${server.port}`, `127.0.0.1:${origin.port}/legacy`], {
    cwd: dir,
  });
  assert.equal(first.code, 0, first.stderr);
  server.child.kill("SIGHUP");
  await stderrShows(server.child, server.stderr, /SIGHUP: cache flushed; no --config to re-read/);
  assert.match(await readFile(join(dir, "cache.txt"), "latin1"), /end entries=1\n$/);
  const again = await runCli(["client", "--server", `127.0.0.1:${server.port}`, `127.0.0.1:${origin.port}/legacy`], {
    cwd: dir,
  });
  assert.equal(again.code, 0, again.stderr);
  assert.match(again.stdout, /\| HIT \|/);
  server.child.kill("SIGTERM");
  assert.equal(await exitOf(server.child), 0, server.stderr());
});

test("server: SIGHUP re-reads --config: what can change applies, what cannot says so, a bad file changes nothing", async (t) => {
  const dir = await tempDir(t);
  const origin = await CraftedOrigin.start(REALISTIC_HEADERS);
  t.after(() => origin.close());
  const file = join(dir, "headwire.toml");
  const listen = 'host = "127.0.0.1"\nport = 0\ndata-port = 0\npersist-delay-ms = 600000\n';
  await writeFile(file, `${listen}allow-private = true\n`);
  const server = await spawnServerWith(dir, ["--config", file]);
  reap(t, server.child);
  const query = (path: string) =>
    runCli(["client", "--server", `127.0.0.1:${server.port}`, `127.0.0.1:${origin.port}${path}`], { cwd: dir });
  const first = await query("/legacy");
  assert.equal(first.code, 0, first.stderr);

  await writeFile(file, `${listen.replace("port = 0\n", "port = 1\n")}allow-private = false\n`);
  server.child.kill("SIGHUP");
  await stderrShows(server.child, server.stderr, /reload: --port 0 → 1 needs a restart \(still 0\)/);
  assert.match(server.stderr(), /reload: --allow-private true → false \(applied\)/);
  const blocked = await query("/google");
  assert.equal(blocked.code, 1, blocked.stderr);
  assert.match(blocked.stderr, /BLOCKED_ADDRESS/);

  await writeFile(file, `${listen}max-sessions = 0\nallow-private = true\n`);
  server.child.kill("SIGHUP");
  await stderrShows(
    server.child,
    server.stderr,
    /SIGHUP: .*headwire\.toml not applied, nothing changed: --max-sessions must be an integer from 1 to 1000000, got 0 \(max-sessions in /,
  );
  const cached = await query("/legacy");
  assert.equal(cached.code, 0, cached.stderr);
  assert.match(cached.stdout, /\| HIT \|/, "the server goes on");
  const stillBlocked = await query("/twitch");
  assert.match(stillBlocked.stderr, /BLOCKED_ADDRESS/, "the bad file's allow-private = true was not applied either");
  server.child.kill("SIGTERM");
  assert.equal(await exitOf(server.child), 0, server.stderr());
});

test("server: a bad setting from a flag, a variable or the config file exits 2 with the flag's name and a one-line hint, not the help", async (t) => {
  const dir = await tempDir(t);
  const hint = "(headwire server --help lists every setting)\n";
  const flag = await runCli(["server", "--ticket-ttl-ms", "0"], { cwd: dir });
  assert.equal(flag.code, 2);
  assert.equal(flag.stderr, `headwire server: --ticket-ttl-ms must be an integer from 1 to 3600000, got 0\n${hint}`);
  const word = await runCli(["server", "--port", "soon"], { cwd: dir });
  assert.equal(word.code, 2);
  assert.equal(word.stderr, `headwire server: --port must be an integer from 0 to 65535, got "soon"\n${hint}`);
  const variable = await runCli(["server"], { cwd: dir, env: { HEADWIRE_MAX_SESSIONS: "lots" } });
  assert.equal(variable.code, 2);
  assert.match(
    variable.stderr,
    /--max-sessions must be an integer from 1 to 1000000, got "lots" \(from HEADWIRE_MAX_SESSIONS\)/,
  );
  const file = join(dir, "headwire.toml");
  await writeFile(file, "ticketTtlMs = 5\n");
  const inFile = await runCli(["server", "--config", file], { cwd: dir });
  assert.equal(inFile.code, 2);
  assert.equal(
    inFile.stderr,
    `headwire server: ${file}: unknown setting "ticketTtlMs": write it as ticket-ttl-ms (its flag's name without --)\n${hint}`,
  );
  const unknown = await runCli(["server", "--ticket-ttl", "5"], { cwd: dir });
  assert.equal(unknown.code, 2);
  assert.match(unknown.stderr, /unknown option '--ticket-ttl'/);
  for (const run of [flag, word, variable, inFile, unknown]) {
    assert.doesNotMatch(run.stderr, /Usage:|Options:/, "not the whole help");
  }
  assert.deepEqual(await readdir(dir), ["headwire.toml"], "nothing started: no cache file, no lock");
});

test("server: with its stdout and stderr pipes closed, SIGTERM still persists, releases the lock and exits 0", async (t) => {
  const dir = await tempDir(t);
  const origin = await CraftedOrigin.start(REALISTIC_HEADERS);
  t.after(() => origin.close());
  const server = await spawnServer(dir, ["--persist-delay-ms", "600000"]);
  reap(t, server.child);
  const client = await runCli(["client", "--server", `127.0.0.1:${server.port}`, `127.0.0.1:${origin.port}/legacy`], {
    cwd: dir,
  });
  assert.equal(client.code, 0, client.stderr);
  // `headwire server 2>&1 | tee log`, then tee goes away: every line the server writes now meets
  // a pipe with no reader (EPIPE).
  server.child.stdout?.destroy();
  server.child.stderr?.destroy();
  server.child.kill("SIGTERM");
  assert.equal(await exitOf(server.child), 0);
  assert.deepEqual(await serverFiles(dir), ["cache.txt"], "no lock, no temporary file");
  assert.match(await readFile(join(dir, "cache.txt"), "latin1"), /end entries=1\n$/);
});

test("server: a start that fails on a taken port exits 1 and releases its lock", async (t) => {
  const dir = await tempDir(t);
  const taken = createServer().listen(0, "127.0.0.1");
  await once(taken, "listening");
  t.after(() => new Promise<void>((resolve) => taken.close(() => resolve())));
  const port = (taken.address() as { port: number }).port;
  const result = await runCli(
    ["server", "--host", "127.0.0.1", "--port", String(port), "--data-port", "0", "--cache-file", "cache.txt"],
    { cwd: dir },
  );
  assert.equal(result.code, 1, result.stderr);
  assert.match(result.stderr, /cannot start: .*EADDRINUSE/);
  assert.deepEqual(await readdir(dir), [], "no lock left behind");
});

test("server: a cache path that is a FIFO stops the start at once, with a message naming it", async (t) => {
  const dir = await tempDir(t);
  const made = spawnSync("mkfifo", [join(dir, "cache.txt")]);
  assert.equal(made.status, 0, String(made.stderr));
  // Before issue 11 the start hung forever on the FIFO: the guard ends it, and the test fails.
  let guard: NodeJS.Timeout | undefined;
  const result = await runCli(["server", "--host", "127.0.0.1", "--port", "0", "--data-port", "0"], {
    cwd: dir,
    onSpawn: (pid) => (guard = setTimeout(() => process.kill(pid, "SIGKILL"), 30_000)),
  });
  clearTimeout(guard);
  assert.equal(result.code, 1, `${result.signal ?? ""} ${result.stderr}`);
  assert.match(result.stderr, /cannot start: cache file cache\.txt is a FIFO, not a regular file/);
  assert.deepEqual(await readdir(dir), ["cache.txt"], "no lock left behind");
});

test("server: a cache path linked to /dev/zero is refused", async (t) => {
  const dir = await tempDir(t);
  await symlink("/dev/zero", join(dir, "cache.txt"));
  const result = await runCli(["server", "--host", "127.0.0.1", "--port", "0", "--data-port", "0"], { cwd: dir });
  assert.equal(result.code, 1, result.stderr);
  assert.match(result.stderr, /cache\.txt is a character device, not a regular file/);
  assert.deepEqual(await readdir(dir), ["cache.txt"], "no lock left behind");
});

test("server: a second SIGINT while stopping is acknowledged, not fatal: the stop completes, exit 0, lock released", async (t) => {
  const dir = await tempDir(t);
  const origin = await CraftedOrigin.start(REALISTIC_HEADERS);
  t.after(() => origin.close());
  origin.responseDelayMs = 500; // a query in flight keeps the stop going for a while
  const server = await spawnServer(dir);
  reap(t, server.child);
  const client = runCli(["client", "--server", `127.0.0.1:${server.port}`, `127.0.0.1:${origin.port}/legacy`], {
    cwd: dir,
  });
  await new Promise<void>((resolve) => {
    const check = () => ((origin.requests.get("/legacy") ?? 0) > 0 ? resolve() : setImmediate(check));
    check();
  });
  server.child.kill("SIGINT");
  await stderrShows(server.child, server.stderr, /SIGINT: stopping/);
  server.child.kill("SIGINT");
  await stderrShows(server.child, server.stderr, /already stopping/);
  assert.equal(await exitOf(server.child), 0, server.stderr());
  assert.equal((await client).code, 0);
  assert.deepEqual(
    (await readdir(dir)).filter((name) => name.endsWith(".lock")),
    [],
  );
});

test("under a low open-files limit, clients past the ceiling are told SERVER_BUSY, never dropped in silence", async (t) => {
  const dir = await tempDir(t);
  // What is left for sessions: the limit less the reserve and the idle origin connections kept.
  const openFiles = RESERVED_FILE_DESCRIPTORS + SERVER_SETTINGS.originIdleConnections.default + 40;
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
    { cwd: dir, env: { ...process.env, ...TEST_SERVER_ENV } },
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
    assert.match((await session.next()) ?? "", /^HEADWIRE\/2 READY /, `session ${i} is greeted`);
  }
  for (let i = 0; i < 10; i++) {
    const refused = await RawSession.open(port);
    sessions.push(refused);
    assert.match((await refused.next()) ?? "", /^ERROR SERVER_BUSY /, `extra session ${i} is told why`);
  }
});
