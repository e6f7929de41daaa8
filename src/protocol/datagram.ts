/**
 * The data channel's wire format (UDP). Pure: encode and decode, no sockets. The decoder never
 * throws and never allocates more than the datagram it is given: anything malformed is `null`.
 *
 *   offset size  field
 *   0      2     magic "HW" (0x48 0x57)
 *   2      1     version (1)
 *   3      1     type: 1 = REQUEST (client → server), 2 = CHUNK (server → client)
 *   4      16    token, from the TCP ticket
 *   REQUEST
 *   20     2     n, number of ranges (1 .. MAX_RANGES_PER_REQUEST)
 *   22     6n    ranges: u32 first chunk index, u16 chunk count (≥ 1)
 *   CHUNK
 *   20     4     chunk index
 *   24     4     chunk count
 *   28     4     total header bytes
 *   32     4     byte offset of this payload in the header
 *   36     p     payload
 *   last   4     CRC-32 (IEEE) of every byte before it
 *
 * Integers are big-endian.
 */
import { crc32 } from "node:zlib";

export const DATAGRAM_MAGIC = 0x4857;
export const DATAGRAM_VERSION = 1;
export const TOKEN_BYTES = 16;
export const TYPE_REQUEST = 1;
export const TYPE_CHUNK = 2;
export const COMMON_HEADER_BYTES = 20;
export const CHUNK_HEADER_BYTES = 36;
export const CRC_BYTES = 4;
export const CHUNK_OVERHEAD_BYTES = CHUNK_HEADER_BYTES + CRC_BYTES;
export const MAX_RANGES_PER_REQUEST = 64;
export const RANGE_BYTES = 6;
export const MAX_RANGE_CHUNKS = 0xffff;

/** Chunks one UDP request may ask for, across all its ranges (docs/protocol.md, "Budget and amplification"). */
export const MAX_CHUNKS_PER_REQUEST = 64;

/**
 * The most UDP bytes one ticket may cause: `budget` full deliveries. docs/protocol.md derives the
 * worst-case amplification factor from this.
 */
export function deliveryBudgetBytes(headerBytes: number, chunks: number, budget: number): number {
  return budget * (headerBytes + chunks * CHUNK_OVERHEAD_BYTES);
}

export interface ChunkRange {
  first: number;
  count: number;
}

export interface RequestDatagram {
  type: "request";
  token: Buffer;
  ranges: ChunkRange[];
}

export interface ChunkDatagram {
  type: "chunk";
  token: Buffer;
  index: number;
  count: number;
  total: number;
  offset: number;
  payload: Buffer;
}

export type Datagram = RequestDatagram | ChunkDatagram;

/** Payload bytes one chunk carries when datagrams are at most maxDatagramBytes. */
export function chunkPayloadBytes(maxDatagramBytes: number): number {
  return maxDatagramBytes - CHUNK_OVERHEAD_BYTES;
}

export function chunkCount(totalBytes: number, payloadBytes: number): number {
  return Math.max(1, Math.ceil(totalBytes / payloadBytes));
}

export function requestBytes(rangeCount: number): number {
  return COMMON_HEADER_BYTES + 2 + RANGE_BYTES * rangeCount + CRC_BYTES;
}

function writeCommon(buf: Buffer, type: number, token: Buffer): void {
  if (token.length !== TOKEN_BYTES) throw new RangeError(`token must be ${TOKEN_BYTES} bytes`);
  buf.writeUInt16BE(DATAGRAM_MAGIC, 0);
  buf.writeUInt8(DATAGRAM_VERSION, 2);
  buf.writeUInt8(type, 3);
  token.copy(buf, 4);
}

function sealCrc(buf: Buffer): Buffer {
  const end = buf.length - CRC_BYTES;
  buf.writeUInt32BE(crc32(buf.subarray(0, end)), end);
  return buf;
}

export function encodeRequest(token: Buffer, ranges: readonly ChunkRange[]): Buffer {
  if (ranges.length < 1 || ranges.length > MAX_RANGES_PER_REQUEST) {
    throw new RangeError(`a request carries 1 to ${MAX_RANGES_PER_REQUEST} ranges`);
  }
  const buf = Buffer.alloc(requestBytes(ranges.length));
  writeCommon(buf, TYPE_REQUEST, token);
  buf.writeUInt16BE(ranges.length, 20);
  ranges.forEach((range, i) => {
    if (range.count < 1 || range.count > MAX_RANGE_CHUNKS) throw new RangeError("range count out of bounds");
    buf.writeUInt32BE(range.first, 22 + i * RANGE_BYTES);
    buf.writeUInt16BE(range.count, 26 + i * RANGE_BYTES);
  });
  return sealCrc(buf);
}

export function encodeChunk(chunk: Omit<ChunkDatagram, "type">): Buffer {
  const buf = Buffer.alloc(CHUNK_OVERHEAD_BYTES + chunk.payload.length);
  writeCommon(buf, TYPE_CHUNK, chunk.token);
  buf.writeUInt32BE(chunk.index, 20);
  buf.writeUInt32BE(chunk.count, 24);
  buf.writeUInt32BE(chunk.total, 28);
  buf.writeUInt32BE(chunk.offset, 32);
  chunk.payload.copy(buf, CHUNK_HEADER_BYTES);
  return sealCrc(buf);
}

/** Decodes one datagram; `null` for anything that is not a well-formed headwire datagram. */
export function decodeDatagram(buf: Buffer): Datagram | null {
  if (buf.length < COMMON_HEADER_BYTES + 2 + CRC_BYTES) return null;
  if (buf.readUInt16BE(0) !== DATAGRAM_MAGIC || buf.readUInt8(2) !== DATAGRAM_VERSION) return null;
  const end = buf.length - CRC_BYTES;
  if (crc32(buf.subarray(0, end)) !== buf.readUInt32BE(end)) return null;
  const type = buf.readUInt8(3);
  const token = buf.subarray(4, 4 + TOKEN_BYTES);
  if (type === TYPE_REQUEST) return decodeRequest(buf, token);
  if (type === TYPE_CHUNK) return decodeChunk(buf, token);
  return null;
}

function decodeRequest(buf: Buffer, token: Buffer): RequestDatagram | null {
  const n = buf.readUInt16BE(20);
  if (n < 1 || n > MAX_RANGES_PER_REQUEST || buf.length !== requestBytes(n)) return null;
  const ranges: ChunkRange[] = [];
  for (let i = 0; i < n; i++) {
    const first = buf.readUInt32BE(22 + i * RANGE_BYTES);
    const count = buf.readUInt16BE(26 + i * RANGE_BYTES);
    if (count < 1) return null;
    ranges.push({ first, count });
  }
  return { type: "request", token: Buffer.from(token), ranges };
}

function decodeChunk(buf: Buffer, token: Buffer): ChunkDatagram | null {
  if (buf.length < CHUNK_OVERHEAD_BYTES) return null;
  const index = buf.readUInt32BE(20);
  const count = buf.readUInt32BE(24);
  const total = buf.readUInt32BE(28);
  const offset = buf.readUInt32BE(32);
  const payload = buf.subarray(CHUNK_HEADER_BYTES, buf.length - CRC_BYTES);
  if (count < 1 || index >= count || offset + payload.length > total) return null;
  return { type: "chunk", token: Buffer.from(token), index, count, total, offset, payload: Buffer.from(payload) };
}
