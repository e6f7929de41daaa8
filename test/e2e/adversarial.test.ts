/**
 * Adversarial end-to-end tests: a real server on loopback, fed what hostile or broken peers send.
 * Property-based (fast-check) with a fixed seed shown in each test's name; set HEADWIRE_FUZZ_SEED to
 * replay another run. What must hold whatever the input:
 *
 * - control channel: the server never crashes, every line it sends is a valid server message, and a
 *   well-behaved client is served byte-exact afterwards;
 * - data channel: nothing is ever sent without a live token from its session's address, never more
 *   than the ticket's budget, and exactly the chunks the protocol allows;
 * - resources: abandoned sessions are forgotten (sessionCount), the server keeps serving.
 */
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { createSocket, type Socket as UdpSocket } from "node:dgram";
import { once } from "node:events";
import { connect, type Socket } from "node:net";
import { join } from "node:path";
import { test } from "node:test";
import { crc32 } from "node:zlib";
import fc from "fast-check";
import { HeadwireClient } from "../../src/client/headwire-client.js";
import { parseServerMessage, type Ticket } from "../../src/protocol/control.js";
import {
  CHUNK_OVERHEAD_BYTES,
  type ChunkRange,
  CRC_BYTES,
  decodeDatagram,
  deliveryBudgetBytes,
  encodeChunk,
  encodeRequest,
  MAX_CHUNKS_PER_REQUEST,
  MAX_RANGE_CHUNKS,
  MAX_RANGES_PER_REQUEST,
  TOKEN_BYTES,
} from "../../src/protocol/datagram.js";
import type { HeadwireServer } from "../../src/server/headwire-server.js";
import { CraftedOrigin } from "../../src/demo/crafted-origin.js";
import { RawSession, startServer, tempDir } from "../helpers.js";

/**
 * Set HEADWIRE_FUZZ_SEED=n to fuzz with another seed; a failure prints the seed and the failing
 * run's path, and HEADWIRE_FUZZ_SEED=n HEADWIRE_FUZZ_PATH=p replays that one run (pick the test
 * with `node --test --test-name-pattern=<name> dist/test/e2e/adversarial.test.js`).
 */
const SEED = parseSeed(process.env.HEADWIRE_FUZZ_SEED) ?? 20260517;
const PATH = process.env.HEADWIRE_FUZZ_PATH?.trim() || undefined;
const REPLAY = `seed ${SEED}, replay with HEADWIRE_FUZZ_SEED=${SEED}`;

function parseSeed(text: string | undefined): number | undefined {
  if (text === undefined || text.trim() === "") return undefined;
  const seed = Number(text);
  if (!Number.isSafeInteger(seed)) throw new Error(`HEADWIRE_FUZZ_SEED must be an integer, not ${text}`);
  return seed;
}

/**
 * A fuzz test's own timeout. Each property has a time budget well inside it: a slow or loaded
 * machine makes fewer runs (the same first runs, as the seed is fixed) instead of timing out.
 */
const FUZZ_TEST_TIMEOUT_MS = 60_000;
/** Tests without a property: their waits are guarded by WAIT_GUARD_MS, their whole by this. */
const TEST_TIMEOUT_MS = 30_000;
/** How long a wait for something the server does on its own may take before the test fails. */
const WAIT_GUARD_MS = 20_000;

interface FuzzOutcome {
  /** Runs made; fewer than asked when the time budget ran out first. */
  runs: number;
  interrupted: boolean;
}

/**
 * Checks a property with a fixed seed, no shrinking (each run costs sockets) and a time budget
 * (runs stop being started after `budgetMs`). A failure throws the failing run's own error, its
 * message ended with the run, the seed and path that replay it, and the input that failed.
 */
async function fuzz<Ts>(
  property: fc.IAsyncPropertyWithHooks<Ts>,
  { numRuns, budgetMs }: { numRuns: number; budgetMs: number },
): Promise<FuzzOutcome> {
  const details = await fc.check(property, {
    seed: SEED,
    ...(PATH === undefined ? {} : { path: PATH }),
    numRuns,
    endOnFailure: true,
    interruptAfterTimeLimit: budgetMs,
  });
  if (details.failed) {
    const replay =
      `fuzz run ${details.numRuns} failed; replay it with ` +
      `HEADWIRE_FUZZ_SEED=${details.seed} HEADWIRE_FUZZ_PATH=${details.counterexamplePath ?? ""}`;
    const input = truncate(fc.stringify(details.counterexample), 2000);
    const error = details.errorInstance;
    if (error instanceof Error) {
      // The error itself, so the runner shows its assertion (actual, expected) and its stack.
      error.message = `${error.message}\n${replay}\ninput: ${input}`;
      throw error;
    }
    throw new Error(`${String(error)}\n${replay}\ninput: ${input}`);
  }
  return { runs: details.numRuns, interrupted: details.interrupted };
}

function truncate(text: string, max: number): string {
  return text.length > max ? `${text.slice(0, max)}… (${text.length} characters)` : text;
}

/**
 * A check that the generators reached every case is about all the runs asked for: it is made when
 * they were all made, and only reported when the time budget cut them short.
 */
function checkCoverage(t: { diagnostic: (message: string) => void }, outcome: FuzzOutcome, check: () => void): void {
  if (!outcome.interrupted) return check();
  t.diagnostic(`time budget reached after ${outcome.runs} runs: the coverage of the generators was not checked`);
}

type Hooks = Parameters<typeof tempDir>[0];

/** For servers whose clients abandon queries in flight: a short grace keeps shutdown quick. */
const SHORT_SHUTDOWN_GRACE_MS = 300;

// ---- origin and expectations ----

/** A header of about `bytes` bytes, several UDP chunks long when bytes > 1160. */
function paddedHeader(tag: string, bytes: number): string {
  const head = `HTTP/1.1 200 OK\r\nX-Tag: ${tag}\r\nCache-Control: max-age=600\r\n`;
  const filler = Math.max(0, bytes - head.length - "X-Pad: \r\n\r\n".length);
  return `${head}X-Pad: ${"p".repeat(filler)}\r\n\r\n`;
}

const HEADERS: Record<string, Buffer> = {
  "/small": Buffer.from(
    "HTTP/1.1 301 Moved Permanently\r\nLocation: https://example.com/\r\nContent-Length: 0\r\n\r\n",
  ),
  "/multi": Buffer.from(paddedHeader("multi", 2900)), // 3 chunks
  // Bare LF line ends and a non-ASCII byte: delivered byte for byte.
  "/legacy": Buffer.concat([Buffer.from("HTTP/1.0 200 OK\nX-Note: caf"), Buffer.from([0xe9]), Buffer.from("\n\n")]),
};
const PATHS = Object.keys(HEADERS);

async function startOrigin(t: Hooks): Promise<CraftedOrigin> {
  const origin = await CraftedOrigin.start(
    Object.fromEntries(Object.entries(HEADERS).map(([path, header]) => [path, { header }])),
  );
  t.after(() => origin.close());
  return origin;
}

function sha256(bytes: Buffer): string {
  return createHash("sha256").update(bytes).digest("hex");
}

/**
 * Waits for a condition the server reaches on its own; fails after `ms`. The server emits no event
 * for its session count or its datagram counters, so this polls them, on a timer so that the
 * server's own I/O runs in between; it returns as soon as the condition holds.
 */
async function waitUntil(condition: () => boolean, what: () => string, ms = WAIT_GUARD_MS): Promise<void> {
  const deadline = performance.now() + ms;
  while (!condition()) {
    if (performance.now() > deadline) throw new Error(`not reached in ${ms} ms: ${what()}`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

/** Resolves when `promise` does, or rejects after `ms`. */
async function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: not done within ${ms} ms`)), ms);
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** A well-behaved client, after the abuse: a fresh session gets a correct ticket and the exact header. */
async function assertStillServes(server: HeadwireServer, origin: CraftedOrigin, dir: string): Promise<void> {
  const client = await HeadwireClient.connect({ serverPort: server.controlPort, outDir: join(dir, "out") });
  try {
    for (const path of PATHS) {
      const result = await client.query({ url: `127.0.0.1:${origin.port}${path}`, write: false });
      assert.equal(result.error, undefined, `${path}: ${JSON.stringify(result.error)}`);
      assert.deepEqual(result.header, HEADERS[path], `${path} is delivered byte-exact`);
      assert.equal(result.bytes, HEADERS[path]!.length);
    }
    await client.terminate();
  } finally {
    client.destroy();
  }
}

// ---- a raw TCP peer that records every byte the server sends ----

class RecordingPeer {
  private readonly received: Buffer[] = [];
  socketError: string | undefined;
  readonly closed: Promise<void>;

  private constructor(readonly socket: Socket) {
    socket.setNoDelay(true); // many tiny writes stay many tiny segments
    socket.on("data", (chunk: Buffer) => this.received.push(chunk));
    socket.on("error", (error: NodeJS.ErrnoException) => (this.socketError = error.code ?? error.message));
    this.closed = once(socket, "close").then(() => {});
  }

  static async open(port: number): Promise<RecordingPeer> {
    const socket = connect({ port, host: "127.0.0.1" });
    const peer = new RecordingPeer(socket);
    await once(socket, "connect");
    return peer;
  }

  /** Writes, ignoring a connection the server has already closed (it may have said BYE). */
  write(bytes: Buffer | string): void {
    if (!this.socket.destroyed && this.socket.writable) this.socket.write(bytes);
  }

  /** Complete lines received so far (LF-terminated), as raw bytes without the LF. */
  lines(): Buffer[] {
    const all = Buffer.concat(this.received);
    const lines: Buffer[] = [];
    let start = 0;
    for (let lf = all.indexOf(0x0a); lf !== -1; lf = all.indexOf(0x0a, start)) {
      lines.push(all.subarray(start, lf));
      start = lf + 1;
    }
    return lines;
  }
}

const utf8 = new TextDecoder("utf-8", { fatal: true });

/** Every line is UTF-8 and parses as a server message; the first is the greeting. */
function assertValidReplies(lines: Buffer[], label: string): string[] {
  const texts = lines.map((line) => {
    let text: string;
    try {
      text = utf8.decode(line);
    } catch {
      assert.fail(`${label}: a reply line is not UTF-8: ${line.toString("hex").slice(0, 200)}`);
    }
    assert.doesNotThrow(() => parseServerMessage(text), `${label}: not a server message: ${JSON.stringify(text)}`);
    return text;
  });
  if (texts.length > 0) assert.equal(parseServerMessage(texts[0]!).kind, "greeting", `${label}: greeting first`);
  return texts;
}

// ---- 1. control channel fuzz ----

const MAX_LINE_BYTES = 512;
const MAX_QUEUED = 8;

interface Piece {
  bytes: Buffer;
  /** Write it one byte at a time. */
  tiny: boolean;
}

type Ending = "terminate" | "half-close" | "destroy";

interface SessionScript {
  pieces: Piece[];
  ending: Ending;
}

function controlPieces(originPort: number): fc.Arbitrary<Piece> {
  const base = `127.0.0.1:${originPort}`;
  const url = fc.oneof(
    { weight: 4, arbitrary: fc.constantFrom(...PATHS.map((p) => `${base}${p}`), `http://${base}/nowhere`) },
    {
      weight: 3,
      arbitrary: fc.constantFrom(
        "127.0.0.1:1/", // refused at once
        "ftp://example.com/",
        "http://[::1/",
        `http://user:pw@${base}/small`,
        "http://a..b/",
        "127.0.0.1:0/",
        "javascript:alert(1)",
        "//",
        `HTTP://127.0.0.1:${originPort}/small#frag`,
      ),
    },
    { weight: 2, arbitrary: fc.string({ maxLength: 30 }) },
    { weight: 1, arbitrary: fc.string({ unit: "binary", maxLength: 20 }) },
  );
  const option = fc.constantFrom(
    "method=HEAD",
    "method=GET",
    "method=POST",
    "redirects=3",
    "redirects=21",
    "redirects=-1",
    "chain=last",
    "chain=all",
    "bogus",
    "=",
    "method=",
  );
  const separator = fc.constantFrom(" ", "\t", "  ", " \t ");
  const lineEnd = fc.constantFrom("\n", "\r\n", "\r", "", "\n\n", "\r\r\n", "\n\r");
  const command = fc.oneof(
    { weight: 6, arbitrary: fc.constantFrom("QUERY", "query", "Query", "qUeRy") },
    { weight: 2, arbitrary: fc.constantFrom("PING", "ping", "AUTH", "PURGE", "BYE", "TICKET", "HEADWIRE/2") },
    { weight: 1, arbitrary: fc.constant("TERMINATE") },
    { weight: 1, arbitrary: fc.string({ maxLength: 12 }) },
  );
  const commandLine = fc
    .tuple(command, separator, url, fc.array(fc.tuple(separator, option), { maxLength: 3 }), lineEnd)
    .map(([cmd, sep, u, opts, end]) => `${cmd}${sep}${u}${opts.map(([s, o]) => `${s}${o}`).join("")}${end}`)
    .map((text) => Buffer.from(text));
  const specials = fc.constantFrom(
    ...[
      "PING\0\n",
      "\0\0\0",
      "PI\rNG\n",
      "\r",
      "\r\r\r\n",
      "\x1b[31mPING\n",
      "\x7f\n",
      "\uFEFFPING\n",
      "\n",
      "\t\t\n",
      "PING \t\n",
    ].map((s) => Buffer.from(s)),
    Buffer.from([0xe2, 0x82]), // € cut after two of its three bytes
    Buffer.from([0xf0, 0x9f, 0x98]), // an emoji cut short
    Buffer.from([0xc0, 0x80, 0x0a]), // overlong NUL
    Buffer.from([0xed, 0xa0, 0x80, 0x0a]), // an encoded surrogate
    Buffer.from([0xf8, 0x88, 0x80, 0x80, 0x80, 0x0a]),
    Buffer.from([0xff, 0xfe, 0x0a]),
  );
  const randomBytes = fc.uint8Array({ maxLength: 300 }).map((bytes) => Buffer.from(bytes));
  // Arbitrary text, cut at any byte: partial UTF-8 in the middle of a character.
  const cutText = fc.tuple(fc.string({ unit: "binary", maxLength: 40 }), fc.nat(), lineEnd).map(([text, cut, end]) => {
    const bytes = Buffer.from(text);
    return Buffer.concat([bytes.subarray(0, cut % (bytes.length + 1)), Buffer.from(end)]);
  });
  // Around the line limit, and far past it, with or without an end.
  const hugeLine = fc
    .tuple(fc.integer({ min: MAX_LINE_BYTES - 3, max: MAX_LINE_BYTES * 40 }), fc.constantFrom("\n", "\r\n", ""))
    .map(([length, end]) => {
      const start = `QUERY http://${base}/small?`;
      return Buffer.from(`${start}${"a".repeat(Math.max(0, length - start.length))}${end}`);
    });
  // A pipelined burst of valid queries, within the queue limit.
  const flood = fc
    .array(fc.constantFrom(...PATHS), { minLength: 1, maxLength: MAX_QUEUED })
    .map((paths) => Buffer.from(paths.map((p) => `QUERY ${base}${p}\n`).join("")));
  // Thousands of one-byte writes.
  const drip = fc.integer({ min: 100, max: 600 }).map((n) => ({ bytes: Buffer.from("PING\n".repeat(n)), tiny: true }));
  const tinyFlag = fc.oneof({ weight: 4, arbitrary: fc.constant(false) }, { weight: 1, arbitrary: fc.constant(true) });
  const piece = (bytes: fc.Arbitrary<Buffer>) =>
    fc.tuple(bytes, tinyFlag).map(([b, tiny]) => ({ bytes: b, tiny: tiny && b.length <= 4096 }));
  return fc.oneof(
    { weight: 6, arbitrary: piece(commandLine) },
    { weight: 3, arbitrary: piece(randomBytes) },
    { weight: 3, arbitrary: piece(specials) },
    { weight: 2, arbitrary: piece(cutText) },
    { weight: 1, arbitrary: piece(hugeLine) },
    { weight: 1, arbitrary: piece(flood) },
    { weight: 1, arbitrary: drip },
  );
}

function sessionScripts(originPort: number): fc.Arbitrary<SessionScript[]> {
  const script = fc
    .tuple(
      fc.array(controlPieces(originPort), { minLength: 1, maxLength: 8 }),
      fc.constantFrom<Ending>("terminate", "half-close", "destroy"),
    )
    .map(([pieces, ending]) => ({ pieces, ending }));
  return fc.array(script, { minLength: 1, maxLength: 6 });
}

/** Plays one script and checks the replies it got. */
async function playSession(port: number, script: SessionScript, label: string, seen: Set<string>): Promise<void> {
  const peer = await RecordingPeer.open(port);
  try {
    for (const piece of script.pieces) {
      if (piece.tiny) for (let i = 0; i < piece.bytes.length; i++) peer.write(piece.bytes.subarray(i, i + 1));
      else peer.write(piece.bytes);
    }
    if (script.ending === "terminate") {
      // Ends whatever line was open (or being skipped), then asks to end: BYE comes last.
      peer.write("\nTERMINATE\n");
    } else if (script.ending === "half-close") {
      peer.socket.end();
    } else {
      peer.socket.destroy(); // abrupt, often mid-line
    }
    if (script.ending !== "destroy")
      await within(peer.closed, WAIT_GUARD_MS, `${label}: the server closes the session`);
  } finally {
    peer.socket.destroy();
  }
  const texts = assertValidReplies(peer.lines(), label);
  for (const text of texts) {
    const message = parseServerMessage(text);
    seen.add(message.kind === "error" ? message.code : message.kind);
  }
  if (script.ending === "terminate" && peer.socketError === undefined) {
    assert.equal(texts.at(-1), "BYE", `${label}: BYE is the last line after TERMINATE`);
  }
}

test(
  `control channel fuzz: garbage, floods, drips and abrupt ends never crash the server or break its replies (${REPLAY})`,
  {
    timeout: FUZZ_TEST_TIMEOUT_MS,
  },
  async (t) => {
    const dir = await tempDir(t);
    const origin = await startOrigin(t);
    const server = await startServer(
      dir,
      {
        maxLineBytes: MAX_LINE_BYTES,
        maxQueuedQueriesPerSession: MAX_QUEUED,
        // Random words are host names: keep DNS, connect and header waits short.
        connectTimeoutMs: 500,
        headerTimeoutMs: 1000,
        shutdownGraceMs: SHORT_SHUTDOWN_GRACE_MS,
      },
      t,
    );
    let run = 0;
    const seen = new Set<string>();
    const outcome = await fuzz(
      fc.asyncProperty(sessionScripts(origin.port), async (scripts) => {
        run++;
        await Promise.all(
          scripts.map((script, i) => playSession(server.controlPort, script, `run ${run} session ${i}`, seen)),
        );
      }),
      { numRuns: 100, budgetMs: 20_000 },
    );
    // The fuzz reached every kind of answer (a sanity check on the generators, over all the runs).
    const kinds = ["ticket", "pong", "bye", "LINE_TOO_LONG", "BAD_ENCODING", "UNKNOWN_COMMAND", "BAD_REQUEST"];
    checkCoverage(t, outcome, () => {
      for (const kind of kinds) assert.ok(seen.has(kind), `no ${kind} reply in ${run} runs: ${[...seen].join(", ")}`);
    });
    await waitUntil(
      () => server.sessionCount === 0,
      () => `sessionCount ${server.sessionCount} after every fuzzing session closed`,
    );
    await assertStillServes(server, origin, dir);
  },
);

test(
  `control channel: pipelined valid queries within maxQueuedQueriesPerSession all get the right TICKET, in order (${REPLAY})`,
  {
    timeout: FUZZ_TEST_TIMEOUT_MS,
  },
  async (t) => {
    const dir = await tempDir(t);
    const origin = await startOrigin(t);
    const server = await startServer(dir, { maxQueuedQueriesPerSession: MAX_QUEUED }, t);
    const query = fc.tuple(
      fc.constantFrom(...PATHS),
      fc.constantFrom("QUERY", "query", "Query"),
      fc.constantFrom("", " method=HEAD", "\tchain=last", " method=GET redirects=0"),
      fc.constantFrom("\n", "\r\n"),
    );
    await fuzz(
      fc.asyncProperty(
        fc.array(query, { minLength: 1, maxLength: MAX_QUEUED }),
        fc.boolean(),
        async (queries, tiny) => {
          const peer = await RecordingPeer.open(server.controlPort);
          try {
            const text = queries
              .map(([p, cmd, opts, end]) => `${cmd} 127.0.0.1:${origin.port}${p}${opts}${end}`)
              .join("");
            if (tiny) for (const char of text) peer.write(char);
            else peer.write(text);
            peer.write("TERMINATE\n");
            await within(peer.closed, WAIT_GUARD_MS, "the session ends after BYE");
            const texts = assertValidReplies(peer.lines(), "pipelined queries");
            assert.equal(
              texts.length,
              queries.length + 2,
              `greeting, ${queries.length} replies, BYE: ${texts.join(" | ")}`,
            );
            queries.forEach(([path], i) => {
              const message = parseServerMessage(texts[i + 1]!);
              assert.equal(message.kind, "ticket", texts[i + 1]);
              const ticket = (message as { ticket: Ticket }).ticket;
              const header = HEADERS[path]!;
              assert.equal(ticket.bytes, header.length);
              assert.equal(ticket.sha256.toString("hex"), sha256(header));
              assert.equal(ticket.udpPort, server.dataPort);
            });
            assert.equal(texts.at(-1), "BYE");
          } finally {
            peer.socket.destroy();
          }
        },
      ),
      { numRuns: 30, budgetMs: 10_000 },
    );
    await assertStillServes(server, origin, dir);
  },
);

// Replies to PING and to bad lines do not count against the queue of *queries*.
test(
  "control channel: PINGs and bad lines do not use up maxQueuedQueriesPerSession",
  {
    timeout: TEST_TIMEOUT_MS,
  },
  async (t) => {
    const dir = await tempDir(t);
    const origin = await startOrigin(t);
    const server = await startServer(dir, { maxQueuedQueriesPerSession: 4 }, t);
    const peer = await RecordingPeer.open(server.controlPort);
    t.after(() => peer.socket.destroy());
    // Four PINGs, one bad line, then one query: one query queued, the limit is four.
    peer.write(`PING\nPING\nPING\nPING\nBOGUS\nQUERY 127.0.0.1:${origin.port}/small\nTERMINATE\n`);
    await within(peer.closed, WAIT_GUARD_MS, "the session ends after BYE");
    const texts = assertValidReplies(peer.lines(), "pings then a query");
    assert.match(texts[6] ?? "", /^TICKET /, texts.join(" | "));
  },
);

// A client that half-closes still gets the replies it was promised.
test(
  "control channel: a client that half-closes after pipelining queries still gets every reply",
  {
    timeout: TEST_TIMEOUT_MS,
  },
  async (t) => {
    const dir = await tempDir(t);
    const origin = await startOrigin(t);
    origin.responseDelayMs = 50; // the reply comes after the client's FIN, as with any real origin
    const server = await startServer(dir, {}, t);
    const peer = await RecordingPeer.open(server.controlPort);
    t.after(() => peer.socket.destroy());
    peer.socket.end(`QUERY 127.0.0.1:${origin.port}/small\nPING\n`);
    await within(peer.closed, WAIT_GUARD_MS, "the session ends");
    const texts = assertValidReplies(peer.lines(), "half-closed session");
    assert.equal(texts.length, 3, texts.join(" | "));
    assert.match(texts[1] ?? "", /^TICKET /);
    assert.equal(texts[2], "PONG");
  },
);

// ---- 2. data channel fuzz ----

type TokenKind = "live" | "dead" | "expired" | "random";
type Sender = "owner" | "thief";

type DatagramSpec =
  | { kind: "raw"; bytes: Buffer; sealed: boolean }
  | { kind: "request"; token: TokenKind; ranges: ChunkRange[]; mutations: Array<[number, number]>; reseal: boolean }
  | { kind: "badRequest"; token: TokenKind; n: number; body: Buffer }
  | { kind: "padded"; token: TokenKind; extra: number }
  | { kind: "chunk"; token: TokenKind };

const u32 = fc.integer({ min: 0, max: 0xffff_ffff });
const firstIndex = fc.oneof(
  fc.integer({ min: 0, max: 4 }),
  fc.integer({ min: 0xffff_ffff - 70_000, max: 0xffff_ffff }), // near 2^32: first + count overflows u32
  u32,
);
const rangeCount = fc.oneof(
  fc.integer({ min: 1, max: 4 }),
  fc.constant(MAX_RANGE_CHUNKS),
  fc.integer({ min: 1, max: MAX_RANGE_CHUNKS }),
);
const range = fc.tuple(firstIndex, rangeCount).map(([first, count]) => ({ first, count }));
const tokenKind = fc.constantFrom<TokenKind>("live", "live", "live", "dead", "expired", "random");

const datagramSpec: fc.Arbitrary<DatagramSpec> = fc.oneof(
  fc.tuple(fc.uint8Array({ maxLength: 1400 }), fc.boolean()).map(([bytes, sealed]) => ({
    kind: "raw" as const,
    bytes: Buffer.from(bytes),
    sealed,
  })),
  fc
    .tuple(
      tokenKind,
      fc.oneof(
        fc.array(range, { minLength: 1, maxLength: 4 }),
        fc.array(range, { minLength: MAX_RANGES_PER_REQUEST - 2, maxLength: MAX_RANGES_PER_REQUEST }),
      ),
      fc.array(fc.tuple(fc.nat(), fc.integer({ min: 1, max: 255 })), { maxLength: 3 }),
      fc.boolean(),
    )
    .map(([token, ranges, mutations, reseal]) => ({ kind: "request" as const, token, ranges, mutations, reseal })),
  fc
    .tuple(
      tokenKind,
      fc.oneof(
        fc.constant(0),
        fc.integer({ min: MAX_RANGES_PER_REQUEST + 1, max: 0xffff }),
        fc.integer({ min: 1, max: 3 }),
      ),
      fc.uint8Array({ maxLength: 60 }),
    )
    .map(([token, n, body]) => ({ kind: "badRequest" as const, token, n, body: Buffer.from(body) })),
  fc
    .tuple(tokenKind, fc.oneof(fc.integer({ min: 1, max: 8 }), fc.integer({ min: 1200, max: 1400 })))
    .map(([token, extra]) => ({ kind: "padded" as const, token, extra })),
  tokenKind.map((token) => ({ kind: "chunk" as const, token })),
);

function reseal(buf: Buffer): Buffer {
  if (buf.length < CRC_BYTES) return buf;
  const end = buf.length - CRC_BYTES;
  buf.writeUInt32BE(crc32(buf.subarray(0, end)), end);
  return buf;
}

function materialize(spec: DatagramSpec, tokens: Record<Exclude<TokenKind, "random">, Buffer>, random: Buffer): Buffer {
  if (spec.kind === "raw") {
    const bytes = Buffer.from(spec.bytes);
    if (!spec.sealed || bytes.length < 26) return bytes;
    // Magic, version and type right, then the rest: reaches the decoder's later checks.
    bytes.writeUInt16BE(0x4857, 0);
    bytes.writeUInt8(1, 2);
    bytes.writeUInt8(1, 3);
    return reseal(bytes);
  }
  const token = spec.token === "random" ? random : tokens[spec.token];
  if (spec.kind === "request") {
    const buf = encodeRequest(token, spec.ranges);
    for (const [at, xor] of spec.mutations) buf.writeUInt8(buf.readUInt8(at % buf.length) ^ xor, at % buf.length);
    return spec.reseal ? reseal(buf) : buf;
  }
  if (spec.kind === "badRequest") {
    // A request whose range count disagrees with its length (or is 0, or over 64), well sealed.
    const buf = Buffer.alloc(22 + spec.body.length + CRC_BYTES);
    buf.writeUInt16BE(0x4857, 0);
    buf.writeUInt8(1, 2);
    buf.writeUInt8(1, 3);
    token.copy(buf, 4);
    buf.writeUInt16BE(spec.n, 20);
    spec.body.copy(buf, 22);
    return reseal(buf);
  }
  if (spec.kind === "padded") {
    const valid = encodeRequest(token, [{ first: 0, count: 1 }]);
    return reseal(Buffer.concat([valid, Buffer.alloc(spec.extra, 0x41)]));
  }
  return encodeChunk({ token, index: 0, count: 1, total: 4, offset: 0, payload: Buffer.from("HTTP") });
}

/**
 * What the server may send for the live ticket, by docs/protocol.md: the chunks asked for by
 * well-formed REQUESTs from the owner's address, in order, at most 64 a request, until the budget.
 */
function expectedChunks(
  datagrams: Buffer[],
  ticket: { live: Buffer; header: Buffer; chunks: number; budget: number; maxDatagramBytes: number },
): number {
  const { live, header, chunks, budget, maxDatagramBytes } = ticket;
  const payload = maxDatagramBytes - CHUNK_OVERHEAD_BYTES;
  let spent = 0;
  let sent = 0;
  for (const buf of datagrams) {
    const datagram = buf.length <= maxDatagramBytes ? decodeDatagram(buf) : null;
    if (datagram?.type !== "request" || !datagram.token.equals(live)) continue;
    let allowance = MAX_CHUNKS_PER_REQUEST;
    request: for (const { first, count } of datagram.ranges) {
      for (let index = first; index < Math.min(first + count, chunks) && allowance > 0; index++, allowance--) {
        const size = CHUNK_OVERHEAD_BYTES + Math.min(payload, header.length - index * payload);
        if (spent + size > budget) break request;
        spent += size;
        sent++;
      }
    }
  }
  return sent;
}

async function udpSocket(address: string): Promise<{ socket: UdpSocket; inbox: Buffer[] }> {
  const socket = createSocket("udp4");
  const inbox: Buffer[] = [];
  socket.on("message", (message: Buffer) => inbox.push(message));
  socket.bind(0, address);
  await once(socket, "listening");
  return { socket, inbox };
}

async function ticketFor(session: RawSession, url: string): Promise<Ticket> {
  session.send(`QUERY ${url}\n`);
  const line = (await session.next()) ?? "(closed)";
  const message = parseServerMessage(line);
  assert.equal(message.kind, "ticket", line);
  return (message as { ticket: Ticket }).ticket;
}

function handled(server: HeadwireServer): number {
  const s = server.stats().data!;
  const d = s.dropped;
  // Each datagram lands in exactly one of these (overBudget is counted on top of requests).
  return s.requests + d.malformed + d.oversized + d.notRequest + d.unknownToken + d.foreignAddress;
}

test(
  `data channel fuzz: no reply without a live token from its session's address, never over budget (${REPLAY})`,
  {
    timeout: FUZZ_TEST_TIMEOUT_MS,
  },
  async (t) => {
    const dir = await tempDir(t);
    const origin = await startOrigin(t);
    let now = Date.now();
    const server = await startServer(dir, { ticketTtlMs: 5000, now: () => now }, t);
    const base = `127.0.0.1:${origin.port}`;
    const owner = await RawSession.open(server.controlPort);
    t.after(() => owner.close());
    await owner.next();
    // An expired token, and a dead one (its session has closed).
    const expired = (await ticketFor(owner, `${base}/multi`)).token;
    now += 5001;
    const other = await RawSession.open(server.controlPort);
    await other.next();
    const dead = (await ticketFor(other, `${base}/multi`)).token;
    other.close();
    await waitUntil(
      () => server.sessionCount === 1,
      () => `sessionCount ${server.sessionCount}`,
    );

    const outcome = await fuzz(
      fc.asyncProperty(
        fc.constantFrom("/multi", "/small"),
        fc.array(fc.tuple(datagramSpec, fc.constantFrom<Sender>("owner", "owner", "thief")), {
          minLength: 1,
          maxLength: 40,
        }),
        fc.uint8Array({ minLength: TOKEN_BYTES, maxLength: TOKEN_BYTES }),
        async (path, specs, randomToken) => {
          const ticket = await ticketFor(owner, `${base}${path}`);
          const header = HEADERS[path]!;
          const budget = deliveryBudgetBytes(header.length, ticket.chunks, server.config.retransmitBudget);
          const mine = await udpSocket("127.0.0.1");
          const thief = await udpSocket("127.0.0.2"); // another loopback address: not the session's
          try {
            const tokens = { live: ticket.token, dead, expired };
            const sent = specs.map(([spec, from]) => ({
              from,
              buf: materialize(spec, tokens, Buffer.from(randomToken)),
            }));
            const before = { handled: handled(server), chunks: server.stats().data!.chunksSent };
            for (const { from, buf } of sent)
              (from === "owner" ? mine : thief).socket.send(buf, ticket.udpPort, "127.0.0.1");
            await waitUntil(
              () => handled(server) - before.handled === sent.length,
              () => `${handled(server) - before.handled} of ${sent.length} datagrams handled`,
            );
            // Handling is synchronous: the count of chunks sent is final; wait for them to arrive.
            const chunksSent = server.stats().data!.chunksSent - before.chunks;
            await waitUntil(
              () => mine.inbox.length >= chunksSent,
              () => `${mine.inbox.length} of ${chunksSent} chunks arrived`,
            );
            const fromOwner = sent.filter((s) => s.from === "owner").map((s) => s.buf);
            const { maxDatagramBytes } = server.config;
            const live = { live: ticket.token, header, chunks: ticket.chunks, budget, maxDatagramBytes };
            assert.equal(chunksSent, expectedChunks(fromOwner, live), "exactly the chunks the protocol allows");
            assert.equal(mine.inbox.length, chunksSent, "every chunk sent went to the owner's port");
            assert.equal(thief.inbox.length, 0, "nothing to another address");
            let bytes = 0;
            for (const d of mine.inbox) {
              assert.ok(d.length <= server.config.maxDatagramBytes);
              const chunk = decodeDatagram(d);
              assert.equal(chunk?.type, "chunk");
              if (chunk?.type !== "chunk") continue;
              assert.ok(chunk.token.equals(ticket.token), "only the live ticket's chunks");
              assert.ok(chunk.index < ticket.chunks);
              assert.equal(chunk.count, ticket.chunks);
              assert.equal(chunk.total, header.length);
              assert.deepEqual(chunk.payload, header.subarray(chunk.offset, chunk.offset + chunk.payload.length));
              bytes += d.length;
            }
            assert.ok(bytes <= budget, `${bytes} bytes sent for a budget of ${budget}`);
          } finally {
            mine.socket.close();
            thief.socket.close();
          }
        },
      ),
      { numRuns: 200, budgetMs: 15_000 },
    );
    // The fuzz reached every way of being dropped (over all the runs), and some chunks were sent.
    const stats = server.stats().data!;
    assert.ok(stats.chunksSent > 0, "some chunks were sent");
    // No socket sends from port 0, and a bug cannot be fuzzed on purpose: those two reasons are
    // covered by test/server/data-server.test.ts (and port 0 by test/e2e/server-survives.test.ts).
    const unreachable = new Set(["unsendable", "internalError"]);
    checkCoverage(t, outcome, () => {
      for (const [reason, count] of Object.entries(stats.dropped)) {
        if (!unreachable.has(reason)) assert.ok(count > 0, `nothing dropped as ${reason}`);
      }
    });
    await assertStillServes(server, origin, dir);
    // Its tickets die with the session, so stop() has no delivery to wait for.
    owner.close();
    await waitUntil(
      () => server.sessionCount === 0,
      () => `sessionCount ${server.sessionCount}`,
    );
  },
);

// ---- 3. resource bounds ----

test(
  "abandoned, silent and half-closed sessions are all forgotten, and the server keeps serving",
  {
    timeout: TEST_TIMEOUT_MS,
  },
  async (t) => {
    const dir = await tempDir(t);
    const origin = await startOrigin(t);
    const slow = await CraftedOrigin.start({ "/slow": { header: "HTTP/1.1 200 OK\r\nX-Slow: 1\r\n\r\n" } });
    t.after(() => slow.close());
    slow.responseDelayMs = 200; // queries are still in flight when their sessions go
    const server = await startServer(dir, { shutdownGraceMs: SHORT_SHUTDOWN_GRACE_MS }, t);
    const port = server.controlPort;

    // A session that connects and never says anything.
    const silent = await RecordingPeer.open(port);
    t.after(() => silent.socket.destroy());
    await waitUntil(
      () => silent.lines().length === 1,
      () => "greeting",
    );

    const slowUrl = `127.0.0.1:${slow.port}/slow`;
    const abandoned = await Promise.all(
      Array.from({ length: 60 }, async (_, i) => {
        const peer = await RecordingPeer.open(port);
        const kind = i % 4;
        if (kind === 0) {
          peer.write(`QUERY ${slowUrl}\n`); // then gone before the reply
          peer.socket.destroy();
        } else if (kind === 1) {
          peer.write(`QUERY ${slowUrl}\nQUERY ${slowUrl}?x\nQUERY 127.0.0.1:${origin.port}/sm`); // mid-line
          peer.socket.destroy();
        } else if (kind === 2) {
          peer.socket.end(`QUERY ${slowUrl}\n`); // half-closed
        } else {
          peer.socket.resetAndDestroy(); // RST
        }
        return peer;
      }),
    );
    // Only the silent session is left.
    await waitUntil(
      () => server.sessionCount === 1,
      () => `sessionCount ${server.sessionCount}, 1 live session`,
    );
    for (const [i, peer] of abandoned.entries()) assertValidReplies(peer.lines(), `abandoned session ${i}`);

    // The in-flight fetches finish; nothing is left behind and the server still answers.
    await waitUntil(
      () => (slow.requests.get("/slow") ?? 0) >= 1 && server.stats().originFetches >= 1,
      () => "the slow origin was asked",
    );
    const client = await HeadwireClient.connect({ serverPort: port, outDir: join(dir, "out") });
    t.after(() => client.destroy());
    const result = await client.query({ url: slowUrl, write: false });
    assert.equal(result.error, undefined, JSON.stringify(result.error));
    assert.deepEqual(result.header, Buffer.from("HTTP/1.1 200 OK\r\nX-Slow: 1\r\n\r\n"));
    assert.equal(server.sessionCount, 2, "the silent session and this client");
    await client.terminate();
    await waitUntil(
      () => server.sessionCount === 1,
      () => `sessionCount ${server.sessionCount} after TERMINATE`,
    );

    // The silent session is still alive and answered.
    silent.write("PING\n");
    await waitUntil(
      () => silent.lines().length === 2,
      () => "PONG",
    );
    assert.deepEqual(assertValidReplies(silent.lines(), "silent session"), [silent.lines()[0]!.toString(), "PONG"]);
    silent.socket.destroy();
    await waitUntil(
      () => server.sessionCount === 0,
      () => `sessionCount ${server.sessionCount} after the last session`,
    );
    await assertStillServes(server, origin, dir);
  },
);

test(
  `many sessions opened and abandoned mid-query, in waves: sessionCount returns to the live ones (${REPLAY})`,
  {
    timeout: FUZZ_TEST_TIMEOUT_MS,
  },
  async (t) => {
    const dir = await tempDir(t);
    const origin = await startOrigin(t);
    origin.responseDelayMs = 20;
    const server = await startServer(dir, { shutdownGraceMs: SHORT_SHUTDOWN_GRACE_MS }, t);
    const port = server.controlPort;
    const keepers: RecordingPeer[] = [];
    t.after(() => keepers.forEach((peer) => peer.socket.destroy()));
    const wave = fc.array(
      fc.tuple(
        fc.constantFrom("destroy", "reset", "half-close", "keep"),
        fc.constantFrom(...PATHS),
        fc.integer({ min: 0, max: 60 }),
      ),
      { minLength: 1, maxLength: 25 },
    );
    await fuzz(
      fc.asyncProperty(wave, async (peers) => {
        await Promise.all(
          peers.map(async ([how, path, cut]) => {
            const peer = await RecordingPeer.open(port);
            const line = `QUERY 127.0.0.1:${origin.port}${path}?${cut}\n`;
            peer.write(line.slice(0, Math.min(cut, line.length)));
            if (how === "keep") keepers.push(peer);
            else if (how === "destroy") peer.socket.destroy();
            else if (how === "reset") peer.socket.resetAndDestroy();
            else peer.socket.end();
          }),
        );
        await waitUntil(
          () => server.sessionCount === keepers.length,
          () => `sessionCount ${server.sessionCount}, ${keepers.length} live sessions`,
        );
      }),
      { numRuns: 15, budgetMs: 10_000 },
    );
    // The kept sessions are served, whatever they had half-written: end the line, then PING.
    await Promise.all(
      keepers.map(async (peer, i) => {
        peer.write("\nPING\n");
        await waitUntil(
          () => peer.lines().at(-1)?.toString() === "PONG",
          () => `kept session ${i}: ${peer.lines().map(String).join(" | ")}`,
        );
        assertValidReplies(peer.lines(), `kept session ${i}`);
        peer.socket.destroy();
      }),
    );
    await waitUntil(
      () => server.sessionCount === 0,
      () => `sessionCount ${server.sessionCount}`,
    );
    await assertStillServes(server, origin, dir);
  },
);

// A query answered after its session closed issues no ticket.
const STOP_GRACE_MS = 8000;
test(
  "a query whose session closed before the answer leaves no ticket: stop() has nothing to wait for",
  {
    timeout: TEST_TIMEOUT_MS,
  },
  async (t) => {
    const dir = await tempDir(t);
    const origin = await startOrigin(t);
    origin.responseDelayMs = 100;
    // A frozen ticket clock: a ticket left behind would count as pending (issued "just now") for
    // the whole grace, so a wrong stop() takes STOP_GRACE_MS, a right one a few milliseconds.
    const frozen = Date.now();
    const server = await startServer(dir, { shutdownGraceMs: STOP_GRACE_MS, now: () => frozen }, t);
    const peer = await RecordingPeer.open(server.controlPort);
    peer.write(`QUERY 127.0.0.1:${origin.port}/small\n`);
    await waitUntil(
      () => origin.requests.get("/small") === 1,
      () => "the origin was asked",
    );
    peer.socket.destroy(); // gone before the answer
    await waitUntil(
      () => server.sessionCount === 0,
      () => `sessionCount ${server.sessionCount}`,
    );
    // Another client asks for the same URL: its answer comes after the abandoned one's. It collects
    // its header in full and ends: no session is left and no ticket is owed to anyone.
    const client = await HeadwireClient.connect({ serverPort: server.controlPort, outDir: join(dir, "out") });
    const result = await client.query({ url: `127.0.0.1:${origin.port}/small`, write: false });
    assert.deepEqual(result.header, HEADERS["/small"]);
    await client.terminate();
    await waitUntil(
      () => server.sessionCount === 0,
      () => `sessionCount ${server.sessionCount}`,
    );
    const started = performance.now();
    await server.stop();
    const took = performance.now() - started;
    assert.ok(
      took < STOP_GRACE_MS / 2,
      `stop() took ${Math.round(took)} ms (grace ${STOP_GRACE_MS} ms) with no session and nothing to deliver`,
    );
  },
);
