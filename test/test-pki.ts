/**
 * A throwaway CA and a certificate for origin.test and 127.0.0.1 (made once per test process with
 * the openssl CLI), for TLS origins in tests; undefined when openssl is not installed.
 */
import { execFileSync, spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

export interface TestPki {
  ca: Buffer;
  key: Buffer;
  cert: Buffer;
}

/** A throwaway CA and a certificate for origin.test and 127.0.0.1, made with the openssl CLI. */
function makeTestPki(): TestPki | undefined {
  if (spawnSync("openssl", ["version"]).error) return undefined;
  const dir = mkdtempSync(join(tmpdir(), "headwire-pki-"));
  try {
    const run = (...args: string[]) => execFileSync("openssl", args, { cwd: dir, stdio: "pipe" });
    const ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];
    run(
      "req",
      "-x509",
      ...ec,
      "-keyout",
      "ca.key",
      "-out",
      "ca.crt",
      "-days",
      "2",
      "-subj",
      "/CN=headwire test CA",
      "-addext",
      "basicConstraints=critical,CA:TRUE",
      "-addext",
      "keyUsage=critical,keyCertSign,cRLSign",
    );
    run("req", ...ec, "-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=origin.test");
    writeFileSync(
      join(dir, "ext.cnf"),
      "subjectAltName=DNS:origin.test,IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n",
    );
    run(
      "x509",
      "-req",
      "-in",
      "server.csr",
      "-CA",
      "ca.crt",
      "-CAkey",
      "ca.key",
      "-CAcreateserial",
      "-out",
      "server.crt",
      "-days",
      "2",
      "-extfile",
      "ext.cnf",
    );
    const read = (name: string) => readFileSync(join(dir, name));
    return { ca: read("ca.crt"), key: read("server.key"), cert: read("server.crt") };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

let pki: TestPki | undefined | null = null;
export function testPki(): TestPki | undefined {
  if (pki === null) pki = makeTestPki();
  return pki;
}
