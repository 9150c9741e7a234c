/**
 * From measurements to what a researcher reads: the points of a lab report (scenarios bench.<exp>.<series>.<x>.r<rep>)
 * or of the host ring sweep become samples; each experiment gets samples.csv (every repetition), summary.csv
 * (median, quartiles, min, max per point), results.json (both, plus the failed points and the run's versions) and
 * <id>.svg (median with min..max bars; a second panel with the ratio to the baseline series).
 *
 *   build/experiments/<id>/{samples.csv, summary.csv, results.json, <id>.svg}
 */
import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { samplesCsv, summaryCsv } from './csv.js';
import { experiment, isReferenceSeries, type Experiment } from './experiments.js';
import { ratioOfMedians, summarize, type Sample, type SummaryRow } from './stats.js';
import { formatBytes, renderSvg, type Panel, type PlotSeries } from './svg.js';

export const DEFAULT_OUT_DIR = 'build/experiments';

/** A point that did not yield a measurement, with why. */
export interface FailedPoint {
  name: string;
  series: string;
  x: number;
  rep: number;
  reason: string;
}

export interface ExperimentResults {
  experiment: Experiment;
  samples: Sample[];
  failed: FailedPoint[];
}

/** The part of a lab report's scenario this needs (lab/runner/report.ts). */
export interface PointScenario {
  name: string;
  pass: boolean;
  metrics: Record<string, number | string | boolean>;
  reason?: string;
}

const COORDINATES = new Set(['experiment', 'series', 'x', 'rep']);

/** bench.<exp>.<series>.<x>.r<rep>: the coordinates from the name (for points that failed before writing metrics). */
export function parsePointName(name: string): { experiment: string; series: string; rep: number } | undefined {
  const m = /^bench\.([a-z0-9]+)\.([A-Za-z0-9-]+)\.([0-9]+(?:B|KiB|MiB))\.r([0-9]+)$/.exec(name);
  if (!m) return undefined;
  return { experiment: m[1] ?? '', series: m[2] ?? '', rep: Number(m[4]) };
}

/** The x of a point from its name (1B, 64KiB, 16MiB), NaN if the name has none. */
export function xFromName(name: string): number {
  const m = /\.([0-9]+)(B|KiB|MiB)\.r[0-9]+$/.exec(name);
  if (!m) return NaN;
  const n = Number(m[1]);
  return m[2] === 'MiB' ? n * 1048576 : m[2] === 'KiB' ? n * 1024 : n;
}

/**
 * The lab report's points, grouped by experiment (only experiments that have a point). A passing point becomes a
 * sample with its numeric metrics; a failing one a FailedPoint.
 */
export function labResults(scenarios: readonly PointScenario[]): Map<string, ExperimentResults> {
  const out = new Map<string, ExperimentResults>();
  for (const s of scenarios) {
    const named = parsePointName(s.name);
    if (!named) continue;
    const exp = experiment(typeof s.metrics.experiment === 'string' ? s.metrics.experiment : named.experiment);
    if (!exp) continue;
    let r = out.get(exp.id);
    if (!r) out.set(exp.id, (r = { experiment: exp, samples: [], failed: [] }));
    const series = typeof s.metrics.series === 'string' ? s.metrics.series : named.series;
    const x = typeof s.metrics.x === 'number' ? s.metrics.x : xFromName(s.name);
    const rep = typeof s.metrics.rep === 'number' ? s.metrics.rep : named.rep;
    const values: Record<string, number> = {};
    for (const [k, v] of Object.entries(s.metrics)) {
      if (!COORDINATES.has(k) && typeof v === 'number' && Number.isFinite(v)) values[k] = v;
    }
    if (s.pass && values[exp.metric] !== undefined) r.samples.push({ series, x, rep, values });
    else {
      const reason = s.pass ? `no ${exp.metric} in its metrics` : (s.reason ?? 'failed');
      r.failed.push({ name: s.name, series, x, rep, reason });
    }
  }
  return out;
}

/** The rows of an experiment's reference series (one x each, 0), in the catalogue's order. */
function referenceRows(e: Experiment, rows: readonly SummaryRow[]): SummaryRow[] {
  return (e.references ?? []).flatMap((s) => rows.filter((row) => row.series === s).slice(0, 1));
}

/** The plot of one experiment: medians with min..max bars, and the ratio of medians to the baseline below. */
export function plotExperiment(r: ExperimentResults, note: string): string {
  const e = r.experiment;
  const rows = summarize(r.samples, [e.metric]);
  const seriesPoints = (name: string): PlotSeries => ({
    name,
    dashed: name === e.baseline,
    points: rows
      .filter((row) => row.series === name)
      .map((row) => ({ x: row.x, y: row.spread.median, lo: row.spread.min, hi: row.spread.max })),
  });
  const shown = e.series.filter((s) => !isReferenceSeries(e, s));
  const top: Panel = { yLabel: e.yLabel, yScale: e.yScale, series: shown.map(seriesPoints) };
  const panels: Panel[] = [top];
  const refs = referenceRows(e, rows);
  if (e.references !== undefined && e.references.length > 0) {
    top.references = refs.map((ref) => ({ y: ref.spread.median, label: `${ref.series} (median)` }));
  } else if (e.baseline !== undefined) {
    const base = e.baseline;
    const ratios: PlotSeries[] = shown
      .filter((s) => s !== base)
      .map((s) => ({ name: s, points: ratioOfMedians(rows, e.metric, s, base).map((p) => ({ x: p.x, y: p.ratio })) }));
    panels.push({
      yLabel: `${e.metric.startsWith('latency') ? 'time' : 'throughput'} / ${base} (${e.better} is better)`,
      yScale: e.ratioScale ?? 'linear',
      series: ratios,
      reference: { y: 1, label: base },
    });
  }
  return renderSvg({
    title: e.title,
    subtitle:
      e.where === 'lab'
        ? 'fastivc, Xen 4.17 + Linux 6.1 PV domUs under QEMU (TCG)'
        : 'fastivc ring code (ivc_ring.h) on the host, against TCP loopback, a UNIX socket and memcpy',
    xLabel: e.xLabel,
    xScale: 'log2',
    formatX: formatBytes,
    panels,
    note,
  });
}

/**
 * results.json's `source.hardware`: the machine the numbers come from. Lab and remote runs take it from the run's
 * `versions` marker (`hardware`, written by hardware_json in lab/guest/lib.sh: CPU model, Xen's view from `xl info`
 * (xen_version, nr_cpus, cores_per_socket, threads_per_core, cpu_mhz, total_memory_MiB, virt_caps), dom0's kernel,
 * vCPUs and memory, each domU's address, kernel, vCPUs and memory); `run` says lab, remote or host.
 */
export function sourceHardware(versions: Record<string, unknown>, run: 'lab' | 'remote'): Record<string, unknown> {
  const h = versions.hardware;
  return { run, ...(typeof h === 'object' && h !== null && !Array.isArray(h) ? (h as Record<string, unknown>) : {}) };
}

/** The run's versions without the hardware (which source.hardware holds). */
export function versionsWithoutHardware(versions: Record<string, unknown>): Record<string, unknown> {
  const { hardware: _hardware, ...rest } = versions;
  return rest;
}

/** The hardware of this machine, for the host experiment (ring). */
export function hostHardware(): Record<string, unknown> {
  const cpus = os.cpus();
  return {
    run: 'host',
    cpu_model: cpus[0]?.model ?? null,
    cpus: cpus.length,
    memory_MiB: Math.round(os.totalmem() / 1048576),
    kernel: os.release(),
  };
}

/** results.json's shape. */
export interface ResultsFile {
  experiment: string;
  title: string;
  thesis: string;
  metric: string;
  generated_at: string;
  source: Record<string, unknown>;
  summary: { series: string; x: number; metric: string; n: number; median: number; q1: number; q3: number; min: number; max: number }[];
  samples: Sample[];
  failed: FailedPoint[];
}

async function writeAtomic(file: string, text: string): Promise<void> {
  const tmp = `${file}.tmp-${process.pid}`;
  await writeFile(tmp, text);
  await rename(tmp, file);
}

function repsNote(rows: readonly SummaryRow[]): string {
  const ns = rows.map((r) => r.spread.n);
  const lo = Math.min(...ns);
  const hi = Math.max(...ns);
  const n = lo === hi ? `${lo}` : `${lo}-${hi}`;
  return `median of ${n} run(s) per point; bars span min..max`;
}

/** Writes one experiment's files into <outDir>/<id>/; returns the paths written. */
export async function writeExperiment(
  outDir: string,
  r: ExperimentResults,
  source: Record<string, unknown>,
  now: Date = new Date(),
): Promise<string[]> {
  const dir = path.join(outDir, r.experiment.id);
  await mkdir(dir, { recursive: true });
  const rows = summarize(r.samples);
  const mainRows = rows.filter((row) => row.metric === r.experiment.metric);
  const file: ResultsFile = {
    experiment: r.experiment.id,
    title: r.experiment.title,
    thesis: r.experiment.thesis,
    metric: r.experiment.metric,
    generated_at: now.toISOString(),
    source,
    summary: rows.map((row) => ({
      series: row.series,
      x: row.x,
      metric: row.metric,
      n: row.spread.n,
      median: row.spread.median,
      q1: row.spread.q1,
      q3: row.spread.q3,
      min: row.spread.min,
      max: row.spread.max,
    })),
    samples: r.samples,
    failed: r.failed,
  };
  const written = [
    path.join(dir, 'samples.csv'),
    path.join(dir, 'summary.csv'),
    path.join(dir, 'results.json'),
    path.join(dir, `${r.experiment.id}.svg`),
  ];
  const [samplesPath, summaryPath, jsonPath, svgPath] = written as [string, string, string, string];
  await writeAtomic(samplesPath, samplesCsv(r.experiment.id, r.samples));
  await writeAtomic(summaryPath, summaryCsv(r.experiment.id, rows));
  await writeAtomic(jsonPath, `${JSON.stringify(file, null, 2)}\n`);
  const failedNote = r.failed.length > 0 ? `; ${r.failed.length} point(s) failed, see results.json` : '';
  await writeAtomic(svgPath, plotExperiment(r, `${mainRows.length > 0 ? repsNote(mainRows) : 'no data'}${failedNote}`));
  return written;
}

/** 4 significant digits; below 0.001 in exponent form, so a column stays narrow ("2.459e-6"). */
export function formatValue(v: number): string {
  if (v !== 0 && Math.abs(v) < 0.001) return v.toExponential(3).replace(/e-0*/, 'e-');
  return String(Number(v.toPrecision(4)));
}

/** A short table of medians for the terminal: one line per x, one column per series. */
export function medianTable(r: ExperimentResults): string {
  const e = r.experiment;
  const rows = summarize(r.samples, [e.metric]);
  const xs = [...new Set(rows.map((row) => row.x))].sort((a, b) => a - b);
  const isRef = (s: string): boolean => isReferenceSeries(e, s);
  const series = e.series.filter((s) => !isRef(s) && rows.some((row) => row.series === s));
  const cell = (s: string, x: number): string => {
    const row = rows.find((rr) => rr.series === s && rr.x === x);
    return row ? formatValue(row.spread.median) : '-';
  };
  const width = Math.max(11, ...series.map((s) => s.length + 2));
  const lines = [`${e.id}: ${e.metric}, median`, `${'x'.padEnd(10)}${series.map((s) => s.padStart(width)).join('')}`];
  for (const x of xs) {
    if (series.some((s) => rows.some((row) => row.series === s && row.x === x))) {
      lines.push(`${formatBytes(x).padEnd(10)}${series.map((s) => cell(s, x).padStart(width)).join('')}`);
    }
  }
  const refs = referenceRows(e, rows);
  if (refs.length > 0) {
    lines.push(`reference: ${refs.map((ref) => `${ref.series} ${formatValue(ref.spread.median)}`).join(', ')}`);
  }
  return `${lines.join('\n')}\n`;
}

/** Reads <dir>/<id>/results.json back (for re-plotting); throws with the file named on a bad one. */
export async function readExperiment(
  dir: string,
  exp: Experiment,
): Promise<{ results: ExperimentResults; source: Record<string, unknown> }> {
  const file = path.join(dir, exp.id, 'results.json');
  let parsed: unknown;
  try {
    parsed = JSON.parse(await readFile(file, 'utf8'));
  } catch (e) {
    throw new Error(`cannot read ${file}: ${e instanceof Error ? e.message : String(e)}`);
  }
  const r = parsed as Partial<ResultsFile>;
  if (r.experiment !== exp.id || !Array.isArray(r.samples) || !Array.isArray(r.failed)) {
    throw new Error(`${file} is not the results of ${exp.id}`);
  }
  return { results: { experiment: exp, samples: r.samples, failed: r.failed }, source: r.source ?? {} };
}
