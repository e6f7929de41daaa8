import assert from "node:assert/strict";
import { Readable } from "node:stream";
import { test } from "node:test";
import { readUrlLines, type UrlLine } from "../../src/cli/url-lines.js";

async function all(chunks: (string | Buffer)[], maxLineBytes?: number): Promise<UrlLine[]> {
  const lines: UrlLine[] = [];
  for await (const line of readUrlLines(Readable.from(chunks), maxLineBytes)) lines.push(line);
  return lines;
}

test("one URL a line: blank lines, comments, white space, CRLF and a BOM are skipped", async () => {
  const lines = await all(["\uFEFFa.example\r\n\n  # a comment\n\t b.example/x?y=1  \r\n#c\nlast.example"]);
  assert.deepEqual(lines, [
    { url: "a.example", lineNumber: 1, overlong: false },
    { url: "b.example/x?y=1", lineNumber: 4, overlong: false },
    { url: "last.example", lineNumber: 6, overlong: false },
  ]);
});

test("lines and UTF-8 characters split across reads are put back together", async () => {
  const bytes = Buffer.from("caf\u00e9.example/\u00fc\nsecond.example\n");
  const chunks = [...bytes].map((byte) => Buffer.from([byte]));
  assert.deepEqual(
    (await all(chunks)).map((line) => line.url),
    ["caf\u00e9.example/\u00fc", "second.example"],
  );
});

test("an over-long line is flagged with its beginning, and the next line is read normally", async () => {
  const lines = await all([`${"x".repeat(50)}`, `${"y".repeat(100)}\nok.example\n`], 64);
  assert.equal(lines.length, 2);
  assert.equal(lines[0]!.overlong, true);
  assert.equal(lines[0]!.url, `${"x".repeat(50)}${"y".repeat(30)}…`);
  assert.deepEqual(lines[1], { url: "ok.example", lineNumber: 2, overlong: false });
});

test("reading is pulled by the queries: a stalled consumer holds a bounded read-ahead", async () => {
  let produced = 0;
  // A source of a million lines, 100 per read, that counts what has been asked of it.
  const source = new Readable({
    highWaterMark: 4,
    objectMode: true,
    read() {
      if (produced >= 1_000_000) return this.push(null);
      let text = "";
      for (let i = 0; i < 100; i++) text += `h${produced++}.example/\n`;
      this.push(text);
    },
  });
  const lines = readUrlLines(source);
  for (let i = 0; i < 10; i++) await lines.next();
  await new Promise((resolve) => setImmediate(resolve));
  assert.ok(produced <= 1000, `read ahead ${produced} lines for 10 taken`);
  await lines.return(undefined);
});

test("several sessions pulling at once each get distinct lines, and all of them", async () => {
  const text = Array.from({ length: 5000 }, (_, i) => `u${i}.example`).join("\n");
  const lines = readUrlLines(Readable.from([Buffer.from(text)]));
  const seen: string[] = [];
  await Promise.all(
    Array.from({ length: 8 }, async () => {
      for (let next = await lines.next(); !next.done; next = await lines.next()) seen.push(next.value.url);
    }),
  );
  assert.equal(seen.length, 5000);
  assert.equal(new Set(seen).size, 5000);
});
