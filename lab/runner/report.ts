/**
 * build/lab/report.json: types, a pure builder fed by the runner, and an atomic writer.
 *
 * Contract (shared/design.md): { versions, started_at, duration_s, pass, scenarios: [{ name, pass, metrics, log,
 * reason? }], demo?: { seconds, snapshots, malformed, last } }. `log` is relative to the report's folder. pass = at least
 * one scenario and all passed (the demo's snapshots are shown, not judged).
 */
import { mkdir, open, rename, unlink } from 'node:fs/promises';
import path from 'node:path';
import type { Snapshot } from '../../tui/src/data/types.js';
import type { MetricValue, ScenarioResult } from './markers.js';

export interface ReportScenario {
  name: string;
  pass: boolean;
  metrics: Record<string, MetricValue>;
  /** Path of the scenario's log, relative to the report's folder. */
  log: string;
  reason?: string;
}

/** The demo's live data (`fastivc lab run --demo`): dom0's ivctop snapshots, the last one kept. */
export interface ReportDemo {
  /** Seconds of demo traffic asked for (fastivc.demo=SECONDS), null if not asked but snapshots came anyway. */
  seconds: number | null;
  /** Snapshots received. */
  snapshots: number;
  /** ivctop lines dropped as malformed (warnings, not failures). */
  malformed: number;
  /** The last snapshot received, raw (as `ivctop --record` writes it), or null. */
  last: Snapshot | null;
}

export interface Report {
  versions: Record<string, unknown>;
  /** ISO 8601 time the run started. */
  started_at: string;
  duration_s: number;
  pass: boolean;
  scenarios: ReportScenario[];
  /** Present when a demo was asked for or dom0 streamed ivctop snapshots; never part of `pass`. */
  demo?: ReportDemo;
}

/** Failed scenario names the runner itself adds. */
export const LAB_BOOT = 'lab-boot';
export const LAB_RUN = 'lab-run';
export const LAB_PROTOCOL = 'lab-protocol';
/** `fastivc bench run --remote`: lab/guest/remote/bench.sh failed or was stopped (tui/src/bench/remote.ts). */
export const REMOTE_RUN = 'remote-run';
export type LabScenarioName = typeof LAB_BOOT | typeof LAB_RUN | typeof REMOTE_RUN;

/** At most this many protocol errors are quoted in the lab-protocol reason. */
const MAX_QUOTED_PROTOCOL_ERRORS = 5;

/** Path `to` relative to `fromDir`, with forward slashes (the report is read on any OS). */
export function relativePath(fromDir: string, to: string): string {
  const rel = path.relative(fromDir, to);
  return rel.split(path.sep).join('/');
}

export class ReportBuilder {
  private readonly versions: Record<string, unknown> = {};
  private readonly planned: string[] = [];
  private readonly startedNames: string[] = [];
  /** Every scenario name in first-seen order (plan, scenario-start or result). */
  private readonly order: string[] = [];
  private readonly results = new Map<string, ScenarioResult>();
  private readonly logs = new Map<string, string>();
  private readonly protocolErrors: string[] = [];
  private labFailure: { name: LabScenarioName; reason: string } | undefined;
  private demo: ReportDemo | undefined;

  constructor(
    private readonly startedAt: Date,
    /** Serial log path relative to the report's folder: the log of scenarios without their own. */
    private readonly serialLogRel: string,
  ) {}

  mergeVersions(v: Record<string, unknown>): void {
    Object.assign(this.versions, v);
  }

  setPlan(names: readonly string[]): void {
    for (const n of names) {
      if (!this.planned.includes(n)) this.planned.push(n);
      this.see(n);
    }
  }

  scenarioStarted(name: string): void {
    if (!this.startedNames.includes(name)) this.startedNames.push(name);
    this.see(name);
  }

  /** Records a result; a second result for the same name replaces the first (and is reported by the runner). */
  addResult(r: ScenarioResult): boolean {
    const dup = this.results.has(r.name);
    this.results.set(r.name, r);
    this.see(r.name);
    return dup;
  }

  hasResult(name: string): boolean {
    return this.results.has(name);
  }

  setLog(name: string, relPath: string): void {
    this.logs.set(name, relPath);
  }

  addProtocolError(message: string): void {
    this.protocolErrors.push(message);
  }

  /** A demo of `seconds` was asked for: the report gets a `demo` key even if no snapshot arrives. */
  expectDemo(seconds: number): void {
    this.demoPart().seconds = seconds;
  }

  /** Keeps the newest ivctop snapshot; returns how many were received so far. */
  addDemoSnapshot(s: Snapshot): number {
    const d = this.demoPart();
    d.snapshots += 1;
    d.last = s;
    return d.snapshots;
  }

  addDemoMalformed(): void {
    this.demoPart().malformed += 1;
  }

  /** Snapshots received so far. */
  get demoSnapshots(): number {
    return this.demo?.snapshots ?? 0;
  }

  private demoPart(): ReportDemo {
    this.demo ??= { seconds: null, snapshots: 0, malformed: 0, last: null };
    return this.demo;
  }

  /** Marks the run itself as failed (timeout, QEMU died, interrupted). The first failure wins. */
  fail(name: LabScenarioName, reason: string): void {
    if (this.labFailure === undefined) this.labFailure = { name, reason };
  }

  /** True once any scenario (planned, started or with a result) is known. */
  hasScenarios(): boolean {
    return this.order.length > 0;
  }

  /** The reason of the lab failure recorded so far, if any. */
  get failureReason(): string | undefined {
    return this.labFailure?.reason;
  }

  get failed(): boolean {
    return this.labFailure !== undefined;
  }

  /** Planned or started scenario names that have no result yet. */
  missingResults(): string[] {
    return this.order.filter((n) => !this.results.has(n) && (this.planned.includes(n) || this.startedNames.includes(n)));
  }

  /**
   * Builds the report. `whyEnded` explains, for scenarios that never produced a result, why the run stopped
   * (e.g. "the run reported done" or the timeout's reason).
   */
  build(opts: { durationS: number; whyEnded: string }): Report {
    const scenarios: ReportScenario[] = [];
    for (const name of this.order) {
      const r = this.results.get(name);
      const log = this.logs.get(name) ?? this.serialLogRel;
      if (r) {
        const s: ReportScenario = { name, pass: r.pass, metrics: { ...r.metrics }, log };
        if (r.reason !== undefined) s.reason = r.reason;
        scenarios.push(s);
      } else {
        const running = this.startedNames.includes(name) ? ' (the scenario had started)' : '';
        scenarios.push({ name, pass: false, metrics: {}, log, reason: `no result: ${opts.whyEnded}${running}` });
      }
    }
    if (this.protocolErrors.length > 0) {
      const quoted = this.protocolErrors.slice(0, MAX_QUOTED_PROTOCOL_ERRORS).join('; ');
      const more =
        this.protocolErrors.length > MAX_QUOTED_PROTOCOL_ERRORS
          ? `; and ${this.protocolErrors.length - MAX_QUOTED_PROTOCOL_ERRORS} more`
          : '';
      scenarios.push({
        name: LAB_PROTOCOL,
        pass: false,
        metrics: { errors: this.protocolErrors.length },
        log: this.serialLogRel,
        reason: `${this.protocolErrors.length} malformed marker line(s): ${quoted}${more}`,
      });
    }
    if (this.labFailure) {
      scenarios.push({
        name: this.labFailure.name,
        pass: false,
        metrics: {},
        log: this.serialLogRel,
        reason: this.labFailure.reason,
      });
    }
    const report: Report = {
      versions: { ...this.versions },
      started_at: this.startedAt.toISOString(),
      duration_s: Math.round(opts.durationS * 10) / 10,
      pass: computePass(scenarios),
      scenarios,
    };
    if (this.demo) report.demo = { ...this.demo };
    return report;
  }

  private see(name: string): void {
    if (!this.order.includes(name)) this.order.push(name);
  }
}

/** A run passes iff it has at least one scenario and every scenario passed. */
export function computePass(scenarios: readonly { pass: boolean }[]): boolean {
  return scenarios.length > 0 && scenarios.every((s) => s.pass);
}

/** Writes JSON to a temporary file in the same folder, syncs it and renames it over `file`. */
export async function writeJsonAtomic(file: string, value: unknown): Promise<void> {
  const dir = path.dirname(file);
  await mkdir(dir, { recursive: true });
  const tmp = path.join(dir, `.${path.basename(file)}.${process.pid}.${Date.now()}.tmp`);
  const fh = await open(tmp, 'w', 0o644);
  try {
    await fh.writeFile(`${JSON.stringify(value, null, 2)}\n`);
    await fh.sync();
  } finally {
    await fh.close();
  }
  try {
    await rename(tmp, file);
  } catch (e) {
    await unlink(tmp).catch(() => undefined);
    throw e;
  }
}

export function writeReport(file: string, report: Report): Promise<void> {
  return writeJsonAtomic(file, report);
}
