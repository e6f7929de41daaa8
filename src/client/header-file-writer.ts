/**
 * Writes header files whole: to `<name>.<pid>-<counter>.part`, then renamed over `<name>`
 * (rename(2) within a directory is atomic, so a reader sees the old file, the new one or none,
 * never half of one).
 *
 * Where the writes run: a process that writes a few files writes them synchronously (a header is
 * a few hundred bytes; a thread-pool round trip per open, write, close and rename cost more than
 * the syscalls). A process that writes many (a batch) hands them to one worker thread from the
 * WORKER_AFTER_FILES-th file on: creating a file in a directory of thousands sometimes blocks for
 * a millisecond or more (the file system's journal), and on the main thread that stalls every
 * session's network I/O with it (measured: docs/performance.md, "Bulk"). The files handed over in
 * one turn of the event loop go in one message, and their answers come back in one (a message
 * costs some 10 µs each way); the worker's writes are the same synchronous ones.
 */
import { mkdirSync, renameSync, unlinkSync, writeFileSync } from "node:fs";
import { dirname } from "node:path";
import { isMainThread, parentPort, Worker, workerData } from "node:worker_threads";

/** Files written synchronously before a worker takes over: a single query never starts one. */
export const WORKER_AFTER_FILES = 64;

const WORKER_ROLE = "headwire-header-writer";

interface WriteJob {
  id: number;
  path: string;
  temporary: string;
  header: Uint8Array;
}

interface WriteDone {
  id: number;
  error?: { message: string; code?: string };
}

/**
 * The write itself, wherever it runs: temporary file, rename; the temporary file never stays.
 * `remakeDirectory` makes a directory removed since it was made again (an output directory during
 * a long session); a file the user named (-o FILE) gets no directory made for it, as with curl.
 */
export function writeWhole(path: string, temporary: string, header: Uint8Array, remakeDirectory = true): void {
  try {
    try {
      writeFileSync(temporary, header);
    } catch (error) {
      if (!remakeDirectory || (error as NodeJS.ErrnoException).code !== "ENOENT") throw error;
      mkdirSync(dirname(path), { recursive: true });
      writeFileSync(temporary, header);
    }
    renameSync(temporary, path);
  } catch (error) {
    try {
      unlinkSync(temporary);
    } catch {
      // Nothing was created, or it is gone already.
    }
    throw error;
  }
}

let temporaryCounter = 0;
let filesWritten = 0;
let writer: WorkerWriter | undefined;
/** The worker failed to start or died: writes stay on this thread for the rest of the process. */
let workerBroken = false;

/** Writes `header` to `path` whole; resolves once the file is in place. */
export async function writeHeaderFile(path: string, header: Uint8Array): Promise<void> {
  // Unique within this process (a counter) and among processes (the pid): no two writers share
  // a temporary file, and no random bytes are drawn per file.
  const temporary = `${path}.${process.pid}-${(temporaryCounter++).toString(36)}.part`;
  if (++filesWritten <= WORKER_AFTER_FILES || workerBroken) return writeWhole(path, temporary, header);
  try {
    writer ??= new WorkerWriter();
  } catch {
    workerBroken = true;
    return writeWhole(path, temporary, header);
  }
  return writer.write({ path, temporary, header });
}

class WorkerWriter {
  private readonly worker: Worker;
  private readonly pending = new Map<number, { resolve: () => void; reject: (error: Error) => void }>();
  /** Jobs of this turn of the event loop, posted together by `flush` (setImmediate). */
  private queued: WriteJob[] = [];
  private nextId = 0;

  constructor() {
    this.worker = new Worker(new URL(import.meta.url), { workerData: { role: WORKER_ROLE } });
    // An idle writer must not keep the process alive; it is held while files are pending.
    this.worker.unref();
    this.worker.on("message", (done: WriteDone[]) => {
      for (const one of done) this.settle(one);
    });
    this.worker.on("error", (error) => this.fail(error));
    this.worker.on("exit", (code) => this.fail(new Error(`the header writer thread exited (${code})`)));
  }

  write(job: Omit<WriteJob, "id">): Promise<void> {
    const id = this.nextId++;
    return new Promise<void>((resolve, reject) => {
      if (this.pending.size === 0) this.worker.ref();
      this.pending.set(id, { resolve, reject });
      // setImmediate, not nextTick: each datagram's callback is a turn of its own, and the files
      // of all the datagrams read in one poll of the loop should share the message.
      if (this.queued.push({ id, ...job }) === 1) setImmediate(() => this.flush());
    });
  }

  private flush(): void {
    const jobs = this.queued;
    this.queued = [];
    if (jobs.length > 0 && this.pending.size > 0) this.worker.postMessage(jobs);
  }

  private settle(done: WriteDone): void {
    const waiting = this.pending.get(done.id);
    if (!waiting) return;
    this.pending.delete(done.id);
    if (this.pending.size === 0) this.worker.unref();
    if (!done.error) waiting.resolve();
    else waiting.reject(Object.assign(new Error(done.error.message), { code: done.error.code }));
  }

  /** The files in flight fail (each query says so); later ones are written on this thread. */
  private fail(error: Error): void {
    workerBroken = true;
    if (writer === this) writer = undefined;
    for (const waiting of this.pending.values()) waiting.reject(error);
    this.pending.clear();
    this.queued = [];
  }
}

if (!isMainThread && (workerData as { role?: unknown } | null)?.role === WORKER_ROLE) {
  parentPort!.on("message", (jobs: WriteJob[]) => {
    parentPort!.postMessage(jobs.map(writeJob));
  });
}

function writeJob(job: WriteJob): WriteDone {
  try {
    writeWhole(job.path, job.temporary, job.header);
    return { id: job.id };
  } catch (error) {
    const { message, code } = error as NodeJS.ErrnoException;
    return { id: job.id, error: { message, ...(code !== undefined ? { code } : {}) } };
  }
}
