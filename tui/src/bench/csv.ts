/**
 * CSV (RFC 4180) of benchmark results: the summary rows of `summarize()` and the raw samples, for spreadsheets and
 * plotting tools. Lines end with "\n".
 */
import { metricsOf, type Sample, type SummaryRow } from './stats.js';

/** A value of a CSV cell. */
export type CsvValue = string | number | boolean | undefined | null;

/**
 * A number as text: integers exactly (no exponent below 1e21), others with up to 6 significant digits and no
 * trailing zeros (1/3 -> "0.333333", 2.5 -> "2.5"); NaN and infinities as JavaScript prints them.
 */
export function formatNumber(n: number): string {
  if (!Number.isFinite(n)) return String(n);
  if (Number.isInteger(n)) return Math.abs(n) < 1e21 ? String(n) : BigInt(n).toString();
  return String(Number(n.toPrecision(6)));
}

/** One field: empty for undefined/null; quoted (quotes doubled) when it holds a comma, quote, CR or LF. */
export function csvField(value: CsvValue): string {
  if (value === undefined || value === null) return '';
  const text = typeof value === 'number' ? formatNumber(value) : String(value);
  return /[",\r\n]/.test(text) ? `"${text.replaceAll('"', '""')}"` : text;
}

/** One line of fields, with its "\n". */
function csvLine(fields: readonly CsvValue[]): string {
  return `${fields.map(csvField).join(',')}\n`;
}

/**
 * RFC 4180 CSV: a header row, then one row per record with its values in the order of `columns` (a missing key is
 * an empty field). Fields with a comma, quote, CR or LF are quoted, quotes doubled; numbers are printed with up to
 * 6 significant digits but integers exactly; lines end with "\n"; undefined/null give an empty field.
 */
export function toCsv(
  columns: readonly string[],
  rows: readonly Record<string, string | number | boolean | undefined | null>[],
): string {
  let out = csvLine(columns);
  for (const row of rows) out += csvLine(columns.map((c) => (Object.hasOwn(row, c) ? row[c] : undefined)));
  return out;
}

/** Columns of `summaryCsv`. */
export const SUMMARY_COLUMNS = [
  'experiment',
  'series',
  'x',
  'metric',
  'n',
  'median',
  'q1',
  'q3',
  'min',
  'max',
  'mean',
  'stdev',
] as const;

/** Rows of summarize() as CSV with columns experiment, series, x, metric, n, median, q1, q3, min, max, mean, stdev. */
export function summaryCsv(experiment: string, rows: readonly SummaryRow[]): string {
  let out = csvLine(SUMMARY_COLUMNS);
  for (const r of rows) {
    const s = r.spread;
    out += csvLine([experiment, r.series, r.x, r.metric, s.n, s.median, s.q1, s.q3, s.min, s.max, s.mean, s.stdev]);
  }
  return out;
}

/**
 * Raw samples as CSV: experiment, series, x, rep, then one column per metric (the union over the samples, in order
 * of first appearance); a sample lacking a metric has an empty field there. Samples keep their order.
 */
export function samplesCsv(experiment: string, samples: readonly Sample[]): string {
  const metrics = metricsOf(samples);
  let out = csvLine(['experiment', 'series', 'x', 'rep', ...metrics]);
  for (const s of samples) {
    const values = metrics.map((m) => (Object.hasOwn(s.values, m) ? s.values[m] : undefined));
    out += csvLine([experiment, s.series, s.x, s.rep, ...values]);
  }
  return out;
}
