/**
 * Typed events the lab runner emits while it runs. Views (the plain progress printer, later an Ink view) subscribe
 * through LabRunOptions.onEvent; `t` is seconds since the run started.
 */
import type { Snapshot } from '../../tui/src/data/types.js';
import type { ScenarioResult } from './markers.js';
import type { LabScenarioName, Report } from './report.js';

export type LabEvent =
  /** QEMU was started (pid undefined if the spawn failed synchronously). */
  | { type: 'spawned'; t: number; pid: number | undefined; argv: string[] }
  /** The first byte arrived on the serial console. */
  | { type: 'first-output'; t: number }
  /** One complete serial line (for --verbose). */
  | { type: 'serial'; t: number; line: string }
  /** A `phase` marker other than scenario-start (dom0-up, domU-up, shutdown, ...). */
  | { type: 'phase'; t: number; name: string; detail: string[] }
  | { type: 'plan'; t: number; names: string[] }
  | { type: 'versions'; t: number; versions: Record<string, unknown> }
  | { type: 'scenario-start'; t: number; name: string }
  | { type: 'result'; t: number; result: ScenarioResult }
  | { type: 'log-begin'; t: number; name: string; file: string }
  | { type: 'log-end'; t: number; name: string }
  /** A malformed or unexpected marker line (recorded in the report as a lab-protocol failure). */
  | { type: 'protocol-error'; t: number; message: string; line: string }
  /** One ivctop snapshot streamed by dom0 during the demo (`n` counts them from 1). */
  | { type: 'ivctop'; t: number; n: number; snapshot: Snapshot }
  /** Something worth saying that does not fail the run (a malformed ivctop line, a demo without data). */
  | { type: 'warning'; t: number; message: string; line: string }
  /** dom0 printed `done`; QEMU should now power off by itself. */
  | { type: 'done'; t: number }
  /** The run failed: a timeout expired, QEMU died early, or the runner was interrupted. */
  | { type: 'failure'; t: number; scenario: LabScenarioName; reason: string }
  /** The configuration is unusable (missing file, bad path); QEMU was not started. */
  | { type: 'config-error'; t: number; message: string }
  | { type: 'qemu-exit'; t: number; code: number | null; signal: string | null }
  /** The runner is stopping QEMU with this signal. */
  | { type: 'kill'; t: number; pid: number; signal: 'SIGTERM' | 'SIGKILL' }
  /** The report was written. */
  | { type: 'report'; t: number; path: string; report: Report };

export type LabEventListener = (event: LabEvent) => void;

/** `listener` (if any) made safe to call: an exception it throws is ignored, as a broken view must not break a run. */
export function guardedListener(listener: LabEventListener | undefined): LabEventListener {
  return (e) => {
    try {
      listener?.(e);
    } catch {
      // A broken view must not break the run.
    }
  };
}
