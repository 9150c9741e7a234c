/**
 * geom and geomrr, the sweep that chose the default tunnel size (auto_bytes): the plan experiments.sh makes, how a
 * point sets the module up and puts the defaults back, how it checks its path, the samples, summary, tables and plot
 * (tcp and the thesis' 4 x 4 KiB as reference lines), and `bench run geom geomrr` against a recorded quick sweep.
 */
import { spawn } from 'node:child_process';
import { chmod, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import test from 'ava';
import { experiment, isReferenceSeries } from '../../tui/src/bench/experiments.js';
import { describePoint, pointValue } from '../../tui/src/bench/progress.js';
import { labResults, medianTable, parsePointName, plotExperiment, writeExperiment, xFromName, type PointScenario } from '../../tui/src/bench/results.js';
import { renderSvg } from '../../tui/src/bench/svg.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const cli = path.join(root, 'tui', 'src', 'cli.ts');
const scenarios = path.join(root, 'lab', 'guest', 'scenarios');

function sh(script: string): Promise<{ code: number | null; out: string; err: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn('bash', ['-c', script], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, out, err }));
  });
}

/** The points experiments.sh plans for a dom0 command line: "NAME EXPERIMENT SERIES X REP" each. */
async function points(cmdline: string): Promise<string[][]> {
  const r = await sh(
    [
      'mark() { echo "MARK $*" >&2; }',
      `cat() { if [ "$1" = /proc/cmdline ]; then echo '${cmdline}'; else command cat "$@"; fi; }`,
      'PLAN=()',
      `. '${path.join(scenarios, 'experiments.sh')}'`,
      'bench_points',
    ].join('\n'),
  );
  return r.out.split('\n').filter(Boolean).map((l) => l.split(' '));
}

test('geom plan: tcp and thesis once per repetition at x = 0, tunnel-auto at 16 KiB .. 4 MiB, both workloads', async (t) => {
  const full = await points('fastivc.bench=geom,geomrr fastivc.bench_repeat=2');
  t.is(full.length, 2 * 2 * 7);
  t.deepEqual(
    full.slice(0, 7).map((p) => p.join(' ')),
    [
      'bench.geom.tcp.0B.r1 geom tcp 0 1',
      'bench.geom.thesis.0B.r1 geom thesis 0 1',
      'bench.geom.tunnel-auto.16KiB.r1 geom tunnel-auto 16384 1',
      'bench.geom.tunnel-auto.64KiB.r1 geom tunnel-auto 65536 1',
      'bench.geom.tunnel-auto.256KiB.r1 geom tunnel-auto 262144 1',
      'bench.geom.tunnel-auto.1MiB.r1 geom tunnel-auto 1048576 1',
      'bench.geom.tunnel-auto.4MiB.r1 geom tunnel-auto 4194304 1',
    ],
  );
  t.deepEqual(full.slice(7, 14).map((p) => p[0]?.replace('geomrr', 'geom').replace(/r\d$/, '')), full.slice(0, 7).map((p) => p[0]?.replace(/r\d$/, '')));
  t.deepEqual([...new Set(full.map((p) => p[4]))], ['1', '2']);
  for (const [name = '', exp, series, x, rep] of full) {
    t.deepEqual(parsePointName(name), { experiment: exp, series, rep: Number(rep) }, name);
    t.is(xFromName(name), Number(x), name);
  }
  const quick = await points('fastivc.bench=geom,geomrr fastivc.bench_repeat=1 fastivc.bench_quick=1');
  t.deepEqual(
    quick.map((p) => p[0]),
    ['bench.geom.tcp.0B.r1', 'bench.geom.thesis.0B.r1', 'bench.geom.tunnel-auto.64KiB.r1', 'bench.geom.tunnel-auto.1MiB.r1',
     'bench.geomrr.tcp.0B.r1', 'bench.geomrr.thesis.0B.r1', 'bench.geomrr.tunnel-auto.64KiB.r1', 'bench.geomrr.tunnel-auto.1MiB.r1'],
  );
});

/**
 * Runs BODY with tunnel.sh and experiments.sh sourced and the lab stubbed: the agent logs each command to agent.log
 * ("HOST: COMMAND"), answers `cat /proc/fastivc/stats` with stats.1, stats.2, ... in turn, ivcbench with ivcbench.json,
 * and reads auto_bytes back as written (or as $AUTO_READBACK). Returns the log, the reason and the metrics written.
 */
async function lab(body: string, files: Record<string, string> = {}): Promise<{ code: number | null; out: string; log: string[]; reason: string; metrics: Record<string, unknown> }> {
  const dir = await mkdtemp(path.join(tmpdir(), 'fastivc-geom-'));
  try {
    for (const [f, text] of Object.entries(files)) await writeFile(path.join(dir, f), text);
    const r = await sh(
      [
        `T='${dir}'; OUT=$T; SCENARIO=point; echo 0 > "$T/n"`,
        'mark() { :; }',
        `cat() { if [ "$1" = /proc/cmdline ]; then echo quiet; else command cat "$@"; fi; }`,
        'need() { :; }',
        'fail() { echo "$*" > "$OUT/$SCENARIO.reason"; echo "FAIL: $*"; return 1; }',
        'metrics() { echo "$1" > "$OUT/$SCENARIO.json"; }',
        'agent() {',
        '    local h=$1; shift; echo "$h: $*" >> "$T/agent.log"',
        '    case "$*" in',
        '        "cat /proc/fastivc/stats") local n=$(( $(command cat "$T/n") + 1 )); echo $n > "$T/n"; command cat "$T/stats.$n" ;;',
        '        ivcbench*) command cat "$T/ivcbench.json" ;;',
        '        *auto_bytes*) echo "${AUTO_READBACK:-$(echo "$*" | sed -n "s/^echo \\([0-9]*\\) >.*/\\1/p")}" ;;',
        '    esac',
        '}',
        "declare -A DOMU_IP=([domU1]=192.0.2.11 [domU2]=192.0.2.12); D1=192.0.2.11 D2=192.0.2.12; PLAN=()",
        `. '${path.join(scenarios, 'tunnel.sh')}'`,
        `. '${path.join(scenarios, 'experiments.sh')}'`,
        body,
      ].join('\n'),
    );
    const read = async (f: string): Promise<string> => readFile(path.join(dir, f), 'utf8').catch(() => '');
    const json = await read('point.json');
    return {
      code: r.code,
      out: r.out + r.err,
      log: (await read('agent.log')).split('\n').filter(Boolean),
      reason: (await read('point.reason')).trim(),
      metrics: json ? (JSON.parse(json) as Record<string, unknown>) : {},
    };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** What an agent line sets in fastivc.ko's parameters, "enable=1 channels=0 ..." in the order written. */
function params(line: string): string {
  const host = line.slice(0, line.indexOf(':'));
  const set = [...line.matchAll(/echo (\d+) > \/sys\/module\/fastivc\/parameters\/(\w+)/g)].map((m) => `${m[2]}=${m[1]}`);
  return set.length > 0 ? `${host} ${set.join(' ')}` : line;
}

/** The parameter writes of a log, both domUs merged into one line each when they agree. */
function settings(log: readonly string[]): string[] {
  const out: string[] = [];
  const lines = log.map(params);
  for (let i = 0; i < lines.length; i++) {
    const a = lines[i] ?? '';
    const b = lines[i + 1] ?? '';
    if (a.startsWith('192.0.2.11 ') && b === a.replace('192.0.2.11 ', '192.0.2.12 ')) {
      out.push(a.slice('192.0.2.11 '.length));
      i++;
    } else out.push(a);
  }
  return out;
}

const RESTORE = ['enable=1 channels=0 channel_size=0', 'auto_bytes=1048576'];

test('bench_point: series set the module up, the point runs, the defaults come back (geom only), status kept', async (t) => {
  const body = [
    'fn_ok() { echo "FN $*" >> "$T/agent.log"; metrics \'{"throughput_MBps": 5}\'; }',
    'fn_bad() { echo "FN $*" >> "$T/agent.log"; fail "boom"; }',
    'bench_point geom tunnel-auto 65536 1 fn_ok; echo "rc=$?" >> "$T/agent.log"',
    'bench_point geomrr thesis 0 1 fn_bad; echo "rc=$?" >> "$T/agent.log"',
    'bench_point geom tcp 0 1 fn_ok; echo "rc=$?" >> "$T/agent.log"',
    'bench_point fig12 tunnel-4 65536 1 fn_ok; echo "rc=$?" >> "$T/agent.log"',
  ].join('\n');
  const r = await lab(body);
  t.deepEqual(settings(r.log), [
    'enable=1 channels=0 channel_size=0',
    'auto_bytes=65536',
    'FN tunnel-auto 65536',
    ...RESTORE,
    'rc=0',
    'enable=1 channels=4 channel_size=4096',
    'FN thesis 0',
    ...RESTORE,
    'rc=1',
    'enable=0 channels=4 channel_size=4096',
    'FN tcp 0',
    ...RESTORE,
    'rc=0',
    // fig12 as before: its geometry, no auto_bytes, no restore per point (run_bench restores at the end)
    'enable=1 channels=4 channel_size=65536',
    'FN tunnel-4 65536',
    'rc=0',
  ]);
  t.deepEqual(r.metrics, { experiment: 'fig12', series: 'tunnel-4', x: 65536, rep: 1, throughput_MBps: 5 });
});

test('bench_point: auto_bytes that does not read back fails the point before it runs, and restores', async (t) => {
  const r = await lab('fn_ok() { echo FN >> "$T/agent.log"; }\nAUTO_READBACK=7 bench_point geom tunnel-auto 65536 1 fn_ok; echo "rc=$?"');
  t.regex(r.out, /rc=1/);
  t.false(r.log.includes('FN'));
  t.regex(r.reason, /cannot set auto_bytes=\d+ in 192\.0\.2\.1[12] \(it reads 7\)/);
  t.true(settings(r.log).includes('enable=1 channels=0 channel_size=0'));
});

/** /proc/fastivc/stats with these counters. */
function stats(c: { tunnels_created?: number; bytes_tx?: number; bytes_rx?: number; events_raised?: number }): string {
  return ['format 1', 'version 2.0.0', 'channels 0', 'channel_size 0', `tunnels_created ${c.tunnels_created ?? 0}`,
    `bytes_tx ${c.bytes_tx ?? 0}`, `bytes_rx ${c.bytes_rx ?? 0}`, `events_raised ${c.events_raised ?? 0}`, ''].join('\n');
}

const MiB4 = 4 << 20;
const streamOut = JSON.stringify({ verified: true, bytes_received: MiB4, checksum_sent: 'ab', checksum_received: 'ab', throughput_MBps: 321.5, seconds: 0.013 });
const QUICK = 'cat() { if [ "$1" = /proc/cmdline ]; then echo fastivc.bench_quick=1; else command cat "$@"; fi; }\n';

/** A geom bulk point whose four kstats read sb, rb, sa, ra. */
function bulk(series: string, sb: string, rb: string, sa: string, ra: string, out = streamOut) {
  return lab(`${QUICK}. '${path.join(scenarios, 'experiments.sh')}'\nbench_geom ${series} 65536; echo "rc=$?"`, {
    'stats.1': sb, 'stats.2': rb, 'stats.3': sa, 'stats.4': ra, 'ivcbench.json': out,
  });
}

test('bench_geom: a tunnel point that moved its bytes through the tunnel passes, with throughput and events', async (t) => {
  const zero = stats({});
  const r = await lab(`${QUICK}. '${path.join(scenarios, 'experiments.sh')}'\nbench_geom tunnel-auto 65536; echo "rc=$?"`, {
    'stats.1': zero, 'stats.2': zero,
    'stats.3': stats({ tunnels_created: 1, bytes_tx: MiB4 - 4096, events_raised: 30 }),
    'stats.4': stats({ tunnels_created: 1, bytes_rx: MiB4 - 4096, events_raised: 10 }),
    'ivcbench.json': streamOut,
  });
  t.regex(r.out, /rc=0/, r.out);
  t.deepEqual(r.metrics, {
    throughput_MBps: 321.5, seconds: 0.013, tunnels_created: 1, tunnel_bytes_tx: MiB4 - 4096, tunnel_share: 0.999,
    events_raised: 40, events_per_MiB: 10,
  });
  t.true(r.log.some((l) => /ivcbench stream --host 192\.0\.2\.12 --bytes 4194304 --msg-size 65536/.test(l)));
});

test('bench_geom: bytes that stayed on TCP, a lost tunnel byte, a TCP point with a tunnel, bad data: each fails', async (t) => {
  const zero = stats({});
  const onTcp = await bulk('tunnel-auto', zero, zero, stats({ tunnels_created: 1, bytes_tx: 1000 }), stats({ bytes_rx: 1000 }));
  t.regex(onTcp.reason, /only 1000 of 4194304 bytes went through tunnels/);
  const noTunnel = await bulk('thesis', zero, zero, zero, zero);
  t.regex(noTunnel.reason, /only 0 tunnels for 1 connections: fell back to TCP/);
  const lost = await bulk('tunnel-auto', zero, zero, stats({ tunnels_created: 1, bytes_tx: MiB4 }), stats({ bytes_rx: MiB4 - 1 }));
  t.regex(lost.reason, /tunnel bytes sent 4194304 but received 4194303/);
  const tcp = await bulk('tcp', zero, zero, zero, stats({ tunnels_created: 1 }));
  t.regex(tcp.reason, /a TCP point created 1 tunnel\(s\) at the receiver/);
  const bad = await bulk('tcp', zero, zero, zero, zero, JSON.stringify({ verified: false, error: 'byte 17 differs' }));
  t.regex(bad.reason, /byte 17 differs/);
  for (const r of [onTcp, noTunnel, lost, tcp, bad]) t.regex(r.out, /rc=1/);
});

const rrOut = JSON.stringify({ verified: true, count: 1000, rr_per_s: 2000.4, latency_us_p50: 480, latency_us_p90: 600, latency_us_p99: 900 });

function rr(series: string, sa: string, ra: string) {
  const zero = stats({});
  return lab(`${QUICK}. '${path.join(scenarios, 'experiments.sh')}'\nbench_geomrr ${series} 1048576; echo "rc=$?"`, {
    'stats.1': zero, 'stats.2': zero, 'stats.3': sa, 'stats.4': ra, 'ivcbench.json': rrOut,
  });
}

test('bench_geomrr: every measured round trip through tunnels both ways, else the point fails', async (t) => {
  const ok = await rr('tunnel-auto', stats({ tunnels_created: 1, bytes_tx: 1050, events_raised: 1100 }), stats({ tunnels_created: 1, bytes_tx: 1050, events_raised: 1100 }));
  t.regex(ok.out, /rc=0/, ok.out);
  t.deepEqual(ok.metrics, {
    rr_per_s: 2000.4, latency_us_p50: 480, latency_us_p90: 600, latency_us_p99: 900, round_trips: 1000,
    tunnels_created_client: 1, tunnels_created_server: 1, tunnel_bytes_client: 1050, tunnel_bytes_server: 1050,
    events_raised: 2200, events_per_round_trip: 2,
  });
  t.true(ok.log.some((l) => /ivcbench rr --host 192\.0\.2\.12 --msg-size 1 --seconds \S+ --warmup 100/.test(l)));
  const half = await rr('tunnel-auto', stats({ tunnels_created: 1, bytes_tx: 1050 }), stats({ tunnels_created: 1, bytes_tx: 600 }));
  t.regex(half.reason, /only 1050\/600 bytes went through tunnels for 1000 measured round trips/);
  const oneWay = await rr('thesis', stats({ tunnels_created: 1, bytes_tx: 1050 }), stats({}));
  t.regex(oneWay.reason, /did not use tunnels both ways \(created 1\/0\): fell back to TCP/);
  const tcp = await rr('tcp', stats({}), stats({ tunnels_created: 1 }));
  t.regex(tcp.reason, /a TCP point created tunnels \(0\/1\)/);
  const tcpOk = await rr('tcp', stats({}), stats({}));
  t.regex(tcpOk.out, /rc=0/);
});

/** Lab scenarios of a geom sweep: per point, the metric's value at repetitions 1 and 2 (null: failed). */
function sweep(exp: 'geom' | 'geomrr', metric: string, values: Record<string, [number, number | null]>): PointScenario[] {
  const out: PointScenario[] = [];
  for (const rep of [1, 2]) {
    for (const [point, vs] of Object.entries(values)) {
      const [series = '', xs = '0'] = point.split('@');
      const x = Number(xs);
      const name = `bench.${exp}.${series}.${x === 0 ? '0B' : x >= 1048576 ? `${x / 1048576}MiB` : `${x / 1024}KiB`}.r${rep}`;
      const v = vs[rep - 1];
      out.push(
        v === null || v === undefined
          ? { name, pass: false, metrics: { experiment: exp, series, x, rep }, reason: 'fell back to TCP' }
          : { name, pass: true, metrics: { experiment: exp, series, x, rep, [metric]: v, tunnels_created: series === 'tcp' ? 0 : 1 } },
      );
    }
  }
  return out;
}

test('geom results: samples, summary with the references at x = 0, table, CSV, JSON and a plot with two reference lines', async (t) => {
  const byExp = labResults([
    ...sweep('geom', 'throughput_MBps', {
      'tcp@0': [80, 82], 'thesis@0': [60, 62], 'tunnel-auto@65536': [200, 210], 'tunnel-auto@1048576': [400, null],
    }),
    ...sweep('geomrr', 'rr_per_s', { 'tcp@0': [380, 390], 'thesis@0': [1500, 1520], 'tunnel-auto@1048576': [1580, 1620] }),
  ]);
  t.deepEqual([...byExp.keys()], ['geom', 'geomrr']);
  const geom = byExp.get('geom');
  if (!geom) return t.fail();
  t.is(geom.samples.length, 7);
  t.deepEqual(geom.failed.map((f) => f.name), ['bench.geom.tunnel-auto.1MiB.r2']);
  t.true(isReferenceSeries(geom.experiment, 'thesis'));
  t.false(isReferenceSeries(geom.experiment, 'tunnel-auto'));

  const table = medianTable(geom);
  t.regex(table, /^geom: throughput_MBps, median\n/);
  t.regex(table, /64 KiB\s+205\n/);
  t.regex(table, /1 MiB\s+400\n/);
  t.regex(table, /reference: tcp 81, thesis 61\n$/);
  t.notRegex(table, /^0 B/m);

  const svg = plotExperiment(geom, 'note');
  t.regex(svg, /tcp \(median\)/);
  t.regex(svg, /thesis \(median\)/);
  t.is((svg.match(/stroke-dasharray="4 4"/g) ?? []).length, 2);
  t.is((svg.match(/class="panel"/g) ?? []).length, 1, 'no ratio panel, as fig12');
  t.regex(svg, /data-name="tunnel-auto"/);
  t.notRegex(svg, /data-name="(tcp|thesis)"/);
  t.regex(svg, />64 KiB</);
  t.regex(svg, />1 MiB</);

  const dir = await mkdtemp(path.join(tmpdir(), 'fastivc-geom-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const rrExp = byExp.get('geomrr');
  if (!rrExp) return t.fail();
  await writeExperiment(dir, geom, { lab_report: 'x' }, new Date(0));
  await writeExperiment(dir, rrExp, { lab_report: 'x' }, new Date(0));
  const summary = await readFile(path.join(dir, 'geom', 'summary.csv'), 'utf8');
  t.regex(summary, /^geom,tcp,0,throughput_MBps,2,81,/m);
  t.regex(summary, /^geom,thesis,0,throughput_MBps,2,61,/m);
  t.regex(summary, /^geom,tunnel-auto,65536,throughput_MBps,2,205,/m);
  t.regex(summary, /^geom,tunnel-auto,1048576,throughput_MBps,1,400,/m);
  const rrSummary = await readFile(path.join(dir, 'geomrr', 'summary.csv'), 'utf8');
  t.regex(rrSummary, /^geomrr,tunnel-auto,1048576,rr_per_s,2,1600,/m);
  const json = JSON.parse(await readFile(path.join(dir, 'geomrr', 'results.json'), 'utf8')) as { metric: string; summary: { series: string; x: number; metric: string; median: number }[] };
  t.is(json.metric, 'rr_per_s');
  t.deepEqual(
    json.summary.filter((s) => s.metric === 'rr_per_s').map((s) => [s.series, s.x, s.median]),
    [['tcp', 0, 385], ['thesis', 0, 1510], ['tunnel-auto', 1048576, 1600]],
  );
  const rrSvg = await readFile(path.join(dir, 'geomrr', 'geomrr.svg'), 'utf8');
  t.regex(rrSvg, /round trips per second/);
  t.regex(rrSvg, /thesis \(median\)/);
});

test('geom in the catalogue and the progress lines: units, reference points', (t) => {
  const g = experiment('geom');
  const rr = experiment('geomrr');
  t.is(g?.metric, 'throughput_MBps');
  t.is(rr?.metric, 'rr_per_s');
  t.deepEqual(g?.references, ['tcp', 'thesis']);
  t.is(pointValue('geomrr', { rr_per_s: 1234.56 }), '1235/s');
  t.is(pointValue('geom', { throughput_MBps: 321.54 }), '321.5 MB/s');
  t.is(pointValue('rtt', { latency_us_p50: 657 }), '657 µs');
  t.is(describePoint({ experiment: 'geom', series: 'thesis', x: 0, rep: 1 }), 'geom thesis reference r1');
  t.is(describePoint({ experiment: 'geomrr', series: 'tunnel-auto', x: 262144, rep: 3 }), 'geomrr tunnel-auto 256 KiB r3');
});

test('reference lines close together keep their labels apart', (t) => {
  const svg = renderSvg({
    title: 't',
    xLabel: 'x',
    xScale: 'log2',
    width: 900,
    panels: [{ yLabel: 'y', series: [{ name: 's', points: [{ x: 1, y: 100 }, { x: 2, y: 10 }] }], references: [{ y: 50, label: 'tcp (median)' }, { y: 50.5, label: 'thesis (median)' }] }],
  });
  const ys = ['tcp (median)', 'thesis (median)'].map((l) => Number(new RegExp(`y="([0-9.]+)"[^>]*>${l.replace(/[()]/g, '\\$&')}<`).exec(svg)?.[1]));
  t.true(ys.every(Number.isFinite), svg);
  t.true(Math.abs((ys[0] ?? 0) - (ys[1] ?? 0)) >= 11);
});

test('bench run geom geomrr against a recorded quick sweep: progress, tables, files, exit 1 for the failed point', async (t) => {
  const dir = await mkdtemp(path.join(tmpdir(), 'fastivc-bench-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  for (const f of ['xen', 'vmlinuz', 'initrd', 'disk']) await writeFile(path.join(dir, f), f);
  const qemu = path.join(dir, 'qemu');
  const fixture = path.join(root, 'test', 'fixtures', 'serial', 'bench-geom.txt');
  await writeFile(
    qemu,
    `#!/bin/sh\n[ "$1" = --version ] && { echo 'QEMU emulator version 0 (fake)'; exit 0; }\n` +
      `for a in "$@"; do echo "$a"; done > '${dir}/argv'\ncat '${fixture}'\nexit 0\n`,
  );
  await chmod(qemu, 0o755);
  const out = path.join(dir, 'out');
  const r = await new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve, reject) => {
    const child = spawn(
      process.execPath,
      ['--import', 'tsx', cli, 'bench', 'run', 'geomrr', 'geom', '--repeat', '2', '--quick', '--out', out, '--qemu', qemu,
        '--xen', path.join(dir, 'xen'), '--kernel', path.join(dir, 'vmlinuz'), '--initrd', path.join(dir, 'initrd'), '--disk', path.join(dir, 'disk')],
      { cwd: root, stdio: ['ignore', 'pipe', 'pipe'] },
    );
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
  t.is(r.code, 1, r.stderr);
  // (QEMU's -initrd list doubles a comma inside one item)
  t.regex(await readFile(path.join(dir, 'argv'), 'utf8'), /fastivc\.bench=geom,,geomrr fastivc\.bench_repeat=2 fastivc\.bench_quick=1/);
  t.regex(r.stderr, /plan: 16 point\(s\)/);
  t.regex(r.stderr, /1\/16 geom tcp reference r1 {2}80 MB\/s/);
  t.regex(r.stderr, /7\/16 geomrr tunnel-auto 64 KiB r1 {2}1600\/s/);
  t.regex(r.stderr, /15\/16 geomrr tunnel-auto 64 KiB r2 {2}FAILED: round trips did not use tunnels both ways/);
  t.regex(r.stderr, /bench: 15 passed, 1 failed/);
  t.regex(r.stdout, /geom: throughput_MBps, median\nx\s+tunnel-auto\n64 KiB\s+205\n1 MiB\s+410\nreference: tcp 81, thesis 61\n/);
  t.regex(r.stdout, /geomrr: rr_per_s, median\nx\s+tunnel-auto\n64 KiB\s+1600\n1 MiB\s+1600\nreference: tcp 385, thesis 1510\n/);
  const summary = await readFile(path.join(out, 'geom', 'summary.csv'), 'utf8');
  t.regex(summary, /^geom,tunnel-auto,1048576,throughput_MBps,2,410,/m);
  t.regex(summary, /^geom,tunnel-auto,65536,events_per_MiB,2,16,/m);
  const json = JSON.parse(await readFile(path.join(out, 'geomrr', 'results.json'), 'utf8')) as { failed: { name: string }[]; samples: unknown[] };
  t.deepEqual(json.failed.map((f) => f.name), ['bench.geomrr.tunnel-auto.64KiB.r2']);
  t.is(json.samples.length, 7);
  const svg = await readFile(path.join(out, 'geom', 'geom.svg'), 'utf8');
  t.regex(svg, /tcp \(median\)/);
  t.regex(svg, /thesis \(median\)/);
});
