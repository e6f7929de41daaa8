/**
 * A headwire server and its origin in a worker thread, for test/e2e/buffer-loss-credit.test.ts:
 * that test blocks its own thread on purpose (so its kernel drops chunks), and the server must go
 * on sending meanwhile. Asked "stats", it posts its data channel's counters; asked "stop", it stops.
 */
import { parentPort, workerData } from "node:worker_threads";
import { CraftedOrigin } from "../../src/demo/crafted-origin.js";
import { HeadwireServer } from "../../src/server/headwire-server.js";
import { UNLIMITED } from "../helpers.js";

export interface BufferLossServerData {
  header: string;
  bufferLossCreditDeliveries: number;
}

const { header, bufferLossCreditDeliveries } = workerData as BufferLossServerData;
const origin = await CraftedOrigin.start({ "/big": { header } });
const server = new HeadwireServer({
  host: "127.0.0.1",
  controlPort: 0,
  dataPort: 0,
  cacheUrl: "memory",
  allowPrivate: true,
  ...UNLIMITED,
  retransmitBudget: 1,
  bufferLossCreditDeliveries,
  // A failed delivery's ticket stays pending: stopping must not wait for it.
  shutdownGraceMs: 0,
  log: () => {},
});
await server.start();
const port = parentPort!;
port.postMessage({ kind: "ready", controlPort: server.controlPort, url: `127.0.0.1:${origin.port}/big` });
port.on("message", (message: string) => {
  if (message === "stats") port.postMessage({ kind: "stats", data: server.stats().data });
  if (message === "stop") {
    void server
      .stop()
      .then(() => origin.close())
      .then(() => port.close());
  }
});
