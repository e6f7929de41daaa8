import { Command } from "commander";
import { runDemo } from "../demo/demo.js";

export function demoCommand(): Command {
  return new Command("demo")
    .summary("run a whole session on this machine, offline")
    .description(
      "Start a local origin with realistic headers, a server on ephemeral ports and a client session\n" +
        "that asks for a miss, a hit and an error, printing every message on the TCP and UDP channels.",
    )
    .action(async () => {
      process.exitCode = await runDemo();
    });
}
