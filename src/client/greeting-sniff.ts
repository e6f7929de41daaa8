/**
 * Is the peer a headwire server? Told from its first bytes, before the control decoder reads
 * them: a wrong --server port (an HTTP server, SSH, SMTP, TLS) should end at once with what the
 * peer said, not as a protocol error or a 30 s wait. Pure: no sockets here.
 */

/** What a headwire server may send first: its greeting, or an ERROR refusing the session (SERVER_BUSY). */
const HEADWIRE_OPENINGS = ["HEADWIRE/", "ERROR "].map((text) => Buffer.from(text, "latin1"));

/** The peer's words quoted in a message are cut here. */
const QUOTED_BYTES = 60;

export type GreetingVerdict = "headwire" | "foreign" | "undecided";

/** "undecided" while the bytes so far could still begin a greeting. */
export function sniffGreeting(bytes: Buffer): GreetingVerdict {
  let undecided = false;
  for (const opening of HEADWIRE_OPENINGS) {
    const length = Math.min(bytes.length, opening.length);
    if (!bytes.subarray(0, length).equals(opening.subarray(0, length))) continue;
    if (bytes.length >= opening.length) return "headwire";
    undecided = true;
  }
  return undecided ? "undecided" : "foreign";
}

/**
 * The peer's first bytes for a message: its first line quoted when it is text
 * (`"SSH-2.0-OpenSSH_9.2p1"`), else what the bytes look like (`TLS bytes (16 03 01 …)`).
 */
export function describeFirstBytes(bytes: Buffer): string {
  // A TLS record: content type 20-23, then version 3.x (RFC 8446 §5.1).
  if (bytes.length >= 2 && bytes[0]! >= 20 && bytes[0]! <= 23 && bytes[1] === 3) {
    return `TLS bytes (${hex(bytes)}): it expects a TLS client`;
  }
  const end = bytes.indexOf(0x0a);
  const line = bytes
    .subarray(0, end === -1 ? bytes.length : end)
    .toString("latin1")
    .replace(/\r$/, "");
  const printable = /^[\x20-\x7e\t]*$/.test(line);
  if (!printable || line.trim() === "") return `bytes that are not text (${hex(bytes)})`;
  const cut = line.length > QUOTED_BYTES ? `${line.slice(0, QUOTED_BYTES)}…` : line;
  return JSON.stringify(cut);
}

function hex(bytes: Buffer): string {
  const shown = [...bytes.subarray(0, 8)].map((byte) => byte.toString(16).padStart(2, "0")).join(" ");
  return bytes.length > 8 ? `${shown} …` : shown;
}
