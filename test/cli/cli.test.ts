import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { once } from "node:events";
import { readFile, readdir } from "node:fs/promises";
import { createServer } from "node:net";
import { join } from "node:path";
import { test } from "node:test";
import { CraftedOrigin, REALISTIC_HEADERS } from "../../src/demo/crafted-origin.js";
import { startServer, tempDir } from "../helpers.js";
import { BIN, runCli, spawnServer, spawnServerWith } from "./run-cli.js";

const run = runCli;

test("client: URLs on stdin, one a line, like a person typing; files byte-exact", async (t) => {
  const dir = await tempDir(t);
  const origin = await CraftedOrigin.start(REALISTIC_HEADERS);
  t.after(() => origin.close());
  const server = await startServer(dir, {}, t);
  const base = `127.0.0.1:${origin.port}`;
  const result = await run(["client", "--server", `127.0.0.1:${server.controlPort}`, "--out", "out"], {
    cwd: dir,
    stdin: `${base}/twitch\n\n${base}/twitch\nterminate\n${base}/never-asked\n`,
  });
  assert.equal(result.code, 0, result.stderr);
  const lines = result.stdout.trim().split("\n");
  assert.equal(lines.length, 2);
  assert.match(lines[0]!, /^HTTP\/1\.1 301 Moved Permanently \| \d+ bytes \| MISS \| \d+ ms \| out\//);
  assert.match(lines[1]!, /\| HIT \|/);
  const files = await readdir(join(dir, "out"));
  assert.equal(files.length, 1);
  assert.deepEqual(
    await readFile(join(dir, "out", files[0]!)),
    Buffer.from(REALISTIC_HEADERS["/twitch"]!.header as string),
  );
  assert.equal(origin.requests.get("/never-asked"), undefined, "nothing after terminate is sent");
});

test("client: URL arguments are queried, then the session ends; a failed query makes exit code 1", async (t) => {
  const dir = await tempDir(t);
  const origin = await CraftedOrigin.start(REALISTIC_HEADERS);
  t.after(() => origin.close());
  const server = await startServer(dir, {}, t);
  const result = await run(
    ["client", "--server", `127.0.0.1:${server.controlPort}`, `127.0.0.1:${origin.port}/google`, "ftp://nope/"],
    { cwd: dir },
  );
  assert.equal(result.code, 1);
  assert.match(result.stdout, /^HTTP\/1\.1 200 OK \|/);
  assert.match(result.stderr, /ftp:\/\/nope\/: error UNSUPPORTED_SCHEME: /);
  assert.doesNotMatch(result.stderr, /\n\s+at /, "no stack trace");
});

test("client: a server that is down gives a clear message and exit code 7 (curl's COULDNT_CONNECT, as for a proxy)", async (t) => {
  const dir = await tempDir(t);
  const probe = createServer().listen(0, "127.0.0.1");
  await once(probe, "listening");
  const port = (probe.address() as { port: number }).port;
  await new Promise((resolve) => probe.close(resolve)); // nothing listens there now
  const result = await run(["client", "--server", `127.0.0.1:${port}`, "www.twitch.tv"], { cwd: dir });
  assert.equal(result.code, 7);
  assert.match(result.stderr, /cannot reach 127\.0\.0\.1:\d+: ECONNREFUSED \(SERVER_UNREACHABLE\)/);
  assert.doesNotMatch(result.stderr, /\n\s+at /, "no stack trace");
});

test("client: a setting out of its bounds is bad usage (exit 2) with the setting's message, before connecting", async (t) => {
  const dir = await tempDir(t);
  const result = await run(["client", "--chunk-timeout-ms", "5", "www.twitch.tv"], { cwd: dir });
  assert.equal(result.code, 2);
  assert.match(
    result.stderr,
    /--chunk-timeout-ms must be from client\.minChunkTimeoutMs \(20\) to client\.maxChunkTimeoutMs \(8000\), got 5/,
  );
  assert.doesNotMatch(result.stderr, /SERVER_UNREACHABLE/);
  // Not a number at all, from a flag or a variable: the same message, with where it came from.
  const word = await run(["client", "--chunk-timeout-ms", "soon", "www.twitch.tv"], { cwd: dir });
  assert.equal(word.code, 2);
  assert.match(word.stderr, /^headwire client: --chunk-timeout-ms must be an integer from 1 to 60000, got "soon"\n/);
  const variable = await run(["client", "www.twitch.tv"], { cwd: dir, env: { HEADWIRE_DELIVERY_RETRIES: "99" } });
  assert.equal(variable.code, 2);
  assert.match(
    variable.stderr,
    /--delivery-retries must be an integer from 0 to 10, got 99 \(from HEADWIRE_DELIVERY_RETRIES\)/,
  );
});

test("client: a server that closes every session mid-query: asked again on new sessions (bounded, said), then exit code 56 (curl's RECV_ERROR)", async (t) => {
  const dir = await tempDir(t);
  // A server that greets, reads one query, and drops the connection.
  const rude = createServer((socket) => {
    socket.write("HEADWIRE/2 READY rude/0\n");
    socket.once("data", () => socket.destroy());
  }).listen(0, "127.0.0.1");
  await once(rude, "listening");
  t.after(() => new Promise<void>((resolve) => rude.close(() => resolve())));
  const port = (rude.address() as { port: number }).port;
  const result = await run(
    ["client", "--server", `127.0.0.1:${port}`, "--reconnect-attempts", "2", "--reconnect-backoff-ms", "10"],
    { cwd: dir, stdin: "www.twitch.tv\n" },
  );
  assert.equal(result.code, 56);
  const lines = result.stderr.trimEnd().split("\n");
  // The first wait is what is left of the 10 ms back-off after the time since the loss: at most 10.
  const lost =
    /^\* connection lost \(the server closed the session\); connecting again in (\d+) ms \(attempt 1 of 2\)$/;
  for (const i of [0, 2]) {
    const wait = lost.exec(lines[i]!);
    assert.ok(wait && Number(wait[1]) <= 10, lines[i]);
  }
  assert.equal(lines[1], "* connected again to rude/0");
  assert.equal(lines[3], "* connected again to rude/0");
  assert.match(lines[4]!, /^headwire client: the server closed the session \(CONNECTION_LOST\) — /);
  assert.equal(lines.length, 5);
});

test("server: SIGTERM persists the cache and exits 0; the ready line gives the ports", async (t) => {
  const dir = await tempDir(t);
  const origin = await CraftedOrigin.start(REALISTIC_HEADERS);
  t.after(() => origin.close());
  const { child: server, port } = await spawnServer(dir, [], { HEADWIRE_CACHE_FILE: "my-cache.txt" });
  const client = await run(["client", "--server", `127.0.0.1:${port}`, `127.0.0.1:${origin.port}/legacy`], {
    cwd: dir,
  });
  assert.equal(client.code, 0, client.stderr);
  server.kill("SIGTERM");
  const [code] = await once(server, "close");
  assert.equal(code, 0);
  const persisted = await readFile(join(dir, "my-cache.txt"));
  assert.ok(persisted.includes(Buffer.from(REALISTIC_HEADERS["/legacy"]!.header as Buffer)));
});

test("demo: runs offline and exits 0", async (t) => {
  const dir = await tempDir(t);
  const result = await run(["demo"], { cwd: dir });
  assert.equal(result.code, 0, result.stdout + result.stderr);
  assert.match(result.stdout, /TCP → QUERY /);
  assert.match(result.stdout, /UDP ← CHUNK 1\/1/);
  assert.match(result.stdout, /\| HIT \|/);
  assert.match(result.stdout, /error CONNECTION_REFUSED/);
});

test("--help and --version", async (t) => {
  const dir = await tempDir(t);
  const version = await run(["--version"], { cwd: dir });
  assert.equal(version.code, 0);
  assert.match(version.stdout, /^\d+\.\d+\.\d+\n$/);
  for (const command of ["server", "client", "demo"]) {
    const help = await run([command, "--help"], { cwd: dir });
    assert.equal(help.code, 0);
    assert.match(help.stdout, new RegExp(`Usage: headwire ${command}`));
  }
  const bad = await run(["client", "--nope"], { cwd: dir });
  assert.equal(bad.code, 2);
});

test("server: a query in flight at SIGTERM is still answered and collected, then the server exits 0", async (t) => {
  const dir = await tempDir(t);
  let originAsked!: () => void;
  const asked = new Promise<void>((resolve) => (originAsked = resolve));
  const origin = await CraftedOrigin.start({
    "/slow": () => {
      originAsked();
      return { header: "HTTP/1.1 200 OK\r\nCache-Control: max-age=60\r\n\r\n" };
    },
  });
  origin.responseDelayMs = 300; // the origin is still answering when SIGTERM arrives
  t.after(() => origin.close());
  const { child: server, port } = await spawnServer(dir);
  const client = run(["client", "--server", `127.0.0.1:${port}`, `127.0.0.1:${origin.port}/slow`], { cwd: dir });
  await asked;
  server.kill("SIGTERM");
  const [code] = await once(server, "close");
  const result = await client;
  assert.equal(result.code, 0, result.stderr);
  assert.match(result.stdout, /^HTTP\/1\.1 200 OK \| \d+ bytes \| MISS \|/);
  assert.equal(code, 0);
});

test("relay: a client collects through `headwire relay` with 30% loss (--udp-via), and the relay reports its faults", async (t) => {
  const dir = await tempDir(t);
  const origin = await CraftedOrigin.start(REALISTIC_HEADERS);
  t.after(() => origin.close());
  const server = await startServer(dir, {}, t);
  const relay = spawn(
    process.execPath,
    [BIN, "relay", "--target", `127.0.0.1:${server.dataPort}`, "--loss", "0.3", "--duplicate", "0.1", "--seed", "7"],
    { cwd: dir },
  );
  let out = "";
  relay.stdout.setEncoding("utf8");
  const relayPort = await new Promise<number>((resolve) =>
    relay.stdout.on("data", (text: string) => {
      out += text;
      const match = /ready: udp 127\.0\.0\.1:(\d+)/.exec(out);
      if (match) resolve(Number(match[1]));
    }),
  );
  const paths = ["/twitch", "/news", "/legacy", "/cdn"];
  const result = await run(
    [
      "client",
      "--server",
      `127.0.0.1:${server.controlPort}`,
      "--udp-via",
      `127.0.0.1:${relayPort}`,
      "--output-dir",
      "out",
      ...paths.map((path) => `127.0.0.1:${origin.port}${path}`),
    ],
    { cwd: dir },
  );
  assert.equal(result.code, 0, result.stderr);
  assert.equal(result.stdout.trim().split("\n").length, paths.length);
  relay.kill("SIGTERM");
  await once(relay, "close");
  const stats = JSON.parse(out.trim().split("\n").at(-1)!) as { toClient: { received: number } };
  assert.ok(stats.toClient.received > 0, out);
});

test("client: a server restarted while a pipe waits for input: the next line connects again and is answered", async (t) => {
  const dir = await tempDir(t);
  const origin = await CraftedOrigin.start(REALISTIC_HEADERS);
  t.after(() => origin.close());
  const first = await spawnServer(dir, ["--cache", "memory"]);
  const servers = [first];
  t.after(() => {
    for (const server of servers) server.child.kill("SIGTERM");
  });
  const client = spawn(process.execPath, [BIN, "client", "--server", `127.0.0.1:${first.port}`], {
    cwd: dir,
    env: { ...process.env, NO_COLOR: "1" },
  });
  let stdout = "";
  let stderr = "";
  client.stderr.setEncoding("utf8").on("data", (text: string) => (stderr += text));
  client.stdout.setEncoding("utf8");
  const lineCount = (count: number) =>
    new Promise<void>((resolve) => {
      const check = () => {
        if (stdout.split("\n").length > count) resolve();
      };
      client.stdout.on("data", (text: string) => {
        stdout += text;
        check();
      });
      check();
    });
  const exited = once(client, "close");
  const firstAnswer = lineCount(1);
  client.stdin.write(`127.0.0.1:${origin.port}/twitch\n`); // and stdin stays open: the client waits
  await firstAnswer;
  const stopped = once(first.child, "exit");
  first.child.kill("SIGTERM");
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
  client.stdin.end(`127.0.0.1:${origin.port}/legacy\n`);
  const [code] = await exited;
  assert.equal(code, 0, stderr);
  const lines = stdout.trimEnd().split("\n");
  assert.equal(lines.length, 2, stdout);
  assert.match(lines[1]!, /^HTTP\/1\.\d \d{3} .* \| MISS \|/, "answered by the new server (its cache is empty)");
  assert.match(
    stderr,
    /^\* connection lost \((the server is shutting down or restarting|the server closed the session)\); connecting again in [\d.]+ m?s \(attempt 1 of 8\)\n\* connected again to headwire\/\S+\n$/,
  );
});

/** An origin status line with a bare CR: on a terminal it would display as a 200. */
const SPOOFED_STATUS = "HTTP/1.1 500 Bad\rHTTP/1.1 200 OK";
const CONTROL_CHARACTER = /[\u0000-\u001f\u007f-\u009f]/;

test("headwire client: an origin's spoofed status line is escaped in the summary line and --json stays clean", async (t) => {
  const dir = await tempDir(t);
  const origin = await CraftedOrigin.start({
    "/spoof": { header: `${SPOOFED_STATUS}\r\nContent-Length: 0\r\n\r\n` },
  });
  t.after(() => origin.close());
  const server = await startServer(dir, {}, t);
  const url = `127.0.0.1:${origin.port}/spoof`;
  const lines = await runCli(["client", "--server", `127.0.0.1:${server.controlPort}`, "--output-dir", "out", url], {
    cwd: dir,
  });
  assert.equal(lines.code, 0, lines.stderr);
  assert.match(lines.stdout, /^HTTP\/1\.1 500 Bad\\x0dHTTP\/1\.1 200 OK \| \d+ bytes \| MISS \|/);
  assert.doesNotMatch(lines.stdout.slice(0, -1), CONTROL_CHARACTER);
  const json = await runCli(
    ["client", "--server", `127.0.0.1:${server.controlPort}`, "--output-dir", "out", "--json", url],
    {
      cwd: dir,
    },
  );
  assert.equal(json.code, 0, json.stderr);
  assert.doesNotMatch(json.stdout.slice(0, -1), CONTROL_CHARACTER);
  const record = JSON.parse(json.stdout) as { status: number; error: unknown };
  assert.equal(record.status, 500, "the status the server parsed, not the spoofed one");
  assert.equal(record.error, null);
});
