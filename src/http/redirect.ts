/**
 * Redirects: which responses are followed and where to. Following is the fetcher's job; this
 * module only reads a response's status and Location and resolves the next target.
 */
import { HeadwireError } from "../errors.js";
import { parseTarget, type FetchTarget } from "../url/target.js";
import { fieldValues } from "./header-block.js";

/**
 * RFC 9110 §15.4: the redirect status codes whose Location is followed. 300 (a choice for the
 * user) and 304 (not a redirect at all) are not; the method is kept on every hop.
 */
export const REDIRECT_STATUSES: ReadonlySet<number> = new Set([301, 302, 303, 307, 308]);

/**
 * The Location of a redirect response, or undefined when the response is not one to follow: not
 * a redirect status, or no (or an empty) Location. `finalSection` is the response's final header
 * section (interim 1xx sections excluded). The first Location counts; its bytes are read as UTF-8,
 * so a non-ASCII path survives.
 */
export function redirectLocation(status: number, finalSection: Buffer): string | undefined {
  if (!REDIRECT_STATUSES.has(status)) return undefined;
  const [location] = fieldValues(finalSection, "location");
  if (location === undefined || location === "") return undefined;
  return Buffer.from(location, "latin1").toString("utf8");
}

/**
 * RFC 9110 §10.2.2: Location is a URI reference, resolved against the URL that was requested.
 * The result passes the same checks as a URL a client typed (scheme, credentials, length), so a
 * redirect cannot reach what a query could not.
 */
export function redirectTarget(location: string, from: FetchTarget): FetchTarget {
  let absolute: string;
  try {
    absolute = new URL(location, from.url).href;
  } catch {
    throw new HeadwireError(
      "INVALID_URL",
      `the redirect Location ${JSON.stringify(location.slice(0, 80))} is not a URL`,
    );
  }
  return parseTarget(absolute);
}
