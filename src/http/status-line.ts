/**
 * The status line that starts every response header (RFC 9112 §4):
 *
 *   status-line  = HTTP-version SP status-code SP [ reason-phrase ]
 *   HTTP-version = "HTTP/" DIGIT "." DIGIT
 *
 * An origin answers headwire's HTTP/1.1 request in HTTP/1.x, checked byte by byte as the answer
 * arrives (http1StatusByteValid), so something that is not HTTP fails at its first wrong byte.
 * A header read back for display may also carry the form curl writes for HTTP/2 and HTTP/3
 * ("HTTP/2 200", no minor version), which parseStatusLine accepts as well.
 */

export interface StatusLine {
  /** "1.1", "1.0", or "2" for the HTTP/2 form. */
  version: string;
  status: number;
  /** Empty when the line has none (it is optional, RFC 9112 §4). */
  reason: string;
}

/** A status code's first digit is 1-9 (RFC 9110 §15: 1xx to 5xx; more classes may come). */
const STATUS_LINE = /^HTTP\/(\d(?:\.\d)?) ([1-9]\d\d)(?: (.*))?$/s;

/**
 * Parses one line (its LF removed; a CR before it is dropped, RFC 9112 §2.2), or returns
 * undefined when it is not a status line. Lenient where curl is: the SP after the status code
 * may be missing when no reason follows.
 */
export function parseStatusLine(line: string): StatusLine | undefined {
  const match = STATUS_LINE.exec(line.endsWith("\r") ? line.slice(0, -1) : line);
  if (match === null) return undefined;
  return { version: match[1]!, status: Number(match[2]), reason: match[3] ?? "" };
}

/** The HTTP/1.x status line up to its status code: d is any digit, s a digit 1-9. */
const HTTP1_TEMPLATE = "HTTP/d.d sdd";
const SP = 0x20;
const CR = 0x0d;

/** Length of the shortest HTTP/1.x status line: the version, SP and the status code. */
export const HTTP1_STATUS_MIN_BYTES = HTTP1_TEMPLATE.length;

/** Bytes of an HTTP/1.x status line checked as they arrive: the template and the byte after it. */
export const HTTP1_STATUS_CHECKED_BYTES = HTTP1_TEMPLATE.length + 1;

/**
 * Whether `byte` may stand at `index` (below HTTP1_STATUS_CHECKED_BYTES) of an HTTP/1.x status
 * line. After the status code comes SP, or CR when the line ends without a reason.
 */
export function http1StatusByteValid(index: number, byte: number): boolean {
  if (index === HTTP1_TEMPLATE.length) return byte === SP || byte === CR;
  switch (HTTP1_TEMPLATE[index]) {
    case "d":
      return isDigit(byte);
    case "s":
      return byte >= 0x31 && byte <= 0x39;
    default:
      return byte === HTTP1_TEMPLATE.charCodeAt(index);
  }
}

/**
 * The form curl writes for HTTP/2 and HTTP/3, as headwire renders an HTTP/2 response
 * (src/http/h2-header-block.ts): "HTTP/2 200", no minor version. Never on the wire from an
 * origin (HTTP/2 has no status line, RFC 9113 §8.3.2), only in stored and delivered headers.
 */
const RENDERED_TEMPLATE = "HTTP/d sdd";

/** A status line's checked shape: its template, how many bytes are checked, the fewest it may have. */
export interface StatusForm {
  template: string;
  minBytes: number;
  checkedBytes: number;
}

export const HTTP1_FORM: StatusForm = {
  template: HTTP1_TEMPLATE,
  minBytes: HTTP1_STATUS_MIN_BYTES,
  checkedBytes: HTTP1_STATUS_CHECKED_BYTES,
};

export const RENDERED_H2_FORM: StatusForm = {
  template: RENDERED_TEMPLATE,
  minBytes: RENDERED_TEMPLATE.length,
  checkedBytes: RENDERED_TEMPLATE.length + 1,
};

/** Whether `byte` may stand at `index` (below form.checkedBytes) of a status line of that form. */
export function statusByteValid(form: StatusForm, index: number, byte: number): boolean {
  const template = form.template;
  if (index === template.length) return byte === SP || byte === CR;
  switch (template[index]) {
    case "d":
      return isDigit(byte);
    case "s":
      return byte >= 0x31 && byte <= 0x39;
    default:
      return byte === template.charCodeAt(index);
  }
}

function isDigit(byte: number): boolean {
  return byte >= 0x30 && byte <= 0x39;
}
