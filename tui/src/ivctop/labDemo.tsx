/**
 * The view of `fastivc lab run --demo`: the plain progress lines while the lab boots and runs its scenarios, then,
 * from the first ivctop snapshot dom0 streams over the serial console, ivctop itself.
 *
 * - stdout is a terminal: the Ink Monitor, full screen (the alternate screen), fed by a push source with the
 *   snapshots as they arrive; progress lines are held back meanwhile and printed when it closes. q (or Esc) closes
 *   it and the lab goes on with plain progress lines (one per snapshot); Ctrl-C stops the lab as SIGINT does. When
 *   the lab ends (done, QEMU exit, a failure) the screen comes back and the last frame is printed on it as text.
 * - otherwise (CI logs): one progress line per snapshot summarising tunnels and bytes, and at the end the last
 *   snapshot as `ivctop --once` prints it.
 *
 * Then the usual summary (progressPrinter). Pure of process state: streams, the terminal flag and Ink's render come
 * in as options, so tests drive it with a fake event stream and ink-testing-library.
 */
import { useInput, useStdin } from 'ink';
import type { ReactElement } from 'react';
import type { LabEvent, LabEventListener } from '../../../lab/runner/events.js';
import { formatElapsed, progressPrinter, type Writable } from '../../../lab/runner/progress.js';
import { buildModel, filterModel, sortTunnels, type Model, type SortKey, type TunnelRow } from '../data/model.js';
import { pushSource, type PushSource } from '../data/push.js';
import type { Snapshot } from '../data/types.js';
import { fmtBytes, fmtRate, fmtTime } from './format.js';
import { screenText } from './App.js';
import { Monitor, type MonitorProps } from './Monitor.js';

/** Where the Monitor draws: something with a size (process.stdout), or fixed in tests. */
export interface Screen extends Writable {
  columns?: number;
  rows?: number;
}

export interface DemoViewOptions {
  /** Progress lines, per-snapshot lines (text mode) and the summary: stderr. */
  progress: Writable;
  /** Where Ink draws and the last frame is left (stdout); used only when `tty`. */
  screen?: Screen;
  /** stdout is a terminal: show the Ink monitor. */
  tty: boolean;
  /** Ink's render bound to the terminal (or ink-testing-library's); needed when `tty`. */
  render?: (element: ReactElement) => { unmount(): void };
  /** Switch to the alternate screen around the monitor (default: true). */
  altScreen?: boolean;
  verbose?: boolean;
  /** The Monitor's poll period and the header's "every" (dom0 emits every 1000 ms). */
  intervalMs?: number;
  /** Ctrl-C in the monitor (raw mode turns it into a key): stop the lab as SIGINT would. */
  onInterrupt?: () => void;
  /** Fixed monitor size (tests); default the terminal's. */
  width?: number;
  height?: number;
}

export type DemoMode =
  /** Plain progress lines (before the first snapshot, or without a terminal). */
  | 'progress'
  /** The Ink monitor is on screen. */
  | 'monitor'
  /** The user closed the monitor with q: plain lines, one per snapshot. */
  | 'returned'
  /** The lab is over (done, QEMU exit, failure): whatever comes now is plain lines. */
  | 'ended';

export interface DemoView {
  onEvent: LabEventListener;
  mode(): DemoMode;
  /** The snapshots pushed from the serial stream, as the Monitor sees them. */
  source: PushSource;
  /** Takes the monitor down if it is up (the lab runner returned or threw). Idempotent. */
  close(): void;
}

/** Events after which no more demo data can come: the monitor gives the screen back. */
const END_EVENTS: ReadonlySet<LabEvent['type']> = new Set(['done', 'failure', 'qemu-exit', 'kill', 'report']);

const MAX_TUNNELS_IN_LINE = 3;

function rowRate(r: TunnelRow): number | null {
  return r.rate.ab === null && r.rate.ba === null ? null : (r.rate.ab ?? 0) + (r.rate.ba ?? 0);
}

/**
 * One line per snapshot for logs: "ivctop #12 22:13:21: 2 tunnels, 10M/s, 20M carried | 1-2
 * 192.0.2.11:40312>192.0.2.12:7001 10M/s 20M; ... +1 more", then the first problem, if any.
 */
export function snapshotLine(n: number, model: Model): string {
  const t = model.totals;
  const head = `ivctop #${n} ${fmtTime(model.time)}: ${t.tunnels} tunnel${t.tunnels === 1 ? '' : 's'}, ${fmtRate(t.throughput)}, ${fmtBytes(t.bytes)} carried`;
  const rows = sortTunnels(model.tunnels, 'throughput');
  const shown = rows.slice(0, MAX_TUNNELS_IN_LINE).map((r) => {
    const doms = `${r.a.domid ?? '?'}-${r.b.domid ?? '?'}`;
    return `${doms} ${r.a.addr}>${r.b.addr} ${fmtRate(rowRate(r))} ${fmtBytes(r.bytes.ab + r.bytes.ba)}`;
  });
  if (rows.length > MAX_TUNNELS_IN_LINE) shown.push(`+${rows.length - MAX_TUNNELS_IN_LINE} more`);
  const problems = [...(model.dem.ok ? [] : [`DEM: ${model.dem.error ?? 'unavailable'}`]), ...model.errors];
  const tail = problems.length > 0 ? ` ! ${problems[0]}${problems.length > 1 ? ` (+${problems.length - 1} more)` : ''}` : '';
  return `${head}${shown.length > 0 ? ` | ${shown.join('; ')}` : ''}${tail}`;
}

/** The Monitor plus Ctrl-C (which raw mode delivers as a key instead of SIGINT). */
function DemoMonitor(props: MonitorProps & { onInterrupt: () => void }) {
  const { isRawModeSupported } = useStdin();
  useInput(
    (input, key) => {
      if (key.ctrl && input === 'c') props.onInterrupt();
    },
    { isActive: isRawModeSupported === true },
  );
  const { onInterrupt: _ignored, ...monitor } = props;
  return <Monitor {...monitor} />;
}

export function demoView(opts: DemoViewOptions): DemoView {
  const intervalMs = opts.intervalMs ?? 1000;
  const alt = opts.altScreen ?? true;
  const source = pushSource({ name: 'lab dom0' });
  let mode: DemoMode = 'progress';
  let held: string[] = [];
  let ink: { unmount(): void } | undefined;
  let view: { sort: SortKey; filter: number | null } = { sort: 'throughput', filter: null };
  let lastT = 0;
  let prev: Snapshot | undefined;
  let cur: Snapshot | undefined;
  let count = 0;

  // Progress text goes through here: held back while the monitor owns the terminal.
  const out: Writable = {
    write: (chunk: string) => {
      if (mode === 'monitor') held.push(chunk);
      else opts.progress.write(chunk);
      return true;
    },
  };
  const printer = progressPrinter(out, { verbose: opts.verbose === true });
  const line = (t: number, text: string): void => {
    out.write(`${formatElapsed(t)} ${text}\n`);
  };
  const model = (): Model | undefined => (cur ? buildModel(cur, prev) : undefined);

  /** Takes the monitor down; `then` is the mode after it. Prints the held progress lines. */
  const leaveMonitor = (then: DemoMode): void => {
    if (mode !== 'monitor') return;
    try {
      ink?.unmount();
    } catch {
      // Already gone (q unmounts it from the inside).
    }
    ink = undefined;
    if (alt) opts.screen?.write('\x1b[?1049l');
    mode = then;
    const text = held.join('');
    held = [];
    if (text !== '') opts.progress.write(text);
  };

  /** True when the monitor is now on screen. */
  const enterMonitor = (): boolean => {
    if (!opts.render) return false;
    if (alt) opts.screen?.write('\x1b[?1049h\x1b[H');
    mode = 'monitor';
    const props: MonitorProps & { onInterrupt: () => void } = {
      source,
      intervalMs,
      sort: view.sort,
      filter: view.filter,
      quitLabel: 'back to progress',
      onView: (v) => {
        view = v;
      },
      // Let Ink finish its own exit first, then give the terminal back.
      onQuit: () =>
        void setImmediate(() => {
          if (mode !== 'monitor') return;
          leaveMonitor('returned');
          line(lastT, 'ivctop view closed (q); the lab goes on');
        }),
      onInterrupt: () => {
        leaveMonitor('returned');
        opts.onInterrupt?.();
      },
      ...(opts.width !== undefined ? { width: opts.width } : {}),
      ...(opts.height !== undefined ? { height: opts.height } : {}),
    };
    try {
      ink = opts.render(<DemoMonitor {...props} />);
      return true;
    } catch (e) {
      leaveMonitor('returned');
      line(lastT, `! cannot show ivctop (${e instanceof Error ? e.message : String(e)}); plain lines follow`);
      return false;
    }
  };

  /** The lab is over: the last frame stays (on the terminal) or is printed (in logs). */
  const endDemo = (t: number): void => {
    if (mode === 'ended') return;
    source.end();
    const m = model();
    if (mode === 'monitor') {
      leaveMonitor('ended');
      if (m && opts.screen) {
        const width = opts.width ?? opts.screen.columns ?? 100;
        const height = opts.height ?? Math.max(6, (opts.screen.rows ?? 25) - 1);
        const f = filterModel(m, view.filter);
        const shown = { ...f, tunnels: sortTunnels(f.tunnels, view.sort) };
        opts.screen.write(
          screenText(shown, { source: source.describe(), sort: view.sort, filter: view.filter, width, height, intervalMs }),
        );
      }
    } else if (mode === 'progress' && !opts.tty && m) {
      line(t, `ivctop, the last of ${count} snapshot${count === 1 ? '' : 's'}:`);
      out.write(screenText({ ...m, tunnels: sortTunnels(m.tunnels, 'throughput') }, { source: source.describe(), sort: 'throughput', filter: null, width: 100, intervalMs }));
    }
    mode = 'ended';
  };

  const onEvent: LabEventListener = (e) => {
    lastT = e.t;
    if (e.type === 'ivctop') {
      count = e.n;
      if (cur === undefined || e.snapshot.time >= cur.time) {
        prev = cur;
        cur = e.snapshot;
      }
      source.push(e.snapshot);
      if (mode === 'monitor') return;
      if (mode === 'progress' && opts.tty && opts.render) {
        if (enterMonitor()) return;
      }
      const m = model();
      if (m) line(e.t, snapshotLine(e.n, m));
      printer(e); // the verbose "ivctop snapshot N"
      return;
    }
    if (END_EVENTS.has(e.type)) endDemo(e.t);
    printer(e);
  };

  return {
    onEvent,
    mode: () => mode,
    source,
    close: () => {
      leaveMonitor('ended');
      mode = 'ended';
      source.end();
    },
  };
}
