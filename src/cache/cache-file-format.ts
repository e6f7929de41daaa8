/**
 * The cache.txt format, version 1. Pure: bytes in, entries out. Human-readable (the headers are
 * stored as the origin sent them) and exact (each header is length-prefixed, so any byte,
 * including bare LF and non-ASCII, survives).
 *
 *   headwire-cache 1\n
 *   entry url=<normalized URL> status=<code> stored=<ISO 8601 time> bytes=<n>\n
 *   <n bytes: the header, exactly as received>\n
 *   ... more entries, least recently used first ...
 *   end entries=<count>\n
 *
 * Anything else (a missing `end`, a count or length that does not match, trailing bytes) makes
 * the whole file invalid: the loader moves it aside and starts with an empty cache.
 */
import { constants as bufferConstants } from "node:buffer";
import { CacheFileError } from "../errors.js";
import { MAX_URL_CHARS } from "../url/target.js";
import type { CacheEntry } from "./cache-store.js";

export const CACHE_FILE_MAGIC = "headwire-cache 1";

/**
 * What one entry costs in the file besides its header: the entry line (a key is a normalized URL
 * of at most MAX_URL_CHARS, plus its query options after `#`), and the LF after the header.
 */
export const ENTRY_OVERHEAD_BYTES = MAX_URL_CHARS + 128;

/**
 * The largest file a store with these bounds can write: its header bytes, each entry's overhead,
 * the first and last lines. A larger file was not written by such a server; the loader refuses
 * to read it into memory (a link to /dev/zero, a file that grew by mistake).
 */
export function cacheFileLimitBytes(maxTotalBytes: number, maxEntries: number): number {
  const limit = maxTotalBytes + maxEntries * ENTRY_OVERHEAD_BYTES + 256;
  return Math.min(limit, bufferConstants.MAX_LENGTH);
}

/** The file's bytes, piece by piece (a writer can yield between pieces). */
export function* serializeCacheParts(entries: readonly CacheEntry[]): Generator<Buffer> {
  yield Buffer.from(`${CACHE_FILE_MAGIC}\n`);
  for (const entry of entries) {
    const stored = new Date(entry.storedAtMs).toISOString();
    yield Buffer.from(`entry url=${entry.key} status=${entry.status} stored=${stored} bytes=${entry.header.length}\n`);
    yield entry.header;
    yield Buffer.from("\n");
  }
  yield Buffer.from(`end entries=${entries.length}\n`);
}

export function serializeCache(entries: readonly CacheEntry[]): Buffer {
  return Buffer.concat([...serializeCacheParts(entries)]);
}

const ENTRY_LINE = /^entry url=(\S+) status=(\d{3}) stored=(\S+) bytes=(\d{1,10})$/;
const END_LINE = /^end entries=(\d{1,10})$/;

export function parseCache(data: Buffer): CacheEntry[] {
  let position = 0;
  const readLine = (): string => {
    const newline = data.indexOf(0x0a, position);
    if (newline === -1) throw new CacheFileError(`unterminated line at byte ${position}`);
    const line = data.subarray(position, newline).toString("utf8");
    position = newline + 1;
    return line;
  };
  if (readLine() !== CACHE_FILE_MAGIC) throw new CacheFileError(`first line is not "${CACHE_FILE_MAGIC}"`);
  const entries: CacheEntry[] = [];
  for (;;) {
    const line = readLine();
    const end = END_LINE.exec(line);
    if (end) {
      if (Number(end[1]) !== entries.length) {
        throw new CacheFileError(`end line counts ${end[1]} entries, file has ${entries.length}`);
      }
      if (position !== data.length) throw new CacheFileError(`trailing bytes after the end line`);
      return entries;
    }
    const match = ENTRY_LINE.exec(line);
    if (!match) throw new CacheFileError(`bad entry line at byte ${position}: ${JSON.stringify(line.slice(0, 80))}`);
    const [, key, status, stored, bytes] = match as unknown as [string, string, string, string, string];
    const length = Number(bytes);
    const storedAtMs = Date.parse(stored);
    if (Number.isNaN(storedAtMs)) throw new CacheFileError(`bad stored time ${JSON.stringify(stored)}`);
    if (position + length + 1 > data.length || data[position + length] !== 0x0a) {
      throw new CacheFileError(`entry for ${key} is shorter than its ${length} bytes`);
    }
    const header = Buffer.from(data.subarray(position, position + length));
    position += length + 1;
    entries.push({ key, header, status: Number(status), storedAtMs });
  }
}
