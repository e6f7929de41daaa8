/**
 * TLS failures in words: Node's and OpenSSL's error codes become one sentence that says what is
 * wrong with the origin's certificate or handshake, under TLS_FAILURE. OpenSSL's own text
 * ("error:0A000410:SSL routines:ssl3_read_bytes:...") never reaches a user: it names functions,
 * not problems. Certificate problems mention curl's -k, and that the server must allow it.
 */
import { HeadwireError } from "../errors.js";

/** What a certificate failure can add: switch it off per query, if the operator allows. */
const INSECURE_HINT = "; -k (insecure=1) skips the check where the server runs with --allow-insecure-queries";

/** The parts of a TLS socket a message may read the peer's certificate from. */
interface PeerCertificateSource {
  getPeerCertificate(detailed?: boolean): { valid_to?: string; valid_from?: string; subject?: unknown } | null;
}

interface TlsErrorFields {
  code?: unknown;
  reason?: unknown;
  host?: unknown;
  cert?: { subjectaltname?: unknown; subject?: { CN?: unknown } };
}

/** The TLS_FAILURE for an error during the handshake with `host` (the URL's host[:port]). */
export function tlsFailure(error: Error, host: string, socket?: PeerCertificateSource): HeadwireError {
  return new HeadwireError("TLS_FAILURE", tlsSentence(error, host, socket), { cause: error });
}

/** One sentence for the error; pure but for reading the peer's certificate from the socket. */
export function tlsSentence(error: Error, host: string, socket?: PeerCertificateSource): string {
  const fields = error as Error & TlsErrorFields;
  const code = typeof fields.code === "string" ? fields.code : "";
  const certificate = certificateWords(code, fields, host, socket);
  if (certificate !== undefined) return `${certificate}${INSECURE_HINT}`;
  return handshakeWords(code, host);
}

function certificateWords(
  code: string,
  fields: TlsErrorFields,
  host: string,
  socket: PeerCertificateSource | undefined,
): string | undefined {
  switch (code) {
    case "CERT_HAS_EXPIRED": {
      const date = isoDate(peerCertificate(socket)?.valid_to);
      return `the certificate of ${host} expired${date ? ` on ${date}` : ""}`;
    }
    case "CERT_NOT_YET_VALID": {
      const date = isoDate(peerCertificate(socket)?.valid_from);
      return `the certificate of ${host} is not valid yet${date ? ` (from ${date})` : ""}`;
    }
    case "DEPTH_ZERO_SELF_SIGNED_CERT":
      return `the certificate of ${host} is self-signed, and this server does not trust it`;
    case "SELF_SIGNED_CERT_IN_CHAIN":
      return `the certificate of ${host} comes from a self-signed CA this server does not trust`;
    case "UNABLE_TO_VERIFY_LEAF_SIGNATURE":
    case "UNABLE_TO_GET_ISSUER_CERT":
    case "UNABLE_TO_GET_ISSUER_CERT_LOCALLY":
      return `the certificate of ${host} is signed by a CA this server does not know (or ${host} sent an incomplete chain)`;
    case "CERT_UNTRUSTED":
    case "CERT_REJECTED":
      return `the certificate of ${host} is not trusted by this server`;
    case "CERT_REVOKED":
      return `the certificate of ${host} is revoked`;
    case "CERT_SIGNATURE_FAILURE":
    case "CERT_CHAIN_TOO_LONG":
    case "INVALID_CA":
    case "PATH_LENGTH_EXCEEDED":
    case "INVALID_PURPOSE":
      return `the certificate chain of ${host} is not valid (${code})`;
    case "ERR_TLS_CERT_ALTNAME_INVALID":
      return `the certificate is for ${namesOf(fields) ?? "other names"}, not ${hostName(host)}`;
    default:
      return undefined;
  }
}

function handshakeWords(code: string, host: string): string {
  if (/ALERT_HANDSHAKE_FAILURE|NO_SHARED_CIPHER|NO_CIPHERS_AVAILABLE|NO_SUITABLE/.test(code)) {
    return `${host} and this server share no TLS version or cipher they both accept (the handshake failed)`;
  }
  if (/PROTOCOL_VERSION|UNSUPPORTED_PROTOCOL|VERSION_TOO_LOW|VERSION_TOO_HIGH/.test(code)) {
    return `${host} speaks only a TLS version this server does not (protocol version alert)`;
  }
  if (/WRONG_VERSION_NUMBER|PACKET_LENGTH_TOO_LONG|RECORD_LENGTH_MISMATCH|HTTP_REQUEST/.test(code)) {
    return `${host} did not answer with TLS: is it plain http:// on that port?`;
  }
  if (code === "ECONNRESET" || code === "EPIPE") return `${host} closed the connection during the TLS handshake`;
  if (code.startsWith("ERR_SSL_TLSV1_ALERT_") || code.startsWith("ERR_SSL_SSLV3_ALERT_")) {
    const alert = code
      .replace(/^ERR_SSL_(TLSV1|SSLV3)_ALERT_/, "")
      .toLowerCase()
      .replace(/_/g, " ");
    return `${host} ended the TLS handshake with the alert "${alert}"`;
  }
  return `the TLS handshake with ${host} failed${code ? ` (${code})` : ""}`;
}

function peerCertificate(
  socket: PeerCertificateSource | undefined,
): { valid_to?: string; valid_from?: string } | undefined {
  try {
    return socket?.getPeerCertificate() ?? undefined;
  } catch {
    return undefined;
  }
}

/** "Jan  1 00:00:00 2026 GMT" (OpenSSL's form) as 2026-01-01. */
function isoDate(text: string | undefined): string | undefined {
  if (text === undefined) return undefined;
  const time = Date.parse(text);
  return Number.isNaN(time) ? undefined : new Date(time).toISOString().slice(0, 10);
}

/** The names a certificate is for: its DNS and IP subjectAltNames, else its CN. */
function namesOf(fields: TlsErrorFields): string | undefined {
  const san = fields.cert?.subjectaltname;
  if (typeof san === "string" && san !== "") {
    const names = san
      .split(/,\s*/)
      .map((entry) => entry.replace(/^(DNS|IP Address):/, ""))
      .filter((name) => name !== "");
    if (names.length > 0) return names.length > 4 ? `${names.slice(0, 4).join(", ")}…` : names.join(", ");
  }
  const cn = fields.cert?.subject?.CN;
  return typeof cn === "string" ? cn : undefined;
}

/** host[:port] without the port, as a certificate names it. */
function hostName(hostHeader: string): string {
  if (hostHeader.startsWith("[")) return hostHeader.slice(1, hostHeader.indexOf("]"));
  const colon = hostHeader.lastIndexOf(":");
  return colon === -1 ? hostHeader : hostHeader.slice(0, colon);
}
