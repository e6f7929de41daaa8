/**
 * The soak's trend: a least-squares slope over the samples after warm-up, and the growth it
 * predicts over the window as a share of the mean (pure).
 */

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
