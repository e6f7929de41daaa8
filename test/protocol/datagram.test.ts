import { test } from "node:test";
import assert from "node:assert/strict";
import { crc32 } from "node:zlib";
import fc from "fast-check";
import {
  CHUNK_OVERHEAD_BYTES,
  CRC_BYTES,
  MAX_RANGES_PER_REQUEST,
  MAX_RANGE_CHUNKS,
  TOKEN_BYTES,
  chunkCount,
  chunkPayloadBytes,
  decodeDatagram,
  encodeChunk,
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
const validChunk: fc.Arbitrary<Omit<ChunkDatagram, "type">> = fc
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

const encodedDatagram = fc.oneof(
  fc.tuple(token, ranges).map(([t, r]) => encodeRequest(t, r)),
  validChunk.map((c) => encodeChunk(c)),
);

test("a request survives encode → decode", () => {
  fc.assert(
    fc.property(token, ranges, (t, r) => {
      const encoded = encodeRequest(t, r);
      assert.equal(encoded.length, requestBytes(r.length));
      assert.deepEqual(decodeDatagram(encoded), { type: "request", token: t, ranges: r });
    }),
  );
});

test("a chunk survives encode → decode", () => {
  fc.assert(
    fc.property(validChunk, (chunk) => {
      const encoded = encodeChunk(chunk);
      assert.equal(encoded.length, CHUNK_OVERHEAD_BYTES + chunk.payload.length);
      assert.deepEqual(decodeDatagram(encoded), { type: "chunk", ...chunk });
    }),
  );
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
  const encoded = encodeChunk(chunk);
  const decoded = decodeDatagram(encoded);
  encoded.fill(0);
  assert.deepEqual(decoded, { type: "chunk", ...chunk });
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
        assert.equal(buf.length, requestBytes(decoded.ranges.length));
        for (const r of decoded.ranges) assert.ok(r.count >= 1 && r.count <= MAX_RANGE_CHUNKS);
        assert.deepEqual(encodeRequest(decoded.token, decoded.ranges), buf);
      } else {
        assert.ok(decoded.count >= 1 && decoded.index < decoded.count);
        assert.ok(decoded.offset + decoded.payload.length <= decoded.total);
        assert.equal(decoded.payload.length, buf.length - CHUNK_OVERHEAD_BYTES);
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
  zeroRanges.writeUInt16BE(0, 20);
  assert.equal(decodeDatagram(reseal(zeroRanges)), null, "0 ranges");
  const zeroCount = Buffer.from(request);
  zeroCount.writeUInt16BE(0, 26);
  assert.equal(decodeDatagram(reseal(zeroCount)), null, "range count 0");
  const extra = reseal(Buffer.concat([request, Buffer.alloc(1)]));
  assert.equal(decodeDatagram(extra), null, "trailing byte");
  const badType = Buffer.from(request);
  badType[3] = 3;
  assert.equal(decodeDatagram(reseal(badType)), null, "unknown type");
  const badVersion = Buffer.from(request);
  badVersion[2] = 2;
  assert.equal(decodeDatagram(reseal(badVersion)), null, "unknown version");
  const badMagic = Buffer.from(request);
  badMagic[0] = 0;
  assert.equal(decodeDatagram(reseal(badMagic)), null, "bad magic");
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
