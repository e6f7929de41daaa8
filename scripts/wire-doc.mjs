#!/usr/bin/env node
// Regenerates the capture excerpts in docs/wire.md from a real capture made by the test suite.
//
//   npm run build && node scripts/wire-doc.mjs
//
// It runs test/dissector/capture.test.ts (a real server, origin, relay and clients on loopback,
// recorded by dumpcap) with HEADWIRE_CAPTURE_OUT set, so the test keeps its capture; then reads
// that capture with tshark and dissector/headwire.lua, and replaces each block between
// <!-- wire-doc:NAME --> and <!-- /wire-doc:NAME --> in docs/wire.md. Ports, tokens and times
// change from run to run; the prose around the blocks names what to look for, not the numbers.
// Needs tshark (Debian package tshark) and the rights to capture on lo (root, or the wireshark group).
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

const ROOT = new URL("..", import.meta.url).pathname;
const DOC = join(ROOT, "docs", "wire.md");
const DISSECTOR = join(ROOT, "dissector", "headwire.lua");
const work = mkdtempSync(join(tmpdir(), "headwire-wire-doc-"));
const capture = join(work, "session.pcapng");
// tshark's own HOME: no personal plugin (an installed headwire.lua) or preference interferes.
const env = { ...process.env, HOME: work, XDG_CONFIG_HOME: join(work, ".config") };

function run(command, args, options = {}) {
  const result = spawnSync(command, args, { encoding: "utf8", maxBuffer: 64 * 1024 * 1024, env, ...options });
  if (result.status !== 0) {
    process.stderr.write(result.stdout ?? "");
    process.stderr.write(result.stderr ?? "");
    throw new Error(`${command} ${args.join(" ")} failed (${result.status ?? result.error})`);
  }
  return result.stdout;
}

function tshark(args) {
  return run("tshark", ["-X", `lua_script:${DISSECTOR}`, "-r", capture, ...args]);
}

/** The capture's packet list for a display filter, as Wireshark's list shows it, in aligned columns. */
function list(filter) {
  const names = ["frame.number", "frame.time_relative", "tcp.srcport", "udp.srcport", "tcp.dstport", "udp.dstport"];
  const rows = fields(filter, [...names, "_ws.col.Protocol", "frame.len", "_ws.col.Info"]).map((row) => [
    row["frame.number"],
    Number(row["frame.time_relative"]).toFixed(6),
    row["tcp.srcport"] || row["udp.srcport"],
    row["tcp.dstport"] || row["udp.dstport"],
    row["_ws.col.Protocol"],
    row["frame.len"],
    row["_ws.col.Info"],
  ]);
  const table = [["No.", "Time", "Src port", "Dst port", "Protocol", "Length", "Info"], ...rows];
  const widths = table[0].map((_, i) => Math.max(...table.map((row) => row[i].length)));
  const right = [true, true, true, true, false, true, false];
  return table
    .map((row) =>
      row
        .map((cell, i) => (i === row.length - 1 ? cell : right[i] ? cell.padStart(widths[i]) : cell.padEnd(widths[i])))
        .join("  ")
        .trimEnd(),
    )
    .join("\n");
}

/** One frame's detail, only the headwire layers opened (as the seed's Figures 2 and 3). */
function detail(frame, layers, hex = false) {
  const text = tshark(["-Y", `frame.number == ${frame}`, "-O", layers, ...(hex ? ["-x"] : [])]);
  return text
    .split("\n")
    .map((line) => line.replace(/\s+$/, ""))
    .join("\n")
    .trim();
}

function fields(filter, names) {
  const out = tshark(["-Y", filter, "-T", "fields", "-E", "occurrence=f", ...names.flatMap((n) => ["-e", n])]);
  return out
    .split("\n")
    .filter((line) => line !== "")
    .map((line) => Object.fromEntries(line.split("\t").map((value, i) => [names[i], value])));
}

try {
  // 1. The test suite's own capture.
  run(process.execPath, ["--test", join(ROOT, "dist", "test", "dissector", "capture.test.js")], {
    env: { ...process.env, HEADWIRE_CAPTURE_OUT: capture },
  });

  // 2. What is where in it.
  const tickets = fields('headwire_ctl.command == "TICKET"', [
    "frame.number",
    "tcp.stream",
    "headwire_ctl.url",
    "headwire_ctl.cache",
    "headwire_ctl.token",
    "headwire_ctl.delivery",
  ]);
  const udpTicket = (path, cache) =>
    tickets.find(
      (t) => t["headwire_ctl.url"].endsWith(path) && t["headwire_ctl.cache"] === cache && !t["headwire_ctl.delivery"],
    );
  const miss = udpTicket("/twitch", "MISS");
  const hit = udpTicket("/twitch", "HIT");
  const news = udpTicket("/news", "MISS");
  const overTcp = tickets.find((t) => t["headwire_ctl.delivery"] === "tcp");
  const raw = tickets.find(
    (t) =>
      t["tcp.stream"] !== miss["tcp.stream"] &&
      t["tcp.stream"] !== news["tcp.stream"] &&
      !t["headwire_ctl.delivery"] &&
      t !== hit,
  );
  const hitChunk = fields(`headwire_data.token == ${hit["headwire_ctl.token"]} && headwire_data.type == 2`, [
    "frame.number",
  ])[0];
  const badCrc = fields("headwire_data.crc.status == 0", ["frame.number"])[0];

  const blocks = {
    session: list(
      `tcp.stream == ${miss["tcp.stream"]} || headwire_data.token == ${miss["headwire_ctl.token"]} || headwire_data.token == ${hit["headwire_ctl.token"]}`,
    ),
    ticket: detail(miss["frame.number"], "headwire_ctl"),
    chunk: detail(hitChunk["frame.number"], "headwire_data", true),
    "token-filter": tshark([
      "-Y",
      `headwire_ctl.token == ${news["headwire_ctl.token"]} || headwire_data.token == ${news["headwire_ctl.token"]}`,
      "-T",
      "fields",
      "-e",
      "frame.number",
      "-e",
      "udp.srcport",
      "-e",
      "udp.dstport",
      "-e",
      "_ws.col.Info",
    ]).trim(),
    lossy: list(
      `headwire_ctl && tcp.stream == ${news["tcp.stream"]} || headwire_data.token == ${news["headwire_ctl.token"]}`,
    ),
    corrupted: detail(badCrc["frame.number"], "headwire_data"),
    "raw-session": list(
      `tcp.stream == ${raw["tcp.stream"]} && headwire_ctl || headwire_data.token == ${raw["headwire_ctl.token"]} || headwire_data.crc.status == 0`,
    ),
    "over-tcp": list(`tcp.stream == ${overTcp["tcp.stream"]} && tcp.len > 0`),
  };
  blocks["token-filter-command"] =
    `tshark -r session.pcapng -Y 'headwire_ctl.token == ${news["headwire_ctl.token"]} || headwire_data.token == ${news["headwire_ctl.token"]}' \\\n` +
    "       -T fields -e frame.number -e udp.srcport -e udp.dstport -e _ws.col.Info";

  // 3. Into the document.
  let doc = readFileSync(DOC, "utf8");
  for (const [name, text] of Object.entries(blocks)) {
    const pattern = new RegExp(`(<!-- wire-doc:${name} -->\\n)[\\s\\S]*?(<!-- /wire-doc:${name} -->)`);
    if (!pattern.test(doc)) throw new Error(`docs/wire.md has no block ${name}`);
    doc = doc.replace(pattern, (_, open, close) => `${open}\n\`\`\`text\n${text}\n\`\`\`\n\n${close}`);
  }
  writeFileSync(DOC, doc);
  run(join(ROOT, "node_modules", ".bin", "prettier"), ["--write", DOC]);
  process.stdout.write(`docs/wire.md: ${Object.keys(blocks).length} excerpts from ${capture}\n`);
} finally {
  rmSync(work, { recursive: true, force: true });
}
