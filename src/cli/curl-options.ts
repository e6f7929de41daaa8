/**
 * The options of `headwire client` that speak curl's vocabulary where they mean the same thing:
 * -I/--head, -L/--location with --max-redirs, -f/--fail, -o/--output, -D/--dump-header,
 * -s/--silent with -S/--show-error. Read here into what the client does with them; their
 * checks that need no server are here too, so a bad combination is a usage error (exit 2).
 */
import { InvalidArgumentError, Option, type Command } from "commander";
import { MAX_REDIRECTS, type HttpMethod } from "../http/query-options.js";
import { integer } from "./parse.js";
import type { OutputTarget } from "./output-target.js";

/** The options as commander parses them. */
export interface CurlFlags {
  head?: boolean;
  method: HttpMethod;
  location?: boolean;
  maxRedirs: number;
  /** The older spelling: `--redirects N` is `-L --max-redirs N` (0: do not follow). */
  redirects?: number;
  fail?: boolean;
  output?: string;
  dumpHeader?: string;
  silent?: boolean;
  showError?: boolean;
  /** The older spelling of --output-dir. */
  out?: string;
}

function redirectCount(value: string): number {
  const n = integer(value);
  // The server follows at most MAX_REDIRECTS hops (docs/protocol.md, redirects=); curl's default is 50.
  if (n > MAX_REDIRECTS) throw new InvalidArgumentError(`the server follows at most ${MAX_REDIRECTS} redirects`);
  return n;
}

export function addCurlOptions(command: Command): Command {
  return command
    .addOption(new Option("-I, --head", "ask the origin with HEAD (as curl -I); the same as --method HEAD"))
    .addOption(
      new Option("--method <method>", "request method towards the origin").choices(["GET", "HEAD"]).default("GET"),
    )
    .addOption(
      new Option("-L, --location", "follow redirects (301, 302, 303, 307, 308), up to --max-redirs, as curl -L"),
    )
    .addOption(
      new Option("--max-redirs <n>", `with -L: redirects followed at most (0-${MAX_REDIRECTS}; curl's default is 50)`)
        .argParser(redirectCount)
        .default(MAX_REDIRECTS),
    )
    .addOption(new Option("--redirects <n>", "the same as -L --max-redirs N").argParser(redirectCount).hideHelp())
    .addOption(
      new Option(
        "-f, --fail",
        "a final status of 400 or more is a failure (exit 22); no file, -D still gets the header",
      ),
    )
    .addOption(new Option("-o, --output <file>", "write the URL's header to FILE (one URL; - is standard output)"))
    .addOption(new Option("-D, --dump-header <file>", "write the header to FILE as well (- is standard output)"))
    .addOption(new Option("--out <dir>", "the older name of --output-dir").hideHelp())
    .addOption(new Option("-s, --silent", "no summary lines and no error messages (the exit status still tells)"))
    .addOption(new Option("-S, --show-error", "with -s: print error messages all the same"));
}

/** The query options the flags ask for: -I is HEAD; -L follows up to --max-redirs. */
export function queryOptionsOf(flags: CurlFlags): { method: HttpMethod; redirects: number } {
  const method: HttpMethod = flags.head ? "HEAD" : flags.method;
  if (flags.redirects !== undefined) return { method, redirects: flags.redirects };
  return { method, redirects: flags.location ? flags.maxRedirs : 0 };
}

export function outputTargetOf(flags: CurlFlags, print: boolean, outDir: string): OutputTarget {
  return { outputFile: flags.output, dumpFile: flags.dumpHeader, print, outDir, fail: flags.fail ?? false };
}

/** -s hides error lines unless -S brings them back, as curl -sS. */
export function showsErrors(flags: CurlFlags): boolean {
  return !flags.silent || (flags.showError ?? false);
}
