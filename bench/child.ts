/**
 * A benchmark child process (a server under test, or a load generator) driven over Node's IPC
 * channel: requests carry an id, the child answers each with the same id. Children are optionally
 * pinned to CPUs with taskset so that the server and the load generator never share a core.
 */
import { fork, type ChildProcess } from "node:child_process";
import { once } from "node:events";

export interface ChildRequest {
  cmd: string;
  [key: string]: unknown;
}

export interface ChildOptions {
  /** CPU list for taskset ("0", "1", "0-1"); undefined: not pinned. */
  cpus?: string;
  /** Extra node flags (--cpu-prof, --expose-gc...). */
  nodeArgs?: string[];
  /** Longest wait for the child's first message (its "ready"). */
  readyTimeoutMs?: number;
  /** Called with every message that is not an answer (samples, progress). */
  onEvent?: (message: Record<string, unknown>) => void;
}

export class BenchChild {
  private nextId = 1;
  private readonly waiting = new Map<
    number,
    { resolve: (v: Record<string, unknown>) => void; reject: (e: Error) => void }
  >();
  readonly exited: Promise<number | null>;

  private constructor(
    readonly process: ChildProcess,
    readonly ready: Record<string, unknown>,
    onEvent?: (message: Record<string, unknown>) => void,
  ) {
    process.on("message", (message: Record<string, unknown>) => {
      const id = typeof message.id === "number" ? message.id : undefined;
      const waiter = id === undefined ? undefined : this.waiting.get(id);
      if (waiter && id !== undefined) {
        this.waiting.delete(id);
        if (typeof message.error === "string") waiter.reject(new Error(message.error));
        else waiter.resolve(message);
      } else onEvent?.(message);
    });
    this.exited = new Promise((resolve) => {
      process.once("exit", (code) => {
        for (const waiter of this.waiting.values()) waiter.reject(new Error(`child exited (${code})`));
        this.waiting.clear();
        resolve(code);
      });
    });
  }

  get pid(): number {
    return this.process.pid ?? 0;
  }

  /** Starts `script` (a compiled .js file) with args, and waits for its `{ ready: true, ... }` message. */
  static async start(script: string, args: string[], options: ChildOptions = {}): Promise<BenchChild> {
    const nodeArgs = options.nodeArgs ?? [];
    const child = options.cpus
      ? fork(script, args, {
          execPath: "taskset",
          execArgv: ["-c", options.cpus, process.execPath, ...nodeArgs],
          stdio: ["ignore", "inherit", "inherit", "ipc"],
        })
      : fork(script, args, { execArgv: nodeArgs, stdio: ["ignore", "inherit", "inherit", "ipc"] });
    const timeoutMs = options.readyTimeoutMs ?? 15_000;
    const ready = await new Promise<Record<string, unknown>>((resolve, reject) => {
      const timer = setTimeout(() => {
        child.kill("SIGKILL");
        reject(new Error(`${script}: not ready within ${timeoutMs} ms`));
      }, timeoutMs);
      child.once("message", (message: Record<string, unknown>) => {
        clearTimeout(timer);
        resolve(message);
      });
      child.once("exit", (code) => {
        clearTimeout(timer);
        reject(new Error(`${script}: exited (${code}) before it was ready`));
      });
    });
    return new BenchChild(child, ready, options.onEvent);
  }

  /** Sends a request and waits for its answer (bounded by timeoutMs). */
  request(request: ChildRequest, timeoutMs = 60_000): Promise<Record<string, unknown>> {
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiting.delete(id);
        reject(new Error(`child ${this.pid}: no answer to ${request.cmd} within ${timeoutMs} ms`));
      }, timeoutMs);
      this.waiting.set(id, {
        resolve: (value) => {
          clearTimeout(timer);
          resolve(value);
        },
        reject: (error) => {
          clearTimeout(timer);
          reject(error);
        },
      });
      this.process.send({ ...request, id });
    });
  }

  /** Asks the child to stop, and kills it if it has not exited within timeoutMs. */
  async stop(timeoutMs = 15_000): Promise<void> {
    if (this.process.exitCode !== null || this.process.signalCode !== null) return;
    const timer = setTimeout(() => this.process.kill("SIGKILL"), timeoutMs);
    try {
      this.process.send({ cmd: "stop", id: 0 });
    } catch {
      this.process.kill("SIGKILL");
    }
    await this.exited;
    clearTimeout(timer);
  }
}

/** Answers the parent's requests in a child process: `handle` returns the answer's fields. */
export function serveParent(handle: (request: ChildRequest) => Promise<Record<string, unknown>>): void {
  process.on("message", (message: ChildRequest & { id: number }) => {
    handle(message).then(
      (answer) => process.send?.({ ...answer, id: message.id }),
      (error: unknown) =>
        process.send?.({ id: message.id, error: error instanceof Error ? error.message : String(error) }),
    );
  });
  // The parent died: nothing left to measure for.
  process.on("disconnect", () => process.exit(0));
}

export async function waitExit(child: BenchChild): Promise<void> {
  if (child.process.exitCode === null) await once(child.process, "exit");
}
