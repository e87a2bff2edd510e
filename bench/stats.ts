/** Order statistics for benchmark samples (milliseconds). */
export interface Summary {
  n: number;
  median: number;
  p95: number;
  min: number;
  max: number;
  mean: number;
}

/**
 * Median (mean of the two middle values for an even n) and p95 by the nearest-rank method
 * (the ⌈0.95·n⌉-th smallest sample: with n = 20 the 19th, so one outlier in 20 does not show).
 */
export function summarize(samples: readonly number[]): Summary | null {
  const n = samples.length;
  if (n === 0) return null;
  const s = [...samples].sort((a, b) => a - b);
  const mid = Math.floor(n / 2);
  const median = n % 2 === 1 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
  return {
    n,
    median,
    p95: s[Math.max(0, Math.ceil(0.95 * n) - 1)]!,
    min: s[0]!,
    max: s[n - 1]!,
    mean: s.reduce((a, b) => a + b, 0) / n,
  };
}

/** Milliseconds for display: one decimal below 100 ms, whole numbers above. */
export function fmtMs(ms: number | null | undefined): string {
  if (ms === null || ms === undefined || !Number.isFinite(ms)) return '–';
  return ms < 100 ? ms.toFixed(1) : ms.toFixed(0);
}
