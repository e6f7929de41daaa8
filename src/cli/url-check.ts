/**
 * A URL as typed, checked by the client before anything is sent. Pure: no DNS, no sockets.
 *
 * The control line is `QUERY <url> [options]`, split on spaces (docs/protocol.md): a space typed
 * in a URL would reach the server as an option (`bad query option "mple.com/"`). So, as a browser
 * does (WHATWG URL Standard §4.4, the path, query and fragment percent-encode sets), a space and
 * the other characters browsers percent-encode are encoded in the path, query and fragment; the
 * server's parser would encode them the same way, so the cache key does not change.
 *
 * What no browser would accept is refused here, with the place it is wrong (a 1-based column in
 * what was typed): a control character, an empty host, a host with a forbidden character (WHATWG
 * "forbidden host code point"), an IPv6 literal that is not one, a port that is not a number from
 * 1 to 65535. The rest (schemes, credentials, names) is the server's to judge (src/url/target.ts).
 */
import { isIPv6 } from "node:net";
import { HeadwireError } from "../errors.js";
import { MAX_URL_CHARS } from "../url/target.js";

/** `scheme:` not followed by a port number (then it is `host:port`), as in src/url/target.ts. */
const SCHEME_PREFIX = /^[a-z][a-z0-9+.-]*:(?!\d+(?:[/?#]|$))/i;
/** Schemes whose authority we check; others are left to the server (UNSUPPORTED_SCHEME). */
const CHECKED_SCHEMES = new Set(["http", "https"]);
/** WHATWG forbidden host code points (§3.5), less "%" (percent-encoded names are decoded there). */
const FORBIDDEN_HOST = /[\s#/:<>?@[\\\]^|"`{}']/u;
/** WHATWG path percent-encode set beyond controls: space " # < > ? ` { } — # and ? end the path. */
const PATH_ENCODE = /[ "<>`{}]/g;
/** The special-query percent-encode set: space " # < > and '. */
const QUERY_ENCODE = /[ "<>']/g;
/** The fragment percent-encode set: space " < > `. */
const FRAGMENT_ENCODE = /[ "<>`]/g;

/**
 * The URL to send: as typed, trimmed, with spaces and their like percent-encoded in the path,
 * query and fragment. Throws INVALID_URL naming the column of what is wrong.
 */
export function checkUrl(typed: string): string {
  const lead = typed.length - typed.trimStart().length;
  const text = typed.trim();
  const fail = (what: string, index: number) =>
    new HeadwireError("INVALID_URL", `bad URL ${JSON.stringify(text)}: ${what} (column ${lead + index + 1})`);
  if (text === "") throw new HeadwireError("INVALID_URL", "bad URL: it is empty");
  // The server's limit (src/url/target.ts): said here in the URL's terms, not the line's.
  if (text.length > MAX_URL_CHARS) {
    throw new HeadwireError(
      "INVALID_URL",
      `bad URL: it is ${text.length} characters, more than the limit of ${MAX_URL_CHARS}`,
    );
  }
  const control = /[\u0000-\u001f\u007f]/.exec(text);
  if (control) throw fail(`it contains the control character ${hexOf(control[0])}`, control.index);

  const scheme = schemeOf(text);
  // The server names a scheme it does not fetch (UNSUPPORTED_SCHEME); only spaces must not reach the wire.
  if (scheme !== undefined && !CHECKED_SCHEMES.has(scheme)) return text.replace(/ /g, "%20");
  // Where the authority starts: after "scheme://" or "//", or at once for a bare host.
  let start = 0;
  if (scheme !== undefined) {
    start = scheme.length + 1;
    if (!text.startsWith("//", start)) throw fail(`"${scheme}:" must be followed by "//"`, start);
  }
  if (text.startsWith("//", start)) start += 2;
  const end = firstOf(text, "/?#", start);
  checkAuthority(text.slice(start, end), start, fail);
  // A space can only be left in the userinfo (the host refuses one): encoded, the server then
  // refuses the credentials themselves, in its own words.
  return text.slice(0, end).replace(/ /g, "%20") + encodeRest(text.slice(end));
}

/**
 * The scheme, lowercased, if the text starts with one. `example.com:x/` is a host with a bad
 * port, not the scheme "example.com": a name with a dot and no "//" after its colon is a host.
 */
function schemeOf(text: string): string | undefined {
  const prefix = SCHEME_PREFIX.exec(text)?.[0];
  if (prefix === undefined) return undefined;
  if (prefix.includes(".") && !text.startsWith("//", prefix.length)) return undefined;
  return prefix.slice(0, -1).toLowerCase();
}

type Fail = (what: string, index: number) => HeadwireError;

/** `[userinfo@]host[:port]`; userinfo is the server's to refuse (it never sends credentials). */
function checkAuthority(authority: string, offset: number, fail: Fail): void {
  const at = authority.lastIndexOf("@");
  const hostStart = at + 1;
  const hostPort = authority.slice(hostStart);
  const base = offset + hostStart;
  if (hostPort.startsWith("[")) {
    const close = hostPort.indexOf("]");
    if (close === -1) throw fail(`the IPv6 address "${hostPort}" has no closing "]"`, base);
    const literal = hostPort.slice(1, close);
    if (!isIPv6(literal)) throw fail(`"${literal}" is not an IPv6 address`, base + 1);
    const rest = hostPort.slice(close + 1);
    if (rest !== "" && !rest.startsWith(":"))
      throw fail(`"${rest}" after the IPv6 address is not ":port"`, base + close + 1);
    if (rest !== "") checkPort(rest.slice(1), base + close + 2, fail);
    return;
  }
  const colon = hostPort.lastIndexOf(":");
  const host = colon === -1 ? hostPort : hostPort.slice(0, colon);
  if (colon !== -1) {
    if (host.includes(":")) {
      throw fail(`"${hostPort}" has more than one ":"; an IPv6 address goes in brackets: [${host}]`, base);
    }
    checkPort(hostPort.slice(colon + 1), base + colon + 1, fail);
  }
  if (host === "") throw fail("the host is empty", base);
  const forbidden = FORBIDDEN_HOST.exec(host);
  if (forbidden) {
    const what = forbidden[0] === " " ? "a space" : `"${forbidden[0]}"`;
    throw fail(`the host "${host}" contains ${what}`, base + forbidden.index);
  }
}

/** An empty port means the scheme's default (WHATWG); otherwise 1 to 65535. */
function checkPort(port: string, index: number, fail: Fail): void {
  if (port === "") return;
  if (!/^\d+$/.test(port)) throw fail(`the port "${port}" is not a number`, index);
  const n = Number(port);
  if (n < 1 || n > 65535) throw fail(`the port ${port} is not from 1 to 65535`, index);
}

/** Path, query and fragment, each with its percent-encode set. */
function encodeRest(rest: string): string {
  const hash = rest.indexOf("#");
  const beforeHash = hash === -1 ? rest : rest.slice(0, hash);
  const fragment = hash === -1 ? "" : rest.slice(hash);
  const question = beforeHash.indexOf("?");
  const path = question === -1 ? beforeHash : beforeHash.slice(0, question);
  const query = question === -1 ? "" : beforeHash.slice(question);
  return (
    path.replace(PATH_ENCODE, percent) +
    query.replace(QUERY_ENCODE, percent) +
    fragment.replace(FRAGMENT_ENCODE, percent)
  );
}

function percent(c: string): string {
  return `%${c.charCodeAt(0).toString(16).toUpperCase().padStart(2, "0")}`;
}

function hexOf(c: string): string {
  return `\\x${c.charCodeAt(0).toString(16).padStart(2, "0")}`;
}

function firstOf(text: string, chars: string, from: number): number {
  for (let i = from; i < text.length; i++) if (chars.includes(text[i]!)) return i;
  return text.length;
}
