import assert from "node:assert/strict";
import { test } from "node:test";
import {
  workerAdvertise,
  workerCount,
  workerCountProblem,
  workerDataPort,
  workerPortsProblem,
} from "../../src/cluster/worker-ports.js";

test("--workers: a whole number from 1 to 256 or auto; anything else is refused with what was given", () => {
  for (const good of ["1", "2", "16", "256", "auto"]) assert.equal(workerCountProblem(good), undefined, good);
  for (const bad of ["0", "-1", "257", "1.5", "two", "", " 2", "02"]) {
    assert.match(workerCountProblem(bad) ?? "", new RegExp(`got ${JSON.stringify(JSON.stringify(bad)).slice(1, -1)}`));
  }
  assert.equal(workerCount("3", 8), 3);
  assert.equal(workerCount("auto", 8), 8);
  assert.equal(workerCount("auto", 0), 1);
});

test("worker i's data port is data port + i, and every worker shares an ephemeral choice (0)", () => {
  assert.deepEqual(
    [0, 1, 2].map((i) => workerDataPort(50367, i)),
    [50367, 50368, 50369],
  );
  assert.deepEqual(
    [0, 1, 2].map((i) => workerDataPort(0, i)),
    [0, 0, 0],
  );
});

test("--advertise HOST:PORT becomes PORT + i per worker; a host alone, or none, stays", () => {
  assert.equal(workerAdvertise("203.0.113.7:40000", 2), "203.0.113.7:40002");
  assert.equal(workerAdvertise("[2001:db8::1]:40000", 1), "[2001:db8::1]:40001");
  assert.equal(workerAdvertise("203.0.113.7", 3), "203.0.113.7");
  assert.equal(workerAdvertise("", 3), "");
});

test("ports past 65535 for the last worker are refused, naming the range", () => {
  assert.equal(workerPortsProblem(4, 65532, ""), undefined);
  assert.match(workerPortsProblem(5, 65532, "") ?? "", /data ports 65532-65536/);
  assert.match(workerPortsProblem(3, 50367, "h:65535") ?? "", /advertises ports 65535-65537/);
  assert.equal(workerPortsProblem(3, 0, ""), undefined);
});
