/**
 * cache.txt on disk: the owner lock, loading (a corrupt or oversized file is moved aside), and
 * atomic writes. Each write goes to a temporary file that is fsynced and renamed over cache.txt,
 * so a crash leaves either the old file or the new one, never a torn one. When to write is the
 * file store's business (file-cache-store.ts); this module only knows how.
 *
 * The cache directory may be writable by others than the server (a shared /var/lib, a careless
 * mode): nothing here writes through a name someone else could have planted. The temporary file
 * has an unguessable name and is created exclusively, never through a link; cache.txt itself is
 * replaced by rename, which replaces a link rather than following it.
 */
import { randomBytes } from "node:crypto";
import { constants as fsConstants } from "node:fs";
import { open, readdir, readFile, rename, unlink, type FileHandle } from "node:fs/promises";
import { dirname, basename, join } from "node:path";
import { CacheFileError, CacheFileOwnedError, ConfigError } from "../errors.js";
import { parseCache, serializeCacheParts } from "./cache-file-format.js";
import type { CacheEntry } from "./cache-store.js";

/** Bytes written per write call: the event loop runs between batches, so queries go on. */
const WRITE_BATCH_BYTES = 256 * 1024;

/** Bytes read per read call when loading. */
const READ_BATCH_BYTES = 1024 * 1024;

/**
 * Create a new file or fail (O_EXCL), and fail on a symbolic link rather than follow it
 * (O_NOFOLLOW; with O_EXCL a link at the name already fails, the flag says it twice on purpose).
 */
const CREATE_EXCLUSIVE = fsConstants.O_WRONLY | fsConstants.O_CREAT | fsConstants.O_EXCL | fsConstants.O_NOFOLLOW;

/**
 * Opening a FIFO for reading blocks until a writer comes, forever if none does: O_NONBLOCK makes
 * open return at once, and fstat then tells what the name really is.
 */
const READ_NONBLOCKING = fsConstants.O_RDONLY | fsConstants.O_NONBLOCK;

export interface CacheFileLog {
  (message: string): void;
}

export interface LoadResult {
  entries: CacheEntry[];
  /** Where a corrupt file was moved, if it was. */
  movedAsideTo?: string;
}

/** Cache files owned by servers of this process, by resolved path. */
const ownedHere = new Set<string>();

export class CacheFile {
  /**
   * @param maxBytes the largest file load() reads (cacheFileLimitBytes of the store's bounds):
   *   anything larger cannot have been written by a server with these settings.
   */
  constructor(
    readonly path: string,
    private readonly log: CacheFileLog,
    readonly maxBytes: number = Number.MAX_SAFE_INTEGER,
  ) {}

  get lockPath(): string {
    return `${this.path}.lock`;
  }

  /**
   * Makes this process the file's only owner: creates `<file>.lock` holding our PID, exclusively.
   * A lock left by a process that no longer runs (a crash, SIGKILL) is taken over; one held by a
   * live process is refused. Leftover temporary files of a crashed writer are removed.
   */
  async acquire(): Promise<void> {
    if (ownedHere.has(this.lockPath))
      throw new CacheFileOwnedError(`${this.path} is already used by a server in this process`);
    for (let attempt = 0; ; attempt++) {
      try {
        const lock = await open(this.lockPath, "wx", 0o644);
        await lock.writeFile(`${process.pid}\n`);
        await lock.close();
        break;
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== "EEXIST" || attempt > 0) throw error;
        const holder = Number((await readFile(this.lockPath, "utf8").catch(() => "")).trim());
        if (Number.isInteger(holder) && holder > 0 && holder !== process.pid && processRuns(holder)) {
          throw new CacheFileOwnedError(
            `${this.path} is owned by the running process ${holder} (lock ${this.lockPath})`,
          );
        }
        this.log(`taking over ${this.lockPath}, left by process ${holder || "?"} which no longer runs`);
        await unlink(this.lockPath).catch(() => {});
      }
    }
    ownedHere.add(this.lockPath);
    await this.removeLeftovers();
  }

  /** Gives the file up (after the last write). */
  async release(): Promise<void> {
    if (!ownedHere.delete(this.lockPath)) return;
    await unlink(this.lockPath).catch(() => {});
  }

  /**
   * Temporary files of a writer that crashed (we hold the lock: no other writer runs). Only our
   * own names: `.cache.txt.<hex>.tmp` (random since issue 11, a PID before). unlink removes a
   * link, never its target.
   */
  private async removeLeftovers(): Promise<void> {
    const pattern = new RegExp(`^\\.${escapeRegExp(basename(this.path))}\\.[0-9a-f]+\\.tmp$`);
    for (const name of await readdir(dirname(this.path)).catch(() => [] as string[])) {
      if (pattern.test(name)) await unlink(join(dirname(this.path), name)).catch(() => {});
    }
  }

  /**
   * Reads cache.txt. A missing file is an empty cache; a corrupt or oversized one is moved aside.
   * A name that is not a regular file (a FIFO, a device, a directory, a link to one) is refused:
   * the server does not start, and says why. A link to a regular file is read (an operator may
   * keep the cache elsewhere), but the first write replaces the link by a file (see write()).
   */
  async load(): Promise<LoadResult> {
    let file: FileHandle;
    try {
      file = await open(this.path, READ_NONBLOCKING);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === "ENOENT") return { entries: [] };
      throw error;
    }
    let data: Buffer | undefined;
    try {
      const stats = await file.stat();
      if (!stats.isFile()) {
        throw new ConfigError(
          `cache file ${this.path} is ${fileKind(stats)}, not a regular file; give --cache-file a regular file's path`,
        );
      }
      data = await readAtMost(file, this.maxBytes);
    } finally {
      await file.close();
    }
    if (!data) {
      return this.moveAside(
        "too-large",
        `is larger than ${this.maxBytes} bytes, more than --cache-entries and cacheMaxBytes allow`,
      );
    }
    try {
      return { entries: parseCache(data) };
    } catch (error) {
      if (!(error instanceof CacheFileError)) throw error;
      return this.moveAside("corrupt", `is corrupt (${error.message})`);
    }
  }

  private async moveAside(why: string, reason: string): Promise<LoadResult> {
    const aside = `${this.path}.${why}-${new Date().toISOString().replace(/[:.]/g, "-")}`;
    await rename(this.path, aside);
    this.log(`cache file ${this.path} ${reason}; moved aside to ${aside}, starting empty`);
    return { entries: [], movedAsideTo: aside };
  }

  /**
   * The entries are references (entries are immutable); their bytes go out in batches. A write
   * that fails removes its temporary file and rejects: cache.txt keeps its previous content.
   */
  async write(entries: readonly CacheEntry[]): Promise<void> {
    // 128 random bits: a name nobody can plant a link at in advance (a PID can be read in the lock).
    const temporary = join(dirname(this.path), `.${basename(this.path)}.${randomBytes(16).toString("hex")}.tmp`);
    const file = await open(temporary, CREATE_EXCLUSIVE, 0o644);
    try {
      await writeEntries(file, entries).finally(() => file.close());
      await rename(temporary, this.path);
    } catch (error) {
      await unlink(temporary).catch(() => {});
      throw error;
    }
    // Make the rename itself durable.
    const directory = await open(dirname(this.path), "r");
    try {
      await directory.sync();
    } finally {
      await directory.close();
    }
  }
}

/** Serializes the entries into an open file, in batches, and fsyncs it. */
async function writeEntries(file: FileHandle, entries: readonly CacheEntry[]): Promise<void> {
  let batch: Buffer[] = [];
  let batchBytes = 0;
  for (const part of serializeCacheParts(entries)) {
    batch.push(part);
    batchBytes += part.length;
    if (batchBytes >= WRITE_BATCH_BYTES) {
      await writeAll(file, Buffer.concat(batch, batchBytes));
      batch = [];
      batchBytes = 0;
    }
  }
  if (batchBytes > 0) await writeAll(file, Buffer.concat(batch, batchBytes));
  await file.sync();
}

/**
 * The file's bytes, or undefined when it holds more than maxBytes. The size fstat gives is not
 * trusted (the file may grow while it is read): reading stops one byte past the limit.
 */
async function readAtMost(file: FileHandle, maxBytes: number): Promise<Buffer | undefined> {
  const parts: Buffer[] = [];
  let total = 0;
  for (;;) {
    const room = Math.min(READ_BATCH_BYTES, maxBytes + 1 - total);
    const buffer = Buffer.allocUnsafe(room);
    const { bytesRead } = await file.read(buffer, 0, room, null);
    if (bytesRead === 0) return Buffer.concat(parts, total);
    parts.push(buffer.subarray(0, bytesRead));
    total += bytesRead;
    if (total > maxBytes) return undefined;
  }
}

function fileKind(stats: {
  isFIFO(): boolean;
  isDirectory(): boolean;
  isCharacterDevice(): boolean;
  isBlockDevice(): boolean;
  isSocket(): boolean;
}): string {
  if (stats.isFIFO()) return "a FIFO";
  if (stats.isDirectory()) return "a directory";
  if (stats.isCharacterDevice()) return "a character device";
  if (stats.isBlockDevice()) return "a block device";
  if (stats.isSocket()) return "a socket";
  return "not a regular file";
}

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}

/** A write may be partial: go on until every byte is out. */
async function writeAll(file: FileHandle, data: Buffer): Promise<void> {
  for (let offset = 0; offset < data.length;) {
    const { bytesWritten } = await file.write(data, offset, data.length - offset);
    offset += bytesWritten;
  }
}

function processRuns(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === "EPERM";
  }
}
