/**
 * The demo's side of the lab runner: `@@FASTIVC ivctop <snapshot>` markers (good, malformed, truncated, huge), the
 * line splitter on very long lines, the report's `demo` key, fastivc.demo=SECONDS on the dom0 command line, and a
 * whole run against a fake QEMU printing test/fixtures/serial/demo.txt.
 */
import { chmod, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import test, { type ExecutionContext } from 'ava';
import type { LabEvent } from '../lab/runner/events.js';
import { LineSplitter, MAX_LINE_CHARS, MarkerStream, parseMarkerLine, type MarkerEvent } from '../lab/runner/markers.js';
import { formatEvent } from '../lab/runner/progress.js';
import { buildQemuArgs, dom0Cmdline, DEFAULT_DOM0_CMDLINE, LabConfigError } from '../lab/runner/qemu.js';
import { ReportBuilder } from '../lab/runner/report.js';
import { runLab } from '../lab/runner/run.js';
import { parseRecording } from '../tui/src/data/replay.js';
import type { Snapshot } from '../tui/src/data/types.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
/** The fixture's snapshots as dom0 streams them: raw JSON (parseRecording would add `peers: []` to these old ones). */
const snapshots = async (): Promise<Snapshot[]> => {
  const text = await readFile(path.join(root, 'test/fixtures/ivctop/replay.jsonl'), 'utf8');
  parseRecording(text); // still a valid recording
  return text
    .split('\n')
    .filter((l) => l.trim() !== '')
    .map((l) => JSON.parse(l) as Snapshot);
};

const kinds = (events: MarkerEvent[]): string[] => events.filter((e) => e.kind !== 'line').map((e) => e.kind);

test('ivctop marker: a snapshot after any console prefix parses to the raw snapshot', async (t) => {
  const [s] = await snapshots();
  const p = parseMarkerLine(`(d0) @@FASTIVC ivctop ${JSON.stringify(s)}\r`);
  t.deepEqual(p, { kind: 'marker', marker: { kind: 'ivctop', snapshot: s! } });
});

test('ivctop marker: bad ones are warnings (never protocol errors), naming what is wrong', (t) => {
  const cases: [string, RegExp][] = [
    ['@@FASTIVC ivctop', /^ivctop marker without a snapshot$/],
    ['@@FASTIVC ivctop {"time": 17000', /^ivctop: malformed JSON, snapshot dropped \(/],
    ['@@FASTIVC ivctop [1,2]', /^ivctop: not a snapshot \(needs time, dem, domains, errors\), dropped$/],
    ['@@FASTIVC ivctop {"time":"noon","dem":{},"domains":[],"errors":[]}', /not a snapshot/],
    ['@@FASTIVC ivctop {"time":1,"dem":null,"domains":[],"errors":[]}', /not a snapshot/],
  ];
  for (const [line, re] of cases) {
    const p = parseMarkerLine(line);
    t.is(p.kind, 'warning', line);
    if (p.kind === 'warning') t.regex(p.message, re, line);
  }
  // Through the stream: a warning event, and the stream goes on.
  const m = new MarkerStream();
  const ev = m.push('@@FASTIVC ivctop {"time":\n@@FASTIVC phase dom0-up\n');
  t.deepEqual(kinds(ev), ['warning', 'marker']);
});

test('ivctop marker: a huge snapshot in small chunks arrives whole and fast', async (t) => {
  const [s] = await snapshots();
  // ~2 MiB: the snapshot of a busy host (many sockets), far above the old 64 KiB line limit.
  const big: Snapshot = { ...s!, errors: Array.from({ length: 20000 }, (_, i) => `problem ${i} ${'x'.repeat(120)}`) };
  const line = `@@FASTIVC ivctop ${JSON.stringify(big)}\n`;
  t.true(line.length > 2 * 1024 * 1024);
  const m = new MarkerStream();
  const events: MarkerEvent[] = [];
  const started = Date.now();
  const buf = Buffer.from(line);
  for (let i = 0; i < buf.length; i += 61) events.push(...m.push(buf.subarray(i, i + 61)));
  t.true(Date.now() - started < 5000, `took ${Date.now() - started} ms`); // linear, not quadratic
  const got = events.find((e) => e.kind === 'marker');
  t.is(got?.kind === 'marker' && got.marker.kind === 'ivctop' ? got.marker.snapshot.errors.length : -1, 20000);
});

test('ivctop marker: a line longer than the limit is cut, warned about once, and its rest never parsed', (t) => {
  const m = new MarkerStream({ maxLineChars: 100 });
  // The tail of the cut line holds a marker-looking text: it must not be seen as a marker.
  const long = `@@FASTIVC ivctop {"time":1,"errors":["${'y'.repeat(150)} @@FASTIVC done"]}\n@@FASTIVC phase dom0-up\n`;
  const ev: MarkerEvent[] = [];
  for (const ch of long.match(/[\s\S]{1,7}/g) ?? []) ev.push(...m.push(ch));
  t.deepEqual(kinds(ev), ['warning', 'marker']);
  const w = ev.find((e) => e.kind === 'warning');
  t.regex(w?.kind === 'warning' ? w.message : '', /^ivctop: line longer than 100 characters, snapshot dropped$/);
  t.deepEqual(ev.filter((e) => e.kind === 'line').map((e) => (e.kind === 'line' ? e.line.length : 0)), [100, 23]);
  // Any other marker cut short is a protocol error, as before.
  const other = new MarkerStream({ maxLineChars: 50 });
  t.deepEqual(kinds(other.push(`@@FASTIVC result {"name":"a","pass":true,"metrics":{"m":"${'z'.repeat(80)}"}}\n`)), ['error']);
  t.is(MAX_LINE_CHARS, 4 * 1024 * 1024);
});

test('LineSplitter: a cut line drops its rest up to the newline; end() after a cut gives nothing', (t) => {
  const s = new LineSplitter(10);
  t.deepEqual(s.pushLines('0123456789abc'), [{ line: '0123456789', cut: true }]);
  t.deepEqual(s.pushLines('def\nok\n'), [{ line: 'ok', cut: false }]);
  t.deepEqual(s.pushLines('0123456789ab'), [{ line: '0123456789', cut: true }]);
  t.deepEqual(s.endLines(), []);
  t.deepEqual(s.push('tail'), []);
  t.deepEqual(s.end(), ['tail']);
});

test('ivctop markers inside a log block are log content', (t) => {
  const m = new MarkerStream();
  const ev = m.push('@@FASTIVC log-begin x\n@@FASTIVC ivctop {}\n@@FASTIVC log-end x\n');
  t.deepEqual(kinds(ev), ['marker', 'log-line', 'marker']);
});

test('report: the demo key keeps the last snapshot and the counts; absent without a demo', async (t) => {
  const [a, b] = await snapshots();
  const none = new ReportBuilder(new Date(0), 'logs/serial.log');
  none.addResult({ name: 'x', pass: true, metrics: {} });
  t.false('demo' in none.build({ durationS: 1, whyEnded: '' }));
  const rb = new ReportBuilder(new Date(0), 'logs/serial.log');
  rb.expectDemo(60);
  t.deepEqual(rb.build({ durationS: 1, whyEnded: '' }).demo, { seconds: 60, snapshots: 0, malformed: 0, last: null });
  t.is(rb.addDemoSnapshot(a!), 1);
  rb.addDemoMalformed();
  t.is(rb.addDemoSnapshot(b!), 2);
  const r = rb.build({ durationS: 1, whyEnded: '' });
  t.deepEqual(r.demo, { seconds: 60, snapshots: 2, malformed: 1, last: b! });
  t.deepEqual(r.scenarios, []); // never a scenario
});

test('fastivc.demo=SECONDS on the dom0 command line; bad lengths are configuration errors', (t) => {
  t.is(dom0Cmdline({ demo: 60 }), `${DEFAULT_DOM0_CMDLINE} fastivc.demo=60`);
  t.is(dom0Cmdline({ fault: 'f', demo: 5 }), `${DEFAULT_DOM0_CMDLINE} fastivc.fault=f fastivc.demo=5`);
  const base = { xen: '/x', kernel: '/k', initrd: '/i', disk: '/d' };
  t.regex(buildQemuArgs({ ...base, demo: 90 }).join(' '), /fastivc\.demo=90,\/i/);
  for (const demo of [0, -1, 1.5, 3601, Number.NaN]) {
    t.throws(() => buildQemuArgs({ ...base, demo }), { instanceOf: LabConfigError, message: /demo length/ }, String(demo));
  }
});

test('progress: warnings are shown, snapshots only with --verbose (the demo view shows them)', async (t) => {
  const [s] = await snapshots();
  t.is(formatEvent({ type: 'warning', t: 3, message: 'ivctop: bad', line: '' }), '[   3s] ! warning: ivctop: bad');
  t.is(formatEvent({ type: 'ivctop', t: 3, n: 1, snapshot: s! }), undefined);
  t.is(formatEvent({ type: 'ivctop', t: 3, n: 1, snapshot: s! }, { verbose: true }), '[   3s] ivctop snapshot 1');
});

async function fakeLab(t: ExecutionContext, transcript: string) {
  const dir = await mkdtemp(path.join(tmpdir(), 'fastivc-demo-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  for (const f of ['xen', 'vmlinuz', 'initrd', 'disk']) await writeFile(path.join(dir, f), f);
  const qemu = path.join(dir, 'qemu');
  const fixture = path.join(root, 'test', 'fixtures', 'serial', transcript);
  await writeFile(
    qemu,
    `#!/bin/sh\n[ "$1" = --version ] && { echo 'QEMU emulator version 0 (fake)'; exit 0; }\n` +
      `printf '%s\\n' "$@" > '${dir}/argv'\ncat '${fixture}'\nexit 0\n`,
  );
  await chmod(qemu, 0o755);
  return { dir, qemu };
}

test('a run with demo snapshots: ivctop events, the report keeps the last one, the scenarios still judge the run', async (t) => {
  const { dir, qemu } = await fakeLab(t, 'demo.txt');
  const events: LabEvent[] = [];
  const { report } = await runLab({
    qemu,
    xen: path.join(dir, 'xen'),
    kernel: path.join(dir, 'vmlinuz'),
    initrd: path.join(dir, 'initrd'),
    disk: path.join(dir, 'disk'),
    reportPath: path.join(dir, 'out', 'report.json'),
    logsDir: path.join(dir, 'out', 'logs'),
    demo: 60,
    timeouts: { firstOutput: 10, dom0Up: 10, idle: 10, total: 30, exit: 10 },
    onEvent: (e) => events.push(e),
  });
  const snaps = await snapshots();
  t.true(report.pass, JSON.stringify(report.scenarios));
  t.deepEqual(
    report.scenarios.map((s) => s.name),
    ['bulk-64KiB-domU-domU-tcp', 'bulk-64KiB-domU-domU-tunnel', 'dem-conformance'],
  );
  t.deepEqual(report.demo, { seconds: 60, snapshots: 3, malformed: 1, last: snaps[2]! });
  const onDisk = JSON.parse(await readFile(path.join(dir, 'out', 'report.json'), 'utf8')) as typeof report;
  t.is(onDisk.demo?.last?.time, snaps[2]!.time);
  t.deepEqual(
    events.flatMap((e) => (e.type === 'ivctop' ? [[e.n, e.snapshot.time]] : [])),
    snaps.map((s, i) => [i + 1, s.time]),
  );
  t.is(events.filter((e) => e.type === 'warning').length, 1);
  t.false(events.some((e) => e.type === 'protocol-error'));
  // The request reached the dom0 command line.
  t.regex(await readFile(path.join(dir, 'argv'), 'utf8'), / fastivc\.demo=60,/);
});

test('a demo run where dom0 streams nothing: a warning, the report says 0 snapshots, the run is judged as usual', async (t) => {
  const { dir, qemu } = await fakeLab(t, 'success.txt');
  const events: LabEvent[] = [];
  const { report } = await runLab({
    qemu,
    xen: path.join(dir, 'xen'),
    kernel: path.join(dir, 'vmlinuz'),
    initrd: path.join(dir, 'initrd'),
    disk: path.join(dir, 'disk'),
    reportPath: path.join(dir, 'out', 'report.json'),
    logsDir: path.join(dir, 'out', 'logs'),
    demo: 5,
    timeouts: { firstOutput: 10, dom0Up: 10, idle: 10, total: 30, exit: 10 },
    onEvent: (e) => events.push(e),
  });
  t.true(report.pass);
  t.deepEqual(report.demo, { seconds: 5, snapshots: 0, malformed: 0, last: null });
  const w = events.find((e) => e.type === 'warning');
  t.is(w?.type === 'warning' ? w.message : '', 'demo: dom0 streamed no ivctop snapshot');
});
