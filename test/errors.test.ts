import assert from "node:assert/strict";
import { test } from "node:test";
import {
  CacheFileError,
  CacheFileOwnedError,
  CachePersistError,
  ConfigError,
  HeadwireError,
  isExpectedError,
  isHeadwireError,
  toHeadwireError,
  toWireError,
  WIRE_ERROR_CODES,
} from "../src/errors.js";

test("HeadwireError: its code, its message (the advice by default) and its advice", () => {
  const error = new HeadwireError("SERVER_BUSY");
  assert.equal(error.name, "HeadwireError");
  assert.equal(error.code, "SERVER_BUSY");
  assert.equal(error.message, WIRE_ERROR_CODES.SERVER_BUSY);
  assert.equal(new HeadwireError("DNS_NOT_FOUND", "no such host x").advice, WIRE_ERROR_CODES.DNS_NOT_FOUND);
});

test("ours or a bug: every named class is expected, anything else is not", () => {
  for (const error of [
    new HeadwireError("ORIGIN_ERROR"),
    new ConfigError("server.x must be y"),
    new CacheFileError("bad line"),
    new CacheFileOwnedError("owned"),
    new CachePersistError("cache file x could not be written: ENOSPC"),
  ]) {
    assert.ok(isExpectedError(error), error.name);
    assert.equal(isHeadwireError(error), error instanceof HeadwireError, error.name);
  }
  for (const bug of [new TypeError("x is undefined"), new RangeError("r"), "a string", undefined]) {
    assert.ok(!isExpectedError(bug), String(bug));
    assert.ok(!isHeadwireError(bug), String(bug));
  }
  assert.deepEqual(
    [new ConfigError("").name, new CacheFileError("").name, new CacheFileOwnedError("").name],
    ["ConfigError", "CacheFileError", "CacheFileOwnedError"],
  );
});

test("toHeadwireError keeps ours and wraps the rest under the fallback", () => {
  const ours = new HeadwireError("WRITE_FAILED", "disk full");
  assert.equal(toHeadwireError(ours, "CONNECTION_LOST"), ours);
  const cause = new Error("ECONNRESET");
  const wrapped = toHeadwireError(cause, "CONNECTION_LOST");
  assert.deepEqual([wrapped.code, wrapped.message, wrapped.cause], ["CONNECTION_LOST", "ECONNRESET", cause]);
});

test("toWireError: a local code never reaches the wire, it becomes INTERNAL_ERROR", () => {
  const wire = new HeadwireError("HEADER_TIMEOUT", "slow");
  assert.equal(toWireError(wire, "ORIGIN_ERROR"), wire);
  const local = toWireError(new HeadwireError("DELIVERY_FAILED", "lost"), "ORIGIN_ERROR");
  assert.deepEqual([local.code, local.message], ["INTERNAL_ERROR", "DELIVERY_FAILED: lost"]);
  const other = toWireError(new Error("boom"), "BAD_REQUEST");
  assert.deepEqual([other.code, other.message], ["BAD_REQUEST", "boom"]);
});
