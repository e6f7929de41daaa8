/**
 * The dissector never raises a Lua error, whatever the bytes: random datagrams (random bytes,
 * datagrams with the magic and a random body, well-formed ones with one field or bit changed) and
 * random control streams (lines, partial lines, delivery=tcp tickets with random lengths, long
 * runs without LF) are written to pcap files by text2pcap and read by tshark. Seeded (fast-check):
 * HEADWIRE_FUZZ_SEED=n replays a run.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import fc from "fast-check";
import { crc32 } from "node:zlib";
import { encodeChunk, encodeRequest } from "../../src/protocol/datagram.js";
import { tempDir } from "../helpers.js";
import { encodeDrops } from "./drops-datagram.js";
import { assertDissectorLoads, readFields, toPcap, tsharkUnavailable } from "./tshark.js";

const SEED = Number(process.env.HEADWIRE_FUZZ_SEED ?? 16);
const PACKETS = 400;

const token = fc.uint8Array({ minLength: 16, maxLength: 16 }).map((a) => Buffer.from(a));

const withCrc = (body: Buffer) => {
  const out = Buffer.alloc(body.length + 4);
  body.copy(out);
  out.writeUInt32BE(crc32(body), body.length);
  return out;
};

/** Datagrams that reach every branch: garbage, the magic with a random rest, valid, valid but changed. */
const datagram: fc.Arbitrary<Buffer> = fc.oneof(
  fc.uint8Array({ maxLength: 1300 }).map((a) => Buffer.from(a)),
  fc
    .tuple(fc.constantFrom(0, 1, 2, 3, 255), fc.integer({ min: 0, max: 5 }), fc.uint8Array({ maxLength: 1300 }))
    .map(([version, type, rest]) => Buffer.concat([Buffer.from([0x48, 0x57, version, type]), Buffer.from(rest)])),
  fc
    .tuple(fc.constantFrom(1, 2, 3), fc.integer({ min: 1, max: 2 }), fc.uint8Array({ maxLength: 200 }))
    .map(([type, version, rest]) =>
      withCrc(Buffer.concat([Buffer.from([0x48, 0x57, version, type]), Buffer.from(rest)])),
    ),
  fc
    .tuple(
      token,
      fc.array(fc.record({ first: fc.nat(), count: fc.integer({ min: 1, max: 0xffff }) }), {
        minLength: 1,
        maxLength: 64,
      }),
      fc.nat(),
      fc.constantFrom<1 | 2>(1, 2),
    )
    .map(([t, ranges, number, version]) => encodeRequest(t, ranges, number, version)),
  fc
    .tuple(token, fc.nat(), fc.nat(), fc.nat(), fc.uint8Array({ maxLength: 1156 }), fc.constantFrom<1 | 2>(1, 2))
    .map(([t, index, count, total, payload, version]) =>
      encodeChunk({ token: t, index, count, total, offset: total, payload: Buffer.from(payload), version }),
    ),
  fc.tuple(token, fc.nat(), fc.nat()).map(([t, number, drops]) => encodeDrops(t, number, drops)),
);

/** A datagram, sometimes with one bit flipped or cut short. */
const mangled = fc.tuple(datagram, fc.nat(), fc.constantFrom("as is", "flip", "cut")).map(([d, at, how]) => {
  if (d.length === 0 || how === "as is") return d;
  if (how === "cut") return d.subarray(0, at % d.length);
  const copy = Buffer.from(d);
  copy[at % copy.length]! ^= 1 << (at % 8);
  return copy;
});

const WORDS = [
  "HEADWIRE/2 READY headwire/0.1.0",
  "HEADWIRE/1 READY x",
  "HEADWIRE/99999 READY",
  "QUERY www.twitch.tv",
  "query a delivery=tcp",
  "TICKET token=0011 udp=1:2 bytes=99999999999 chunks=x cache=HIT status=2000 sha256=zz",
  "TICKET token=00112233445566778899aabbccddeeff udp=[::1]:50367 bytes=5 chunks=1 cache=MISS status=200 sha256=00",
  "TICKET delivery=tcp bytes=",
  "ERROR",
  "ERROR DNS_NOT_FOUND",
  "PURGED 99999999999999",
  "PURGED x",
  "BYE",
  "PONG",
  "terminate",
  "AUTH",
  " ",
  "\t",
  "\r",
  "\n",
  "\r\n",
];

/** Control-channel bytes: known words, numbers, newlines and garbage, in random segments. */
const controlSegment = fc
  .array(
    fc.oneof(
      fc.constantFrom(...WORDS).map((w) => Buffer.from(w)),
      fc.nat({ max: 300 }).map((n) => Buffer.from(`TICKET delivery=tcp bytes=${n} cache=HIT status=200\n`)),
      fc.uint8Array({ maxLength: 200 }).map((a) => Buffer.from(a)),
      fc.constant(Buffer.alloc(9000, 0x41)), // longer than maxLineBytes, no LF
    ),
    { maxLength: 8 },
  )
  .map((parts) => Buffer.concat(parts));

describe("the dissector survives random input", { skip: tsharkUnavailable() }, () => {
  it(`${PACKETS} random datagrams: no Lua error (seed ${SEED})`, async (t) => {
    await assertDissectorLoads();
    const dir = await tempDir(t);
    const packets = fc.sample(mangled, { seed: SEED, numRuns: PACKETS });
    // On the data port, and on other ports (the heuristic).
    for (const ports of ["40000,50367", "41000,42000"]) {
      const pcap = await toPcap(dir, packets, ["-u", ports]);
      await assertNoLuaError(pcap, "headwire_data");
    }
  });

  it(`${PACKETS} random control segments, both directions: no Lua error (seed ${SEED})`, async (t) => {
    await assertDissectorLoads();
    const dir = await tempDir(t);
    const segments = fc.sample(controlSegment, { seed: SEED, numRuns: PACKETS });
    // From the server port, to it, and between two other ports after a greeting (the heuristic).
    for (const ports of ["50366,40001", "40001,50366"]) {
      await assertNoLuaError(await toPcap(dir, segments, ["-T", ports]), "headwire_ctl");
    }
    const greeted = [Buffer.from("HEADWIRE/2 READY headwire/0.1.0\n"), ...segments];
    await assertNoLuaError(await toPcap(dir, greeted, ["-T", "43000,43001"]), "headwire_ctl");
  });
});

/** tshark reads the file cleanly, the dissector saw packets, and none of them raised a Lua error. */
async function assertNoLuaError(pcap: string, protocol: string): Promise<void> {
  const rows = await readFields(
    pcap,
    "frame",
    ["frame.number", "frame.protocols", "_ws.expert.message"],
    ["-o", "tcp.try_heuristic_first:TRUE", "-o", "udp.try_heuristic_first:TRUE"],
  );
  assert.ok(rows.length > 0, "tshark read the packets");
  const dissected = rows.filter((row) => row["frame.protocols"][0]?.includes(protocol));
  assert.ok(dissected.length > 0, `the dissector saw some packets as ${protocol}`);
  const errors = rows.filter((row) => row["_ws.expert.message"].some((m) => m.includes("Lua Error")));
  assert.deepEqual(
    errors.map((row) => `frame ${row["frame.number"][0]}: ${row["_ws.expert.message"].join("; ")}`),
    [],
  );
}
