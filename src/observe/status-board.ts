/**
 * What the live status page shows, kept from the server's events in bounded rings: the recent
 * queries (statusRecentQueries), the recent errors and limit hits (statusRecentProblems), the
 * cache's hit ratio, and, while someone watches the page, each session's trace (its control
 * lines and UDP requests, statusTraceEvents per session, statusTraceSessions sessions) for its
 * message-sequence diagram. The trace is recorded only while a page is connected: it costs an
 * object per line and per datagram, which nobody should pay when nobody looks.
 *
 * Watchers get every change as a server-sent event (HTML Living Standard §9.2). A watcher that
 * does not read falls behind by at most statusWatcherBufferBytes; past that it is closed (it
 * reconnects and starts from a fresh snapshot), so a stalled browser cannot hold server memory.
 */
import type { ServerResponse } from "node:http";
import type { QueryEvent, ServerEvent, ServerEvents, TraceEvent } from "../server/server-events.js";

export interface StatusBoardOptions {
  recentQueries: number;
  recentProblems: number;
  traceEvents: number;
  traceSessions: number;
  watchers: number;
  watcherBufferBytes: number;
}

/** A query as the page shows it: the event itself (kept, not copied: it is not changed after its emit). */
export type QueryRecord = QueryEvent;

export interface ProblemRecord {
  atMs: number;
  kind: "error" | "limit";
  text: string;
  session: number | null;
  client: string | null;
}

/** A ring of at most `capacity` items, oldest dropped first. */
export class Ring<T> {
  private readonly items: T[] = [];
  private start = 0;
  constructor(private readonly capacity: number) {}

  push(item: T): void {
    if (this.items.length < this.capacity) this.items.push(item);
    else {
      this.items[this.start] = item;
      this.start = (this.start + 1) % this.capacity;
    }
  }

  /** Oldest first. */
  toArray(): T[] {
    return [...this.items.slice(this.start), ...this.items.slice(0, this.start)];
  }

  get size(): number {
    return this.items.length;
  }
}

export class StatusBoard {
  readonly queries: Ring<QueryRecord>;
  readonly problems: Ring<ProblemRecord>;
  /** Successful queries by cache outcome, since the start (the hit ratio). */
  readonly outcomes: Record<string, number> = {};
  private readonly traces = new Map<number, Ring<TraceEvent>>();
  private readonly watchers = new Set<ServerResponse>();
  private stopTracing: (() => void) | undefined;
  private readonly stopListening: () => void;

  constructor(
    private readonly events: ServerEvents,
    private readonly options: StatusBoardOptions,
  ) {
    this.queries = new Ring(options.recentQueries);
    this.problems = new Ring(options.recentProblems);
    this.stopListening = events.on((event) => this.onEvent(event));
  }

  private onEvent(event: ServerEvent): void {
    switch (event.type) {
      case "query": {
        if (!event.failed) this.outcomes[event.outcome] = (this.outcomes[event.outcome] ?? 0) + 1;
        this.queries.push(event);
        this.broadcast("query", event);
        return;
      }
      case "limit":
        return this.problem({
          atMs: Date.now(),
          kind: "limit",
          text: `limit ${event.limit} (${event.code})`,
          session: event.sessionId,
          client: event.address,
        });
      case "error": {
        const error = event.error;
        const text = error instanceof Error ? (error.stack ?? error.message) : String(error);
        return this.problem({ atMs: Date.now(), kind: "error", text, session: event.sessionId, client: event.address });
      }
      case "session-start":
      case "session-end":
        this.broadcast("session", { type: event.type, session: event.sessionId });
        return;
      default:
        return;
    }
  }

  private problem(record: ProblemRecord): void {
    this.problems.push(record);
    this.broadcast("problem", record);
  }

  private onTrace(event: TraceEvent): void {
    let ring = this.traces.get(event.sessionId);
    if (!ring) {
      // Map order is insertion order: the first key is the session traced longest ago.
      if (this.traces.size >= this.options.traceSessions) this.traces.delete(this.traces.keys().next().value!);
      this.traces.set(event.sessionId, (ring = new Ring(this.options.traceEvents)));
    }
    ring.push(event);
    this.broadcast("trace", { session: event.sessionId });
  }

  /** The trace kept for a session, oldest first (empty when none was recorded). */
  trace(sessionId: number): TraceEvent[] {
    return this.traces.get(sessionId)?.toArray() ?? [];
  }

  /** A new page: an event stream, refused (false) past statusWatchers. */
  watch(response: ServerResponse): boolean {
    if (this.watchers.size >= this.options.watchers) return false;
    response.writeHead(200, {
      "content-type": "text/event-stream; charset=utf-8",
      "cache-control": "no-store",
      connection: "keep-alive",
    });
    response.write(": headwire status\n\n");
    this.watchers.add(response);
    this.stopTracing ??= this.events.onTrace((event) => this.onTrace(event));
    response.once("close", () => {
      this.watchers.delete(response);
      if (this.watchers.size === 0) {
        this.stopTracing?.();
        this.stopTracing = undefined;
      }
    });
    return true;
  }

  get watching(): number {
    return this.watchers.size;
  }

  private broadcast(name: string, data: unknown): void {
    if (this.watchers.size === 0) return;
    const text = `event: ${name}\ndata: ${JSON.stringify(data)}\n\n`;
    for (const watcher of this.watchers) {
      if (watcher.writableLength > this.options.watcherBufferBytes) watcher.destroy();
      else watcher.write(text);
    }
  }

  close(): void {
    this.stopListening();
    this.stopTracing?.();
    for (const watcher of this.watchers) watcher.destroy();
  }
}
