/**
 * What the kernel says about a process, read from /proc without touching the process: CPU time
 * (utime + stime) and resident memory (VmRSS now, VmHWM the peak since it started). Linux only;
 * elsewhere every reading is `undefined` and the report says so.
 */
import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";

let clockTicks: number | undefined;

/** Kernel clock ticks per second (USER_HZ), the unit of utime and stime in /proc/<pid>/stat. */
function ticksPerSecond(): number {
  if (clockTicks === undefined) {
    try {
      clockTicks = Number(execFileSync("getconf", ["CLK_TCK"], { encoding: "utf8", timeout: 2000 }).trim()) || 100;
    } catch {
      clockTicks = 100;
    }
  }
  return clockTicks;
}

/** CPU seconds (user + system) the process has used so far. */
export function cpuSeconds(pid: number): number | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    // The command name (field 2) may hold spaces; the fields after its closing parenthesis are fixed.
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    const utime = Number(fields[11]);
    const stime = Number(fields[12]);
    return (utime + stime) / ticksPerSecond();
  } catch {
    return undefined;
  }
}

export interface MemoryReading {
  /** Resident set size now, in KiB. */
  rssKiB: number;
  /** Peak resident set size since the process started, in KiB. */
  peakRssKiB: number;
}

export function memory(pid: number): MemoryReading | undefined {
  try {
    const status = readFileSync(`/proc/${pid}/status`, "utf8");
    const field = (name: string): number => Number(new RegExp(`^${name}:\\s+(\\d+) kB`, "m").exec(status)?.[1]);
    const rssKiB = field("VmRSS");
    const peakRssKiB = field("VmHWM");
    return Number.isFinite(rssKiB) && Number.isFinite(peakRssKiB) ? { rssKiB, peakRssKiB } : undefined;
  } catch {
    return undefined;
  }
}

/** CPU time between two readings as a share of one core (1.0 = one core busy all the time). */
export function coreShare(cpuBefore: number | undefined, cpuAfter: number | undefined, wallSeconds: number) {
  if (cpuBefore === undefined || cpuAfter === undefined || wallSeconds <= 0) return undefined;
  return (cpuAfter - cpuBefore) / wallSeconds;
}

/** CPU seconds the whole machine has spent busy (all cores, everything but idle and iowait). */
export function machineBusySeconds(): number | undefined {
  try {
    const line = readFileSync("/proc/stat", "utf8").split("\n")[0] ?? "";
    const fields = line.trim().split(/\s+/).slice(1).map(Number);
    const total = fields.slice(0, 8).reduce((a, b) => a + b, 0);
    const idle = (fields[3] ?? 0) + (fields[4] ?? 0);
    return (total - idle) / ticksPerSecond();
  } catch {
    return undefined;
  }
}

/** Datagrams the kernel dropped because a UDP socket's receive queue was full (all sockets, since boot). */
export function udpReceiveBufferDrops(): number | undefined {
  try {
    const lines = readFileSync("/proc/net/snmp", "utf8")
      .split("\n")
      .filter((l) => l.startsWith("Udp: "));
    const names = lines[0]?.split(/\s+/) ?? [];
    const values = lines[1]?.split(/\s+/) ?? [];
    const value = Number(values[names.indexOf("RcvbufErrors")]);
    return Number.isFinite(value) ? value : undefined;
  } catch {
    return undefined;
  }
}
