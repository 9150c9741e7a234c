/**
 * `fastivc bench ...`: the experiments (tui/src/bench/experiments.ts).
 *
 *   fastivc bench list                              what each experiment is
 *   fastivc bench run [EXP...] [--repeat N]         lab experiments in one lab boot, then the host one; live progress
 *                                                   on stderr; tables, CSV, JSON and SVG under build/experiments/
 *   fastivc bench run [EXP...] --remote D1,D2       the lab experiments on a real host: from this dom0 against two
 *       [--via ssh|agent] [--ssh-key F] [--addr A1,A2]   real domUs (lab/guest/remote/bench.sh, tui/src/bench/remote.ts),
 *                                                   no QEMU; the same files, remote-report.json next to them
 *   fastivc bench report LAB_REPORT                 the same files from the points of an existing lab report (the
 *                                                   test run's quick sweep, or a run that was interrupted)
 *   fastivc bench plot [EXP...]                     the tables and files again from results.json (after a change to
 *                                                   the plots, or with results.json from elsewhere)
 *
 * Exit status: 0 when every point measured, 1 when a point or the lab failed (the files are written all the same,
 * with the failed points listed in results.json).
 */
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { access } from 'node:fs/promises';
import { Option, type Command } from 'commander';
import { formatElapsed } from '../../../lab/runner/progress.js';
import { DEFAULT_QEMU, shellQuote } from '../../../lab/runner/qemu.js';
import type { Report } from '../../../lab/runner/report.js';
import { runLab } from '../../../lab/runner/run.js';
import { EXPERIMENTS, selectExperiments, type Experiment } from '../bench/experiments.js';
import { pointValue, sweepPrinter, SweepProgress } from '../bench/progress.js';
import {
  DEFAULT_OUT_DIR,
  hostHardware,
  labResults,
  medianTable,
  readExperiment,
  sourceHardware,
  versionsWithoutHardware,
  writeExperiment,
  type ExperimentResults,
  type PointScenario,
} from '../bench/results.js';
import {
  REMOTE_REPORT_NAME,
  VIAS,
  defaultRemoteContext,
  parseAddrs,
  parseRemote,
  remoteCommand,
  remoteFlagsProblem,
  remoteSelection,
  runRemote,
  type Via,
} from '../bench/remote.js';
import { DEFAULT_RINGBENCH, ringPlan, runRingSweep } from '../bench/ring.js';
import type { CliDeps } from '../deps.js';
import { parsePositiveInt, parseText } from '../options.js';

/** Repetitions of each point by default: enough for a median and a spread in one command. */
export const DEFAULT_REPEAT = 3;
/** Longest lab run for a full sweep of every lab experiment (a quick one takes a few minutes). */
const BENCH_LAB_TOTAL_S = 7200;

interface BenchRunFlags {
  repeat: number;
  quick?: boolean;
  out: string;
  qemu: string;
  xen: string;
  kernel: string;
  initrd: string;
  disk: string;
  ringbench: string;
  verbose?: boolean;
  /** --remote: [user@]host of two real domUs; no lab boot. */
  remote?: string[];
  via: Via;
  sshKey?: string;
  addr?: string[];
}

/** The dom0 command-line options that select the lab experiments (lab/guest/scenarios/experiments.sh). */
export function benchCmdline(ids: readonly string[], repeat: number, quick: boolean): string {
  return [`fastivc.bench=${ids.join(',')}`, `fastivc.bench_repeat=${repeat}`, ...(quick ? ['fastivc.bench_quick=1'] : [])].join(' ');
}

async function writeAll(
  deps: CliDeps,
  out: string,
  results: Iterable<ExperimentResults>,
  source: Record<string, unknown>,
): Promise<Tally> {
  let failed = 0;
  let measured = 0;
  for (const r of results) {
    const files = await writeExperiment(out, r, source);
    deps.out(`\n${medianTable(r)}`);
    if (r.failed.length > 0) {
      deps.out(`${r.failed.length} point(s) failed:\n`);
      for (const f of r.failed.slice(0, 10)) deps.out(`  ${f.name}: ${f.reason}\n`);
    }
    deps.out(`written: ${files.join(' ')}\n`);
    failed += r.failed.length;
    measured += r.samples.length;
  }
  return { measured, failed };
}

/** Points measured and failed (lab steps that failed count as failed). */
interface Tally {
  measured: number;
  failed: number;
}

function add(a: Tally, b: Tally): Tally {
  return { measured: a.measured + b.measured, failed: a.failed + b.failed };
}

/** The closing line: the plain "N passed, N failed" that ./build.sh test counts. */
function closing(deps: CliDeps, t: Tally): number {
  deps.err(`bench: ${t.measured} passed, ${t.failed} failed\n`);
  return t.failed === 0 ? 0 : 1;
}

async function benchRun(deps: CliDeps, names: string[], flags: BenchRunFlags, viaGiven = false): Promise<number> {
  const problem = remoteFlagsProblem(flags, viaGiven);
  if (problem !== undefined) throw new Error(problem);
  const chosen = selectExperiments(names);
  const quick = flags.quick === true;
  let lab = chosen.filter((e) => e.where === 'lab');
  let host = chosen.filter((e) => e.where === 'host');
  let skipped: string[] = [];
  if (flags.remote !== undefined) {
    const sel = remoteSelection(chosen, names);
    lab = sel.remote;
    host = sel.host;
    skipped = sel.skipped;
    if (flags.sshKey !== undefined) {
      await access(flags.sshKey).catch(() => {
        throw new Error(`cannot read the ssh key ${flags.sshKey ?? ''}`);
      });
    }
  }
  const controller = new AbortController();
  const onSignal = (sig: NodeJS.Signals): void => {
    if (!controller.signal.aborted) {
      deps.err(`\nfastivc: ${sig} received, stopping...\n`);
      controller.abort(sig);
    }
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  let tally: Tally = { measured: 0, failed: 0 };
  try {
    const ran = [...lab, ...host].map((e) => e.id);
    deps.err(
      `bench: ${ran.join(', ') || 'nothing'}; ${flags.repeat} repetition(s) of each point${quick ? ', quick' : ''}; output in ${flags.out}/\n`,
    );
    for (const s of skipped) deps.err(`bench: --remote skips ${s}\n`);
    if (lab.length > 0 && flags.remote !== undefined) {
      tally = add(tally, await remoteSweep(deps, lab, flags, quick, controller.signal));
    } else if (lab.length > 0) {
      const reportPath = path.join(flags.out, 'lab-report.json');
      const { report } = await runLab({
        qemu: flags.qemu,
        xen: flags.xen,
        kernel: flags.kernel,
        initrd: flags.initrd,
        disk: flags.disk,
        reportPath,
        logsDir: path.join(flags.out, 'logs'),
        dom0CmdlineExtra: benchCmdline(
          lab.map((e) => e.id),
          flags.repeat,
          quick,
        ),
        timeouts: { total: BENCH_LAB_TOTAL_S },
        signal: controller.signal,
        onEvent: sweepPrinter({ write: (s: string) => deps.err(s) }, { verbose: flags.verbose === true }),
      });
      tally = add(tally, await writeRun(deps, flags, lab, report, { lab_report: reportPath, run: 'lab' }));
    }
    for (const e of host) {
      if (!controller.signal.aborted) tally = add(tally, await hostSweep(deps, e, flags, quick, controller.signal));
    }
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
  if (controller.signal.aborted) return 1;
  return closing(deps, tally);
}

/**
 * A lab or remote run's report into the experiments' files: its points grouped by experiment (an experiment without
 * any point still gets its files), its failed setup steps counted as failures, the hardware in results.json.
 */
async function writeRun(
  deps: CliDeps,
  flags: BenchRunFlags,
  exps: readonly Experiment[],
  report: Report,
  where: { lab_report: string; run: 'lab' } | { remote_report: string; run: 'remote' },
): Promise<Tally> {
  const byExp = labResults(report.scenarios);
  for (const e of exps) {
    if (!byExp.has(e.id)) byExp.set(e.id, { experiment: e, samples: [], failed: [] });
  }
  const setup = report.scenarios.filter((s) => !s.pass && !s.name.startsWith('bench.'));
  for (const s of setup) deps.err(`${where.run}: ${s.name} failed: ${s.reason ?? '?'}\n`);
  const source: Record<string, unknown> = {
    ...where,
    hardware: sourceHardware(report.versions, where.run),
    versions: versionsWithoutHardware(report.versions),
    quick: flags.quick === true,
    repeat: flags.repeat,
  };
  if (where.run === 'remote') Object.assign(source, { domus: flags.remote, via: flags.via });
  const t = await writeAll(deps, flags.out, byExp.values(), source);
  return { measured: t.measured, failed: t.failed + setup.length };
}

/** The lab experiments from this dom0 against two real domUs (lab/guest/remote/bench.sh); no QEMU. */
async function remoteSweep(
  deps: CliDeps,
  exps: readonly Experiment[],
  flags: BenchRunFlags,
  quick: boolean,
  signal: AbortSignal,
): Promise<Tally> {
  const cmd = remoteCommand(
    {
      domus: flags.remote ?? [],
      via: flags.via,
      ...(flags.sshKey !== undefined ? { sshKey: flags.sshKey } : {}),
      ...(flags.addr !== undefined ? { addrs: flags.addr } : {}),
      experiments: exps.map((e) => e.id),
      repeat: flags.repeat,
      quick,
    },
    defaultRemoteContext(),
  );
  deps.err(`bench: on this host, ${shellQuote([cmd.command, ...cmd.args])} against ${(flags.remote ?? []).join(' and ')} (${flags.via})\n`);
  const reportPath = path.join(flags.out, REMOTE_REPORT_NAME);
  const { report } = await runRemote(cmd, {
    reportPath,
    logsDir: path.join(flags.out, 'logs'),
    signal,
    onEvent: sweepPrinter({ write: (s: string) => deps.err(s) }, { verbose: flags.verbose === true, report: 'remote report' }),
  });
  return writeRun(deps, flags, exps, report, { remote_report: reportPath, run: 'remote' });
}

async function hostSweep(deps: CliDeps, e: Experiment, flags: BenchRunFlags, quick: boolean, signal: AbortSignal): Promise<Tally> {
  const plan = ringPlan(flags.repeat, quick);
  const sweep = new SweepProgress();
  sweep.plan(plan.length);
  const t0 = performance.now();
  const t = (): number => (performance.now() - t0) / 1000;
  deps.err(`${formatElapsed(0)} ${e.id}: ${plan.length} point(s) on this host with ${flags.ringbench}\n`);
  const result = await runRingSweep(
    plan,
    flags.ringbench,
    (p, done) => {
      const view = { experiment: e.id, series: p.series.name, x: p.x, rep: p.rep };
      if (done === false) {
        const line = sweep.startLine(t(), view);
        if (flags.verbose) deps.err(line);
        return;
      }
      const what = done.error !== undefined ? `FAILED: ${done.error}` : pointValue(e.id, { [e.metric]: done.value });
      deps.err(sweep.finishLine(t(), view, done.error === undefined, what));
    },
    undefined,
    signal,
  );
  return writeAll(deps, flags.out, [{ experiment: e, samples: result.samples, failed: result.failed }], {
    host: true,
    hardware: hostHardware(),
    ringbench: flags.ringbench,
    quick,
    repeat: flags.repeat,
  });
}

async function benchReport(deps: CliDeps, file: string, out: string): Promise<number> {
  let parsed: unknown;
  try {
    parsed = JSON.parse(await readFile(file, 'utf8'));
  } catch (e) {
    throw new Error(`cannot read the lab report ${file}: ${e instanceof Error ? e.message : String(e)}`);
  }
  const scenarios = (parsed as { scenarios?: unknown }).scenarios;
  if (!Array.isArray(scenarios)) throw new Error(`${file} is not a lab report (no scenarios)`);
  const byExp = labResults(scenarios as PointScenario[]);
  if (byExp.size === 0) throw new Error(`${file} has no experiment points (bench.* scenarios)`);
  const versions = (parsed as { versions?: unknown }).versions;
  const v = typeof versions === 'object' && versions !== null ? (versions as Record<string, unknown>) : {};
  return closing(deps, await writeAll(deps, out, byExp.values(), { lab_report: file, hardware: sourceHardware(v, 'lab') }));
}

async function benchPlot(deps: CliDeps, names: string[], dir: string): Promise<number> {
  let tally: Tally = { measured: 0, failed: 0 };
  let found = 0;
  for (const e of selectExperiments(names)) {
    let read;
    try {
      read = await readExperiment(dir, e);
    } catch (err) {
      // every experiment by default: skip those never run; one named on the command line must be there
      if (names.length > 0) throw err;
      continue;
    }
    found += 1;
    tally = add(tally, await writeAll(deps, dir, [read.results], read.source));
  }
  if (found === 0) throw new Error(`no results.json under ${dir}/<experiment>/: run fastivc bench run first`);
  return closing(deps, tally);
}

export function registerBenchCommands(program: Command, deps: CliDeps): void {
  const bench = program
    .command('bench')
    .description("the experiments: the thesis' Figures 10-12, round-trip time, the tunnel-size sweep and the ring on the host");

  bench
    .command('list')
    .description('what each experiment measures')
    .action(() => {
      for (const e of EXPERIMENTS) {
        deps.out(`${e.id.padEnd(6)} ${e.where.padEnd(5)} ${e.title}\n${''.padEnd(13)}thesis: ${e.thesis}\n`);
      }
    });

  bench
    .command('run')
    .description(
      'run experiments (default all): the lab ones in one lab boot, then the host one; with --remote the lab ones on a real host instead; writes build/experiments/<id>/',
    )
    .argument('[experiments...]', `ids: ${EXPERIMENTS.map((e) => e.id).join(', ')}, or all`)
    .addOption(new Option('--repeat <n>', 'repetitions of each point (medians and spread)').argParser(parsePositiveInt).default(DEFAULT_REPEAT))
    .option('--quick', 'fewer points and shorter runs (a smoke run, not for conclusions)')
    .option('--out <dir>', 'output folder', parseText, DEFAULT_OUT_DIR)
    .option('--remote <domU1,domU2>', 'no lab: run from this dom0 (as root) against two real domUs, [user@]host each', parseRemote)
    .addOption(new Option('--via <how>', 'with --remote: reach the domUs by ssh, or by their lab-agent').choices(VIAS).default('ssh'))
    .option('--ssh-key <file>', 'with --remote: the ssh identity file', parseText)
    .option('--addr <ip1,ip2>', "with --remote: the domUs' addresses to measure between (default: the host if it is one, else the domU's first global IPv4)", parseAddrs)
    .option('--qemu <bin>', 'QEMU binary', parseText, DEFAULT_QEMU)
    .option('--xen <file>', 'Xen hypervisor image (the one the hypervisor package installs, unpacked by ./build.sh lab)', parseText, 'build/lab/xen')
    .option('--kernel <file>', 'dom0 Linux kernel', parseText, 'build/kernel/vmlinuz')
    .option('--initrd <file>', 'dom0 initrd', parseText, 'build/lab/dom0.img')
    .option('--disk <file>', 'lab input disk', parseText, 'build/lab/input.img')
    .option('--ringbench <file>', 'the host ring benchmark (experiments/ringbench)', parseText, DEFAULT_RINGBENCH)
    .option('--verbose', 'more progress lines')
    .addHelpText(
      'after',
      `
On a real host (--remote): run as root in dom0; each domU needs fastivc.ko loaded (the fastivc-dkms package) and
root logins by ssh key (or a lab-agent on port 7070 with --via agent), and the DEM's table must hold both domUs'
addresses (the fastivc-sync service). ivcbench is copied to a temporary folder in each domU and removed at the end,
the module's parameters are put back. fig11 (FTP from a virtual disk the lab attaches) is lab-only, and ring runs
here only when named. Each remote command may take AGENT_TIMEOUT seconds (default 300). Example:
  fastivc bench run fig12 rtt --remote root@10.0.0.11,root@10.0.0.12 --ssh-key ~/.ssh/id_ed25519`,
    )
    .action(async (names: string[], flags: BenchRunFlags, cmd: Command) => {
      process.exitCode = await benchRun(deps, names, flags, cmd.getOptionValueSource('via') === 'cli');
    });

  bench
    .command('plot')
    .description('tables, CSV and plots again from the results.json files (default: every experiment found)')
    .argument('[experiments...]', `ids: ${EXPERIMENTS.map((e) => e.id).join(', ')}, or all`)
    .option('--out <dir>', 'the folder with <experiment>/results.json', parseText, DEFAULT_OUT_DIR)
    .action(async (names: string[], flags: { out: string }) => {
      process.exitCode = await benchPlot(deps, names, flags.out);
    });

  bench
    .command('report')
    .description('tables, CSV, JSON and plots from the experiment points of an existing lab report')
    .argument('<lab-report>', 'a lab report.json (e.g. build/lab/report.json or build/experiments/lab-report.json)')
    .option('--out <dir>', 'output folder', parseText, DEFAULT_OUT_DIR)
    .action(async (file: string, flags: { out: string }) => {
      process.exitCode = await benchReport(deps, file, flags.out);
    });
}
