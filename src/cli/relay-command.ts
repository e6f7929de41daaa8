import { Command, InvalidArgumentError, Option } from "commander";
import { DEFAULT_DATA_PORT } from "../config.js";
import { LossyRelay } from "../relay/lossy-relay.js";
import { hostAndPort, integer } from "./parse.js";

function probability(value: string): number {
  const n = Number(value);
  if (!/^(0(\.\d+)?|1(\.0+)?)$/.test(value) || Number.isNaN(n))
    throw new InvalidArgumentError("must be a probability from 0 to 1");
  return n;
}

export function relayCommand(): Command {
  return new Command("relay")
    .summary("a lossy UDP relay, to see delivery survive a bad network")
    .description(
      "Relay UDP datagrams to a headwire server's data port, dropping, duplicating, reordering, delaying " +
        "and corrupting them from a seeded random source (the same seed and traffic give the same faults). " +
        "Point a client at it with --udp-via. Runs until interrupted, then prints what it did.",
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
    .addOption(new Option("--delay-ms <max>", "random delay up to this, per datagram").argParser(integer).default(0))
    .addHelpText(
      "after",
      `
Example: 30 % loss both ways, then a client through it
  headwire server &                                   # TCP 50366, UDP 50367
  headwire relay --target 127.0.0.1:50367 --port 40000 --loss 0.3 --duplicate 0.1 --reorder 0.1 --seed 7
  headwire client --udp-via 127.0.0.1:40000 www.twitch.tv`,
    )
    .action(async (opts) => {
      const target = hostAndPort(opts.target, DEFAULT_DATA_PORT);
      const relay = await LossyRelay.start({
        target,
        host: opts.host,
        port: opts.port,
        seed: opts.seed,
        loss: opts.loss,
        duplicate: opts.duplicate,
        reorder: opts.reorder,
        corrupt: opts.corrupt,
        ...(opts.delayMs > 0 ? { delayMs: { min: 0, max: opts.delayMs } } : {}),
      });
      process.stdout.write(
        `headwire relay ready: udp ${relay.address.host}:${relay.address.port} → ${target.host}:${target.port}\n`,
      );
      const stop = async () => {
        process.stdout.write(`${JSON.stringify(relay.stats)}\n`);
        await relay.close();
        process.exit(0);
      };
      process.once("SIGINT", () => void stop());
      process.once("SIGTERM", () => void stop());
    });
}
