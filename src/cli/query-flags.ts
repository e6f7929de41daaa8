/**
 * The client's curl-like flags that become query options on the QUERY line (docs/protocol.md,
 * "Messages"): -k, --connect-timeout, -m, -4/-6, --fresh, -H and -A. Defined here, and read into
 * QueryOptions here, so `headwire client` only hooks them in (src/cli/client-command.ts).
 * Times are in seconds with fractions, as curl takes them; the QUERY line carries milliseconds.
 */
import { InvalidArgumentError, Option, type Command } from "commander";
import { HeadwireError } from "../errors.js";
import { MAX_QUERY_TIMEOUT_MS, type QueryOptions } from "../http/query-options.js";
import type { RequestHeader } from "../http/request.js";
import { headerFromCurlArgument } from "../http/request-headers.js";

/** What commander hands over for these flags. */
export interface QueryFlagValues {
  insecure?: boolean;
  connectTimeout?: number;
  maxTime?: number;
  ipv4?: boolean;
  ipv6?: boolean;
  fresh?: boolean;
  header?: RequestHeader[];
  userAgent?: string;
}

/** Seconds (fractions allowed, as curl) as whole milliseconds within what a query may ask. */
function seconds(value: string): number {
  const ms = Math.round(Number(value) * 1000);
  if (!/^\d*\.?\d+$/.test(value.trim()) || !Number.isFinite(ms) || ms < 1 || ms > MAX_QUERY_TIMEOUT_MS) {
    throw new InvalidArgumentError(`must be seconds from 0.001 to ${MAX_QUERY_TIMEOUT_MS / 1000}, e.g. 2.5`);
  }
  return ms;
}

/** One -H argument, added to the ones before it (the flag repeats, as curl's). */
function header(value: string, previous: RequestHeader[] | undefined): RequestHeader[] {
  try {
    return [...(previous ?? []), headerFromCurlArgument(value)];
  } catch (error) {
    if (error instanceof HeadwireError) throw new InvalidArgumentError(error.message);
    throw error;
  }
}

export function addQueryFlags(command: Command): Command {
  return command
    .addOption(
      new Option(
        "-k, --insecure",
        "let the server skip the origin's TLS certificate checks (only a server run with --allow-insecure-queries does)",
      ),
    )
    .addOption(
      new Option("--connect-timeout <seconds>", "at most this long for the server to connect to the origin").argParser(
        seconds,
      ),
    )
    .addOption(
      new Option("-m, --max-time <seconds>", "at most this long for the origin's header once connected").argParser(
        seconds,
      ),
    )
    .addOption(new Option("-4, --ipv4", "the server connects to the origin over IPv4 only").conflicts("ipv6"))
    .addOption(new Option("-6, --ipv6", "the server connects to the origin over IPv6 only"))
    .addOption(new Option("--fresh", "revalidate or refetch from the origin, whatever the cache holds (rate-limited)"))
    .addOption(
      new Option(
        "-H, --header <line>",
        "'Name: value' sent to the origin, repeatable; 'Name:' drops a default",
      ).argParser(header),
    )
    .addOption(
      new Option("-A, --user-agent <ua>", "the User-Agent sent to the origin").argParser((value: string) => {
        header(`User-Agent: ${value}`, undefined); // checked here: a bad one is a usage error
        return value;
      }),
    );
}

/** The query options these flags ask for (each flag's value was checked as it was parsed). */
export function queryOptionsFromFlags(values: QueryFlagValues): Partial<QueryOptions> {
  const options: Partial<QueryOptions> = {};
  if (values.insecure) options.insecure = true;
  if (values.connectTimeout !== undefined) options.connectTimeoutMs = values.connectTimeout;
  if (values.maxTime !== undefined) options.maxTimeMs = values.maxTime;
  if (values.ipv4) options.ip = "4";
  if (values.ipv6) options.ip = "6";
  if (values.fresh) options.cache = "refresh";
  const headers = [...(values.header ?? [])];
  // curl: -A sets User-Agent unless an -H gave one; so does this client.
  if (values.userAgent !== undefined && !headers.some((h) => h.name.toLowerCase() === "user-agent")) {
    headers.unshift(header(`User-Agent: ${values.userAgent}`, undefined)[0]!);
  }
  if (headers.length > 0) options.headers = headers;
  return options;
}

/** Help text for the QUERY OPTIONS section of `headwire client --help`. */
export const QUERY_FLAGS_HELP = `
ASKING THE ORIGIN (as curl's flags)
  -H 'Name: value'   a request field for the origin (repeatable); 'Accept:' drops the default
  -A UA              the User-Agent (default headwire/VERSION)
  -k                 no TLS certificate checks, if the server runs with --allow-insecure-queries
  -4, -6             connect to the origin over IPv4 or IPv6 only
  --connect-timeout S, -m S
                     seconds (fractions allowed) to connect, and for the header; the server's
                     own limits apply when lower
  --fresh            revalidate or refetch now (a few a second per address: RATE_LIMITED past it)
  Request fields, -k and -4/-6 are part of the cache key: another -H is another entry.
`;
