/**
 * Colours for the client's terminal output: on only when the stream is a terminal, `NO_COLOR` is
 * unset or empty (https://no-color.org) and `TERM` is not `dumb`. Plain SGR sequences; no library.
 */

export interface TerminalStyle {
  readonly enabled: boolean;
  bold(text: string): string;
  dim(text: string): string;
  red(text: string): string;
  green(text: string): string;
  yellow(text: string): string;
  cyan(text: string): string;
}

const plain = (text: string) => text;
const sgr = (open: number, close: number) => (text: string) => `\x1b[${open}m${text}\x1b[${close}m`;

export const PLAIN_STYLE: TerminalStyle = {
  enabled: false,
  bold: plain,
  dim: plain,
  red: plain,
  green: plain,
  yellow: plain,
  cyan: plain,
};

const COLOUR_STYLE: TerminalStyle = {
  enabled: true,
  bold: sgr(1, 22),
  dim: sgr(2, 22),
  red: sgr(31, 39),
  green: sgr(32, 39),
  yellow: sgr(33, 39),
  cyan: sgr(36, 39),
};

export function styleFor(stream: { isTTY?: boolean }, env: NodeJS.ProcessEnv = process.env): TerminalStyle {
  const wanted = stream.isTTY === true && !env.NO_COLOR && env.TERM !== "dumb";
  return wanted ? COLOUR_STYLE : PLAIN_STYLE;
}

/**
 * Text from the network made safe to show on a terminal: an origin could otherwise put escape
 * sequences in a header and move the cursor, retitle the window or worse. Tabs and line ends stay;
 * every other C0/C1 control and DEL becomes a visible `\xHH`.
 */
export function visible(text: string): string {
  return text.replace(
    /[\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f-\u009f]/g,
    (c) => `\\x${c.charCodeAt(0).toString(16).padStart(2, "0")}`,
  );
}
