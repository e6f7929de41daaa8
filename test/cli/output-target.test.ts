import assert from "node:assert/strict";
import { mkdir, readFile, readdir } from "node:fs/promises";
import { join } from "node:path";
import { PassThrough } from "node:stream";
import { test } from "node:test";
import { deliver, targetProblem, writeWhole, type OutputTarget } from "../../src/cli/output-target.js";
import { headerFileName } from "../../src/client/file-name.js";
import { tempDir } from "../helpers.js";

const target = (extra: Partial<OutputTarget> = {}): OutputTarget => ({
  print: false,
  outDir: ".",
  fail: false,
  ...extra,
});
const header = Buffer.from("HTTP/1.1 404 Not Found\r\nX: y\r\n\r\n");
const result = {
  url: "a.example/x",
  status: 404,
  statusLine: "HTTP/1.1 404 Not Found",
  bytes: header.length,
  ms: 1,
  header,
};

test("targetProblem: -o FILE and -D FILE take one URL; stdout cannot carry both --json and a header", () => {
  assert.equal(targetProblem(target({ outputFile: "h.txt" }), 1, false, false), null);
  assert.match(targetProblem(target({ outputFile: "h.txt" }), 2, false, false)!, /with 2 URLs, use --output-dir DIR/);
  assert.match(
    targetProblem(target({ dumpFile: "d.txt" }), 1, true, false)!,
    /^-D FILE .* with --batch, use --output-dir/,
  );
  assert.match(
    targetProblem(target({ outputFile: "h.txt" }), 0, false, false)!,
    /^-o FILE .*give the URL as an argument/,
  );
  assert.match(
    targetProblem(target({ dumpFile: "d.txt" }), 0, false, false)!,
    /^-D FILE .*give the URL as an argument/,
  );
  assert.equal(targetProblem(target({ outputFile: "-", dumpFile: "-" }), 5, true, false), null, "stdout takes many");
  assert.match(targetProblem(target({ dumpFile: "-" }), 1, false, true)!, /--json and a header on standard output/);
  assert.match(targetProblem(target({ print: true, outputFile: "h.txt" }), 1, false, false)!, /give one of them/);
});

test("deliver: -f refuses a 404 (HTTP_FAILED) and writes nothing but -D; without -f the file is written whole", async (t) => {
  const dir = await tempDir(t);
  const stdout = new PassThrough();
  const failed = await deliver(
    result,
    target({ fail: true, outDir: join(dir, "out"), dumpFile: join(dir, "d.txt") }),
    stdout,
  );
  assert.deepEqual(failed.error, { code: "HTTP_FAILED", message: "the origin answered 404 Not Found (-f/--fail)" });
  assert.equal(failed.file, undefined);
  assert.deepEqual(await readdir(dir), ["d.txt"]);
  assert.deepEqual(await readFile(join(dir, "d.txt")), header);
  const written = await deliver(result, target({ outDir: join(dir, "out") }), stdout);
  assert.equal(written.file, join(dir, "out", headerFileName(result.url)));
  assert.deepEqual(await readFile(written.file), header);
  assert.equal(stdout.read(), null, "nothing on standard output");
});

test("writeWhole: a path that is a directory fails and leaves no temporary file behind", async (t) => {
  const dir = await tempDir(t);
  await mkdir(join(dir, "adir"));
  assert.throws(() => writeWhole(join(dir, "adir"), header), { code: "EISDIR" });
  assert.deepEqual(await readdir(dir), ["adir"]);
  assert.deepEqual(await readdir(join(dir, "adir")), []);
});
