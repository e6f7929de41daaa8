/**
 * The interactive prompt of `headwire client` on a terminal: node:readline's line editing, a
 * history kept between runs, a few words of its own (help, last, terminate), and one line of
 * output per query.
 */
import { readFileSync, writeFileSync } from "node:fs";
import { homedir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import type { ReadStream } from "node:tty";
import type { QueryResult } from "../client/headwire-client.js";
import { HeadwireError } from "../errors.js";
import { headerForStream, visibleInLine } from "./client-output.js";
import { KeyByKey } from "./key-by-key.js";
import type { TerminalStyle } from "./terminal-style.js";

export const HISTORY_SIZE = 1000;
export const END_WORDS = new Set(["terminate", "exit", "quit"]);

/** `HEADWIRE_HISTORY` names the history file; set but empty, no history is kept on disk. */
export function historyFilePath(env: NodeJS.ProcessEnv = process.env): string | undefined {
  const configured = env.HEADWIRE_HISTORY;
  if (configured === undefined) return join(homedir(), ".headwire_history");
  return configured === "" ? undefined : configured;
}

/** The history file holds one line per entry, oldest first; readline wants newest first. */
export function loadHistory(path: string | undefined, warn: (text: string) => void): string[] {
  if (path === undefined) return [];
  try {
    const lines = readFileSync(path, "utf8")
      .split("\n")
      .filter((line) => line.trim() !== "");
    return lines.slice(-HISTORY_SIZE).reverse();
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code !== "ENOENT") warn(`cannot read the history file ${path} (${code ?? String(error)})`);
    return [];
  }
}

function saveHistory(path: string, newestFirst: readonly string[]): void {
  const text = [...newestFirst].reverse().join("\n");
  // URLs can be private: the file is readable by its owner only.
  writeFileSync(path, text === "" ? "" : `${text}\n`, { mode: 0o600 });
}

export interface PromptOptions {
  /** The session (it connects again by itself when the server ends it: ReconnectingSession). */
  client: { readonly serverName: string };
  runQuery: (url: string) => Promise<QueryResult>;
  style: TerminalStyle;
  historyFile: string | undefined;
  input?: NodeJS.ReadableStream;
  output?: NodeJS.WritableStream & { isTTY?: boolean };
}

export async function runPrompt(options: PromptOptions): Promise<void> {
  const { client, style, historyFile } = options;
  const output = options.output ?? process.stdout;
  const say = (text: string) => void output.write(text);
  const warn = (text: string) => say(style.yellow(`headwire client: ${text}`) + "\n");

  const keys = options.input ? undefined : new KeyByKey(process.stdin as ReadStream);
  const lines = createInterface({
    input: options.input ?? keys!,
    output,
    terminal: true,
    history: loadHistory(historyFile, warn),
    historySize: HISTORY_SIZE,
    removeHistoryDuplicates: true,
    prompt: style.bold(style.cyan("headwire> ")),
  });
  let historyBroken = false;
  lines.on("history", (history: string[]) => {
    if (historyFile === undefined || historyBroken) return;
    try {
      saveHistory(historyFile, history);
    } catch (error) {
      historyBroken = true;
      const code = (error as NodeJS.ErrnoException).code ?? String(error);
      warn(`cannot save the history to ${historyFile} (${code}); it is kept for this session only`);
    }
  });

  // Ctrl-C clears the line, as in a shell; on an empty line, a second Ctrl-C ends the session.
  let busy = false;
  let armed = false;
  lines.on("SIGINT", () => {
    if (busy) {
      say("\n(ending the session after this query)\n");
      lines.close();
    } else if (lines.line !== "") {
      lines.write(null, { ctrl: true, name: "e" });
      lines.write(null, { ctrl: true, name: "u" });
    } else if (armed) {
      say("\n");
      lines.close();
    } else {
      armed = true;
      say(`\n(to end the session, press Ctrl-C again or Ctrl-D, or type terminate)\n`);
      lines.prompt();
    }
  });

  let last: QueryResult | undefined;
  say(
    `connected to ${style.bold(visibleInLine(client.serverName))}; type a URL, ${style.bold("help")}, or ${style.bold("terminate")} to end\n`,
  );
  lines.prompt();
  for await (const raw of lines) {
    armed = false;
    const line = raw.trim();
    const word = line.toLowerCase();
    if (END_WORDS.has(word)) break;
    if (word === "help" || word === "?") say(promptHelp(style, historyFile));
    else if (word === "last") say(lastHeader(last, output, style));
    else if (line !== "") {
      busy = true;
      try {
        const result = await options.runQuery(line);
        if (result.header) last = result;
      } catch (error) {
        // Every attempt to connect again failed: said, and the prompt stays (the next URL tries again).
        if (!(error instanceof HeadwireError)) throw error;
        warn(`${visibleInLine(error.message)} (${error.code}); the next URL tries again`);
      } finally {
        busy = false;
      }
    }
    lines.prompt();
  }
  lines.close();
  keys?.release();
}

function lastHeader(last: QueryResult | undefined, output: { isTTY?: boolean }, style: TerminalStyle): string {
  if (!last?.header) return style.dim("no header yet: type a URL first\n");
  const about = `${last.url} | ${last.bytes} bytes | ${last.cache} | ${last.file ?? "not written to a file"}`;
  const text = headerForStream(last.header, output);
  return `${style.dim(about)}\n${typeof text === "string" ? text : text.toString("latin1")}`;
}

export function promptHelp(style: TerminalStyle, historyFile: string | undefined): string {
  const b = style.bold;
  return `
  ${b("<URL>")}         ask for the URL's header (www.example.com, https://example.com/a?b=1);
                it is written to a file in the output directory and summed up in one line
  ${b("last")}          show the last header received, in full
  ${b("help")}          this list
  ${b("terminate")}     end the session (also ${b("exit")}, ${b("quit")}, Ctrl-D on an empty line)

  Editing: Left/Right, Home/End (Ctrl-A/Ctrl-E), Ctrl-W deletes a word, Ctrl-U the line.
  Up/Down recall earlier lines; history is kept in ${historyFile ?? "memory only (HEADWIRE_HISTORY is empty)"}.
  A host named like a command (help, last...) can be asked for as http://help.

`;
}
