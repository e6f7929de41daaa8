/**
 * The name of the file the client writes a header to: `<URL>.txt`, as in the seed
 * (`www.twitch.tv` → `www.twitch.tv.txt`), made safe to create in any directory on any common
 * file system. Pure: no I/O.
 *
 * The rule, in order:
 *
 *  1. Scheme. A leading `http://` (any case) is dropped: http is the default, so `http://x` and `x`
 *     fetch the same thing and share a file. A leading `https://` (any case) becomes the prefix
 *     `https_`. A lone `/` after a bare authority is dropped too (`x/` is `x`; RFC 3986 §6.2.3 makes
 *     an empty http path equal to `/`). What is left after this step, with `https://` in front for
 *     https, is the URL's *key*.
 *  2. Characters. Every character outside `[A-Za-z0-9._-]` becomes `_`: separators (`/`, `\`),
 *     `:`, `?`, `*`, `~`, spaces, NUL and other controls, every non-ASCII character. The result is
 *     plain ASCII, so its length in bytes is its length in characters.
 *  3. Shapes that are dangerous even when made of safe characters get a `_` in front: an empty name,
 *     a name starting with `.` (hidden files; `.` and `..` themselves), a name starting with `-`
 *     (read as an option by shell tools), and a Windows device name (CON, PRN, AUX, NUL, COM0-9,
 *     LPT0-9, any case, alone or before a dot: `con.txt` names the console on Windows).
 *  4. Marking. If step 2 or 3 changed anything, or the name would otherwise begin with `https_` (any
 *     case) without coming from an https URL, the name gets the suffix `~` + the first 16 hex digits
 *     of SHA-256 over the key's UTF-8 bytes. `~` never survives step 2, so an unmarked name is always
 *     exactly what the user typed (minus `http://`), and a marked one can never equal an unmarked one.
 *  5. Length. The whole name is at most 200 bytes, `.txt` included (file systems allow 255; the rest
 *     is headroom for temporary-file suffixes). A longer name is cut and marked as in step 4.
 *  6. `.txt` is appended. Names never end in a dot or space, since the last character is `t`, so
 *     Windows' trailing-dot rule cannot bite, and dots inside the name are kept as they are.
 *
 * Collisions. Two URLs share a file only when their keys are equal (or, for marked names, when
 * 64 bits of SHA-256 collide): `a/b` → `a_b~….txt` and `a_b` → `a_b.txt` stay apart. On a
 * case-insensitive file system (Windows, macOS by default) two unmarked names that differ only in
 * case meet in one file; unmarked names are bare host names, which DNS compares without case
 * anyway (RFC 4343), so they denote the same origin. Marked names carry a hash of the exact key and
 * stay apart. Strings with unpaired UTF-16 surrogates (which a command line cannot produce) hash as
 * if each were U+FFFD.
 */
import { createHash } from "node:crypto";

/** Longest file name produced, in bytes, `.txt` included. */
export const MAX_HEADER_FILE_NAME_BYTES = 200;
export const HEADER_FILE_EXTENSION = ".txt";
const HASH_HEX_DIGITS = 16;
const MARK = "~";
const HTTPS_PREFIX = "https_";

const SAFE_CHARACTER = /^[A-Za-z0-9._-]$/;
const SCHEME = /^(https?):\/\//i;
const BARE_AUTHORITY_WITH_ROOT = /^[^/?#]+\/$/;
// Windows reserves these device names whatever the extension and case ("Naming Files, Paths, and
// Namespaces", Microsoft Learn).
const WINDOWS_DEVICE = /^(CON|PRN|AUX|NUL|COM[0-9]|LPT[0-9])$/i;

export function headerFileName(url: string): string {
  const { key, prefix, rest } = splitScheme(url);
  let { text: name, changed } = replaceUnsafe(rest);
  if (prefix === "" && name.toLowerCase().startsWith(HTTPS_PREFIX)) changed = true;
  name = prefix + name;
  if (needsGuardPrefix(name)) {
    name = `_${name}`;
    changed = true;
  }
  const suffixBytes = MARK.length + HASH_HEX_DIGITS + HEADER_FILE_EXTENSION.length;
  if (name.length + (changed ? suffixBytes : HEADER_FILE_EXTENSION.length) > MAX_HEADER_FILE_NAME_BYTES) {
    name = name.slice(0, MAX_HEADER_FILE_NAME_BYTES - suffixBytes);
    changed = true;
  }
  const mark = changed ? MARK + keyHash(key) : "";
  return name + mark + HEADER_FILE_EXTENSION;
}

function splitScheme(url: string): { key: string; prefix: string; rest: string } {
  const scheme = SCHEME.exec(url);
  let rest = scheme === null ? url : url.slice(scheme[0].length);
  if (BARE_AUTHORITY_WITH_ROOT.test(rest)) rest = rest.slice(0, -1);
  const https = scheme?.[1]?.toLowerCase() === "https";
  return { key: https ? `https://${rest}` : rest, prefix: https ? HTTPS_PREFIX : "", rest };
}

function replaceUnsafe(text: string): { text: string; changed: boolean } {
  let out = "";
  let changed = false;
  for (const character of text) {
    if (SAFE_CHARACTER.test(character)) out += character;
    else {
      out += "_";
      changed = true;
    }
  }
  return { text: out, changed };
}

function needsGuardPrefix(name: string): boolean {
  if (name === "" || name.startsWith(".") || name.startsWith("-")) return true;
  const base = name.split(".", 1)[0] ?? "";
  return WINDOWS_DEVICE.test(base);
}

function keyHash(key: string): string {
  return createHash("sha256").update(key, "utf8").digest("hex").slice(0, HASH_HEX_DIGITS);
}
