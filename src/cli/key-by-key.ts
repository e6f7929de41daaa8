/**
 * Terminal input handed to node:readline one key at a time.
 *
 * Node 20's readline treats a read of several characters as a paste and appends it to the end of
 * the line, wherever the cursor is (Interface#[kInsertString] when isCompletionEnabled is false).
 * Keys arrive together whenever typing outruns the reader (over ssh, through tmux, a paste into the
 * middle of a line): after Ctrl-A, "http://" would land at the end. Splitting each read into
 * characters makes every key an edit at the cursor; escape sequences (arrows, Home) still parse,
 * since readline decodes them character by character across reads.
 */
import { Transform, type TransformCallback } from "node:stream";
import { StringDecoder } from "node:string_decoder";
import type { ReadStream } from "node:tty";

export class KeyByKey extends Transform {
  private readonly decoder = new StringDecoder("utf8");

  constructor(private readonly tty: ReadStream) {
    // Object mode on the readable side: each character stays its own 'data' event.
    super({ readableObjectMode: true });
    tty.pipe(this);
  }

  /** readline switches raw mode on the stream it reads; pass it on to the terminal. */
  get isRaw(): boolean {
    return this.tty.isRaw;
  }

  get isTTY(): boolean {
    return true;
  }

  setRawMode(mode: boolean): this {
    this.tty.setRawMode(mode);
    return this;
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, done: TransformCallback): void {
    for (const character of this.decoder.write(chunk)) this.push(Buffer.from(character));
    done();
  }

  /** Stops reading the terminal, so that it no longer keeps the process alive. */
  release(): void {
    this.tty.unpipe(this);
    this.tty.pause();
  }
}
