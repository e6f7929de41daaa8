/**
 * How figures are written in the report: Markdown tables (the terminal output pastes into
 * docs/performance.md as is), fixed decimals, thousands separators, and a target's verdict.
 */

export function markdownTable(head: string[], rows: (string | number)[][]): string {
  const cells = rows.map((row) => row.map((c) => String(c)));
  const widths = head.map((h, i) => Math.max(h.length, ...cells.map((r) => (r[i] ?? "").length)));
  const line = (row: string[]) => `| ${row.map((c, i) => c.padEnd(widths[i]!)).join(" | ")} |`;
  return [line(head), `|${widths.map((w) => "-".repeat(w + 2)).join("|")}|`, ...cells.map(line)].join("\n");
}

export function fixed(value: number | undefined, digits = 2): string {
  return value === undefined || !Number.isFinite(value) ? "n/a" : value.toFixed(digits);
}

export function thousands(value: number | undefined): string {
  return value === undefined || !Number.isFinite(value) ? "n/a" : Math.round(value).toLocaleString("en-US");
}

export function verdict(pass: boolean | undefined): string {
  return pass === undefined ? "SKIP" : pass ? "PASS" : "MISS";
}

/** A bottleneck's rate as the report writes it: "250 kB/s" (decimal units, as link rates are given). */
export function rate(bytesPerSecond: number | undefined): string {
  if (!bytesPerSecond) return "—";
  return bytesPerSecond >= 1_000_000
    ? `${fixed(bytesPerSecond / 1_000_000, 1)} MB/s`
    : `${fixed(bytesPerSecond / 1000, 0)} kB/s`;
}

/** One emulated path in a line: "50 ms one way, 0 % loss, 250 kB/s bottleneck". */
export function pathName(path: { oneWayMs: number; loss: number; bytesPerSecond?: number | undefined }): string {
  const bottleneck = path.bytesPerSecond ? `, ${rate(path.bytesPerSecond)} bottleneck` : "";
  return `${path.oneWayMs} ms one way, ${fixed(path.loss * 100, 0)} % loss${bottleneck}`;
}
