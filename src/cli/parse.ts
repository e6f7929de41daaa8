import { isIPv6 } from "node:net";
import { InvalidArgumentError } from "commander";

export function integer(value: string): number {
  if (!/^\d+$/.test(value)) throw new InvalidArgumentError("must be a whole number");
  return Number(value);
}

/**
 * "host", "host:port", "[v6]:port" or "v6" → host and port (a bare "v6" takes the default port). A missing port is `defaultPort`: the
 * caller says which, since a control address (TCP) and a data address (UDP) differ.
 */
export function hostAndPort(value: string, defaultPort: number): { host: string; port: number } {
  const bracketed = /^\[([^\]]+)\](?::(\d+))?$/.exec(value);
  if (bracketed) return { host: bracketed[1]!, port: checkPort(bracketed[2], defaultPort) };
  const colons = value.split(":").length - 1;
  if (colons === 1) {
    const [host, port] = value.split(":") as [string, string];
    if (host === "") throw new InvalidArgumentError("host is missing");
    return { host, port: checkPort(port, defaultPort) };
  }
  if (value === "") throw new InvalidArgumentError("host is missing");
  if (colons > 1 && !isIPv6(value)) throw new InvalidArgumentError(notAnIpv6(value));
  return { host: value, port: defaultPort };
}

/**
 * `::1:50366` is no IPv6 address (50366 is not a 16-bit group), and reading its last part as a
 * port would make `fe80::1:8080` ambiguous: as in URLs (RFC 3986 §3.2.2), a port after an IPv6
 * address needs brackets. Said with the spelling that works.
 */
function notAnIpv6(value: string): string {
  const last = value.lastIndexOf(":");
  const address = value.slice(0, last);
  const port = value.slice(last + 1);
  if (/^\d+$/.test(port) && isIPv6(address)) {
    return `use [${address}]:${port} for an IPv6 address with a port (without brackets it is read as one address)`;
  }
  return "not a host, host:port, IPv6 address or [IPv6]:port";
}

function checkPort(port: string | undefined, defaultPort: number): number {
  if (port === undefined) return defaultPort;
  const n = Number(port);
  if (!/^\d{1,5}$/.test(port) || n < 1 || n > 65535) throw new InvalidArgumentError(`bad port ${port}`);
  return n;
}
