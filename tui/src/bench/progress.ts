/**
 * Live progress of a sweep: what runs, how far it is, how long is left. Pure state (SweepProgress) fed with the
 * lab runner's events or with the host sweep's points, and a printer that writes one line per step.
 *
 *   [ 312s] 37/144 fig10 tunnel-4 64 KiB r2  41.2 MB/s   ~8m left
 */
import type { LabEvent, LabEventListener } from '../../../lab/runner/events.js';
import { formatElapsed, formatEvent, type Writable } from '../../../lab/runner/progress.js';
import { experiment } from './experiments.js';
import { parsePointName, xFromName } from './results.js';
import { formatBytes } from './svg.js';

/** "45s", "8m", "1h05m". */
export function formatDuration(s: number): string {
  if (!Number.isFinite(s) || s < 0) return '?';
  if (s < 90) return `${Math.round(s)}s`;
  const m = Math.round(s / 60);
  if (m < 60) return `${m}m`;
  return `${Math.floor(m / 60)}h${String(m % 60).padStart(2, '0')}m`;
}

export interface PointView {
  experiment: string;
  series: string;
  x: number;
  rep: number;
}

/** Counts and the estimate: the mean time of the points done so far times the points left. */
export class SweepProgress {
  total = 0;
  done = 0;
  failed = 0;
  private firstStart: number | undefined;
  private lastEnd: number | undefined;

  plan(total: number): void {
    this.total = total;
  }

  start(t: number): void {
    if (this.firstStart === undefined) this.firstStart = t;
  }

  finish(t: number, pass: boolean): void {
    this.done += 1;
    if (!pass) this.failed += 1;
    this.lastEnd = t;
  }

  /** Seconds left, undefined before the first point has finished. */
  left(): number | undefined {
    if (this.firstStart === undefined || this.lastEnd === undefined || this.done === 0) return undefined;
    const per = (this.lastEnd - this.firstStart) / this.done;
    return per * Math.max(0, this.total - this.done);
  }

  /** "37/144" (the point about to run or just run). */
  position(running: boolean): string {
    return `${Math.min(this.total, this.done + (running ? 1 : 0))}/${this.total}`;
  }

  /** Counts a point as started at t; its progress line ("[ 312s] 37/144 fig10 tunnel-4 64 KiB r2 ..."). */
  startLine(t: number, p: PointView): string {
    this.start(t);
    return `${formatElapsed(t)} ${this.position(true)} ${describePoint(p)} ...\n`;
  }

  /** Counts a point as finished at t; its progress line with `what` (the value or the failure) and the time left. */
  finishLine(t: number, p: PointView, pass: boolean, what: string): string {
    this.finish(t, pass);
    const left = this.left();
    const eta = left !== undefined && this.done < this.total ? `   ~${formatDuration(left)} left` : '';
    return `${formatElapsed(t)} ${this.position(false)} ${describePoint(p)}  ${what}${eta}\n`;
  }
}

/** "fig10 tunnel-4 64 KiB r2" (fig12's and geom's reference points have x = 0). */
export function describePoint(p: PointView): string {
  return `${p.experiment} ${p.series} ${p.x === 0 ? 'reference' : formatBytes(p.x)} r${p.rep}`;
}

/** The measured value of a point, with its unit, from its metrics. */
export function pointValue(exp: string, metrics: Record<string, unknown>): string {
  const e = experiment(exp);
  const v = e ? metrics[e.metric] : undefined;
  if (typeof v !== 'number') return '';
  const n = Number(v.toPrecision(4));
  if (e?.metric.startsWith('latency_us')) return `${n} µs`;
  return e?.metric.endsWith('_per_s') ? `${n}/s` : `${n} MB/s`;
}

function pointOf(name: string, metrics: Record<string, unknown> = {}): PointView | undefined {
  const p = parsePointName(name);
  if (!p) return undefined;
  return { ...p, x: typeof metrics.x === 'number' ? metrics.x : xFromName(name) };
}

/**
 * A LabEventListener for `fastivc bench run`: the lab's own events (boot, domUs, module loading) as
 * `fastivc lab run` prints them, then one line per point, with the position and the time left; no scenario table at
 * the end (the sweep's tables follow).
 */
export function sweepPrinter(out: Writable, opts: { verbose?: boolean; report?: string } = {}): LabEventListener {
  const sweep = new SweepProgress();
  return (e: LabEvent) => {
    if (e.type === 'plan') {
      const points = e.names.filter((n) => parsePointName(n) !== undefined).length;
      sweep.plan(points);
      out.write(`${formatElapsed(e.t)} plan: ${points} point(s) after ${e.names.length - points} setup step(s)\n`);
      return;
    }
    if (e.type === 'scenario-start') {
      const p = pointOf(e.name);
      if (p) {
        out.write(sweep.startLine(e.t, p));
        return;
      }
    }
    if (e.type === 'result') {
      const p = pointOf(e.result.name, e.result.metrics);
      if (p) {
        const what = e.result.pass ? pointValue(p.experiment, e.result.metrics) : `FAILED: ${e.result.reason ?? '?'}`;
        out.write(sweep.finishLine(e.t, p, e.result.pass, what));
        return;
      }
    }
    if (e.type === 'report') {
      out.write(`${formatElapsed(e.t)} ${opts.report ?? 'lab report'}: ${e.path} (${sweep.done} point(s), ${sweep.failed} failed)\n`);
      return;
    }
    const line = formatEvent(e, opts);
    if (line !== undefined) out.write(`${line}\n`);
  };
}
