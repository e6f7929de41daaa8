/**
 * What `headwire client` says when things go wrong around a query (issue 13, items 4-5), word for
 * word: the wrong port (nginx from Debian, a real HTTP server), a reply that does not come in
 * time. Each is named for what it is, and a reply timeout fails its query only.
 */
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import { once } from "node:events";
import { chmod, readdir, writeFile } from "node:fs/promises";
import { connect, createServer, type Socket } from "node:net";
import { join } from "node:path";
import { test, type TestContext } from "node:test";
import { CraftedOrigin, REALISTIC_HEADERS } from "../../src/demo/crafted-origin.js";
import { VERSION } from "../../src/version.js";
import { startServer, tempDir } from "../helpers.js";
import { runCli } from "./run-cli.js";

const NGINX = ["/usr/sbin/nginx", "nginx"].find((path) => !spawnSync(path, ["-v"]).error);

/** nginx on a port of its own (found free, then given to it), ready once it accepts a connection. */
async function startNginx(t: TestContext, dir: string): Promise<number> {
  const probe = createServer().listen(0, "127.0.0.1");
  await once(probe, "listening");
  const { port } = probe.address() as { port: number };
  await new Promise((resolve) => probe.close(resolve));
  await chmod(dir, 0o755);
  await writeFile(
    join(dir, "nginx.conf"),
    `worker_processes 1; pid ${dir}/nginx.pid; error_log ${dir}/error.log;
events { worker_connections 16; }
http { access_log off; client_body_temp_path ${dir}/tmp-body; proxy_temp_path ${dir}/tmp-proxy;
  fastcgi_temp_path ${dir}/tmp-fcgi; uwsgi_temp_path ${dir}/tmp-uwsgi; scgi_temp_path ${dir}/tmp-scgi;
  server { listen 127.0.0.1:${port}; return 204; } }
`,
  );
  const nginx = spawn(NGINX!, ["-p", dir, "-c", join(dir, "nginx.conf"), "-g", "daemon off;"], { stdio: "ignore" });
  t.after(async () => {
    if (nginx.exitCode !== null || nginx.signalCode !== null) return;
    const exited = once(nginx, "exit");
    nginx.kill("SIGTERM");
    await exited;
  });
  const deadline = Date.now() + 10_000;
  for (;;) {
    const accepted = await new Promise<boolean>((resolve) => {
      const socket = connect(port, "127.0.0.1", () => {
        socket.destroy();
        resolve(true);
      });
      socket.once("error", () => resolve(false));
    });
    if (accepted) return port;
    if (Date.now() > deadline) throw new Error("nginx did not start");
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

test("the wrong port (nginx): NOT_HEADWIRE after the greeting timeout, saying so, exit 7 (curl's COULDNT_CONNECT)", async (t) => {
  if (!NGINX) return t.skip("nginx not installed: apt-get install nginx");
  const dir = await tempDir(t);
  const port = await startNginx(t, dir);
  const run = await runCli(["client", "--server", `127.0.0.1:${port}`, "www.example.com"], { cwd: dir });
  assert.equal(run.code, 7);
  assert.equal(
    run.stderr,
    `headwire client: 127.0.0.1:${port} is not a headwire server: it sent nothing within 3 s of connecting ` +
      "(a headwire server greets at once; an HTTP or TLS server waits for its client to speak; headwire " +
      "listens on 50366 by default) (NOT_HEADWIRE) — Whatever listens at --server is not a headwire server; " +
      "check the host and the port.\n",
  );
  assert.equal(run.stdout, "");
});

test("the wrong port (an SSH banner): NOT_HEADWIRE at once, quoting it, exit 7; --greeting-timeout-ms is not waited for", async (t) => {
  const dir = await tempDir(t);
  const sockets = new Set<Socket>();
  const ssh = createServer((socket) => {
    sockets.add(socket);
    socket.write("SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u3\r\n");
  }).listen(0, "127.0.0.1");
  await once(ssh, "listening");
  t.after(() => {
    for (const socket of sockets) socket.destroy();
    return new Promise<void>((resolve) => ssh.close(() => resolve()));
  });
  const port = (ssh.address() as { port: number }).port;
  const run = await runCli(
    ["client", "--server", `127.0.0.1:${port}`, "--greeting-timeout-ms", "600000", "www.example.com"],
    { cwd: dir },
  );
  assert.equal(run.code, 7);
  assert.equal(
    run.stderr,
    `headwire client: 127.0.0.1:${port} is not a headwire server: it answered "SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u3" ` +
      "(NOT_HEADWIRE) — Whatever listens at --server is not a headwire server; check the host and the port.\n",
  );
});

/** An origin that accepts and never answers: the server's reply waits on it. */
async function silentOrigin(t: TestContext): Promise<number> {
  const sockets = new Set<Socket>();
  const silent = createServer((socket) => {
    sockets.add(socket);
    socket.on("error", () => {});
  }).listen(0, "127.0.0.1");
  await once(silent, "listening");
  t.after(() => {
    for (const socket of sockets) socket.destroy();
    return new Promise<void>((resolve) => silent.close(() => resolve()));
  });
  return (silent.address() as { port: number }).port;
}

test("--reply-timeout-ms: REPLY_TIMEOUT names the query and fails it alone; the next URL goes on a new session", async (t) => {
  const dir = await tempDir(t);
  const origin = await CraftedOrigin.start(REALISTIC_HEADERS);
  t.after(() => origin.close());
  const silentPort = await silentOrigin(t);
  // The origin's silence outlasts the client's reply timeout, and no more (the server's stop waits for it).
  const server = await startServer(dir, { headerTimeoutMs: 3000 }, t);
  const slow = `127.0.0.1:${silentPort}/never`;
  const run = await runCli(
    [
      "client",
      "--server",
      `127.0.0.1:${server.controlPort}`,
      "--output-dir",
      "out",
      "--reply-timeout-ms",
      "700",
      "--reconnect-backoff-ms",
      "50",
      slow,
      `127.0.0.1:${origin.port}/twitch`,
    ],
    { cwd: dir },
  );
  assert.equal(run.code, 1, "one query failed, the session went on");
  const [failed, wait, again, ...rest] = run.stderr.trimEnd().split("\n");
  assert.equal(
    failed,
    `${slow}: error REPLY_TIMEOUT: no reply to QUERY ${slow} within 700 ms (--reply-timeout-ms); the session was ` +
      "closed, since a late reply would be taken for the next query's — The server did not answer in time " +
      "(--reply-timeout-ms); it may be overloaded, or its origin slow: retry, or allow longer.",
  );
  // The first wait is what is left of the 50 ms back-off once the time since the loss is taken off.
  const waited =
    /^\* the session was closed after a reply timeout; connecting again in (\d+) ms \(attempt 1 of 8\)$/.exec(
      wait ?? "",
    );
  assert.ok(waited, `the wait is said: ${wait}`);
  assert.ok(Number(waited[1]) <= 50, `at most the 50 ms back-off: ${wait}`);
  assert.equal(again, `* connected again to headwire/${VERSION}`);
  assert.deepEqual(rest, [], "nothing more on standard error");
  assert.match(run.stdout, /^HTTP\/1\.1 301 Moved Permanently \| \d+ bytes \| MISS \| \d+ ms \| out\/.+\n$/);
  assert.doesNotMatch(run.stderr, /closed the session\b(?! after)/, "never 'the server closed the session'");
});

test("--batch, pipelined: a REPLY_TIMEOUT fails the late URL only; the URLs queued behind it go on a new session", async (t) => {
  const dir = await tempDir(t);
  const origin = await CraftedOrigin.start(REALISTIC_HEADERS);
  t.after(() => origin.close());
  const silentPort = await silentOrigin(t);
  const server = await startServer(dir, { headerTimeoutMs: 3000 }, t);
  let sessions = 0;
  server.events.on((event) => void (event.type === "session-start" && sessions++));
  const slow = `127.0.0.1:${silentPort}/never`;
  // One session carries the first four: the three behind the slow one wait for its reply (replies
  // come in order), and are not late themselves.
  const fast = ["twitch", "google", "cdn", "news", "legacy"].map((path) => `127.0.0.1:${origin.port}/${path}`);
  await writeFile(join(dir, "urls.txt"), `${[slow, ...fast].join("\n")}\n`);
  const run = await runCli(
    [
      "client",
      "--server",
      `127.0.0.1:${server.controlPort}`,
      "--batch",
      "urls.txt",
      "-j",
      "4",
      "--queries-per-session",
      "4",
      "--reply-timeout-ms",
      "700",
      "--reconnect-backoff-ms",
      "20",
      "--no-progress",
      "--output-dir",
      "out",
    ],
    { cwd: dir },
  );
  assert.equal(run.code, 1, run.stderr);
  const failures = run.stderr.split("\n").filter((line) => line.includes(": error "));
  assert.equal(failures.length, 1, run.stderr);
  assert.match(failures[0]!, new RegExp(`^${slow}: error REPLY_TIMEOUT: no reply to QUERY ${slow} within 700 ms`));
  assert.match(run.stdout, /^6 queries: 5 succeeded, 1 failed \(REPLY_TIMEOUT 1\) \|/);
  assert.equal((await readdir(join(dir, "out"))).length, 5, "a file for each URL that did not time out");
  assert.equal(sessions, 2, "the first session, and one new session for the URLs behind the late one");
});

test("cache purge --server at an HTTP server (nginx): NOT_HEADWIRE quoting its answer, exit 3", async (t) => {
  if (!NGINX) return t.skip("nginx not installed: apt-get install nginx");
  const dir = await tempDir(t);
  const port = await startNginx(t, dir);
  const run = await runCli(["cache", "purge", "--server", `127.0.0.1:${port}`, "--all"], { cwd: dir });
  assert.equal(run.code, 3);
  assert.equal(
    run.stderr,
    `headwire cache purge: 127.0.0.1:${port} is not a headwire server: it answered "HTTP/1.1 400 Bad Request" ` +
      "(NOT_HEADWIRE) — Whatever listens at --server is not a headwire server; check the host and the port.\n",
  );
});
