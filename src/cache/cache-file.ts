/**
 * cache.txt on disk: the owner lock, loading (a corrupt file is moved aside), and atomic writes.
 * Each write goes to a temporary file that is fsynced and renamed over cache.txt, so a crash
 * leaves either the old file or the new one, never a torn one. When to write is the file store's
 * business (file-cache-store.ts); this module only knows how.
 */
import { open, readdir, readFile, rename, unlink, type FileHandle } from "node:fs/promises";
import { dirname, basename, join } from "node:path";
import { CacheFileError, CacheFileOwnedError } from "../errors.js";
import { parseCache, serializeCacheParts } from "./cache-file-format.js";
import type { CacheEntry } from "./cache-store.js";

/** Bytes written per write call: the event loop runs between batches, so queries go on. */
const WRITE_BATCH_BYTES = 256 * 1024;

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
  constructor(
    readonly path: string,
    private readonly log: CacheFileLog,
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

  private async removeLeftovers(): Promise<void> {
    const prefix = `.${basename(this.path)}.`;
    for (const name of await readdir(dirname(this.path)).catch(() => [] as string[])) {
      if (name.startsWith(prefix) && name.endsWith(".tmp"))
        await unlink(join(dirname(this.path), name)).catch(() => {});
    }
  }

  /** Reads cache.txt. A missing file is an empty cache; a corrupt one is moved aside. */
  async load(): Promise<LoadResult> {
    let data: Buffer;
    try {
      data = await readFile(this.path);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === "ENOENT") return { entries: [] };
      throw error;
    }
    try {
      return { entries: parseCache(data) };
    } catch (error) {
      if (!(error instanceof CacheFileError)) throw error;
      const aside = `${this.path}.corrupt-${new Date().toISOString().replace(/[:.]/g, "-")}`;
      await rename(this.path, aside);
      this.log(`cache file ${this.path} is corrupt (${error.message}); moved aside to ${aside}, starting empty`);
      return { entries: [], movedAsideTo: aside };
    }
  }

  /** The entries are references (entries are immutable); their bytes go out in batches. */
  async write(entries: readonly CacheEntry[]): Promise<void> {
    const temporary = join(dirname(this.path), `.${basename(this.path)}.${process.pid}.tmp`);
    const file = await open(temporary, "w", 0o644);
    try {
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
    } finally {
      await file.close();
    }
    try {
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
