/**
 * `fastivc lab ...`: the QEMU lab. `lab run` boots it once and writes build/lab/report.json; with `--demo [SECONDS]`
 * dom0 then streams `ivctop --emit` snapshots for SECONDS and the run ends in ivctop (see ivctop/labDemo.tsx).
 */
import { InvalidArgumentError, Option, type Command } from 'commander';
import type { ReactElement } from 'react';
import type { LabEventListener } from '../../../lab/runner/events.js';
import { DEFAULT_QEMU, DEMO_MAX_SECONDS, isDemoSeconds } from '../../../lab/runner/qemu.js';
import { progressPrinter } from '../../../lab/runner/progress.js';
import { DEFAULT_LOGS_DIR, DEFAULT_REPORT_PATH, DEFAULT_TIMEOUTS, runLab, type LabTimeouts } from '../../../lab/runner/run.js';
import { parseSeconds, parseText } from '../options.js';

interface LabRunFlags {
  qemu: string;
  xen: string;
  kernel: string;
  initrd: string;
  disk: string;
  report: string;
  logs: string;
  serialLog?: string;
  fault?: string;
  timeoutFirstOutput?: number;
  timeoutDom0?: number;
  timeoutIdle?: number;
  timeoutTotal?: number;
  timeoutExit?: number;
  xenCmdlineExtra?: string;
  dom0CmdlineExtra?: string;
  verbose?: boolean;
  /** Seconds of demo traffic shown in ivctop after the scenarios. */
  demo?: number;
}

/** Seconds dom0 runs the demo when --demo is given without a value. */
export const DEFAULT_DEMO_SECONDS = 60;

/** --demo's value: a whole number of seconds, 1..DEMO_MAX_SECONDS (it goes on the dom0 command line). */
export function parseDemoSeconds(value: string): number {
  const n = Number(value);
  if (!/^\d+$/.test(value.trim()) || !isDemoSeconds(n)) {
    throw new InvalidArgumentError(`expected a whole number of seconds, 1..${DEMO_MAX_SECONDS}.`);
  }
  return n;
}

/** The demo view on the process's terminal: Ink on stdout when it is a terminal, plain lines on stderr otherwise. */
async function processDemoView(verbose: boolean, onInterrupt: () => void) {
  const { demoView } = await import('../ivctop/labDemo.js');
  const tty = process.stdout.isTTY === true;
  let render: ((el: ReactElement) => { unmount(): void }) | undefined;
  if (tty) {
    const ink = await import('ink');
    render = (el) => ink.render(el, { stdout: process.stdout, exitOnCtrlC: false, patchConsole: false });
  }
  return demoView({
    progress: process.stderr,
    screen: process.stdout,
    tty,
    ...(render ? { render } : {}),
    verbose,
    onInterrupt,
  });
}

/** Runs the lab with progress on stderr; resolves with the process exit code (0 iff the report passed). */
export async function labRun(flags: LabRunFlags): Promise<number> {
  const controller = new AbortController();
  const onSignal = (sig: NodeJS.Signals): void => {
    if (!controller.signal.aborted) {
      process.stderr.write(`\nfastivc: ${sig} received, stopping QEMU...\n`);
      controller.abort(sig);
    }
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  try {
    const timeouts: Partial<LabTimeouts> = {};
    if (flags.timeoutFirstOutput !== undefined) timeouts.firstOutput = flags.timeoutFirstOutput;
    if (flags.timeoutDom0 !== undefined) timeouts.dom0Up = flags.timeoutDom0;
    if (flags.timeoutIdle !== undefined) timeouts.idle = flags.timeoutIdle;
    if (flags.timeoutTotal !== undefined) timeouts.total = flags.timeoutTotal;
    if (flags.timeoutExit !== undefined) timeouts.exit = flags.timeoutExit;
    const verbose = flags.verbose === true;
    const demo = flags.demo !== undefined ? await processDemoView(verbose, () => onSignal('SIGINT')) : undefined;
    const onEvent: LabEventListener = demo ? demo.onEvent : progressPrinter(process.stderr, { verbose });
    try {
      const { report } = await runLab({
        qemu: flags.qemu,
        xen: flags.xen,
        kernel: flags.kernel,
        initrd: flags.initrd,
        disk: flags.disk,
        reportPath: flags.report,
        logsDir: flags.logs,
        ...(flags.serialLog !== undefined ? { serialLog: flags.serialLog } : {}),
        ...(flags.fault !== undefined ? { fault: flags.fault } : {}),
        ...(flags.xenCmdlineExtra !== undefined ? { xenCmdlineExtra: flags.xenCmdlineExtra } : {}),
        ...(flags.dom0CmdlineExtra !== undefined ? { dom0CmdlineExtra: flags.dom0CmdlineExtra } : {}),
        ...(flags.demo !== undefined ? { demo: flags.demo } : {}),
        timeouts,
        signal: controller.signal,
        onEvent,
      });
      return report.pass ? 0 : 1;
    } finally {
      demo?.close();
    }
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
}

function timeoutOption(flag: string, what: string, def: number): Option {
  return new Option(`${flag} <seconds>`, `${what} (default ${def})`).argParser(parseSeconds);
}

export function registerLabCommands(program: Command): void {
  const lab = program.command('lab').description('boot the QEMU lab (patched Xen, dom0, PV domUs) and run scenarios');

  lab
    .command('run')
    .description('boot the lab once, follow the serial console and write the report (exit 0 iff all scenarios pass)')
    .option('--qemu <bin>', 'QEMU binary', parseText, DEFAULT_QEMU)
    .requiredOption('--xen <file>', 'Xen hypervisor image (multiboot)', parseText)
    .requiredOption('--kernel <file>', 'dom0 Linux kernel', parseText)
    .requiredOption('--initrd <file>', 'dom0 initrd', parseText)
    .requiredOption('--disk <file>', 'raw disk image with the lab inputs (attached read-only)', parseText)
    .option('--report <file>', 'report path', parseText, DEFAULT_REPORT_PATH)
    .option('--logs <dir>', 'folder for the serial log and per-scenario logs', parseText, DEFAULT_LOGS_DIR)
    .option('--serial-log <file>', 'serial log path (default <logs>/serial.log)', parseText)
    .option('--fault <name>', 'inject a fault: adds fastivc.fault=<name> to the dom0 command line', parseText)
    .addOption(timeoutOption('--timeout-first-output', 'seconds until the first serial output', DEFAULT_TIMEOUTS.firstOutput))
    .addOption(timeoutOption('--timeout-dom0', 'seconds until dom0 is up', DEFAULT_TIMEOUTS.dom0Up))
    .addOption(timeoutOption('--timeout-idle', 'longest silence between markers after dom0 is up', DEFAULT_TIMEOUTS.idle))
    .addOption(timeoutOption('--timeout-total', 'seconds for the whole run', DEFAULT_TIMEOUTS.total))
    .addOption(timeoutOption('--timeout-exit', 'seconds for QEMU to exit after done', DEFAULT_TIMEOUTS.exit))
    .option('--xen-cmdline-extra <opts>', 'extra Xen command-line options')
    .option('--dom0-cmdline-extra <opts>', 'extra dom0 kernel command-line options')
    .option('--verbose', 'echo the raw serial console')
    .addOption(
      new Option(
        '--demo [seconds]',
        `after the scenarios, dom0 runs traffic between the domUs for SECONDS (default ${DEFAULT_DEMO_SECONDS}) and streams ivctop: ` +
          'shown live (full screen on a terminal, one line per sample otherwise); adds fastivc.demo=SECONDS to the dom0 command line',
      )
        .preset(String(DEFAULT_DEMO_SECONDS))
        .argParser(parseDemoSeconds),
    )
    .action(async (flags: LabRunFlags) => {
      process.exitCode = await labRun(flags);
    });
}
