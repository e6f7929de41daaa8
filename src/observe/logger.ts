/**
 * The server's log: pino, one JSON object a line on standard error (`time`, `level`, `msg` and
 * fields), or pino-pretty's lines for a person at a terminal. Writing never blocks the server
 * and never ends it:
 *
 * - Lines go through a SonicBoom in asynchronous mode: a write that the pipe cannot take now
 *   (EAGAIN: nobody reads it) is retried later while the server goes on.
 * - What waits is bounded by logBufferBytes (SonicBoom's maxLength): past it, lines are dropped
 *   and counted (`dropped`), never held in memory without end.
 * - A closed pipe (EPIPE, EBADF: the reader has gone) ends the log quietly: later lines are
 *   dropped and counted too. The log is a witness; it must not take the server down with it.
 */
import { destination, pino, stdTimeFunctions, type Level, type Logger } from "pino";
import { Writable } from "node:stream";
import pinoPretty from "pino-pretty";

export type LogFormat = "json" | "pretty";

export interface ServerLoggerOptions {
  format: LogFormat;
  /** pino's level name, or silent. */
  level: string;
  /** Bytes held while the destination is slow (logBufferBytes). */
  bufferBytes: number;
  /** The file descriptor written to; standard error by default. */
  fd?: number;
  /** Pretty output in colour (a terminal without NO_COLOR). */
  colorize?: boolean;
}

export class ServerLogger {
  readonly pino: Logger;
  /** Lines dropped: the buffer was full, or the destination has closed. */
  dropped = 0;
  private closed = false;
  private exiting = false;
  /** pino's SonicBoom. */
  private readonly sonic: ReturnType<typeof destination>;

  constructor(options: ServerLoggerOptions) {
    this.sonic = destination({
      fd: options.fd ?? 2,
      sync: false,
      maxLength: options.bufferBytes,
      // A full pipe is waited for, off the event loop, except while exiting: then what cannot be
      // written at once is given up rather than spun on.
      retryEAGAIN: () => !this.exiting,
    });
    this.sonic.on("drop", (data: string | Buffer) => (this.dropped += countLines(data)));
    this.sonic.on("error", (error: NodeJS.ErrnoException) => {
      if (error.code === "EAGAIN") return;
      this.closed = true;
    });
    // Every line passes here: once the destination has closed, lines are only counted.
    const gate = {
      write: (line: string) => {
        if (this.closed) this.dropped++;
        else this.sonic.write(line);
      },
    };
    const output =
      options.format === "pretty"
        ? pinoPretty({
            // pino-pretty pipes into a stream: the gate as one, taking each chunk at once.
            destination: new Writable({
              write: (chunk: Buffer | string, _encoding, done) => {
                gate.write(chunk.toString());
                done();
              },
            }),
            colorize: options.colorize ?? false,
            sync: true,
            translateTime: "SYS:HH:MM:ss.l",
            ignore: "pid,hostname",
            // One line a message: an access line per query must stay one line at a terminal too.
            singleLine: true,
          })
        : gate;
    this.pino = pino(
      {
        level: options.level,
        timestamp: stdTimeFunctions.isoTime,
        // `level` as its name ("info"), which reads in a file and matches in a query.
        formatters: { level: (label) => ({ level: label }) },
        base: { pid: process.pid },
      },
      output,
    );
  }

  /** The level now (the seam a configuration reload uses). */
  get level(): string {
    return this.pino.level;
  }

  /** Changes the least level logged, at run time (SIGHUP's reload, an admin). */
  setLevel(level: Level | "silent"): void {
    this.pino.level = level;
  }

  /**
   * Writes what is buffered before the process exits, in order, waiting at most
   * EXIT_FLUSH_WAIT_MS for a slow pipe: a pipe nobody reads must not hold the exit up, and what
   * it has not taken by then is given up.
   */
  async flushBeforeExit(): Promise<void> {
    this.exiting = true;
    if (!this.closed) {
      // Lines logged from here on are dropped: the destination is ending.
      this.closed = true;
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, EXIT_FLUSH_WAIT_MS);
        const done = () => {
          clearTimeout(timer);
          resolve();
        };
        this.sonic.once("close", done);
        this.sonic.once("error", done);
        // end() writes what is buffered, in order, after the write in flight, then closes.
        this.sonic.end();
      });
    }
    // pino flushes its destination again, synchronously, on process exit, where a throw (EAGAIN
    // on a full pipe, or an ended stream) would become an uncaught exception: it has been done.
    this.sonic.flushSync = () => {};
  }
}

/**
 * The longest an exit waits for the log to drain: long enough for a terminal or a file (ms),
 * short next to a supervisor's stop timeout (systemd's is 90 s), so a stop stays prompt.
 */
export const EXIT_FLUSH_WAIT_MS = 1000;

function countLines(data: string | Buffer): number {
  const text = typeof data === "string" ? data : data.toString("utf8");
  let lines = 0;
  for (let at = text.indexOf("\n"); at !== -1; at = text.indexOf("\n", at + 1)) lines++;
  return Math.max(1, lines);
}
