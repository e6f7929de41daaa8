/**
 * Reads a V8 .cpuprofile (from `node --cpu-prof`) and lists where the time went: self time per
 * function, heaviest first. `node dist/bench/profile-summary.js <file.cpuprofile> [top]`
 */
import { readFileSync } from "node:fs";
import { basename } from "node:path";
import { fileURLToPath } from "node:url";

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  hitCount?: number;
}

interface CpuProfile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
}

export interface ProfileLine {
  name: string;
  selfMs: number;
  share: number;
}

export function summarizeProfile(file: string, top = 20): ProfileLine[] {
  const profile = JSON.parse(readFileSync(file, "utf8")) as CpuProfile;
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const selfUs = new Map<string, number>();
  let total = 0;
  profile.samples.forEach((id, i) => {
    const node = byId.get(id);
    const dt = profile.timeDeltas[i] ?? 0;
    if (!node) return;
    const frame = node.callFrame;
    const where = frame.url ? `${basename(frame.url)}:${frame.lineNumber + 1}` : "native";
    const name = `${frame.functionName || "(anonymous)"} ${where}`;
    selfUs.set(name, (selfUs.get(name) ?? 0) + dt);
    total += dt;
  });
  return [...selfUs.entries()]
    .sort((a, b) => b[1] - a[1])
    .slice(0, top)
    .map(([name, us]) => ({ name, selfMs: us / 1000, share: total === 0 ? 0 : us / total }));
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const file = process.argv[2];
  if (!file) {
    process.stderr.write("usage: node dist/bench/profile-summary.js <file.cpuprofile> [top]\n");
    process.exit(2);
  }
  for (const line of summarizeProfile(file, Number(process.argv[3] ?? 25))) {
    process.stdout.write(
      `${(line.share * 100).toFixed(1).padStart(5)}%  ${line.selfMs.toFixed(0).padStart(7)} ms  ${line.name}\n`,
    );
  }
}
