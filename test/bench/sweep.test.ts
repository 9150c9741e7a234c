/**
 * `fastivc bench`: the experiment catalogue, the lab points -> samples, the live progress, the host ring sweep and
 * the command end to end against a fake QEMU that plays a recorded fig12 sweep (one point failed).
 */
import { spawn } from 'node:child_process';
import { chmod, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import test from 'ava';
import { selectExperiments } from '../../tui/src/bench/experiments.js';
import { SweepProgress, formatDuration, sweepPrinter } from '../../tui/src/bench/progress.js';
import { labResults, parsePointName, xFromName } from '../../tui/src/bench/results.js';
import { ringBytes, ringPlan, runRingSweep, type RingRunner } from '../../tui/src/bench/ring.js';
import { benchCmdline } from '../../tui/src/commands/bench.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const cli = path.join(root, 'tui', 'src', 'cli.ts');

test('experiments are selected in catalogue order, all by default, unknown names named in the error', (t) => {
  t.deepEqual(
    selectExperiments(['rtt', 'fig10', 'rtt']).map((e) => e.id),
    ['fig10', 'rtt'],
  );
  t.is(selectExperiments([]).length, 7);
  t.is(selectExperiments(['all', 'fig10']).length, 7);
  const e = t.throws(() => selectExperiments(['fig10', 'fig13']));
  t.regex(e?.message ?? '', /unknown experiment fig13: choose from fig10, fig11, fig12, rtt, geom, geomrr, ring or all/);
});

test('the dom0 command line names the lab experiments, the repetitions and quick', (t) => {
  t.is(benchCmdline(['fig10', 'rtt'], 3, false), 'fastivc.bench=fig10,rtt fastivc.bench_repeat=3');
  t.is(benchCmdline(['fig12'], 1, true), 'fastivc.bench=fig12 fastivc.bench_repeat=1 fastivc.bench_quick=1');
});

test('point names carry experiment, series, x and repetition', (t) => {
  t.deepEqual(parsePointName('bench.fig10.tunnel-8.16MiB.r3'), { experiment: 'fig10', series: 'tunnel-8', rep: 3 });
  t.is(xFromName('bench.fig10.tunnel-8.16MiB.r3'), 16 << 20);
  t.is(xFromName('bench.rtt.tcp.64KiB.r1'), 65536);
  t.is(xFromName('bench.rtt.tcp.1B.r1'), 1);
  t.is(parsePointName('bench-setup-ftp-disk'), undefined);
  t.is(parsePointName('bulk-64KiB-domU-domU-tunnel'), undefined);
  t.is(parsePointName('bench.fig10.tcp.64KiB'), undefined);
});

test('lab points: passing ones become samples with numeric metrics only, failing ones are listed with the reason', (t) => {
  const byExp = labResults([
    { name: 'kmod-load-tunnel', pass: true, metrics: { channels: 4 } },
    {
      name: 'bench.fig10.tcp.4KiB.r1',
      pass: true,
      metrics: { experiment: 'fig10', series: 'tcp', x: 4096, rep: 1, throughput_MBps: 1.5, verified: true, note: 'x' },
    },
    { name: 'bench.fig10.tunnel-2.4KiB.r1', pass: false, metrics: {}, reason: 'fell back to TCP' },
    { name: 'bench.rtt.tcp.1B.r2', pass: true, metrics: { experiment: 'rtt', series: 'tcp', x: 1, rep: 2 } },
  ]);
  t.deepEqual([...byExp.keys()], ['fig10', 'rtt']);
  const f10 = byExp.get('fig10');
  t.deepEqual(f10?.samples, [{ series: 'tcp', x: 4096, rep: 1, values: { throughput_MBps: 1.5 } }]);
  t.deepEqual(f10?.failed, [{ name: 'bench.fig10.tunnel-2.4KiB.r1', series: 'tunnel-2', x: 4096, rep: 1, reason: 'fell back to TCP' }]);
  // a point that passed without its experiment's metric is not a sample
  t.is(byExp.get('rtt')?.samples.length, 0);
  t.regex(byExp.get('rtt')?.failed[0]?.reason ?? '', /no latency_us_p50/);
});

test('progress: position and time left from the mean point time', (t) => {
  const p = new SweepProgress();
  p.plan(10);
  t.is(p.left(), undefined);
  p.start(100);
  t.is(p.position(true), '1/10');
  p.finish(104, true);
  p.finish(108, false);
  t.is(p.position(false), '2/10');
  t.is(p.left(), 32);
  t.is(p.failed, 1);
  t.is(formatDuration(32), '32s');
  t.is(formatDuration(600), '10m');
  t.is(formatDuration(3900), '1h05m');
});

test('the sweep printer shows each point with its value and the time left', (t) => {
  let out = '';
  const print = sweepPrinter({ write: (s: string) => (out += s) });
  print({ type: 'plan', t: 1, names: ['boot-xen-dom0-domUs', 'bench.rtt.tcp.1B.r1', 'bench.rtt.tunnel-4.1B.r1'] });
  print({ type: 'scenario-start', t: 10, name: 'bench.rtt.tcp.1B.r1' });
  print({
    type: 'result',
    t: 14,
    result: { name: 'bench.rtt.tcp.1B.r1', pass: true, metrics: { experiment: 'rtt', x: 1, latency_us_p50: 1234.5 } },
  });
  print({ type: 'scenario-start', t: 14, name: 'bench.rtt.tunnel-4.1B.r1' });
  print({ type: 'result', t: 17, result: { name: 'bench.rtt.tunnel-4.1B.r1', pass: false, metrics: {}, reason: 'boom' } });
  t.regex(out, /plan: 2 point\(s\) after 1 setup step\(s\)/);
  t.regex(out, /1\/2 rtt tcp 1 B r1 \.\.\./);
  t.regex(out, /1\/2 rtt tcp 1 B r1 {2}1235 µs {3}~4s left/);
  t.regex(out, /2\/2 rtt tunnel-4 1 B r1 {2}FAILED: boom\n/);
});

test('ring plan: repetitions interleaved, bytes bounded', (t) => {
  const plan = ringPlan(2, true);
  t.is(plan.length, 2 * 5 * 3);
  t.is(plan[0]?.rep, 1);
  t.is(plan[plan.length - 1]?.rep, 2);
  t.is(ringBytes(1, false), 64 << 10);
  t.is(ringBytes(1 << 20, false), 256 << 20);
  t.is(ringBytes(4096, false), 4096 * 50_000);
});

test('ring sweep: a run that is not verified, or errs, is a failed point; the others are samples', async (t) => {
  const seen: string[][] = [];
  const run: RingRunner = async (_bin, args) => {
    seen.push([...args]);
    if (args.includes('unix')) throw new Error('child died');
    if (args.includes('tcp')) return { verified: false, throughput_MBps: 5 };
    return { verified: true, throughput_MBps: 100, seconds: 0.1, kicks_tx: 3 };
  };
  const events: string[] = [];
  const r = await runRingSweep(ringPlan(1, true), '/bin/false', (p, d) => events.push(d === false ? 'start' : d.error ? 'err' : 'ok'), run);
  t.is(seen.length, 15);
  t.deepEqual(seen[0], ['--path', 'memcpy', '--msg-size', '1', '--bytes', String(ringBytes(1, true))]);
  t.is(r.samples.length, 9);
  t.is(r.failed.length, 6);
  t.regex(r.failed.find((f) => f.series === 'unix')?.reason ?? '', /child died/);
  t.regex(r.failed.find((f) => f.series === 'tcp-loopback')?.reason ?? '', /not verified/);
  t.deepEqual(r.samples[0]?.values, { throughput_MBps: 100, seconds: 0.1, kicks_tx: 3 });
  t.is(events.filter((e) => e === 'start').length, 15);
});

function runCli(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', cli, ...args], { cwd: root, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

test('bench run fig12 against a recorded sweep: progress, tables, CSV, JSON, SVG, and exit 1 for the failed point', async (t) => {
  const dir = await mkdtemp(path.join(tmpdir(), 'fastivc-bench-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  for (const f of ['xen', 'vmlinuz', 'initrd', 'disk']) await writeFile(path.join(dir, f), f);
  const qemu = path.join(dir, 'qemu');
  const fixture = path.join(root, 'test', 'fixtures', 'serial', 'bench-fig12.txt');
  await writeFile(
    qemu,
    `#!/bin/sh\n[ "$1" = --version ] && { echo 'QEMU emulator version 0 (fake)'; exit 0; }\n` +
      `for a in "$@"; do echo "$a"; done > '${dir}/argv'\ncat '${fixture}'\nexit 0\n`,
  );
  await chmod(qemu, 0o755);
  const out = path.join(dir, 'out');
  const r = await runCli([
    'bench', 'run', 'fig12', '--repeat', '3', '--out', out, '--qemu', qemu,
    '--xen', path.join(dir, 'xen'), '--kernel', path.join(dir, 'vmlinuz'), '--initrd', path.join(dir, 'initrd'), '--disk', path.join(dir, 'disk'),
  ]);
  t.is(r.code, 1, r.stderr);
  const argv = await readFile(path.join(dir, 'argv'), 'utf8');
  t.regex(argv, /fastivc\.bench=fig12 fastivc\.bench_repeat=3/);
  t.regex(r.stderr, /plan: 9 point\(s\)/);
  t.regex(r.stderr, /9\/9 fig12 tunnel-4 64 KiB r3 {2}FAILED: only 0 tunnels/);
  t.regex(r.stderr, /bench: 8 passed, 1 failed/);
  // medians: tunnel-4 at 4 KiB over 61, 62, 63; at 64 KiB over 121, 122 (r3 failed)
  t.regex(r.stdout, /4 KiB\s+62\s/);
  t.regex(r.stdout, /64 KiB\s+121\.5\s/);
  const summary = await readFile(path.join(out, 'fig12', 'summary.csv'), 'utf8');
  t.true(summary.startsWith('experiment,series,x,metric,n,median,q1,q3,min,max,mean,stdev\n'));
  t.regex(summary, /fig12,tunnel-4,65536,throughput_MBps,2,121\.5,/);
  const json = JSON.parse(await readFile(path.join(out, 'fig12', 'results.json'), 'utf8')) as {
    failed: { name: string }[];
    samples: unknown[];
  };
  t.deepEqual(json.failed.map((f) => f.name), ['bench.fig12.tunnel-4.64KiB.r3']);
  t.is(json.samples.length, 8);
  const samples = await readFile(path.join(out, 'fig12', 'samples.csv'), 'utf8');
  t.is(samples.trim().split('\n').length, 9);
  const svg = await readFile(path.join(out, 'fig12', 'fig12.svg'), 'utf8');
  t.regex(svg, /^<svg|^<\?xml/);
  t.regex(svg, /tcp \(median\)/);
  t.regex(svg, /1 point\(s\) failed/);
  // plot: the same tables and files again from results.json; an experiment never run is an error when named
  const again = await runCli(['bench', 'plot', '--out', out]);
  t.is(again.code, 1, again.stderr);
  t.regex(again.stdout, /64 KiB\s+121\.5\s/);
  t.regex(again.stderr, /bench: 8 passed, 1 failed/);
  t.is(await readFile(path.join(out, 'fig12', 'summary.csv'), 'utf8'), summary);
  const missing = await runCli(['bench', 'plot', 'fig10', '--out', out]);
  t.is(missing.code, 1);
  t.regex(missing.stderr, /cannot read .*fig10.results\.json/);
});

test('bench report refuses a file without experiment points, and a file that is not a report', async (t) => {
  const dir = await mkdtemp(path.join(tmpdir(), 'fastivc-bench-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const f = path.join(dir, 'r.json');
  await writeFile(f, JSON.stringify({ scenarios: [{ name: 'kmod-load-tunnel', pass: true, metrics: {} }] }));
  const r = await runCli(['bench', 'report', f, '--out', dir]);
  t.is(r.code, 1);
  t.regex(r.stderr, /has no experiment points/);
  await writeFile(f, '{"x":1}');
  const r2 = await runCli(['bench', 'report', f, '--out', dir]);
  t.is(r2.code, 1);
  t.regex(r2.stderr, /is not a lab report/);
});

test('bench list names every experiment with what the thesis found', async (t) => {
  const r = await runCli(['bench', 'list']);
  t.is(r.code, 0);
  for (const id of ['fig10', 'fig11', 'fig12', 'rtt', 'geom', 'geomrr', 'ring']) t.regex(r.stdout, new RegExp(`^${id} `, 'm'));
  t.regex(r.stdout, /best at 4 KiB channels/);
});

/**
 * The plan experiments.sh makes for a dom0 command line (run with bash, /proc/cmdline faked), kept to the scenarios
 * its ONLY selects, as dom0's run.sh does.
 */
function guestPlan(cmdline: string): Promise<{ plan: string[]; points: string[][]; marks: string }> {
  const script = [
    'mark() { echo "MARK $*" >&2; }',
    `cat() { if [ "$1" = /proc/cmdline ]; then echo '${cmdline}'; else command cat "$@"; fi; }`,
    'PLAN=() ONLY=',
    `. '${path.join(root, 'lab', 'guest', 'scenarios', 'experiments.sh')}'`,
    'if [ -n "$ONLY" ]; then kept=(); for n in "${PLAN[@]}"; do [[ $n =~ $ONLY ]] && kept+=("$n"); done; PLAN=("${kept[@]}"); fi',
    'printf "%s\\n" "${PLAN[@]}"; echo ---; bench_points',
  ].join('\n');
  return new Promise((resolve, reject) => {
    const child = spawn('bash', ['-c', script], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    child.on('error', reject);
    child.on('close', () => {
      const [plan = '', points = ''] = out.split('---\n');
      resolve({
        plan: plan.split('\n').filter(Boolean),
        points: points.split('\n').filter(Boolean).map((l) => l.split(' ')),
        marks: err,
      });
    });
  });
}

test('the lab sweeps: every point name is unique, parses back to its coordinates, and repetitions are interleaved', async (t) => {
  const { plan, points } = await guestPlan('quiet fastivc.bench=fig10,fig11,fig12,rtt,geom,geomrr fastivc.bench_repeat=3');
  // fig10 10 sizes x 5 series (the defaults among them), fig11 6 x 4, fig12 7 sizes + the tcp reference, rtt 6 x 3,
  // geom and geomrr 5 sizes + the tcp and thesis references each; three times
  t.is(points.length, (50 + 24 + 8 + 18 + 7 + 7) * 3);
  t.deepEqual(plan, ['bench-setup-ftp-disk', ...points.map((p) => p[0])]);
  t.is(new Set(points.map((p) => p[0])).size, points.length);
  for (const [name = '', exp, series, x, rep] of points) {
    t.deepEqual(parsePointName(name), { experiment: exp, series, rep: Number(rep) }, name);
    t.is(xFromName(name), Number(x) === 0 ? 0 : Number(x), name);
    t.regex(name, /^[A-Za-z0-9_][A-Za-z0-9._-]{0,127}$/);
  }
  t.deepEqual([...new Set(points.map((p) => p[4]))], ['1', '2', '3']);
  t.is(points.findIndex((p) => p[4] === '2'), 114);
});

test('the lab sweeps: quick has fewer points, an unknown experiment runs none and says so', async (t) => {
  const quick = await guestPlan('fastivc.bench=fig12,rtt fastivc.bench_repeat=1 fastivc.bench_quick=1');
  t.deepEqual(
    quick.points.map((p) => p[0]),
    ['bench.fig12.tcp.0B.r1', 'bench.fig12.tunnel-4.4KiB.r1', 'bench.fig12.tunnel-4.64KiB.r1',
     'bench.rtt.tcp.1B.r1', 'bench.rtt.tcp.4KiB.r1', 'bench.rtt.tunnel-4.1B.r1', 'bench.rtt.tunnel-4.4KiB.r1',
     'bench.rtt.tunnel-16x64KiB.1B.r1', 'bench.rtt.tunnel-16x64KiB.4KiB.r1'],
  );
  // no experiment: the test plan's own (bench-remote-dom0, fastivc bench run --remote from dom0)
  const bad = await guestPlan('fastivc.bench=fig10,fig13');
  t.deepEqual(bad.plan, ['bench-remote-dom0']);
  t.regex(bad.marks, /MARK phase bench-unknown fig13/);
  const none = await guestPlan('quiet');
  t.deepEqual(none.plan, ['bench-remote-dom0']);
  // with the tests, both
  const both = await guestPlan('fastivc.bench=fig12 fastivc.bench_quick=1 fastivc.bench_repeat=1 fastivc.bench_with_tests=1');
  t.deepEqual(both.plan, ['bench.fig12.tcp.0B.r1', 'bench.fig12.tunnel-4.4KiB.r1', 'bench.fig12.tunnel-4.64KiB.r1', 'bench-remote-dom0']);
});

test('table values: 4 significant digits, tiny ones in exponent form', async (t) => {
  const { formatValue } = await import('../../tui/src/bench/results.js');
  t.is(formatValue(51.8523), '51.85');
  t.is(formatValue(0.0000024591), '2.459e-6');
  t.is(formatValue(0.003193), '0.003193');
  t.is(formatValue(0), '0');
  t.is(formatValue(41760.4), '41760');
});
