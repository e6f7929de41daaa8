/**
 * The log as a consumer of the server's events (src/server/server-events.ts): an access line per
 * query, a line per session start and end, a warning per limit hit, errors with their stacks,
 * the store's notices, start and stop. Fields are flat and named as docs/operations.md lists.
 *
 * Limit warnings are rate-limited themselves: a flood that hits a limit ten thousand times a
 * second must not write ten thousand warnings. They pass a token bucket (limitWarningsPerSecond,
 * the same burst); those it holds back are counted and the next warning that passes says how
 * many (`suppressed`). Access lines are not limited: each is one query answered, at info, and
 * `--log-level warn` turns them off.
 */
import type { Logger } from "pino";
import { TokenBucket } from "../limits/token-bucket.js";
import { eventText, type ServerEvent, type ServerEvents } from "../server/server-events.js";

export interface EventLogOptions {
  limitWarningsPerSecond: number;
  now?: () => number;
}

/** Logs the server's events on `logger`; returns the function that stops it. */
export function logEvents(events: ServerEvents, logger: Logger, options: EventLogOptions): () => void {
  const warnings = new TokenBucket(
    options.limitWarningsPerSecond,
    options.limitWarningsPerSecond,
    options.now ?? Date.now,
  );
  let suppressed = 0;
  return events.on((event: ServerEvent) => {
    switch (event.type) {
      case "query":
        if (!logger.isLevelEnabled("info")) return;
        logger.info(
          {
            event: "query",
            session: event.sessionId,
            client: event.address,
            clientPort: event.port,
            url: event.url,
            outcome: event.outcome,
            status: event.status,
            bytes: event.bytes,
            delivery: event.delivery,
            ms: round(event.ms),
            originMs: event.originMs === null ? null : round(event.originMs),
          },
          `${event.outcome} ${event.url}`,
        );
        return;
      case "session-start":
        logger.info(
          { event: "session-start", session: event.sessionId, client: event.address, clientPort: event.port },
          `session ${event.sessionId} from ${event.address} port ${event.port}`,
        );
        return;
      case "session-end":
        logger.info(
          {
            event: "session-end",
            session: event.sessionId,
            client: event.address,
            clientPort: event.port,
            queries: event.queries,
            errors: event.errors,
            ms: Math.round(event.ms),
          },
          `session ${event.sessionId} closed after ${event.queries} queries (${event.errors} failed)`,
        );
        return;
      case "limit":
        if (!warnings.take()) {
          suppressed++;
          return;
        }
        logger.warn(
          {
            event: "limit",
            limit: event.limit,
            code: event.code,
            client: event.address,
            session: event.sessionId,
            suppressed,
          },
          `limit ${event.limit} hit (${event.code}) by ${event.address}` +
            (suppressed > 0 ? `; ${suppressed} more limit warnings not logged before this one` : ""),
        );
        suppressed = 0;
        return;
      case "error":
        logger.error(
          { event: "error", err: event.error, session: event.sessionId, client: event.address },
          eventText(event),
        );
        return;
      case "notice":
        logger[event.level]({ event: "notice" }, event.msg);
        return;
      case "ready":
        logger.info(
          {
            event: "ready",
            host: event.host,
            controlPort: event.controlPort,
            dataPort: event.dataPort,
            admin: event.admin,
          },
          eventText(event),
        );
        return;
      case "stop":
        (event.persisted ? logger.info : logger.error).call(
          logger,
          { event: "stop", persisted: event.persisted },
          eventText(event),
        );
        return;
      case "persist":
        if (event.ok) logger.debug({ event: "persist", ok: true, ms: round(event.ms) }, "cache file written");
        else
          logger.warn({ event: "persist", ok: false, ms: round(event.ms), err: event.error }, "cache file not written");
        return;
      case "origin-fetch":
        logger.debug(
          { event: "origin-fetch", host: event.host, result: event.result, ms: round(event.ms) },
          `origin ${event.host}: ${event.result}`,
        );
        return;
    }
  });
}

/** Milliseconds to the microsecond: enough for a cached lookup, short in the line. */
function round(ms: number): number {
  return Math.round(ms * 1000) / 1000;
}
