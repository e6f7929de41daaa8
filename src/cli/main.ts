import { Command, type CommanderError } from "commander";
import { VERSION } from "../version.js";
import { guardProcess, reportUncaught } from "./process-guard.js";

/**
 * Each command's module, loaded only when needed: the server's modules (pino, the cluster, the
 * admin listener...) took ~0.8 s to load in every `headwire client`, a tenth of a warm
 * 10,000-URL batch (docs/performance.md, "Bulk"). In the order `headwire --help` lists them.
 */
const COMMANDS: Record<string, () => Promise<Command>> = {
  server: async () => (await import("./server-command.js")).serverCommand(),
  client: async () => (await import("./client-command.js")).clientCommand(),
  cache: async () => (await import("./cache-command.js")).cacheCommand(),
  relay: async () => (await import("./relay-command.js")).relayCommand(),
  demo: async () => (await import("./demo-command.js")).demoCommand(),
  dissector: async () => (await import("./dissector-command.js")).dissectorCommand(),
};

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

Exit status: 0 success, 1 a query or step failed, 2 bad usage; the client numbers its own
as curl does (headwire client --help, EXIT STATUS); 70 a bug in headwire (one line with its
code; HEADWIRE_DEBUG=1 adds the stack). A closed standard output (headwire cache list | head -1)
ends a command quietly with the status it had so far. "headwire <command> --help" tells more; docs/ has the protocol.`,
  )
  .showHelpAfterError()
  .exitOverride(exitOnUsageError);

// `headwire <command> ...` needs that command only; anything else (no command, --help, --version,
// a mistyped name) gets them all, so that help and "unknown command" read as before.
const named = process.argv[2];
const needed = named !== undefined && Object.hasOwn(COMMANDS, named) ? [named] : Object.keys(COMMANDS);
for (const command of await Promise.all(needed.map((name) => COMMANDS[name]!()))) {
  program.addCommand(command.copyInheritedSettings(program).exitOverride(exitOnUsageError));
}

try {
  await program.parseAsync(process.argv);
} catch (error) {
  reportUncaught(error);
}
