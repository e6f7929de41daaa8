import assert from "node:assert/strict";
import { readFile } from "node:fs/promises";
import { createServer } from "node:net";
import { once } from "node:events";
import { join } from "node:path";
import { test } from "node:test";
import { HeadwireClient } from "../../src/client/headwire-client.js";
import { CraftedOrigin, REALISTIC_HEADERS } from "../../src/demo/crafted-origin.js";
import { startServer, tempDir } from "../helpers.js";

async function ipv6Available(): Promise<boolean> {
  const probe = createServer();
  try {
    probe.listen(0, "::1");
    await once(probe, "listening");
    return true;
  } catch {
    return false;
  } finally {
    probe.close();
  }
}

test("one server on '::' serves IPv6 and IPv4 clients; each collects over its own family", async (t) => {
  if (!(await ipv6Available())) return t.skip("IPv6 loopback (::1) is not available on this machine");
  const dir = await tempDir(t);
  const origin = await CraftedOrigin.start(REALISTIC_HEADERS);
  t.after(() => origin.close());
  const server = await startServer(dir, { host: "::" }, t);
  for (const serverHost of ["::1", "127.0.0.1"]) {
    const traces: string[] = [];
    const client = await HeadwireClient.connect(
      { serverHost, serverPort: server.controlPort, outDir: join(dir, serverHost.replace(/:/g, "_")) },
      (channel, direction, text) => traces.push(`${channel} ${direction} ${text}`),
    );
    const result = await client.query({ url: `127.0.0.1:${origin.port}/twitch` });
    assert.equal(result.error, undefined, JSON.stringify(result.error));
    assert.deepEqual(await readFile(result.file!), Buffer.from(REALISTIC_HEADERS["/twitch"]!.header as string));
    const ticket = traces.find((line) => line.startsWith("tcp recv TICKET"))!;
    const expectedUdp = serverHost === "::1" ? `udp=[::1]:${server.dataPort}` : `udp=127.0.0.1:${server.dataPort}`;
    assert.ok(ticket.includes(expectedUdp), ticket);
    await client.terminate();
  }
});

test("an IPv6 origin literal is fetched ([::1]:port)", async (t) => {
  if (!(await ipv6Available())) return t.skip("IPv6 loopback (::1) is not available on this machine");
  const dir = await tempDir(t);
  const origin = await CraftedOrigin.start(REALISTIC_HEADERS, "::1");
  t.after(() => origin.close());
  const server = await startServer(dir, {}, t);
  const client = await HeadwireClient.connect({ serverPort: server.controlPort, outDir: dir });
  const result = await client.query({ url: `http://[::1]:${origin.port}/legacy` });
  assert.equal(result.error, undefined, JSON.stringify(result.error));
  assert.deepEqual(await readFile(result.file!), Buffer.from(REALISTIC_HEADERS["/legacy"]!.header as Buffer));
  await client.terminate();
});
