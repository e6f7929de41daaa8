import assert from "node:assert/strict";
import { once } from "node:events";
import { readFile, stat, writeFile } from "node:fs/promises";
import { createServer, type Socket } from "node:net";
import { join } from "node:path";
import { test, type TestContext } from "node:test";
import { headerFileName } from "../../src/client/file-name.js";
import { CraftedOrigin, REALISTIC_HEADERS } from "../../src/demo/crafted-origin.js";
import { startServer, tempDir } from "../helpers.js";
import { BIN } from "./run-cli.js";
import { TmuxPane, tmuxPath } from "./tmux-pane.js";

const MARKED =
  "HTTP/1.1 200 OK\r\nCache-Control: max-age=3600\r\nX-Marker: typed-by-a-person\r\nContent-Length: 0\r\n\r\n";

async function setup(t: { after: (fn: () => Promise<void>) => void }) {
  const dir = await tempDir(t);
  const origin = await CraftedOrigin.start({ ...REALISTIC_HEADERS, "/marked": { header: MARKED } });
  t.after(() => origin.close());
  const server = await startServer(dir, {}, t);
  return { dir, origin, server, base: `127.0.0.1:${origin.port}`, history: join(dir, "history") };
}

function clientEnv(history: string, colour: boolean): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env, HEADWIRE_HISTORY: history, TERM: "xterm-256color" };
  if (colour) delete env.NO_COLOR;
  else env.NO_COLOR = "1";
  return env;
}

test("prompt in a real terminal: typing, editing, last, help, errors, history, Ctrl-D", async (t) => {
  if (!tmuxPath()) return t.skip("tmux not installed: apt-get install tmux");
  const { dir, origin, server, base, history } = await setup(t);
  const pane = await TmuxPane.start(
    [process.execPath, BIN, "client", "--server", `127.0.0.1:${server.controlPort}`, "--output-dir", "out"],
    { dir, cwd: dir, env: clientEnv(history, true) },
  );
  t.after(() => pane.kill());
  await pane.waitFor(/connected to headwire\/.*\n.*headwire> $/m, "the greeting and the prompt");

  await pane.type(`${base}/marked`);
  await pane.press("Enter");
  await pane.waitFor(/^HTTP\/1\.1 200 OK \| 9\d bytes \| MISS \| \d+ ms \| out\/.+\.txt$/m, "the result line");
  assert.match(await pane.screen(true), /\x1b\[[\d;]*m/, "colours on a terminal without NO_COLOR");
  assert.equal(await readFile(join(dir, "out", headerFileName(`${base}/marked`)), "latin1"), MARKED);

  await pane.type("last");
  await pane.press("Enter");
  await pane.waitFor(/X-Marker: typed-by-a-person/, "the last header in full");

  await pane.type("help");
  await pane.press("Enter");
  await pane.waitFor(/show the last header received, in full/, "the prompt's help");

  // Line editing: fix a typo with Backspace, then go to the start of the line and add the scheme.
  await pane.type(`${base}/legacX`);
  await pane.press("BSpace");
  await pane.type("y");
  await pane.press("C-a");
  await pane.type("http://");
  await pane.press("Enter");
  await pane.waitFor(/^HTTP\/1\.0 200 OK \| .* \| MISS \|/m, "the edited URL's result");
  assert.equal(origin.requests.get("/legacy"), 1);

  // History: Up four times recalls the first URL; it is a cache hit now.
  await pane.press("Up", "Up", "Up", "Up");
  await pane.waitFor((screen) => screen.trimEnd().endsWith(`headwire> ${base}/marked`), "the recalled URL");
  await pane.press("Enter");
  await pane.waitFor(/^HTTP\/1\.1 200 OK \| 9\d bytes \| HIT \|/m, "the recalled URL's result");

  // An error: one line, with the code and what to do.
  await pane.type("ftp://x/");
  await pane.press("Enter");
  const screen = await pane.waitFor(/^ftp:\/\/x\/: error UNSUPPORTED_SCHEME: /m, "the error line");
  assert.match(screen, /^ftp:\/\/x\/: error UNSUPPORTED_SCHEME: .+ — Only http and https URLs can be fetched\.$/m);

  await pane.press("C-d");
  assert.equal(await pane.waitForExit(), 1, "a query failed: exit status 1");

  const saved = (await readFile(history, "utf8")).trimEnd().split("\n");
  assert.deepEqual(saved, ["last", "help", `http://${base}/legacy`, `${base}/marked`, "ftp://x/"]);
  assert.equal((await stat(history)).mode & 0o777, 0o600, "history is private to its owner");
});

test("prompt: history from an earlier run, Ctrl-C clears the line, NO_COLOR, terminate", async (t) => {
  if (!tmuxPath()) return t.skip("tmux not installed: apt-get install tmux");
  const { dir, server, base, history } = await setup(t);
  await writeFile(history, `${base}/twitch\n${base}/marked\n`);
  const pane = await TmuxPane.start(
    [process.execPath, BIN, "client", "--server", `127.0.0.1:${server.controlPort}`, "--output-dir", "out"],
    { dir, cwd: dir, env: clientEnv(history, false) },
  );
  t.after(() => pane.kill());
  await pane.waitFor(/headwire> $/m, "the prompt");

  await pane.press("Up");
  await pane.waitFor(
    (screen) => screen.trimEnd().endsWith(`headwire> ${base}/marked`),
    "the last URL of the earlier run",
  );
  await pane.press("Up");
  await pane.waitFor((screen) => screen.trimEnd().endsWith(`headwire> ${base}/twitch`), "the one before");
  await pane.press("Down", "Enter");
  await pane.waitFor(/^HTTP\/1\.1 200 OK \| .* \| MISS \|/m, "the recalled query");

  // Ctrl-C drops a half-typed line (a loopback URL, so a failure to clear it stays local).
  await pane.type("127.0.0.1:1/not-this");
  await pane.press("C-c");
  await pane.waitFor((screen) => screen.trimEnd().endsWith("headwire>"), "the cleared line");
  await pane.type("terminate");
  await pane.press("Enter");
  assert.equal(await pane.waitForExit(), 0, "every query succeeded");
  assert.doesNotMatch(await pane.screen(true), /\x1b\[[\d;]*m/, "no colours with NO_COLOR");
  assert.deepEqual((await readFile(history, "utf8")).trimEnd().split("\n"), [
    `${base}/twitch`,
    `${base}/marked`,
    "terminate",
  ]);
});

/** An origin that accepts and stays silent until `release()` lets it answer 200 (the last connection). */
async function heldOrigin(t: TestContext): Promise<{ url: string; release: () => void }> {
  let answer: (() => void) | undefined;
  const sockets = new Set<Socket>();
  const held = createServer((socket) => {
    sockets.add(socket);
    socket.on("error", () => {});
    answer = () => socket.end("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
  }).listen(0, "127.0.0.1");
  await once(held, "listening");
  t.after(() => {
    for (const socket of sockets) socket.destroy();
    return new Promise<void>((resolve) => held.close(() => resolve()));
  });
  return { url: `127.0.0.1:${(held.address() as { port: number }).port}/slow`, release: () => answer!() };
}

test("batch on a terminal: a progress bar while queries run, then the summary", async (t) => {
  if (!tmuxPath()) return t.skip("tmux not installed: apt-get install tmux");
  const { dir, server, base, history } = await setup(t);
  // An origin that accepts and stays silent until the test lets it answer: the batch waits at 9/10.
  const { url: heldUrl, release } = await heldOrigin(t);
  const urls = [...Array.from({ length: 9 }, (_, i) => `${base}/marked?${i}`), heldUrl];
  await writeFile(join(dir, "urls.txt"), `${urls.join("\n")}\n`);

  const pane = await TmuxPane.start(
    [process.execPath, BIN, "client", "--server", `127.0.0.1:${server.controlPort}`, "--batch", "urls.txt", "-j", "2"],
    { dir, cwd: dir, env: clientEnv(history, true) },
  );
  t.after(() => pane.kill());
  await pane.waitFor(/\[=+-+\] 90% \| 9\/10 \| 0 failed \| ETA/, "the bar at 9 of 10");
  release();
  assert.equal(await pane.waitForExit(), 0);
  const screen = await pane.screen();
  assert.match(screen, /^10 queries: 10 succeeded, 0 failed \| HIT 0 MISS 10 \| p50 \d+ ms p95 \d+ ms \| \d+\.\d s$/m);
  assert.doesNotMatch(screen, /\[=+-*\]/, "the bar is cleared at the end");
});

test("batch on a narrow terminal: a failure line above the bar wraps whole, never cut", async (t) => {
  if (!tmuxPath()) return t.skip("tmux not installed: apt-get install tmux");
  const { dir, server, base, history } = await setup(t);
  // The same held origin as above: the bar stays up while the failure is printed.
  const { url: heldUrl, release } = await heldOrigin(t);
  await writeFile(join(dir, "urls.txt"), `ftp://a.example/long/path/to/be/wrapped\n${base}/marked?1\n${heldUrl}\n`);

  const pane = await TmuxPane.start(
    [process.execPath, BIN, "client", "--server", `127.0.0.1:${server.controlPort}`, "--batch", "urls.txt", "-j", "1"],
    { dir, cwd: dir, env: clientEnv(history, false), width: 40 },
  );
  t.after(() => pane.kill());
  // The failure, joined from the pane's rows, is the whole line: its last words included (cut at
  // the pane's 40 columns it would never appear).
  const line =
    'ftp://a.example/long/path/to/be/wrapped: error UNSUPPORTED_SCHEME: unsupported scheme "ftp": use http or https — Only http and https URLs can be fetched.';
  const joined = (screen: string) => screen.split("\n").join("");
  await pane.waitFor((screen) => joined(screen).includes(line), "the whole failure line");
  // …while the bar is still up (cut to the width by cli-progress, as a bar should be).
  assert.match(await pane.screen(), /^\[=*-*\] \d+% \|/m);
  release();
  assert.equal(await pane.waitForExit(), 1);
});

test("prompt: the server restarted while the prompt is open; the next URL connects again, said on the terminal", async (t) => {
  if (!tmuxPath()) return t.skip("tmux not installed: apt-get install tmux");
  const { dir, origin, server, base, history } = await setup(t);
  const pane = await TmuxPane.start(
    [process.execPath, BIN, "client", "--server", `127.0.0.1:${server.controlPort}`, "--output-dir", "out"],
    { dir, cwd: dir, env: clientEnv(history, false) },
  );
  t.after(() => pane.kill());
  await pane.waitFor(/headwire> $/m, "the prompt");
  await pane.type(`${base}/marked`);
  await pane.press("Enter");
  await pane.waitFor(/^HTTP\/1\.1 200 OK \| .* \| MISS \|/m, "the first answer");

  // The server stops (the idle session gets SHUTTING_DOWN) and a new one, its cache empty, takes the port.
  const port = server.controlPort;
  await server.stop();
  await startServer(dir, { controlPort: port, cacheFile: join(dir, "second-cache.txt") }, t);
  await pane.type(`${base}/marked`);
  await pane.press("Enter");
  const screen = await pane.waitFor(
    /^\* connected again to headwire\/\S+\n.*\| MISS \|/m,
    "the reconnection and the answer",
  );
  assert.match(
    screen,
    /^\* connection lost \(the server is shutting down or restarting\); connecting again in [\d.]+ m?s \(attempt 1 of 8\)$/m,
  );
  assert.equal(origin.requests.get("/marked"), 2, "asked of the new server, once");
  await pane.type("terminate");
  await pane.press("Enter");
  assert.equal(await pane.waitForExit(), 0, "the prompt stayed, and every query succeeded");
});

test("prompt: idle longer than the server's idle timeout, it stays connected (PINGs seen by the server)", async (t) => {
  if (!tmuxPath()) return t.skip("tmux not installed: apt-get install tmux");
  const dir = await tempDir(t);
  const origin = await CraftedOrigin.start({ "/marked": { header: MARKED } });
  t.after(() => origin.close());
  const idleTimeoutMs = 1500;
  const server = await startServer(dir, { idleTimeoutMs }, t);
  const seen: string[] = [];
  let enoughPings: () => void;
  // Pings spanning more than two idle timeouts: the session would have been closed twice over.
  const pingsWanted = 2 * PINGS_PER_TIMEOUT_SEEN + 1;
  const pinged = new Promise<void>((resolve) => (enoughPings = resolve));
  server.events.onTrace((event) => {
    if (event.type !== "line") return;
    seen.push(`${event.direction} ${event.text}`);
    if (seen.filter((line) => line === "in PING").length >= pingsWanted) enoughPings();
  });
  const pane = await TmuxPane.start(
    [process.execPath, BIN, "client", "--server", `127.0.0.1:${server.controlPort}`, "--output-dir", "out"],
    { dir, cwd: dir, env: clientEnv(join(dir, "history"), false) },
  );
  t.after(() => pane.kill());
  await pane.waitFor(/headwire> $/m, "the prompt");
  let bound: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_, reject) => {
    bound = setTimeout(() => reject(new Error(`fewer than ${pingsWanted} PINGs in 60 s: ${seen.join(", ")}`)), 60_000);
  });
  await Promise.race([pinged, deadline]).finally(() => clearTimeout(bound));
  await pane.type(`127.0.0.1:${origin.port}/marked`);
  await pane.press("Enter");
  const screen = await pane.waitFor(/^HTTP\/1\.1 200 OK \| .* \| MISS \|/m, "the answer");
  assert.doesNotMatch(screen, /connecting again|connection lost|IDLE_TIMEOUT/, "no reconnection");
  assert.ok(!seen.some((line) => line.startsWith("out ERROR IDLE_TIMEOUT")), "never closed as idle");
  assert.ok(seen.includes("out PONG"));
  await pane.type("terminate");
  await pane.press("Enter");
  assert.equal(await pane.waitForExit(), 0);
});

/** The client PINGs three times per idle timeout (src/client/reconnecting-session.ts). */
const PINGS_PER_TIMEOUT_SEEN = 3;
