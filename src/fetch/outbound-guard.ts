/**
 * Decides which IP addresses headwire may connect to. A header fetcher reachable by anyone is an
 * SSRF tool unless it refuses the server's own network: loopback services, the cloud metadata
 * endpoint (169.254.169.254), RFC 1918 hosts, and so on. The guard judges the *resolved address*
 * the fetcher is about to connect to, never the name, so no spelling of a host gets around it.
 *
 * Ranges come from ipaddr.js's range() classification; only "unicast" passes by default. That
 * refuses loopback, private, linkLocal, carrierGradeNat, uniqueLocal, multicast, unspecified,
 * broadcast, reserved, and the IPv6 transition ranges (6to4, Teredo, NAT64 rfc6052) that can
 * embed an IPv4 address. IPv4-mapped (::ffff:a.b.c.d) and deprecated IPv4-compatible (::a.b.c.d,
 * RFC 4291 §2.5.5.1) addresses are judged as the IPv4 address they carry.
 */
import ipaddr from "ipaddr.js";
import { cidrProblem } from "../config/cidr.js";
import { ConfigError, HeadwireError } from "../errors.js";

export interface OutboundGuardOptions {
  /** Allow every address (development, tests, a private deployment). */
  allowPrivate: boolean;
  /** CIDR ranges allowed even though their class is refused, e.g. "10.1.2.0/24". */
  allow: string[];
}

type Address = ipaddr.IPv4 | ipaddr.IPv6;
type Cidr = [Address, number];

const ALLOWED_RANGE = "unicast";
const IPV4_COMPATIBLE: Cidr = ipaddr.parseCIDR("::/96");

export class OutboundGuard {
  private readonly allowPrivate: boolean;
  private readonly allowed: readonly Cidr[];

  constructor(options: OutboundGuardOptions) {
    if (typeof options.allowPrivate !== "boolean") {
      throw new ConfigError("outboundGuard.allowPrivate must be a boolean");
    }
    if (!Array.isArray(options.allow)) throw new ConfigError("outboundGuard.allow must be an array of CIDR strings");
    this.allowPrivate = options.allowPrivate;
    this.allowed = options.allow.map((cidr, index) => parseAllowedCidr(cidr, index));
  }

  /**
   * Throws BLOCKED_ADDRESS unless the address may be connected to. `host`: the name that
   * resolved to it, for the message ("localhost resolves to 127.0.0.1, a loopback address: …").
   */
  check(address: string, host?: string): void {
    const verdict = this.judge(address);
    if (verdict !== undefined) throw new HeadwireError("BLOCKED_ADDRESS", refusalSentence(verdict, host));
  }

  isAllowed(address: string): boolean {
    return this.judge(address) === undefined;
  }

  /** undefined when allowed, else what the address is. */
  private judge(address: string): Verdict | undefined {
    const parsed = parseAddress(address);
    if (parsed === undefined) return { shown: JSON.stringify(address), range: undefined, cidr: undefined };
    if (this.allowPrivate) return undefined;
    const effective = embeddedIPv4(parsed) ?? parsed;
    if (this.allowed.some((cidr) => matches(parsed, cidr) || matches(effective, cidr))) return undefined;
    const range = effective.range();
    if (range === ALLOWED_RANGE) return undefined;
    const shown = effective === parsed ? address : `${address} (${effective.toString()})`;
    return { shown, range, cidr: rangeCidr(effective, range) };
  }
}

/** What a refused address is: as shown, its ipaddr.js range, and the CIDR of that range holding it. */
interface Verdict {
  shown: string;
  range: string | undefined;
  cidr: string | undefined;
}

/** ipaddr.js range names, as words. */
const RANGE_WORDS: Readonly<Record<string, string>> = {
  linkLocal: "link-local",
  carrierGradeNat: "carrier-grade NAT",
  uniqueLocal: "unique-local",
  ipv4Mapped: "IPv4-mapped",
  deprecatedSiteLocal: "deprecated site-local",
  rfc6145: "RFC 6145 translation",
  rfc6052: "RFC 6052 (NAT64)",
  "6to4": "6to4",
  teredo: "Teredo",
  as112: "AS112",
  as112v6: "AS112",
  amt: "AMT",
};

/**
 * One sentence that says what the address is and which switch opens it, e.g. `localhost
 * resolves to 127.0.0.1, a loopback address: origins there are refused unless the server runs
 * with --allow-private (or --allow 127.0.0.0/8)`.
 */
function refusalSentence(verdict: Verdict, host: string | undefined): string {
  const subject = host === undefined ? verdict.shown : `${host} resolves to ${verdict.shown}`;
  if (verdict.range === undefined) return `${subject}, which is not an IP address`;
  const word = RANGE_WORDS[verdict.range] ?? verdict.range;
  const article = /^[aeiou8]/i.test(word) ? "an" : "a";
  const narrower = verdict.cidr === undefined ? "" : ` (or --allow ${verdict.cidr})`;
  return (
    `${subject}, ${article} ${word} address: origins there are refused unless the server runs with ` +
    `--allow-private${narrower}`
  );
}

/** The special range of ipaddr.js that holds the address, as CIDR text (e.g. 127.0.0.0/8). */
function rangeCidr(address: Address, range: string): string | undefined {
  const table = (address as unknown as { SpecialRanges: Record<string, unknown> }).SpecialRanges[range];
  if (!Array.isArray(table)) return undefined;
  const cidrs = (table.length === 2 && typeof table[1] === "number" ? [table] : table) as Cidr[];
  const found = cidrs.find((cidr) => matches(address, cidr));
  return found === undefined ? undefined : `${found[0].toString()}/${found[1]}`;
}

function parseAddress(address: string): Address | undefined {
  if (typeof address !== "string" || !ipaddr.isValid(address)) return undefined;
  return ipaddr.parse(address);
}

/** The IPv4 address an IPv4-mapped or IPv4-compatible IPv6 address stands for. */
function embeddedIPv4(address: Address): ipaddr.IPv4 | undefined {
  if (address.kind() !== "ipv6") return undefined;
  const v6 = address as ipaddr.IPv6;
  if (v6.isIPv4MappedAddress()) return v6.toIPv4Address();
  // ::/128 and ::1/128 keep their own meaning (unspecified, loopback).
  const special = v6.range();
  if (special === "unspecified" || special === "loopback") return undefined;
  if (!v6.match(IPV4_COMPATIBLE)) return undefined;
  return new ipaddr.IPv4(v6.toByteArray().slice(12)); // the low 32 bits
}

function matches(address: Address, [network, bits]: Cidr): boolean {
  return address.kind() === network.kind() && address.match(network, bits);
}

function parseAllowedCidr(cidr: unknown, index: number): Cidr {
  const where = `outboundGuard.allow[${index}]`;
  if (typeof cidr !== "string") throw new ConfigError(`${where} must be a CIDR string, got ${typeof cidr}`);
  const problem = cidrProblem(cidr);
  if (problem !== undefined) throw new ConfigError(`${where} ${problem}`);
  return ipaddr.parseCIDR(cidr);
}
