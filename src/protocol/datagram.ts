/**
 * The data channel's wire format (UDP). Pure: encode and decode, no sockets. The decoder never
 * throws and never allocates more than the datagram it is given: anything malformed is `null`.
 *
 *   offset size  field
 *   0      2     magic "HW" (0x48 0x57)
 *   2      1     version (2; 1 is still decoded, see below)
 *   3      1     type: 1 = REQUEST (client → server), 2 = CHUNK (server → client),
 *                3 = DROPS (client → server, version 2 only)
 *   4      16    token, from the TCP ticket
 *   20     4     request number (version 2 only): chosen by the client, echoed in every CHUNK
 *                sent for that REQUEST
 *   REQUEST (r = 20 in version 1, 24 in version 2)
 *   r      2     n, number of ranges (1 .. MAX_RANGES_PER_REQUEST)
 *   r+2    6n    ranges: u32 first chunk index, u16 chunk count (≥ 1)
 *   CHUNK (c = 20 in version 1, 24 in version 2)
 *   c      4     chunk index
 *   c+4    4     chunk count
 *   c+8    4     total header bytes
 *   c+12   4     byte offset of this payload in the header
 *   c+16   p     payload
 *   DROPS (version 2 only; 32 bytes in all; the request number is the highest the client has sent)
 *   24     4     drops: datagrams the client's kernel dropped on its socket so far (monotonic)
 *   last   4     CRC-32 (IEEE) of every byte before it
 *
 * Integers are big-endian. Version 2 adds the request number so that every CHUNK is an
 * unambiguous round-trip sample (QUIC numbers its packets for the same reason, RFC 9002 §5.1),
 * where version 1 had to discard the samples of chunks asked for twice (Karn's rule). Version 1
 * datagrams are still decoded (with request number 0) so a server can answer a version-1 client
 * as before, in version 1.
 */
import { crc32 } from "node:zlib";

export const DATAGRAM_MAGIC = 0x4857;
export const DATAGRAM_VERSION = 2;
/** The version before request numbers; still decoded and answered. */
export const DATAGRAM_VERSION_1 = 1;
export type DatagramVersion = 1 | 2;
export const TOKEN_BYTES = 16;
export const TYPE_REQUEST = 1;
export const TYPE_CHUNK = 2;
/**
 * A client's report of the datagrams its own kernel dropped (its receive buffer was full). A
 * server before it counts the type as not a request and drops it: no version change was needed.
 */
export const TYPE_DROPS = 3;
export const COMMON_HEADER_BYTES = 20;
export const REQUEST_NUMBER_BYTES = 4;
export const CHUNK_HEADER_BYTES = COMMON_HEADER_BYTES + REQUEST_NUMBER_BYTES + 16;
export const CRC_BYTES = 4;
export const CHUNK_OVERHEAD_BYTES = CHUNK_HEADER_BYTES + CRC_BYTES;
export const MAX_RANGES_PER_REQUEST = 64;
export const RANGE_BYTES = 6;
export const MAX_RANGE_CHUNKS = 0xffff;
export const MAX_REQUEST_NUMBER = 0xffff_ffff;
/** The drops field is a u32: a counter past it is reported as this (it never shrinks). */
export const MAX_DROPS = 0xffff_ffff;
/** A DROPS datagram: common header, request number, drops, CRC. */
export const DROPS_BYTES = COMMON_HEADER_BYTES + REQUEST_NUMBER_BYTES + 4 + CRC_BYTES;

/** Chunks one UDP request may ask for, across all its ranges (docs/protocol.md, "Budget and amplification"). */
export const MAX_CHUNKS_PER_REQUEST = 64;

/**
 * Chunk datagrams a ticket may always cost, however small its header: enough for a 1-chunk header
 * to cross a path that loses or corrupts a third of the datagrams (0.335^12 ≈ 2·10⁻⁶ that all twelve
 * copies are lost). docs/protocol.md, "Budget and amplification".
 */
export const MIN_BUDGET_DATAGRAMS = 12;

/**
 * The most UDP bytes one ticket may cause: `budget` full deliveries, and never less than
 * MIN_BUDGET_DATAGRAMS chunk datagrams of the header's mean chunk size. docs/protocol.md derives
 * the worst-case amplification factor from this.
 */
export function deliveryBudgetBytes(headerBytes: number, chunks: number, budget: number): number {
  const floor = MIN_BUDGET_DATAGRAMS * meanChunkDatagramBytes(headerBytes, chunks);
  return Math.max(budget * fullDeliveryBytes(headerBytes, chunks), floor);
}

/** UDP payload bytes of every chunk of a header sent once, in version 2. */
export function fullDeliveryBytes(headerBytes: number, chunks: number): number {
  return headerBytes + chunks * CHUNK_OVERHEAD_BYTES;
}

/** A chunk datagram of the header's mean size (rounded up): what the budget's floor counts in. */
export function meanChunkDatagramBytes(headerBytes: number, chunks: number): number {
  return Math.ceil(headerBytes / chunks) + CHUNK_OVERHEAD_BYTES;
}

export interface ChunkRange {
  first: number;
  count: number;
}

export interface RequestDatagram {
  type: "request";
  version: DatagramVersion;
  token: Buffer;
  /** 0 in version 1. */
  requestNumber: number;
  ranges: ChunkRange[];
}

export interface ChunkDatagram {
  type: "chunk";
  version: DatagramVersion;
  token: Buffer;
  /** The number of the REQUEST this chunk answers (0 in version 1). */
  requestNumber: number;
  index: number;
  count: number;
  total: number;
  offset: number;
  payload: Buffer;
}

/**
 * DROPS (client → server): how many datagrams the client's kernel has dropped on this socket
 * because its receive buffer was full (Linux's per-socket counter, /proc/net/udp "drops"). The
 * server answers nothing and credits the ticket's budget (docs/protocol.md, "Budget and
 * amplification").
 */
export interface DropsDatagram {
  type: "drops";
  version: 2;
  token: Buffer;
  /** The highest request number the client has sent on this ticket. */
  requestNumber: number;
  /** Cumulative: a report repeats the count, so a lost, duplicated or reordered one is harmless. */
  drops: number;
}

export type Datagram = RequestDatagram | ChunkDatagram | DropsDatagram;

/** Payload bytes one chunk carries when datagrams are at most maxDatagramBytes. */
export function chunkPayloadBytes(maxDatagramBytes: number): number {
  return maxDatagramBytes - CHUNK_OVERHEAD_BYTES;
}

export function chunkCount(totalBytes: number, payloadBytes: number): number {
  return Math.max(1, Math.ceil(totalBytes / payloadBytes));
}

/** Bytes of a version-2 REQUEST with this many ranges (version 1: REQUEST_NUMBER_BYTES fewer). */
export function requestBytes(rangeCount: number, version: DatagramVersion = DATAGRAM_VERSION): number {
  return bodyStart(version) + 2 + RANGE_BYTES * rangeCount + CRC_BYTES;
}

/** Where the type-specific fields start. */
function bodyStart(version: DatagramVersion): number {
  return version === 1 ? COMMON_HEADER_BYTES : COMMON_HEADER_BYTES + REQUEST_NUMBER_BYTES;
}

function writeCommon(
  buf: Buffer,
  type: number,
  token: Buffer,
  version: DatagramVersion,
  requestNumber: number,
): number {
  if (token.length !== TOKEN_BYTES) throw new RangeError(`token must be ${TOKEN_BYTES} bytes`);
  buf.writeUInt16BE(DATAGRAM_MAGIC, 0);
  buf.writeUInt8(version, 2);
  buf.writeUInt8(type, 3);
  token.copy(buf, 4);
  if (version !== 1) buf.writeUInt32BE(requestNumber, COMMON_HEADER_BYTES);
  return bodyStart(version);
}

function sealCrc(buf: Buffer): Buffer {
  const end = buf.length - CRC_BYTES;
  buf.writeUInt32BE(crc32(buf.subarray(0, end)), end);
  return buf;
}

/** A version-2 REQUEST (version 1 only for tests of old clients). */
export function encodeRequest(
  token: Buffer,
  ranges: readonly ChunkRange[],
  requestNumber = 0,
  version: DatagramVersion = DATAGRAM_VERSION,
): Buffer {
  if (ranges.length < 1 || ranges.length > MAX_RANGES_PER_REQUEST) {
    throw new RangeError(`a request carries 1 to ${MAX_RANGES_PER_REQUEST} ranges`);
  }
  const buf = Buffer.alloc(requestBytes(ranges.length, version));
  const at = writeCommon(buf, TYPE_REQUEST, token, version, requestNumber);
  buf.writeUInt16BE(ranges.length, at);
  ranges.forEach((range, i) => {
    if (range.count < 1 || range.count > MAX_RANGE_CHUNKS) throw new RangeError("range count out of bounds");
    buf.writeUInt32BE(range.first, at + 2 + i * RANGE_BYTES);
    buf.writeUInt16BE(range.count, at + 6 + i * RANGE_BYTES);
  });
  return sealCrc(buf);
}

/** A CHUNK; `version` and `requestNumber` are those of the REQUEST it answers (default 2 and 0). */
export function encodeChunk(
  chunk: Omit<ChunkDatagram, "type" | "version" | "requestNumber"> &
    Partial<Pick<ChunkDatagram, "version" | "requestNumber">>,
): Buffer {
  const version = chunk.version ?? DATAGRAM_VERSION;
  const headerBytes = bodyStart(version) + 16;
  // Not zero-filled: every byte is written below (header, payload, CRC). One allocation per
  // chunk sent, from Node's pool for the usual sizes.
  const buf = Buffer.allocUnsafe(headerBytes + chunk.payload.length + CRC_BYTES);
  const at = writeCommon(buf, TYPE_CHUNK, chunk.token, version, chunk.requestNumber ?? 0);
  buf.writeUInt32BE(chunk.index, at);
  buf.writeUInt32BE(chunk.count, at + 4);
  buf.writeUInt32BE(chunk.total, at + 8);
  buf.writeUInt32BE(chunk.offset, at + 12);
  chunk.payload.copy(buf, headerBytes);
  return sealCrc(buf);
}

/** A DROPS datagram (always version 2): `drops` is cumulative for the client's socket. */
export function encodeDrops(token: Buffer, requestNumber: number, drops: number): Buffer {
  if (!Number.isInteger(drops) || drops < 0 || drops > MAX_DROPS) throw new RangeError("drops out of bounds");
  const buf = Buffer.alloc(DROPS_BYTES);
  const at = writeCommon(buf, TYPE_DROPS, token, DATAGRAM_VERSION, requestNumber);
  buf.writeUInt32BE(drops, at);
  return sealCrc(buf);
}

/** Decodes one datagram; `null` for anything that is not a well-formed headwire datagram. */
export function decodeDatagram(buf: Buffer): Datagram | null {
  if (buf.length < COMMON_HEADER_BYTES + 2 + CRC_BYTES) return null;
  const version = buf.readUInt8(2);
  if (buf.readUInt16BE(0) !== DATAGRAM_MAGIC || (version !== 1 && version !== 2)) return null;
  const at = bodyStart(version);
  if (buf.length < at + 2 + CRC_BYTES) return null;
  const end = buf.length - CRC_BYTES;
  if (crc32(buf.subarray(0, end)) !== buf.readUInt32BE(end)) return null;
  const type = buf.readUInt8(3);
  const token = Buffer.from(buf.subarray(4, 4 + TOKEN_BYTES));
  const requestNumber = version === 1 ? 0 : buf.readUInt32BE(COMMON_HEADER_BYTES);
  if (type === TYPE_REQUEST) return decodeRequest(buf, { version, token, requestNumber }, at);
  if (type === TYPE_CHUNK) return decodeChunk(buf, { version, token, requestNumber }, at);
  if (type === TYPE_DROPS) return decodeDrops(buf, { version, token, requestNumber }, at);
  return null;
}

interface Common {
  version: DatagramVersion;
  token: Buffer;
  requestNumber: number;
}

function decodeRequest(buf: Buffer, common: Common, at: number): RequestDatagram | null {
  const n = buf.readUInt16BE(at);
  if (n < 1 || n > MAX_RANGES_PER_REQUEST || buf.length !== requestBytes(n, common.version)) return null;
  const ranges: ChunkRange[] = [];
  for (let i = 0; i < n; i++) {
    const first = buf.readUInt32BE(at + 2 + i * RANGE_BYTES);
    const count = buf.readUInt16BE(at + 6 + i * RANGE_BYTES);
    if (count < 1) return null;
    ranges.push({ first, count });
  }
  return { type: "request", ...common, ranges };
}

function decodeChunk(buf: Buffer, common: Common, at: number): ChunkDatagram | null {
  if (buf.length < at + 16 + CRC_BYTES) return null;
  const index = buf.readUInt32BE(at);
  const count = buf.readUInt32BE(at + 4);
  const total = buf.readUInt32BE(at + 8);
  const offset = buf.readUInt32BE(at + 12);
  const payload = buf.subarray(at + 16, buf.length - CRC_BYTES);
  if (count < 1 || index >= count || offset + payload.length > total) return null;
  return { type: "chunk", ...common, index, count, total, offset, payload: Buffer.from(payload) };
}

/** Version 2 only (version 1 predates the type), exactly DROPS_BYTES long. */
function decodeDrops(buf: Buffer, common: Common, at: number): DropsDatagram | null {
  if (common.version !== 2 || buf.length !== DROPS_BYTES) return null;
  return {
    type: "drops",
    version: 2,
    token: common.token,
    requestNumber: common.requestNumber,
    drops: buf.readUInt32BE(at),
  };
}
