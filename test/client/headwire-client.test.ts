import assert from "node:assert/strict";
import { once } from "node:events";
import { createServer } from "node:net";
import { test } from "node:test";
import { HeadwireClient } from "../../src/client/headwire-client.js";
import { tempDir } from "../helpers.js";

test("a hostile server's oversized ticket is refused, not allocated", async (t) => {
  const dir = await tempDir(t);
  const hostile = createServer((socket) => {
    socket.write("HEADWIRE/1 READY hostile/0\n");
    socket.on("data", () =>
      socket.write(
        `TICKET token=${"a".repeat(32)} udp=127.0.0.1:9 bytes=9999999999 chunks=1 cache=HIT status=200 sha256=${"b".repeat(64)}\n`,
      ),
    );
    socket.on("error", () => {});
  }).listen(0, "127.0.0.1");
  await once(hostile, "listening");
  t.after(() => {
    hostile.close();
    hostile.unref();
  });
  const port = (hostile.address() as { port: number }).port;
  const client = await HeadwireClient.connect({ serverPort: port, outDir: dir });
  const result = await client.query({ url: "www.twitch.tv" });
  assert.equal(result.error?.code, "PROTOCOL_ERROR");
  assert.match(result.error!.message, /9999999999 bytes/);
  assert.equal(result.file, undefined);
  client.destroy();
});
