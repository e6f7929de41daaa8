/**
 * Delivery over the control connection (delivery=tcp), and the client's way there when UDP does
 * not get through: a UDP port that drops everything stands for a network that blocks UDP.
 */
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { createSocket, type Socket } from "node:dgram";
import { once } from "node:events";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { test } from "node:test";
import { ControlConnection } from "../../src/client/control-connection.js";
import { HeadwireClient } from "../../src/client/headwire-client.js";
import { CraftedOrigin } from "../../src/demo/crafted-origin.js";
import type { ControlReply, Delivery } from "../../src/protocol/control.js";
import { chunkCount, chunkPayloadBytes, decodeDatagram } from "../../src/protocol/datagram.js";
import { startServer, tempDir } from "../helpers.js";

const MAX_HEADER_BYTES = 256 * 1024;
const PAYLOAD_BYTES = chunkPayloadBytes(1200);

/**
 * A header of exactly `bytes` bytes, distinct per `tag`. Its lines look like control replies
 * (ERROR, BYE, TICKET), so a client that read them as lines would be caught out.
 */
function exactHeader(tag: string, bytes: number): string {
  let text = `HTTP/1.1 200 OK\r\nX-Tag: ${tag}\r\nX-Trap: ERROR SERVER_BUSY\r\nBYE: x\r\nTICKET: delivery=tcp bytes=1\r\n`;
  for (let i = 0; text.length + 80 < bytes; i++)
    text += `X-Filler-${String(i).padStart(5, "0")}: ${"abcdefghij".repeat(4)}\r\n`;
  const pad = bytes - text.length - "X-Pad: \r\n\r\n".length;
  return `${text}X-Pad: ${"p".repeat(pad)}\r\n\r\n`;
}

/** Headers of 1, 4, 52 and 226 chunks (226 is about maxHeaderBytes at the default datagram size). */
const SIZES: Record<string, number> = {
  "/c1": 430,
  "/c4": 4 * PAYLOAD_BYTES - 100,
  "/c52": 52 * PAYLOAD_BYTES - 500,
  "/c226": 226 * PAYLOAD_BYTES - 300,
};

async function setup(t: Parameters<typeof tempDir>[0]) {
  const dir = await tempDir(t);
  const routes = Object.fromEntries(Object.entries(SIZES).map(([path, bytes]) => [path, exactHeader(path, bytes)]));
  const origin = await CraftedOrigin.start(
    Object.fromEntries(Object.entries(routes).map(([path, header]) => [path, { header }])),
  );
  t.after(() => origin.close());
  const server = await startServer(dir, { maxHeaderBytes: MAX_HEADER_BYTES }, t);
  const url = (path: string) => `127.0.0.1:${origin.port}${path}`;
  return { dir, routes, origin, server, url };
}

/** A bound UDP port that answers nothing: UDP blocked on the path. It counts what it swallows. */
async function silentUdpPort(t: { after: (fn: () => Promise<void>) => void }) {
  const socket: Socket = createSocket("udp4");
  const tokens = new Set<string>();
  let datagrams = 0;
  socket.on("message", (message) => {
    datagrams++;
    const datagram = decodeDatagram(message);
    if (datagram) tokens.add(datagram.token.toString("hex"));
  });
  socket.bind(0, "127.0.0.1");
  await once(socket, "listening");
  t.after(async () => {
    socket.close();
    await once(socket, "close");
  });
  return { address: { host: "127.0.0.1", port: socket.address().port }, tokens, datagrams: () => datagrams };
}

test("delivery=tcp: 1, 4, 52 and 226-chunk headers arrive byte-exact on the session, pipelined with UDP queries", async (t) => {
  const { server, routes, url } = await setup(t);
  for (const [path, bytes] of Object.entries(SIZES)) {
    assert.equal(Buffer.byteLength(routes[path]!), bytes);
    assert.equal(chunkCount(bytes, PAYLOAD_BYTES), Number(path.slice(2)), `${path} is ${path.slice(2)} chunks`);
  }
  const connection = await ControlConnection.open("127.0.0.1", server.controlPort, {
    connectTimeoutMs: 5000,
    replyTimeoutMs: 30_000,
    maxHeaderBytes: MAX_HEADER_BYTES,
  });
  // A failed assertion must not leave the session open: the server would wait for it at stop.
  try {
    // All asked at once: the replies must come back in order, each header framed by its bytes=.
    const plan: Array<[path: string, delivery: Delivery]> = [
      ["/c1", "tcp"],
      ["/c1", "udp"],
      ["/c4", "tcp"],
      ["/c52", "udp"],
      ["/c52", "tcp"],
      ["/c4", "udp"],
      ["/c226", "tcp"],
      ["/c226", "udp"],
      ["/c1", "tcp"],
    ];
    const replies: ControlReply[] = await Promise.all(plan.map(([path, d]) => connection.query(url(path), {}, d)));
    replies.forEach((reply, i) => {
      const [path, delivery] = plan[i]!;
      const expected = Buffer.from(routes[path]!, "latin1");
      if (delivery === "udp") {
        assert.equal(reply.kind, "ticket", `${i} ${path}`);
        if (reply.kind === "ticket") assert.equal(reply.ticket.bytes, expected.length);
        return;
      }
      assert.equal(reply.kind, "header", `${i} ${path}`);
      if (reply.kind !== "header") return;
      assert.ok(reply.header.equals(expected), `${i} ${path}: byte-exact`);
      assert.ok(reply.ticket.sha256.equals(createHash("sha256").update(expected).digest()), `${i} ${path}: SHA-256`);
      assert.equal(reply.ticket.status, 200);
    });
    // The session still speaks lines after the last header.
    assert.equal((await connection.query(url("/c4"), {}, "tcp")).kind, "header");
    const stats = server.stats();
    assert.equal(stats.tcpDeliveries, 6);
    assert.equal(stats.tickets, 4, "tickets for the UDP queries only");
    await connection.terminate();
  } finally {
    connection.destroy();
  }
});

test("--delivery tcp: the client writes the header it got on the session, and sends no UDP at all", async (t) => {
  const { dir, server, routes, url } = await setup(t);
  const silent = await silentUdpPort(t);
  const client = await HeadwireClient.connect(
    { serverPort: server.controlPort, outDir: join(dir, "out"), delivery: "tcp" },
    undefined,
    silent.address,
  );
  // A failed assertion must not leave the session open: the server would wait for it at stop.
  try {
    for (const path of Object.keys(SIZES)) {
      const result = await client.query({ url: url(path) });
      assert.equal(result.error, undefined, `${path}: ${JSON.stringify(result.error)}`);
      assert.equal(result.delivery, "tcp");
      assert.equal((await readFile(result.file!)).toString("latin1"), routes[path], `${path} byte-exact`);
    }
    assert.equal(silent.datagrams(), 0);
    assert.equal(server.stats().data!.requests, 0);
    await client.terminate();
  } finally {
    client.destroy();
  }
});

test("UDP blocked, auto: the client says so, falls back to TCP, and the next query goes straight to TCP", async (t) => {
  const { dir, server, routes, url } = await setup(t);
  const silent = await silentUdpPort(t);
  const client = await HeadwireClient.connect(
    { serverPort: server.controlPort, outDir: join(dir, "out"), chunkTimeoutMs: 20, maxDeliveryAttempts: 3 },
    undefined,
    silent.address,
  );
  // A failed assertion must not leave the session open: the server would wait for it at stop.
  try {
    assert.equal(client.delivery, "udp", "auto starts with UDP");
    const first = await client.query({ url: url("/c52") });
    assert.equal(first.error, undefined, JSON.stringify(first.error));
    assert.equal(first.delivery, "tcp");
    assert.equal((await readFile(first.file!)).toString("latin1"), routes["/c52"], "byte-exact");
    const blocked = first.notices!.filter((n) => n.includes(`UDP to 127.0.0.1:${silent.address.port} seems blocked`));
    assert.equal(blocked.length, 1, first.notices!.join("\n"));
    assert.ok(silent.datagrams() > 0, "UDP was tried first");
    const seen = silent.datagrams();
    const second = await client.query({ url: url("/c226") });
    assert.equal(second.error, undefined, JSON.stringify(second.error));
    assert.equal(second.delivery, "tcp");
    assert.deepEqual(second.notices, [], "nothing more to say: TCP is remembered");
    assert.equal((await readFile(second.file!)).toString("latin1"), routes["/c226"], "byte-exact");
    assert.equal(silent.datagrams(), seen, "no UDP for the second query");
    await client.terminate();
  } finally {
    client.destroy();
  }
});

test("UDP blocked, --delivery udp: new tickets asked for (counted, said), then DELIVERY_FAILED", async (t) => {
  const { dir, server, url } = await setup(t);
  const silent = await silentUdpPort(t);
  const client = await HeadwireClient.connect(
    {
      serverPort: server.controlPort,
      outDir: join(dir, "out"),
      chunkTimeoutMs: 20,
      maxDeliveryAttempts: 3,
      delivery: "udp",
      deliveryRetries: 2,
    },
    undefined,
    silent.address,
  );
  // A failed assertion must not leave the session open: the server would wait for it at stop.
  try {
    const result = await client.query({ url: url("/c4") });
    assert.equal(result.error?.code, "DELIVERY_FAILED");
    assert.match(result.error!.message, / \(3 tickets tried\)$/);
    assert.equal(result.file, undefined);
    assert.deepEqual(
      result.notices!.map((n) => n.replace(/ \(.*\); /, " (…); ")),
      [
        `${url("/c4")}: UDP delivery failed (…); asking for a new ticket (retry 1 of 2)`,
        `${url("/c4")}: UDP delivery failed (…); asking for a new ticket (retry 2 of 2)`,
      ],
    );
    assert.equal(silent.tokens.size, 3, "three distinct tickets were tried");
    assert.equal(server.stats().tcpDeliveries, 0, "never over TCP");
    assert.equal(client.delivery, "udp");
    await client.terminate();
  } finally {
    client.destroy();
  }
});
