/**
 * The lab runner: boots the lab under QEMU, follows the serial console's markers, enforces the timeouts and writes
 * build/lab/report.json. Nothing here may hang and QEMU never outlives runLab(): every way out of the run goes
 * through one `finish` path that kills QEMU (by the pid we spawned) if it is still alive, then writes the report.
 *
 *   const { report } = await runLab({ xen, kernel, initrd, disk, onEvent: progressPrinter(process.stderr) });
 */
import type { ChildProcess } from 'node:child_process';
import { createWriteStream } from 'node:fs';
import { mkdir, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { guardedListener, type LabEventListener } from './events.js';
import { MARKER_PREFIX, MarkerStream, type MarkerEvent } from './markers.js';
import {
  DEFAULT_QEMU,
  LabConfigError,
  buildQemuArgs,
  hasExited,
  killQemu,
  qemuVersion,
  shellQuote,
  spawnQemu,
  type QemuCommandOptions,
} from './qemu.js';
import { LAB_BOOT, LAB_RUN, ReportBuilder, relativePath, writeReport, type Report } from './report.js';
import { createMarkerSink, endStream } from './sink.js';

/** Timeouts in seconds (fractions allowed, which the tests use). */
export interface LabTimeouts {
  /** Until the first byte on the serial console. */
  firstOutput: number;
  /** Until the marker `phase dom0-up`. */
  dom0Up: number;
  /** After dom0-up: longest time without any marker line. */
  idle: number;
  /** Whole run, from QEMU's start. */
  total: number;
  /** After `done`: until QEMU exits by itself (dom0 powers off). */
  exit: number;
}

export const DEFAULT_TIMEOUTS: Readonly<LabTimeouts> = Object.freeze({
  firstOutput: 60,
  dom0Up: 300,
  idle: 300,
  total: 1500,
  exit: 60,
});

export const DEFAULT_REPORT_PATH = 'build/lab/report.json';
export const DEFAULT_LOGS_DIR = 'build/lab/logs';
export const SERIAL_LOG_NAME = 'serial.log';
export const QEMU_STDERR_LOG_NAME = 'qemu-stderr.log';
export const QEMU_COMMAND_NAME = 'qemu-command.txt';
/** Default grace between SIGTERM and SIGKILL when stopping QEMU. */
export const DEFAULT_KILL_GRACE_MS = 5000;
/** After QEMU exits, how long to wait for its pipes to drain before judging the run. */
const DRAIN_MS = 2000;
/** Lines quoted in failure reasons are cut to this length. */
const QUOTE_CHARS = 200;

export interface LabRunOptions extends QemuCommandOptions {
  /** QEMU binary (default qemu-system-x86_64); tests pass a fake. */
  qemu?: string;
  /** Default build/lab/report.json (relative paths resolve against the current directory). */
  reportPath?: string;
  /** Per-scenario logs; default build/lab/logs. */
  logsDir?: string;
  /** Full serial output; default <logsDir>/serial.log. */
  serialLog?: string;
  timeouts?: Partial<LabTimeouts>;
  /** Grace between SIGTERM and SIGKILL, default 5000 ms. */
  killGraceMs?: number;
  /** Aborting ends the run (the CLI aborts on SIGINT/SIGTERM with the signal's name as the reason). */
  signal?: AbortSignal;
  /** Receives progress events; exceptions it throws are ignored. */
  onEvent?: LabEventListener;
}

export interface LabRunResult {
  report: Report;
  reportPath: string;
  serialLog: string;
  logsDir: string;
}

/** Merges and validates timeouts; throws LabConfigError for non-positive or non-finite values. */
export function resolveTimeouts(t: Partial<LabTimeouts> | undefined): LabTimeouts {
  const out: LabTimeouts = { ...DEFAULT_TIMEOUTS };
  for (const key of Object.keys(DEFAULT_TIMEOUTS) as (keyof LabTimeouts)[]) {
    const v = t?.[key];
    if (v === undefined) continue;
    if (typeof v !== 'number' || !Number.isFinite(v) || v <= 0) {
      throw new LabConfigError(`timeout ${key} must be a positive number of seconds, got ${String(v)}`);
    }
    out[key] = v;
  }
  return out;
}

/** "60 s", "0.5 s". */
export function secs(n: number): string {
  return `${Number.isInteger(n) ? n : Number(n.toFixed(2))} s`;
}

function quote(line: string | undefined): string {
  if (line === undefined) return 'none';
  const cut = line.length > QUOTE_CHARS ? `${line.slice(0, QUOTE_CHARS)}...` : line;
  return JSON.stringify(cut);
}

const INPUTS = [
  ['xen', 'Xen image'],
  ['kernel', 'dom0 kernel'],
  ['initrd', 'dom0 initrd'],
  ['disk', 'disk image'],
] as const;

async function inspectInputs(opts: QemuCommandOptions): Promise<Record<string, { file: string; bytes: number }>> {
  const out: Record<string, { file: string; bytes: number }> = {};
  for (const [key, what] of INPUTS) {
    const p = opts[key];
    if (typeof p !== 'string' || p === '') throw new LabConfigError(`${what} (--${key}) is required`);
    let st;
    try {
      st = await stat(p);
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      throw new LabConfigError(
        code === 'ENOENT' ? `${what} not found: ${p}` : `${what} cannot be read: ${p} (${code ?? String(e)})`,
      );
    }
    if (!st.isFile() && !(key === 'disk' && st.isBlockDevice())) {
      throw new LabConfigError(`${what} is not a regular file: ${p}`);
    }
    out[key] = { file: path.basename(p), bytes: st.size };
  }
  return out;
}

/** A way the run ended. `reason` goes into the lab-boot/lab-run scenario; `short` into "no result: ..." reasons. */
interface Ending {
  failure?: { reason: string; short: string };
}

/**
 * Runs the lab once and writes the report. Never throws for lab problems (they become failed scenarios in the
 * report); throws only if the report itself cannot be written.
 */
export async function runLab(opts: LabRunOptions): Promise<LabRunResult> {
  const t0 = performance.now();
  const startedAt = new Date();
  const elapsed = (): number => (performance.now() - t0) / 1000;
  const emit = guardedListener(opts.onEvent);

  const reportPath = path.resolve(opts.reportPath ?? DEFAULT_REPORT_PATH);
  const reportDir = path.dirname(reportPath);
  const logsDir = path.resolve(opts.logsDir ?? DEFAULT_LOGS_DIR);
  const serialLog = path.resolve(opts.serialLog ?? path.join(logsDir, SERIAL_LOG_NAME));
  const stderrLog = path.join(logsDir, QEMU_STDERR_LOG_NAME);
  const qemu = opts.qemu ?? DEFAULT_QEMU;
  const builder = new ReportBuilder(startedAt, relativePath(reportDir, serialLog));

  const finishReport = async (whyEnded: string): Promise<LabRunResult> => {
    const report = builder.build({ durationS: elapsed(), whyEnded });
    await writeReport(reportPath, report);
    emit({ type: 'report', t: elapsed(), path: reportPath, report });
    return { report, reportPath, serialLog, logsDir };
  };

  // ---- Configuration: everything that can be checked before QEMU starts.
  let timeouts: LabTimeouts;
  let args: string[];
  const version = await qemuVersion(qemu, 5000);
  builder.mergeVersions({ qemu: version ?? 'unknown (--version failed)', node: process.version });
  try {
    timeouts = resolveTimeouts(opts.timeouts);
    // The demo runs after the scenarios: its seconds come on top of the default total.
    if (opts.demo !== undefined && opts.timeouts?.total === undefined) timeouts.total += opts.demo;
    args = buildQemuArgs(opts);
    if (opts.demo !== undefined) builder.expectDemo(opts.demo);
    builder.mergeVersions({ inputs: await inspectInputs(opts) });
    await mkdir(logsDir, { recursive: true });
    await mkdir(path.dirname(serialLog), { recursive: true });
    // The exact command, so a failed run can be reproduced by hand.
    await writeFile(path.join(logsDir, QEMU_COMMAND_NAME), `${shellQuote([qemu, ...args])}\n`);
  } catch (e) {
    const message = e instanceof Error ? e.message : String(e);
    emit({ type: 'config-error', t: elapsed(), message });
    const reason = `configuration error, QEMU not started: ${message}`;
    builder.fail(LAB_BOOT, reason);
    emit({ type: 'failure', t: elapsed(), scenario: LAB_BOOT, reason });
    return finishReport(reason);
  }
  const killGraceMs = opts.killGraceMs ?? DEFAULT_KILL_GRACE_MS;

  // ---- Run state.
  const serialOut = createWriteStream(serialLog);
  const stderrOut = createWriteStream(stderrLog);
  serialOut.on('error', () => undefined);
  stderrOut.on('error', () => undefined);
  const markers = new MarkerStream();
  let gotOutput = false;
  let dom0Up = false;
  let doneSeen = false;
  let lastLine: string | undefined;
  let lastMarker: string | undefined;
  let stderrTail = '';
  let ending: Ending | undefined;
  let endNow: () => void = () => undefined;
  const ended = new Promise<void>((resolve) => {
    endNow = resolve;
  });
  const timers = new Map<string, NodeJS.Timeout>();

  const clearTimer = (name: string): void => {
    const t = timers.get(name);
    if (t) clearTimeout(t);
    timers.delete(name);
  };
  const setTimer = (name: string, seconds: number, fn: () => void): void => {
    clearTimer(name);
    if (ending) return;
    timers.set(name, setTimeout(fn, seconds * 1000));
  };
  const context = (): string => {
    const parts = [`last serial line: ${gotOutput ? quote(lastLine) : 'no serial output at all'}`];
    if (lastMarker !== undefined) parts.unshift(`last marker: ${quote(lastMarker)}`);
    const inLog = markers.openLog();
    if (inLog !== undefined) parts.unshift(`inside log block ${inLog}`);
    return parts.join('; ');
  };
  const stderrContext = (): string => {
    const tail = stderrTail.trim();
    return tail === '' ? '' : `; QEMU stderr: ${quote(tail.split('\n').slice(-3).join(' | '))}`;
  };
  const finish = (e: Ending): void => {
    if (ending) return;
    ending = e;
    for (const name of [...timers.keys()]) clearTimer(name);
    if (e.failure) {
      const scenario = dom0Up ? LAB_RUN : LAB_BOOT;
      builder.fail(scenario, e.failure.reason);
      emit({ type: 'failure', t: elapsed(), scenario, reason: e.failure.reason });
    }
    endNow();
  };
  const fail = (short: string, detail: string): void => finish({ failure: { short, reason: `${short}; ${detail}` } });

  /** Restarts the idle timeout (only between dom0-up and done). */
  const touch = (): void => {
    if (dom0Up && !doneSeen) {
      setTimer('idle', timeouts.idle, () =>
        fail(`no marker line for ${secs(timeouts.idle)} (idle timeout) after dom0-up`, context()),
      );
    }
  };

  const protocolError = (message: string, line: string): void => {
    const where = line === '' ? '' : ` in line ${quote(line)}`;
    builder.addProtocolError(`${message}${where}`);
    emit({ type: 'protocol-error', t: elapsed(), message, line });
  };
  const sink = createMarkerSink({
    builder,
    logsDir,
    reportDir,
    reserved: [serialLog, stderrLog],
    reservedFor: "the runner's own logs",
    emit,
    onProtocolError: protocolError,
  });

  const onMarkerEvent = (ev: MarkerEvent): void => {
    const t = elapsed();
    switch (ev.kind) {
      case 'line':
        if (ev.line.trim() !== '') lastLine = ev.line;
        emit({ type: 'serial', t, line: ev.line });
        return;
      case 'log-line':
        // A log being shipped is dom0's script at work: it counts as activity for the idle timeout.
        touch();
        sink.logLine(ev.name, ev.line);
        return;
      case 'error':
        if (ev.line !== '') {
          lastMarker = ev.line.slice(Math.max(0, ev.line.indexOf(MARKER_PREFIX)));
          touch();
        }
        protocolError(ev.message, ev.line);
        return;
      case 'warning':
        // Only ivctop lines warn: the demo's data is shown, never judged.
        touch();
        builder.addDemoMalformed();
        emit({ type: 'warning', t, message: ev.message, line: ev.line });
        return;
      case 'marker':
        if (ev.marker.kind === 'ivctop') {
          // Snapshots are long and frequent: they keep the run alive but are not quoted as the last marker.
          touch();
          emit({ type: 'ivctop', t, n: builder.addDemoSnapshot(ev.marker.snapshot), snapshot: ev.marker.snapshot });
          return;
        }
        lastMarker = ev.line.slice(Math.max(0, ev.line.indexOf(MARKER_PREFIX)));
        touch();
        break;
    }
    const m = ev.marker;
    if (sink.apply(m, ev.line, t)) return; // plan, versions, result, log blocks, scenario-start
    switch (m.kind) {
      case 'phase':
        if (m.name === 'dom0-up' && !dom0Up) {
          dom0Up = true;
          clearTimer('dom0Up');
          touch();
        }
        if (m.name === 'dom0-failed') {
          // dom0's script gave up (it still prints done and powers off): the root cause of the failed run.
          const scenario = dom0Up ? LAB_RUN : LAB_BOOT;
          const reason = `dom0 reported failure: ${m.detail.join(' ') || '(no detail)'}`;
          if (!builder.failed) {
            builder.fail(scenario, reason);
            emit({ type: 'failure', t, scenario, reason });
          }
        }
        emit({ type: 'phase', t, name: m.name, detail: m.detail });
        return;
      case 'done':
        if (!doneSeen) {
          doneSeen = true;
          clearTimer('idle');
          clearTimer('dom0Up');
          emit({ type: 'done', t });
          setTimer('exit', timeouts.exit, () =>
            fail(
              `QEMU did not exit within ${secs(timeouts.exit)} after done (dom0 did not power off)`,
              `last serial line: ${quote(lastLine)}`,
            ),
          );
        }
        return;
    }
  };

  // ---- Start QEMU.
  let child: ChildProcess;
  try {
    child = spawnQemu(qemu, args);
  } catch (e) {
    // spawn() throws synchronously only for invalid arguments; treat it like a failed start.
    await Promise.all([endStream(serialOut), endStream(stderrOut)]);
    const reason = `cannot start QEMU (${qemu}): ${(e as Error).message}`;
    builder.fail(LAB_BOOT, reason);
    emit({ type: 'failure', t: elapsed(), scenario: LAB_BOOT, reason });
    return finishReport(reason);
  }
  let closed = false;
  const closedPromise = new Promise<void>((resolve) => child.once('close', () => {
    closed = true;
    resolve();
  }));
  emit({ type: 'spawned', t: elapsed(), pid: child.pid, argv: [qemu, ...args] });

  child.on('error', (err) => {
    fail(`cannot start QEMU (${qemu}): ${err.message}`, 'check --qemu and that QEMU is installed');
  });
  child.stdout?.on('data', (chunk: Buffer) => {
    serialOut.write(chunk);
    if (!gotOutput) {
      gotOutput = true;
      clearTimer('firstOutput');
      emit({ type: 'first-output', t: elapsed() });
    }
    for (const ev of markers.push(chunk)) onMarkerEvent(ev);
  });
  child.stderr?.on('data', (chunk: Buffer) => {
    stderrOut.write(chunk);
    stderrTail = (stderrTail + chunk.toString('utf8')).slice(-2000);
  });
  child.once('exit', (code, signal) => {
    const t = elapsed();
    emit({ type: 'qemu-exit', t, code, signal });
    if (ending) return;
    // Let the pipes drain so markers printed just before the exit are seen, then judge.
    const judge = (): void => {
      if (doneSeen) {
        finish({});
        return;
      }
      const how = signal ? `was killed by ${signal}` : `exited with code ${String(code)}`;
      fail(`QEMU ${how} after ${secs(Math.round(t))} before the run reported done`, `${context()}${stderrContext()}`);
    };
    const drainTimer = setTimeout(judge, DRAIN_MS);
    void closedPromise.then(() => {
      clearTimeout(drainTimer);
      judge();
    });
  });

  setTimer('firstOutput', timeouts.firstOutput, () =>
    fail(`no serial output from QEMU within ${secs(timeouts.firstOutput)}`, `QEMU pid ${String(child.pid)}${stderrContext()}`),
  );
  setTimer('dom0Up', timeouts.dom0Up, () =>
    fail(`dom0 did not reach phase dom0-up within ${secs(timeouts.dom0Up)}`, `${context()}${stderrContext()}`),
  );
  setTimer('total', timeouts.total, () =>
    fail(`the run did not finish within the total timeout of ${secs(timeouts.total)}`, context()),
  );

  const onAbort = (): void => {
    const r: unknown = opts.signal?.reason;
    const why = typeof r === 'string' ? r : r instanceof Error ? r.message : 'abort';
    fail(`runner interrupted (${why}) after ${secs(Math.round(elapsed()))}`, context());
  };
  if (opts.signal?.aborted) onAbort();
  else opts.signal?.addEventListener('abort', onAbort, { once: true });

  // ---- Wait for the end, then make sure QEMU is gone.
  try {
    await ended;
  } finally {
    opts.signal?.removeEventListener('abort', onAbort);
    const pid = child.pid;
    if (!hasExited(child) && pid !== undefined) {
      await killQemu(child, killGraceMs, (sig) => emit({ type: 'kill', t: elapsed(), pid, signal: sig }));
    }
  }
  if (!closed) {
    await Promise.race([closedPromise, new Promise((r) => setTimeout(r, DRAIN_MS))]);
  }
  child.stdout?.removeAllListeners('data');
  child.stderr?.removeAllListeners('data');
  child.stdout?.destroy();
  child.stderr?.destroy();
  for (const ev of markers.end({ cutShort: ending?.failure !== undefined })) onMarkerEvent(ev);
  for (const name of [...timers.keys()]) clearTimer(name);
  await Promise.all([endStream(serialOut), endStream(stderrOut), sink.closeAll()]);

  if (!builder.failed && !builder.hasScenarios()) {
    const scenario = dom0Up ? LAB_RUN : LAB_BOOT;
    const reason = 'the run reported done without any scenario (no plan, no result)';
    builder.fail(scenario, reason);
    emit({ type: 'failure', t: elapsed(), scenario, reason });
  }
  if (opts.demo !== undefined && builder.demoSnapshots === 0 && dom0Up) {
    emit({ type: 'warning', t: elapsed(), message: 'demo: dom0 streamed no ivctop snapshot', line: '' });
  }
  const whyEnded = ending?.failure?.short ?? builder.failureReason ?? 'the run reported done without it';
  return finishReport(whyEnded);
}
