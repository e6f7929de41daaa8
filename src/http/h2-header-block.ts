/**
 * An HTTP/2 response header block rendered as text, byte for byte as curl writes it with -D
 * (checked against Debian's curl 7.88.1 with nghttp2): a status line `HTTP/2 <code> ` (curl
 * keeps a space where an HTTP/1.1 reason phrase would be: HTTP/2 has none, RFC 9113 §8.3.2),
 * then each field as `name: value` in the order received, names lowercase as HTTP/2 sends them
 * (RFC 9113 §8.2.2), repeated fields (set-cookie) kept one per line, and an empty line. Each
 * 1xx interim response (RFC 9110 §15.2) is its own block before the final one, as curl shows it.
 * Pure: it is given the fields Node's http2 module decoded and knows nothing of sockets.
 */

/** A decoded block as node:http2 gives it: [name, value, name, value, ...] in received order. */
export type RawHeaderList = readonly string[];

/**
 * Renders one block. Pseudo-header fields (`:status`) become the status line and are not
 * repeated as fields, as curl does. Values are latin1 (one char per byte), as HPACK carries
 * octets (RFC 7541 §5.2) and Node decodes them one byte per char.
 */
export function renderH2Block(raw: RawHeaderList): { text: Buffer; status: number } {
  let status = NaN;
  const lines: string[] = [];
  for (let i = 0; i + 1 < raw.length; i += 2) {
    const name = raw[i]!;
    const value = raw[i + 1]!;
    if (name === ":status") status = Number(value);
    else if (!name.startsWith(":")) lines.push(`${name}: ${value}\r\n`);
  }
  if (!Number.isInteger(status) || status < 100 || status > 999) {
    throw new RangeError("an HTTP/2 response block without a valid :status");
  }
  return { text: Buffer.from(`HTTP/2 ${status} \r\n${lines.join("")}\r\n`, "latin1"), status };
}
