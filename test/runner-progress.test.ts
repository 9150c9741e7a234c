import test from 'ava';
import type { LabEvent } from '../lab/runner/events.js';
import { formatElapsed, formatEvent, formatMetricValue, formatSummary, progressPrinter } from '../lab/runner/progress.js';
import type { Report } from '../lab/runner/report.js';

test('elapsed prefix and metric values', (t) => {
  t.is(formatElapsed(31.9), '[  31s]');
  t.is(formatElapsed(1234), '[1234s]');
  t.is(formatMetricValue(5.123456), '5.123');
  t.is(formatMetricValue(123456.7), '123457');
  t.is(formatMetricValue(42), '42');
  t.is(formatMetricValue('tunnel'), 'tunnel');
});

test('event lines', (t) => {
  const lines = (
    [
      { type: 'phase', t: 31, name: 'dom0-up', detail: [] },
      { type: 'phase', t: 45, name: 'domU-up', detail: ['domU1'] },
      { type: 'scenario-start', t: 50, name: 'bulk-64MiB-domU-domU-tcp' },
      {
        type: 'result',
        t: 70,
        result: { name: 'bulk-64MiB-domU-domU-tcp', pass: true, metrics: { throughput_MBps: 5.1, bytes: 67108864 } },
      },
      { type: 'result', t: 71, result: { name: 'x', pass: false, metrics: {}, reason: 'fell\nback' } },
      { type: 'serial', t: 72, line: 'raw' },
      { type: 'failure', t: 99, scenario: 'lab-run', reason: 'no marker line for 300 s' },
    ] satisfies LabEvent[]
  ).map((e) => formatEvent(e));
  t.deepEqual(lines, [
    '[  31s] dom0 up',
    '[  45s] domU1 up',
    '[  50s] > bulk-64MiB-domU-domU-tcp',
    '[  70s]   PASS bulk-64MiB-domU-domU-tcp  throughput_MBps=5.1 bytes=67108864',
    '[  71s]   FAIL x  fell back',
    undefined,
    '[  99s] ! FAIL lab-run: no marker line for 300 s',
  ]);
  t.is(formatEvent({ type: 'serial', t: 72, line: 'raw' }, { verbose: true }), '[  72s] | raw');
});

const report: Report = {
  versions: {},
  started_at: '2026-01-01T00:00:00.000Z',
  duration_s: 80.5,
  pass: false,
  scenarios: [
    { name: 'bulk-64KiB-domU-domU-tcp', pass: true, metrics: { throughput_MBps: 5.1 }, log: 'logs/a.log' },
    { name: 'lab-run', pass: false, metrics: {}, log: 'logs/serial.log', reason: 'idle timeout' },
  ],
};

test('summary table', (t) => {
  t.is(
    formatSummary(report),
    [
      'scenario                  result  details',
      'bulk-64KiB-domU-domU-tcp  PASS    throughput_MBps=5.1',
      'lab-run                   FAIL    idle timeout',
      'FAIL: 1 passed, 1 failed, 80.5 s',
      '',
    ].join('\n'),
  );
});

test('printer writes lines and the summary on the report event', (t) => {
  let out = '';
  const p = progressPrinter({ write: (s: string) => (out += s) });
  p({ type: 'done', t: 3 });
  p({ type: 'report', t: 4, path: '/r.json', report });
  t.true(out.startsWith('[   3s] done, waiting for QEMU to exit\n[   4s] report: /r.json\n\nscenario'));
});
