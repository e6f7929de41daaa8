import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { once } from "node:events";
import { readFileSync, readdirSync } from "node:fs";
import { mkdir, readFile, readdir, writeFile } from "node:fs/promises";
import { createServer } from "node:net";
import { join } from "node:path";
import { test } from "node:test";
import { checkUrl } from "../../src/cli/url-check.js";
import { headerFileName } from "../../src/client/file-name.js";
import { CraftedOrigin, REALISTIC_HEADERS } from "../../src/demo/crafted-origin.js";
import { startServer, tempDir } from "../helpers.js";
import { BIN, runCli } from "./run-cli.js";

/** A loopback port nothing listens on: connecting to it is refused at once. */
async function closedPort(): Promise<number> {
  const probe = createServer().listen(0, "127.0.0.1");
  await once(probe, "listening");
  const port = (probe.address() as { port: number }).port;
  await new Promise((resolve) => probe.close(resolve));
  return port;
}

/** Peak open file descriptors and resident memory of a running process, sampled from /proc (Linux). */
function watchProcess(): { start(pid: number): void; stop(): { fds: number; rssKiB: number } | undefined } {
  let timer: NodeJS.Timeout | undefined;
  let peak: { fds: number; rssKiB: number } | undefined;
  return {
    start(pid) {
      timer = setInterval(() => {
        try {
          const fds = readdirSync(`/proc/${pid}/fd`).length;
          const rss = /VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
          peak = { fds: Math.max(peak?.fds ?? 0, fds), rssKiB: Math.max(peak?.rssKiB ?? 0, Number(rss?.[1] ?? 0)) };
        } catch {
          // Not Linux, or the process has just ended.
        }
      }, 20);
    },
    stop() {
      clearInterval(timer);
      return peak;
    },
  };
}

function numberedHeader(i: number): string {
  // Every 50th header spans several UDP chunks (1160 payload bytes each).
  const padding = i % 50 === 0 ? `X-Padding: ${"p".repeat(3000)}\r\n` : "";
  return `HTTP/1.1 200 OK\r\nCache-Control: max-age=3600\r\nX-Number: ${i}\r\n${padding}Content-Length: 0\r\n\r\n`;
}

test("batch: 10,000 URLs, 8 in flight on 4 sessions; every file byte-exact, summary, progress lines, exit 1", async (t) => {
  const dir = await tempDir(t);
  const origin = await CraftedOrigin.start({});
  t.after(() => origin.close());
  const server = await startServer(dir, { cacheMaxEntries: 20_000 }, t);
  let sessions = 0;
  server.events.on((event) => void (event.type === "session-start" && sessions++));
  const base = `127.0.0.1:${origin.port}`;
  const refused = await closedPort();

  const DISTINCT = 9000;
  const REPEATS = 990;
  const distinct: string[] = [];
  for (let i = 0; i < DISTINCT; i++) {
    const path = `/p${i % 100}?n=${i}`;
    origin.set(path, { header: numberedHeader(i) });
    distinct.push(`${base}${path}`);
  }
  // Repeats come last, long after their first query ended: each is a cache HIT.
  const urls = [...distinct, ...distinct.slice(0, REPEATS)];
  for (let k = 0; k < 10; k++) {
    const failing = k % 2 === 0 ? `ftp://files.invalid/${k}` : `127.0.0.1:${refused}/${k}`;
    urls.splice(k * 1000 + 500, 0, failing);
  }
  assert.equal(urls.length, 10_000);
  const file = join(dir, "urls.txt");
  await writeFile(file, `# ten thousand URLs\n\n${urls.join("\n")}\n\n`);

  const watch = watchProcess();
  const result = await runCli(
    [
      "client",
      "--server",
      `127.0.0.1:${server.controlPort}`,
      "--batch",
      "urls.txt",
      "-j",
      "8",
      "--queries-per-session",
      "2",
      "--output-dir",
      "out",
    ],
    { cwd: dir, onSpawn: (pid) => watch.start(pid) },
  );
  const peak = watch.stop();
  t.diagnostic(`10,000 queries in ${Math.round(result.ms)} ms; peak ${peak?.fds} fds, ${peak?.rssKiB} KiB RSS`);

  assert.equal(result.code, 1, result.stderr);
  assert.equal(sessions, 4, "-j 8, two queries pipelined on each session");
  const summary = result.stdout.trim();
  const match =
    /^10000 queries: 9990 succeeded, 10 failed \(CONNECTION_REFUSED 5, UNSUPPORTED_SCHEME 5\) \| HIT 990 MISS 9000 \| p50 (\d+) ms p95 (\d+) ms \| \d+\.\d s$/.exec(
      summary,
    );
  assert.ok(match, summary);
  assert.ok(Number(match[1]) <= Number(match[2]), "p50 ≤ p95");

  const stderrLines = result.stderr.trimEnd().split("\n");
  const errors = stderrLines.filter((line) => line.includes(": error "));
  assert.equal(errors.length, 10, result.stderr);
  for (const line of errors) {
    assert.match(
      line,
      /^(ftp:\/\/files\.invalid\/\d|127\.0\.0\.1:\d+\/\d): error (UNSUPPORTED_SCHEME|CONNECTION_REFUSED): .+ — .+/,
    );
  }
  const progress = stderrLines.filter((line) => line.startsWith("progress: "));
  for (let tenth = 1; tenth <= 10; tenth++) {
    const prefix = `progress: ${tenth * 1000}/10000 (${tenth * 10}%) | `;
    assert.equal(progress.filter((line) => line.startsWith(prefix)).length, 1, `${prefix}\n${result.stderr}`);
  }
  assert.ok(
    progress.some((line) => line.startsWith("progress: 10000/10000 (100%) | 10 failed")),
    result.stderr,
  );

  // Every file: there, alone (no temporary files left), and byte for byte the origin's header.
  const names = await readdir(join(dir, "out"));
  assert.equal(names.length, DISTINCT);
  const expected = new Map(distinct.map((url, i) => [headerFileName(url), numberedHeader(i)]));
  for (const name of names) {
    const header = expected.get(name);
    assert.ok(header !== undefined, `unexpected file ${name}`);
    assert.equal(await readFile(join(dir, "out", name), "latin1"), header, name);
  }
  assert.equal(origin.requestCount, DISTINCT, "each distinct URL fetched once; repeats came from the cache");
  if (peak) assert.ok(peak.fds < 100, `file descriptors stay bounded (peak ${peak.fds})`);
});

test("batch --json: one object a line, every field checked", async (t) => {
  const dir = await tempDir(t);
  const origin = await CraftedOrigin.start(REALISTIC_HEADERS);
  t.after(() => origin.close());
  const server = await startServer(dir, {}, t);
  const base = `127.0.0.1:${origin.port}`;
  const big = `HTTP/1.1 200 OK\r\nX-Big: ${"b".repeat(5000)}\r\n\r\n`;
  origin.set("/big", { header: big });
  const input = [`${base}/twitch`, `${base}/google`, `${base}/legacy`, `${base}/big`, "ftp://nope/", `${base}/nowhere`];
  const result = await runCli(
    [
      "client",
      "--server",
      `127.0.0.1:${server.controlPort}`,
      "--batch",
      "-",
      "--json",
      "-j",
      "3",
      "--output-dir",
      "hdr",
    ],
    { cwd: dir, stdin: `${input.join("\n")}\n` },
  );
  assert.equal(result.code, 1, result.stderr);
  const records = result.stdout
    .trimEnd()
    .split("\n")
    .map((line) => JSON.parse(line) as Record<string, unknown>);
  assert.equal(records.length, input.length);
  const byUrl = new Map(records.map((record) => [record.url as string, record]));
  const expectations: Record<string, { status: number; header: string | Buffer }> = {
    [`${base}/twitch`]: { status: 301, header: REALISTIC_HEADERS["/twitch"]!.header },
    [`${base}/google`]: { status: 200, header: REALISTIC_HEADERS["/google"]!.header },
    [`${base}/legacy`]: { status: 200, header: REALISTIC_HEADERS["/legacy"]!.header },
    [`${base}/big`]: { status: 200, header: big },
    [`${base}/nowhere`]: { status: 404, header: "" },
  };
  for (const [url, want] of Object.entries(expectations)) {
    const record = byUrl.get(url);
    assert.ok(record, url);
    assert.deepEqual(Object.keys(record), ["url", "file", "status", "bytes", "cache", "ms", "error", "exit"]);
    assert.equal(record.file, join("hdr", headerFileName(url)));
    assert.equal(record.status, want.status);
    assert.equal(record.cache, "MISS");
    assert.equal(typeof record.ms, "number");
    assert.ok(Number.isInteger(record.ms) && (record.ms as number) >= 0);
    assert.equal(record.error, null);
    const written = await readFile(join(dir, record.file as string));
    assert.equal(record.bytes, written.length);
    if (want.header !== "") assert.deepEqual(written, Buffer.from(want.header as string));
  }
  const failed = byUrl.get("ftp://nope/")!;
  assert.deepEqual(Object.keys(failed), ["url", "file", "status", "bytes", "cache", "ms", "error", "exit"]);
  assert.deepEqual(
    { ...failed, ms: 0 },
    {
      url: "ftp://nope/",
      file: null,
      status: null,
      bytes: null,
      cache: null,
      ms: 0,
      error: { code: "UNSUPPORTED_SCHEME", message: 'unsupported scheme "ftp": use http or https' },
      exit: 1,
    },
  );
  // With --json standard output is data only; the summary and nothing else per query is on stderr.
  assert.match(result.stderr, /^6 queries: 5 succeeded, 1 failed \(UNSUPPORTED_SCHEME 1\) \| HIT 0 MISS 5 \|/m);
  assert.doesNotMatch(result.stderr, /error UNSUPPORTED_SCHEME/);
});

test("--json with URL arguments: in order; HIT on the second ask", async (t) => {
  const dir = await tempDir(t);
  const origin = await CraftedOrigin.start(REALISTIC_HEADERS);
  t.after(() => origin.close());
  const server = await startServer(dir, {}, t);
  const header = "HTTP/1.1 200 OK\r\nCache-Control: max-age=3600\r\nContent-Length: 0\r\n\r\n";
  origin.set("/cacheable", { header });
  const url = `127.0.0.1:${origin.port}/cacheable`;
  const result = await runCli(["client", "--server", `127.0.0.1:${server.controlPort}`, "--json", url, url], {
    cwd: dir,
  });
  assert.equal(result.code, 0, result.stderr);
  const [first, second, ...rest] = result.stdout
    .trimEnd()
    .split("\n")
    .map((line) => JSON.parse(line) as Record<string, unknown>);
  assert.equal(rest.length, 0);
  assert.equal(first!.cache, "MISS");
  assert.equal(second!.cache, "HIT");
  assert.equal(first!.file, headerFileName(url));
  assert.equal(second!.bytes, Buffer.byteLength(header));
  assert.equal(result.stderr, "");
});

test("--print: the headers' raw bytes on stdout, in order (in a batch each after its ==> URL <== line), and no file", async (t) => {
  const dir = await tempDir(t);
  const origin = await CraftedOrigin.start(REALISTIC_HEADERS);
  t.after(() => origin.close());
  const server = await startServer(dir, {}, t);
  const base = `127.0.0.1:${origin.port}`;
  const server_ = `127.0.0.1:${server.controlPort}`;
  const cwd = join(dir, "client");
  await mkdir(cwd);
  const single = await runCli(["client", "--server", server_, "--print", `${base}/legacy`, `${base}/twitch`], { cwd });
  assert.equal(single.code, 0, single.stderr);
  assert.deepEqual(
    single.stdoutBytes,
    Buffer.concat([REALISTIC_HEADERS["/legacy"]!.header as Buffer, Buffer.from(REALISTIC_HEADERS["/twitch"]!.header)]),
  );
  assert.equal(single.stderr, "");
  const batch = await runCli(["client", "--server", server_, "--print", "-j", "1", "--batch", "-"], {
    cwd,
    stdin: `${base}/twitch\nftp://x/\n${base}/google\n`,
  });
  assert.equal(batch.code, 1);
  assert.deepEqual(
    batch.stdoutBytes,
    Buffer.from(
      `==> ${base}/twitch <==\n${REALISTIC_HEADERS["/twitch"]!.header as string}` +
        `==> ${base}/google <==\n${REALISTIC_HEADERS["/google"]!.header as string}`,
    ),
  );
  assert.match(batch.stderr, /^ftp:\/\/x\/: error UNSUPPORTED_SCHEME: /m);
  assert.match(batch.stderr, /^3 queries: 2 succeeded, 1 failed \(UNSUPPORTED_SCHEME 1\) \| HIT \d MISS \d \|/m);
  assert.deepEqual(await readdir(cwd), [], "--print writes no file");
});

test("hostile URLs: every file lands inside --output-dir, with a safe name and the right bytes", async (t) => {
  const dir = await tempDir(t);
  const origin = await CraftedOrigin.start({});
  t.after(() => origin.close());
  const server = await startServer(dir, {}, t);
  const base = `127.0.0.1:${origin.port}`;
  const hostile = [
    `${base}/../../../../etc/passwd`,
    `${base}/..%2f..%2fescape`,
    `http://${base}/./.hidden`,
    `${base}/a\\b\\..\\..\\c`,
    `${base}/${"long".repeat(750)}`,
    `${base}/CON`,
    `${base}/q?x=<script>&y=|pipe|&z=*`,
    `${base}/caf%C3%A9/ünïcode`,
  ];
  const header = "HTTP/1.1 204 No Content\r\nX-Test: hostile\r\n\r\n";
  for (const path of ["/etc/passwd", "/..%2f..%2fescape", "/.hidden", "/CON"]) origin.set(path, { header });
  const nul = `${base}/nul\u0000byte`;
  const cwd = join(dir, "client");
  await mkdir(cwd);
  const result = await runCli(
    ["client", "--server", `127.0.0.1:${server.controlPort}`, "--batch", "-", "--output-dir", "out"],
    {
      cwd,
      stdin: `${[...hostile, nul].join("\n")}\n`,
    },
  );
  assert.equal(result.code, 1, result.stderr);
  // The raw NUL never makes a file, nor is it sent: the client refuses the line, saying where.
  assert.match(
    result.stderr,
    /nul\\x00byte: error INVALID_URL: line 9: bad URL .*control character \\x00 \(column 20\)/,
  );
  assert.match(result.stdout, /^9 queries: 8 succeeded, 1 failed \(INVALID_URL 1\)/);
  assert.deepEqual(await readdir(cwd), ["out"], "nothing is written outside --output-dir");
  const names = (await readdir(join(cwd, "out"))).sort();
  // Named after the URL as sent: "<" and ">" percent-encoded as browsers do (src/cli/url-check.ts).
  assert.deepEqual(names, hostile.map((url) => headerFileName(checkUrl(url))).sort());
  for (const name of names) {
    assert.ok(Buffer.byteLength(name) <= 200, name);
    assert.match(name, /^[A-Za-z0-9._~-]+$/);
    assert.ok(!/^(CON|PRN|AUX|NUL|COM\d|LPT\d)(\.|$)/i.test(name) && !name.startsWith("."), name);
  }
  assert.equal(await readFile(join(cwd, "out", headerFileName(`${base}/../../../../etc/passwd`)), "latin1"), header);
});

test("batch: an unreadable file is a usage error (2); a server that is down is exit 7", async (t) => {
  const dir = await tempDir(t);
  const missing = await runCli(["client", "--batch", "no-such-file.txt"], { cwd: dir });
  assert.equal(missing.code, 2);
  assert.match(missing.stderr, /--batch no-such-file\.txt: cannot read it \(ENOENT\)/);
  const both = await runCli(["client", "--batch", "-", "www.example.com"], { cwd: dir });
  assert.equal(both.code, 2);
  await writeFile(join(dir, "urls.txt"), "a.example\nb.example\n");
  const down = await runCli(["client", "--server", `127.0.0.1:${await closedPort()}`, "--batch", "urls.txt"], {
    cwd: dir,
  });
  assert.equal(down.code, 7);
  assert.match(down.stderr, /cannot reach 127\.0\.0\.1:\d+: ECONNREFUSED \(SERVER_UNREACHABLE\)/);
  assert.doesNotMatch(down.stderr, /\n\s+at /, "no stack trace");
});

test("batch: Ctrl-C (SIGINT) stops waiting for more URLs, prints the summary and exits 130", async (t) => {
  const dir = await tempDir(t);
  const origin = await CraftedOrigin.start(REALISTIC_HEADERS);
  t.after(() => origin.close());
  const server = await startServer(dir, {}, t);
  const child = spawn(
    process.execPath,
    [BIN, "client", "--server", `127.0.0.1:${server.controlPort}`, "--batch", "-", "--json"],
    {
      cwd: dir,
      env: { ...process.env, NO_COLOR: "1" },
    },
  );
  let stdout = "";
  let stderr = "";
  child.stderr.setEncoding("utf8").on("data", (text: string) => (stderr += text));
  const answered = new Promise<void>((resolve) =>
    child.stdout.setEncoding("utf8").on("data", (text: string) => {
      stdout += text;
      if (stdout.split("\n").length > 3) resolve();
    }),
  );
  // Three URLs, and standard input stays open, as from a program still writing.
  child.stdin.write(["twitch", "google", "legacy"].map((path) => `127.0.0.1:${origin.port}/${path}\n`).join(""));
  await answered;
  child.kill("SIGINT");
  const [code] = (await once(child, "close")) as [number | null];
  assert.equal(code, 130, stderr);
  assert.equal(stdout.trimEnd().split("\n").length, 3);
  assert.match(stderr, /^interrupted: finishing the queries in flight/m);
  assert.match(stderr, /^3 queries: 3 succeeded, 0 failed \|/m);
});
