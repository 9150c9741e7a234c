/**
 * `fastivc bench run --remote DOMU1,DOMU2`: the lab experiments on a real Xen host, without QEMU. This machine (the
 * dom0) runs `bash <appRoot>/lab/guest/remote/bench.sh` with the settings in its environment; bench.sh sources the
 * lab's experiments.sh, reaches the two domUs by ssh (or by a lab-agent installed by hand) and prints the lab's
 * marker protocol (lab/runner/README.md) on its stdout. That stream is read here as the lab runner reads the serial
 * console (MarkerStream, the MarkerSink of lab/runner/sink.ts, ReportBuilder, the same LabEvents for the progress
 * view), and ends in a report (<out>/remote-report.json) and one log per point (<out>/logs/), which `fastivc bench`
 * turns into the same files as a lab run.
 *
 * Pure parts (tested directly): the option parsers, the experiment selection and remoteCommand, the command line and
 * environment bench.sh is started with.
 */
import { spawn } from 'node:child_process';
import { createWriteStream } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { InvalidArgumentError } from 'commander';
import { guardedListener, type LabEventListener } from '../../../lab/runner/events.js';
import { MARKER_PREFIX, MarkerStream, type MarkerEvent } from '../../../lab/runner/markers.js';
import { REMOTE_RUN, ReportBuilder, relativePath, writeReport, type Report } from '../../../lab/runner/report.js';
import { createMarkerSink, endStream } from '../../../lab/runner/sink.js';
import { isIPv4 } from '../../../native/lib/index.js';
import { appRoot } from '../pkg.js';
import type { Experiment } from './experiments.js';

export type Via = 'ssh' | 'agent';
export const VIAS: readonly Via[] = ['ssh', 'agent'];

/** Tests only: a script to run instead of lab/guest/remote/bench.sh (it must speak the marker protocol). */
export const REMOTE_SCRIPT_ENV = 'FASTIVC_BENCH_REMOTE_SCRIPT';
/** Another ivcbench to copy to the domUs than <appRoot>/build/bench/ivcbench (one built for them; the tests' fake). */
export const REMOTE_IVCBENCH_ENV = 'FASTIVC_BENCH_IVCBENCH';
/** The report next to the results, and the logs folder's files of the run itself. */
export const REMOTE_REPORT_NAME = 'remote-report.json';
export const REMOTE_STDOUT_LOG = 'remote.log';
export const REMOTE_STDERR_LOG = 'remote-stderr.log';
/** Longest time bench.sh may go without printing a marker (each remote command is bounded by AGENT_TIMEOUT). */
export const DEFAULT_REMOTE_IDLE_S = 1800;
/** SIGTERM to bench.sh's process group, then SIGKILL after this (it restores the domUs' settings meanwhile). */
export const DEFAULT_REMOTE_KILL_GRACE_MS = 30_000;

const USER_RE = /^[A-Za-z_][A-Za-z0-9_.-]{0,31}$/;
const LABEL = '[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?';
const HOST_RE = new RegExp(`^(?=.{1,253}$)${LABEL}(?:\\.${LABEL})*$`);

/** One domU of --remote: `[user@]host` (a host name or an IPv4 address; never an ssh option). */
export function parseDomU(spec: string): { user?: string; host: string } {
  const at = spec.lastIndexOf('@');
  const user = at >= 0 ? spec.slice(0, at) : undefined;
  const host = at >= 0 ? spec.slice(at + 1) : spec;
  if (user !== undefined && !USER_RE.test(user)) throw new InvalidArgumentError(`bad user name in '${spec}'.`);
  if (!HOST_RE.test(host)) throw new InvalidArgumentError(`bad host in '${spec}': expected a host name or an IPv4 address.`);
  return user !== undefined ? { user, host } : { host };
}

/** --remote DOMU1,DOMU2: exactly two different domUs. */
export function parseRemote(value: string): string[] {
  const specs = value.split(',').map((s) => s.trim());
  if (specs.length !== 2 || specs.some((s) => s === '')) {
    throw new InvalidArgumentError('expected two domUs, DOMU1,DOMU2 ([user@]host each).');
  }
  const hosts = specs.map((s) => parseDomU(s).host);
  if (hosts[0] === hosts[1]) throw new InvalidArgumentError('the two domUs must be different hosts.');
  return specs;
}

/** --addr IP1,IP2: the domUs' addresses, in --remote's order. */
export function parseAddrs(value: string): string[] {
  const addrs = value.split(',').map((s) => s.trim());
  if (addrs.length !== 2 || addrs.some((a) => !isIPv4(a) || a === '0.0.0.0')) {
    throw new InvalidArgumentError('expected two IPv4 addresses, IP1,IP2.');
  }
  if (addrs[0] === addrs[1]) throw new InvalidArgumentError('the two addresses must differ.');
  return addrs;
}

export interface RemoteFlags {
  remote?: string[];
  via: Via;
  sshKey?: string;
  addr?: string[];
}

/** What is wrong with a combination of the remote options (undefined: nothing). `viaGiven`: --via was on the line. */
export function remoteFlagsProblem(f: RemoteFlags, viaGiven: boolean): string | undefined {
  if (f.remote === undefined) {
    if (viaGiven || f.sshKey !== undefined || f.addr !== undefined) return '--via, --ssh-key and --addr need --remote';
    return undefined;
  }
  if (f.via === 'agent') {
    if (f.sshKey !== undefined) return '--ssh-key is for --via ssh';
    const withUser = f.remote.find((s) => parseDomU(s).user !== undefined);
    if (withUser !== undefined) return `--via agent takes a host, not user@host (${withUser})`;
  }
  return undefined;
}

/**
 * The experiments a remote run does: the lab ones but fig11, whose FTP server reads a virtual disk the lab attaches
 * (xl block-attach of a dom0 file): named, it is refused; in "all" it is skipped with a message. The host experiment
 * (ring) runs on this machine only when named.
 */
export function remoteSelection(
  chosen: readonly Experiment[],
  named: readonly string[],
): { remote: Experiment[]; host: Experiment[]; skipped: string[] } {
  const explicit = named.length > 0 && !named.includes('all');
  if (explicit && chosen.some((e) => e.id === 'fig11')) {
    throw new Error(
      'fig11 cannot run with --remote: its FTP server reads a virtual disk that the lab attaches to a domU (xl block-attach); run it in the lab (fastivc bench run fig11)',
    );
  }
  const skipped: string[] = [];
  const remote: Experiment[] = [];
  const host: Experiment[] = [];
  for (const e of chosen) {
    if (e.id === 'fig11') skipped.push('fig11 (the lab only: an FTP server on a virtual disk the lab attaches)');
    else if (e.where === 'lab') remote.push(e);
    else if (explicit) host.push(e);
    else skipped.push(`${e.id} (runs on this host: name it to run it too)`);
  }
  return { remote, host, skipped };
}

export interface RemoteOptions {
  /** [user@]host of the two domUs (ssh), or host (agent). */
  domus: readonly string[];
  via: Via;
  sshKey?: string;
  /** The domUs' addresses, when given (--addr). */
  addrs?: readonly string[];
  experiments: readonly string[];
  repeat: number;
  quick: boolean;
}

export interface RemoteContext {
  /** The folder with package.json (appRoot()). */
  appRoot: string;
  /** How bench.sh runs fastivc on this host (map list, sync --once): by default the program running now. */
  fastivc: readonly string[];
  /** Instead of lab/guest/remote/bench.sh (tests). */
  script?: string;
  /** Instead of <appRoot>/build/bench/ivcbench. */
  ivcbench?: string;
}

export interface RemoteCommand {
  command: string;
  args: string[];
  /** Added to this process's environment. */
  env: Record<string, string>;
}

/** The command that runs this same fastivc again: node, its flags (e.g. tsx's loader), the script. */
export function selfCommand(argv: readonly string[] = process.argv, execArgv: readonly string[] = process.execArgv): string[] {
  const script = argv[1];
  return script === undefined ? ['fastivc'] : [process.execPath, ...execArgv, script];
}

export function defaultRemoteContext(env: NodeJS.ProcessEnv = process.env): RemoteContext {
  const script = env[REMOTE_SCRIPT_ENV];
  const ivcbench = env[REMOTE_IVCBENCH_ENV];
  return {
    appRoot: appRoot(),
    fastivc: selfCommand(),
    ...(script !== undefined && script !== '' ? { script } : {}),
    ...(ivcbench !== undefined && ivcbench !== '' ? { ivcbench: path.resolve(ivcbench) } : {}),
  };
}

/** The command line and environment of bench.sh for a remote run (lab/guest/remote/bench.sh documents each). */
export function remoteCommand(o: RemoteOptions, ctx: RemoteContext): RemoteCommand {
  return {
    command: 'bash',
    args: [ctx.script ?? path.join(ctx.appRoot, 'lab', 'guest', 'remote', 'bench.sh')],
    env: {
      FASTIVC_BENCH_EXPERIMENTS: o.experiments.join(','),
      FASTIVC_BENCH_REPEAT: String(o.repeat),
      FASTIVC_BENCH_QUICK: o.quick ? '1' : '0',
      FASTIVC_BENCH_DOMUS: o.domus.join(' '),
      FASTIVC_BENCH_VIA: o.via,
      FASTIVC_BENCH_SSH_KEY: o.sshKey !== undefined ? path.resolve(o.sshKey) : '',
      FASTIVC_BENCH_ADDRS: (o.addrs ?? []).join(' '),
      FASTIVC_BENCH_IVCBENCH: ctx.ivcbench ?? path.join(ctx.appRoot, 'build', 'bench', 'ivcbench'),
      FASTIVC_BENCH_LAB_AGENT: path.join(ctx.appRoot, 'build', 'bench', 'lab-agent'),
      // one word per line: paths with spaces survive
      FASTIVC_BENCH_FASTIVC: ctx.fastivc.join('\n'),
    },
  };
}

export interface RemoteRunOptions {
  reportPath: string;
  logsDir: string;
  onEvent?: LabEventListener;
  /** Aborting stops bench.sh (SIGTERM to its process group, SIGKILL after killGraceMs). */
  signal?: AbortSignal;
  idleS?: number;
  killGraceMs?: number;
  /** The environment bench.sh starts from (default process.env); the command's own env is added to it. */
  env?: NodeJS.ProcessEnv;
}

function quoteTail(text: string, lines = 3, max = 300): string {
  const tail = text.trim().split('\n').slice(-lines).join(' | ');
  return JSON.stringify(tail.length > max ? `...${tail.slice(-max)}` : tail);
}

/**
 * Runs bench.sh to its end and writes the report. Never throws for problems of the run (they become the failed
 * scenario remote-run); throws only when the report cannot be written. bench.sh never outlives it.
 */
export async function runRemote(cmd: RemoteCommand, opts: RemoteRunOptions): Promise<{ report: Report; reportPath: string }> {
  const t0 = performance.now();
  const startedAt = new Date();
  const elapsed = (): number => (performance.now() - t0) / 1000;
  const emit = guardedListener(opts.onEvent);
  const reportPath = path.resolve(opts.reportPath);
  const reportDir = path.dirname(reportPath);
  const logsDir = path.resolve(opts.logsDir);
  await mkdir(logsDir, { recursive: true });
  const stdoutLog = path.join(logsDir, REMOTE_STDOUT_LOG);
  const stderrLog = path.join(logsDir, REMOTE_STDERR_LOG);
  const builder = new ReportBuilder(startedAt, relativePath(reportDir, stdoutLog));
  builder.mergeVersions({ node: process.version });
  const stdoutOut = createWriteStream(stdoutLog);
  const stderrOut = createWriteStream(stderrLog);
  stdoutOut.on('error', () => undefined);
  stderrOut.on('error', () => undefined);
  const markers = new MarkerStream();
  const idleS = opts.idleS ?? DEFAULT_REMOTE_IDLE_S;
  let doneSeen = false;
  let stderrTail = '';
  let lastMarker: string | undefined;

  const failRun = (reason: string): void => {
    if (builder.failed) return;
    builder.fail(REMOTE_RUN, reason);
    emit({ type: 'failure', t: elapsed(), scenario: REMOTE_RUN, reason });
  };
  const protocolError = (message: string, line: string): void => {
    builder.addProtocolError(line === '' ? message : `${message} in line ${JSON.stringify(line.slice(0, 200))}`);
    emit({ type: 'protocol-error', t: elapsed(), message, line });
  };
  const sink = createMarkerSink({
    builder,
    logsDir,
    reportDir,
    reserved: [stdoutLog, stderrLog],
    reservedFor: "the run's own logs",
    emit,
    onProtocolError: protocolError,
  });

  const child = spawn(cmd.command, cmd.args, {
    env: { ...(opts.env ?? process.env), ...cmd.env },
    stdio: ['ignore', 'pipe', 'pipe'],
    // its own process group: stopping it reaches its ssh children too
    detached: true,
  });
  let stopping = false;
  let killTimer: NodeJS.Timeout | undefined;
  const stop = (): void => {
    if (stopping || child.pid === undefined) return;
    stopping = true;
    const pid = child.pid;
    try {
      process.kill(-pid, 'SIGTERM');
    } catch {
      return; // already gone
    }
    killTimer = setTimeout(() => {
      try {
        process.kill(-pid, 'SIGKILL');
      } catch {
        // gone
      }
    }, opts.killGraceMs ?? DEFAULT_REMOTE_KILL_GRACE_MS);
  };
  let idleTimer: NodeJS.Timeout | undefined;
  const touch = (): void => {
    if (idleTimer) clearTimeout(idleTimer);
    if (doneSeen || stopping) return;
    idleTimer = setTimeout(() => {
      failRun(`bench.sh printed no marker for ${idleS} s (last: ${JSON.stringify(lastMarker ?? 'none')}); stopped`);
      stop();
    }, idleS * 1000);
  };

  const onMarkerEvent = (ev: MarkerEvent): void => {
    const t = elapsed();
    switch (ev.kind) {
      case 'line':
        emit({ type: 'serial', t, line: ev.line });
        return;
      case 'log-line':
        touch();
        sink.logLine(ev.name, ev.line);
        return;
      case 'error':
        touch();
        protocolError(ev.message, ev.line);
        return;
      case 'warning':
        return; // only ivctop lines warn, and bench.sh prints none
      case 'marker':
        break;
    }
    touch();
    const m = ev.marker;
    if (m.kind !== 'ivctop') lastMarker = ev.line.slice(Math.max(0, ev.line.indexOf(MARKER_PREFIX)));
    if (sink.apply(m, ev.line, t)) return; // plan, versions, result, log blocks, scenario-start
    switch (m.kind) {
      case 'phase':
        if (m.name === 'remote-failed') {
          failRun(m.detail.join(' ') || 'bench.sh gave up (no detail)');
          return;
        }
        emit({ type: 'phase', t, name: m.name, detail: m.detail });
        return;
      case 'done':
        doneSeen = true;
        if (idleTimer) clearTimeout(idleTimer);
        return;
      case 'ivctop':
        return;
    }
  };

  const onAbort = (): void => {
    const r: unknown = opts.signal?.reason;
    failRun(`interrupted (${typeof r === 'string' ? r : 'abort'}) after ${Math.round(elapsed())} s`);
    stop();
  };
  const exit = new Promise<{ code: number | null; signal: NodeJS.Signals | null; error?: Error }>((resolve) => {
    child.once('error', (error) => resolve({ code: null, signal: null, error }));
    child.once('close', (code, signal) => resolve({ code, signal }));
  });
  child.stdout?.on('data', (chunk: Buffer) => {
    stdoutOut.write(chunk);
    for (const ev of markers.push(chunk)) onMarkerEvent(ev);
  });
  child.stderr?.on('data', (chunk: Buffer) => {
    stderrOut.write(chunk);
    stderrTail = (stderrTail + chunk.toString('utf8')).slice(-2000);
  });
  if (opts.signal?.aborted) onAbort();
  else opts.signal?.addEventListener('abort', onAbort, { once: true });
  touch();

  const end = await exit;
  opts.signal?.removeEventListener('abort', onAbort);
  if (idleTimer) clearTimeout(idleTimer);
  if (killTimer) clearTimeout(killTimer);
  for (const ev of markers.end({ cutShort: !doneSeen })) onMarkerEvent(ev);
  if (end.error !== undefined) {
    failRun(`cannot run ${cmd.command} ${cmd.args.join(' ')}: ${end.error.message}`);
  } else if (!doneSeen) {
    const how = end.signal !== null ? `was killed by ${end.signal}` : `exited with code ${String(end.code)}`;
    const err = stderrTail.trim() === '' ? '' : `; its stderr: ${quoteTail(stderrTail)}`;
    failRun(`bench.sh ${how} before it reported done (last marker: ${JSON.stringify(lastMarker ?? 'none')})${err}`);
  }
  if (!builder.failed && !builder.hasScenarios()) failRun('bench.sh reported done without any scenario');
  await Promise.all([endStream(stdoutOut), endStream(stderrOut), sink.closeAll()]);
  const report = builder.build({
    durationS: elapsed(),
    whyEnded: builder.failureReason ?? 'bench.sh reported done without it',
  });
  await writeReport(reportPath, report);
  emit({ type: 'report', t: elapsed(), path: reportPath, report });
  return { report, reportPath };
}
