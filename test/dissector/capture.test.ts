/**
 * The dissector against a real capture: a server and origin on loopback, sessions of the real
 * client (a miss, a hit, an error; a 4-chunk header through the seeded lossy relay, so a lost
 * chunk is asked for again; delivery=tcp), a raw session that splits and packs lines, and
 * datagrams made by hand (a version-1 REQUEST, a corrupted one, a DROPS). dumpcap records it all;
 * tshark reads it back with dissector/headwire.lua and every field is checked.
 */
import assert from "node:assert/strict";
import { createSocket } from "node:dgram";
import { copyFile } from "node:fs/promises";
import { once } from "node:events";
import { before, describe, it } from "node:test";
import { HeadwireClient } from "../../src/client/headwire-client.js";
import { CraftedOrigin, REALISTIC_HEADERS } from "../../src/demo/crafted-origin.js";
import { chunkCount, chunkPayloadBytes, decodeDatagram, encodeRequest } from "../../src/protocol/datagram.js";
import { parseServerMessage } from "../../src/protocol/control.js";
import { LossyRelay } from "../../src/relay/lossy-relay.js";
import { RawSession, startServer, tempDir } from "../helpers.js";
import { encodeDrops } from "./drops-datagram.js";
import { assertDissectorLoads, captureUnavailable, LoopbackCapture, readFields } from "./tshark.js";

/** With this seed the relay drops a chunk of the first answer, so one is asked for again. */
const SEED = Number(process.env.HEADWIRE_RELAY_SEED ?? 1);
const PAYLOAD = chunkPayloadBytes(1200);

/** A header of about `bytes` bytes. */
function header(tag: string, bytes: number): string {
  let text = `HTTP/1.1 200 OK\r\nX-Tag: ${tag}\r\nCache-Control: max-age=600\r\n`;
  for (let i = 0; text.length + 2 < bytes; i++) text += `X-Filler-${i}: ${tag}-${"0123456789abcdef".repeat(4)}\r\n`;
  return `${text}\r\n`;
}

// The seed's twitch 301 (one chunk), a news site's 3.7 KiB header (four chunks of 1156 bytes).
const SMALL = REALISTIC_HEADERS["/twitch"]!.header as string;
const BIG = REALISTIC_HEADERS["/news"]!.header as string;
const HUGE = header("huge", 100_000); // several TCP segments on loopback

const FIELDS = [
  "frame.number",
  "tcp.stream",
  "tcp.segment.count",
  "udp.srcport",
  "udp.dstport",
  "_ws.col.Info",
  "_ws.expert.message",
  "headwire_ctl.command",
  "headwire_ctl.version",
  "headwire_ctl.url",
  "headwire_ctl.token",
  "headwire_ctl.error_code",
  "headwire_ctl.cache",
  "headwire_ctl.status",
  "headwire_ctl.bytes",
  "headwire_ctl.chunks",
  "headwire_ctl.delivery",
  "headwire_ctl.header.line",
  "headwire_data.version",
  "headwire_data.type",
  "headwire_data.token",
  "headwire_data.request_number",
  "headwire_data.range.first",
  "headwire_data.range.count",
  "headwire_data.chunk.index",
  "headwire_data.chunk.count",
  "headwire_data.chunk.offset",
  "headwire_data.total",
  "headwire_data.drops",
  "headwire_data.crc.status",
  "headwire_data.crc.computed",
  "headwire_data.retransmission",
  "headwire_data.ticket_frame",
  "headwire_data.url",
] as const;

type Row = Record<(typeof FIELDS)[number], string[]>;

const one = (row: Row, field: (typeof FIELDS)[number]) => {
  assert.equal(row[field].length, 1, `${field} once in frame ${row["frame.number"][0]}: ${row[field].join(",")}`);
  return row[field][0]!;
};

describe("the dissector reads a real capture", { skip: captureUnavailable() }, () => {
  let rows: Row[] = [];
  let originPort = 0;
  const tokens: Record<string, string> = {};
  let v1Token = "";

  before(async () => {
    await assertDissectorLoads();
    const t = { after: (fn: () => Promise<void>) => cleanups.push(fn) };
    const cleanups: Array<() => Promise<void>> = [];
    try {
      const dir = await tempDir(t);
      const origin = await CraftedOrigin.start({
        "/twitch": { header: SMALL },
        "/news": { header: BIG },
        "/huge": { header: HUGE },
      });
      cleanups.push(() => origin.close());
      originPort = origin.port;
      const server = await startServer(dir, { maxHeaderBytes: 256 * 1024 }, t);
      const relay = await LossyRelay.start({
        target: { host: "127.0.0.1", port: server.dataPort },
        seed: SEED,
        loss: 0.3,
      });
      cleanups.push(() => relay.close());
      const capture = await LoopbackCapture.start(dir, {
        tcp: [server.controlPort],
        udp: [server.dataPort, relay.address.port],
      });
      const url = (path: string) => `127.0.0.1:${origin.port}${path}`;
      try {
        // A miss, a hit and an error, straight to the server.
        const direct = await HeadwireClient.connect({ serverPort: server.controlPort, outDir: dir });
        for (const path of ["/twitch", "/twitch"]) {
          const result = await direct.query({ url: url(path) });
          assert.equal(result.error, undefined, JSON.stringify(result.error));
        }
        assert.equal((await direct.query({ url: "127.0.0.1:1/" })).error?.code, "CONNECTION_REFUSED");
        await direct.terminate();

        // Four chunks through a relay that loses 30 % of the datagrams.
        const lossy = await HeadwireClient.connect({ serverPort: server.controlPort, outDir: dir }, undefined, {
          host: relay.address.host,
          port: relay.address.port,
        });
        assert.equal((await lossy.query({ url: url("/news") })).error, undefined);
        await lossy.terminate();

        // The header on the control connection, then the next reply right after its bytes.
        const overTcp = await HeadwireClient.connect({ serverPort: server.controlPort, outDir: dir, delivery: "tcp" });
        assert.equal((await overTcp.query({ url: url("/huge") })).bytes, HUGE.length);
        assert.equal((await overTcp.query({ url: url("/twitch") })).cache, "HIT");
        await overTcp.terminate();

        // A raw session: a line in two segments, two lines in one, and datagrams made by hand.
        const raw = await RawSession.open(server.controlPort);
        raw.socket.setNoDelay(true);
        assert.match((await raw.next()) ?? "", /^HEADWIRE\/2 READY/);
        await new Promise<void>((resolve) => raw.socket.write("QUE", () => resolve()));
        raw.send(`RY ${url("/twitch")}\n`);
        const ticketLine = (await raw.next()) ?? "";
        const ticket = parseServerMessage(ticketLine);
        assert.equal(ticket.kind, "ticket");
        if (ticket.kind !== "ticket") return;
        v1Token = ticket.ticket.token.toString("hex");
        raw.send("PING\nPING\n");
        assert.equal(await raw.next(), "PONG");
        assert.equal(await raw.next(), "PONG");
        const udp = createSocket("udp4");
        udp.bind(0, "127.0.0.1");
        await once(udp, "listening");
        const answered = once(udp, "message") as Promise<[Buffer]>;
        udp.send(encodeRequest(ticket.ticket.token, [{ first: 0, count: 1 }], 0, 1), server.dataPort, "127.0.0.1");
        const [answer] = await answered;
        assert.equal(decodeDatagram(answer)?.version, 1, "the server answers version 1 in version 1");
        const corrupted = encodeRequest(ticket.ticket.token, [{ first: 0, count: 1 }], 9);
        corrupted[10]! ^= 0x10; // a bit of the token: the CRC no longer matches
        udp.send(corrupted, server.dataPort, "127.0.0.1");
        udp.send(encodeDrops(ticket.ticket.token, 7, 3), server.dataPort, "127.0.0.1");
        raw.send("TERMINATE\n");
        assert.equal(await raw.next(), "BYE");
        raw.close();
        udp.close();
      } finally {
        await capture.stop();
      }
      // scripts/wire-doc.mjs reads this very capture for docs/wire.md.
      if (process.env.HEADWIRE_CAPTURE_OUT) await copyFile(capture.file, process.env.HEADWIRE_CAPTURE_OUT);
      rows = await readFields(capture.file, "headwire_ctl || headwire_data", FIELDS);
      for (const row of rows) {
        if (row["headwire_ctl.command"][0] === "TICKET" && row["headwire_ctl.url"].length === 1) {
          const key = `${row["headwire_ctl.url"][0]} ${row["headwire_ctl.cache"][0]}`;
          tokens[key] ??= row["headwire_ctl.token"][0] ?? "";
        }
      }
    } finally {
      for (const cleanup of cleanups.reverse()) await cleanup();
    }
  });

  const commands = (row: Row) => row["headwire_ctl.command"];
  const datagrams = (token: string) => rows.filter((row) => row["headwire_data.token"][0] === token);

  it("a miss: QUERY, TICKET with its token, then one REQUEST and one CHUNK carrying that token", () => {
    const query = rows.find(
      (row) => commands(row)[0] === "QUERY" && row["headwire_ctl.url"][0] === `127.0.0.1:${originPort}/twitch`,
    );
    assert.ok(query, "the QUERY line");
    assert.equal(one(query, "_ws.col.Info"), `QUERY 127.0.0.1:${originPort}/twitch`);
    const greeting = rows.find((row) => commands(row)[0] === "HEADWIRE/2");
    assert.equal(greeting && one(greeting, "headwire_ctl.version"), "2");
    const token = tokens[`127.0.0.1:${originPort}/twitch MISS`];
    assert.match(token ?? "", /^[0-9a-f]{32}$/);
    const ticket = rows.find((row) => row["headwire_ctl.token"][0] === token)!;
    assert.equal(one(ticket, "headwire_ctl.cache"), "MISS");
    assert.equal(one(ticket, "headwire_ctl.status"), "301");
    assert.equal(one(ticket, "headwire_ctl.bytes"), String(SMALL.length));
    assert.equal(one(ticket, "headwire_ctl.chunks"), "1");
    assert.equal(one(ticket, "_ws.col.Info"), `TICKET ${SMALL.length} B 1 chunk MISS`);
    const [request, chunk, ...rest] = datagrams(token!);
    assert.equal(rest.length, 0, "one REQUEST and one CHUNK");
    assert.equal(one(request!, "headwire_data.type"), "1");
    assert.equal(one(request!, "headwire_data.version"), "2");
    assert.equal(one(request!, "headwire_data.request_number"), "1");
    assert.deepEqual(request!["headwire_data.range.first"], ["0"]);
    assert.deepEqual(request!["headwire_data.range.count"], ["1"]);
    assert.equal(one(request!, "_ws.col.Info"), "REQUEST 0");
    assert.equal(one(request!, "headwire_data.crc.status"), "1");
    assert.equal(one(request!, "headwire_data.ticket_frame"), one(ticket, "frame.number"));
    assert.equal(one(request!, "headwire_data.url"), `127.0.0.1:${originPort}/twitch`);
    assert.equal(one(chunk!, "headwire_data.type"), "2");
    assert.equal(one(chunk!, "headwire_data.request_number"), "1");
    assert.equal(one(chunk!, "headwire_data.chunk.index"), "0");
    assert.equal(one(chunk!, "headwire_data.chunk.count"), "1");
    assert.equal(one(chunk!, "headwire_data.chunk.offset"), "0");
    assert.equal(one(chunk!, "headwire_data.total"), String(SMALL.length));
    assert.equal(one(chunk!, "headwire_data.crc.status"), "1");
    assert.equal(one(chunk!, "_ws.col.Info"), `CHUNK 1/1 ${SMALL.length} B`);
    assert.equal(one(chunk!, "udp.dstport"), one(request!, "udp.srcport"), "the chunk goes back to the request's port");
  });

  it("a hit: the second TICKET says HIT, with a new token and a fresh UDP port", () => {
    const miss = tokens[`127.0.0.1:${originPort}/twitch MISS`]!;
    const hit = tokens[`127.0.0.1:${originPort}/twitch HIT`];
    assert.match(hit ?? "", /^[0-9a-f]{32}$/);
    assert.notEqual(hit, miss);
    const ticket = rows.find((row) => row["headwire_ctl.token"][0] === hit)!;
    assert.equal(one(ticket, "_ws.col.Info"), `TICKET ${SMALL.length} B 1 chunk HIT`);
    const missPort = one(datagrams(miss)[0]!, "udp.srcport");
    const hitPort = one(datagrams(hit!)[0]!, "udp.srcport");
    assert.notEqual(hitPort, missPort, "each query collects from a fresh UDP port");
  });

  it("an error: ERROR with its code, matched to its QUERY", () => {
    const error = rows.find((row) => commands(row)[0] === "ERROR");
    assert.ok(error, "the ERROR line");
    assert.equal(one(error, "headwire_ctl.error_code"), "CONNECTION_REFUSED");
    assert.match(one(error, "_ws.col.Info"), /^ERROR CONNECTION_REFUSED /);
    assert.ok(error["_ws.expert.message"].includes("ERROR CONNECTION_REFUSED"));
  });

  it(`a 4-chunk delivery through the lossy relay: every chunk, placed by offset, and a chunk asked for again (seed ${SEED})`, () => {
    const token = tokens[`127.0.0.1:${originPort}/news MISS`];
    assert.match(token ?? "", /^[0-9a-f]{32}$/);
    const chunks = chunkCount(BIG.length, PAYLOAD);
    assert.equal(chunks, 4);
    const ticket = rows.find((row) => row["headwire_ctl.token"][0] === token)!;
    assert.equal(one(ticket, "_ws.col.Info"), `TICKET ${BIG.length} B 4 chunks MISS`);
    const seen = datagrams(token!);
    const chunkRows = seen.filter((row) => one(row, "headwire_data.type") === "2");
    const indices = new Set(chunkRows.map((row) => Number(one(row, "headwire_data.chunk.index"))));
    assert.deepEqual([...indices].sort(), [0, 1, 2, 3]);
    for (const row of chunkRows) {
      const index = Number(one(row, "headwire_data.chunk.index"));
      assert.equal(one(row, "headwire_data.chunk.offset"), String(index * PAYLOAD));
      assert.equal(one(row, "headwire_data.chunk.count"), "4");
      assert.equal(one(row, "headwire_data.total"), String(BIG.length));
      const payload = index === 3 ? BIG.length - 3 * PAYLOAD : PAYLOAD;
      assert.match(one(row, "_ws.col.Info"), new RegExp(`^CHUNK ${index + 1}/4 ${payload} B`));
    }
    const again = seen.filter(
      (row) => one(row, "headwire_data.type") === "1" && row["headwire_data.retransmission"][0] === "1",
    );
    assert.ok(
      again.length > 0,
      `a REQUEST asking again for a lost chunk (seed ${SEED}: pick another if the relay changed)`,
    );
    assert.match(one(again[0]!, "_ws.col.Info"), /^REQUEST [\d,-]+ \[again\]$/);
    assert.ok(again[0]!["_ws.expert.message"].some((m) => /asked for \(or sent\) again/.test(m)));
  });

  it("a corrupted datagram: CRC status Bad, the computed CRC, expert info, [CRC bad] in Info", () => {
    const bad = rows.filter((row) => row["headwire_data.crc.status"][0] === "0");
    assert.equal(bad.length, 1, "only the hand-corrupted datagram");
    const row = bad[0]!;
    assert.match(one(row, "headwire_data.crc.computed"), /^0x[0-9a-f]{8}$/);
    assert.ok(row["_ws.expert.message"].some((m) => m.startsWith("Bad CRC-32")));
    assert.equal(one(row, "_ws.col.Info"), "REQUEST 0 [CRC bad]");
    assert.equal(one(row, "headwire_data.request_number"), "9");
  });

  it("a DROPS datagram made from the spec decodes: type 3, request number, drops", () => {
    const drops = rows.find((row) => row["headwire_data.type"][0] === "3");
    assert.ok(drops, "the DROPS datagram");
    assert.equal(one(drops, "headwire_data.version"), "2");
    assert.equal(one(drops, "headwire_data.token"), v1Token);
    assert.equal(one(drops, "headwire_data.request_number"), "7");
    assert.equal(one(drops, "headwire_data.drops"), "3");
    assert.equal(one(drops, "headwire_data.crc.status"), "1");
    assert.equal(one(drops, "_ws.col.Info"), "DROPS 3");
  });

  it("version 1 datagrams: no request number, the same fields 4 bytes earlier", () => {
    const v1 = rows.filter((row) => row["headwire_data.version"][0] === "1");
    assert.equal(v1.length, 2, "the version-1 REQUEST and its version-1 CHUNK");
    for (const row of v1) {
      assert.equal(one(row, "headwire_data.token"), v1Token);
      assert.equal(row["headwire_data.request_number"].length, 0);
      assert.equal(one(row, "headwire_data.crc.status"), "1");
    }
    assert.equal(one(v1[0]!, "_ws.col.Info"), "REQUEST 0");
    assert.equal(one(v1[1]!, "_ws.col.Info"), `CHUNK 1/1 ${SMALL.length} B`);
    assert.equal(one(v1[1]!, "headwire_data.total"), String(SMALL.length));
  });

  it("TCP reassembly: a line in two segments is one QUERY; two lines in one segment are two messages", () => {
    const split = rows.find((row) => commands(row)[0] === "QUERY" && row["tcp.segment.count"][0] === "2");
    assert.ok(split, "the QUERY reassembled from two segments");
    assert.equal(one(split, "headwire_ctl.url"), `127.0.0.1:${originPort}/twitch`);
    const pings = rows.find((row) => commands(row).join(" ") === "PING PING");
    assert.ok(pings, "one frame with both PINGs");
    assert.equal(one(pings, "_ws.col.Info"), "PING, PING");
    const pongs = rows.filter((row) => commands(row).includes("PONG"));
    assert.equal(pongs.flatMap(commands).filter((c) => c === "PONG").length, 2);
  });

  it("delivery=tcp: the header's bytes after the TICKET line are one message, and the next reply is found after them", () => {
    const tcpTickets = rows.filter((row) => row["headwire_ctl.delivery"][0] === "tcp" && commands(row)[0] === "TICKET");
    assert.equal(tcpTickets.length, 2, "two delivery=tcp answers");
    const [huge, small] = tcpTickets;
    assert.equal(one(huge!, "headwire_ctl.bytes"), String(HUGE.length));
    assert.ok(Number(one(huge!, "tcp.segment.count")) > 1, "the header crossed several segments");
    assert.equal(huge!["headwire_ctl.header.line"][0], "HTTP/1.1 200 OK\\r\\n");
    assert.equal(one(huge!, "_ws.col.Info"), `TICKET ${HUGE.length} B over TCP MISS`);
    assert.equal(one(small!, "_ws.col.Info"), `TICKET ${SMALL.length} B over TCP HIT`);
    assert.equal(one(small!, "headwire_ctl.url"), `127.0.0.1:${originPort}/twitch`);
    const stream = one(huge!, "tcp.stream");
    const after = rows.filter((row) => row["tcp.stream"][0] === stream).flatMap(commands);
    assert.deepEqual(after, ["HEADWIRE/2", "QUERY", "TICKET", "QUERY", "TICKET", "TERMINATE", "BYE"]);
  });
});
