import { spawn } from 'node:child_process';
import { chmod, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import test, { type ExecutionContext } from 'ava';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const cli = path.join(root, 'tui', 'src', 'cli.ts');

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

function runCli(
  args: string[],
  opts: { onSpawn?: (pid: number) => void; cwd?: string; env?: Record<string, string> } = {},
): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', cli, ...args], {
      cwd: opts.cwd ?? root,
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, FASTIVC_DEM_MOCK: '', FASTIVC_DEM_MOCK_STATE: '', ...opts.env },
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
    if (child.pid !== undefined) opts.onSpawn?.(child.pid);
  });
}

async function labFiles(t: ExecutionContext, transcript: string, then: 'exit' | 'hang') {
  const dir = await mkdtemp(path.join(tmpdir(), 'fastivc-cli-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  for (const f of ['xen', 'vmlinuz', 'initrd', 'disk']) await writeFile(path.join(dir, f), f);
  const qemu = path.join(dir, 'qemu');
  const fixture = path.join(root, 'test', 'fixtures', 'serial', transcript);
  await writeFile(
    qemu,
    `#!/bin/sh\n[ "$1" = --version ] && { echo 'QEMU emulator version 0 (fake)'; exit 0; }\n` +
      `echo $$ > '${dir}/pid'\ncat '${fixture}'\n${then === 'exit' ? 'exit 0' : 'exec sleep 300'}\n`,
  );
  await chmod(qemu, 0o755);
  const args = ['lab', 'run', '--qemu', qemu];
  for (const f of ['xen', 'kernel', 'initrd', 'disk']) args.push(`--${f}`, path.join(dir, f === 'kernel' ? 'vmlinuz' : f));
  args.push('--report', path.join(dir, 'out', 'report.json'), '--logs', path.join(dir, 'out', 'logs'));
  return { dir, args };
}

test('version prints the package version', async (t) => {
  const r = await runCli(['version']);
  t.is(r.code, 0);
  t.regex(r.stdout, /^fastivc 0\.\d+\.\d+ \(node v\d+/);
  const v = await runCli(['--version']);
  t.is(v.code, 0);
  t.regex(v.stdout, /^\d+\.\d+\.\d+\n$/);
});

test('a bad number is one line on stderr and exit code 2', async (t) => {
  const r = await runCli(['lab', 'run', '--xen', 'x', '--kernel', 'k', '--initrd', 'i', '--disk', 'd', '--timeout-dom0', 'soon']);
  t.is(r.code, 2);
  t.is(r.stdout, '');
  const lines = r.stderr.trimEnd().split('\n');
  t.is(lines.length, 1, r.stderr);
  t.regex(lines[0] ?? '', /^error: option '--timeout-dom0 <seconds>' argument 'soon' is invalid\. expected a positive number of seconds\.$/);
  t.notRegex(r.stderr, /\bat .*\.ts:\d+/);

  const neg = await runCli(['lab', 'run', '--xen', 'x', '--kernel', 'k', '--initrd', 'i', '--disk', 'd', '--timeout-idle', '-3']);
  t.is(neg.code, 2);
  t.is(neg.stderr.trimEnd().split('\n').length, 1, neg.stderr);
});

test('a missing required option is one line and exit code 2', async (t) => {
  const r = await runCli(['lab', 'run', '--xen', 'x']);
  t.is(r.code, 2);
  t.is(r.stderr.trimEnd().split('\n').length, 1, r.stderr);
  t.regex(r.stderr, /required option '--kernel <file>'/);
});

test('lab run with a fake QEMU: exit 0 on a passing run, progress on stderr', async (t) => {
  const { dir, args } = await labFiles(t, 'success.txt', 'exit');
  const r = await runCli(args);
  t.is(r.code, 0, r.stderr);
  t.regex(r.stderr, /\[ +\d+s\] dom0 up\n/);
  t.regex(r.stderr, /\[ +\d+s\] > bulk-64KiB-domU-domU-tcp\n/);
  t.regex(r.stderr, /PASS bulk-64KiB-domU-domU-tunnel {2}throughput_MBps=13 /);
  t.regex(r.stderr, /\nPASS: 3 passed, 0 failed/);
  const report = JSON.parse(await readFile(path.join(dir, 'out', 'report.json'), 'utf8')) as { pass: boolean };
  t.true(report.pass);
});

test('lab run: SIGINT stops QEMU, writes a failed report and exits 1', async (t) => {
  const { dir, args } = await labFiles(t, 'dom0-up-then-hang.txt', 'hang');
  let cliPid = 0;
  const pending = runCli(args, { onSpawn: (pid) => (cliPid = pid) });
  // Wait for the fake QEMU to start and print, then interrupt the CLI only (not its process group).
  const deadline = Date.now() + 20_000;
  for (;;) {
    const log = await readFile(path.join(dir, 'out', 'logs', 'serial.log'), 'utf8').catch(() => '');
    if (log.includes('scenario-start')) break;
    if (Date.now() > deadline) t.fail('fake QEMU never produced output');
    await new Promise((r) => setTimeout(r, 100));
  }
  process.kill(cliPid, 'SIGINT');
  const r = await pending;
  t.is(r.code, 1, r.stderr);
  const report = JSON.parse(await readFile(path.join(dir, 'out', 'report.json'), 'utf8')) as {
    scenarios: { name: string; reason?: string }[];
  };
  t.regex(report.scenarios.at(-1)?.reason ?? '', /^runner interrupted \(SIGINT\)/);
  const qemuPid = Number(await readFile(path.join(dir, 'pid'), 'utf8'));
  t.throws(() => process.kill(qemuPid, 0), { code: 'ESRCH' });
});

test('map: bad arguments are one error line and exit code 2, before any Xen access', async (t) => {
  const r = await runCli(['map', 'set', '10.0.0.300', '1']);
  t.is(r.code, 2);
  t.is(r.stdout, '');
  t.is(r.stderr, "error: command-argument value '10.0.0.300' is invalid for argument 'ip'. expected an IPv4 address a.b.c.d or an IPv6 address.\n");
  const d = await runCli(['map', 'del', '10.0.0.3', '40000']);
  t.is(d.code, 2);
  t.is(d.stderr, "error: command-argument value '40000' is invalid for argument 'domid'. expected a domain id, an integer 0..32751.\n");
});

test('map with FASTIVC_DEM_MOCK=1: set, list and del across runs through the state file', async (t) => {
  const dir = await mkdtemp(path.join(tmpdir(), 'fastivc-cli-map-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const env = { FASTIVC_DEM_MOCK: '1', FASTIVC_DEM_MOCK_STATE: path.join(dir, 'dem.json') };
  t.is((await runCli(['map', 'set', '10.0.0.2', '1'], { env })).code, 0);
  t.is((await runCli(['map', 'set', '10.0.0.3', '2'], { env })).code, 0);
  t.is((await runCli(['map', 'set', '2001:DB8::0003', '2'], { env })).code, 0);
  const list = await runCli(['map', 'list'], { env });
  t.is(list.code, 0, list.stderr);
  t.is(list.stdout, 'ADDRESS      DOMID\n10.0.0.2         1\n10.0.0.3         2\n2001:db8::3      2\n');
  t.is((await runCli(['map', 'del', '10.0.0.2'], { env })).code, 0);
  const json = await runCli(['map', 'list', '--json'], { env });
  t.deepEqual(JSON.parse(json.stdout), [{ addr: '10.0.0.3', domid: 2 }, { addr: '2001:db8::3', domid: 2 }]);
  const again = await runCli(['map', 'del', '10.0.0.2'], { env });
  t.is(again.code, 1);
  t.is(again.stderr, 'fastivc: ip_del: 10.0.0.2 is not in the table\n');
});

test('map: a refused hypercall is one "fastivc:" line, exit code 1, no stack trace', async (t) => {
  const r = await runCli(['map', 'set', '10.0.0.2', '1'], { env: { FASTIVC_DEM_MOCK: 'unprivileged' } });
  t.is(r.code, 1);
  t.is(r.stdout, '');
  t.is(r.stderr, 'fastivc: the DEM refused: this domain is not privileged (run in dom0)\n');
  const n = await runCli(['dem', 'info'], { env: { FASTIVC_DEM_MOCK: 'nodem' } });
  t.is(n.code, 1);
  t.is(n.stderr, 'fastivc: the hypervisor has no Domain Event Manager (not a fastivc Xen, or booted with evtmgr=0)\n');
});
