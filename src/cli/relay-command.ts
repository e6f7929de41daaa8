import { Command, InvalidArgumentError, Option } from "commander";
import { DEFAULT_DATA_PORT } from "../config.js";
import { LossyRelay, type LinkOptions, type LossyRelayOptions } from "../relay/lossy-relay.js";
import { hostAndPort, integer } from "./parse.js";

function probability(value: string): number {
  const n = Number(value);
  if (!/^(0(\.\d+)?|1(\.0+)?)$/.test(value) || Number.isNaN(n))
    throw new InvalidArgumentError("must be a probability from 0 to 1");
  return n;
}

/** "N" (both directions) or "N,M" (to the target, to the client): whole numbers. */
export function perDirection(value: string): [number, number] {
  const parts = value.split(",");
  if (parts.length > 2 || !parts.every((part) => /^\d+$/.test(part))) {
    throw new InvalidArgumentError("must be N (both directions) or N,M (to the target, to the client)");
  }
  const [toTarget, toClient = toTarget] = parts.map(Number) as [number, number?];
  return [toTarget, toClient];
}

interface RelayFlags {
  target: string;
  host: string;
  port: number;
  seed: number;
  loss: number;
  duplicate: number;
  reorder: number;
  corrupt: number;
  delayMs: number;
  latencyMs?: [number, number];
  jitterMs?: [number, number];
  bytesPerSecond?: [number, number];
  queueBytes?: [number, number];
  block: boolean;
  idleMappingMs: number;
}

/** The relay's options from its flags; a direction's link gets only the flags that were given. */
export function relayOptions(flags: RelayFlags): LossyRelayOptions {
  const link = (side: 0 | 1): LinkOptions => ({
    ...(flags.latencyMs ? { delayMs: flags.latencyMs[side] } : {}),
    ...(flags.jitterMs ? { jitterMs: flags.jitterMs[side] } : {}),
    ...(flags.bytesPerSecond ? { bytesPerSecond: flags.bytesPerSecond[side] } : {}),
    ...(flags.queueBytes ? { queueBytes: flags.queueBytes[side] } : {}),
  });
  return {
    target: hostAndPort(flags.target, DEFAULT_DATA_PORT),
    host: flags.host,
    port: flags.port,
    seed: flags.seed,
    loss: flags.loss,
    duplicate: flags.duplicate,
    reorder: flags.reorder,
    corrupt: flags.corrupt,
    ...(flags.delayMs > 0 ? { delayMs: { min: 0, max: flags.delayMs } } : {}),
    toTarget: link(0),
    toClient: link(1),
    block: flags.block,
    idleMappingMs: flags.idleMappingMs,
  };
}

export function relayCommand(): Command {
  return new Command("relay")
    .summary("a UDP path emulator, to see delivery survive a bad network")
    .description(
      "Relay UDP datagrams to a headwire server's data port as a bad path would: dropping, duplicating, " +
        "reordering and corrupting them from a seeded random source (the same seed and traffic give the same " +
        "faults), delaying them (latency and jitter), squeezing them through a bottleneck with a queue, " +
        "blocking UDP altogether, and forgetting idle client mappings as a NAT does. Point a client at it " +
        "with --udp-via. Runs until interrupted, then prints what it did.",
    )
    .requiredOption(
      "-t, --target <host:port>",
      `the server's UDP data port (an IP address; port ${DEFAULT_DATA_PORT} if none)`,
    )
    .option("--host <address>", "address to listen on", "127.0.0.1")
    .addOption(new Option("-p, --port <port>", "port to listen on (0: ephemeral)").argParser(integer).default(0))
    .addOption(new Option("--seed <n>", "seed of the random source").argParser(integer).default(1))
    .addOption(new Option("--loss <p>", "probability a datagram is dropped").argParser(probability).default(0))
    .addOption(new Option("--duplicate <p>", "probability a datagram is sent twice").argParser(probability).default(0))
    .addOption(
      new Option("--reorder <p>", "probability a datagram is held behind the next").argParser(probability).default(0),
    )
    .addOption(new Option("--corrupt <p>", "probability one bit is flipped").argParser(probability).default(0))
    .addOption(
      new Option("--delay-ms <max>", "random delay up to this, per datagram, both ways").argParser(integer).default(0),
    )
    .addOption(
      new Option("--latency-ms <ms[,ms]>", "fixed one-way delay (N both ways, or to-target,to-client)").argParser(
        perDirection,
      ),
    )
    .addOption(
      new Option("--jitter-ms <ms[,ms]>", "up to this much more delay, uniformly (reorders)").argParser(perDirection),
    )
    .addOption(
      new Option(
        "--bytes-per-second <n[,n]>",
        "bottleneck rate, UDP payload bytes a second (0, the default: unlimited)",
      ).argParser(perDirection),
    )
    .addOption(
      new Option(
        "--queue-bytes <n[,n]>",
        "bottleneck queue; datagrams beyond it are dropped (default: 65536)",
      ).argParser(perDirection),
    )
    .option("--block", "drop every datagram both ways (UDP blocked)", false)
    .addOption(
      new Option(
        "--idle-mapping-ms <ms>",
        "forget a client's mapping after this long without a datagram from it (0: never)",
      )
        .argParser(integer)
        .default(120_000),
    )
    .addHelpText(
      "after",
      `
Example: 30 % loss both ways, then a client through it
  headwire server &                                   # TCP 50366, UDP 50367
  headwire relay --target 127.0.0.1:50367 --port 40000 --loss 0.3 --duplicate 0.1 --reorder 0.1 --seed 7
  headwire client --udp-via 127.0.0.1:40000 www.twitch.tv

A satellite path: 300 ms each way, 20 ms of jitter, 1 MB/s down with a 64 KiB queue
  headwire relay --target 127.0.0.1:50367 --port 40000 --latency-ms 300 --jitter-ms 20 \\
    --bytes-per-second 0,1000000 --queue-bytes 65536`,
    )
    .action(async (flags: RelayFlags) => {
      const options = relayOptions(flags);
      const { target } = options;
      const relay = await LossyRelay.start(options);
      process.stdout.write(
        `headwire relay ready: udp ${relay.address.host}:${relay.address.port} → ${target.host}:${target.port}\n`,
      );
      const stop = async () => {
        process.stdout.write(`${JSON.stringify({ ...relay.stats, expiredMappings: relay.expiredMappings })}\n`);
        await relay.close();
        process.exit(0);
      };
      process.once("SIGINT", () => void stop());
      process.once("SIGTERM", () => void stop());
    });
}
