import assert from "node:assert/strict";
import { readFile, writeFile, readdir } from "node:fs/promises";
import { join } from "node:path";
import { test } from "node:test";
import { FileCacheStore } from "../../src/cache/file-cache-store.js";
import { HeadwireClient } from "../../src/client/headwire-client.js";
import { CraftedOrigin, REALISTIC_HEADERS } from "../../src/demo/crafted-origin.js";
import { startServer, tempDir } from "../helpers.js";

function headerBytes(path: string): Buffer {
  const header = REALISTIC_HEADERS[path]?.header;
  assert.ok(header, `no crafted header for ${path}`);
  return Buffer.from(header as string);
}

test("a full session: several queries, then terminate; files byte-exact, misses then hits", async (t) => {
  const dir = await tempDir(t);
  const origin = await CraftedOrigin.start(REALISTIC_HEADERS);
  t.after(() => origin.close());
  const server = await startServer(dir, {}, t);
  const client = await HeadwireClient.connect({ serverPort: server.controlPort, outDir: join(dir, "out") });
  const base = `127.0.0.1:${origin.port}`;
  const paths = ["/twitch", "/google", "/legacy", "/twitch", "/google"];
  const outcomes = [];
  for (const path of paths) {
    const result = await client.query({ url: `${base}${path}` });
    assert.equal(result.error, undefined, JSON.stringify(result.error));
    assert.ok(result.file);
    assert.deepEqual(await readFile(result.file), headerBytes(path), `${path} is byte-exact`);
    outcomes.push(result.cache);
  }
  // google's header says "private": a shared cache must not store it (RFC 9111 §5.2.2.7).
  assert.deepEqual(outcomes, ["MISS", "MISS", "MISS", "HIT", "MISS"]);
  assert.equal(origin.requests.get("/twitch"), 1);
  assert.equal(origin.requests.get("/google"), 2);
  await client.terminate();
  // TERMINATE persists the cache, as the seed does.
  const persisted = await readFile(join(dir, "cache.txt"), "latin1");
  assert.match(persisted, /^headwire-cache 1\n/);
  assert.match(persisted, /end entries=2\n$/);
});

test("50 concurrent clients over overlapping URLs: every file byte-exact, each URL fetched once", async (t) => {
  const dir = await tempDir(t);
  const origin = await CraftedOrigin.start(REALISTIC_HEADERS);
  t.after(() => origin.close());
  const server = await startServer(dir, {}, t);
  const paths = Object.keys(REALISTIC_HEADERS);
  await Promise.all(
    Array.from({ length: 50 }, async (_, i) => {
      const outDir = join(dir, `client-${i}`);
      const client = await HeadwireClient.connect({ serverPort: server.controlPort, outDir });
      for (let k = 0; k < paths.length; k++) {
        const path = paths[(i + k) % paths.length]!;
        const result = await client.query({ url: `127.0.0.1:${origin.port}${path}` });
        assert.equal(result.error, undefined, JSON.stringify(result.error));
        assert.deepEqual(await readFile(result.file!), headerBytes(path));
      }
      await client.terminate();
      assert.equal((await readdir(outDir)).length, paths.length);
    }),
  );
  // Concurrent misses on one URL share a single origin fetch; storable headers are then hits.
  for (const path of paths.filter((p) => p !== "/google")) {
    assert.equal(origin.requests.get(path), 1, `${path} fetched once`);
  }
});

test("the cache survives a restart, and a hit never reaches the origin", async (t) => {
  const dir = await tempDir(t);
  const origin = await CraftedOrigin.start(REALISTIC_HEADERS);
  t.after(() => origin.close());
  const url = `127.0.0.1:${origin.port}/cdn`;
  const first = await startServer(dir);
  const client = await HeadwireClient.connect({ serverPort: first.controlPort, outDir: dir });
  assert.equal((await client.query({ url })).cache, "MISS");
  await client.terminate();
  await first.stop();
  assert.equal(origin.requestCount, 1);

  const second = await startServer(dir, {}, t);
  assert.equal((await second.cacheStats()).entries, 1);
  const again = await HeadwireClient.connect({ serverPort: second.controlPort, outDir: join(dir, "again") });
  const hit = await again.query({ url });
  assert.equal(hit.cache, "HIT");
  assert.deepEqual(await readFile(hit.file!), headerBytes("/cdn"));
  assert.equal(origin.requestCount, 1, "the hit was served without contacting the origin");
  await again.terminate();
});

test("a corrupt cache file is moved aside and the server starts empty", async (t) => {
  const dir = await tempDir(t);
  await writeFile(join(dir, "cache.txt"), "headwire-cache 1\nentry url=http://x/ status=200 stored=nonsense");
  const lines: string[] = [];
  const server = await startServer(dir, { log: (line) => lines.push(line) }, t);
  assert.equal((await server.cacheStats()).entries, 0);
  const names = await readdir(dir);
  assert.ok(
    names.some((name) => name.startsWith("cache.txt.corrupt-")),
    names.join(","),
  );
  assert.ok(
    lines.some((line) => /corrupt.*moved aside/.test(line)),
    lines.join("\n"),
  );
});

test("the cache is persisted shortly after a change, without any terminate", async (t) => {
  const dir = await tempDir(t);
  const origin = await CraftedOrigin.start(REALISTIC_HEADERS);
  t.after(() => origin.close());
  const store = new FileCacheStore({
    path: join(dir, "cache.txt"),
    maxEntries: 100,
    maxTotalBytes: 1_000_000,
    persistDelayMs: 10,
    retentionOnLoadMs: () => 60_000,
    log: () => {},
  });
  const server = await startServer(dir, { store }, t);
  const client = await HeadwireClient.connect({ serverPort: server.controlPort, outDir: dir });
  t.after(() => client.destroy());
  const written = store.nextWrite();
  await client.query({ url: `127.0.0.1:${origin.port}/twitch` });
  await written; // the scheduled write, triggered by the change alone
  const persisted = await readFile(join(dir, "cache.txt"), "latin1");
  assert.match(persisted, /end entries=1\n$/);
  assert.ok(persisted.includes(String(headerBytes("/twitch").toString("latin1"))));
});
