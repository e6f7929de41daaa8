/**
 * `headwire client` speaks curl's vocabulary: the CLI as a process, against a real server and real
 * origins on loopback, and real curl against the same origins where curl has the same class of
 * failure, so each exit status is checked against curl's own (src/cli/exit-codes.ts).
 */
import assert from "node:assert/strict";
import { execFile, execFileSync, spawnSync } from "node:child_process";
import { once } from "node:events";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { mkdir, readFile, readdir, stat } from "node:fs/promises";
import { createServer, type Server, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import tls from "node:tls";
import { CraftedOrigin } from "../../src/demo/crafted-origin.js";
import { startServer, tempDir } from "../helpers.js";
import { runCli } from "./run-cli.js";

const HAS_CURL = !spawnSync("curl", ["--version"]).error;

/** curl's exit status for these arguments, ignoring ~/.curlrc and proxies. */
function curlExit(args: string[]): Promise<number> {
  return new Promise((resolve) => {
    const child = execFile("curl", ["-q", "-s", "--noproxy", "*", "-o", "/dev/null", ...args]);
    child.on("close", (code) => resolve(code ?? -1));
  });
}

async function listening(server: Server, t: { after: (fn: () => Promise<void>) => void }): Promise<number> {
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  t.after(() => new Promise<void>((resolve) => server.close(() => resolve())));
  return (server.address() as { port: number }).port;
}

/** A loopback port nothing listens on (it was bound, then closed). */
async function closedPort(): Promise<number> {
  const probe = createServer().listen(0, "127.0.0.1");
  await once(probe, "listening");
  const port = (probe.address() as { port: number }).port;
  await new Promise((resolve) => probe.close(resolve));
  return port;
}

const OK_HEADER = "HTTP/1.1 200 OK\r\nContent-Length: 0\r\nX-Test: curl-flags\r\n\r\n";
const NOT_FOUND = "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n";

async function setUp(t: { after: (fn: () => Promise<void>) => void }, serverOptions = {}) {
  const dir = await tempDir(t);
  const origin = await CraftedOrigin.start({
    "/ok": { header: OK_HEADER },
    "/missing": { header: NOT_FOUND },
    "/loop": { header: "HTTP/1.1 302 Found\r\nLocation: /loop\r\nContent-Length: 0\r\n\r\n" },
    "/moved": { header: "HTTP/1.1 301 Moved Permanently\r\nLocation: /ok\r\nContent-Length: 0\r\n\r\n" },
    "/a%20b": { header: OK_HEADER },
  });
  t.after(() => origin.close());
  const server = await startServer(dir, serverOptions, t);
  const base = `127.0.0.1:${origin.port}`;
  const client = (args: string[], stdin?: string) =>
    runCli(["client", "--server", `127.0.0.1:${server.controlPort}`, ...args], { cwd: dir, stdin });
  return { dir, origin, base, client };
}

test("exit 6: a host name that does not resolve (.invalid never does, RFC 6761), as curl", async (t) => {
  const { client } = await setUp(t);
  const result = await client(["nonexistent.invalid/"]);
  assert.equal(result.code, 6, result.stderr);
  assert.match(result.stderr, /error DNS_NOT_FOUND: .*does not resolve/);
  if (HAS_CURL) assert.equal(await curlExit(["http://nonexistent.invalid/"]), 6);
});

test("exit 7: an origin port that refuses the connection, as curl", async (t) => {
  const { client } = await setUp(t);
  const port = await closedPort();
  const result = await client([`127.0.0.1:${port}/`]);
  assert.equal(result.code, 7, result.stderr);
  assert.match(result.stderr, /error CONNECTION_REFUSED: connecting to 127\.0\.0\.1:\d+ failed/);
  if (HAS_CURL) assert.equal(await curlExit([`http://127.0.0.1:${port}/`]), 7);
});

test("exit 28: an origin that accepts and stays silent past the server's header timeout, as curl -m", async (t) => {
  const sockets = new Set<Socket>();
  const silent = createServer((socket) => {
    sockets.add(socket);
    socket.on("error", () => {});
  });
  t.after(() => {
    for (const socket of sockets) socket.destroy();
  });
  const port = await listening(silent, t);
  const { client } = await setUp(t, { headerTimeoutMs: 300 });
  const result = await client([`127.0.0.1:${port}/`]);
  assert.equal(result.code, 28, result.stderr);
  assert.match(result.stderr, /error HEADER_TIMEOUT: /);
  if (HAS_CURL) assert.equal(await curlExit(["-m", "1", `http://127.0.0.1:${port}/`]), 28);
});

/** A self-signed certificate for 127.0.0.1, made with the openssl CLI; undefined without it. */
function selfSigned(): { key: Buffer; cert: Buffer } | undefined {
  if (spawnSync("openssl", ["version"]).error) return undefined;
  const dir = mkdtempSync(join(tmpdir(), "headwire-tls-"));
  try {
    execFileSync(
      "openssl",
      [
        "req",
        "-x509",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
        "-keyout",
        "key.pem",
        "-out",
        "cert.pem",
        "-days",
        "2",
        "-subj",
        "/CN=127.0.0.1",
        "-addext",
        "subjectAltName=IP:127.0.0.1",
      ],
      { cwd: dir, stdio: "pipe" },
    );
    return { key: readFileSync(join(dir, "key.pem")), cert: readFileSync(join(dir, "cert.pem")) };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

test("exit 35: an https origin with a self-signed certificate (TLS_FAILURE)", async (t) => {
  const keys = selfSigned();
  if (!keys) return t.skip("openssl is missing (Debian package openssl)");
  const origin = tls.createServer(keys, (socket) => socket.end(OK_HEADER));
  origin.on("tlsClientError", () => {});
  const port = await listening(origin, t);
  const { client } = await setUp(t);
  const result = await client([`https://127.0.0.1:${port}/`]);
  assert.equal(result.code, 35, result.stderr);
  assert.match(result.stderr, /error TLS_FAILURE: /);
  // curl tells a failed verification (60) from a failed handshake (35); the server reports both
  // as TLS_FAILURE, so headwire says 35 for both (README, "Exit status").
  if (HAS_CURL) assert.equal(await curlExit([`https://127.0.0.1:${port}/`]), 60);
});

test("exit 47: -L on a redirect loop hits --max-redirs (TOO_MANY_REDIRECTS), as curl", async (t) => {
  const { client, base, origin } = await setUp(t);
  const result = await client(["-L", "--max-redirs", "3", `${base}/loop`]);
  assert.equal(result.code, 47, result.stderr);
  assert.match(result.stderr, /error TOO_MANY_REDIRECTS: /);
  assert.equal(origin.requests.get("/loop"), 4, "the first request and 3 redirects");
  if (HAS_CURL) assert.equal(await curlExit(["-L", "--max-redirs", "3", `http://${base}/loop`]), 47);
  // Without -L the redirect is the answer, as curl's.
  const plain = await client(["--output-dir", "out", `${base}/loop`]);
  assert.equal(plain.code, 0, plain.stderr);
  assert.match(plain.stdout, /^HTTP\/1\.1 302 Found \|/);
});

test("exit 22: -f on a 404; nothing where -o says, -D still gets the header; --json keeps the status", async (t) => {
  const { client, base, dir } = await setUp(t);
  const result = await client(["-f", "-o", "body.txt", "-D", "dump.txt", `${base}/missing`]);
  assert.equal(result.code, 22, result.stderr);
  assert.match(result.stderr, /error HTTP_FAILED: the origin answered 404 Not Found \(-f\/--fail\)/);
  assert.equal(result.stdout, "");
  const names = await readdir(dir);
  assert.ok(names.includes("dump.txt") && !names.includes("body.txt"), names.join(" "));
  assert.equal(await readFile(join(dir, "dump.txt"), "latin1"), NOT_FOUND);
  if (HAS_CURL) assert.equal(await curlExit(["-f", `http://${base}/missing`]), 22);
  const json = await client(["-f", "--json", `${base}/missing`]);
  assert.equal(json.code, 22);
  const record = JSON.parse(json.stdout) as { status: number; file: unknown; exit: number; error: { code: string } };
  assert.deepEqual([record.status, record.file, record.exit, record.error.code], [404, null, 22, "HTTP_FAILED"]);
  const inDir = await client(["-f", "--output-dir", "out", `${base}/missing`]);
  assert.equal(inDir.code, 22);
  assert.ok(!(await readdir(dir)).includes("out"), "no file in --output-dir either");
  // Without -f a 404 is an answer like any other.
  const plain = await client(["-o", "plain.txt", `${base}/missing`]);
  assert.equal(plain.code, 0, plain.stderr);
  assert.equal(await readFile(join(dir, "plain.txt"), "latin1"), NOT_FOUND);
});

test("exit 3: a malformed URL is refused before it is sent, saying where, as curl", async (t) => {
  const { client, origin, base } = await setUp(t);
  const result = await client(["http://a b:x/"]);
  assert.equal(result.code, 3, result.stderr);
  assert.match(
    result.stderr,
    /error INVALID_URL: bad URL "http:\/\/a b:x\/": the port "x" is not a number \(column 12\)/,
  );
  assert.doesNotMatch(result.stderr, /BAD_REQUEST|query option/, "the wire protocol never shows");
  if (HAS_CURL) assert.equal(await curlExit(["http://a b:x/"]), 3);
  const host = await client(["http://exa mple.com/"]);
  assert.equal(host.code, 3);
  assert.match(host.stderr, /the host "exa mple\.com" contains a space \(column 11\)/);
  // A space in the path is percent-encoded, as a browser does, and the query goes through.
  const spaced = await client(["--json", "--output-dir", "out", `${base}/a b`]);
  assert.equal(spaced.code, 0, spaced.stderr);
  assert.equal((JSON.parse(spaced.stdout) as { status: number }).status, 200);
  assert.equal(origin.requests.get("/a%20b"), 1);
});

test("-o FILE writes the one URL's header there; a directory is not written into (23); several URLs are refused (2)", async (t) => {
  const { client, base, dir } = await setUp(t);
  const one = await client(["-o", "header.txt", `${base}/ok`]);
  assert.equal(one.code, 0, one.stderr);
  assert.match(one.stdout, /^HTTP\/1\.1 200 OK \| \d+ bytes \| MISS \| \d+ ms \| header\.txt\n$/);
  assert.equal(await readFile(join(dir, "header.txt"), "latin1"), OK_HEADER);
  assert.ok((await stat(join(dir, "header.txt"))).isFile(), "a file, not a directory");

  await mkdir(join(dir, "adir"));
  const intoDir = await client(["-o", "adir", `${base}/ok`]);
  assert.equal(intoDir.code, 23, intoDir.stderr);
  assert.match(intoDir.stderr, /error WRITE_FAILED: cannot write the header to adir: EISDIR/);
  assert.deepEqual(await readdir(join(dir, "adir")), []);

  const two = await client(["-o", "h.txt", `${base}/ok`, `${base}/missing`]);
  assert.equal(two.code, 2);
  assert.match(two.stderr, /-o FILE takes one URL's header; with 2 URLs, use --output-dir DIR/);
  const batch = await client(["-o", "h.txt", "--batch", "-"], `${base}/ok\n`);
  assert.equal(batch.code, 2);
  assert.match(batch.stderr, /with --batch, use --output-dir DIR/);

  // --output-dir is the directory, a file per URL (and --out, its older name, still works).
  for (const flag of ["--output-dir", "--out"]) {
    const many = await client([flag, `dir${flag}`, `${base}/ok`, `${base}/missing`]);
    assert.equal(many.code, 0, many.stderr);
    assert.equal((await readdir(join(dir, `dir${flag}`))).length, 2);
  }
});

test("-D - dumps the header on standard output with no summary line there; -o - is the header alone", async (t) => {
  const { client, base, dir } = await setUp(t);
  const dumped = await client(["-D", "-", "--output-dir", "out", `${base}/ok`]);
  assert.equal(dumped.code, 0, dumped.stderr);
  assert.equal(dumped.stdout, OK_HEADER);
  assert.equal((await readdir(join(dir, "out"))).length, 1, "the file is still written, as curl's body is");
  const alone = await client(["-o", "-", `${base}/ok`]);
  assert.equal(alone.code, 0, alone.stderr);
  assert.equal(alone.stdout, OK_HEADER);
});

test("-I asks with HEAD; -L follows a redirect (and --redirects N still does)", async (t) => {
  const { client, base, origin } = await setUp(t);
  const head = await client(["-I", "-o", "-", `${base}/ok`]);
  assert.equal(head.code, 0, head.stderr);
  assert.match(origin.lastRequest.get("/ok") ?? "", /^HEAD \/ok HTTP\/1\.1\r\n/);
  const followed = await client(["-L", "--chain", "last", "-o", "-", `${base}/moved`]);
  assert.equal(followed.code, 0, followed.stderr);
  assert.equal(followed.stdout, OK_HEADER);
  const alias = await client(["--redirects", "1", "--chain", "last", "-o", "-", `${base}/moved`]);
  assert.equal(alias.stdout, OK_HEADER);
  // The older `-L 5` does not query "5" (the address 0.0.0.5): it says what to type instead.
  const count = await client(["-L", "5", `${base}/moved`]);
  assert.equal(count.code, 2);
  assert.match(count.stderr, /5 is not a URL; -L takes no number \(as curl's\): use -L --max-redirs 5/);
  const tooMany = await client(["--max-redirs", "21", `${base}/moved`]);
  assert.equal(tooMany.code, 2);
  assert.match(tooMany.stderr, /the server follows at most 20 redirects/);
});

test("-s prints no summary and no error; -sS prints the error; the exit status tells either way", async (t) => {
  const { client, base, dir } = await setUp(t);
  const quiet = await client(["-s", "--output-dir", "out", `${base}/ok`]);
  assert.equal(quiet.code, 0, quiet.stderr);
  assert.equal(quiet.stdout, "");
  const port = await closedPort();
  const failed = await client(["-s", `127.0.0.1:${port}/`]);
  assert.equal(failed.code, 7);
  assert.equal(failed.stdout + failed.stderr, "");
  const shown = await client(["-sS", `127.0.0.1:${port}/`]);
  assert.equal(shown.code, 7);
  assert.match(shown.stderr, /error CONNECTION_REFUSED/);
  // A server that cannot be reached: 7, silent with -s.
  const down = await runCli(["client", "-s", "--server", `127.0.0.1:${port}`, `${base}/ok`], { cwd: dir });
  assert.equal(down.code, 7);
  assert.equal(down.stderr, "");
});

test("an argument starting with - is never a URL; --server ::1:50366 is explained", async (t) => {
  const { client, origin, base, dir } = await setUp(t);
  const unknown = await client(["-9", `${base}/ok`]);
  assert.equal(unknown.code, 2);
  assert.match(unknown.stderr, /unknown option '-9'/);
  // Even after "--", which ends the options, a dashed word is not taken for a URL.
  const dashed = await client(["--", "-9", `${base}/ok`]);
  assert.equal(dashed.code, 2);
  assert.match(dashed.stderr, /unknown option "-9" \(a URL never starts with "-"\)/);
  assert.equal(origin.requestCount, 0, "nothing was queried");
  const bare = await runCli(["client", "--server", "::1:50366", `${base}/ok`], { cwd: dir });
  assert.equal(bare.code, 2);
  assert.match(bare.stderr, /--server ::1:50366: use \[::1\]:50366 for an IPv6 address with a port/);
});

test("several URLs: exit 1 when any failed, each --json record carrying its own exit", async (t) => {
  const { client, base } = await setUp(t);
  const result = await client(["--json", "--output-dir", "out", `${base}/ok`, "nonexistent.invalid/", "http://a b:x/"]);
  assert.equal(result.code, 1, result.stderr);
  const exits = result.stdout
    .trim()
    .split("\n")
    .map((line) => (JSON.parse(line) as { exit: number }).exit);
  assert.deepEqual(exits, [0, 6, 3]);
});

test("--batch with -f: a 404 is HTTP_FAILED and gets no file; the others are written; exit 1", async (t) => {
  const { client, base, dir } = await setUp(t);
  const result = await client(
    ["-f", "--batch", "-", "--no-progress", "--output-dir", "out"],
    `${base}/ok\n${base}/missing\n`,
  );
  assert.equal(result.code, 1, result.stderr);
  assert.match(result.stderr, /\/missing: error HTTP_FAILED: the origin answered 404 Not Found \(-f\/--fail\)/);
  assert.match(result.stdout, /^2 queries: 1 succeeded, 1 failed \(HTTP_FAILED 1\)/);
  const files = await readdir(join(dir, "out"));
  assert.equal(files.length, 1);
  assert.equal(await readFile(join(dir, "out", files[0]!), "latin1"), OK_HEADER);
});
