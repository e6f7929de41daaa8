/**
 * The benchmark's settings: every duration and size is a flag, and `--quick` (or BENCH_QUICK=1)
 * picks a set that finishes in about a minute. Checked once, at start.
 */
import { DEFAULT_SERVER_CONFIG } from "../src/config.js";
import { availableParallelism } from "node:os";

export const PHASES = ["throughput", "idle", "cold", "soak", "attacks", "paths", "observe", "workers", "bulk"] as const;
export type Phase = (typeof PHASES)[number];

export interface BenchOptions {
  quick: boolean;
  phases: Phase[];
  /** Concurrent sessions for the throughput runs. */
  concurrency: number[];
  warmupSeconds: number;
  durationSeconds: number;
  /** Cached URLs the throughput runs cycle through. */
  hotUrls: number;
  idleSessions: number;
  coldSamples: number;
  soakSeconds: number;
  /** Load before the soak's sampling starts: live tickets (ticketTtlMs, swept every TTL) must reach steady state. */
  soakWarmupSeconds: number;
  soakSessions: number;
  soakSampleSeconds: number;
  /** Share of soak queries that go to a URL outside the hot set (a pool larger than the cache). */
  soakChurnRatio: number;
  soakChurnUrls: number;
  /** Each attack's window in the attacks phase (and the baseline's, with no attack). */
  attackSeconds: number;
  /** Distinct URLs of the bulk phase (one header file each), and its runs per method. */
  bulkUrls: number;
  bulkRuns: number;
  /** Pin the server to CPU 0 and the load generator to CPU 1 (taskset). */
  pin: boolean;
  /** CPU-profile the headwire server during each measured window. */
  profile: boolean;
  /** Write a heap snapshot of the headwire server holding the idle sessions. */
  heapSnapshot: boolean;
  /** The floor's UDP receive buffer in bytes (0: kernel default): keep it equal to headwire's data socket's. */
  floorUdpRecvBufferBytes: number;
  /** Results directory. */
  out: string;
}

const HELP = `Usage: npm run bench -- [options]

  --quick                 about a minute in all (also BENCH_QUICK=1)
  --only <phases>         comma-separated: ${PHASES.join(",")} (default: all)
  --concurrency <list>    sessions per throughput run (default 1,10,100,1000); each C runs the floor,
                          headwire and the seed's design (bench/seed-design/server.py: needs python3,
                          skipped with a warning without it)
  --warmup <s>            warm-up before each measured window (quick 0.5, full 2)
  --duration <s>          measured window per run (quick 2, full 10)
  --idle-sessions <n>     idle sessions held open (default 10000)
  --cold-samples <n>      uncached lookups per method (quick 100, full 500)
  --soak <s>              soak duration (quick 12, full 180)
  --soak-warmup <s>       load before the soak is sampled (quick 12, full 25: tickets live 10-20 s)
  --soak-sample <s>       soak sampling interval (quick 1, full 5)
  --soak-churn <ratio>    share of soak queries outside the hot set (default 0.02)
  --attack <s>            each attack's window, and the baseline's (quick 3, full 10)
  --bulk-urls <n>         distinct URLs the bulk phase fetches (quick 2000, full 10000)
  --bulk-runs <n>         bulk runs per method, the median reported (quick 1, full 3)
  --no-pin                do not pin server and load generator to separate CPUs
  --profile               CPU-profile the headwire server in each measured window (.cpuprofile files
                          under the results directory; the profiler slows the server a little)
  --heap-snapshot         heap snapshot of the server holding the idle sessions
  --floor-rcvbuf <bytes>  the floor's UDP receive buffer (default: headwire's dataReceiveBufferBytes,
                          4 MiB) so that both drop (or not) alike; 0 for the kernel's default
  --out <dir>             results directory (default bench/results)
`;

export function parseOptions(argv: string[], env: NodeJS.ProcessEnv): BenchOptions {
  const quick = argv.includes("--quick") || env.BENCH_QUICK === "1";
  const options: BenchOptions = {
    quick,
    phases: [...PHASES],
    concurrency: [1, 10, 100, 1000],
    warmupSeconds: quick ? 0.5 : 2,
    durationSeconds: quick ? 2 : 10,
    hotUrls: 100,
    idleSessions: 10_000,
    coldSamples: quick ? 100 : 500,
    soakSeconds: quick ? 12 : 180,
    soakWarmupSeconds: quick ? 12 : 25,
    soakSessions: 100,
    soakSampleSeconds: quick ? 1 : 5,
    soakChurnRatio: 0.02,
    soakChurnUrls: 5000,
    attackSeconds: quick ? 3 : 10,
    bulkUrls: quick ? 2000 : 10_000,
    bulkRuns: quick ? 1 : 3,
    pin: availableParallelism() >= 2,
    profile: false,
    heapSnapshot: false,
    floorUdpRecvBufferBytes: DEFAULT_SERVER_CONFIG.dataReceiveBufferBytes,
    out: "bench/results",
  };
  for (let i = 0; i < argv.length; i++) {
    const flag = argv[i]!;
    const value = (): string => {
      const next = argv[++i];
      if (next === undefined) throw new Error(`${flag} needs a value`);
      return next;
    };
    const number = (min: number, max: number): number => {
      const raw = value();
      const n = Number(raw);
      if (!Number.isFinite(n) || n < min || n > max) throw new Error(`${flag} must be a number from ${min} to ${max}`);
      return n;
    };
    switch (flag) {
      case "--quick":
        break;
      case "--help":
      case "-h":
        process.stdout.write(HELP);
        process.exit(0);
        break;
      case "--only":
        options.phases = value()
          .split(",")
          .map((p) => {
            if (!(PHASES as readonly string[]).includes(p)) throw new Error(`--only: unknown phase ${p}`);
            return p as Phase;
          });
        break;
      case "--concurrency":
        options.concurrency = value()
          .split(",")
          .map((c) => {
            const n = Number(c);
            if (!Number.isInteger(n) || n < 1 || n > 5000) throw new Error("--concurrency: integers from 1 to 5000");
            return n;
          });
        break;
      case "--warmup":
        options.warmupSeconds = number(0, 600);
        break;
      case "--duration":
        options.durationSeconds = number(0.5, 3600);
        break;
      case "--idle-sessions":
        options.idleSessions = Math.round(number(1, 100_000));
        break;
      case "--cold-samples":
        options.coldSamples = Math.round(number(5, 100_000));
        break;
      case "--soak":
        options.soakSeconds = number(2, 86_400);
        break;
      case "--soak-warmup":
        options.soakWarmupSeconds = number(0, 3600);
        break;
      case "--soak-sample":
        options.soakSampleSeconds = number(0.2, 600);
        break;
      case "--soak-churn":
        options.soakChurnRatio = number(0, 1);
        break;
      case "--attack":
        options.attackSeconds = number(1, 600);
        break;
      case "--bulk-urls":
        options.bulkUrls = Math.round(number(1, 1_000_000));
        break;
      case "--bulk-runs":
        options.bulkRuns = Math.round(number(1, 100));
        break;
      case "--no-pin":
        options.pin = false;
        break;
      case "--profile":
        options.profile = true;
        break;
      case "--heap-snapshot":
        options.heapSnapshot = true;
        break;
      case "--floor-rcvbuf":
        options.floorUdpRecvBufferBytes = Math.round(number(0, 1 << 30));
        break;
      case "--out":
        options.out = value();
        break;
      default:
        throw new Error(`unknown option ${flag} (see --help)`);
    }
  }
  return options;
}
