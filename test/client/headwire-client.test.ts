import assert from "node:assert/strict";
import { createHash, randomBytes } from "node:crypto";
import { createSocket, type RemoteInfo } from "node:dgram";
import { once } from "node:events";
import { createServer } from "node:net";
import { test } from "node:test";
import { HeadwireClient } from "../../src/client/headwire-client.js";
import { encodeChunk } from "../../src/protocol/datagram.js";
import { tempDir } from "../helpers.js";

test("a hostile server's oversized ticket is refused, not allocated", async (t) => {
  const dir = await tempDir(t);
  const hostile = createServer((socket) => {
    socket.write("HEADWIRE/2 READY hostile/0\n");
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

/**
 * A scripted server whose tickets send UDP to `udpHost:udpPort`, and a UDP socket there that
 * answers each REQUEST with the whole (one-chunk) header, counting what it gets.
 */
async function misdirectingServer(t: { after: (fn: () => void) => void }, udpHost: string) {
  const header = Buffer.from("HTTP/1.1 200 OK\r\n\r\n");
  const token = randomBytes(16);
  const data = createSocket("udp4");
  data.bind(0, udpHost);
  await once(data, "listening");
  t.after(() => data.close());
  const received: RemoteInfo[] = [];
  data.on("message", (message: Buffer, from: RemoteInfo) => {
    received.push(from);
    const chunk = encodeChunk({ token, index: 0, count: 1, total: header.length, offset: 0, payload: header });
    data.send(chunk, from.port, from.address);
  });
  const sha256 = createHash("sha256").update(header).digest("hex");
  const ticket = `TICKET token=${token.toString("hex")} udp=${udpHost}:${data.address().port} bytes=${header.length} chunks=1 cache=MISS status=200 sha256=${sha256}\n`;
  const control = createServer((socket) => {
    socket.write("HEADWIRE/2 READY misdirecting/0\n");
    socket.on("data", () => socket.write(ticket));
    socket.on("error", () => {});
  }).listen(0, "127.0.0.1");
  await once(control, "listening");
  t.after(() => {
    control.close();
    control.unref();
  });
  return { controlPort: (control.address() as { port: number }).port, received, header };
}

// A ticket is an order to send datagrams: only the control server's own address is obeyed
// unless the user trusts another (a server behind NAT that runs with --advertise).
test("a ticket that sends UDP elsewhere than the control server is refused: UNTRUSTED_TICKET, no datagram", async (t) => {
  const dir = await tempDir(t);
  let server;
  try {
    server = await misdirectingServer(t, "127.0.0.2");
  } catch {
    return t.skip("cannot bind 127.0.0.2");
  }
  const client = await HeadwireClient.connect({ serverPort: server.controlPort, outDir: dir, maxDeliveryAttempts: 2 });
  t.after(() => client.destroy());
  const refused = await client.query({ url: "example.com" });
  assert.equal(refused.error?.code, "UNTRUSTED_TICKET");
  assert.match(refused.error!.message, /from 127\.0\.0\.2, which is not the server's address \(127\.0\.0\.1\)/);
  assert.match(refused.error!.message, /--trust-udp-host 127\.0\.0\.2/);
  assert.equal(refused.file, undefined);
  // The session goes on; a second query proves the first sent nothing (datagrams on loopback
  // would have arrived by the time the second reply is read).
  assert.equal((await client.query({ url: "example.org" })).error?.code, "UNTRUSTED_TICKET");
  assert.equal(server.received.length, 0, "no REQUEST reached the named host");
});

test("a host the user trusts (--trust-udp-host) is used", async (t) => {
  const dir = await tempDir(t);
  let server;
  try {
    server = await misdirectingServer(t, "127.0.0.2");
  } catch {
    return t.skip("cannot bind 127.0.0.2");
  }
  const client = await HeadwireClient.connect({
    serverPort: server.controlPort,
    outDir: dir,
    trustUdpHosts: ["127.0.0.2"],
  });
  t.after(() => client.destroy());
  const result = await client.query({ url: "example.com" });
  assert.equal(result.error, undefined);
  assert.deepEqual(result.header, server.header);
  assert.ok(server.received.length >= 1);
});
