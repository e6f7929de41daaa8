import { Command, type CommanderError } from "commander";
import { VERSION } from "../version.js";
import { cacheCommand } from "./cache-command.js";
import { clientCommand } from "./client-command.js";
import { demoCommand } from "./demo-command.js";
import { serverCommand } from "./server-command.js";

/** Usage errors exit 2 (as documented); --help and --version exit 0. */
const exitOnUsageError = (error: CommanderError) => process.exit(error.exitCode === 0 ? 0 : 2);

const program = new Command("headwire")
  .description("Fetch, cache and deliver HTTP response headers over a TCP control channel and a UDP data channel.")
  .version(VERSION, "-V, --version")
  .showHelpAfterError()
  .exitOverride(exitOnUsageError);

for (const command of [serverCommand(), clientCommand(), cacheCommand(), demoCommand()]) {
  program.addCommand(command.copyInheritedSettings(program).exitOverride(exitOnUsageError));
}

await program.parseAsync(process.argv);
