/**
 * The runner against a FAKE qemu: a small Node script written to a temp dir and passed as `qemu`. It answers
 * --version, records its pid and argv, prints a canned serial transcript (test/fixtures/serial/) in random small
 * chunks, then exits or hangs.
 */
import { chmod, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import test, { type ExecutionContext } from 'ava';
import type { LabEvent } from '../lab/runner/events.js';
import { runLab, type LabRunOptions } from '../lab/runner/run.js';

const fixtures = path.join(path.dirname(fileURLToPath(import.meta.url)), 'fixtures', 'serial');

interface FakeConfig {
  transcript?: string;
  then: 'exit' | 'hang';
  exitCode?: number;
  stderr?: string;
  ignoreTerm?: boolean;
}

const FAKE_QEMU = `#!/usr/bin/env node
'use strict';
const fs = require('fs');
const cfg = JSON.parse(__CONFIG__);
if (cfg.ignoreTerm) process.on('SIGTERM', () => {});
if (process.argv.includes('--version')) {
  process.stdout.write('QEMU emulator version 0.0.0 (fake)\\nCopyright nobody\\n');
  process.exit(0);
}
fs.writeFileSync(cfg.pidFile, String(process.pid));
fs.writeFileSync(cfg.argsFile, JSON.stringify(process.argv.slice(2)));
if (cfg.stderr) process.stderr.write(cfg.stderr);
const data = cfg.transcript ? fs.readFileSync(cfg.transcript) : Buffer.alloc(0);
let i = 0;
function step() {
  if (i >= data.length) return finish();
  const n = 1 + Math.floor(Math.random() * 61);
  process.stdout.write(data.subarray(i, i + n));
  i += n;
  setTimeout(step, 1);
}
function finish() {
  if (cfg.then === 'exit') process.stdout.write('', () => process.exit(cfg.exitCode || 0));
  else setInterval(() => {}, 1 << 30);
}
step();
`;

interface Lab {
  dir: string;
  qemu: string;
  pidFile: string;
  argsFile: string;
  opts: LabRunOptions;
  events: LabEvent[];
}

async function makeLab(t: ExecutionContext, cfg: FakeConfig): Promise<Lab> {
  const dir = await mkdtemp(path.join(tmpdir(), 'fastivc-lab-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const pidFile = path.join(dir, 'fake.pid');
  const argsFile = path.join(dir, 'fake.args');
  const full = {
    ...cfg,
    transcript: cfg.transcript ? path.join(fixtures, cfg.transcript) : undefined,
    pidFile,
    argsFile,
  };
  const qemu = path.join(dir, 'fake-qemu');
  await writeFile(qemu, FAKE_QEMU.replace('__CONFIG__', JSON.stringify(JSON.stringify(full))));
  await chmod(qemu, 0o755);
  for (const f of ['xen.gz', 'vmlinuz', 'initrd.img', 'lab.img']) await writeFile(path.join(dir, f), f);
  const events: LabEvent[] = [];
  return {
    dir,
    qemu,
    pidFile,
    argsFile,
    events,
    opts: {
      qemu,
      xen: path.join(dir, 'xen.gz'),
      kernel: path.join(dir, 'vmlinuz'),
      initrd: path.join(dir, 'initrd.img'),
      disk: path.join(dir, 'lab.img'),
      reportPath: path.join(dir, 'out', 'report.json'),
      logsDir: path.join(dir, 'out', 'logs'),
      timeouts: { firstOutput: 5, dom0Up: 10, idle: 5, total: 30, exit: 5 },
      onEvent: (e) => events.push(e),
    },
  };
}

/** The pid the runner spawned (from its 'spawned' event). */
function spawnedPid(lab: Lab): number {
  const e = lab.events.find((x) => x.type === 'spawned');
  if (e?.type !== 'spawned' || e.pid === undefined) throw new Error('no spawned event with a pid');
  return e.pid;
}

async function fakePid(lab: Lab): Promise<number> {
  const pid = Number(await readFile(lab.pidFile, 'utf8'));
  if (pid !== spawnedPid(lab)) throw new Error(`fake pid ${pid} is not the spawned pid ${spawnedPid(lab)}`);
  return pid;
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

test('successful transcript: report passes and scenario logs are split into files', async (t) => {
  const lab = await makeLab(t, { transcript: 'success.txt', then: 'exit' });
  const { report, reportPath } = await runLab({ ...lab.opts, fault: 'none', dom0CmdlineExtra: 'a=1,2' });

  t.true(report.pass, JSON.stringify(report, null, 2));
  t.deepEqual(JSON.parse(await readFile(reportPath, 'utf8')), report);
  t.deepEqual(
    report.scenarios.map((s) => [s.name, s.pass, s.log]),
    [
      ['bulk-64KiB-domU-domU-tcp', true, 'logs/bulk-64KiB-domU-domU-tcp.log'],
      ['bulk-64KiB-domU-domU-tunnel', true, 'logs/bulk-64KiB-domU-domU-tunnel.log'],
      ['dem-conformance', true, 'logs/serial.log'],
    ],
  );
  t.deepEqual(report.scenarios[1]?.metrics, { throughput_MBps: 13, bytes: 136314880, fallbacks: 0, path: 'tunnel' });
  t.is(report.versions.qemu, 'QEMU emulator version 0.0.0 (fake)');
  t.is(report.versions.xen, '4.17.5');
  t.is(report.versions.node, process.version);
  t.deepEqual((report.versions.inputs as Record<string, unknown>).xen, { file: 'xen.gz', bytes: 6 });
  t.regex(report.started_at, /^\d{4}-\d\d-\d\dT/);

  const tcpLog = await readFile(path.join(lab.dir, 'out', 'logs', 'bulk-64KiB-domU-domU-tcp.log'), 'utf8');
  t.is(tcpLog.split('\n')[0], 'Connecting to host 10.0.0.2, port 5201');
  t.is(tcpLog.split('\n').length, 5); // 4 lines + final newline
  t.false(tcpLog.includes('\r'));
  t.false(tcpLog.includes('@@FASTIVC'));
  const serial = await readFile(path.join(lab.dir, 'out', 'logs', 'serial.log'));
  t.deepEqual(serial, await readFile(path.join(fixtures, 'success.txt')));

  const argv = JSON.parse(await readFile(lab.argsFile, 'utf8')) as string[];
  const recorded = await readFile(path.join(lab.dir, 'out', 'logs', 'qemu-command.txt'), 'utf8');
  t.true(recorded.startsWith(`${lab.qemu} -accel tcg `), recorded);
  t.true(argv[argv.indexOf('-initrd') + 1]?.includes('a=1,,2 fastivc.fault=none,'));

  const types = lab.events.map((e) => e.type);
  t.true(types.includes('spawned'));
  t.true(types.indexOf('done') < types.indexOf('qemu-exit'));
  t.is(types.at(-1), 'report');
  t.false(types.includes('failure'));
  t.false(types.includes('kill'));
  t.false(isAlive(await fakePid(lab)));
});

test('no serial output: lab-boot fails on the first-output timeout and the fake QEMU is killed', async (t) => {
  const lab = await makeLab(t, { then: 'hang' });
  const t0 = Date.now();
  const { report } = await runLab({ ...lab.opts, timeouts: { ...lab.opts.timeouts, firstOutput: 1 } });
  t.true(Date.now() - t0 < 7000, `took ${Date.now() - t0} ms`);
  t.false(report.pass);
  t.is(report.scenarios.length, 1);
  const s = report.scenarios[0];
  t.is(s?.name, 'lab-boot');
  t.is(s?.log, 'logs/serial.log');
  t.regex(s?.reason ?? '', /^no serial output from QEMU within 1 s/);
  t.false(isAlive(spawnedPid(lab)));
  t.deepEqual(
    lab.events.filter((e) => e.type === 'kill').map((e) => (e.type === 'kill' ? e.signal : '')),
    ['SIGTERM'],
  );
});

test('QEMU ignoring SIGTERM is SIGKILLed after the grace period', async (t) => {
  const lab = await makeLab(t, { then: 'hang', ignoreTerm: true });
  const { report } = await runLab({
    ...lab.opts,
    killGraceMs: 500,
    // Long enough for the fake to install its SIGTERM handler even on a loaded machine.
    timeouts: { ...lab.opts.timeouts, firstOutput: 3 },
  });
  t.is(report.scenarios[0]?.name, 'lab-boot');
  t.false(isAlive(await fakePid(lab)));
  t.deepEqual(
    lab.events.filter((e) => e.type === 'kill').map((e) => (e.type === 'kill' ? e.signal : '')),
    ['SIGTERM', 'SIGKILL'],
  );
});

test('dom0 up then silence: lab-run idle failure, planned scenarios fail with the reason', async (t) => {
  const lab = await makeLab(t, { transcript: 'dom0-up-then-hang.txt', then: 'hang' });
  const { report } = await runLab({ ...lab.opts, timeouts: { ...lab.opts.timeouts, idle: 1 } });
  t.false(report.pass);
  const byName = new Map(report.scenarios.map((s) => [s.name, s]));
  const run = byName.get('lab-run');
  t.truthy(run);
  t.regex(
    run?.reason ?? '',
    /^no marker line for 1 s \(idle timeout\) after dom0-up; inside log block bulk-64KiB-domU-domU-tcp; last marker: .*log-begin bulk-64KiB-domU-domU-tcp/,
  );
  t.regex(run?.reason ?? '', /last serial line: "Connecting to host 10\.0\.0\.2, port 5201"/);
  t.false(byName.has('lab-boot'));
  t.deepEqual(byName.get('bulk-64KiB-domU-domU-tcp'), {
    name: 'bulk-64KiB-domU-domU-tcp',
    pass: false,
    metrics: {},
    log: 'logs/bulk-64KiB-domU-domU-tcp.log',
    reason: 'no result: no marker line for 1 s (idle timeout) after dom0-up (the scenario had started)',
  });
  t.is(byName.get('dem-conformance')?.reason, 'no result: no marker line for 1 s (idle timeout) after dom0-up');
  t.false(byName.has('lab-protocol')); // a log block cut by the timeout is not a protocol error
  t.is(
    await readFile(path.join(lab.dir, 'out', 'logs', 'bulk-64KiB-domU-domU-tcp.log'), 'utf8'),
    'Connecting to host 10.0.0.2, port 5201\n',
  );
  t.false(isAlive(await fakePid(lab)));
});

test('QEMU exiting before done fails with its exit code, stderr and last line', async (t) => {
  const lab = await makeLab(t, {
    transcript: 'early-exit.txt',
    then: 'exit',
    exitCode: 1,
    stderr: 'qemu-system-x86_64: fake trouble\n',
  });
  const { report } = await runLab(lab.opts);
  t.false(report.pass);
  const s = report.scenarios.at(-1);
  t.is(s?.name, 'lab-boot');
  t.regex(s?.reason ?? '', /^QEMU exited with code 1 after \d+ s before the run reported done; /);
  t.regex(s?.reason ?? '', /last serial line: "\(XEN\) Manual reset required/);
  t.regex(s?.reason ?? '', /QEMU stderr: "qemu-system-x86_64: fake trouble"/);
  t.is(
    await readFile(path.join(lab.dir, 'out', 'logs', 'qemu-stderr.log'), 'utf8'),
    'qemu-system-x86_64: fake trouble\n',
  );
});

test('QEMU not exiting after done is killed and fails the run', async (t) => {
  const lab = await makeLab(t, { transcript: 'success.txt', then: 'hang' });
  const { report } = await runLab({ ...lab.opts, timeouts: { ...lab.opts.timeouts, exit: 1 } });
  t.false(report.pass);
  t.deepEqual(
    report.scenarios.map((s) => s.pass),
    [true, true, true, false],
  );
  t.regex(report.scenarios[3]?.reason ?? '', /^QEMU did not exit within 1 s after done/);
  t.false(isAlive(await fakePid(lab)));
});

test('the total timeout ends the run', async (t) => {
  const lab = await makeLab(t, { transcript: 'dom0-up-then-hang.txt', then: 'hang' });
  const { report } = await runLab({ ...lab.opts, timeouts: { ...lab.opts.timeouts, total: 1.5 } });
  t.regex(report.scenarios.at(-1)?.reason ?? '', /^the run did not finish within the total timeout of 1\.5 s/);
  t.is(report.scenarios.at(-1)?.name, 'lab-run');
});

test('aborting (SIGINT in the CLI) stops QEMU and records why', async (t) => {
  const lab = await makeLab(t, { transcript: 'dom0-up-then-hang.txt', then: 'hang' });
  const ac = new AbortController();
  const { report } = await runLab({
    ...lab.opts,
    signal: ac.signal,
    onEvent: (e) => {
      lab.events.push(e);
      if (e.type === 'scenario-start') setTimeout(() => ac.abort('SIGINT'), 100);
    },
  });
  t.regex(report.scenarios.at(-1)?.reason ?? '', /^runner interrupted \(SIGINT\) after \d+ s/);
  t.false(isAlive(await fakePid(lab)));
});

test('missing input file: report written with a configuration error, QEMU not started', async (t) => {
  const lab = await makeLab(t, { transcript: 'success.txt', then: 'exit' });
  const { report, reportPath } = await runLab({ ...lab.opts, initrd: path.join(lab.dir, 'nope.img') });
  t.false(report.pass);
  t.is(report.scenarios[0]?.name, 'lab-boot');
  t.regex(report.scenarios[0]?.reason ?? '', /^configuration error, QEMU not started: dom0 initrd not found: /);
  t.deepEqual(JSON.parse(await readFile(reportPath, 'utf8')), report);
  await t.throwsAsync(readFile(lab.pidFile));
});

test('a QEMU binary that does not exist fails lab-boot cleanly', async (t) => {
  const lab = await makeLab(t, { then: 'exit' });
  const { report } = await runLab({ ...lab.opts, qemu: path.join(lab.dir, 'no-such-qemu') });
  t.false(report.pass);
  t.regex(report.scenarios[0]?.reason ?? '', /^cannot start QEMU .*ENOENT/);
  t.regex(String(report.versions.qemu), /unknown/);
});

test('dom0 reporting failure before dom0-up fails lab-boot with its reason', async (t) => {
  const lab = await makeLab(t, { transcript: 'dom0-failed.txt', then: 'exit' });
  const { report } = await runLab(lab.opts);
  t.false(report.pass);
  t.deepEqual(report.scenarios, [
    {
      name: 'lab-boot',
      pass: false,
      metrics: {},
      log: 'logs/serial.log',
      reason: 'dom0 reported failure: no input disk /dev/vda',
    },
  ]);
});

test('a run that reports done without any scenario fails with an explanation', async (t) => {
  const lab = await makeLab(t, { transcript: 'empty-run.txt', then: 'exit' });
  const { report } = await runLab(lab.opts);
  t.false(report.pass);
  t.is(report.scenarios.length, 1);
  t.is(report.scenarios[0]?.name, 'lab-run');
  t.regex(report.scenarios[0]?.reason ?? '', /done without any scenario/);
});
