/**
 * A real `redis-server` (Debian's package) for the tests that need a shared cache: on a free
 * loopback port, with no persistence, stopped and restarted on the same port for outage tests,
 * and killed when the test ends. Without the program, the test is skipped with a message that says
 * how to install it (`.ci/run` installs it, so CI never skips).
 */
import { spawn, type ChildProcess } from "node:child_process";
import { once } from "node:events";
import { accessSync, constants } from "node:fs";
import { createServer } from "node:net";
import { delimiter, join } from "node:path";
import { Redis } from "ioredis";

const READY_TIMEOUT_MS = 10_000;
const STOP_TIMEOUT_MS = 5_000;

interface TestContext {
  after: (fn: () => Promise<void> | void) => void;
  skip: (message?: string) => void;
}

/** Where `redis-server` is: on PATH or /usr/bin; undefined when not installed. */
export function findRedisServer(): string | undefined {
  const candidates = [...(process.env.PATH ?? "").split(delimiter).filter(Boolean), "/usr/bin", "/usr/sbin"];
  for (const dir of candidates) {
    const path = join(dir, "redis-server");
    try {
      accessSync(path, constants.X_OK);
      return path;
    } catch {
      // not here
    }
  }
  return undefined;
}

/**
 * Starts a redis-server for this test and kills it when the test ends; skips the test (loudly)
 * when redis-server is not installed. Callers: `const redis = await startRedis(t); if (!redis) return;`
 */
export async function startRedis(t: TestContext): Promise<RedisServer | undefined> {
  const program = findRedisServer();
  if (!program) {
    t.skip("redis-server not installed: apt-get install redis-server");
    return undefined;
  }
  const server = new RedisServer(program, await freePort());
  t.after(() => server.kill());
  await server.start();
  return server;
}

export class RedisServer {
  private child: ChildProcess | undefined;
  private readonly clients = new Set<Redis>();

  constructor(
    private readonly program: string,
    readonly port: number,
  ) {}

  /** The URL a headwire server's `cacheUrl` takes. */
  url(db = 0): string {
    return `redis://127.0.0.1:${this.port}/${db}`;
  }

  /** Whether the process is running. */
  get running(): boolean {
    return this.child !== undefined && this.child.exitCode === null && this.child.signalCode === null;
  }

  /** Starts the process and resolves once it accepts connections. */
  async start(): Promise<void> {
    if (this.running) throw new Error("redis-server already running");
    const child = spawn(
      this.program,
      ["--port", String(this.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--daemonize", "no"],
      { stdio: ["ignore", "pipe", "pipe"] },
    );
    this.child = child;
    let output = "";
    const ready = new Promise<void>((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new Error(`redis-server not ready within ${READY_TIMEOUT_MS} ms:\n${output}`)),
        READY_TIMEOUT_MS,
      );
      const onData = (chunk: Buffer) => {
        output += chunk.toString();
        if (output.includes("Ready to accept connections")) {
          clearTimeout(timer);
          resolve();
        }
      };
      child.stdout?.on("data", onData);
      child.stderr?.on("data", onData);
      child.once("error", (error) => {
        clearTimeout(timer);
        reject(error);
      });
      child.once("exit", (code, signal) => {
        clearTimeout(timer);
        reject(new Error(`redis-server exited (${code ?? signal}) before it was ready:\n${output}`));
      });
    });
    try {
      await ready;
    } catch (error) {
      this.kill();
      throw error;
    }
    // Keep draining its output so a full pipe never blocks it.
    child.stdout?.resume();
    child.stderr?.resume();
    await this.waitForPing();
  }

  /** Stops the process (SIGTERM, SIGKILL if it lingers) and resolves once it has exited. */
  async stop(): Promise<void> {
    const child = this.child;
    if (!child || !this.running) return;
    const exited = once(child, "exit");
    child.kill("SIGTERM");
    const timer = setTimeout(() => child.kill("SIGKILL"), STOP_TIMEOUT_MS);
    await exited;
    clearTimeout(timer);
  }

  /** Stops it and starts it again on the same port, empty (nothing is persisted). */
  async restart(): Promise<void> {
    await this.stop();
    await this.start();
  }

  /** An ioredis client for assertions (PTTL, KEYS...), closed with the server. */
  client(db = 0): Redis {
    const client = new Redis(this.url(db), { lazyConnect: false, maxRetriesPerRequest: 1 });
    client.on("error", () => {});
    this.clients.add(client);
    return client;
  }

  /** Ends the process at once, and every client handed out; safe to call more than once. */
  kill(): void {
    for (const client of this.clients) client.disconnect();
    this.clients.clear();
    if (this.running) this.child?.kill("SIGKILL");
  }

  private async waitForPing(): Promise<void> {
    const probe = new Redis({ port: this.port, host: "127.0.0.1", lazyConnect: true, retryStrategy: () => null });
    probe.on("error", () => {});
    try {
      await probe.connect();
      const reply = await probe.ping();
      if (reply !== "PONG") throw new Error(`redis-server answered PING with ${reply}`);
    } finally {
      probe.disconnect();
    }
  }
}

/** A port free on 127.0.0.1 right now: bind port 0, read it, close. */
async function freePort(): Promise<number> {
  const server = createServer();
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  const address = server.address();
  const port = typeof address === "object" && address ? address.port : 0;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}
