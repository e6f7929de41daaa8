/**
 * Where a client may send REQUEST datagrams. A ticket's `udp=` host comes from the server, and
 * the client sends there at once: a hostile or compromised server could name a third party's
 * address and have every client aim datagrams at it (vsftpd refuses a data connection to any
 * address but the control connection's peer for the same reason). So the host must be the one
 * the control session is connected to, or one the user named (`--trust-udp-host`, for a server
 * behind NAT or a load balancer that runs with `--advertise`). Pure: no I/O.
 */
import { isIP } from "node:net";
import ipaddr from "ipaddr.js";

/**
 * One spelling per host, so that equal hosts compare equal: an IP address in its canonical form
 * (IPv6 compressed and in lower case; IPv4-mapped IPv6, as a dual-stack socket reports an IPv4
 * peer, as plain IPv4), a name in lower case without a final dot.
 */
export function canonicalHost(host: string): string {
  if (isIP(host) !== 0) return ipaddr.process(host).toString();
  return host.toLowerCase().replace(/\.$/, "");
}

/** Whether REQUESTs may go to `udpHost`: the control session's peer, or a host the user trusts. */
export function isTrustedUdpHost(
  udpHost: string,
  controlPeer: string | undefined,
  trusted: readonly string[],
): boolean {
  const host = canonicalHost(udpHost);
  if (controlPeer !== undefined && host === canonicalHost(controlPeer)) return true;
  return trusted.some((name) => canonicalHost(name) === host);
}
