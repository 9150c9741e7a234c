/**
 * The `ivctop` command line. Without --once: the full-screen Ink monitor (Monitor.tsx). With --once: two samples one
 * interval apart (so rates are known; a replay is stepped instead), then the model as JSON (--json) or as the screen
 * text, and exit 0. With --emit: no screen, one raw Snapshot as JSON per line on stdout every interval until
 * SIGTERM/SIGINT (exit 0; the lab's dom0 streams these over the serial console for `fastivc lab run --demo`).
 * Exit 2 only for bad arguments (including an unreadable --replay file).
 *
 *   ivctop [--interval ms] [--sort key] [--filter domid] [--replay file [--step]] [--record file] [--once [--json]]
 *   ivctop --emit [--interval ms]
 */
import { Command, CommanderError, InvalidArgumentError, Option } from 'commander';
import { createElement } from 'react';
import type { DemSource } from '../../../native/lib/index.js';
import { parseMillis } from '../commands/sync.js';
import { DEFAULT_PROC_DIR, liveSource } from '../data/live.js';
import { buildModel, filterModel, sortTunnels, SORT_KEYS, type Model, type SortKey } from '../data/model.js';
import { recordingTo, replayFile } from '../data/replay.js';
import type { CommandRunner, FileReader } from '../data/system.js';
import type { DataSource } from '../data/types.js';
import { demFromEnv } from '../deps.js';
import { parseDomid, parseText } from '../options.js';
import { packageInfo } from '../pkg.js';
import { screenText } from './App.js';
import type { MonitorProps } from './Monitor.js';

export const EXIT_USAGE = 2;

export interface IvctopDeps {
  dem: () => DemSource;
  out: (text: string) => void;
  err: (text: string) => void;
  exec?: CommandRunner;
  readFile?: FileReader;
  /** Runs the interactive monitor until the user quits (default: Ink on the terminal, full screen). */
  monitor?: (props: MonitorProps) => Promise<void>;
  sleep?: (ms: number) => Promise<void>;
  /** The clock --emit paces itself on, in ms (default: Date.now). */
  now?: () => number;
  /** Terminal width for --once text output (default: stdout's, else 100). */
  columns?: number;
  /** Ends --emit (default: SIGTERM, SIGINT, or EPIPE on stdout). */
  stop?: AbortSignal;
}

export interface IvctopFlags {
  interval: number;
  once?: boolean;
  json?: boolean;
  emit?: boolean;
  replay?: string;
  step?: boolean;
  record?: string;
  sort: SortKey;
  filter?: number;
  procDir: string;
  xenstore: boolean;
}

/** The JSON --once prints: the model (tunnels sorted and filtered as asked) and what produced it. */
export interface OnceJson extends Model {
  source: string;
  sort: SortKey;
  filter: number | null;
}

function defaultDeps(): IvctopDeps {
  return {
    dem: () => demFromEnv(),
    out: (t) => process.stdout.write(t),
    err: (t) => process.stderr.write(t),
  };
}

async function inkMonitor(props: MonitorProps): Promise<void> {
  const { render } = await import('ink');
  const { Monitor } = await import('./Monitor.js');
  const tty = process.stdout.isTTY === true;
  if (tty) process.stdout.write('\x1b[?1049h\x1b[H'); // the alternate screen: the shell's text comes back on exit
  try {
    const app = render(createElement(Monitor, props), { exitOnCtrlC: true, patchConsole: true });
    // SIGTERM (and SIGINT when stdin is not a terminal, so Ink does not see ^C) end it cleanly, screen restored.
    const stop = (): void => app.unmount();
    process.once('SIGTERM', stop);
    process.once('SIGINT', stop);
    try {
      await app.waitUntilExit();
    } finally {
      process.off('SIGTERM', stop);
      process.off('SIGINT', stop);
    }
  } finally {
    if (tty) process.stdout.write('\x1b[?1049l');
  }
}

const sleepMs = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Sleeps `ms`, or less if `signal` aborts first. */
function sleepOrStop(ms: number, signal: AbortSignal): Promise<void> {
  if (signal.aborted || ms <= 0) return Promise.resolve();
  return new Promise((resolve) => {
    const done = (): void => {
      clearTimeout(timer);
      signal.removeEventListener('abort', done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal.addEventListener('abort', done, { once: true });
  });
}

/** The process's own way to end --emit: SIGTERM, SIGINT, or a closed stdout (the reader went away). */
function processStop(): { signal: AbortSignal; release: () => void } {
  const c = new AbortController();
  const stop = (): void => c.abort();
  const onError = (e: NodeJS.ErrnoException): void => {
    if (e.code === 'EPIPE') stop();
  };
  process.once('SIGTERM', stop);
  process.once('SIGINT', stop);
  process.stdout.on('error', onError);
  return {
    signal: c.signal,
    release: () => {
      process.off('SIGTERM', stop);
      process.off('SIGINT', stop);
      process.stdout.off('error', onError);
    },
  };
}

/**
 * --emit: one raw Snapshot per line (the JSON `--record` writes), the first at once and then every interval (on a
 * fixed schedule: a slow sample does not push the following ones back), until `stop` aborts.
 */
export async function emit(source: DataSource, flags: IvctopFlags, deps: IvctopDeps, stop: AbortSignal): Promise<void> {
  const now = deps.now ?? Date.now;
  const start = now();
  for (let k = 1; !stop.aborted; k++) {
    const s = await source.next();
    if (stop.aborted) break;
    deps.out(`${JSON.stringify(s)}\n`);
    const wait = Math.max(0, start + k * flags.interval - now());
    if (deps.sleep) {
      await deps.sleep(wait);
    } else {
      await sleepOrStop(wait, stop);
    }
  }
}

function openSource(flags: IvctopFlags, deps: IvctopDeps): DataSource {
  let source: DataSource;
  if (flags.replay !== undefined) {
    source = replayFile(flags.replay, { pace: flags.step === true || flags.once === true ? 'step' : 'recorded' });
  } else {
    source = liveSource({
      dem: deps.dem,
      procDir: flags.procDir,
      xenstore: flags.xenstore,
      ...(deps.exec ? { exec: deps.exec } : {}),
      ...(deps.readFile ? { readFile: deps.readFile } : {}),
    });
  }
  return flags.record !== undefined ? recordingTo(flags.record, source) : source;
}

/** --once: two samples, the model of the second with rates from the first. */
export async function once(source: DataSource, flags: IvctopFlags, deps: IvctopDeps): Promise<OnceJson> {
  const first = await source.next();
  if (source.kind === 'live') await (deps.sleep ?? sleepMs)(flags.interval);
  const second = await source.next();
  const m = filterModel(buildModel(second, first), flags.filter ?? null);
  return {
    source: source.describe(),
    sort: flags.sort,
    filter: flags.filter ?? null,
    ...m,
    tunnels: sortTunnels(m.tunnels, flags.sort),
  };
}

function parseSort(value: string): SortKey {
  if (!(SORT_KEYS as readonly string[]).includes(value)) {
    throw new InvalidArgumentError(`expected one of ${SORT_KEYS.join(', ')}.`);
  }
  return value as SortKey;
}

export function buildProgram(deps: IvctopDeps, onRun: (flags: IvctopFlags) => Promise<void>): Command {
  return new Command('ivctop')
    .description('live monitor of fast-IVC tunnels, links between domains, pending DEM events and fallback reasons (run in dom0)')
    .version(packageInfo().version, '-V, --version', 'print the version')
    .addOption(new Option('--interval <ms>', 'refresh period in milliseconds').argParser(parseMillis).default(1000))
    .option('--once', 'take one sample (two, one interval apart, for rates), print it and exit')
    .option('--json', 'with --once: print the model as JSON')
    .option('--emit', 'no screen: print one raw snapshot as JSON per line every interval until killed (for the lab demo)')
    .addOption(new Option('--sort <key>', `sort the tunnels by ${SORT_KEYS.join('|')}`).argParser(parseSort).default('throughput'))
    .option('--filter <domid>', 'show only this domain', parseDomid)
    .option('--replay <file>', 'replay a recording (JSON lines of snapshots) instead of the live system', parseText)
    .option('--step', 'with --replay: each refresh shows the next recorded snapshot (default: recorded pace)')
    .option('--record <file>', 'write every snapshot taken to <file> as JSON lines (for --replay)', parseText)
    .option('--proc-dir <dir>', "this domain's module statistics folder", parseText, DEFAULT_PROC_DIR)
    .option('--no-xenstore', "do not read the domUs' mirrors from xenstore")
    .addHelpText(
      'after',
      '\nKeys: s cycles the sort column, f cycles the domain filter, p pauses, q quits.\n' +
        'Environment: FASTIVC_PRIVCMD, FASTIVC_DEM_MOCK (see fastivc map --help).',
    )
    .showSuggestionAfterError(true)
    .exitOverride()
    .configureOutput({ writeOut: deps.out, writeErr: deps.err })
    .action(async function (this: Command) {
      const flags = this.opts<IvctopFlags>();
      if (flags.json === true && flags.once !== true) this.error('error: --json needs --once');
      if (flags.step === true && flags.replay === undefined) this.error('error: --step needs --replay');
      if (flags.emit === true && flags.once === true) this.error('error: --emit and --once cannot be used together');
      await onRun(flags);
    });
}

/** Parses and runs one command line (argv as process.argv). Resolves with the exit code. */
export async function run(argv: readonly string[], deps: IvctopDeps = defaultDeps()): Promise<number> {
  let code = 0;
  const program = buildProgram(deps, async (flags) => {
    let source: DataSource;
    try {
      source = openSource(flags, deps);
    } catch (e) {
      deps.err(`ivctop: ${e instanceof Error ? e.message : String(e)}\n`);
      code = EXIT_USAGE;
      return;
    }
    try {
      if (flags.emit === true) {
        const own = deps.stop === undefined ? processStop() : undefined;
        try {
          await emit(source, flags, deps, deps.stop ?? (own as { signal: AbortSignal }).signal);
        } finally {
          own?.release();
        }
      } else if (flags.once === true) {
        const result = await once(source, flags, deps);
        if (flags.json === true) deps.out(`${JSON.stringify(result, null, 2)}\n`);
        else {
          const width = deps.columns ?? process.stdout.columns ?? 100;
          deps.out(
            screenText(result, {
              source: result.source,
              sort: flags.sort,
              filter: flags.filter ?? null,
              width,
              intervalMs: flags.interval,
            }),
          );
        }
      } else {
        await (deps.monitor ?? inkMonitor)({
          source,
          intervalMs: flags.interval,
          sort: flags.sort,
          filter: flags.filter ?? null,
        });
      }
    } finally {
      source.close();
    }
  });
  try {
    await program.parseAsync([...argv]);
    return code;
  } catch (e) {
    if (e instanceof CommanderError) return e.exitCode === 0 ? 0 : EXIT_USAGE;
    deps.err(`ivctop: ${e instanceof Error ? e.message : String(e)}\n`);
    if (process.env.FASTIVC_DEBUG && e instanceof Error && e.stack) deps.err(`${e.stack}\n`);
    return 1;
  }
}
