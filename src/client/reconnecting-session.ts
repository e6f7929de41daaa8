/**
 * A session that outlives its connection, for a client that asks one URL at a time (the prompt,
 * a pipe, URL arguments): after IDLE_TIMEOUT, SHUTTING_DOWN, a lost connection or a reply
 * timeout it connects again (reconnectAttempts, with a doubling wait from reconnectBackoffMs),
 * says each attempt, and asks the query in flight again. While it waits for its user it sends
 * PING, so a server's idle timeout does not end it in the first place.
 */
import { HeadwireError, toHeadwireError } from "../errors.js";
import { seconds } from "./control-connection.js";
import type { HeadwireClient, QueryRequest, QueryResult } from "./headwire-client.js";

/** How a session may end without the fault of the query in flight: each is worth a new session. */
export const SESSION_ENDINGS: ReadonlySet<string> = new Set([
  "CONNECTION_LOST",
  "IDLE_TIMEOUT",
  "SHUTTING_DOWN",
  "REPLY_TIMEOUT",
]);
/** The longest wait between two attempts to connect again (unless reconnectBackoffMs is longer). */
export const RECONNECT_WAIT_CAP_MS = 5000;
/** A server's idle timeout is split in this many PING intervals: two PINGs may be late, not three. */
const PINGS_PER_IDLE_TIMEOUT = 3;
/** However short a server's idle timeout, no PING more often than this. */
const MIN_PING_INTERVAL_MS = 50;

export interface ReconnectingSessionOptions {
  connect: () => Promise<HeadwireClient>;
  /** Told each step on the way back (`* connection lost (…); connecting again in 0.2 s (attempt 1 of 8)`). */
  notice: (text: string) => void;
  /** Send PING while no query is asked (a prompt, a pipe): the server's idle timeout never runs out. */
  keepAlive?: boolean;
}

/** The wait before attempt `attempt` (1-based): the back-off, doubled each time, capped. */
export function reconnectWaitMs(attempt: number, backoffMs: number): number {
  return Math.min(Math.max(RECONNECT_WAIT_CAP_MS, backoffMs), backoffMs * 2 ** (attempt - 1));
}

/** What happened, in the words of a notice. */
export function lossPhrase(lost: HeadwireError): string {
  switch (lost.code) {
    case "SHUTTING_DOWN":
      return "connection lost (the server is shutting down or restarting)";
    case "IDLE_TIMEOUT":
      return "the server closed the session as idle (IDLE_TIMEOUT)";
    case "REPLY_TIMEOUT":
      return "the session was closed after a reply timeout";
    default:
      return `connection lost (${lost.message})`;
  }
}

export class ReconnectingSession {
  private client: HeadwireClient;
  /** When the current client's session was seen to end, for the first wait. */
  private lostAtMs: number | undefined;
  /** Why the last session ended, once it has (the client's own reason, or SHUTTING_DOWN answered to a query). */
  private lost: HeadwireError | undefined;
  private asking = false;
  private lastLineAtMs = performance.now();
  private keepAliveTimer: NodeJS.Timeout | undefined;

  private constructor(
    client: HeadwireClient,
    private readonly options: ReconnectingSessionOptions,
  ) {
    this.client = client;
    this.watch(client);
  }

  /** The first session: its failure is the caller's (exit 3), as there is nothing to resume. */
  static async start(options: ReconnectingSessionOptions): Promise<ReconnectingSession> {
    return new ReconnectingSession(await options.connect(), options);
  }

  get serverName(): string {
    return this.client.serverName;
  }

  get config(): HeadwireClient["config"] {
    return this.client.config;
  }

  /** The PING interval: a third of the server's idle timeout, if it said, else keepAliveMs (the shorter). */
  get keepAliveMs(): number {
    const told = this.client.idleTimeoutMs;
    const fromServer = told === undefined ? Infinity : Math.floor(told / PINGS_PER_IDLE_TIMEOUT);
    return Math.max(MIN_PING_INTERVAL_MS, Math.min(this.client.config.keepAliveMs, fromServer));
  }

  /**
   * One query, on a new session if the last one ended. A session that ends under the query
   * (or a server that answers it SHUTTING_DOWN) gets it asked again on the next; a reply timeout
   * is the query's failure (returned), and the next query connects again. Throws when every
   * attempt to connect again failed.
   */
  async query(request: QueryRequest): Promise<QueryResult> {
    this.asking = true;
    try {
      for (let asked = 0; ; asked++) {
        const client = await this.current();
        let ended: HeadwireError;
        try {
          const result = await client.query(request);
          if (result.error?.code !== "SHUTTING_DOWN") return result;
          ended = new HeadwireError("SHUTTING_DOWN", result.error.message);
        } catch (error) {
          ended = toHeadwireError(error, "CONNECTION_LOST");
          if (!SESSION_ENDINGS.has(ended.code)) throw ended;
        }
        // Each new session may end as soon as it is open: the query is asked again a bounded number of times.
        if (asked >= this.client.config.reconnectAttempts) throw ended;
        this.ended(ended);
      }
    } finally {
      this.asking = false;
      this.lastLineAtMs = performance.now();
    }
  }

  /** TERMINATE on the session, if it is still open; a session already ended has nothing to end. */
  async terminate(): Promise<void> {
    this.stopKeepAlive();
    const lost = this.lost ?? this.client.lost;
    if (lost && SESSION_ENDINGS.has(lost.code)) return this.client.destroy();
    await this.client.terminate();
  }

  destroy(): void {
    this.stopKeepAlive();
    this.client.destroy();
  }

  private ended(lost: HeadwireError): void {
    this.lostAtMs ??= performance.now();
    this.lost = lost;
    this.client.destroy();
  }

  /** The open session, or a new one after bounded attempts, each said. */
  private async current(): Promise<HeadwireClient> {
    const lost = this.lost ?? this.client.lost;
    if (!lost) return this.client;
    const lostAtMs = (this.lostAtMs ??= performance.now());
    const { reconnectAttempts, reconnectBackoffMs } = this.client.config;
    if (reconnectAttempts === 0) throw lost;
    this.stopKeepAlive();
    let failure = lost;
    for (let attempt = 1; attempt <= reconnectAttempts; attempt++) {
      // Time already spent since the loss counts towards the first wait (the user was typing).
      const since = attempt === 1 ? performance.now() - lostAtMs : 0;
      const waitMs = Math.max(0, Math.round(reconnectWaitMs(attempt, reconnectBackoffMs) - since));
      const what = attempt === 1 ? lossPhrase(lost) : `could not connect (${failure.message})`;
      this.options.notice(
        `* ${what}; connecting again in ${seconds(waitMs)} (attempt ${attempt} of ${reconnectAttempts})\n`,
      );
      await new Promise((resolve) => setTimeout(resolve, waitMs));
      try {
        const client = await this.options.connect();
        this.client = client;
        this.lost = undefined;
        this.lostAtMs = undefined;
        this.watch(client);
        this.options.notice(`* connected again to ${client.serverName}\n`);
        return client;
      } catch (error) {
        failure = toHeadwireError(error, "SERVER_UNREACHABLE");
      }
    }
    throw new HeadwireError(
      failure.code,
      `${failure.message} (gave up after ${reconnectAttempts} attempts to connect again)`,
    );
  }

  /** Notes when a session ends on its own (while the user types), and keeps it alive meanwhile. */
  private watch(client: HeadwireClient): void {
    void client.closed.then(() => {
      if (client === this.client) this.lostAtMs ??= performance.now();
    });
    if (!this.options.keepAlive) return;
    this.stopKeepAlive();
    this.lastLineAtMs = performance.now();
    const interval = this.keepAliveMs;
    // Checked at a fraction of the interval, so a PING goes out at most interval + a tenth after the last line.
    this.keepAliveTimer = setInterval(() => this.keepAlive(client, interval), Math.max(10, Math.floor(interval / 10)));
    // Nothing to keep alive must not hold the process open.
    this.keepAliveTimer.unref();
  }

  private keepAlive(client: HeadwireClient, interval: number): void {
    if (this.asking || client.lost || performance.now() - this.lastLineAtMs < interval) return;
    this.lastLineAtMs = performance.now();
    // A PING that fails has ended the session: the next query connects again.
    client.ping().catch(() => {});
  }

  private stopKeepAlive(): void {
    clearInterval(this.keepAliveTimer);
    this.keepAliveTimer = undefined;
  }
}
