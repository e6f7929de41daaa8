/**
 * The URLs of a batch file, read as the queries need them: an async generator over the byte stream,
 * so only the stream's buffer and one line are ever held, whatever the file's size. Several
 * sessions may call next() at once; the generator hands each line to exactly one of them.
 *
 * A line is one URL. Leading and trailing white space is ignored, and so are blank lines, lines
 * starting with `#`, a UTF-8 byte-order mark and a CR before the LF.
 */

/** Longer lines are not sent (the server's limit is far lower): they fail as LINE_TOO_LONG. */
export const MAX_URL_LINE_BYTES = 64 * 1024;
/** How much of an over-long line is kept, to name it in the error. */
const OVERLONG_HEAD_BYTES = 80;

export interface UrlLine {
  url: string;
  /** 1-based line number in the file. */
  lineNumber: number;
  /** The line exceeded MAX_URL_LINE_BYTES; `url` holds its beginning only. */
  overlong: boolean;
}

export async function* readUrlLines(
  input: AsyncIterable<Buffer | string>,
  maxLineBytes = MAX_URL_LINE_BYTES,
): AsyncGenerator<UrlLine, void, undefined> {
  let parts: Buffer[] = [];
  let bytes = 0;
  let overlong = false;
  let lineNumber = 0;

  const append = (piece: Buffer) => {
    if (piece.length === 0) return;
    if (!overlong && bytes + piece.length > maxLineBytes) {
      parts = [Buffer.concat([...parts, piece]).subarray(0, OVERLONG_HEAD_BYTES)];
      overlong = true;
    } else if (!overlong) parts.push(piece);
    bytes += piece.length;
  };
  const finish = (): UrlLine | undefined => {
    lineNumber++;
    let text = Buffer.concat(parts).toString("utf8");
    const wasOverlong = overlong;
    parts = [];
    bytes = 0;
    overlong = false;
    if (lineNumber === 1) text = text.replace(/^\uFEFF/, "");
    if (wasOverlong) return { url: `${text}…`, lineNumber, overlong: true };
    text = text.trim();
    if (text === "" || text.startsWith("#")) return undefined;
    return { url: text, lineNumber, overlong: false };
  };

  for await (const chunk of input) {
    const buffer = typeof chunk === "string" ? Buffer.from(chunk) : chunk;
    let start = 0;
    for (let newline = buffer.indexOf(0x0a); newline !== -1; newline = buffer.indexOf(0x0a, start)) {
      append(buffer.subarray(start, newline));
      start = newline + 1;
      const line = finish();
      if (line) yield line;
    }
    append(buffer.subarray(start));
  }
  if (bytes > 0) {
    const line = finish();
    if (line) yield line;
  }
}
