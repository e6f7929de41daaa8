import assert from "node:assert/strict";
import { createSocket } from "node:dgram";
import { readFile } from "node:fs/promises";
import { test } from "node:test";
import { HeadwireClient } from "../../src/client/headwire-client.js";
import { parseAdvertise } from "../../src/config/advertise.js";
import { resolveServerConfig } from "../../src/config.js";
import { CraftedOrigin } from "../../src/demo/crafted-origin.js";
import type { HeadwireServer } from "../../src/server/headwire-server.js";
import { LossyRelay } from "../../src/relay/lossy-relay.js";
import { RawSession, startServer, tempDir } from "../helpers.js";

test("--advertise takes HOST, HOST:PORT, [IPv6]:PORT and a bare IPv6 address", () => {
  const parsed = (value: string) => {
    const result = parseAdvertise(value);
    assert.ok(result.ok, value);
    return result.address;
  };
  assert.equal(parsed(""), null);
  assert.deepEqual(parsed("203.0.113.7"), { host: "203.0.113.7", port: undefined });
  assert.deepEqual(parsed("203.0.113.7:40000"), { host: "203.0.113.7", port: 40000 });
  assert.deepEqual(parsed("udp.example.com:1"), { host: "udp.example.com", port: 1 });
  assert.deepEqual(parsed("[2001:db8::1]:40000"), { host: "2001:db8::1", port: 40000 });
  assert.deepEqual(parsed("[2001:db8::1]"), { host: "2001:db8::1", port: undefined });
  assert.deepEqual(parsed("2001:db8::1"), { host: "2001:db8::1", port: undefined });
  assert.deepEqual(parsed("h:65535"), { host: "h", port: 65535 });
});

test("a bad --advertise is refused at start, naming the flag and what is wrong", () => {
  const cases: [string, RegExp][] = [
    ["host:0", /port must be a number from 1 to 65535, got "0"/],
    ["host:65536", /port must be a number from 1 to 65535/],
    ["host:", /port must be a number/],
    ["host:4x", /port must be a number/],
    ["[::1", /\[ of an IPv6 address is not closed/],
    ["[::1]40000", /only :PORT may follow the \]/],
    ["[203.0.113.7]:1", /not an IPv6 address/],
    ["a:b:c", /more than one colon .* goes in brackets/],
    [":40000", /host is missing/],
    ["bad host", /not a host name or an IP address/],
  ];
  for (const [value, reason] of cases) {
    assert.throws(
      () => resolveServerConfig({ advertiseHost: value }),
      (error: Error) =>
        error.message.startsWith("--advertise must be HOST or HOST:PORT (IPv6 in brackets") &&
        error.message.includes(JSON.stringify(value)) &&
        reason.test(error.message),
      value,
    );
  }
});

/**
 * Starts a relay on an ephemeral port, then a server that advertises that port, whose data port is
 * the relay's target: the relay stands for a NAT rule or a container's port mapping (public port →
 * bound port). The data port is found free first; if it is taken before the server binds it, again.
 */
async function serverBehindMapping(dir: string, t: Parameters<typeof tempDir>[0]) {
  for (let attempt = 1; ; attempt++) {
    const dataPort = await freeUdpPort();
    const relay = await LossyRelay.start({ target: { host: "127.0.0.1", port: dataPort }, seed: 1 });
    try {
      const server = await startServer(dir, { dataPort, advertiseHost: `127.0.0.1:${relay.address.port}` }, t);
      t.after(() => relay.close());
      return { server, relay };
    } catch (error) {
      await relay.close();
      if ((error as NodeJS.ErrnoException).code !== "EADDRINUSE" || attempt === 5) throw error;
    }
  }
}

async function freeUdpPort(): Promise<number> {
  const socket = createSocket("udp4");
  await new Promise<void>((resolve) => socket.bind(0, "127.0.0.1", resolve));
  const { port } = socket.address();
  await new Promise<void>((resolve) => socket.close(() => resolve()));
  return port;
}

test("--advertise HOST:PORT: the ticket names the mapped port, and a client collects through the mapping", async (t) => {
  const dir = await tempDir(t);
  const header = `HTTP/1.1 200 OK\r\nX-Mapped: yes\r\n${"X-Filler: abcdefghij\r\n".repeat(300)}\r\n`;
  const origin = await CraftedOrigin.start({ "/mapped": { header } });
  t.after(() => origin.close());
  const { server, relay } = await serverBehindMapping(dir, t);
  assert.notEqual(relay.address.port, server.dataPort, "the public port differs from the bound one");
  // No --udp-via: the client goes where the ticket says. 127.0.0.1 is the control peer: trusted.
  const client = await HeadwireClient.connect({ serverPort: server.controlPort, outDir: dir });
  try {
    const result = await client.query({ url: `127.0.0.1:${origin.port}/mapped` });
    assert.equal(result.error, undefined, JSON.stringify(result.error));
    assert.equal((await readFile(result.file!)).toString("latin1"), header, "byte-exact");
  } finally {
    await client.terminate();
  }
  const { toTarget, toClient } = relay.stats;
  assert.ok(toTarget.forwarded > 0 && toClient.forwarded > 1, "requests and chunks went through the mapping");
  await assertTicketNames(server, `127.0.0.1:${origin.port}/mapped`, `127.0.0.1:${relay.address.port}`);
});

/** The TICKET line itself, read off a raw session, names the advertised host and port. */
async function assertTicketNames(server: HeadwireServer, url: string, udp: string): Promise<void> {
  const session = await RawSession.open(server.controlPort);
  try {
    await session.next(); // the greeting
    session.send(`QUERY ${url}\n`);
    const ticket = (await session.next()) ?? "";
    assert.match(ticket, /^TICKET /);
    assert.ok(ticket.includes(` udp=${udp} `), ticket);
  } finally {
    session.close();
  }
}
