/**
 * The `--admin-http` value: HOST:PORT the admin HTTP listener binds to, or `off`. HOST is an IP
 * address (IPv6 in brackets, RFC 3986 §3.2.2: `[::1]:50368`): the listener binds, it never
 * resolves a name. Port 0 asks for an ephemeral port (tests). Pure.
 */
import { isIP } from "node:net";

export interface AdminAddress {
  host: string;
  port: number;
}

export type AdminAddressParse = { ok: true; address: AdminAddress | null } | { ok: false; problem: string };

/** "off" → null (no admin listener); otherwise host and port, or what is wrong. */
export function parseAdminAddress(value: string): AdminAddressParse {
  if (value === "off") return { ok: true, address: null };
  const found = /^(?:\[([^\]]+)\]|([^:[\]]+)):(\d{1,5})$/.exec(value);
  const host = found?.[1] ?? found?.[2];
  const port = Number(found?.[3]);
  if (!found || host === undefined || port > 65535) {
    return {
      ok: false,
      problem: `must be off or IP:PORT (IPv6 in brackets: [::1]:50368), got ${JSON.stringify(value)}`,
    };
  }
  const family = isIP(host);
  if (family === 0 || (family === 6) !== (found[1] !== undefined)) {
    return {
      ok: false,
      problem: `must name an IP address to bind (IPv6 in brackets), got ${JSON.stringify(value)}`,
    };
  }
  return { ok: true, address: { host, port } };
}

/** Loopback binds are reachable from this machine only: the one case that needs no admin token. */
export function isLoopbackBind(host: string): boolean {
  return host === "::1" || /^127\./.test(host);
}

/** HOST:PORT as a URL authority (IPv6 in brackets). */
export function formatAdminAddress(address: AdminAddress): string {
  return address.host.includes(":") ? `[${address.host}]:${address.port}` : `${address.host}:${address.port}`;
}
