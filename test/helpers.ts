/** Shared test fixtures: temporary directories, servers on ephemeral ports, raw protocol sessions. */
import { once } from "node:events";
import { mkdtemp, rm } from "node:fs/promises";
import { connect, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { serverSettingsAsEnvironment, WITHOUT_ABUSE_LIMITS } from "../src/config.js";
import { HeadwireServer, type HeadwireServerOptions } from "../src/server/headwire-server.js";

/** Servers started in a temporary directory (startServer with t): stopped before it is removed. */
const stopBeforeRemoval = new Map<string, Array<() => Promise<void>>>();

export async function tempDir(t: { after: (fn: () => Promise<void>) => void }): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), "headwire-test-"));
  const stops: Array<() => Promise<void>> = [];
  stopBeforeRemoval.set(dir, stops);
  t.after(async () => {
    // A server persists its cache when it stops, and a persist that fails makes stop() reject:
    // its directory must still be there. Hooks run in the order they were registered, so servers
    // started later are stopped here, first.
    stopBeforeRemoval.delete(dir);
    try {
      for (const stop of stops.reverse()) await stop();
    } finally {
      // Something else may still be writing here while this runs: rm retries on ENOTEMPTY/EBUSY.
      await rm(dir, { recursive: true, force: true, maxRetries: 10, retryDelay: 50 });
    }
  });
  return dir;
}

/**
 * The abuse limits off: every test client is 127.0.0.1 and every test origin is 127.0.0.1, so the
 * per-address and per-origin limits would measure the test, not the behaviour under test. The
 * limits have their own tests (test/e2e/abuse-limits.test.ts), which set them.
 */
export const UNLIMITED = WITHOUT_ABUSE_LIMITS;

/** The same, as environment variables for a server started as a process. */
export const UNLIMITED_ENV = serverSettingsAsEnvironment(WITHOUT_ABUSE_LIMITS);

/**
 * What every server a test starts as a process gets: no abuse limits, and its admin listener on
 * an ephemeral port, so that no two tests (nor a server someone runs on this machine) collide on
 * the default 50368. The port is in the ready log line (test/cli/run-cli.ts readyLine).
 */
export const TEST_SERVER_ENV = { ...UNLIMITED_ENV, HEADWIRE_ADMIN_HTTP: "127.0.0.1:0" };

export async function startServer(
  dir: string,
  options: HeadwireServerOptions = {},
  t?: { after: (fn: () => Promise<void>) => void },
): Promise<HeadwireServer> {
  const server = new HeadwireServer({
    host: "127.0.0.1",
    controlPort: 0,
    dataPort: 0,
    cacheFile: join(dir, "cache.txt"),
    allowPrivate: true,
    ...UNLIMITED,
    // In-process servers start no admin listener unless the test asks for one (port 0).
    adminHttp: "off",
    log: () => {},
    ...options,
  });
  await server.start();
  if (t) {
    const stops = stopBeforeRemoval.get(dir);
    if (stops) stops.push(() => server.stop());
    else t.after(() => server.stop());
  }
  return server;
}

/** A bare TCP session that speaks the control protocol line by line, for protocol-level tests. */
export class RawSession {
  private buffered = "";
  private readonly lines: string[] = [];
  private waiting: ((line: string | null) => void) | undefined;
  private ended = false;

  private constructor(readonly socket: Socket) {
    socket.setEncoding("latin1");
    socket.on("data", (text: string) => {
      this.buffered += text;
      let newline;
      while ((newline = this.buffered.indexOf("\n")) !== -1) {
        this.push(this.buffered.slice(0, newline));
        this.buffered = this.buffered.slice(newline + 1);
      }
    });
    socket.on("close", () => {
      this.ended = true;
      this.waiting?.(null);
      this.waiting = undefined;
    });
    socket.on("error", () => {});
  }

  static async open(port: number, host = "127.0.0.1", localAddress?: string): Promise<RawSession> {
    const socket = connect({ port, host, ...(localAddress ? { localAddress } : {}) });
    await once(socket, "connect");
    return new RawSession(socket);
  }

  private push(line: string): void {
    if (this.waiting) {
      const resolve = this.waiting;
      this.waiting = undefined;
      resolve(line);
    } else this.lines.push(line);
  }

  /** The next line from the server, or null once it has closed the connection. */
  next(): Promise<string | null> {
    const line = this.lines.shift();
    if (line !== undefined) return Promise.resolve(line);
    if (this.ended) return Promise.resolve(null);
    return new Promise((resolve) => (this.waiting = resolve));
  }

  send(data: string | Buffer): void {
    this.socket.write(data);
  }

  close(): void {
    this.socket.destroy();
  }
}
