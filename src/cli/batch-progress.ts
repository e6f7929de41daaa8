/**
 * Progress of a batch on standard error: a bar on a terminal (cli-progress), plain lines otherwise
 * (at every tenth of a known total, and every PLAIN_INTERVAL_MS while queries run), or nothing.
 * Lines printed meanwhile (failures) go through log(), so they appear above the bar, not inside it,
 * and wrap on a narrow terminal instead of being cut.
 */
import { MultiBar, type SingleBar } from "cli-progress";
import type { BatchTally } from "./batch-tally.js";

export const PLAIN_INTERVAL_MS = 10_000;

export interface BatchProgress {
  update(tally: BatchTally): void;
  log(text: string): void;
  stop(): void;
}

export interface ProgressOptions {
  stream: NodeJS.WritableStream & { isTTY?: boolean };
  /** Queries expected (URLs in the file), when known before starting. */
  total: number | undefined;
  /** false: print only log() lines (--no-progress). */
  enabled: boolean;
}

export function createProgress(options: ProgressOptions): BatchProgress {
  if (!options.enabled) return silentProgress(options.stream);
  return options.stream.isTTY ? new BarProgress(options) : new PlainProgress(options);
}

function silentProgress(stream: NodeJS.WritableStream): BatchProgress {
  return { update() {}, log: (text) => void stream.write(text), stop() {} };
}

class BarProgress implements BatchProgress {
  private readonly bars: MultiBar;
  private readonly bar: SingleBar;

  constructor({ stream, total }: ProgressOptions) {
    this.bars = new MultiBar({
      stream,
      format:
        total === undefined
          ? "{value} queries | {failed} failed | {duration_formatted}"
          : "[{bar}] {percentage}% | {value}/{total} | {failed} failed | ETA {eta_formatted}",
      hideCursor: true,
      // cli-progress's default (false) turns the terminal's auto-wrap off (DECAWM, ESC [?7l) while
      // the bar shows, so the terminal cut every longer failure line at its right edge. With it
      // on, the bar is still cut to the width by cli-progress, and log() lines wrap whole.
      linewrap: true,
      clearOnComplete: true,
      barsize: 30,
      etaBuffer: 200,
    });
    this.bar = this.bars.create(total ?? 0, 0, { failed: 0 });
  }

  update(tally: BatchTally): void {
    this.bar.update(tally.queries, { failed: tally.failed });
  }

  log(text: string): void {
    this.bars.log(text);
  }

  stop(): void {
    this.bars.stop();
  }
}

class PlainProgress implements BatchProgress {
  private readonly stream: NodeJS.WritableStream;
  private readonly total: number | undefined;
  private readonly started = performance.now();
  private lastTenth = 0;
  private last: BatchTally | undefined;
  /** Queries counted in the last line printed: the timer prints only when that has moved. */
  private printedQueries = -1;
  private readonly timer: NodeJS.Timeout;

  constructor({ stream, total }: ProgressOptions) {
    this.stream = stream;
    this.total = total;
    // A line a while says the batch is alive; one that repeats the last line's count says nothing
    // new (and on a slow machine the timer could repeat a tenth's line word for word).
    this.timer = setInterval(() => {
      if (this.last && this.last.queries !== this.printedQueries) this.print(this.last);
    }, PLAIN_INTERVAL_MS).unref();
  }

  update(tally: BatchTally): void {
    this.last = tally;
    if (this.total === undefined || this.total === 0) return;
    const tenth = Math.floor((tally.queries * 10) / this.total);
    if (tenth > this.lastTenth) {
      this.lastTenth = tenth;
      this.print(tally);
    }
  }

  log(text: string): void {
    this.stream.write(text);
  }

  stop(): void {
    clearInterval(this.timer);
  }

  private print(tally: BatchTally): void {
    this.printedQueries = tally.queries;
    const seconds = (performance.now() - this.started) / 1000;
    const done =
      this.total === undefined
        ? `${tally.queries}`
        : `${tally.queries}/${this.total} (${Math.floor((tally.queries * 100) / this.total)}%)`;
    this.stream.write(`progress: ${done} | ${tally.failed} failed | ${seconds.toFixed(1)} s\n`);
  }
}
