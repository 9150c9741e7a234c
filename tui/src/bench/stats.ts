/**
 * Statistics for benchmark results: a robust summary (median, quartiles, range, mean, sample standard deviation) of
 * the repetitions of each point of each series, and the ratio of two series' medians (e.g. tunnel over TCP).
 *
 * Pure functions, no I/O, no dependencies.
 */

/** One measurement: one repetition of one point of one series of an experiment. */
export interface Sample {
  /** The series, e.g. "tcp" or "tunnel-4". */
  series: string;
  /** The swept parameter, e.g. the block size in bytes. */
  x: number;
  /** The repetition number (kept for the raw CSV; not used to group). */
  rep: number;
  /** Metric name -> value, e.g. { "MB/s": 812.5, "cpu": 0.93 }. */
  values: Record<string, number>;
}

/** Robust summary of one metric over the repetitions of one point. */
export interface Spread {
  n: number;
  median: number;
  min: number;
  max: number;
  /** First quartile (linear interpolation between order statistics, "type 7", numpy's default). */
  q1: number;
  /** Third quartile (as q1). */
  q3: number;
  mean: number;
  /** Sample standard deviation (n - 1 in the denominator); 0 when n is 1. */
  stdev: number;
}

/** The p-quantile (0..1) of sorted values, by linear interpolation between order statistics (type 7). */
function quantileSorted(sorted: readonly number[], p: number): number {
  const h = (sorted.length - 1) * p;
  const lo = Math.floor(h);
  const a = sorted[lo] as number;
  const b = sorted[Math.min(lo + 1, sorted.length - 1)] as number;
  return h === lo ? a : a + (h - lo) * (b - a);
}

/**
 * The spread of some values. Quartiles and median by linear interpolation (type 7, like numpy's default);
 * standard deviation of a sample (n - 1; 0 when n is 1).
 *
 * @throws RangeError on an empty input or a non-finite value.
 */
export function spread(values: readonly number[]): Spread {
  if (values.length === 0) throw new RangeError('spread: no values');
  for (const v of values) {
    if (!Number.isFinite(v)) throw new RangeError(`spread: non-finite value ${String(v)}`);
  }
  const sorted = [...values].sort((a, b) => a - b);
  const n = sorted.length;
  let sum = 0;
  for (const v of sorted) sum += v;
  const mean = sum / n;
  let squares = 0;
  for (const v of sorted) squares += (v - mean) * (v - mean);
  return {
    n,
    median: quantileSorted(sorted, 0.5),
    min: sorted[0] as number,
    max: sorted[n - 1] as number,
    q1: quantileSorted(sorted, 0.25),
    q3: quantileSorted(sorted, 0.75),
    mean,
    stdev: n > 1 ? Math.sqrt(squares / (n - 1)) : 0,
  };
}

/** The summary of one metric at one point of one series. */
export interface SummaryRow {
  series: string;
  x: number;
  metric: string;
  spread: Spread;
}

/** Metric names in order of first appearance over the samples. */
export function metricsOf(samples: readonly Sample[]): string[] {
  const seen = new Set<string>();
  for (const s of samples) for (const m of Object.keys(s.values)) seen.add(m);
  return [...seen];
}

/**
 * Groups samples by (series, x) and summarises `metrics` (every metric present in any sample, in order of first
 * appearance, if omitted). Rows are sorted by series in order of first appearance, then x ascending, then metric in
 * the order of `metrics`. Samples lacking a metric (or with a non-finite value for it) are skipped for that metric;
 * a point none of whose samples has the metric gets no row for it.
 */
export function summarize(samples: readonly Sample[], metrics?: readonly string[]): SummaryRow[] {
  const wanted = metrics ?? metricsOf(samples);
  const bySeries = new Map<string, Map<number, Sample[]>>();
  for (const s of samples) {
    let byX = bySeries.get(s.series);
    if (byX === undefined) bySeries.set(s.series, (byX = new Map()));
    const group = byX.get(s.x);
    if (group === undefined) byX.set(s.x, [s]);
    else group.push(s);
  }
  const rows: SummaryRow[] = [];
  for (const [series, byX] of bySeries) {
    const xs = [...byX.keys()].sort((a, b) => a - b);
    for (const x of xs) {
      const group = byX.get(x) ?? [];
      for (const metric of wanted) {
        const values: number[] = [];
        for (const s of group) {
          if (!Object.hasOwn(s.values, metric)) continue;
          const v = s.values[metric];
          if (typeof v === 'number' && Number.isFinite(v)) values.push(v);
        }
        if (values.length > 0) rows.push({ series, x, metric, spread: spread(values) });
      }
    }
  }
  return rows;
}

/**
 * The ratio of the medians of two series for one metric, at every x both series have, x ascending. Points where
 * the denominator's median is 0 are skipped, so no ratio is NaN or infinite.
 */
export function ratioOfMedians(
  rows: readonly SummaryRow[],
  metric: string,
  numerator: string,
  denominator: string,
): { x: number; ratio: number }[] {
  const num = new Map<number, number>();
  const den = new Map<number, number>();
  for (const r of rows) {
    if (r.metric !== metric) continue;
    if (r.series === numerator && !num.has(r.x)) num.set(r.x, r.spread.median);
    if (r.series === denominator && !den.has(r.x)) den.set(r.x, r.spread.median);
  }
  const out: { x: number; ratio: number }[] = [];
  for (const [x, n] of num) {
    const d = den.get(x);
    if (d === undefined || d === 0) continue;
    const ratio = n / d;
    if (Number.isFinite(ratio)) out.push({ x, ratio });
  }
  return out.sort((a, b) => a.x - b.x);
}
