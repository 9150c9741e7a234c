/**
 * `fastivc lab run --demo`: the push source, the demo view switching from progress lines to the Ink monitor on the
 * first snapshot (driven by a fake event stream, frames through ink-testing-library), q back to progress, the text
 * view without a terminal, and the command line (argument handling, a whole run against a fake QEMU).
 */
import { spawn } from 'node:child_process';
import { chmod, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import test, { type ExecutionContext } from 'ava';
import { render } from 'ink-testing-library';
// The tests are outside tsconfig's include, so tsx compiles their JSX with the classic runtime: React in scope.
import React from 'react';
import type { LabEvent } from '../lab/runner/events.js';
import type { Report } from '../lab/runner/report.js';
import { buildModel } from '../tui/src/data/model.js';
import { pushSource } from '../tui/src/data/push.js';
import { parseRecording } from '../tui/src/data/replay.js';
import type { Snapshot } from '../tui/src/data/types.js';
import { demoView, snapshotLine } from '../tui/src/ivctop/labDemo.js';

void React;
const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const recording = (): Snapshot[] =>
  parseRecording(readFileSync(path.join(root, 'test/fixtures/ivctop/replay.jsonl'), 'utf8'));

// eslint-disable-next-line no-control-regex
const plain = (s: string | undefined): string => (s ?? '').replace(/\x1b\[[0-9;?]*[A-Za-z]/g, '');

async function until(cond: () => boolean, ms = 3000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond() && Date.now() < end) await new Promise((r) => setTimeout(r, 10));
}

/** A writable that keeps what it got. */
function sink(extra: { columns?: number; rows?: number } = {}) {
  const s = { text: '', write: (c: string) => ((s.text += c), true), ...extra };
  return s;
}

const report = (pass: boolean): Report => ({
  versions: {},
  started_at: new Date(0).toISOString(),
  duration_s: 99,
  pass,
  scenarios: [{ name: 'bulk-64KiB-domU-domU-tunnel', pass, metrics: { throughput_MBps: 13 }, log: 'logs/x.log' }],
});

/** The lab up to its last scenario result. */
const before: LabEvent[] = [
  { type: 'spawned', t: 0, pid: 42, argv: ['qemu'] },
  { type: 'phase', t: 20, name: 'dom0-up', detail: [] },
  { type: 'scenario-start', t: 30, name: 'bulk-64KiB-domU-domU-tunnel' },
  { type: 'result', t: 60, result: { name: 'bulk-64KiB-domU-domU-tunnel', pass: true, metrics: { throughput_MBps: 13 } } },
  { type: 'phase', t: 61, name: 'demo', detail: ['60'] },
];
const snapEvents = (): LabEvent[] => recording().map((snapshot, i) => ({ type: 'ivctop', t: 70 + i, n: i + 1, snapshot }));

test('push source: waits for a snapshot, gives the newest once, keeps it after the end', async (t) => {
  const [a, b, c] = recording();
  const src = pushSource({ name: 'lab dom0' });
  t.is(src.kind, 'stream');
  t.is(src.describe(), 'lab dom0 #0');
  let got: Snapshot | undefined;
  const waiting = src.next().then((s) => (got = s));
  await new Promise((r) => setTimeout(r, 20));
  t.is(got, undefined); // nothing pushed yet: next() waits
  src.push(a!);
  await waiting;
  t.is(got?.time, a!.time);
  src.push(b!);
  src.push(c!);
  t.is((await src.next()).time, c!.time); // the newest, not the queue
  src.push(a!); // older than the newest: ignored
  t.deepEqual([src.count(), src.latest()?.time, src.previous()?.time], [3, c!.time, b!.time]);
  let again: Snapshot | undefined;
  void src.next().then((s) => (again = s));
  await new Promise((r) => setTimeout(r, 20));
  t.is(again, undefined); // nothing newer: waits again
  src.end();
  await until(() => again !== undefined);
  t.is(again?.time, c!.time);
  t.is((await src.next()).time, c!.time);
  t.is(src.describe(), 'lab dom0 #3 (ended)');
  const empty = pushSource({ name: 'e' });
  const p = empty.next();
  empty.end();
  await t.throwsAsync(p, { message: 'e: the stream ended before any snapshot' });
});

test('snapshotLine: tunnels, throughput and bytes on one line', (t) => {
  const [a, b] = recording();
  t.is(
    snapshotLine(2, buildModel(b!, a)),
    'ivctop #2 22:13:21: 2 tunnels, 10M/s, 20M carried | 1-2 192.0.2.11:40312>192.0.2.12:7001 10M/s 20M; ' +
      '0-1 192.0.2.1:5201>192.0.2.11:40400 0B/s 0B',
  );
  t.regex(snapshotLine(1, buildModel(a!)), /^ivctop #1 22:13:20: 2 tunnels, -, \S+ carried \| /);
  const noDem = buildModel({ ...a!, dem: { error: 'no DEM' }, domains: [], errors: ['x'] });
  t.is(snapshotLine(1, noDem), 'ivctop #1 22:13:20: 0 tunnels, -, 0B carried ! DEM: no DEM (+1 more)');
});

function inkView(t: ExecutionContext) {
  const progress = sink();
  const screen = sink({ columns: 120, rows: 31 });
  let inst: ReturnType<typeof render> | undefined;
  let renders = 0;
  let interrupted = 0;
  const view = demoView({
    progress,
    screen,
    tty: true,
    intervalMs: 20,
    width: 120,
    height: 30,
    render: (el) => {
      renders += 1;
      inst = render(el);
      return inst;
    },
    onInterrupt: () => void interrupted++,
  });
  t.teardown(() => {
    view.close();
    inst?.unmount();
  });
  return {
    view,
    progress,
    screen,
    frame: () => plain(inst?.lastFrame()),
    stdin: () => inst!.stdin,
    renders: () => renders,
    interrupted: () => interrupted,
  };
}

test('terminal: progress lines, then the Ink monitor from the first snapshot, then the last frame and the summary', async (t) => {
  const v = inkView(t);
  for (const e of before) v.view.onEvent(e);
  t.is(v.view.mode(), 'progress');
  t.is(v.renders(), 0);
  t.regex(v.progress.text, /\[ +20s\] dom0 up\n/);
  t.regex(v.progress.text, /PASS bulk-64KiB-domU-domU-tunnel {2}throughput_MBps=13/);
  t.regex(v.progress.text, /\[ +61s\] demo: 60 s of traffic between the domUs, ivctop follows\n/);

  const [s1, s2, s3] = snapEvents();
  v.view.onEvent(s1!);
  t.is(v.view.mode(), 'monitor');
  t.is(v.renders(), 1);
  t.true(v.screen.text.startsWith('\x1b[?1049h'), 'the alternate screen');
  await until(() => v.frame().includes('TUNNELS'));
  const f1 = v.frame().split('\n');
  t.regex(f1[0] ?? '', /^ivctop {2}lab dom0 #1 {2}22:13:20 {2}every 0\.02s/);
  t.is(f1[2], 'TUNNELS (2)');
  t.is(f1.at(-1), 'q back to progress  p pause  s sort  f filter by domain');
  // The second snapshot: rates from the two.
  v.view.onEvent(s2!);
  await until(() => v.frame().includes('#2'));
  t.regex(v.frame(), /^1-2 +192\.0\.2\.11:40312 192\.0\.2\.12:7001 +open +4x4K +10M\/s +0B\/s +75%\/0% +200 +20M$/m);
  // Progress while the monitor is up is held back, not written over it.
  const sofar = v.progress.text;
  v.view.onEvent({ type: 'warning', t: 72, message: 'ivctop: malformed JSON, snapshot dropped (x)', line: '' });
  v.view.onEvent(s3!);
  await until(() => v.frame().includes('#3'));
  t.is(v.progress.text, sofar);

  v.view.onEvent({ type: 'done', t: 75 });
  t.is(v.view.mode(), 'ended');
  const screen = plain(v.screen.text);
  t.true(v.screen.text.includes('\x1b[?1049l'), 'the screen given back');
  // The last frame, as text, on the real screen: model of the last two snapshots, no keys line.
  const after = screen.slice(screen.lastIndexOf('ivctop  lab dom0'));
  t.regex(after, /^ivctop {2}lab dom0 #3 \(ended\) {2}22:13:22 /);
  t.regex(after, /^TUNNELS \(\d\)$/m);
  t.notRegex(after, /q back to progress/);
  t.true(after.split('\n').length <= 31);
  const rest = v.progress.text.slice(sofar.length);
  t.regex(rest, /^\[ +72s\] ! warning: ivctop: malformed JSON, snapshot dropped \(x\)\n\[ +75s\] done, waiting for QEMU to exit\n$/);
  v.view.onEvent({ type: 'qemu-exit', t: 76, code: 0, signal: null });
  v.view.onEvent({ type: 'report', t: 77, path: '/r/report.json', report: report(true) });
  t.regex(v.progress.text, /QEMU exited \(code 0\)\n\[ +77s\] report: \/r\/report\.json\n\nscenario .*\n.*PASS.*\nPASS: 1 passed, 0 failed, 99 s\n$/);
});

test('terminal: q closes the monitor, the lab goes on with one plain line per snapshot', async (t) => {
  const v = inkView(t);
  const [s1, s2, s3] = snapEvents();
  for (const e of [...before, s1!]) v.view.onEvent(e);
  await until(() => v.frame().includes('TUNNELS'));
  v.view.onEvent({ type: 'phase', t: 71, name: 'custom', detail: [] });
  v.stdin().write('q');
  await until(() => v.view.mode() === 'returned');
  t.is(v.view.mode(), 'returned');
  t.true(v.screen.text.includes('\x1b[?1049l'));
  t.regex(v.progress.text, /\[ +71s\] phase custom\n\[ +71s\] ivctop view closed \(q\); the lab goes on\n$/);
  v.view.onEvent(s2!);
  t.regex(v.progress.text, /\[ +71s\] ivctop #2 22:13:21: 2 tunnels, 10M\/s, 20M carried \| 1-2 /);
  v.view.onEvent(s3!);
  t.is(v.renders(), 1); // never back to the monitor
  v.view.onEvent({ type: 'done', t: 80 });
  t.notRegex(plain(v.screen.text), /TUNNELS/); // no last frame after q
  t.regex(v.progress.text, /done, waiting for QEMU to exit\n$/);
});

test('terminal: Ctrl-C in the monitor gives the screen back and stops the lab as SIGINT would', async (t) => {
  const v = inkView(t);
  for (const e of [...before, snapEvents()[0]!]) v.view.onEvent(e);
  await until(() => v.frame().includes('TUNNELS'));
  v.stdin().write('\x03');
  await until(() => v.interrupted() > 0);
  t.is(v.interrupted(), 1);
  t.is(v.view.mode(), 'returned');
  // The runner then reports the interruption as a failure, in plain lines.
  v.view.onEvent({ type: 'failure', t: 90, scenario: 'lab-run', reason: 'runner interrupted (SIGINT) after 90 s' });
  t.regex(v.progress.text, /! FAIL lab-run: runner interrupted \(SIGINT\)/);
});

test('terminal: a lab that fails before any snapshot never shows the monitor', (t) => {
  const v = inkView(t);
  for (const e of before) v.view.onEvent(e);
  v.view.onEvent({ type: 'failure', t: 400, scenario: 'lab-run', reason: 'no marker line for 300 s' });
  v.view.onEvent({ type: 'report', t: 401, path: 'r.json', report: report(false) });
  t.is(v.renders(), 0);
  t.is(v.screen.text, '');
  t.regex(v.progress.text, /! FAIL lab-run: no marker line for 300 s\n[\s\S]*FAIL: 0 passed, 1 failed/);
});

test('no terminal: one line per snapshot, the last snapshot as ivctop --once prints it, then the summary', (t) => {
  const progress = sink();
  const screen = sink();
  const view = demoView({ progress, screen, tty: false });
  for (const e of [...before, ...snapEvents()]) view.onEvent(e);
  view.onEvent({ type: 'done', t: 80 });
  view.onEvent({ type: 'report', t: 81, path: 'r.json', report: report(true) });
  t.is(view.mode(), 'ended');
  t.is(screen.text, '');
  const lines = progress.text.split('\n');
  const snaps = lines.filter((l) => /\] ivctop #\d/.test(l));
  t.deepEqual(
    snaps.map((l) => l.replace(/ \|.*/, '')),
    [
      '[  70s] ivctop #1 22:13:20: 2 tunnels, -, 10M carried',
      '[  71s] ivctop #2 22:13:21: 2 tunnels, 10M/s, 20M carried',
      '[  72s] ivctop #3 22:13:22: 2 tunnels, 12M/s, 32M carried',
    ],
  );
  const last = progress.text.indexOf('[  80s] ivctop, the last of 3 snapshots:\n');
  t.true(last > 0, progress.text);
  const once = progress.text.slice(last).split('\n');
  t.regex(once[1] ?? '', /^ivctop {2}lab dom0 #3 \(ended\) {2}22:13:22 {2}every 1s {2}sort:throughput {2}filter:all$/);
  t.is(once[3], 'TUNNELS (2)');
  t.notRegex(progress.text, /q (quit|back)/);
  t.regex(progress.text, /done, waiting for QEMU to exit\n\[ +81s\] report: r\.json\n\n[\s\S]*PASS: 1 passed/);
});

// ---- the command line

function runCli(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', path.join(root, 'tui/src/cli.ts'), ...args], {
      cwd: root,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

test('lab run --demo: a bad length is one clear error line and exit 2', async (t) => {
  const base = ['lab', 'run', '--xen', 'x', '--kernel', 'k', '--initrd', 'i', '--disk', 'd'];
  for (const bad of ['soon', '0', '-5', '1.5', '3601', '']) {
    const r = await runCli([...base, '--demo', bad]);
    t.is(r.code, 2, bad);
    t.is(r.stdout, '');
    const lines = r.stderr.trimEnd().split('\n');
    t.is(lines.length, 1, r.stderr);
    t.is(
      lines[0],
      `error: option '--demo [seconds]' argument '${bad}' is invalid. expected a whole number of seconds, 1..3600.`,
      bad,
    );
  }
  const help = await runCli(['lab', 'run', '--help']);
  t.regex(help.stdout, /--demo \[seconds\]/);
});

async function fakeQemu(t: ExecutionContext) {
  const dir = await mkdtemp(path.join(tmpdir(), 'fastivc-demo-cli-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  for (const f of ['xen', 'vmlinuz', 'initrd', 'disk']) await writeFile(path.join(dir, f), f);
  const qemu = path.join(dir, 'qemu');
  const fixture = path.join(root, 'test', 'fixtures', 'serial', 'demo.txt');
  await writeFile(
    qemu,
    `#!/bin/sh\n[ "$1" = --version ] && { echo 'QEMU emulator version 0 (fake)'; exit 0; }\n` +
      `printf '%s\\n' "$@" > '${dir}/argv'\ncat '${fixture}'\nexit 0\n`,
  );
  await chmod(qemu, 0o755);
  const args = ['lab', 'run', '--qemu', qemu];
  for (const f of ['xen', 'kernel', 'initrd', 'disk']) args.push(`--${f}`, path.join(dir, f === 'kernel' ? 'vmlinuz' : f));
  args.push('--report', path.join(dir, 'out', 'report.json'), '--logs', path.join(dir, 'out', 'logs'));
  return { dir, args };
}

test('lab run --demo without a terminal: fastivc.demo=60 by default, snapshot lines, last snapshot, summary, exit 0', async (t) => {
  const { dir, args } = await fakeQemu(t);
  // --demo without a value, followed by another option.
  const r = await runCli([...args.slice(0, 2), '--demo', ...args.slice(2)]);
  t.is(r.code, 0, r.stderr);
  t.is(r.stdout, '');
  t.regex(await readFile(path.join(dir, 'argv'), 'utf8'), / fastivc\.demo=60,/);
  t.regex(r.stderr, /\] ivctop #1 22:13:20: 2 tunnels, -, /);
  t.regex(r.stderr, /\] ivctop #3 22:13:22: 2 tunnels, 12M\/s, 32M carried \| 1-2 /);
  t.regex(r.stderr, /! warning: ivctop: malformed JSON, snapshot dropped/);
  t.regex(r.stderr, /ivctop, the last of 3 snapshots:\nivctop {2}lab dom0 #3 \(ended\)/);
  t.regex(r.stderr, /\nPASS: 3 passed, 0 failed/);
  const rep = JSON.parse(await readFile(path.join(dir, 'out', 'report.json'), 'utf8')) as Report;
  t.like(rep.demo, { seconds: 60, snapshots: 3, malformed: 1 });
  t.is(rep.demo?.last?.time, 1700000002000);

  const five = await runCli([...args, '--demo', '5']);
  t.is(five.code, 0, five.stderr);
  t.regex(await readFile(path.join(dir, 'argv'), 'utf8'), / fastivc\.demo=5,/);
  // Without --demo: no fastivc.demo, and the snapshots are not printed (the plain progress view).
  const plainRun = await runCli(args);
  t.is(plainRun.code, 0);
  t.notRegex(await readFile(path.join(dir, 'argv'), 'utf8'), /fastivc\.demo/);
  t.notRegex(plainRun.stderr, /ivctop #/);
});
