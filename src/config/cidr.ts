/**
 * The syntax of a CIDR range as `--allow` takes it (pure): the settings table checks it at start,
 * and the outbound guard (src/fetch/outbound-guard.ts) refuses the same strings when built in code.
 */
import ipaddr from "ipaddr.js";

/** What is wrong with `cidr` ("is not a CIDR range like ..."), or undefined when it is one. */
export function cidrProblem(cidr: string): string | undefined {
  const match = /^([^/]+)\/(\d{1,3})$/.exec(cidr);
  // Only canonical addresses: ipaddr.js also reads "127.1" or "0x7f.1", which a reader would not expect.
  const isCanonical =
    match !== null && (ipaddr.IPv4.isValidFourPartDecimal(match[1]!) || ipaddr.IPv6.isValid(match[1]!));
  if (!isCanonical) return `${JSON.stringify(cidr)} is not a CIDR range like 203.0.113.0/24 or 2001:db8::/32`;
  const maxBits = ipaddr.IPv4.isValidFourPartDecimal(match[1]!) ? 32 : 128;
  if (Number(match[2]) > maxBits) return `${JSON.stringify(cidr)} has a prefix length above ${maxBits}`;
  return undefined;
}
