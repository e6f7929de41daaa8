/**
 * A DROPS datagram (type 3, version 2, client → server), made by hand from its spec while its
 * encoder lands in src/protocol/datagram.ts on another branch:
 *   0 magic "HW" (2) | 2 version = 2 (1) | 3 type = 3 (1) | 4 token (16) | 20 request number: the
 *   highest the client has sent on this ticket (4) | 24 drops: datagrams the client's kernel dropped
 *   for lack of buffer room, cumulative (4) | 28 CRC-32 of all before (4). 32 bytes.
 */
import { crc32 } from "node:zlib";

export function encodeDrops(token: Buffer, requestNumber: number, drops: number): Buffer {
  const buf = Buffer.alloc(32);
  buf.write("HW", 0, "latin1");
  buf.writeUInt8(2, 2);
  buf.writeUInt8(3, 3);
  token.copy(buf, 4);
  buf.writeUInt32BE(requestNumber, 20);
  buf.writeUInt32BE(drops, 24);
  buf.writeUInt32BE(crc32(buf.subarray(0, 28)), 28);
  return buf;
}
