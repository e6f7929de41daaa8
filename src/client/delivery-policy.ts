/**
 * What a client does when a header's UDP collection fails: ask for a new ticket (a fresh budget,
 * a fresh port), fall back to delivery over the control connection, or report the failure. One
 * policy per session, so a fallback to TCP is remembered for the rest of it. Pure: no sockets.
 */
import type { ErrorCode } from "../errors.js";
import type { Delivery } from "../protocol/control.js";

/** `--delivery`: udp and tcp are fixed; auto is UDP until UDP fails once, then TCP. */
export type DeliveryMode = Delivery | "auto";

export function isDeliveryMode(value: string): value is DeliveryMode {
  return value === "udp" || value === "tcp" || value === "auto";
}

/** What to do after a failed UDP collection. */
export type UdpFailureAction = "new-ticket" | "fall-back-to-tcp" | "give-up";

export class DeliveryPolicy {
  private fellBack = false;

  /** `retries`: new tickets asked for after a failed delivery (deliveryRetries). */
  constructor(
    readonly mode: DeliveryMode,
    private readonly retries: number,
  ) {}

  /** How the next query asks for its header. */
  get delivery(): Delivery {
    return this.mode === "tcp" || this.fellBack ? "tcp" : "udp";
  }

  /**
   * After the `ticketsTried`-th ticket of one query failed with `code`. Nothing at all arrived
   * (UDP_SILENT): a new ticket would wait as long for nothing, so auto goes to TCP at once. Some
   * of it arrived (DELIVERY_FAILED): the path works but lost too much; a new ticket has a new
   * budget, up to `retries` times, and auto then goes to TCP rather than fail.
   */
  afterUdpFailure(code: ErrorCode, ticketsTried: number): UdpFailureAction {
    const retryable = code === "DELIVERY_FAILED" && ticketsTried <= this.retries;
    if (retryable) return "new-ticket";
    const udpFailure = code === "UDP_SILENT" || code === "DELIVERY_FAILED";
    if (udpFailure && this.mode === "auto") {
      this.fellBack = true;
      return "fall-back-to-tcp";
    }
    return "give-up";
  }
}

/** The line said when a new ticket is asked for. */
export function newTicketNotice(url: string, ticketsTried: number, retries: number, reason: string): string {
  return `${url}: UDP delivery failed (${reason}); asking for a new ticket (retry ${ticketsTried} of ${retries})`;
}

/** The line said when auto mode leaves UDP for the rest of the session. */
export function fallbackNotice(udpHost: string, udpPort: number, code: ErrorCode, ticketsTried: number): string {
  const host = udpHost.includes(":") ? `[${udpHost}]` : udpHost;
  const what =
    code === "UDP_SILENT"
      ? "no datagram arrived"
      : `${ticketsTried} ticket${ticketsTried === 1 ? "" : "s"} failed to deliver`;
  return (
    `UDP to ${host}:${udpPort} seems blocked (${what}); ` +
    "delivering over the control connection (TCP) for the rest of this session"
  );
}
