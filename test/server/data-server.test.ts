/**
 * DataServer's handler alone, fed datagrams directly: a real socket cannot send from port 0, so
 * the datagrams that once killed the server (issue 11) are handed to `handle` as the socket would.
 * A real UDP socket then checks that the server still answers. DROPS reports (issue 12 item 5) go
 * through a real socket: that nothing ever answers one is seen on the wire.
 */
import assert from "node:assert/strict";
import { createSocket, type Socket } from "node:dgram";
import { once } from "node:events";
import { test } from "node:test";
import {
  CHUNK_OVERHEAD_BYTES,
  decodeDatagram,
  encodeDrops,
  encodeRequest,
  fullDeliveryBytes,
  MAX_CHUNKS_PER_REQUEST,
  TOKEN_BYTES,
} from "../../src/protocol/datagram.js";
import { DataServer } from "../../src/server/data-server.js";
import { TicketRegistry, type DeliveryTicket } from "../../src/server/ticket-registry.js";

type T = { after: (fn: () => unknown) => void };

async function dataServer(
  t: T,
  tickets: TicketRegistry,
  logs: string[] = [],
  bufferLossCreditDeliveries = 1,
): Promise<DataServer> {
  const server = await DataServer.start(tickets, {
    host: "127.0.0.1",
    port: 0,
    maxDatagramBytes: 1200,
    receiveBufferBytes: 65_536,
    maxChunksPerRequest: MAX_CHUNKS_PER_REQUEST,
    bufferLossCreditDeliveries,
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

/** 10 chunks of 100 bytes, with a budget of exactly one full delivery (retransmitBudget 1). */
const CHUNKS = 10;
const PAYLOAD = 100;
/** A drop is credited as a chunk datagram of the largest size (here every chunk is that size). */
const LARGEST_CHUNK = PAYLOAD + CHUNK_OVERHEAD_BYTES;
const FULL = fullDeliveryBytes(CHUNKS * PAYLOAD, CHUNKS);

function issueTenChunks(tickets: TicketRegistry, budgetBytes = FULL): DeliveryTicket {
  return tickets.issue({
    header: Buffer.alloc(CHUNKS * PAYLOAD, "h"),
    peerAddress: "127.0.0.1",
    sessionId: 1,
    chunkPayloadBytes: PAYLOAD,
    chunkCount: CHUNKS,
    budgetBytes,
  });
}

/**
 * A client socket on loopback that counts what comes back. `ask` sends a REQUEST and resolves once
 * the server has handled it: with the chunks, or, when it sends none, once it is counted overBudget.
 * The server handles datagrams in arrival order and loopback keeps it, so whatever a DROPS sent
 * before would have caused has arrived by then.
 */
async function owner(t: T, server: DataServer, ticket: DeliveryTicket, address = "127.0.0.1") {
  const socket: Socket = createSocket("udp4");
  socket.bind(0, address);
  await once(socket, "listening");
  t.after(() => socket.close());
  const received: Buffer[] = [];
  let waiter: (() => void) | undefined;
  socket.on("message", (message: Buffer) => {
    received.push(message);
    waiter?.();
  });
  let number = 0;
  const settled = (want: () => boolean): Promise<void> =>
    new Promise((resolve, reject) => {
      const deadline = Date.now() + 10_000;
      const check = (): void => {
        if (want()) return resolve();
        if (Date.now() > deadline) return reject(new Error("the server never handled the datagram"));
        setImmediate(check);
      };
      waiter = check;
      check();
    });
  return {
    received,
    /** Asks for `count` chunks from `first`; resolves with how many came back for it. */
    async ask(first: number, count: number): Promise<number> {
      const before = received.length;
      const overBudget = server.stats.dropped.overBudget;
      socket.send(encodeRequest(ticket.token, [{ first, count }], ++number), server.port, "127.0.0.1");
      await settled(() => received.length - before === count || server.stats.dropped.overBudget > overBudget);
      return received.length - before;
    },
    /** Sends a DROPS report and resolves once the server has counted it, one way or another. */
    async report(drops: number, token = ticket.token, tamper = false): Promise<void> {
      const seen = handled(server);
      const datagram = encodeDrops(token, number, drops);
      if (tamper) datagram[27]! ^= 1;
      socket.send(datagram, server.port, "127.0.0.1");
      await settled(() => handled(server) > seen);
    },
  };
}

/** Datagrams the server has dealt with, whatever became of them. */
function handled(server: DataServer): number {
  const { stats } = server;
  return Object.values(stats.dropped).reduce((sum, n) => sum + n, stats.requests + stats.dropReports);
}

test("a DROPS report from the ticket's owner gives back one chunk datagram per drop, and is never answered", async (t) => {
  const tickets = new TicketRegistry({ ticketTtlMs: 60_000, maxTicketsPerSession: 8 });
  t.after(() => tickets.close());
  const server = await dataServer(t, tickets);
  const ticket = issueTenChunks(tickets);
  const client = await owner(t, server, ticket);
  assert.equal(await client.ask(0, CHUNKS), CHUNKS, "one full delivery: the whole budget");
  assert.equal(await client.ask(0, 1), 0, "spent");
  await client.report(3);
  assert.equal(client.received.length, CHUNKS, "a DROPS report gets no reply");
  assert.deepEqual(server.stats.credited, { datagrams: 3, bytes: 3 * LARGEST_CHUNK, cappedReports: 0 });
  assert.equal(server.stats.dropReports, 1);
  assert.equal(ticket.budgetBytes, FULL + 3 * LARGEST_CHUNK);
  assert.equal(await client.ask(2, 3), 3, "the three lost chunks are sent again");
  assert.equal(await client.ask(5, 1), 0, "and not one more");
  for (const datagram of client.received) assert.equal(decodeDatagram(datagram)?.type, "chunk");
});

test("duplicated and reordered DROPS reports never credit twice: only what a report adds counts", async (t) => {
  const tickets = new TicketRegistry({ ticketTtlMs: 60_000, maxTicketsPerSession: 8 });
  t.after(() => tickets.close());
  const server = await dataServer(t, tickets);
  const ticket = issueTenChunks(tickets);
  const client = await owner(t, server, ticket);
  await client.ask(0, CHUNKS);
  await client.report(3);
  await client.report(3);
  await client.report(2);
  await client.report(1);
  assert.equal(server.stats.credited.datagrams, 3);
  assert.equal(ticket.reportedDrops, 3);
  await client.report(5);
  assert.deepEqual(server.stats.credited, { datagrams: 5, bytes: 5 * LARGEST_CHUNK, cappedReports: 0 });
  assert.equal(server.stats.dropReports, 5);
  assert.equal(ticket.budgetBytes, FULL + 5 * LARGEST_CHUNK);
  assert.equal(client.received.length, CHUNKS);
});

test("the credit is capped by the chunk datagrams actually sent", async (t) => {
  const tickets = new TicketRegistry({ ticketTtlMs: 60_000, maxTicketsPerSession: 8 });
  t.after(() => tickets.close());
  const server = await dataServer(t, tickets);
  const ticket = issueTenChunks(tickets);
  const client = await owner(t, server, ticket);
  await client.report(4);
  assert.deepEqual(server.stats.credited, { datagrams: 0, bytes: 0, cappedReports: 1 }, "nothing sent, nothing lost");
  assert.equal(await client.ask(0, 2), 2);
  await client.report(9);
  assert.deepEqual(
    server.stats.credited,
    { datagrams: 2, bytes: 2 * LARGEST_CHUNK, cappedReports: 2 },
    "5 more drops claimed, 2 datagrams sent",
  );
  await client.report(12);
  assert.equal(server.stats.credited.datagrams, 2, "both already credited");
  assert.equal(ticket.budgetBytes, FULL + 2 * LARGEST_CHUNK);
});

test("the credit is capped at bufferLossCreditDeliveries full deliveries per ticket; 0 gives none", async (t) => {
  for (const deliveries of [0, 1, 2]) {
    const tickets = new TicketRegistry({ ticketTtlMs: 60_000, maxTicketsPerSession: 8 });
    t.after(() => tickets.close());
    const server = await dataServer(t, tickets, [], deliveries);
    const ticket = issueTenChunks(tickets, 10 * FULL);
    const client = await owner(t, server, ticket);
    for (let i = 0; i < 5; i++) assert.equal(await client.ask(0, CHUNKS), CHUNKS);
    await client.report(35);
    await client.report(50);
    assert.equal(ticket.creditedBytes, deliveries * FULL, `${deliveries} deliveries`);
    assert.equal(ticket.budgetBytes, 10 * FULL + deliveries * FULL);
    assert.equal(server.stats.credited.bytes, deliveries * FULL);
    assert.equal(server.stats.credited.datagrams, deliveries * CHUNKS);
    assert.equal(server.stats.credited.cappedReports, 2);
    assert.equal(server.stats.dropReports, 2);
    assert.equal(client.received.length, 5 * CHUNKS);
  }
});

test("DROPS from a foreign address, with an unknown token or a bad CRC credits nothing, and is counted", async (t) => {
  const tickets = new TicketRegistry({ ticketTtlMs: 60_000, maxTicketsPerSession: 8 });
  t.after(() => tickets.close());
  const server = await dataServer(t, tickets);
  const ticket = issueTenChunks(tickets);
  const client = await owner(t, server, ticket);
  const thief = await owner(t, server, ticket, "127.0.0.2");
  await client.ask(0, CHUNKS);
  await thief.report(5);
  await client.report(5, Buffer.alloc(TOKEN_BYTES, 9));
  await client.report(5, ticket.token, true);
  server.handle(encodeDrops(ticket.token, 1, 5), { address: "127.0.0.1", port: 0 });
  assert.deepEqual(
    {
      foreignAddress: server.stats.dropped.foreignAddress,
      unknownToken: server.stats.dropped.unknownToken,
      malformed: server.stats.dropped.malformed,
      unsendable: server.stats.dropped.unsendable,
    },
    { foreignAddress: 1, unknownToken: 1, malformed: 1, unsendable: 1 },
  );
  assert.equal(server.stats.dropReports, 0);
  assert.deepEqual(server.stats.credited, { datagrams: 0, bytes: 0, cappedReports: 0 });
  assert.equal(ticket.budgetBytes, FULL);
  assert.equal(ticket.reportedDrops, 0, "a rejected report does not move the owner's count either");
  assert.equal(await client.ask(0, 1), 0, "still spent");
  assert.equal(thief.received.length, 0);
  assert.equal(client.received.length, CHUNKS);
});
