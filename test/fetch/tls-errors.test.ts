/** TLS failures in words: each Node/OpenSSL code becomes a sentence, never OpenSSL's own text. */
import assert from "node:assert/strict";
import { test } from "node:test";
import { tlsFailure, tlsSentence } from "../../src/fetch/tls-errors.js";

function nodeError(code: string, extra: Record<string, unknown> = {}): Error {
  // Node's messages carry OpenSSL's text; none of it may reach the sentence.
  return Object.assign(new Error(`C0B7:error:0A000086:SSL routines:tls_post_process_server_certificate:${code}`), {
    code,
    ...extra,
  });
}

const HINT = "; -k (insecure=1) skips the check where the server runs with --allow-insecure-queries";

test("certificate failures name the certificate's problem and -k", () => {
  const expiredSocket = { getPeerCertificate: () => ({ valid_to: "Jan  1 00:00:00 2026 GMT" }) };
  assert.equal(
    tlsSentence(nodeError("CERT_HAS_EXPIRED"), "example.com", expiredSocket),
    `the certificate of example.com expired on 2026-01-01${HINT}`,
  );
  assert.equal(
    tlsSentence(nodeError("CERT_HAS_EXPIRED"), "example.com"),
    `the certificate of example.com expired${HINT}`,
  );
  assert.equal(
    tlsSentence(nodeError("DEPTH_ZERO_SELF_SIGNED_CERT"), "a.test"),
    `the certificate of a.test is self-signed, and this server does not trust it${HINT}`,
  );
  assert.equal(
    tlsSentence(nodeError("SELF_SIGNED_CERT_IN_CHAIN"), "a.test"),
    `the certificate of a.test comes from a self-signed CA this server does not trust${HINT}`,
  );
  for (const code of ["UNABLE_TO_VERIFY_LEAF_SIGNATURE", "UNABLE_TO_GET_ISSUER_CERT_LOCALLY"]) {
    assert.match(
      tlsSentence(nodeError(code), "a.test"),
      /^the certificate of a\.test is signed by a CA this server does not know/,
    );
  }
  const altname = nodeError("ERR_TLS_CERT_ALTNAME_INVALID", { cert: { subjectaltname: "DNS:a.test, DNS:www.a.test" } });
  assert.equal(tlsSentence(altname, "b.test:8443"), `the certificate is for a.test, www.a.test, not b.test${HINT}`);
  const cnOnly = nodeError("ERR_TLS_CERT_ALTNAME_INVALID", { cert: { subject: { CN: "a.test" } } });
  assert.equal(tlsSentence(cnOnly, "[::1]:8443"), `the certificate is for a.test, not ::1${HINT}`);
});

test("handshake failures in words, without OpenSSL's text", () => {
  const cases: Array<[string, RegExp]> = [
    ["ERR_SSL_SSLV3_ALERT_HANDSHAKE_FAILURE", /^a\.test and this server share no TLS version or cipher/],
    ["ERR_SSL_TLSV1_ALERT_PROTOCOL_VERSION", /^a\.test speaks only a TLS version this server does not/],
    ["ERR_SSL_UNSUPPORTED_PROTOCOL", /^a\.test speaks only a TLS version/],
    ["ERR_SSL_WRONG_VERSION_NUMBER", /^a\.test did not answer with TLS: is it plain http:\/\/ on that port\?$/],
    ["ECONNRESET", /^a\.test closed the connection during the TLS handshake$/],
    ["ERR_SSL_TLSV1_ALERT_INTERNAL_ERROR", /^a\.test ended the TLS handshake with the alert "internal error"$/],
    ["ERR_SOMETHING_NEW", /^the TLS handshake with a\.test failed \(ERR_SOMETHING_NEW\)$/],
  ];
  for (const [code, expected] of cases) {
    const sentence = tlsSentence(nodeError(code), "a.test");
    assert.match(sentence, expected, code);
    assert.doesNotMatch(sentence, /SSL routines|error:0A/, code);
  }
  const failure = tlsFailure(nodeError("CERT_REVOKED"), "a.test");
  assert.equal(failure.code, "TLS_FAILURE");
  assert.equal(failure.message, `the certificate of a.test is revoked${HINT}`);
});
