/**
 * QEMU for the lab: the command line (pure, unit-tested), spawning, version query and killing.
 *
 * The lab boots Xen as a multiboot kernel: `-kernel xen -append <xen cmdline>`, and the dom0 kernel and initrd as
 * multiboot modules: `-initrd "<kernel> <dom0 cmdline>,<initrd>"`. QEMU splits that argument at commas, with ",,"
 * standing for a literal comma, so commas in the dom0 command line are doubled. File paths with commas or spaces
 * cannot be expressed safely and are rejected.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';

export const DEFAULT_QEMU = 'qemu-system-x86_64';
export const DEFAULT_MEM_MIB = 3072;
export const DEFAULT_XEN_CMDLINE =
  'console=com1 com1=115200,8n1 dom0_mem=1536M,max:1536M loglvl=all guest_loglvl=all noreboot';
export const DEFAULT_DOM0_CMDLINE = 'console=hvc0 earlyprintk=xen rdinit=/init loglevel=4';
/** Kernel parameter the dom0 init script reads to inject a fault. */
export const FAULT_PARAM = 'fastivc.fault';
/** Kernel parameter asking dom0 for the demo: after its scenarios, traffic and `ivctop --emit` for SECONDS. */
export const DEMO_PARAM = 'fastivc.demo';
/** Longest demo (seconds): it runs inside the lab's total timeout. */
export const DEMO_MAX_SECONDS = 3600;

export interface QemuCommandOptions {
  /** Xen hypervisor image (multiboot ELF), passed as -kernel. */
  xen: string;
  /** dom0 Linux kernel (first multiboot module). */
  kernel: string;
  /** dom0 initrd (second multiboot module). */
  initrd: string;
  /** Raw disk image with the lab inputs, attached read-only as virtio. */
  disk: string;
  memMiB?: number;
  /** Appended to DEFAULT_XEN_CMDLINE. */
  xenCmdlineExtra?: string;
  /** Appended to DEFAULT_DOM0_CMDLINE. */
  dom0CmdlineExtra?: string;
  /** Fault to inject: adds fastivc.fault=<name> to the dom0 command line. */
  fault?: string;
  /** Demo seconds: adds fastivc.demo=<seconds> to the dom0 command line (an integer 1..DEMO_MAX_SECONDS). */
  demo?: number;
}

/** A problem with the lab's configuration (bad path, bad option): reported before QEMU starts. */
export class LabConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'LabConfigError';
  }
}

const FAULT_RE = /^[A-Za-z0-9_][A-Za-z0-9._:-]*$/;

function joinCmdline(base: string, extra: string | undefined): string {
  const e = (extra ?? '').trim();
  return e === '' ? base : `${base} ${e}`;
}

export function xenCmdline(opts: Pick<QemuCommandOptions, 'xenCmdlineExtra'>): string {
  return joinCmdline(DEFAULT_XEN_CMDLINE, opts.xenCmdlineExtra);
}

/** True for a usable demo length: a whole number of seconds, 1..DEMO_MAX_SECONDS. */
export function isDemoSeconds(n: unknown): n is number {
  return typeof n === 'number' && Number.isInteger(n) && n >= 1 && n <= DEMO_MAX_SECONDS;
}

export function dom0Cmdline(opts: Pick<QemuCommandOptions, 'dom0CmdlineExtra' | 'fault' | 'demo'>): string {
  let line = joinCmdline(DEFAULT_DOM0_CMDLINE, opts.dom0CmdlineExtra);
  if (opts.fault !== undefined) {
    if (!FAULT_RE.test(opts.fault)) {
      throw new LabConfigError(`invalid fault name ${JSON.stringify(opts.fault)} (letters, digits, . _ : - only)`);
    }
    line += ` ${FAULT_PARAM}=${opts.fault}`;
  }
  if (opts.demo !== undefined) {
    if (!isDemoSeconds(opts.demo)) {
      throw new LabConfigError(`demo length must be a whole number of seconds 1..${DEMO_MAX_SECONDS}, got ${String(opts.demo)}`);
    }
    line += ` ${DEMO_PARAM}=${opts.demo}`;
  }
  return line;
}

/** Escapes text for one element of QEMU's comma-separated option syntax: every ',' becomes ',,'. */
export function escapeQemuCommas(s: string): string {
  return s.replace(/,/g, ',,');
}

/** Rejects paths QEMU's option syntax cannot carry safely (commas, whitespace, control characters, empty). */
export function checkQemuPath(what: string, p: string): void {
  if (p === '') throw new LabConfigError(`${what}: empty path`);
  if (p.includes(',')) throw new LabConfigError(`${what}: path must not contain a comma: ${JSON.stringify(p)}`);
  if (/\s/.test(p)) throw new LabConfigError(`${what}: path must not contain spaces: ${JSON.stringify(p)}`);
  // eslint-disable-next-line no-control-regex
  if (/[\x00-\x1f\x7f]/.test(p)) {
    throw new LabConfigError(`${what}: path must not contain control characters: ${JSON.stringify(p)}`);
  }
}

/** Builds QEMU's argument vector (without the binary). Throws LabConfigError for unusable inputs. */
export function buildQemuArgs(opts: QemuCommandOptions): string[] {
  checkQemuPath('xen', opts.xen);
  checkQemuPath('kernel', opts.kernel);
  checkQemuPath('initrd', opts.initrd);
  checkQemuPath('disk', opts.disk);
  const mem = opts.memMiB ?? DEFAULT_MEM_MIB;
  if (!Number.isInteger(mem) || mem < 256) throw new LabConfigError(`memory must be an integer >= 256 MiB, got ${mem}`);
  const xen = xenCmdline(opts);
  const dom0 = dom0Cmdline(opts);
  if (/[\n\r]/.test(xen) || /[\n\r]/.test(dom0)) throw new LabConfigError('kernel command lines must be one line');
  return [
    '-accel', 'tcg',
    '-cpu', 'qemu64',
    '-m', String(mem),
    '-smp', '2',
    '-display', 'none',
    '-monitor', 'none',
    '-serial', 'stdio',
    '-no-reboot',
    // The lab is a closed world: dom0's bridge connects the guests, and the machine gets no network card at all.
    '-nic', 'none',
    '-kernel', opts.xen,
    '-append', xen,
    '-initrd', `${opts.kernel} ${escapeQemuCommas(dom0)},${opts.initrd}`,
    '-drive', `file=${opts.disk},format=raw,if=virtio,readonly=on`,
  ];
}

/** Renders an argv for humans (logs, progress), quoting arguments that need it for a POSIX shell. */
export function shellQuote(argv: readonly string[]): string {
  return argv.map((a) => (/^[A-Za-z0-9_./:=,@%+-]+$/.test(a) ? a : `'${a.replace(/'/g, `'\\''`)}'`)).join(' ');
}

/** First line of `<qemu> --version`, or undefined if it cannot be run within timeoutMs. */
export function qemuVersion(qemu: string, timeoutMs = 10_000): Promise<string | undefined> {
  return new Promise((resolve) => {
    try {
      execFile(qemu, ['--version'], { timeout: timeoutMs, killSignal: 'SIGKILL' }, (err, stdout) => {
        const first = String(stdout ?? '').split('\n')[0]?.trim();
        resolve(err || !first ? undefined : first);
      });
    } catch {
      resolve(undefined);
    }
  });
}

/** Starts QEMU with stdin closed and the serial console (stdout) and QEMU's own messages (stderr) piped. */
export function spawnQemu(qemu: string, args: readonly string[]): ChildProcess {
  return spawn(qemu, args, { stdio: ['ignore', 'pipe', 'pipe'] });
}

export function hasExited(child: ChildProcess): boolean {
  return child.exitCode !== null || child.signalCode !== null;
}

function waitExit(child: ChildProcess, ms: number): Promise<boolean> {
  if (hasExited(child)) return Promise.resolve(true);
  return new Promise((resolve) => {
    const timer = setTimeout(() => {
      child.off('exit', onExit);
      resolve(hasExited(child));
    }, ms);
    const onExit = (): void => {
      clearTimeout(timer);
      resolve(true);
    };
    child.once('exit', onExit);
  });
}

/**
 * Stops the process we spawned: SIGTERM to its pid, SIGKILL after graceMs. Signals only go to this child's own pid
 * and only while it has not been reaped, so a recycled pid is never hit. Resolves with the signal that was last
 * sent (undefined if the process had already exited).
 */
export async function killQemu(
  child: ChildProcess,
  graceMs = 5000,
  onSignal?: (signal: 'SIGTERM' | 'SIGKILL') => void,
): Promise<'SIGTERM' | 'SIGKILL' | undefined> {
  if (hasExited(child) || child.pid === undefined) return undefined;
  onSignal?.('SIGTERM');
  child.kill('SIGTERM');
  if (await waitExit(child, graceMs)) return 'SIGTERM';
  if (hasExited(child)) return 'SIGTERM';
  onSignal?.('SIGKILL');
  child.kill('SIGKILL');
  await waitExit(child, 5000);
  return 'SIGKILL';
}
