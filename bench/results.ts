/**
 * What each phase measures: the shapes the phases return, the target checks read, the report
 * prints, and bench/results/<timestamp>.json keeps.
 */
import type { ColdResult, ColdSummary } from "./cold-path.js";
import type { RunResult } from "./load-generator.js";
import type { TrendVerdict } from "./trend.js";

/** The server under test: headwire, or the floor (bench/floor-server.ts) that replays its bytes. */
export type ServerKind = "headwire" | "floor";

export interface ThroughputRow {
  concurrency: number;
  server: ServerKind;
  result: RunResult;
  serverCores: number | undefined;
  /** CPU used by everything else on the machine during the window, in cores. */
  otherCores: number | undefined;
  serverPeakRssKiB: number | undefined;
  originFetchesDuringRun?: number;
}

/** `headwire server --workers N` at the largest C, all its processes' CPU summed (bench/phases/workers.ts). */
export interface WorkersRow {
  workers: number;
  /** Processes measured: the primary and its workers, or the one server for N = 1. */
  processes: number;
  concurrency: number;
  result: RunResult;
  cpuSeconds: number | undefined;
  lookupsPerCpuSecond: number | undefined;
}

export interface IdleResult {
  server: ServerKind;
  sessions: number;
  opened: number;
  openMs: number;
  rssBeforeKiB: number;
  rssAfterKiB: number;
  heapBeforeBytes?: number;
  heapAfterBytes?: number;
  perSessionKiB: number;
  heapPerSessionBytes?: number;
  heapSnapshot?: string;
}

export type ColdPhaseResult = ColdResult & { curlMissing: boolean };

export interface SoakSample {
  atSeconds: number;
  lookupsPerSecond: number;
  errors: number;
  p50Ms: number;
  p99Ms: number;
  rssKiB: number | undefined;
  heapUsedBytes: number;
  eventLoopDelayP99Ms: number;
  eventLoopDelayMaxMs: number;
  cacheEntries: number;
  originFetches: number;
}

export interface SoakResult {
  seconds: number;
  sessions: number;
  churnRatio: number;
  result: RunResult;
  samples: SoakSample[];
  rssTrend: TrendVerdict;
  heapTrend: TrendVerdict;
  eventLoopDelayTrend: TrendVerdict;
  throughputTrend: TrendVerdict;
  originFetches: number;
}

/** The attacks of the "attacks" phase (bench/attacker.ts), in the order they run; "none" is the baseline. */
export const ATTACKS = ["none", "newline-flood", "ping-flood", "session-hog", "udp-garbage", "query-flood"] as const;
export type AttackKind = (typeof ATTACKS)[number];

/** What an attack achieved; every field a count over the window unless its name says otherwise. */
export type AttackAchieved = Record<string, number>;

/** One attack window of the "attacks" phase: the probe's figures, the server's, the attack's. */
export interface AttackRow {
  attack: AttackKind;
  seconds: number;
  /** A new session: connect to greeting, then PING to PONG. */
  greeting: ColdSummary;
  /** A cached lookup (query + UDP collection) on a kept session. */
  lookup: ColdSummary;
  /** Probe lookups whose UDP REQUEST had to be sent again. */
  lookupsResent: number;
  /** Each probe failure, by the start of its message. */
  failureKinds: Record<string, number>;
  /** Each figure ÷ the same figure with no attack (set once the baseline is known). */
  greetingP50Ratio?: number | undefined;
  greetingP99Ratio?: number | undefined;
  lookupP50Ratio?: number | undefined;
  lookupP99Ratio?: number | undefined;
  serverAlive: boolean;
  /** The server's CPU over the window, in cores (1.0: one core busy all the time). */
  serverCores: number | undefined;
  /** Datagrams the kernel dropped during the window because a UDP receive queue was full (the whole machine's). */
  udpReceiveBufferDrops?: number | undefined;
  serverRssBeforeKiB: number | undefined;
  serverRssAfterKiB: number | undefined;
  serverPeakRssKiB: number | undefined;
  serverLogLines: number;
  /** What the attack achieved (bench/attacker.ts): lines, datagrams, sessions, origin requests. */
  achieved: AttackAchieved;
}

/** The bulk phase: wall times of whole runs of `urls` URLs, one header file each, in ms. */
export interface BulkResult {
  urls: number;
  runs: number;
  /** curl's --parallel-max and the client's -j. */
  parallel: number;
  /** The Debian programs missing (the phase was skipped), if any. */
  missing?: string;
  curlMs: number[];
  /** headwire client --batch, the server's cache already holding every URL. */
  warmMs: number[];
  /** headwire client --batch, the server's cache empty at the start. */
  coldMs: number[];
  /**
   * The machine's 1-minute load average as each run started: on a shared 2-core machine the
   * ratios mean little without it.
   */
  loadAverages?: number[];
}

/** The phases' results; a phase that did not run is undefined. */
export interface PhaseResults {
  throughput?: ThroughputRow[] | undefined;
  idle?: IdleResult[] | undefined;
  cold?: ColdPhaseResult | undefined;
  soak?: SoakResult | undefined;
  attacks?: AttackRow[] | undefined;
  paths?: PathRow[] | undefined;
  observe?: ObserveResult | undefined;
  workers?: WorkersRow[] | undefined;
  bulk?: BulkResult | undefined;
}

/** One measured window of the "observe" phase: the admin listener off or on (nobody scraping or watching). */
export interface ObserveRun {
  admin: "off" | "on";
  lookupsPerSecond: number;
  /** The server's CPU time (user + system) per cached lookup, in µs. */
  serverUsPerLookup: number | undefined;
}

/** The "observe" phase: what metrics and the status board cost a cached lookup (issue 14). */
export interface ObserveResult {
  concurrency: number;
  runs: ObserveRun[];
  /** Medians of the runs with the listener on ÷ off. */
  throughputRatio: number | undefined;
  cpuRatio: number | undefined;
}

/** The machine the run was on, as the report's first line and the results file give it. */
export interface MachineInfo {
  cpuModel: string;
  cores: number;
  availableParallelism: number;
  memoryMiB: number;
  platform: string;
  node: string;
  openFilesLimit: string | undefined;
  hostname: string;
}

/** The bytes of one lookup on each channel. */
export interface ExchangeSizes {
  queryBytes: number;
  ticketBytes: number;
  requestBytes: number;
  chunkBytes: number;
}

/** One path × size of the "paths" phase: delivery of a cached header through the emulating relay. */
export interface PathRow {
  oneWayMs: number;
  loss: number;
  /** The relay's bottleneck towards the client, bytes a second (0 or absent: none). */
  bytesPerSecond?: number;
  chunks: number;
  samples: number;
  failures: number;
  /** Median time of the succeeded queries (control round trip + UDP delivery), ms. */
  medianMs: number;
  /**
   * The least any delivery can take on this path: one round trip through the relay, plus, behind
   * a bottleneck, one delivery's chunk datagrams at its rate.
   */
  idealMs: number;
  /** UDP bytes the server sent per header byte delivered (chunk headers and resends included). */
  bytesSentPerByte: number;
}
