import { mkdir, mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import test, { type ExecutionContext } from 'ava';
import type { LabEvent } from '../lab/runner/events.js';
import { parseMarkerLine, type Marker } from '../lab/runner/markers.js';
import { ReportBuilder } from '../lab/runner/report.js';
import { createMarkerSink, type MarkerSink } from '../lab/runner/sink.js';

interface Fixture {
  dir: string;
  logsDir: string;
  builder: ReportBuilder;
  events: LabEvent[];
  errors: { message: string; line: string }[];
  sink: MarkerSink;
  /** Applies one `@@FASTIVC ...` line (it must parse as a marker); returns apply()'s answer. */
  apply: (line: string, t?: number) => boolean;
}

/** A sink writing to a fresh temporary folder (removed when the test ends), recording what it emits and flags. */
async function fixture(t: ExecutionContext): Promise<Fixture> {
  const dir = await mkdtemp(path.join(tmpdir(), 'fastivc-sink-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const logsDir = path.join(dir, 'logs');
  await mkdir(logsDir);
  const builder = new ReportBuilder(new Date(0), 'logs/serial.log');
  const events: LabEvent[] = [];
  const errors: { message: string; line: string }[] = [];
  const sink = createMarkerSink({
    builder,
    logsDir,
    reportDir: dir,
    reserved: [path.join(logsDir, 'serial.log'), path.join(logsDir, 'qemu-stderr.log')],
    reservedFor: "the runner's own logs",
    emit: (e) => events.push(e),
    onProtocolError: (message, line) => errors.push({ message, line }),
  });
  const apply = (line: string, t = 1): boolean => {
    const p = parseMarkerLine(line);
    if (p.kind !== 'marker') throw new Error(`not a marker: ${line}`);
    return sink.apply(p.marker, line, t);
  };
  return { dir, logsDir, builder, events, errors, sink, apply };
}

/** The log the report names for scenario `name`. */
function reportedLog(f: Fixture, name: string): string | undefined {
  f.builder.scenarioStarted(name);
  return f.builder.build({ durationS: 1, whyEnded: 'x' }).scenarios.find((s) => s.name === name)?.log;
}

test('a log block that comes again appends to its file; its first log-begin truncates an old one', async (t) => {
  const f = await fixture(t);
  const file = path.join(f.logsDir, 'a-tcp.log');
  await writeFile(file, 'from an earlier run\n');
  t.true(f.apply('@@FASTIVC log-begin a-tcp', 2));
  f.sink.logLine('a-tcp', 'first');
  t.true(f.apply('@@FASTIVC log-end a-tcp', 3));
  t.true(f.apply('@@FASTIVC log-begin a-tcp', 4));
  f.sink.logLine('a-tcp', 'second');
  t.true(f.apply('@@FASTIVC log-end a-tcp', 5));
  await f.sink.closeAll();
  t.is(await readFile(file, 'utf8'), 'first\nsecond\n');
  t.deepEqual(f.events, [
    { type: 'log-begin', t: 2, name: 'a-tcp', file },
    { type: 'log-end', t: 3, name: 'a-tcp' },
    { type: 'log-begin', t: 4, name: 'a-tcp', file },
    { type: 'log-end', t: 5, name: 'a-tcp' },
  ]);
  t.deepEqual(f.errors, []);
  t.is(reportedLog(f, 'a-tcp'), 'logs/a-tcp.log');
});

test('a reserved log name is refused as a protocol error: no file, no event, its lines dropped', async (t) => {
  const f = await fixture(t);
  const line = 'xen: @@FASTIVC log-begin serial';
  t.true(f.apply(line));
  f.sink.logLine('serial', 'injected');
  t.true(f.apply('@@FASTIVC log-end serial'));
  await f.sink.closeAll();
  t.deepEqual(f.errors, [{ message: "log name serial is reserved for the runner's own logs", line }]);
  t.deepEqual(f.events, [{ type: 'log-end', t: 1, name: 'serial' }]);
  t.deepEqual(await readdir(f.logsDir), []);
  t.is(reportedLog(f, 'serial'), 'logs/serial.log');
});

test('a second result for a name is flagged (the last one counts) and still emitted', async (t) => {
  const f = await fixture(t);
  const first = '@@FASTIVC result {"name":"a","pass":false,"metrics":{"n":1}}';
  const second = '@@FASTIVC result {"name":"a","pass":true,"metrics":{"n":2}}';
  t.true(f.apply(first));
  t.deepEqual(f.errors, []);
  t.true(f.apply(second, 2));
  t.deepEqual(f.errors, [{ message: 'second result for a (the last one counts)', line: second }]);
  t.deepEqual(
    f.events.map((e) => (e.type === 'result' ? [e.t, e.result.metrics.n] : e.type)),
    [
      [1, 1],
      [2, 2],
    ],
  );
  const r = f.builder.build({ durationS: 1, whyEnded: 'x' });
  t.deepEqual(r.scenarios[0], { name: 'a', pass: true, metrics: { n: 2 }, log: 'logs/serial.log' });
});

test('log lines are written only between the block\'s log-begin and log-end', async (t) => {
  const f = await fixture(t);
  f.sink.logLine('b', 'before');
  f.apply('@@FASTIVC log-begin b');
  f.sink.logLine('b', 'inside 1');
  f.sink.logLine('other', 'not this block');
  f.sink.logLine('b', 'inside 2');
  f.apply('@@FASTIVC log-end b');
  f.sink.logLine('b', 'after');
  await f.sink.closeAll();
  f.sink.logLine('b', 'after closeAll');
  t.is(await readFile(path.join(f.logsDir, 'b.log'), 'utf8'), 'inside 1\ninside 2\n');
  t.deepEqual(await readdir(f.logsDir), ['b.log']);
});

test('plan, versions and scenario-start are applied; the other phases, done and ivctop are left to the caller', async (t) => {
  const f = await fixture(t);
  t.true(f.apply('@@FASTIVC plan a b'));
  t.true(f.apply('@@FASTIVC versions {"xen":"4.17"}'));
  t.true(f.apply('@@FASTIVC phase scenario-start b'));
  const bad = '@@FASTIVC phase scenario-start b c';
  t.true(f.apply(bad));
  t.false(f.apply('@@FASTIVC phase dom0-up'));
  t.false(f.apply('@@FASTIVC done'));
  const ivctop: Marker = { kind: 'ivctop', snapshot: {} as never };
  t.false(f.sink.apply(ivctop, '@@FASTIVC ivctop {}', 1));
  t.deepEqual(f.errors, [{ message: 'phase scenario-start expects exactly one valid scenario name', line: bad }]);
  t.deepEqual(f.events, [
    { type: 'plan', t: 1, names: ['a', 'b'] },
    { type: 'versions', t: 1, versions: { xen: '4.17' } },
    { type: 'scenario-start', t: 1, name: 'b' },
  ]);
  const r = f.builder.build({ durationS: 1, whyEnded: 'stopped' });
  t.deepEqual(r.versions, { xen: '4.17' });
  t.deepEqual(
    r.scenarios.map((s) => [s.name, s.reason]),
    [
      ['a', 'no result: stopped'],
      ['b', 'no result: stopped (the scenario had started)'],
    ],
  );
});
