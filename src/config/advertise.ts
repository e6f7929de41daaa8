/**
 * The `--advertise` value: where clients send UDP, as tickets spell it in `udp=`. A host alone
 * keeps the bound data port; HOST:PORT names a public port that differs from it, as behind NAT or
 * a container's port mapping (`docker run -p 40000:50367/udp`). IPv6 goes in brackets, as in URLs
 * (RFC 3986 §3.2.2): `[2001:db8::1]:40000`; a bare IPv6 address is a host without a port. Pure.
 */
import { isIP } from "node:net";

export interface AdvertisedAddress {
  host: string;
  /** Undefined: the bound data port. */
  port: number | undefined;
}

export type AdvertiseParse = { ok: true; address: AdvertisedAddress | null } | { ok: false; problem: string };

/** RFC 1123 §2.1 host names (underscores too, which some internal names carry), or IPv4. */
const HOST_NAME =
  /^(?=.{1,253}\.?$)[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?(?:\.[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?)*\.?$/;

/** "" → null (tickets name the address the session reached); otherwise host and port, or what is wrong. */
export function parseAdvertise(value: string): AdvertiseParse {
  if (value === "") return { ok: true, address: null };
  const reason = problemOf(value);
  if (typeof reason === "string") {
    return {
      ok: false,
      problem:
        `must be HOST or HOST:PORT (IPv6 in brackets: [2001:db8::1]:40000), got ` +
        `${JSON.stringify(value)}: ${reason}`,
    };
  }
  return { ok: true, address: reason };
}

function problemOf(value: string): AdvertisedAddress | string {
  if (value.startsWith("[")) {
    const close = value.indexOf("]");
    if (close === -1) return "the [ of an IPv6 address is not closed";
    const host = value.slice(1, close);
    if (isIP(host) !== 6) return `${host} in brackets is not an IPv6 address`;
    const rest = value.slice(close + 1);
    if (rest === "") return { host, port: undefined };
    if (!rest.startsWith(":")) return "only :PORT may follow the ]";
    return withPort(host, rest.slice(1));
  }
  const colons = value.split(":").length - 1;
  if (colons > 1) {
    if (isIP(value) === 6) return { host: value, port: undefined };
    return "more than one colon and not an IPv6 address (an IPv6 address with a port goes in brackets)";
  }
  const [host, port] = value.split(":") as [string, string?];
  if (host === "") return "the host is missing";
  if (isIP(host) === 0 && !HOST_NAME.test(host)) return `${host} is not a host name or an IP address`;
  return port === undefined ? { host, port: undefined } : withPort(host, port);
}

function withPort(host: string, port: string): AdvertisedAddress | string {
  const n = Number(port);
  if (!/^\d{1,5}$/.test(port) || n < 1 || n > 65535) {
    return `the port must be a number from 1 to 65535, got ${JSON.stringify(port)}`;
  }
  return { host, port: n };
}
