/**
 * The cold path: uncached lookups through headwire against fetching the origin directly
 * (bench/cold-path.ts), on loopback, then with the origin as far away as a real one.
 */
import { curlAvailable, measureColdPath, REMOTE_ORIGIN_DELAY_MS } from "../cold-path.js";
import { fixed } from "../format.js";
import type { BenchHarness } from "../harness.js";
import { benchHeader, log } from "../harness.js";
import { HOST } from "../line-client.js";
import type { ColdPhaseResult } from "../results.js";

export async function runCold(bench: BenchHarness): Promise<ColdPhaseResult> {
  const useCurl = curlAvailable();
  if (!useCurl) log("cold: curl is NOT installed: the curl column is skipped (apt-get install curl)");
  const server = await bench.startServer("headwire");
  try {
    const result = await measureColdPath(
      bench.origin,
      benchHeader("x"),
      { host: HOST, controlPort: Number(server.ready.controlPort) },
      bench.options.coldSamples,
      useCurl,
    );
    log(
      `cold: headwire p50 ${fixed(result.headwire.p50Ms, 3)} ms, node http p50 ${fixed(result.nodeHttp.p50Ms, 3)} ms` +
        (result.curl ? `, curl p50 ${fixed(result.curl.p50Ms, 3)} ms` : ""),
    );
    // The same, with the origin as far away as a real one: what a user sees.
    bench.origin.responseDelayMs = REMOTE_ORIGIN_DELAY_MS;
    let remote;
    try {
      remote = await measureColdPath(
        bench.origin,
        benchHeader("x"),
        { host: HOST, controlPort: Number(server.ready.controlPort) },
        Math.max(10, Math.round(bench.options.coldSamples / 5)),
        false,
      );
    } finally {
      bench.origin.responseDelayMs = 0;
    }
    log(
      `cold, origin ${REMOTE_ORIGIN_DELAY_MS} ms away: headwire p50 ${fixed(remote.headwire.p50Ms, 3)} ms, ` +
        `node http p50 ${fixed(remote.nodeHttp.p50Ms, 3)} ms`,
    );
    return {
      ...result,
      remote: { delayMs: REMOTE_ORIGIN_DELAY_MS, headwire: remote.headwire, nodeHttp: remote.nodeHttp },
      curlMissing: !useCurl,
    };
  } finally {
    await bench.stopServer(server);
  }
}
