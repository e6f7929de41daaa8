import { Command } from "commander";
import { VERSION } from "../version.js";
import { clientCommand } from "./client-command.js";
import { demoCommand } from "./demo-command.js";
import { serverCommand } from "./server-command.js";

const program = new Command("headwire")
  .description("Fetch, cache and deliver HTTP response headers over a TCP control channel and a UDP data channel.")
  .version(VERSION, "-V, --version")
  .addCommand(serverCommand())
  .addCommand(clientCommand())
  .addCommand(demoCommand())
  .showHelpAfterError()
  .configureOutput({ outputError: (text, write) => write(text) })
  .exitOverride((error) => {
    process.exit(error.exitCode === 0 ? 0 : 2);
  });

await program.parseAsync(process.argv);
