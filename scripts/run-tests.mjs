#!/usr/bin/env node
// Runs the compiled test files (dist/test/**/*.test.js) with Node's own test runner.
// Node 20's runner does not expand globs, so the list is built here.
//
//   node scripts/run-tests.mjs                 every test file
//   node scripts/run-tests.mjs <substring>...  the files whose path contains one of the substrings
//   node scripts/run-tests.mjs --unit [...]    only the unit tests (npm run test:unit)
//
// Unit tests need no server process, no Redis, nginx or tmux, and finish in seconds: they may
// open loopback sockets of their own. Everything under test/e2e/ and the files listed below are
// integration tests; every other test file is a unit test.
import { readdirSync, statSync } from "node:fs";
import { join, relative, sep } from "node:path";
import { spawnSync } from "node:child_process";

const TEST_ROOT = join("dist", "test");

/** Integration tests outside test/e2e/: they start a headwire server, Redis, nginx or tmux. */
const INTEGRATION_FILES = [
  "admin/admin-http.test.js", // whole headwire servers, Redis
  "admin/status-page.test.js", // a headwire server, Chromium
  "cache/redis-cache-store.test.js", // Redis
  "cli/cli.test.js", // the CLI as a process, servers
  "cli/client-batch.test.js", // the CLI as a process, a server
  "cli/client-batch-resume.test.js", // the CLI and the server as processes
  "cli/closed-output.test.js", // the CLI as a process, bash and head
  "cli/client-recovery.test.js", // the CLI as a process, a server, nginx
  "cli/client-curl-flags.test.js", // the CLI as a process, a server, origins, curl
  "cli/client-terminal.test.js", // tmux
  "cli/client-verbose.test.js", // the CLI as a process, a server
  "cli/dissector-command.test.js", // the CLI as a process
  "cli/server-command.test.js", // the server as a process
  "client/reconnecting-session.test.js", // whole headwire servers, stopped and started again
  "cluster/workers.test.js", // the server as a primary and its worker processes
  "dissector/capture.test.js", // dumpcap and tshark, a whole headwire server
  "dissector/fuzz.test.js", // text2pcap and tshark
  "dissector/ports.test.js", // text2pcap and tshark
  "fetch/nginx-origin.test.js", // nginx
  "observe/server-log.test.js", // the server as a process
  "server/control-protocol.test.js", // a whole headwire server
  "server/data-channel.test.js", // a whole headwire server
  "server/reconfigure.test.js", // a whole headwire server
];

function isIntegration(file) {
  const path = relative(TEST_ROOT, file).split(sep).join("/");
  return path.startsWith("e2e/") || INTEGRATION_FILES.includes(path);
}

function findTests(dir) {
  const found = [];
  for (const name of readdirSync(dir)) {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) found.push(...findTests(path));
    else if (name.endsWith(".test.js")) found.push(path);
  }
  return found;
}

const args = process.argv.slice(2);
const unitOnly = args.includes("--unit");
const filter = args.filter((arg) => arg !== "--unit");
let files = findTests(TEST_ROOT).sort();
if (unitOnly) files = files.filter((f) => !isIntegration(f));
if (filter.length > 0) files = files.filter((f) => filter.some((pattern) => f.includes(pattern)));
if (files.length === 0) {
  console.error("run-tests: no test files matched");
  process.exit(1);
}
// A test that hangs fails after 3 minutes with its name, instead of holding CI until its limit.
const result = spawnSync(process.execPath, ["--test", "--test-concurrency=2", "--test-timeout=180000", ...files], {
  stdio: "inherit",
});
process.exit(result.status ?? 1);
