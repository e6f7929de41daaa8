/**
 * What the server reports about itself: one typed event for each thing that happens (a query
 * answered, a session opened or closed, a limit hit, an error, a persist, a start or a stop).
 * Logs, metrics and the status page are all consumers of this one seam; none of them is called
 * from inside the query path, which only builds an event when someone listens.
 *
 * Cost: a cached lookup is some 50 µs of CPU. The query path checks `events.active` (a field
 * read) before it builds anything, and builds one object per query when it is true. The trace
 * events (each control line, each UDP request) are separate and cost nothing unless a trace
 * listener is attached (`events.tracing`): only the status page asks for them, while watched.
 */
import type { CacheOutcome, Delivery } from "../protocol/control.js";

/** A query's outcome: how the cache answered it, or the error code it was refused with. */
export type QueryOutcome = CacheOutcome | string;

export interface QueryEvent {
  type: "query";
  /** When the reply was ready (Date.now). */
  atMs: number;
  sessionId: number;
  address: string;
  port: number;
  /** Normalized (src/url/target.ts); the input as given when it could not be parsed. */
  url: string;
  outcome: QueryOutcome;
  /** True when outcome is an error code. */
  failed: boolean;
  status: number | null;
  /** Header bytes delivered (or ticketed for UDP). */
  bytes: number | null;
  delivery: Delivery;
  /** From the query line read to the reply ready, in milliseconds. */
  ms: number;
  /** How long the origin took, when this query waited for one (a MISS, a revalidation). */
  originMs: number | null;
}

export interface SessionStartEvent {
  type: "session-start";
  sessionId: number;
  address: string;
  port: number;
}

export interface SessionEndEvent {
  type: "session-end";
  sessionId: number;
  address: string;
  port: number;
  queries: number;
  errors: number;
  ms: number;
}

/** A request refused (or held back) by a limit; `limit` is its setting's name in src/config/settings.ts. */
export interface LimitEvent {
  type: "limit";
  limit: string;
  code: string;
  address: string;
  sessionId: number | null;
}

/** A bug of ours (or an unexpected failure), with its stack. */
export interface ErrorEvent {
  type: "error";
  where: string;
  error: unknown;
  sessionId: number | null;
  address: string | null;
}

/** A message of a part (the store, the header service, start-up warnings) for the log. */
export interface NoticeEvent {
  type: "notice";
  level: "info" | "warn" | "error";
  msg: string;
}

export interface ReadyEvent {
  type: "ready";
  host: string;
  controlPort: number;
  dataPort: number;
  /** "HOST:PORT" of the admin HTTP listener, or null when it is off. */
  admin: string | null;
}

export interface StopEvent {
  type: "stop";
  /** What the store said when it closed (`persisted to cache.txt (3 entries)`), or why it could not. */
  cache: string;
  persisted: boolean;
}

export interface PersistEvent {
  type: "persist";
  ok: boolean;
  ms: number;
  error: Error | null;
}

export interface OriginFetchEvent {
  type: "origin-fetch";
  host: string;
  /** "ok", or the error code the fetch failed with. */
  result: string;
  ms: number;
}

export type ServerEvent =
  | QueryEvent
  | SessionStartEvent
  | SessionEndEvent
  | LimitEvent
  | ErrorEvent
  | NoticeEvent
  | ReadyEvent
  | StopEvent
  | PersistEvent
  | OriginFetchEvent;

/** A control line as it crossed the session (trace only; the text is cut to a few hundred characters). */
export interface LineTrace {
  type: "line";
  sessionId: number;
  direction: "in" | "out";
  text: string;
  bytes: number;
  atMs: number;
}

/** One REQUEST datagram served: where from, and the chunks sent back for it. */
export interface DatagramTrace {
  type: "udp";
  sessionId: number;
  address: string;
  port: number;
  requestNumber: number;
  requestBytes: number;
  /** Chunk indexes sent in answer, in order. */
  chunks: number[];
  /** Bytes of each chunk datagram sent, in the same order. */
  chunkBytes: number[];
  /** Why the request stopped early (overBudget), if it did. */
  dropped: string | null;
  atMs: number;
}

export type TraceEvent = LineTrace | DatagramTrace;

export type ServerEventListener = (event: ServerEvent) => void;
export type TraceListener = (event: TraceEvent) => void;

/** Trace text is cut here: a line may be 8 KiB, a diagram needs its start. */
export const TRACE_TEXT_CHARS = 200;

export class ServerEvents {
  private listeners: ServerEventListener[] = [];
  private traceListeners: TraceListener[] = [];
  /** Someone listens: the emitters build events only when this is true. */
  active = false;
  /** Someone wants the trace (each line, each datagram): false almost always. */
  tracing = false;
  /** Exceptions thrown by listeners (a consumer's bug must not reach the query path). */
  listenerErrors = 0;

  /** Adds a listener; returns the function that removes it. */
  on(listener: ServerEventListener): () => void {
    this.listeners = [...this.listeners, listener];
    this.active = true;
    return () => {
      this.listeners = this.listeners.filter((l) => l !== listener);
      this.active = this.listeners.length > 0;
    };
  }

  onTrace(listener: TraceListener): () => void {
    this.traceListeners = [...this.traceListeners, listener];
    this.tracing = true;
    return () => {
      this.traceListeners = this.traceListeners.filter((l) => l !== listener);
      this.tracing = this.traceListeners.length > 0;
    };
  }

  emit(event: ServerEvent): void {
    // The array is replaced, never changed, when listeners come and go: iterating it is safe.
    for (const listener of this.listeners) {
      try {
        listener(event);
      } catch {
        this.listenerErrors++;
      }
    }
  }

  trace(event: TraceEvent): void {
    for (const listener of this.traceListeners) {
      try {
        listener(event);
      } catch {
        this.listenerErrors++;
      }
    }
  }
}

/** A control line as the trace keeps it: cut, without its line end. */
export function traceText(line: string): string {
  const text = line.endsWith("\n") ? line.slice(0, -1) : line;
  return text.length > TRACE_TEXT_CHARS ? `${text.slice(0, TRACE_TEXT_CHARS)}…` : text;
}

/**
 * The message of an event that is a log message of its own (a notice, an error, start and stop),
 * as one line of text; undefined for events that are records (queries, sessions, limit hits).
 * The same text is the `msg` of the structured log line.
 */
export function eventText(event: ServerEvent): string | undefined {
  switch (event.type) {
    case "notice":
      return event.msg;
    case "error": {
      const { error } = event;
      const detail = error instanceof Error ? (error.stack ?? error.message) : String(error);
      return `internal error in ${event.where}${event.address ? ` (${event.address})` : ""}: ${detail}`;
    }
    case "ready":
      return (
        `listening: control tcp ${event.host} port ${event.controlPort}, data udp port ${event.dataPort}` +
        (event.admin ? `, admin http ${event.admin}` : "")
      );
    case "stop":
      return event.persisted ? `stopped; cache ${event.cache}` : `stopped; cache NOT persisted: ${event.cache}`;
    default:
      return undefined;
  }
}
