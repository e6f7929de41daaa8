/**
 * A program run in a real pseudo-terminal through tmux: keys typed with send-keys, the screen read
 * with capture-pane. Each pane gets its own tmux server (its own socket), so tests never touch a
 * user's tmux and can run in parallel.
 */
import { execFile } from "node:child_process";
import { existsSync } from "node:fs";
import { rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";

const run = promisify(execFile);
const TMUX_CANDIDATES = ["/usr/bin/tmux", "/usr/local/bin/tmux", "/opt/homebrew/bin/tmux"];

export function tmuxPath(): string | undefined {
  return TMUX_CANDIDATES.find((path) => existsSync(path));
}

const quote = (word: string) => `'${word.replace(/'/g, `'\\''`)}'`;

export class TmuxPane {
  private constructor(
    private readonly tmux: string,
    private readonly socket: string,
  ) {}

  /**
   * Starts `command` in a detached 120×40 session (or `width` columns); its exit status is printed when it ends. A first
   * line is printed before it, as a shell would echo the command: tmux (scroll-on-clear) would
   * otherwise move the screen into the scrollback when a program clears from the top-left corner.
   */
  static async start(command: string[], options: { dir: string; cwd: string; env: NodeJS.ProcessEnv; width?: number }) {
    const tmux = tmuxPath();
    if (!tmux) throw new Error("tmux not installed");
    // Not in options.dir: a test's temporary directory may be removed before kill() runs, and
    // without its socket the tmux server could no longer be told to stop.
    const socket = join(tmpdir(), `headwire-tmux-${process.pid}-${Math.random().toString(36).slice(2)}.sock`);
    const pane = new TmuxPane(tmux, socket);
    const env = { ...options.env };
    delete env.TMUX;
    await run(
      tmux,
      [
        "-S",
        socket,
        "-f",
        "/dev/null",
        "new-session",
        "-d",
        "-s",
        "t",
        "-x",
        String(options.width ?? 120),
        "-y",
        "40",
        "-c",
        options.cwd,
        `echo '$ (the program)'; ${command.map(quote).join(" ")}; printf '\\n[exit %d]\\n' $?`,
        ";",
        "set-option",
        "-w",
        "-t",
        "t",
        "remain-on-exit",
        "on",
      ],
      { env },
    );
    return pane;
  }

  private tmuxCommand(args: string[]) {
    return run(this.tmux, ["-S", this.socket, ...args]);
  }

  /** Types text literally. */
  async type(text: string): Promise<void> {
    await this.tmuxCommand(["send-keys", "-t", "t", "-l", text]);
  }

  /** Presses keys by tmux name: Enter, Up, BSpace, C-a, C-d... */
  async press(...keys: string[]): Promise<void> {
    await this.tmuxCommand(["send-keys", "-t", "t", ...keys]);
  }

  /** The whole pane, scrollback included, wrapped lines joined; with escapes: colours kept as SGR. */
  async screen(escapes = false): Promise<string> {
    const { stdout } = await this.tmuxCommand([
      "capture-pane",
      "-p",
      "-J",
      "-S",
      "-",
      "-t",
      "t",
      ...(escapes ? ["-e"] : []),
    ]);
    return stdout;
  }

  /** Polls the screen until `condition` holds (an observable state, never a fixed delay). */
  async waitFor(condition: RegExp | ((screen: string) => boolean), what: string, timeoutMs = 15_000): Promise<string> {
    const holds = typeof condition === "function" ? condition : (screen: string) => condition.test(screen);
    const deadline = performance.now() + timeoutMs;
    for (;;) {
      const screen = await this.screen();
      if (holds(screen)) return screen;
      if (performance.now() > deadline) throw new Error(`timed out waiting for ${what}; the screen:\n${screen}`);
      await new Promise((resolve) => setTimeout(resolve, 25));
    }
  }

  /**
   * The program's exit status, from the line the shell prints after it (see start): tmux's own
   * #{pane_dead_status} is sometimes left empty when the terminal closes before the child is reaped.
   */
  async waitForExit(timeoutMs = 15_000): Promise<number> {
    const screen = await this.waitFor(/^\[exit \d+\]$/m, "the program's end", timeoutMs);
    return Number(/^\[exit (\d+)\]$/m.exec(screen)![1]);
  }

  async kill(): Promise<void> {
    await this.tmuxCommand(["kill-server"]).catch(() => {});
    await rm(this.socket, { force: true });
  }
}
