/**
 * Finds where an origin's response header ends, byte-exactly. Pure: it is fed the bytes a socket
 * delivered, keeps its own cursor, and never touches a socket.
 *
 * The header headwire delivers is exactly what the origin sent, from the first status line through
 * the empty line that ends the final header section, as `curl -s -D - -o /dev/null URL` writes it:
 * case, order, duplicates, obs-folded lines, non-ASCII bytes, CRLF or bare-LF line ends, all kept.
 * Interim (1xx) responses come before the final one and are part of it (RFC 9110 §15.2), so the
 * scanner runs through every interim section and stops at the end of the first non-1xx one.
 *
 * Lines (RFC 9112 §2.2): a line ends at LF; a CR before it is part of the line end. A line that is
 * empty, or starts with CR, ends a header section. A bare CR is invalid in a header (RFC 9112
 * §2.2), so such a line cannot be a field line; curl treats it the same way.
 */
import { HeadwireError } from "../errors.js";
import {
  HTTP1_FORM,
  HTTP1_STATUS_CHECKED_BYTES,
  parseStatusLine,
  RENDERED_H2_FORM,
  statusByteValid,
  type StatusForm,
} from "./status-line.js";

/** One header section: a status line, its field lines and the empty line, as stream offsets. */
export interface HeaderBlock {
  /** Offset of the status line's first byte. */
  start: number;
  /** Offset just past the LF of the empty line ending the section. */
  end: number;
  status: number;
}

export interface HeaderScan {
  /** Interim sections in order, then the final one. */
  blocks: HeaderBlock[];
  /** Length of the whole header: blocks[0].start is 0, and the last block ends here. */
  end: number;
  /** Status code of the final response. */
  status: number;
}

const LF = 0x0a;
const CR = 0x0d;
const SP = 0x20;
const HTAB = 0x09;

const SWITCHING_PROTOCOLS = 101;

/** 1xx responses other than 101 are interim: the final response follows on the same connection. */
export function isInterimStatus(status: number): boolean {
  return status >= 100 && status < 200 && status !== SWITCHING_PROTOCOLS;
}

/**
 * Incremental scanner. push() every chunk; it returns true once the final header section has
 * ended. It throws NOT_HTTP as soon as the bytes cannot be an HTTP/1.x status line, and
 * HEADER_TOO_LARGE as soon as the header cannot end within maxHeaderBytes.
 */
export class HeaderBlockScanner {
  private readonly chunks: Buffer[] = [];
  private offset = 0;
  private readonly blocks: HeaderBlock[] = [];
  private blockStart = 0;
  private inStatusLine = true;
  private statusBytes: number[] = [];
  /** First byte of the line being read, or -1 while it is empty. */
  private lineFirstByte = -1;
  private finalEnd = -1;
  /** The status-line forms the current status line may still be. */
  private forms: readonly StatusForm[];

  /**
   * `stored`: the bytes are a header headwire stored or delivered, whose status lines may also
   * have the form HTTP/2 responses are rendered in ("HTTP/2 200"); from an origin's socket only
   * HTTP/1.x is accepted.
   */
  constructor(
    private readonly maxHeaderBytes: number = Number.POSITIVE_INFINITY,
    private readonly stored = false,
  ) {
    this.forms = this.allForms();
  }

  private allForms(): readonly StatusForm[] {
    return this.stored ? [HTTP1_FORM, RENDERED_H2_FORM] : [HTTP1_FORM];
  }

  get done(): boolean {
    return this.finalEnd !== -1;
  }

  /** Bytes kept so far (the header, once done; body bytes after it are not kept). */
  get bytesSeen(): number {
    return this.offset;
  }

  push(chunk: Uint8Array): boolean {
    if (this.done) return true;
    const bytes = Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
    const used = this.scan(bytes);
    this.chunks.push(bytes.subarray(0, used));
    this.offset += used;
    this.checkSize();
    return this.done;
  }

  /** The stream ended: throws ORIGIN_CLOSED unless the header was complete. */
  finish(): HeaderScan {
    if (this.done) return this.result();
    const detail = this.offset === 0 ? "without sending anything" : `after ${this.offset} header bytes`;
    throw new HeadwireError("ORIGIN_CLOSED", `the origin closed the connection ${detail}`);
  }

  result(): HeaderScan {
    const last = this.blocks.at(-1);
    if (!this.done || last === undefined) throw new Error("HeaderBlockScanner.result() before the header ended");
    return { blocks: [...this.blocks], end: this.finalEnd, status: last.status };
  }

  /** The exact header bytes, every interim section included. */
  header(): Buffer {
    return Buffer.concat(this.chunks, this.result().end);
  }

  /** Scans one chunk; returns how many of its bytes belong to the header. */
  private scan(bytes: Buffer): number {
    let pos = 0;
    while (pos < bytes.length && !this.done) {
      const newline = bytes.indexOf(LF, pos);
      const lineEnd = newline === -1 ? bytes.length : newline;
      this.readLineBytes(bytes, pos, lineEnd);
      if (newline === -1) return bytes.length;
      this.endLine(this.offset + newline + 1);
      pos = newline + 1;
    }
    return pos;
  }

  private readLineBytes(bytes: Buffer, from: number, to: number): void {
    if (from === to) return;
    if (this.lineFirstByte === -1) this.lineFirstByte = bytes[from]!;
    for (let i = from; this.inStatusLine && i < to && this.statusBytes.length < HTTP1_STATUS_CHECKED_BYTES; i++) {
      this.statusBytes.push(bytes[i]!);
      const index = this.statusBytes.length - 1;
      this.forms = this.forms.filter((form) => index >= form.checkedBytes || statusByteValid(form, index, bytes[i]!));
      if (this.forms.length === 0) throw notHttp(this.statusBytes);
    }
  }

  /** A line ended; `next` is the stream offset just past its LF. */
  private endLine(next: number): void {
    const first = this.lineFirstByte;
    this.lineFirstByte = -1;
    if (this.inStatusLine) {
      this.inStatusLine = false;
      if (!this.forms.some((form) => this.statusBytes.length >= form.minBytes)) throw notHttp(this.statusBytes);
      return;
    }
    if (first !== -1 && first !== CR) return; // a field line
    const status = statusCode(this.statusBytes);
    this.blocks.push({ start: this.blockStart, end: next, status });
    if (isInterimStatus(status)) {
      this.blockStart = next;
      this.inStatusLine = true;
      this.statusBytes = [];
      this.forms = this.allForms();
    } else {
      this.finalEnd = next;
    }
  }

  private checkSize(): void {
    const size = this.done ? this.finalEnd : this.offset;
    if (size > this.maxHeaderBytes || (!this.done && size === this.maxHeaderBytes)) {
      throw new HeadwireError("HEADER_TOO_LARGE", `the origin's header is larger than ${this.maxHeaderBytes} bytes`);
    }
  }
}

/** One-shot form: the scan of a complete buffer, or undefined when the header has not ended yet. */
export function scanHeaderBlocks(bytes: Uint8Array, maxHeaderBytes?: number): HeaderScan | undefined {
  // A complete buffer is a stored header (freshness, a reloaded cache file, Redis): HTTP/2 too.
  const scanner = new HeaderBlockScanner(maxHeaderBytes, true);
  return scanner.push(bytes) ? scanner.result() : undefined;
}

/** The status code of a status line whose checked bytes passed http1StatusByteValid. */
function statusCode(statusBytes: readonly number[]): number {
  const line = parseStatusLine(String.fromCharCode(...statusBytes));
  if (line === undefined) throw notHttp(statusBytes);
  return line.status;
}

function notHttp(prefix: readonly number[]): HeadwireError {
  const shown = JSON.stringify(Buffer.from(prefix).toString("latin1"));
  return new HeadwireError("NOT_HTTP", `the origin's answer does not start with an HTTP/1.x status line: ${shown}`);
}

/** One field of a header section: its name in lower case and its value (latin1, folded, trimmed). */
export interface HeaderField {
  name: string;
  /** The name as the origin spelled it. */
  rawName: string;
  value: string;
}

/**
 * The fields of one header section, in order, as latin1 strings (one char per byte). obs-fold
 * continuations are joined with a space and leading and trailing whitespace is trimmed
 * (RFC 9112 §5.1, §5.2).
 */
export function sectionFields(section: Buffer): HeaderField[] {
  const fields: HeaderField[] = [];
  let current: HeaderField | undefined;
  const flush = (): void => {
    if (current) fields.push({ ...current, value: trimWhitespace(current.value) });
    current = undefined;
  };
  for (const line of sectionLines(section)) {
    if (current !== undefined && (line.charCodeAt(0) === SP || line.charCodeAt(0) === HTAB)) {
      current.value += ` ${trimWhitespace(line)}`;
      continue;
    }
    flush();
    const colon = line.indexOf(":");
    if (colon > 0) {
      const rawName = line.slice(0, colon);
      current = { name: rawName.toLowerCase(), rawName, value: line.slice(colon + 1) };
    }
  }
  flush();
  return fields;
}

/** The values of a field in one header section, in order; names match case-insensitively. */
export function fieldValues(section: Buffer, name: string): string[] {
  const wanted = name.toLowerCase();
  return sectionFields(section)
    .filter((field) => field.name === wanted)
    .map((field) => field.value);
}

/** The field lines of a section (status line and empty line excluded), line ends stripped. */
function sectionLines(section: Buffer): string[] {
  const lines: string[] = [];
  for (const raw of section.toString("latin1").split("\n").slice(1)) {
    if (raw === "" || raw.startsWith("\r")) break;
    lines.push(raw.endsWith("\r") ? raw.slice(0, -1) : raw);
  }
  return lines;
}

function trimWhitespace(text: string): string {
  return text.replace(/^[ \t]+|[ \t]+$/g, "");
}
