import { test } from "node:test";
import assert from "node:assert/strict";
import { crc32 } from "node:zlib";
import fc from "fast-check";
import {
  CHUNK_OVERHEAD_BYTES,
  CRC_BYTES,
  DATAGRAM_VERSION,
  DROPS_BYTES,
  MIN_BUDGET_DATAGRAMS,
  REQUEST_NUMBER_BYTES,
  deliveryBudgetBytes,
  type DatagramVersion,
  MAX_RANGES_PER_REQUEST,
  MAX_RANGE_CHUNKS,
  TOKEN_BYTES,
  chunkCount,
  chunkPayloadBytes,
  decodeDatagram,
  encodeChunk,
  encodeDrops,
  encodeRequest,
  requestBytes,
  type ChunkDatagram,
} from "../../src/protocol/datagram.js";

const token = fc.uint8Array({ minLength: TOKEN_BYTES, maxLength: TOKEN_BYTES }).map((bytes) => Buffer.from(bytes));
const u32 = fc.integer({ min: 0, max: 0xffff_ffff });
const range = fc.record(
  { first: u32, count: fc.integer({ min: 1, max: MAX_RANGE_CHUNKS }) },
  { noNullPrototype: true },
);
const ranges = fc.array(range, { minLength: 1, maxLength: MAX_RANGES_PER_REQUEST });

/** A chunk the decoder must accept: index < count, payload within total. */
const validChunk: fc.Arbitrary<Omit<ChunkDatagram, "type" | "version" | "requestNumber">> = fc
  .record({
    token,
    count: fc.integer({ min: 1, max: 0xffff_ffff }),
    indexDraw: u32,
    payload: fc.uint8Array({ maxLength: 1400 }).map((bytes) => Buffer.from(bytes)),
    offsetDraw: u32,
    slack: u32,
  })
  .map(({ token, count, indexDraw, payload, offsetDraw, slack }) => {
    const offset = offsetDraw % (0xffff_ffff - payload.length + 1);
    const total = Math.min(0xffff_ffff, offset + payload.length + slack);
    return { token, index: indexDraw % count, count, total, offset, payload };
  });

const version = fc.constantFrom<DatagramVersion>(1, 2);
/** Version 1 has no request number: it decodes as 0. */
const numbered = fc.tuple(version, u32).map(([v, n]) => ({ version: v, requestNumber: v === 1 ? 0 : n }));

const encodedDatagram = fc.oneof(
  fc.tuple(token, ranges, numbered).map(([t, r, n]) => encodeRequest(t, r, n.requestNumber, n.version)),
  fc.tuple(validChunk, numbered).map(([c, n]) => encodeChunk({ ...c, ...n })),
  fc.tuple(token, u32, u32).map(([t, n, drops]) => encodeDrops(t, n, drops)),
);

test("a request survives encode → decode", () => {
  fc.assert(
    fc.property(token, ranges, numbered, (t, r, n) => {
      const encoded = encodeRequest(t, r, n.requestNumber, n.version);
      assert.equal(encoded.length, requestBytes(r.length, n.version));
      assert.deepEqual(decodeDatagram(encoded), { type: "request", ...n, token: t, ranges: r });
    }),
  );
});

test("a chunk survives encode → decode", () => {
  fc.assert(
    fc.property(validChunk, numbered, (chunk, n) => {
      const encoded = encodeChunk({ ...chunk, ...n });
      const v1Shorter = n.version === 1 ? REQUEST_NUMBER_BYTES : 0;
      assert.equal(encoded.length, CHUNK_OVERHEAD_BYTES - v1Shorter + chunk.payload.length);
      assert.deepEqual(decodeDatagram(encoded), { type: "chunk", ...n, ...chunk });
    }),
  );
});

test("a DROPS report survives encode → decode, always version 2 and 32 bytes", () => {
  fc.assert(
    fc.property(token, u32, u32, (t, requestNumber, drops) => {
      const encoded = encodeDrops(t, requestNumber, drops);
      assert.equal(encoded.length, DROPS_BYTES);
      assert.deepEqual(decodeDatagram(encoded), { type: "drops", version: 2, token: t, requestNumber, drops });
    }),
  );
});

test("DROPS is laid out as docs/protocol.md draws it (a dissector is written from that table)", () => {
  const t = Buffer.from("00112233445566778899aabbccddeeff", "hex");
  const encoded = encodeDrops(t, 0x0102_0304, 0x0a0b_0c0d);
  assert.equal(DROPS_BYTES, 32);
  assert.equal(
    encoded.subarray(0, 28).toString("hex"),
    "4857" + "02" + "03" + "00112233445566778899aabbccddeeff" + "01020304" + "0a0b0c0d",
  );
  assert.equal(encoded.readUInt32BE(28), crc32(encoded.subarray(0, 28)));
});

test("malformed DROPS datagrams decode to null", () => {
  const t = Buffer.alloc(TOKEN_BYTES, 3);
  const drops = encodeDrops(t, 5, 9);
  const asVersion1 = Buffer.from(drops);
  asVersion1[2] = 1;
  assert.equal(decodeDatagram(reseal(asVersion1)), null, "version 1 has no DROPS");
  assert.equal(decodeDatagram(reseal(Buffer.concat([drops, Buffer.alloc(1)]))), null, "trailing byte");
  assert.equal(decodeDatagram(reseal(Buffer.concat([drops.subarray(0, 27), drops.subarray(28)]))), null, "31 bytes");
  const requestAsDrops = encodeRequest(t, [{ first: 0, count: 1 }], 5);
  requestAsDrops[3] = 3;
  assert.equal(decodeDatagram(reseal(requestAsDrops)), null, "a REQUEST relabelled DROPS has the wrong length");
  const dropsAsRequest = Buffer.from(drops);
  dropsAsRequest[3] = 1;
  assert.equal(decodeDatagram(reseal(dropsAsRequest)), null, "a DROPS relabelled REQUEST has the wrong length");
  const badCrc = Buffer.from(drops);
  badCrc[31]! ^= 0x80;
  assert.equal(decodeDatagram(badCrc), null, "bad CRC");
  assert.throws(() => encodeDrops(t, 0, -1), RangeError);
  assert.throws(() => encodeDrops(t, 0, 2 ** 32), RangeError);
  assert.throws(() => encodeDrops(t, 0, 1.5), RangeError);
});

test("decoded datagrams do not share memory with the received buffer", () => {
  const chunk = {
    token: Buffer.alloc(TOKEN_BYTES, 7),
    index: 0,
    count: 1,
    total: 3,
    offset: 0,
    payload: Buffer.from("abc"),
  };
  const encoded = encodeChunk({ ...chunk, requestNumber: 9 });
  const decoded = decodeDatagram(encoded);
  encoded.fill(0);
  assert.deepEqual(decoded, { type: "chunk", version: DATAGRAM_VERSION, requestNumber: 9, ...chunk });
});

test("arbitrary bytes never make the decoder throw, and what it accepts is consistent", () => {
  const bytes = fc.oneof(
    fc.uint8Array({ maxLength: 2000 }).map((b) => Buffer.from(b)),
    // Mostly-valid datagrams reach the checks beyond magic and CRC: mutate, then reseal the CRC.
    fc
      .tuple(encodedDatagram, fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { maxLength: 4 }))
      .map(([encoded, edits]) => {
        const buf = Buffer.from(encoded);
        for (const [at, value] of edits) buf[4 + (at % (buf.length - 4 - CRC_BYTES))] = value;
        return reseal(buf);
      }),
  );
  fc.assert(
    fc.property(bytes, (buf) => {
      const decoded = decodeDatagram(buf);
      if (decoded === null) return;
      assert.equal(decoded.token.length, TOKEN_BYTES);
      assert.deepEqual(decoded.token, buf.subarray(4, 4 + TOKEN_BYTES));
      if (decoded.type === "request") {
        assert.ok(decoded.ranges.length >= 1 && decoded.ranges.length <= MAX_RANGES_PER_REQUEST);
        assert.equal(buf.length, requestBytes(decoded.ranges.length, decoded.version));
        for (const r of decoded.ranges) assert.ok(r.count >= 1 && r.count <= MAX_RANGE_CHUNKS);
        assert.deepEqual(encodeRequest(decoded.token, decoded.ranges, decoded.requestNumber, decoded.version), buf);
      } else if (decoded.type === "drops") {
        assert.equal(buf.length, DROPS_BYTES);
        assert.equal(decoded.version, 2);
        assert.deepEqual(encodeDrops(decoded.token, decoded.requestNumber, decoded.drops), buf);
      } else {
        assert.ok(decoded.count >= 1 && decoded.index < decoded.count);
        assert.ok(decoded.offset + decoded.payload.length <= decoded.total);
        const v1Shorter = decoded.version === 1 ? REQUEST_NUMBER_BYTES : 0;
        assert.equal(decoded.payload.length, buf.length - CHUNK_OVERHEAD_BYTES + v1Shorter);
        assert.deepEqual(encodeChunk(decoded), buf);
      }
    }),
    { numRuns: 2000 },
  );
});

test("any single flipped bit makes a datagram invalid (CRC-32 catches every 1-bit error)", () => {
  fc.assert(
    fc.property(encodedDatagram, fc.nat(), (encoded, bitDraw) => {
      const bit = bitDraw % (encoded.length * 8);
      const flipped = Buffer.from(encoded);
      flipped[bit >> 3]! ^= 1 << (bit & 7);
      assert.equal(decodeDatagram(flipped), null);
    }),
    { numRuns: 2000 },
  );
});

test("every bit of one datagram, flipped in turn, is caught", () => {
  const encoded = encodeChunk({
    token: Buffer.alloc(TOKEN_BYTES, 0xab),
    index: 2,
    count: 5,
    total: 100,
    offset: 40,
    payload: Buffer.from("HTTP/1.1 200 OK\r\n"),
  });
  for (let bit = 0; bit < encoded.length * 8; bit++) {
    const flipped = Buffer.from(encoded);
    flipped[bit >> 3]! ^= 1 << (bit & 7);
    assert.equal(decodeDatagram(flipped), null, `bit ${bit}`);
  }
});

test("a truncated datagram is invalid", () => {
  fc.assert(
    fc.property(encodedDatagram, fc.nat(), (encoded, cut) => {
      const length = cut % encoded.length;
      assert.equal(decodeDatagram(encoded.subarray(0, length)), null);
    }),
    { numRuns: 2000 },
  );
});

test("the decoder rejects well-sealed datagrams that break the format's rules", () => {
  const t = Buffer.alloc(TOKEN_BYTES, 1);
  const chunk = (fields: Partial<Omit<ChunkDatagram, "type">>): Buffer =>
    encodeChunk({ token: t, index: 0, count: 1, total: 3, offset: 0, payload: Buffer.from("abc"), ...fields });
  assert.equal(decodeDatagram(chunk({ count: 0 })), null, "count 0");
  assert.equal(decodeDatagram(chunk({ index: 1, count: 1 })), null, "index ≥ count");
  assert.equal(decodeDatagram(chunk({ total: 2 })), null, "payload beyond total");
  assert.equal(decodeDatagram(chunk({ offset: 1 })), null, "offset + payload beyond total");
  assert.notEqual(decodeDatagram(chunk({ payload: Buffer.alloc(0), total: 0 })), null, "empty header is fine");

  const request = encodeRequest(t, [{ first: 0, count: 1 }]);
  const zeroRanges = Buffer.from(request);
  zeroRanges.writeUInt16BE(0, 24);
  assert.equal(decodeDatagram(reseal(zeroRanges)), null, "0 ranges");
  const zeroCount = Buffer.from(request);
  zeroCount.writeUInt16BE(0, 30);
  assert.equal(decodeDatagram(reseal(zeroCount)), null, "range count 0");
  const extra = reseal(Buffer.concat([request, Buffer.alloc(1)]));
  assert.equal(decodeDatagram(extra), null, "trailing byte");
  const badType = Buffer.from(request);
  badType[3] = 4;
  assert.equal(decodeDatagram(reseal(badType)), null, "unknown type");
  const badVersion = Buffer.from(request);
  badVersion[2] = 3;
  assert.equal(decodeDatagram(reseal(badVersion)), null, "unknown version");
  const badMagic = Buffer.from(request);
  badMagic[0] = 0;
  assert.equal(decodeDatagram(reseal(badMagic)), null, "bad magic");
  const v1Request = encodeRequest(t, [{ first: 0, count: 1 }], 0, 1);
  const v1AsV2 = Buffer.from(v1Request);
  v1AsV2[2] = 2;
  assert.equal(decodeDatagram(reseal(v1AsV2)), null, "a version-1 layout labelled 2 is too short");
});

test("version 2 adds the request number at offset 20; version 1 keeps its layout", () => {
  const t = Buffer.alloc(TOKEN_BYTES, 5);
  const v2 = encodeRequest(t, [{ first: 3, count: 2 }], 0x01020304);
  assert.equal(v2[2], DATAGRAM_VERSION);
  assert.equal(v2.readUInt32BE(20), 0x01020304);
  assert.equal(v2.readUInt16BE(24), 1);
  const v1 = encodeRequest(t, [{ first: 3, count: 2 }], 0, 1);
  assert.equal(v1.length, v2.length - REQUEST_NUMBER_BYTES);
  assert.equal(v1.readUInt16BE(20), 1);
  assert.deepEqual(decodeDatagram(v1), {
    type: "request",
    version: 1,
    requestNumber: 0,
    token: t,
    ranges: [{ first: 3, count: 2 }],
  });
  const chunk = encodeChunk({
    token: t,
    requestNumber: 77,
    index: 0,
    count: 1,
    total: 1,
    offset: 0,
    payload: Buffer.from("x"),
  });
  assert.equal(chunk.readUInt32BE(20), 77);
});

test("the budget: retransmitBudget full deliveries, never under MIN_BUDGET_DATAGRAMS mean-sized chunks", () => {
  assert.equal(deliveryBudgetBytes(430, 1, 4), MIN_BUDGET_DATAGRAMS * (430 + CHUNK_OVERHEAD_BYTES));
  assert.equal(deliveryBudgetBytes(262_144, 226, 4), 4 * (262_144 + 226 * CHUNK_OVERHEAD_BYTES));
  fc.assert(
    fc.property(
      fc.integer({ min: 0, max: 1 << 24 }),
      fc.integer({ min: 1, max: 2000 }),
      fc.integer({ min: 1, max: 64 }),
      (bytes, chunks, budget) => {
        const full = bytes + chunks * CHUNK_OVERHEAD_BYTES;
        const got = deliveryBudgetBytes(bytes, chunks, budget);
        assert.ok(got >= budget * full);
        assert.ok(got >= MIN_BUDGET_DATAGRAMS * (Math.ceil(bytes / chunks) + CHUNK_OVERHEAD_BYTES));
        assert.ok(got <= Math.max(budget, MIN_BUDGET_DATAGRAMS) * (full + CHUNK_OVERHEAD_BYTES));
      },
    ),
  );
});

test("the encoders refuse what the format cannot carry", () => {
  const t = Buffer.alloc(TOKEN_BYTES);
  assert.throws(() => encodeRequest(t, []), RangeError);
  assert.throws(() => encodeRequest(t, Array(MAX_RANGES_PER_REQUEST + 1).fill({ first: 0, count: 1 })), RangeError);
  assert.throws(() => encodeRequest(t, [{ first: 0, count: 0 }]), RangeError);
  assert.throws(() => encodeRequest(Buffer.alloc(TOKEN_BYTES - 1), [{ first: 0, count: 1 }]), RangeError);
});

test("chunk sizing: payload per datagram and chunk count", () => {
  assert.equal(chunkPayloadBytes(1200), 1200 - CHUNK_OVERHEAD_BYTES);
  assert.equal(chunkCount(0, 1000), 1);
  assert.equal(chunkCount(1000, 1000), 1);
  assert.equal(chunkCount(1001, 1000), 2);
});

/** Rewrites the CRC so a deliberately malformed datagram reaches the checks behind it. */
function reseal(buf: Buffer): Buffer {
  const out = Buffer.from(buf);
  const end = out.length - CRC_BYTES;
  out.writeUInt32BE(crc32(out.subarray(0, end)), end);
  return out;
}
