/**
 * Plain live progress view for the lab runner: one line on stderr per event, then a summary table. Formatting is
 * pure (formatEvent, formatSummary); progressPrinter() binds it to a stream.
 */
import type { LabEvent, LabEventListener } from './events.js';
import type { MetricValue } from './markers.js';
import { shellQuote } from './qemu.js';
import type { Report } from './report.js';

export interface ProgressOptions {
  /** Also echo every raw serial line and the less important events. */
  verbose?: boolean;
  /** Metrics shown on a PASS line before "...". */
  maxMetrics?: number;
}

const DEFAULT_MAX_METRICS = 6;

/** "[  31s]": elapsed whole seconds, right-aligned. */
export function formatElapsed(t: number): string {
  return `[${String(Math.max(0, Math.floor(t))).padStart(4)}s]`;
}

/** Numbers keep at most 4 significant digits below 10000; integers and strings are shown as they are. */
export function formatMetricValue(v: MetricValue): string {
  if (typeof v !== 'number') return String(v);
  if (Number.isInteger(v) || !Number.isFinite(v)) return String(v);
  if (Math.abs(v) >= 10000) return String(Math.round(v));
  return String(Number(v.toPrecision(4)));
}

export function formatMetrics(metrics: Record<string, MetricValue>, max = DEFAULT_MAX_METRICS): string {
  const entries = Object.entries(metrics);
  const shown = entries.slice(0, max).map(([k, v]) => `${k}=${formatMetricValue(v)}`);
  if (entries.length > max) shown.push('...');
  return shown.join(' ');
}

function oneLine(s: string, max = 300): string {
  const flat = s.replace(/\s+/g, ' ').trim();
  return flat.length > max ? `${flat.slice(0, max)}...` : flat;
}

/** Text of one event without the time prefix, or undefined if this event is not shown at this verbosity. */
export function describeEvent(e: LabEvent, opts: ProgressOptions = {}): string | undefined {
  const verbose = opts.verbose === true;
  switch (e.type) {
    case 'spawned':
      return verbose ? `QEMU started (pid ${String(e.pid)}): ${shellQuote(e.argv)}` : `QEMU started (pid ${String(e.pid)})`;
    case 'first-output':
      return verbose ? 'serial console alive' : undefined;
    case 'serial':
      return verbose ? `| ${e.line}` : undefined;
    case 'phase':
      if (e.name === 'dom0-up') return 'dom0 up';
      if (e.name === 'domU-up') return `${e.detail.join(' ') || 'domU'} up`;
      if (e.name === 'shutdown') return 'shutting down';
      if (e.name === 'demo') return `demo: ${e.detail[0] ?? '?'} s of traffic between the domUs, ivctop follows`;
      if (e.name === 'domU-failed') return `! ${e.detail[0] ?? 'domU'} failed: ${e.detail.slice(1).join(' ')}`;
      if (e.name === 'dom0-failed') return undefined; // shown by the failure event that follows
      return `phase ${[e.name, ...e.detail].join(' ')}`;
    case 'plan':
      return `plan: ${e.names.length} scenario(s)${verbose ? `: ${e.names.join(' ')}` : ''}`;
    case 'versions':
      return verbose ? `versions ${JSON.stringify(e.versions)}` : undefined;
    case 'scenario-start':
      return `> ${e.name}`;
    case 'result': {
      const r = e.result;
      if (r.pass) return `  PASS ${r.name}  ${formatMetrics(r.metrics, opts.maxMetrics)}`.trimEnd();
      const why = r.reason !== undefined ? oneLine(r.reason) : formatMetrics(r.metrics, opts.maxMetrics);
      return `  FAIL ${r.name}  ${why}`.trimEnd();
    }
    case 'log-begin':
      return verbose ? `log ${e.name} -> ${e.file}` : undefined;
    case 'log-end':
      return undefined;
    case 'protocol-error':
      return `! bad marker: ${e.message}${e.line ? ` in ${JSON.stringify(oneLine(e.line, 120))}` : ''}`;
    case 'ivctop':
      return verbose ? `ivctop snapshot ${e.n}` : undefined; // the demo view (tui/src/commands/labDemo.ts) shows them
    case 'warning':
      return `! warning: ${e.message}`;
    case 'done':
      return 'done, waiting for QEMU to exit';
    case 'failure':
      return `! FAIL ${e.scenario}: ${e.reason}`;
    case 'config-error':
      return undefined; // shown by the failure event that follows
    case 'qemu-exit':
      return e.signal ? `QEMU killed by ${e.signal}` : `QEMU exited (code ${String(e.code)})`;
    case 'kill':
      return `stopping QEMU pid ${e.pid} with ${e.signal}`;
    case 'report':
      return `report: ${e.path}`;
  }
}

/** One progress line with its time prefix, or undefined. */
export function formatEvent(e: LabEvent, opts: ProgressOptions = {}): string | undefined {
  const text = describeEvent(e, opts);
  return text === undefined ? undefined : `${formatElapsed(e.t)} ${text}`;
}

/** The final table: one row per scenario (name, PASS/FAIL, key metrics or the reason) and a verdict line. */
export function formatSummary(report: Report, opts: ProgressOptions = {}): string {
  const rows = report.scenarios.map((s) => ({
    name: s.name,
    verdict: s.pass ? 'PASS' : 'FAIL',
    detail: s.pass || s.reason === undefined ? formatMetrics(s.metrics, opts.maxMetrics) : oneLine(s.reason),
  }));
  const width = Math.max(8, ...rows.map((r) => r.name.length));
  const lines = [`${'scenario'.padEnd(width)}  result  details`];
  for (const r of rows) lines.push(`${r.name.padEnd(width)}  ${r.verdict.padEnd(6)}  ${r.detail}`.trimEnd());
  if (rows.length === 0) lines.push('(no scenarios reported)');
  const passed = rows.filter((r) => r.verdict === 'PASS').length;
  lines.push(
    `${report.pass ? 'PASS' : 'FAIL'}: ${passed} passed, ${rows.length - passed} failed, ${report.duration_s} s`,
  );
  return `${lines.join('\n')}\n`;
}

export interface Writable {
  write(chunk: string): unknown;
}

/** An onEvent listener that writes progress lines to `out` (and the summary table when the report is written). */
export function progressPrinter(out: Writable, opts: ProgressOptions = {}): LabEventListener {
  return (e) => {
    const line = formatEvent(e, opts);
    if (line !== undefined) out.write(`${line}\n`);
    if (e.type === 'report') out.write(`\n${formatSummary(e.report, opts)}`);
  };
}
