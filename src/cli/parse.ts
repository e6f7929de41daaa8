import { InvalidArgumentError } from "commander";

export function integer(value: string): number {
  if (!/^\d+$/.test(value)) throw new InvalidArgumentError("must be a whole number");
  return Number(value);
}

/**
 * "host", "host:port", "[v6]:port" or "v6" → host and port. A missing port is `defaultPort`: the
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
  return { host: value, port: defaultPort };
}

function checkPort(port: string | undefined, defaultPort: number): number {
  if (port === undefined) return defaultPort;
  const n = Number(port);
  if (!/^\d{1,5}$/.test(port) || n < 1 || n > 65535) throw new InvalidArgumentError(`bad port ${port}`);
  return n;
}
