/**
 * `headwire demo`: everything on this machine, offline. A local origin with realistic headers, a
 * server on ephemeral ports, and one client session that asks for a miss, a hit, another miss and
 * an error, showing each message on both channels.
 */
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { HeadwireClient, type QueryResult } from "../client/headwire-client.js";
import { HeadwireServer } from "../server/headwire-server.js";
import { CraftedOrigin, REALISTIC_HEADERS } from "./crafted-origin.js";

export interface DemoOutput {
  (line: string): void;
}

export async function runDemo(out: DemoOutput = (line) => process.stdout.write(`${line}\n`)): Promise<number> {
  const workDir = await mkdtemp(join(tmpdir(), "headwire-demo-"));
  const origin = await CraftedOrigin.start(REALISTIC_HEADERS);
  const server = new HeadwireServer({
    host: "127.0.0.1",
    controlPort: 0,
    dataPort: 0,
    cacheFile: join(workDir, "cache.txt"),
    allowPrivate: true, // the demo's origin is on loopback; a public server keeps the guard closed
    adminHttp: "off", // a demo must not take a running server's admin port
    log: (message) => out(`  [server] ${message}`),
  });
  await server.start();
  const base = `127.0.0.1:${origin.port}`;
  out(`origin: http://${base}/ (a local stand-in for the seed's sites)`);
  out(`server: control tcp 127.0.0.1:${server.controlPort}, data udp 127.0.0.1:${server.dataPort}`);
  out(`client: files go to ${join(workDir, "out")}`);
  out("");
  let failures = 0;
  try {
    const client = await HeadwireClient.connect(
      { serverHost: "127.0.0.1", serverPort: server.controlPort, outDir: join(workDir, "out") },
      (channel, direction, text) =>
        out(`  ${channel.toUpperCase()} ${direction === "send" ? "→" : direction === "recv" ? "←" : "*"} ${text}`),
    );
    const steps: Array<{ say: string; url: string; expect: "MISS" | "HIT" | "error" }> = [
      { say: "a miss: the server fetches the header from the origin", url: `${base}/twitch`, expect: "MISS" },
      { say: "the same URL again: a hit, served from the cache", url: `${base}/twitch`, expect: "HIT" },
      { say: "another site; its header says private, so it is never cached", url: `${base}/google`, expect: "MISS" },
      { say: "a news site's long header (3.7 KiB): several UDP chunks", url: `${base}/news`, expect: "MISS" },
      { say: "an HTTP/1.0 origin with bare LF line ends, kept as sent", url: `${base}/legacy`, expect: "MISS" },
      { say: "an error: nothing listens on port 1", url: "127.0.0.1:1/", expect: "error" },
    ];
    let firstFile: string | undefined;
    for (const step of steps) {
      out(`▶ ${step.say}: ${step.url}`);
      const result = await client.query({ url: step.url });
      firstFile ??= result.file;
      out(`  = ${summarize(result)}`);
      const outcome = result.error ? "error" : result.cache;
      if (outcome !== step.expect) {
        failures++;
        out(`  ✗ expected ${step.expect}, got ${outcome}`);
      }
      out("");
    }
    out("▶ terminate");
    await client.terminate();
    out("");
    out(`origin requests: ${origin.requestCount} (the hit never reached it)`);
    if (firstFile) {
      out(`the twitch header as the client wrote it to ${firstFile}:`);
      out((await readFile(firstFile, "latin1")).replace(/\r\n/g, "\n").trimEnd());
    }
  } finally {
    await server.stop();
    await origin.close();
    await rm(workDir, { recursive: true, force: true });
  }
  out("");
  out(failures === 0 ? "demo finished: every step did what it should" : `demo finished with ${failures} surprises`);
  return failures === 0 ? 0 : 1;
}

function summarize(result: QueryResult): string {
  if (result.error) return `error ${result.error.code}: ${result.error.message}`;
  return `${result.statusLine} | ${result.bytes} bytes | ${result.cache} | ${result.ms} ms`;
}
