import { Command, type CommanderError } from "commander";
import { VERSION } from "../version.js";
import { cacheCommand } from "./cache-command.js";
import { clientCommand } from "./client-command.js";
import { demoCommand } from "./demo-command.js";
import { dissectorCommand } from "./dissector-command.js";
import { guardProcess, reportUncaught } from "./process-guard.js";
import { relayCommand } from "./relay-command.js";
import { serverCommand } from "./server-command.js";

// Before anything writes: a closed output (| head) and an uncaught error end quietly, in one line.
guardProcess();

/** Usage errors exit 2 (as documented); --help and --version exit 0. */
const exitOnUsageError = (error: CommanderError) => process.exit(error.exitCode === 0 ? 0 : 2);

const program = new Command("headwire")
  .description("Fetch, cache and deliver HTTP response headers over a TCP control channel and a UDP data channel.")
  .version(VERSION, "-V, --version")
  .addHelpText(
    "after",
    `
A server fetches the HTTP response header of each URL its clients ask for (or takes it from
its cache), and a client collects it over UDP and writes it, byte for byte, to <URL>.txt.

Examples:
  headwire demo                          # everything on this machine, offline
  headwire server                        # TCP 50366 and UDP 50367
  headwire client www.twitch.tv          # writes ./www.twitch.tv.txt
  headwire client --batch urls.txt -j 16 # many URLs over 16 sessions
  headwire cache purge --all             # empty a stopped server's cache file
  headwire dissector > ~/.local/lib/wireshark/plugins/headwire.lua   # see it in Wireshark

Exit status: 0 success, 1 a query or step failed, 2 bad usage, 3 server unreachable or
session lost (client), 70 a bug in headwire (one line with its code; HEADWIRE_DEBUG=1 adds
the stack). A closed standard output (headwire cache list | head -1) ends a command quietly
with the status it had so far. "headwire <command> --help" tells more; docs/ has the protocol.`,
  )
  .showHelpAfterError()
  .exitOverride(exitOnUsageError);

for (const command of [
  serverCommand(),
  clientCommand(),
  cacheCommand(),
  relayCommand(),
  demoCommand(),
  dissectorCommand(),
]) {
  program.addCommand(command.copyInheritedSettings(program).exitOverride(exitOnUsageError));
}

try {
  await program.parseAsync(process.argv);
} catch (error) {
  reportUncaught(error);
}
