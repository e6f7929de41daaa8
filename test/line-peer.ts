/**
 * One end of a TCP connection that reads the other end's lines in order: the test side of a
 * control-channel session, for unit tests that script the protocol by hand.
 */
import { once } from "node:events";
import type { Socket } from "node:net";

export class LinePeer {
  private buffered = "";
  private readonly lines: string[] = [];
  private waiting: ((line: string | null) => void) | undefined;
  private ended = false;
  /** Every line received so far, in order (those already taken by next() included). */
  readonly received: string[] = [];
  readonly closed: Promise<void>;

  constructor(readonly socket: Socket) {
    socket.setEncoding("utf8");
    socket.on("error", () => {});
    socket.on("data", (text: string) => {
      this.buffered += text;
      for (let lf = this.buffered.indexOf("\n"); lf !== -1; lf = this.buffered.indexOf("\n")) {
        this.push(this.buffered.slice(0, lf));
        this.buffered = this.buffered.slice(lf + 1);
      }
    });
    this.closed = once(socket, "close").then(() => {
      this.ended = true;
      this.waiting?.(null);
      this.waiting = undefined;
    });
  }

  private push(line: string): void {
    this.received.push(line);
    const waiting = this.waiting;
    this.waiting = undefined;
    if (waiting) waiting(line);
    else this.lines.push(line);
  }

  /** The next line, or null once the connection has closed. */
  next(): Promise<string | null> {
    const line = this.lines.shift();
    if (line !== undefined) return Promise.resolve(line);
    if (this.ended) return Promise.resolve(null);
    return new Promise((resolve) => (this.waiting = resolve));
  }

  /** The next `count` lines (null for each one that never came before the close). */
  async take(count: number): Promise<Array<string | null>> {
    const lines: Array<string | null> = [];
    for (let i = 0; i < count; i++) lines.push(await this.next());
    return lines;
  }

  write(text: string | Buffer): void {
    this.socket.write(text);
  }
}
