import { InvalidArgumentError } from "commander";
import { DEFAULT_CONTROL_PORT } from "../config.js";

export function integer(value: string): number {
  if (!/^\d+$/.test(value)) throw new InvalidArgumentError("must be a whole number");
  return Number(value);
}

/** "host", "host:port", "[v6]:port" or "v6" → host and port. */
export function hostAndPort(value: string): { host: string; port: number } {
  const bracketed = /^\[([^\]]+)\](?::(\d+))?$/.exec(value);
  if (bracketed) return { host: bracketed[1]!, port: checkPort(bracketed[2]) };
  const colons = value.split(":").length - 1;
  if (colons === 1) {
    const [host, port] = value.split(":") as [string, string];
    if (host === "") throw new InvalidArgumentError("host is missing");
    return { host, port: checkPort(port) };
  }
  if (value === "") throw new InvalidArgumentError("host is missing");
  return { host: value, port: DEFAULT_CONTROL_PORT };
}

function checkPort(port: string | undefined): number {
  if (port === undefined) return DEFAULT_CONTROL_PORT;
  const n = Number(port);
  if (!/^\d{1,5}$/.test(port) || n < 1 || n > 65535) throw new InvalidArgumentError(`bad port ${port}`);
  return n;
}
