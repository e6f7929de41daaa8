import assert from "node:assert/strict";
import { test } from "node:test";
import { openFilesLimit, RESERVED_FILE_DESCRIPTORS, sessionCeiling } from "../../src/server/file-descriptors.js";

const LIMITS = `Limit                     Soft Limit           Hard Limit           Units
Max cpu time              unlimited            unlimited            seconds
Max open files            1024                 524288               files
`;

test("the open-files soft limit is read from /proc/self/limits; unlimited or unreadable is no ceiling", () => {
  assert.equal(openFilesLimit(LIMITS), 1024);
  assert.equal(openFilesLimit(LIMITS.replace("1024   ", "unlimited")), undefined);
  assert.equal(openFilesLimit("nothing here"), undefined);
  assert.equal(typeof openFilesLimit(), "number", "this machine's, as the server reads it");
});

test("sessions in force: maxSessions, or the open-files limit less the reserve, whichever is lower", () => {
  assert.equal(sessionCeiling(20_000, 1024), 1024 - RESERVED_FILE_DESCRIPTORS);
  assert.equal(sessionCeiling(100, 1024), 100);
  assert.equal(sessionCeiling(20_000, undefined), 20_000);
  assert.equal(sessionCeiling(20_000, 10), 1);
  assert.equal(sessionCeiling(20_000, 1024, 256), 1024 - RESERVED_FILE_DESCRIPTORS - 256, "kept origin connections");
});
