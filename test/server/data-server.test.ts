/**
 * DataServer's handler alone, fed datagrams directly: a real socket cannot send from port 0, so
 * the datagrams that once killed the server (issue 11) are handed to `handle` as the socket would.
 * A real UDP socket then checks that the server still answers.
 */
import assert from "node:assert/strict";
import { createSocket } from "node:dgram";
import { once } from "node:events";
import { test } from "node:test";
import { decodeDatagram, encodeRequest, MAX_CHUNKS_PER_REQUEST } from "../../src/protocol/datagram.js";
import { DataServer } from "../../src/server/data-server.js";
import { TicketRegistry, type DeliveryTicket } from "../../src/server/ticket-registry.js";

type T = { after: (fn: () => unknown) => void };

async function dataServer(t: T, tickets: TicketRegistry, logs: string[] = []): Promise<DataServer> {
  const server = await DataServer.start(tickets, {
    host: "127.0.0.1",
    port: 0,
    maxDatagramBytes: 1200,
    receiveBufferBytes: 65_536,
    maxChunksPerRequest: MAX_CHUNKS_PER_REQUEST,
    log: (line) => logs.push(line),
  });
  t.after(() => server.close());
  return server;
}

function registryWithTicket(t: T, peerAddress = "127.0.0.1"): { tickets: TicketRegistry; ticket: DeliveryTicket } {
  const tickets = new TicketRegistry({ ticketTtlMs: 60_000, maxTicketsPerSession: 8 });
  t.after(() => tickets.close());
  return { tickets, ticket: issue(tickets, peerAddress) };
}

/** A one-chunk ticket for peerAddress. */
function issue(tickets: TicketRegistry, peerAddress: string): DeliveryTicket {
  return tickets.issue({
    header: Buffer.from("HTTP/1.1 200 OK\r\nX-A: 1\r\n\r\n"),
    peerAddress,
    sessionId: 1,
    chunkPayloadBytes: 1160,
    chunkCount: 1,
    budgetBytes: 4096,
  });
}

/** A real socket asks for the ticket's chunk: the server still answers. */
async function stillAnswers(t: T, server: DataServer, ticket: DeliveryTicket): Promise<void> {
  const client = createSocket("udp4");
  client.bind(0, "127.0.0.1");
  await once(client, "listening");
  t.after(() => client.close());
  const reply = once(client, "message");
  client.send(encodeRequest(ticket.token, [{ first: 0, count: 1 }]), server.port, "127.0.0.1");
  const [datagram] = (await reply) as [Buffer];
  assert.equal(decodeDatagram(datagram)?.type, "chunk");
}

test("a valid REQUEST from source port 0 is dropped and counted, not answered with a throw", async (t) => {
  const { tickets, ticket } = registryWithTicket(t);
  const server = await dataServer(t, tickets);
  const request = encodeRequest(ticket.token, [{ first: 0, count: 1 }]);
  // Before issue 11 this threw ERR_SOCKET_BAD_PORT from socket.send, and the process exited.
  assert.doesNotThrow(() => server.handle(request, { address: "127.0.0.1", port: 0 }));
  assert.equal(server.stats.dropped.unsendable, 1);
  assert.equal(server.stats.chunksSent, 0);
  assert.equal(ticket.bytesSent, 0, "nothing charged to the ticket for a reply never sent");
  await stillAnswers(t, server, ticket);
  assert.equal(server.stats.chunksSent, 1);
});

test("other unsendable sources (port past 65535, an address that is not an IP) are dropped and counted", async (t) => {
  const { tickets, ticket } = registryWithTicket(t);
  const server = await dataServer(t, tickets);
  const request = encodeRequest(ticket.token, [{ first: 0, count: 1 }]);
  for (const remote of [
    { address: "127.0.0.1", port: 65_536 },
    { address: "127.0.0.1", port: -1 },
    { address: "not an address", port: 4000 },
  ]) {
    assert.doesNotThrow(() => server.handle(request, remote));
  }
  assert.equal(server.stats.dropped.unsendable, 3);
  assert.equal(server.stats.chunksSent, 0);
});

test("a send the kernel refuses later (IPv6 peer on an IPv4 socket) is counted in sendErrors, nothing thrown", async (t) => {
  const { tickets, ticket } = registryWithTicket(t, "::1");
  const server = await dataServer(t, tickets);
  server.handle(encodeRequest(ticket.token, [{ first: 0, count: 1 }]), { address: "::1", port: 9 });
  const deadline = Date.now() + 10_000;
  while (server.stats.sendErrors === 0) {
    if (Date.now() > deadline) throw new Error("the send error was never reported");
    await new Promise((resolve) => setImmediate(resolve));
  }
  assert.equal(server.stats.sendErrors, 1);
  await stillAnswers(t, server, issue(tickets, "127.0.0.1"));
});

test("a bug met while handling a datagram drops it, is counted, logged once with its stack, and the server goes on", async (t) => {
  const { tickets, ticket } = registryWithTicket(t);
  const logs: string[] = [];
  let broken = true;
  const faulty = new Proxy(tickets, {
    get(target, property, receiver) {
      if (property === "find" && broken) {
        return () => {
          throw new TypeError("a bug in the registry");
        };
      }
      const value = Reflect.get(target, property, receiver) as unknown;
      return typeof value === "function" ? value.bind(target) : value;
    },
  });
  const server = await dataServer(t, faulty, logs);
  const request = encodeRequest(ticket.token, [{ first: 0, count: 1 }]);
  for (let i = 0; i < 3; i++) assert.doesNotThrow(() => server.handle(request, { address: "127.0.0.1", port: 4000 }));
  assert.equal(server.stats.dropped.internalError, 3);
  assert.equal(logs.length, 1, "the same bug is logged once, however often it is met");
  assert.match(logs[0]!, /a bug in the registry/);
  assert.match(logs[0]!, /\n\s+at /, "with its stack");
  broken = false;
  await stillAnswers(t, server, ticket);
});
