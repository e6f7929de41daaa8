import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { lstat, mkdir, readdir, readFile, symlink, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { test } from "node:test";
import { CacheFile } from "../../src/cache/cache-file.js";
import { cacheFileLimitBytes, serializeCache } from "../../src/cache/cache-file-format.js";
import { ConfigError } from "../../src/errors.js";
import { tempDir } from "../helpers.js";
import { awkwardEntry } from "./cache-store-contract.js";

/** A cache file this test owns, its log collected. */
async function ownedFile(
  t: Parameters<typeof tempDir>[0],
  maxBytes?: number,
): Promise<{ dir: string; path: string; file: CacheFile; logged: string[] }> {
  const dir = await tempDir(t);
  const path = join(dir, "cache.txt");
  const logged: string[] = [];
  const file = new CacheFile(path, (line) => logged.push(line), maxBytes);
  await file.acquire();
  t.after(() => file.release());
  return { dir, path, file, logged };
}

test("cache file: a link planted at the old predictable temporary name is not followed", async (t) => {
  const { dir, path, file } = await ownedFile(t);
  const victim = join(dir, "victim");
  await writeFile(victim, "precious\n");
  // Before issue 11 the temporary file was `.cache.txt.<pid>.tmp`, and the pid is in the lock.
  await symlink(victim, join(dir, `.cache.txt.${process.pid}.tmp`));
  await file.write([awkwardEntry("http://example.com/")]);
  assert.equal(await readFile(victim, "utf8"), "precious\n", "the link's target is untouched");
  assert.ok((await lstat(path)).isFile(), "cache.txt is a regular file, not the planted link");
  assert.match(await readFile(path, "latin1"), /end entries=1\n$/);
});

test("cache file: the temporary name is random, and nothing but cache.txt remains after a write", async (t) => {
  const { dir, file } = await ownedFile(t);
  await file.write([awkwardEntry("a")]);
  await file.write([awkwardEntry("b")]);
  assert.deepEqual((await readdir(dir)).sort(), ["cache.txt", "cache.txt.lock"]);
});

test("cache file: leftover temporary files of a crashed writer (old and new names) are removed at acquire", async (t) => {
  const dir = await tempDir(t);
  const path = join(dir, "cache.txt");
  const leftovers = [".cache.txt.4242.tmp", `.cache.txt.${"ab".repeat(16)}.tmp`];
  for (const name of leftovers) await writeFile(join(dir, name), "half");
  await writeFile(join(dir, ".other.txt.4242.tmp"), "not ours");
  const file = new CacheFile(path, () => {});
  await file.acquire();
  t.after(() => file.release());
  assert.deepEqual((await readdir(dir)).sort(), [".other.txt.4242.tmp", "cache.txt.lock"]);
});

test("cache file: a write that fails removes its temporary file and rejects", async (t) => {
  const { dir, path, file } = await ownedFile(t);
  // As root (the tests run as root) permissions do not make a write fail; a directory where
  // cache.txt should be does: the rename of the temporary file over it fails with EISDIR.
  await mkdir(path);
  await assert.rejects(file.write([awkwardEntry("a")]), { code: "EISDIR" });
  assert.deepEqual((await readdir(dir)).sort(), ["cache.txt", "cache.txt.lock"]);
});

test("cache file: a FIFO is refused at once, naming the path", async (t) => {
  const { path, file } = await ownedFile(t);
  const made = spawnSync("mkfifo", [path]);
  assert.equal(made.status, 0, String(made.stderr));
  // Before issue 11 this hung forever (opening a FIFO for reading waits for a writer).
  const guard = setTimeout(() => assert.fail("load() hung on a FIFO"), 10_000);
  try {
    await assert.rejects(file.load(), (error: Error) => {
      assert.ok(error instanceof ConfigError);
      assert.match(error.message, /cache\.txt is a FIFO, not a regular file/);
      assert.ok(error.message.includes(path));
      return true;
    });
  } finally {
    clearTimeout(guard);
  }
});

test("cache file: a link to /dev/zero is refused, not read without end", async (t) => {
  const { path, file } = await ownedFile(t);
  await symlink("/dev/zero", path);
  await assert.rejects(file.load(), /cache\.txt is a character device, not a regular file/);
});

test("cache file: a link to a regular file is read", async (t) => {
  const { dir, path, file } = await ownedFile(t);
  const elsewhere = join(dir, "elsewhere.txt");
  await writeFile(elsewhere, serializeCache([awkwardEntry("http://example.com/")]));
  await symlink(elsewhere, path);
  assert.equal((await file.load()).entries.length, 1);
});

test("cache file: a file larger than the settings allow is moved aside, not read", async (t) => {
  const content = serializeCache([awkwardEntry("a"), awkwardEntry("b")]);
  const { dir, path, file, logged } = await ownedFile(t, content.length - 1);
  await writeFile(path, content);
  const loaded = await file.load();
  assert.deepEqual(loaded.entries, []);
  assert.ok(loaded.movedAsideTo?.includes("cache.txt.too-large-"), loaded.movedAsideTo);
  assert.ok((await readdir(dir)).some((name) => name.startsWith("cache.txt.too-large-")));
  assert.match(logged.join("\n"), /is larger than \d+ bytes.*moved aside/);

  // Exactly at the limit it is read.
  const { path: exactPath, file: exact } = await ownedFile(t, content.length);
  await writeFile(exactPath, content);
  assert.equal((await exact.load()).entries.length, 2);
});

test("cache file: the read limit covers every file a store with those bounds can write", () => {
  const entries = [awkwardEntry(`http://example.com/${"x".repeat(8000)}`), awkwardEntry("b")];
  const headerBytes = entries.reduce((sum, entry) => sum + entry.header.length, 0);
  assert.ok(serializeCache(entries).length <= cacheFileLimitBytes(headerBytes, entries.length));
});
