/**
 * Which ports each worker of `--workers N` uses. Pure. The control port is one, shared (the
 * primary accepts and hands connections over); each worker has its own UDP data port so that the
 * worker that issued a ticket is the one that serves it (tickets live in that worker's memory):
 * worker i (0-based) binds data port + i, and a firewall opens data port … data port + N - 1.
 * `--advertise HOST:PORT` maps the same way: worker i advertises PORT + i.
 */
import { availableParallelism } from "node:os";
import { parseAdvertise } from "../config/advertise.js";

/** A sanity bound, not a tuning: far more workers than cores only adds context switches. */
export const MAX_WORKERS = 256;

const COUNT = /^(auto|[1-9][0-9]{0,2})$/;

/** Why `--workers` cannot be `value`, or undefined. */
export function workerCountProblem(value: string): string | undefined {
  if (!COUNT.test(value) || (value !== "auto" && Number(value) > MAX_WORKERS)) {
    return `must be a whole number from 1 to ${MAX_WORKERS} or "auto" (one per CPU), got ${JSON.stringify(value)}`;
  }
  return undefined;
}

/** The number of workers `--workers` names ("auto": the CPUs this process may use). */
export function workerCount(value: string, cpus: number = availableParallelism()): number {
  return value === "auto" ? Math.max(1, Math.min(MAX_WORKERS, cpus)) : Number(value);
}

/** Worker `index`'s data port: the same ephemeral choice (0) for all, or base + index. */
export function workerDataPort(base: number, index: number): number {
  return base === 0 ? 0 : base + index;
}

/** Worker `index`'s `--advertise`: HOST alone stays as it is, HOST:PORT becomes HOST:(PORT + index). */
export function workerAdvertise(advertise: string, index: number): string {
  const parsed = parseAdvertise(advertise);
  if (!parsed.ok || parsed.address === null || parsed.address.port === undefined) return advertise;
  const { host, port } = parsed.address;
  return `${host.includes(":") ? `[${host}]` : host}:${port + index}`;
}

/** Why N workers cannot have their ports (the last one past 65535), or undefined. */
export function workerPortsProblem(count: number, dataPort: number, advertise: string): string | undefined {
  if (dataPort !== 0 && dataPort + count - 1 > 65535) {
    return `--workers ${count} needs data ports ${dataPort}-${dataPort + count - 1}, past 65535; lower --data-port`;
  }
  const parsed = parseAdvertise(advertise);
  const port = parsed.ok ? parsed.address?.port : undefined;
  if (port !== undefined && port + count - 1 > 65535) {
    return `--workers ${count} advertises ports ${port}-${port + count - 1}, past 65535; lower --advertise's port`;
  }
  return undefined;
}
