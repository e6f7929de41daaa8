/**
 * Real captures for the dissector's tests: dumpcap on the loopback interface, read back by tshark
 * with dissector/headwire.lua. Every wait is on a condition, bounded: the capture is ready when
 * dumpcap has said so and a probe datagram sent after that is in the file; it is complete when a
 * second probe, sent after the session, is in the file (dumpcap writes packets in order).
 */
import assert from "node:assert/strict";
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import { createSocket, type Socket } from "node:dgram";
import { once } from "node:events";
import { mkdtemp, readFile, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as delay } from "node:timers/promises";

export const DISSECTOR = join(import.meta.dirname, "..", "..", "..", "dissector", "headwire.lua");

/** Generous: CI shares 2 cores among several jobs, and tshark takes a while to start. */
const CAPTURE_READY_MS = 60_000;
const POLL_MS = 50;

/** Why the tshark tests cannot run here (a missing package, Lua refused), or undefined. */
export function tsharkUnavailable(): string | undefined {
  for (const [program, pkg] of [
    ["tshark", "tshark"],
    ["dumpcap", "wireshark-common (comes with tshark)"],
    ["text2pcap", "wireshark-common (comes with tshark)"],
  ] as const) {
    if (spawnSync(program, ["--version"]).error) return `${program} not installed: apt-get install ${pkg}`;
  }
  return undefined;
}

/**
 * Why a live capture on lo cannot run here: tshark missing, or no right to capture (not root, not
 * in the wireshark group: `dumpcap -L -i lo` opens the interface as a capture would).
 */
export function captureUnavailable(): string | undefined {
  const missing = tsharkUnavailable();
  if (missing) return missing;
  const probe = spawnSync("dumpcap", ["-L", "-i", "lo"], { encoding: "utf8" });
  if (probe.status !== 0) {
    return `dumpcap cannot capture on lo (run the tests as root, or join the wireshark group): ${probe.stderr.trim()}`;
  }
  return undefined;
}

/**
 * tshark's environment: a HOME of its own, so a headwire.lua installed in the user's plugin
 * folder (~/.local/lib/wireshark/plugins) is not loaded a second time beside -X lua_script, and
 * no personal preference changes what the tests see.
 */
let isolatedHome: Promise<string> | undefined;
async function tsharkEnv(): Promise<NodeJS.ProcessEnv> {
  isolatedHome ??= mkdtemp(join(tmpdir(), "headwire-tshark-home-"));
  const home = await isolatedHome;
  return { ...process.env, HOME: home, XDG_CONFIG_HOME: join(home, ".config") };
}

export interface TsharkResult {
  status: number | null;
  stdout: string;
  stderr: string;
}

/** tshark with the dissector loaded; `leading` goes before it (-G must come first). */
export async function tshark(args: string[], leading: string[] = []): Promise<TsharkResult> {
  const child = spawn("tshark", [...leading, "-X", `lua_script:${DISSECTOR}`, ...args], {
    env: await tsharkEnv(),
    stdio: ["ignore", "pipe", "pipe"],
  });
  let stdout = "";
  let stderr = "";
  child.stdout.setEncoding("utf8").on("data", (text: string) => (stdout += text));
  child.stderr.setEncoding("utf8").on("data", (text: string) => (stderr += text));
  const [status] = (await once(child, "close")) as [number | null];
  return { status, stdout, stderr };
}

/**
 * Lines tshark writes to stderr that are not about the dissector: as root it warns that it runs
 * as root (Debian's init.lua sets run_user_scripts_when_superuser = true, so Lua scripts still
 * load; docs/wire.md).
 */
export function unexpectedStderr(stderr: string): string[] {
  return stderr
    .split("\n")
    .filter((line) => line.trim() !== "")
    .filter((line) => !/^Running as user "root" and group "root"\. This could be dangerous\.$/.test(line));
}

/** Fails loudly when tshark did not load the dissector (Lua disabled, or refused for root). */
export async function assertDissectorLoads(): Promise<void> {
  const { stdout, stderr } = await tshark([], ["-G", "protocols"]);
  if (!/\theadwire_ctl\n/.test(stdout) || !/\theadwire_data\n/.test(stdout)) {
    throw new Error(
      `tshark did not register headwire_ctl and headwire_data from ${DISSECTOR}: Lua disabled, or ` +
        `refused when run as root (init.lua's run_user_scripts_when_superuser)? stderr: ${stderr}`,
    );
  }
}

/**
 * Fields of the packets a display filter selects, one row per packet; a field that occurs several
 * times in a packet (several messages in one segment) keeps every value, in order.
 */
export async function readFields<F extends string>(
  capture: string,
  filter: string,
  fields: readonly F[],
  options: string[] = [],
): Promise<Array<Record<F, string[]>>> {
  const separator = "\u001f";
  const args = ["-r", capture, ...options, "-Y", filter, "-T", "fields", "-E", "occurrence=a"];
  args.push("-E", `aggregator=${separator}`, "-E", "separator=\t", "-E", "quote=n");
  for (const field of fields) args.push("-e", field);
  const result = await tshark(args);
  if (result.status !== 0) throw new Error(`tshark failed (${result.status}): ${result.stderr}`);
  // A Lua error while loading the script, or any other complaint, is a failure too.
  const complaints = unexpectedStderr(result.stderr);
  if (complaints.length > 0) throw new Error(`tshark said: ${complaints.join("\n")}`);
  return result.stdout
    .split("\n")
    .filter((line) => line !== "")
    .map((line) => {
      const values = line.split("\t");
      return Object.fromEntries(
        fields.map((field, i) => [field, values[i] ? values[i].split(separator) : []]),
      ) as Record<F, string[]>;
    });
}

/** A dumpcap capture on lo, limited to the given ports (and its own probe port). */
export class LoopbackCapture {
  private constructor(
    readonly file: string,
    private readonly dumpcap: ChildProcess,
    private readonly probe: Socket,
    private readonly probePort: number,
    private readonly stderr: () => string,
  ) {}

  static async start(dir: string, ports: { tcp?: number[]; udp?: number[] }): Promise<LoopbackCapture> {
    const probe = createSocket("udp4");
    probe.bind(0, "127.0.0.1");
    await once(probe, "listening");
    const probePort = probe.address().port;
    const terms = [
      ...(ports.tcp ?? []).map((port) => `tcp port ${port}`),
      ...[...(ports.udp ?? []), probePort].map((port) => `udp port ${port}`),
    ];
    const file = join(dir, `capture-${randomBytes(4).toString("hex")}.pcapng`);
    const dumpcap = spawn("dumpcap", ["-i", "lo", "-f", terms.join(" or "), "-w", file], {
      env: await tsharkEnv(),
      stdio: ["ignore", "ignore", "pipe"],
    });
    let stderr = "";
    dumpcap.stderr!.setEncoding("utf8").on("data", (text: string) => (stderr += text));
    const capture = new LoopbackCapture(file, dumpcap, probe, probePort, () => stderr);
    try {
      await capture.waitFor(() => stderr.includes("File:"), "dumpcap to start capturing");
      await capture.probeSeen();
    } catch (error) {
      await capture.kill();
      throw error;
    }
    return capture;
  }

  /** Ends the capture once everything sent so far is in the file; returns the file. */
  async stop(): Promise<string> {
    try {
      await this.probeSeen();
    } finally {
      await this.kill();
    }
    return this.file;
  }

  /** Sends a probe with a fresh marker (again, while it is not seen) until the file holds it. */
  private async probeSeen(): Promise<void> {
    const marker = Buffer.from(`headwire-capture-probe-${randomBytes(8).toString("hex")}`);
    let sent = 0;
    await this.waitFor(async () => {
      if (sent++ % 20 === 0) this.probe.send(marker, this.probePort, "127.0.0.1");
      const written = await readFile(this.file).catch(() => Buffer.alloc(0));
      return written.includes(marker);
    }, "a probe datagram to appear in the capture file");
  }

  private async waitFor(condition: () => boolean | Promise<boolean>, what: string): Promise<void> {
    const deadline = performance.now() + CAPTURE_READY_MS;
    while (!(await condition())) {
      if (this.dumpcap.exitCode !== null)
        throw new Error(`dumpcap exited (${this.dumpcap.exitCode}): ${this.stderr()}`);
      if (performance.now() > deadline)
        throw new Error(`timed out waiting for ${what}; dumpcap said: ${this.stderr()}`);
      await delay(POLL_MS); // a poll interval of a bounded wait on a condition, not a synchronisation
    }
  }

  private async kill(): Promise<void> {
    this.probe.close();
    if (this.dumpcap.exitCode !== null || this.dumpcap.signalCode !== null) return;
    const exited = once(this.dumpcap, "exit");
    this.dumpcap.kill("SIGINT");
    await exited;
  }
}

/** text2pcap's input: each packet a hex dump whose offsets start again at 0. */
function hexDump(packets: readonly Buffer[]): string {
  const out: string[] = [];
  for (const packet of packets) {
    for (let at = 0; at < packet.length; at += 16) {
      const bytes = [...packet.subarray(at, at + 16)].map((b) => b.toString(16).padStart(2, "0"));
      out.push(`${at.toString(16).padStart(6, "0")}  ${bytes.join(" ")}`);
    }
  }
  return `${out.join("\n")}\n`;
}

/** Packets written to a pcap file by text2pcap; `transport` is its -u or -T option. */
export async function toPcap(dir: string, packets: readonly Buffer[], transport: string[]): Promise<string> {
  const text = join(dir, `fuzz-${randomBytes(4).toString("hex")}.txt`);
  const pcap = `${text}.pcap`;
  await writeFile(text, hexDump(packets.filter((p) => p.length > 0)));
  const result = spawnSync("text2pcap", ["-q", ...transport, text, pcap], { encoding: "utf8" });
  assert.equal(result.status, 0, `text2pcap: ${result.stderr}`);
  return pcap;
}
