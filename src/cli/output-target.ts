/**
 * Where `headwire client` puts each header it receives, in curl's words. curl writes a response's
 * body where -o says (standard output by default) and its header where -D says; headwire's
 * response *is* a header, so:
 *
 * - the header is the "body": `-o FILE` writes it to FILE (one URL only: a second URL would
 *   overwrite the first), `-o -` or `--print` to standard output, and by default it goes to a file
 *   named after the URL in `--output-dir DIR` (`.`), as curl's `--output-dir` with `-O`;
 * - `-D FILE` / `-D -` dumps it as well, as curl -D does, whatever -o says;
 * - `-f/--fail`: a final status of 400 or more is a failure (HTTP_FAILED, exit 22). As curl -f, the
 *   "body" output gets nothing (no -o file, no file in the directory, nothing printed), while -D
 *   still gets the header: it is what the user asked to see.
 *
 * Files appear whole: written to a temporary name beside them, then renamed (rename(2) is atomic
 * within a directory), as the client library does for its directory files.
 */
import { mkdirSync } from "node:fs";
import { dirname, join } from "node:path";
import type { QueryResult } from "../client/headwire-client.js";
import { writeWhole as writeWholeThrough } from "../client/header-file-writer.js";
import { headerFileName } from "../client/file-name.js";
import { headerForStream, write } from "./client-output.js";

/** "-" as a file name means standard output, as in curl. */
export const STDOUT_NAME = "-";

export interface OutputTarget {
  /** -o FILE: the one URL's header goes there ("-": standard output). */
  outputFile?: string;
  /** -D FILE: the header is dumped there too ("-": standard output). */
  dumpFile?: string;
  /** --print: the header goes to standard output, no file. */
  print: boolean;
  /** --output-dir (the outDir setting): where a header goes when neither -o nor --print says. */
  outDir: string;
  /** -f/--fail: a final status of 400 or more is a failure. */
  fail: boolean;
}

/** True when a header's bytes go to standard output, so no summary line may go there. */
export function headersOnStdout(target: OutputTarget): boolean {
  return target.print || target.outputFile === STDOUT_NAME || target.dumpFile === STDOUT_NAME;
}

/** Refusals of -o and -D that need no server: null when the combination is fine. */
export function targetProblem(target: OutputTarget, urlCount: number, batch: boolean, json: boolean): string | null {
  if (json && headersOnStdout(target)) return "--json and a header on standard output (-o -, -D -, --print) would mix";
  if (target.print && target.outputFile !== undefined && target.outputFile !== STDOUT_NAME) {
    return "--print writes no file and -o FILE writes one: give one of them";
  }
  const several = batch ? "with --batch" : urlCount > 1 ? `with ${urlCount} URLs` : undefined;
  const single = (flag: string, file: string | undefined) =>
    file !== undefined && file !== STDOUT_NAME && several !== undefined
      ? `${flag} FILE takes one URL's header; ${several}, use --output-dir DIR (a file per URL)`
      : null;
  // Standard input and the prompt may bring any number of URLs: each would overwrite the last.
  const fileOf = (file: string | undefined) => file !== undefined && file !== STDOUT_NAME;
  if (urlCount === 0 && !batch && (fileOf(target.outputFile) || fileOf(target.dumpFile))) {
    const flag = fileOf(target.outputFile) ? "-o" : "-D";
    return `${flag} FILE takes one URL's header: give the URL as an argument, or use --output-dir DIR`;
  }
  return single("-o", target.outputFile) ?? single("-D", target.dumpFile);
}

/**
 * Delivers one query's header where the target says, and returns the result the user is told
 * about: `file` is where the "body" went, an error if -f refused it or a file could not be written.
 */
export async function deliver(
  result: QueryResult,
  target: OutputTarget,
  stdout: NodeJS.WritableStream & { isTTY?: boolean },
): Promise<QueryResult> {
  if (result.error || result.header === undefined) return result;
  const header = result.header;
  try {
    if (target.dumpFile === STDOUT_NAME) await write(stdout, headerForStream(header, stdout));
    else if (target.dumpFile !== undefined) writeWhole(target.dumpFile, header);
  } catch (error) {
    return writeFailed(result, target.dumpFile!, error);
  }
  if (target.fail && failsWithF(result)) return httpFailed(result);
  if (target.print || target.outputFile === STDOUT_NAME) {
    await write(stdout, headerForStream(header, stdout));
    return result;
  }
  const path = target.outputFile ?? join(target.outDir, headerFileName(result.url));
  try {
    if (target.outputFile === undefined) mkdirSync(target.outDir, { recursive: true });
    writeWhole(path, header);
  } catch (error) {
    return writeFailed(result, path, error);
  }
  return { ...result, file: path };
}

/** -f/--fail: a final status of 400 or more (RFC 9110 §15.5, §15.6: client and server errors). */
export function failsWithF(result: QueryResult): boolean {
  return !result.error && (result.status ?? 0) >= 400;
}

/** The result -f makes of a status of 400 or more: HTTP_FAILED, the status kept, no file. */
export function httpFailed(result: QueryResult): QueryResult {
  const message = `the origin answered ${result.status}${reasonOf(result.statusLine)} (-f/--fail)`;
  return { ...result, file: undefined, error: { code: "HTTP_FAILED", message } };
}

/**
 * Writes through a temporary file beside `path` and a rename: a reader never sees half a header,
 * and a path that is a directory fails (EISDIR) rather than being written into.
 */
export function writeWhole(path: string, data: Buffer): void {
  const temporary = join(dirname(path), `.${process.pid}-${(temporaryCounter++).toString(36)}.headwire.part`);
  writeWholeThrough(path, temporary, data, false);
}

let temporaryCounter = 0;

function writeFailed(result: QueryResult, path: string, error: unknown): QueryResult {
  const reason = (error as NodeJS.ErrnoException).code ?? (error as Error).message;
  const message = `cannot write the header to ${path}: ${reason}`;
  return { ...result, file: undefined, error: { code: "WRITE_FAILED", message } };
}

/** " Not Found" from "HTTP/1.1 404 Not Found"; nothing when there is no reason phrase. */
function reasonOf(statusLine: string | undefined): string {
  const reason = /^\S+\s+\d{3}\s+(.*)$/.exec(statusLine ?? "")?.[1];
  return reason ? ` ${reason.replace(/[\u0000-\u001f\u007f]/g, "")}` : "";
}
