import { Command } from "commander";
import { runDemo } from "../demo/demo.js";

export function demoCommand(): Command {
  return new Command("demo")
    .summary("run a whole session on this machine, offline")
    .description(
      "Start a local origin with realistic headers, a server on ephemeral ports and a client session that " +
        "asks for a miss, a hit, two more sites and an error, printing every message on the TCP and UDP " +
        "channels as it goes. Nothing leaves this machine; the files it writes go to a temporary directory " +
        "that is removed at the end.",
    )
    .addHelpText(
      "after",
      `
Exit status:
  0  every step did what it should
  1  a step surprised it (the output says which)

Example:
  headwire demo`,
    )
    .action(async () => {
      process.exitCode = await runDemo();
    });
}
