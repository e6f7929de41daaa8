/**
 * Turning measurements into the figures we track: ratios to the floor, the target checks, the
 * soak's trend, and Markdown tables (the terminal output pastes into docs/performance.md as is).
 */

export interface TargetCheck {
  name: string;
  target: string;
  measured: string;
  pass: boolean | undefined;
}

/** Least-squares slope of y over x (units of y per unit of x); 0 for fewer than two points. */
export function slope(points: { x: number; y: number }[]): number {
  const n = points.length;
  if (n < 2) return 0;
  const mx = points.reduce((a, p) => a + p.x, 0) / n;
  const my = points.reduce((a, p) => a + p.y, 0) / n;
  let num = 0;
  let den = 0;
  for (const p of points) {
    num += (p.x - mx) * (p.y - my);
    den += (p.x - mx) ** 2;
  }
  return den === 0 ? 0 : num / den;
}

export interface TrendVerdict {
  /** Samples used: the first quarter is warm-up and left out. */
  samples: number;
  slopePerMinute: number;
  /** Growth the slope predicts over the window, as a share of the mean. */
  relativeGrowth: number;
  mean: number;
}

export function trend(series: { atSeconds: number; value: number }[]): TrendVerdict {
  const kept = series.slice(Math.floor(series.length / 4));
  const points = kept.map((s) => ({ x: s.atSeconds / 60, y: s.value }));
  const perMinute = slope(points);
  const mean = points.length === 0 ? 0 : points.reduce((a, p) => a + p.y, 0) / points.length;
  const windowMinutes = points.length < 2 ? 0 : points[points.length - 1]!.x - points[0]!.x;
  return {
    samples: points.length,
    slopePerMinute: perMinute,
    relativeGrowth: mean === 0 ? 0 : (perMinute * windowMinutes) / mean,
    mean,
  };
}

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
