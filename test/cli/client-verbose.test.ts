/**
 * `headwire client -v`: the exchange on standard error, line by line, in curl -v's convention, and
 * standard output exactly as without it. A real server on ephemeral ports, the CLI as a process.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { CraftedOrigin } from "../../src/demo/crafted-origin.js";
import { chunkPayloadBytes } from "../../src/protocol/datagram.js";
import { LossyRelay } from "../../src/relay/lossy-relay.js";
import { startServer, tempDir } from "../helpers.js";
import { runCli } from "./run-cli.js";

const PAYLOAD = chunkPayloadBytes(1200);

function header(bytes: number): string {
  let text = "HTTP/1.1 200 OK\r\nCache-Control: max-age=600\r\n";
  for (let i = 0; text.length + 2 < bytes; i++) text += `X-Filler-${i}: ${"0123456789abcdef".repeat(4)}\r\n`;
  return `${text}\r\n`;
}

const BIG = header(4000); // 4 chunks

async function setup(t: Parameters<typeof tempDir>[0]) {
  const dir = await tempDir(t);
  const origin = await CraftedOrigin.start({ "/big": { header: BIG } });
  t.after(() => origin.close());
  const server = await startServer(dir, {}, t);
  return { dir, origin, server, url: `127.0.0.1:${origin.port}/big` };
}

/**
 * The lines that depend on the machine's load, not on the exchange: a probe sent because the
 * first chunks took longer than a quarter second, a request sent again after the first RTO (1 s)
 * on a machine that slow, and the duplicates they may bring back.
 */
const loadDependent = (line: string) =>
  / probe: asked again, /.test(line) ||
  / asked again \(retransmission\), /.test(line) ||
  / again, a duplicate /.test(line);

const NUMBER = String.raw`\d+(?:\.\d+)?`;
const RTT = String.raw`rtt (?:${NUMBER} ms|none yet), srtt (?:${NUMBER} ms|none yet), rto \d+ ms`;

test("-v shows every control line and datagram on stderr, curl-style, and leaves stdout alone", async (t) => {
  const { dir, server, url } = await setup(t);
  const args = ["client", "--server", `127.0.0.1:${server.controlPort}`, "--output-dir", dir, url];
  const plain = await runCli(args, { cwd: dir });
  const verbose = await runCli([...args.slice(0, 1), "-v", ...args.slice(1)], { cwd: dir });
  assert.equal(plain.code, 0, plain.stderr);
  assert.equal(verbose.code, 0, verbose.stderr);
  const stdoutShape = (text: string) => text.replace(/\| \d+ ms \|/, "| N ms |").replace("MISS", "HIT");
  assert.equal(stdoutShape(verbose.stdout), stdoutShape(plain.stdout), "stdout as without -v");
  assert.equal(plain.stderr, "", "without -v nothing on stderr");

  const lines = verbose.stderr
    .trimEnd()
    .split("\n")
    .filter((line) => !loadDependent(line));
  const c = server.controlPort;
  const d = server.dataPort;
  const expected: RegExp[] = [
    new RegExp(String.raw`^\* TCP connected 127\.0\.0\.1:\d+ → 127\.0\.0\.1:${c}$`),
    /^< HEADWIRE\/2 READY headwire\/\S+ idle=\d+$/,
    new RegExp(String.raw`^> QUERY ${url.replace(/\./g, "\\.")}$`),
    new RegExp(
      String.raw`^< TICKET token=[0-9a-f]{32} udp=127\.0\.0\.1:${d} bytes=${BIG.length} chunks=4 cache=HIT status=200 sha256=[0-9a-f]{64} ttl=\d+$`,
    ),
    new RegExp(
      String.raw`^> UDP REQUEST 1 chunks 0-3 \(36 B, \*:(\d+) → 127\.0\.0\.1:${d}, window 10, rtt none yet, srtt none yet, rto 1000 ms\)$`,
    ),
    ...[0, 1, 2, 3].map(
      (i) =>
        new RegExp(
          String.raw`^< UDP CHUNK ${i + 1}/4 \(${i === 3 ? BIG.length - 3 * PAYLOAD + 44 : 1200} B, 127\.0\.0\.1:${d} → \*:\d+, ` +
            String.raw`${i === 3 ? BIG.length - 3 * PAYLOAD : PAYLOAD} of the header at ${i * PAYLOAD}, request \d+, ${RTT}\)$`,
        ),
    ),
    new RegExp(
      String.raw`^\* UDP header complete: 4 chunks in \d+ requests, \d+ duplicates, 0 rejected, ${RTT}; SHA-256 matches$`,
    ),
    /^> TERMINATE$/,
    /^< BYE$/,
  ];
  assert.equal(lines.length, expected.length, `stderr:\n${verbose.stderr}`);
  lines.forEach((line, i) => assert.match(line, expected[i]!, `line ${i + 1}`));
  // The chunks come back to the port the REQUEST left from.
  const port = /\*:(\d+) →/.exec(lines[4]!)![1];
  for (const line of lines.slice(5, 9)) assert.ok(line.includes(`→ *:${port},`), line);
});

test("-v through a lossy path shows the chunk asked for again and the round-trip estimate", async (t) => {
  const { dir, server, url } = await setup(t);
  // Seed 1: the relay drops a chunk of the first answer (as in test/dissector/capture.test.ts).
  const relay = await LossyRelay.start({ target: { host: "127.0.0.1", port: server.dataPort }, seed: 1, loss: 0.3 });
  t.after(() => relay.close());
  const run = await runCli(
    [
      "client",
      "-v",
      "--server",
      `127.0.0.1:${server.controlPort}`,
      "--udp-via",
      `127.0.0.1:${relay.address.port}`,
      "--json",
      url,
    ],
    { cwd: dir },
  );
  assert.equal(run.code, 0, run.stderr);
  const record = JSON.parse(run.stdout) as { status: number; bytes: number; error: unknown };
  assert.deepEqual(
    [record.status, record.bytes, record.error],
    [200, BIG.length, null],
    "stdout: the --json record only",
  );
  const lines = run.stderr.trimEnd().split("\n");
  const again = lines.filter((line) =>
    /^> UDP REQUEST \d+ chunks [\d,-]+ \(.*(asked again \(retransmission\)|probe: asked again)/.test(line),
  );
  assert.ok(again.length > 0, `a chunk asked for again:\n${run.stderr}`);
  const chunks = lines.filter((line) => line.startsWith("< UDP CHUNK ") && !line.includes("duplicate"));
  assert.equal(chunks.length, 4, "each chunk received once (duplicates said so)");
  for (const line of chunks) {
    assert.ok(line.includes(`127.0.0.1:${relay.address.port} → *:`), `from the relay: ${line}`);
    assert.match(line, new RegExp(`${RTT}\\)$`));
  }
  assert.match(lines.at(-3) ?? "", /^\* UDP header complete: 4 chunks in \d+ requests/);
});
