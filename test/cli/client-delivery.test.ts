/** `headwire client --delivery`: what a user on a network that blocks UDP sees. */
import assert from "node:assert/strict";
import { createSocket } from "node:dgram";
import { once } from "node:events";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { test } from "node:test";
import { CraftedOrigin, REALISTIC_HEADERS } from "../../src/demo/crafted-origin.js";
import { startServer, tempDir } from "../helpers.js";
import { runCli } from "./run-cli.js";

test("client: UDP blocked (a silent --udp-via port): one plain message on stderr, the headers over TCP, exit 0", async (t) => {
  const dir = await tempDir(t);
  const origin = await CraftedOrigin.start(REALISTIC_HEADERS);
  t.after(() => origin.close());
  const server = await startServer(dir, {}, t);
  const silent = createSocket("udp4");
  let datagrams = 0;
  silent.on("message", () => datagrams++);
  silent.bind(0, "127.0.0.1");
  await once(silent, "listening");
  t.after(() => silent.close());
  const udpPort = silent.address().port;
  const result = await runCli(
    [
      "client",
      "--server",
      `127.0.0.1:${server.controlPort}`,
      "--udp-via",
      `127.0.0.1:${udpPort}`,
      // The fastest give-up on UDP the flags allow (the attempts have no flag): a few seconds.
      "--chunk-timeout-ms",
      "20",
      "--delivery-retries",
      "0",
      "--output-dir",
      "out",
      `127.0.0.1:${origin.port}/twitch`,
      `127.0.0.1:${origin.port}/google`,
    ],
    { cwd: dir },
  );
  assert.equal(result.code, 0, result.stderr);
  // The reason in brackets is "no datagram arrived" once the receiver tells silence apart (UDP_SILENT).
  const said = result.stderr.match(/seems blocked/g) ?? [];
  assert.equal(said.length, 1, result.stderr);
  assert.match(
    result.stderr,
    new RegExp(
      `^headwire client: UDP to 127\\.0\\.0\\.1:${udpPort} seems blocked \\([^)]+\\); delivering over the control connection \\(TCP\\) for the rest of this session\\n$`,
    ),
  );
  const lines = result.stdout.trim().split("\n");
  assert.equal(lines.length, 2);
  const file = lines[0]!.split(" | ").at(-1)!;
  assert.deepEqual(await readFile(join(dir, file)), Buffer.from(REALISTIC_HEADERS["/twitch"]!.header as string));
  assert.ok(datagrams > 0, "UDP was tried first");
  assert.equal(server.stats().tcpDeliveries, 2);
});

test("client: --delivery takes udp, tcp or auto; anything else is bad usage (exit 2)", async (t) => {
  const dir = await tempDir(t);
  const result = await runCli(["client", "--delivery", "quic", "www.twitch.tv"], { cwd: dir });
  assert.equal(result.code, 2);
  assert.match(result.stderr, /--delivery must be udp, tcp or auto, got "quic"/);
});
