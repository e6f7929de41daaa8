/**
 * The cold path: one uncached lookup through headwire (the real HeadwireClient, on a session held
 * open, a fresh UDP port per query as the protocol says) against fetching the same origin directly,
 * with a bare Node request (http.get, a fresh connection each time, timed to the response header)
 * and with curl (`curl -s -D - -o /dev/null URL`, a process per request). Every lookup names a URL
 * never asked before, and the three methods take turns so that they share any drift.
 */
import { execFile, execFileSync } from "node:child_process";
import { get } from "node:http";
import { performance } from "node:perf_hooks";
import { HeadwireClient } from "../src/client/headwire-client.js";
import type { CraftedOrigin, CraftedResponse } from "../src/demo/crafted-origin.js";

export interface ColdSummary {
  samples: number;
  p50Ms: number;
  p99Ms: number;
  meanMs: number;
  failures: number;
}

export interface ColdResult {
  headwire: ColdSummary;
  nodeHttp: ColdSummary;
  /** Undefined when curl is not installed. */
  curl?: ColdSummary;
  /** `curl --version`: what starting a curl process costs, with no network at all. */
  curlStartup?: ColdSummary;
  warmupSamples: number;
  /** The same comparison against an origin that answers after REMOTE_ORIGIN_DELAY_MS. */
  remote?: { delayMs: number; headwire: ColdSummary; nodeHttp: ColdSummary };
}

/** A typical origin's distance on the internet; the loopback origin answers in ~0.1 ms. */
export const REMOTE_ORIGIN_DELAY_MS = 20;

export function summarizeMs(values: number[], failures = 0): ColdSummary {
  const sorted = [...values].sort((a, b) => a - b);
  const at = (q: number) => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? 0;
  const mean = sorted.length === 0 ? 0 : sorted.reduce((a, b) => a + b, 0) / sorted.length;
  return { samples: sorted.length, p50Ms: at(0.5), p99Ms: at(0.99), meanMs: mean, failures };
}

export function curlAvailable(): boolean {
  try {
    execFileSync("curl", ["--version"], { stdio: "ignore", timeout: 5000 });
    return true;
  } catch {
    return false;
  }
}

function nodeFetch(url: string): Promise<number> {
  const started = performance.now();
  return new Promise((resolve, reject) => {
    const request = get(url, { agent: false, timeout: 10_000 }, (response) => {
      const ms = performance.now() - started;
      response.destroy();
      resolve(ms);
    });
    request.on("timeout", () => request.destroy(new Error("timeout")));
    request.on("error", reject);
  });
}

function runTimed(command: string, args: string[]): Promise<number> {
  const started = performance.now();
  return new Promise((resolve, reject) => {
    execFile(command, args, { timeout: 10_000 }, (error) =>
      error ? reject(error) : resolve(performance.now() - started),
    );
  });
}

export async function measureColdPath(
  origin: CraftedOrigin,
  response: CraftedResponse,
  server: { host: string; controlPort: number },
  samples: number,
  useCurl: boolean,
): Promise<ColdResult> {
  const warmupSamples = Math.min(20, Math.ceil(samples / 10));
  const base = `http://127.0.0.1:${origin.port}`;
  const run = Date.now().toString(36);
  const client = await HeadwireClient.connect({ serverHost: server.host, serverPort: server.controlPort });
  const times = {
    headwire: [] as number[],
    nodeHttp: [] as number[],
    curl: [] as number[],
    curlStartup: [] as number[],
  };
  const failures = { headwire: 0, nodeHttp: 0, curl: 0, curlStartup: 0 };
  try {
    for (let i = 0; i < warmupSamples + samples; i++) {
      const keep = i >= warmupSamples;
      const path = (method: string) => `/cold/${run}/${method}/${i}`;
      for (const method of ["headwire", "node", "curl"]) origin.set(path(method), response);

      const started = performance.now();
      const result = await client.query({ url: `${base}${path("headwire")}`, write: false });
      const ms = performance.now() - started;
      if (result.error || result.cache !== "MISS") failures.headwire++;
      else if (keep) times.headwire.push(ms);

      try {
        const nodeMs = await nodeFetch(`${base}${path("node")}`);
        if (keep) times.nodeHttp.push(nodeMs);
      } catch {
        failures.nodeHttp++;
      }

      if (useCurl) {
        try {
          const curlMs = await runTimed("curl", ["-s", "-D", "-", "-o", "/dev/null", `${base}${path("curl")}`]);
          if (keep) times.curl.push(curlMs);
        } catch {
          failures.curl++;
        }
        if (i % 4 === 0) {
          try {
            const startupMs = await runTimed("curl", ["--version"]);
            if (keep) times.curlStartup.push(startupMs);
          } catch {
            failures.curlStartup++;
          }
        }
      }
    }
  } finally {
    await client.terminate().catch(() => client.destroy());
  }
  return {
    headwire: summarizeMs(times.headwire, failures.headwire),
    nodeHttp: summarizeMs(times.nodeHttp, failures.nodeHttp),
    ...(useCurl
      ? {
          curl: summarizeMs(times.curl, failures.curl),
          curlStartup: summarizeMs(times.curlStartup, failures.curlStartup),
        }
      : {}),
    warmupSamples,
  };
}
