import { mkdtemp, readFile, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import test from 'ava';
import { LAB_BOOT, LAB_RUN, ReportBuilder, computePass, relativePath, writeReport } from '../lab/runner/report.js';

const started = new Date('2026-01-02T03:04:05.000Z');

test('empty run fails', (t) => {
  const r = new ReportBuilder(started, 'logs/serial.log').build({ durationS: 1, whyEnded: 'x' });
  t.false(r.pass);
  t.deepEqual(r.scenarios, []);
  t.is(r.started_at, '2026-01-02T03:04:05.000Z');
  t.false(computePass([]));
});

test('results pass; planned scenarios without results fail with the reason the run ended', (t) => {
  const b = new ReportBuilder(started, 'logs/serial.log');
  b.mergeVersions({ qemu: 'QEMU 7.2' });
  b.setPlan(['a-tcp', 'b-tunnel', 'c-tunnel']);
  b.scenarioStarted('a-tcp');
  b.addResult({ name: 'a-tcp', pass: true, metrics: { throughput_MBps: 5.1 } });
  b.setLog('a-tcp', 'logs/a-tcp.log');
  b.scenarioStarted('b-tunnel');
  b.mergeVersions({ xen: '4.17.5' });
  const r = b.build({ durationS: 12.345, whyEnded: 'the run reported done without it' });
  t.false(r.pass);
  t.is(r.duration_s, 12.3);
  t.deepEqual(r.versions, { qemu: 'QEMU 7.2', xen: '4.17.5' });
  t.deepEqual(r.scenarios, [
    { name: 'a-tcp', pass: true, metrics: { throughput_MBps: 5.1 }, log: 'logs/a-tcp.log' },
    {
      name: 'b-tunnel',
      pass: false,
      metrics: {},
      log: 'logs/serial.log',
      reason: 'no result: the run reported done without it (the scenario had started)',
    },
    { name: 'c-tunnel', pass: false, metrics: {}, log: 'logs/serial.log', reason: 'no result: the run reported done without it' },
  ]);
});

test('scenario-start without a plan or result fails; unplanned results are kept', (t) => {
  const b = new ReportBuilder(started, 'logs/serial.log');
  b.addResult({ name: 'x', pass: true, metrics: {} });
  b.scenarioStarted('y');
  const r = b.build({ durationS: 3, whyEnded: 'idle timeout' });
  t.deepEqual(
    r.scenarios.map((s) => [s.name, s.pass, s.reason]),
    [
      ['x', true, undefined],
      ['y', false, 'no result: idle timeout (the scenario had started)'],
    ],
  );
  t.false(r.pass);
});

test('all results passed -> pass; a lab failure or protocol error fails the run', (t) => {
  const b = new ReportBuilder(started, 'logs/serial.log');
  b.setPlan(['a']);
  b.addResult({ name: 'a', pass: true, metrics: {}, reason: 'fine' });
  t.true(b.build({ durationS: 1, whyEnded: '' }).pass);
  t.is(b.build({ durationS: 1, whyEnded: '' }).scenarios[0]?.reason, 'fine');

  const p = new ReportBuilder(started, 'logs/serial.log');
  p.addResult({ name: 'a', pass: true, metrics: {} });
  p.addProtocolError('result: malformed JSON');
  const pr = p.build({ durationS: 1, whyEnded: '' });
  t.false(pr.pass);
  t.is(pr.scenarios[1]?.name, 'lab-protocol');
  t.regex(pr.scenarios[1]?.reason ?? '', /1 malformed marker line\(s\): result: malformed JSON/);

  const f = new ReportBuilder(started, 'logs/serial.log');
  f.addResult({ name: 'a', pass: true, metrics: {} });
  f.fail(LAB_RUN, 'first');
  f.fail(LAB_BOOT, 'second is ignored');
  const fr = f.build({ durationS: 1, whyEnded: '' });
  t.false(fr.pass);
  t.deepEqual(fr.scenarios[1], { name: 'lab-run', pass: false, metrics: {}, log: 'logs/serial.log', reason: 'first' });
});

test('duplicate result replaces the first and is reported', (t) => {
  const b = new ReportBuilder(started, 's.log');
  t.false(b.addResult({ name: 'a', pass: false, metrics: {} }));
  t.true(b.addResult({ name: 'a', pass: true, metrics: {} }));
  t.deepEqual(b.build({ durationS: 0, whyEnded: '' }).scenarios.map((s) => s.pass), [true]);
});

test('relativePath and atomic write', async (t) => {
  t.is(relativePath('/a/build/lab', '/a/build/lab/logs/x.log'), 'logs/x.log');
  const dir = await mkdtemp(path.join(tmpdir(), 'fastivc-report-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const file = path.join(dir, 'sub', 'report.json');
  const report = new ReportBuilder(started, 'logs/serial.log').build({ durationS: 0, whyEnded: '' });
  await writeReport(file, report);
  await writeReport(file, { ...report, duration_s: 2 });
  t.deepEqual(JSON.parse(await readFile(file, 'utf8')), { ...report, duration_s: 2 });
  t.deepEqual(await readdir(path.dirname(file)), ['report.json']);
});
