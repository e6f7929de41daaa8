/**
 * The live status page in a real headless Chromium (Debian `chromium`, driven by playwright-core):
 * a query made after the page loaded appears (server-sent events), the session it came from is
 * listed and its message-sequence diagram shows its control lines and datagrams, and a purge from
 * the page's cache table empties the entry. A screenshot is kept in test-results/.
 */
import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { mkdir, mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";
import { HeadwireClient } from "../../src/client/headwire-client.js";
import { CraftedOrigin } from "../../src/demo/crafted-origin.js";
import { startServer, tempDir } from "../helpers.js";

const CHROMIUM = "/usr/bin/chromium";
const CACHEABLE = { header: "HTTP/1.1 200 OK\r\nCache-Control: max-age=600\r\nServer: status-page-test\r\n\r\n" };
const ARTIFACTS = fileURLToPath(new URL("../../../test-results/", import.meta.url));
/** Generous: a loaded 2-core machine starts Chromium slowly. */
const WAIT_MS = 60_000;

test("status page in Chromium: a live query, its session's sequence diagram, a purge", async (t) => {
  if (!existsSync(CHROMIUM)) {
    t.skip("chromium not installed: apt-get install chromium");
    return;
  }
  const dir = await tempDir(t);
  const origin = await CraftedOrigin.start({ "/page": CACHEABLE });
  t.after(() => origin.close());
  const server = await startServer(dir, { adminHttp: "127.0.0.1:0" }, t);
  const profile = await mkdtemp(join(tmpdir(), "headwire-chromium-"));
  t.after(() => rm(profile, { recursive: true, force: true, maxRetries: 10, retryDelay: 50 }));
  // A fresh profile directory: playwright takes it as the persistent context's user data dir.
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    viewport: { width: 1400, height: 1100 },
    args: [
      "--headless",
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
    ],
    timeout: WAIT_MS,
  });
  t.after(() => context.close());
  const page = await context.newPage();
  page.setDefaultTimeout(WAIT_MS);
  const pageErrors: string[] = [];
  page.on("pageerror", (error) => pageErrors.push(error.message));
  await page.goto(`http://127.0.0.1:${server.adminPort}/`);
  await page.locator("#live.on").waitFor();

  // After the page has loaded: a session with a miss and a hit, still open.
  const client = await HeadwireClient.connect({ serverPort: server.controlPort, outDir: dir });
  t.after(() => client.destroy());
  const url = `http://127.0.0.1:${origin.port}/page`;
  assert.equal((await client.query({ url })).cache, "MISS");
  assert.equal((await client.query({ url })).cache, "HIT");

  // The newest query first. Waited for, not read once: a snapshot fetched before the HIT's live
  // event but answered after it shows the MISS on top until the next refresh (250 ms later).
  await page.locator("#queries tbody tr:first-child", { hasText: "HIT" }).waitFor();
  await page.locator("#queries tbody tr", { hasText: url }).first().waitFor();
  // The session's row is updated by its own events, which may come after the queries table's: wait
  // for the row to read 2 queries, 0 errors, last outcome HIT (a first look may still show the MISS).
  const session = page.locator("#sessions tbody tr", { hasText: /127\.0\.0\.1 :\d+.*2.*0HIT/s }).first();
  await session.waitFor();
  await page.locator('#cache-figures dd[data-figure="hit ratio"]', { hasText: "50.0 %" }).waitFor();

  await session.click();
  const diagram = page.locator("#diagram svg");
  await diagram.waitFor();
  await diagram
    .locator("text", { hasText: /^QUERY http:\/\/127\.0\.0\.1:\d+\/page/ })
    .first()
    .waitFor();
  await diagram
    .locator("text", { hasText: /^TICKET token=/ })
    .first()
    .waitFor();
  await diagram
    .locator("text", { hasText: /^REQUEST #\d+ from :\d+/ })
    .first()
    .waitFor();
  await diagram
    .locator("text", { hasText: /^CHUNK 0 to :\d+ \(\d+ B\)/ })
    .first()
    .waitFor();
  const heads = await diagram.locator("text.head").allTextContents();
  assert.equal(heads.length, 4);
  assert.match(heads[1]!, new RegExp(`server tcp :${server.controlPort}`));
  assert.match(heads[2]!, new RegExp(`server udp :${server.dataPort}`));

  await mkdir(ARTIFACTS, { recursive: true });
  await page.screenshot({ path: join(ARTIFACTS, "status-page.png"), fullPage: true });

  // A purge from the page's cache table: DELETE /cache?url=…, and the entry is gone.
  await page.locator("#cache tbody tr", { hasText: url }).locator("button.purge").click();
  await page.locator('#cache-figures dd[data-figure="entries"]', { hasText: /^0$/ }).waitFor();
  assert.equal((await server.cacheStats()).entries, 0);
  assert.deepEqual(pageErrors, [], "no script error on the page");
});
