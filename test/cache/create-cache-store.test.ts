import assert from "node:assert/strict";
import { join } from "node:path";
import { test } from "node:test";
import { createCacheStore } from "../../src/cache/create-cache-store.js";
import { resolveServerConfig } from "../../src/config.js";
import { tempDir } from "../helpers.js";

const parts = { now: Date.now, log: () => {}, retentionMs: () => 60_000 };

test("the config names the store: file by default, memory, or Redis", async (t) => {
  const dir = await tempDir(t);
  const file = createCacheStore(resolveServerConfig({ cacheFile: join(dir, "cache.txt") }), parts);
  assert.equal(file.kind, "file");
  const memory = createCacheStore(resolveServerConfig({ cacheUrl: "memory" }), parts);
  assert.equal(memory.kind, "memory");
  // Built, not opened: no connection is attempted until open().
  const redis = createCacheStore(resolveServerConfig({ cacheUrl: "redis://127.0.0.1:1/0" }), parts);
  assert.equal(redis.kind, "redis");
  await redis.close();
});
