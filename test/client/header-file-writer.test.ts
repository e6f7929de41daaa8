import assert from "node:assert/strict";
import { mkdir, readdir, readFile, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { test } from "node:test";
import { WORKER_AFTER_FILES, writeHeaderFile } from "../../src/client/header-file-writer.js";
import { tempDir } from "../helpers.js";

/** A header of `bytes` bytes that says which file it belongs to (a mix-up shows). */
function headerFor(index: number, bytes: number): Buffer {
  const line = Buffer.from(`HTTP/1.1 200 OK\r\nX-File: ${index}\r\n`);
  return Buffer.concat([line, Buffer.alloc(bytes - line.length - 2, 0x61), Buffer.from("\r\n")]);
}

test("header files: past the synchronous ones (a worker thread then), every file is whole, exact, and alone", async (t) => {
  const dir = await tempDir(t);
  const count = WORKER_AFTER_FILES * 3;
  const bytes = 256 * 1024; // large enough that a torn file would be seen torn
  // A reader looks while the files are written: a name without .part is only ever a whole file.
  // Each name is read once, when it first shows (the files are not rewritten).
  let writing = true;
  let looks = 0;
  const seen = new Set<string>();
  const reader = (async () => {
    while (writing) {
      for (const name of await readdir(dir)) {
        if (name.endsWith(".part") || seen.has(name)) continue;
        seen.add(name);
        const data = await readFile(join(dir, name)).catch(() => undefined);
        if (data) assert.equal(data.length, bytes, `${name} was seen with ${data.length} of ${bytes} bytes`);
      }
      looks++;
      await new Promise((resolve) => setImmediate(resolve));
    }
  })();
  try {
    // Written as a batch writes them: many in flight at once.
    await Promise.all(
      Array.from({ length: count }, (_, i) => writeHeaderFile(join(dir, `h${i}.txt`), headerFor(i, bytes))),
    );
  } finally {
    writing = false;
  }
  await reader;
  assert.ok(looks > 0);
  const names = (await readdir(dir)).sort();
  assert.equal(names.length, count, "one file per header, no temporary file left");
  for (let i = 0; i < count; i++) {
    assert.ok((await readFile(join(dir, `h${i}.txt`))).equals(headerFor(i, bytes)), `h${i}.txt holds its header`);
  }
});

test("header files: a directory removed meanwhile is made again; a write that cannot be made rejects and leaves nothing", async (t) => {
  const dir = await tempDir(t);
  const out = join(dir, "out");
  // Past the synchronous files, so that the worker's path is the one tried.
  await mkdir(out);
  for (let i = 0; i < WORKER_AFTER_FILES; i++) await writeHeaderFile(join(out, `warm${i}.txt`), headerFor(i, 100));
  await rm(out, { recursive: true });
  await writeHeaderFile(join(out, "again.txt"), headerFor(1, 100));
  assert.ok((await readFile(join(out, "again.txt"))).equals(headerFor(1, 100)));

  // A regular file where the directory should be: ENOTDIR, whichever thread writes.
  const blocked = join(dir, "blocked");
  await writeFile(blocked, "not a directory");
  await assert.rejects(writeHeaderFile(join(blocked, "x.txt"), headerFor(2, 100)), (error: NodeJS.ErrnoException) => {
    assert.equal(error.code, "ENOTDIR");
    return true;
  });
  // Handed over in one turn, so in one message to the worker: the failing one fails alone.
  const together = await Promise.allSettled([
    writeHeaderFile(join(out, "before.txt"), headerFor(3, 100)),
    writeHeaderFile(join(blocked, "y.txt"), headerFor(4, 100)),
    writeHeaderFile(join(out, "after.txt"), headerFor(5, 100)),
  ]);
  assert.deepEqual(
    together.map((one) => one.status),
    ["fulfilled", "rejected", "fulfilled"],
  );
  assert.equal(((together[1] as PromiseRejectedResult).reason as NodeJS.ErrnoException).code, "ENOTDIR");
  assert.deepEqual((await readdir(dir)).sort(), ["blocked", "out"]);
  assert.deepEqual((await readdir(out)).sort(), ["after.txt", "again.txt", "before.txt"], "no temporary file left");
  assert.ok((await readFile(join(out, "after.txt"))).equals(headerFor(5, 100)));
});
