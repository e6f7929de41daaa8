import { test } from "node:test";
import assert from "node:assert/strict";
import { conditionalFieldsOf } from "../../src/http/conditional.js";

test("If-None-Match and If-Modified-Since are taken from lower-case revalidation headers", () => {
  assert.deepEqual(
    conditionalFieldsOf({
      "if-none-match": '"abc", W/"def"',
      "if-modified-since": "Sat, 02 May 2020 03:36:34 GMT",
      "cache-control": "max-age=0",
    }),
    { "If-None-Match": '"abc", W/"def"', "If-Modified-Since": "Sat, 02 May 2020 03:36:34 GMT" },
  );
  assert.deepEqual(conditionalFieldsOf({ "if-none-match": '"x"' }), { "If-None-Match": '"x"' });
  assert.deepEqual(conditionalFieldsOf({ "if-modified-since": "Thu, 01 Jan 1970 00:00:00 GMT" }), {
    "If-Modified-Since": "Thu, 01 Jan 1970 00:00:00 GMT",
  });
});

test("no validator means no conditional request", () => {
  assert.equal(conditionalFieldsOf({}), undefined);
  assert.equal(conditionalFieldsOf({ "cache-control": "no-cache", etag: '"abc"' }), undefined);
  assert.equal(conditionalFieldsOf({ "If-None-Match": '"abc"' }), undefined, "names arrive in lower case");
  assert.equal(conditionalFieldsOf({ "if-none-match": ['"a"', '"b"'], "if-modified-since": 0 }), undefined);
  assert.equal(conditionalFieldsOf({ "if-none-match": undefined }), undefined);
});
