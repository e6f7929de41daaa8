/**
 * Kept origin connections (src/fetch/origin-pool.ts) as the origin fetcher uses them, against
 * real sockets: an origin that reads request after request on each connection and counts them.
 */
import { after, test } from "node:test";
import assert from "node:assert/strict";
import net from "node:net";
import tls from "node:tls";
import { HeadwireError } from "../../src/errors.js";
import { OriginFetcher, type ResolvedAddress } from "../../src/fetch/origin-fetcher.js";
import { OriginPool, type OriginPoolOptions } from "../../src/fetch/origin-pool.js";
import { OutboundGuard } from "../../src/fetch/outbound-guard.js";
import { DEFAULT_QUERY_OPTIONS, type QueryOptions } from "../../src/http/query-options.js";
import { parseTarget } from "../../src/url/target.js";
import { testPki } from "../test-pki.js";

/** Answers the `index`-th request (0-based) of a connection; writes whatever the test needs. */
type Respond = (socket: net.Socket, path: string, index: number) => void;

interface KeepAliveOrigin {
  port: number;
  url(path: string, host?: string): string;
  connections: number;
  requests: string[];
  /** Resolves when the next connection closes. */
  nextClose(): Promise<void>;
  close(): Promise<void>;
}

const origins: KeepAliveOrigin[] = [];
after(() => Promise.all(origins.map((origin) => origin.close())));

async function startOrigin(respond: Respond, keys?: { key: Buffer; cert: Buffer }): Promise<KeepAliveOrigin> {
  const sockets = new Set<net.Socket>();
  const closeWaiters: Array<() => void> = [];
  const onSocket = (socket: net.Socket): void => {
    sockets.add(socket);
    socket.on("error", () => {});
    socket.on("close", () => {
      sockets.delete(socket);
      for (const resolve of closeWaiters.splice(0)) resolve();
    });
    let buffered = "";
    let index = 0;
    socket.on("data", (chunk: Buffer) => {
      buffered += chunk.toString("latin1");
      for (let end = buffered.indexOf("\r\n\r\n"); end !== -1; end = buffered.indexOf("\r\n\r\n")) {
        const request = buffered.slice(0, end + 4);
        buffered = buffered.slice(end + 4);
        origin.requests.push(request);
        respond(socket, request.split(" ")[1] ?? "", index++);
      }
    });
  };
  const server = keys
    ? tls.createServer({ ...keys, ALPNProtocols: ["http/1.1"] }, onSocket)
    : net.createServer(onSocket);
  server.on("tlsClientError", () => {});
  // TCP connections, a TLS handshake that fails included.
  server.on("connection", () => origin.connections++);
  const origin: KeepAliveOrigin = {
    port: 0,
    url: (path, host = "127.0.0.1") => `${keys ? "https" : "http"}://${host}:${origin.port}${path}`,
    connections: 0,
    requests: [],
    nextClose: () => new Promise<void>((resolve) => closeWaiters.push(resolve)),
    close: async () => {
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", () => resolve()));
  origin.port = (server.address() as net.AddressInfo).port;
  origins.push(origin);
  return origin;
}

const POOL: OriginPoolOptions = { idleMs: 10_000, maxIdle: 16, maxIdlePerKey: 8, maxDrainBytes: 1024 };

function fetcherWith(
  pool: OriginPool,
  extra: { ca?: Buffer; lookup?: (host: string) => Promise<ResolvedAddress[]> } = {},
) {
  return new OriginFetcher({
    connectTimeoutMs: 5000,
    headerTimeoutMs: 5000,
    maxHeaderBytes: 64 * 1024,
    userAgent: "headwire/test",
    guard: new OutboundGuard({ allowPrivate: false, allow: ["127.0.0.1/32"] }),
    pool,
    ...extra,
  });
}

function get(fetcher: OriginFetcher, url: string, query: Partial<QueryOptions> = {}) {
  return fetcher.fetch(parseTarget(url), { ...DEFAULT_QUERY_OPTIONS, ...query });
}

/** Waits (bounded) until the pool holds `count` idle connections: a body is read after the fetch returns. */
async function untilIdle(pool: OriginPool, count: number): Promise<void> {
  const deadline = Date.now() + 10_000;
  while (pool.stats.idle !== count) {
    if (Date.now() > deadline) assert.fail(`the pool holds ${pool.stats.idle} idle connections, not ${count}`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

const NO_CONTENT = "HTTP/1.1 204 No Content\r\nCache-Control: max-age=60\r\n\r\n";

test("requests to one origin go on one kept connection: 204, Content-Length: 0, HEAD; bytes as sent", async () => {
  const answers: Record<string, string> = {
    "/204": NO_CONTENT,
    "/empty": "HTTP/1.1 301 Moved Permanently\r\nLocation: /204\r\nContent-Length: 0\r\n\r\n",
    "/head": "HTTP/1.1 200 OK\r\nContent-Length: 5000\r\n\r\n",
  };
  const origin = await startOrigin((socket, path) => socket.write(answers[path]!));
  const pool = new OriginPool(POOL);
  const fetcher = fetcherWith(pool);
  assert.deepEqual((await get(fetcher, origin.url("/204"))).header, Buffer.from(NO_CONTENT));
  assert.equal((await get(fetcher, origin.url("/empty"))).status, 301);
  assert.equal((await get(fetcher, origin.url("/head"), { method: "HEAD" })).status, 200);
  assert.equal((await get(fetcher, origin.url("/204"))).status, 204);
  assert.equal(origin.connections, 1, "one connection for four requests");
  assert.equal(origin.requests.length, 4);
  assert.deepEqual(pool.stats, { idle: 1, reused: 3, kept: 4 });
  pool.close();
});

test("a short body is read and dropped after the header, then its connection is kept; a long one closes it", async () => {
  const body = "x".repeat(600);
  const origin = await startOrigin((socket, path) => {
    const length = path === "/long" ? 2000 : body.length;
    // The header first, the body in a later write: the fetch has returned by then.
    socket.write(`HTTP/1.1 200 OK\r\nContent-Length: ${length}\r\n\r\n`, () =>
      setImmediate(() => socket.write("x".repeat(length))),
    );
  });
  const pool = new OriginPool(POOL);
  const fetcher = fetcherWith(pool);
  const first = await get(fetcher, origin.url("/short"));
  assert.equal(first.header.toString("latin1"), "HTTP/1.1 200 OK\r\nContent-Length: 600\r\n\r\n", "never the body");
  await untilIdle(pool, 1);
  await get(fetcher, origin.url("/short"));
  await untilIdle(pool, 1);
  assert.equal(origin.connections, 1);
  const closed = origin.nextClose();
  await get(fetcher, origin.url("/long")); // 2000 bytes > maxDrainBytes 1024: closed, not read
  await closed;
  assert.equal(pool.stats.idle, 0);
  pool.close();
});

test("a response whose end cannot be told, or that says Connection: close, costs its connection", async () => {
  const answers: Record<string, string> = {
    "/chunked": "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
    "/until-close": "HTTP/1.1 200 OK\r\nServer: old\r\n\r\nbody",
    "/close": "HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n",
    "/http10": "HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n",
  };
  const origin = await startOrigin((socket, path) => socket.write(answers[path]!));
  const pool = new OriginPool(POOL);
  const fetcher = fetcherWith(pool);
  for (const path of Object.keys(answers)) {
    const closed = origin.nextClose();
    await get(fetcher, origin.url(path));
    await closed;
  }
  assert.equal(origin.connections, 4);
  assert.deepEqual(pool.stats, { idle: 0, reused: 0, kept: 0 });
});

test("a kept connection the origin closes unanswered: the request is sent again, once, on a new connection", async () => {
  // Each connection answers its first request and drops the second without a byte, as an origin
  // whose keep-alive timeout fires just as the request arrives.
  const origin = await startOrigin((socket, _path, index) => {
    if (index === 0) socket.write(NO_CONTENT);
    else socket.destroy();
  });
  const pool = new OriginPool(POOL);
  const fetcher = fetcherWith(pool);
  await get(fetcher, origin.url("/a"));
  const second = await get(fetcher, origin.url("/b"));
  assert.equal(second.status, 204);
  assert.equal(origin.connections, 2);
  assert.deepEqual(
    origin.requests.map((request) => request.split(" ")[1]),
    ["/a", "/b", "/b"],
  );
});

test("a kept connection that answers with garbage fails the query: only silence is retried", async () => {
  const origin = await startOrigin((socket, _path, index) => {
    if (index === 0) socket.write(NO_CONTENT);
    else socket.end("SSH-2.0-OpenSSH\r\n");
  });
  const pool = new OriginPool(POOL);
  const fetcher = fetcherWith(pool);
  await get(fetcher, origin.url("/a"));
  const error = await get(fetcher, origin.url("/b")).catch((e: unknown) => e);
  assert.ok(error instanceof HeadwireError);
  assert.equal(error.code, "NOT_HTTP");
  assert.equal(origin.connections, 1);
});

test("an idle connection ends on the origin's close, on unasked bytes, and after idleMs", async () => {
  const origin = await startOrigin((socket, path) => {
    socket.write(NO_CONTENT);
    if (path === "/then-close") setImmediate(() => socket.end());
    if (path === "/then-garbage") setImmediate(() => socket.write("HTTP/1.1 200 OK\r\n\r\n"));
  });
  const pool = new OriginPool(POOL);
  const fetcher = fetcherWith(pool);
  for (const path of ["/then-close", "/then-garbage"]) {
    const closed = origin.nextClose();
    await get(fetcher, origin.url(path));
    await closed;
    await untilIdle(pool, 0);
  }
  const brief = new OriginPool({ ...POOL, idleMs: 30 });
  const closed = origin.nextClose();
  await get(fetcherWith(brief), origin.url("/quiet"));
  assert.equal(brief.stats.idle, 1);
  await closed; // closed by the pool after 30 ms unused
  assert.equal(brief.stats.idle, 0);
});

test("bounds: maxIdlePerKey per address, maxIdle in all (the oldest closed), idleMs 0 keeps nothing", async () => {
  const origin = await startOrigin((socket) => socket.write(NO_CONTENT));
  const pool = new OriginPool({ ...POOL, maxIdlePerKey: 2, maxIdle: 3 });
  const fetcher = fetcherWith(pool);
  await Promise.all([1, 2, 3, 4].map((n) => get(fetcher, origin.url(`/${n}`))));
  assert.equal(origin.connections, 4, "four at once need four connections");
  assert.equal(pool.stats.idle, 2, "two kept for 127.0.0.1");
  const other = await startOrigin((socket) => socket.write(NO_CONTENT));
  await Promise.all([1, 2].map((n) => get(fetcher, other.url(`/${n}`))));
  assert.equal(pool.stats.idle, 3, "maxIdle: the oldest of the first origin's went");
  pool.reconfigure({ ...POOL, maxIdlePerKey: 2, maxIdle: 1 });
  assert.equal(pool.stats.idle, 1, "a lower bound applies at once");
  pool.reconfigure({ ...POOL, idleMs: 0 });
  await get(fetcher, other.url("/after"));
  assert.equal(pool.stats.idle, 0, "idleMs 0: a connection per request");
  pool.close();
  assert.equal(pool.stats.idle, 0);
});

test("https: a connection is reused only by requests for the same certificate name, verified alike", async (t) => {
  const keys = testPki();
  if (keys === undefined) return t.skip("openssl not installed: apt-get install openssl");
  const origin = await startOrigin((socket) => socket.write(NO_CONTENT), keys);
  const pool = new OriginPool(POOL);
  const names = async (host: string): Promise<ResolvedAddress[]> =>
    host === "origin.test" || host === "other.test" ? [{ address: "127.0.0.1", family: 4 }] : [];
  const fetcher = fetcherWith(pool, { ca: keys.ca, lookup: names });
  // other.test is not on the certificate: accepted only unverified (insecure=1).
  assert.equal((await get(fetcher, origin.url("/", "other.test"), { insecure: true })).status, 204);
  assert.equal((await get(fetcher, origin.url("/", "origin.test"))).status, 204);
  const wrongName = await get(fetcher, origin.url("/", "other.test")).catch((e: unknown) => e);
  assert.ok(wrongName instanceof HeadwireError);
  assert.equal(wrongName.code, "TLS_FAILURE", "neither kept connection stood in for the check");
  assert.equal((await get(fetcher, origin.url("/", "origin.test"))).status, 204);
  assert.equal(origin.connections, 3);
  assert.equal(pool.stats.reused, 1, "origin.test's verified connection, by origin.test");
  pool.close();
});
