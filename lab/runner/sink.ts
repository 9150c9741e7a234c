/**
 * What the marker protocol's markers do to a run, once for both readers of it: the QEMU lab (run.ts, dom0's serial
 * console) and `fastivc bench run --remote` (tui/src/bench/remote.ts, bench.sh's stdout). A MarkerSink applies
 * `plan`, `versions`, `result`, `log-begin`, `log-end` and `phase scenario-start` to the ReportBuilder, the log
 * files and the emitted LabEvents; what differs between the two runs (timers, the other phases, `done`, `ivctop`,
 * how a protocol error is quoted) stays with the caller:
 *
 *   const sink = createMarkerSink({ builder, logsDir, reportDir, reserved: [serialLog, stderrLog],
 *                                   reservedFor: "the runner's own logs", emit, onProtocolError });
 *   MarkerStream 'log-line': sink.logLine(ev.name, ev.line);
 *   MarkerStream 'marker':   if (!sink.apply(ev.marker, ev.line, t)) { ...phase, done, ivctop... }
 *   at the end:              await sink.closeAll();
 *
 * It owns the log files: NAME.log is truncated at its first log-begin and appended to when the block comes again.
 */
import { createWriteStream, type WriteStream } from 'node:fs';
import path from 'node:path';
import type { LabEvent } from './events.js';
import { isValidScenarioName, type Marker } from './markers.js';
import { relativePath, type ReportBuilder } from './report.js';

export interface MarkerSinkOptions {
  builder: ReportBuilder;
  /** Log block NAME goes to `<logsDir>/NAME.log`. */
  logsDir: string;
  /** The report's folder: the report names each log relative to it. */
  reportDir: string;
  /** Files no log block may write (the run's own logs, absolute): such a log-begin is a protocol error. */
  reserved: readonly string[];
  /** Ends the reserved-name error: `log name NAME is reserved for <reservedFor>`. */
  reservedFor: string;
  emit: (e: LabEvent) => void;
  /** A marker that breaks the protocol; `line` is the marker's line. */
  onProtocolError: (message: string, line: string) => void;
}

export interface MarkerSink {
  /**
   * Applies a marker at `t` seconds. Returns false for the markers it leaves to the caller: `phase` other than
   * `scenario-start`, `done` and `ivctop`.
   */
  apply(marker: Marker, line: string, t: number): boolean;
  /** One line of log block `name` (a MarkerStream `log-line`): written only while that block is open. */
  logLine(name: string, line: string): void;
  /** Ends every log file ever opened; resolves once all are closed (never rejects). Later lines are dropped. */
  closeAll(): Promise<void>;
}

/** Ends a write stream; resolves when it is closed or failed (never rejects). */
export function endStream(s: WriteStream): Promise<void> {
  return new Promise((resolve) => {
    if (s.closed || s.destroyed) {
      resolve();
      return;
    }
    s.once('error', () => resolve());
    s.end(() => resolve());
  });
}

export function createMarkerSink(o: MarkerSinkOptions): MarkerSink {
  /** The open log blocks (MarkerStream allows one at a time; a log-end without its block is its error). */
  const open = new Map<string, WriteStream>();
  /**
   * Each log's one stream, kept until closeAll: a block that comes again writes on after the first one's lines. (A
   * second stream opened on the same file with 'a' raced the first one's open with 'w', which could truncate the
   * second block's lines away.)
   */
  const streams = new Map<string, WriteStream>();

  const apply = (m: Marker, line: string, t: number): boolean => {
    switch (m.kind) {
      case 'phase': {
        if (m.name !== 'scenario-start') return false;
        const name = m.detail[0];
        if (name === undefined || m.detail.length !== 1 || !isValidScenarioName(name)) {
          o.onProtocolError('phase scenario-start expects exactly one valid scenario name', line);
          return true;
        }
        o.builder.scenarioStarted(name);
        o.emit({ type: 'scenario-start', t, name });
        return true;
      }
      case 'plan':
        o.builder.setPlan(m.names);
        o.emit({ type: 'plan', t, names: m.names });
        return true;
      case 'versions':
        o.builder.mergeVersions(m.versions);
        o.emit({ type: 'versions', t, versions: m.versions });
        return true;
      case 'result':
        if (o.builder.addResult(m.result)) o.onProtocolError(`second result for ${m.result.name} (the last one counts)`, line);
        o.emit({ type: 'result', t, result: m.result });
        return true;
      case 'log-begin': {
        const file = path.join(o.logsDir, `${m.name}.log`);
        if (o.reserved.includes(file)) {
          o.onProtocolError(`log name ${m.name} is reserved for ${o.reservedFor}`, line);
          return true;
        }
        let s = streams.get(m.name);
        if (!s) {
          s = createWriteStream(file, { flags: 'w' });
          s.on('error', () => undefined);
          streams.set(m.name, s);
        }
        open.set(m.name, s);
        o.builder.setLog(m.name, relativePath(o.reportDir, file));
        o.emit({ type: 'log-begin', t, name: m.name, file });
        return true;
      }
      case 'log-end':
        open.delete(m.name); /* its stream stays for a block that comes again; closeAll ends it */
        o.emit({ type: 'log-end', t, name: m.name });
        return true;
      case 'done':
      case 'ivctop':
        return false;
    }
  };

  return {
    apply,
    logLine(name, line) {
      open.get(name)?.write(`${line}\n`);
    },
    async closeAll() {
      open.clear();
      await Promise.all([...streams.values()].map(endStream));
    },
  };
}
