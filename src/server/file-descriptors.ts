/**
 * Sessions past the process's open-file limit cannot even be told they are refused: accept(2)
 * fails with EMFILE, and origin fetches and cache writes fail with it too. So the session limit
 * in force is the configured one or what the limit leaves after a reserve, whichever is lower.
 */
import { readFileSync } from "node:fs";

/** Descriptors kept for everything that is not a session: origin fetches, the cache file, the UDP socket, logs. */
export const RESERVED_FILE_DESCRIPTORS = 128;

/** The soft limit on open files (Linux: /proc/self/limits); undefined where it cannot be read. */
export function openFilesLimit(limitsText?: string): number | undefined {
  let text = limitsText;
  if (text === undefined) {
    try {
      text = readFileSync("/proc/self/limits", "utf8");
    } catch {
      return undefined;
    }
  }
  const match = /^Max open files\s+(\d+|unlimited)\s/m.exec(text);
  if (!match || match[1] === "unlimited") return undefined;
  return Number(match[1]);
}

/**
 * The sessions this process can really hold: maxSessions, or the open-file limit less the reserve
 * and the idle origin connections it may keep (originIdleConnections).
 */
export function sessionCeiling(maxSessions: number, openFiles: number | undefined, keptConnections = 0): number {
  if (openFiles === undefined) return maxSessions;
  return Math.max(1, Math.min(maxSessions, openFiles - RESERVED_FILE_DESCRIPTORS - keptConnections));
}
