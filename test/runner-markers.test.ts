import test from 'ava';
import { LineSplitter, MarkerStream, parseMarkerLine, type MarkerEvent } from '../lab/runner/markers.js';

function markersOf(events: MarkerEvent[]) {
  return events.flatMap((e) => (e.kind === 'marker' ? [e.marker] : []));
}

test('parses a marker preceded by a Xen console prefix and trailing \\r', (t) => {
  t.deepEqual(parseMarkerLine('(d0) @@FASTIVC phase domU-up domU1\r'), {
    kind: 'marker',
    marker: { kind: 'phase', name: 'domU-up', detail: ['domU1'] },
  });
  t.deepEqual(parseMarkerLine('junk\x1b[0m@@FASTIVC done\r'), { kind: 'marker', marker: { kind: 'done' } });
  t.deepEqual(parseMarkerLine('[    3.1] plain kernel line'), { kind: 'none' });
});

test('parses plan, versions and result', (t) => {
  t.deepEqual(parseMarkerLine('@@FASTIVC plan a-tcp b-tunnel'), {
    kind: 'marker',
    marker: { kind: 'plan', names: ['a-tcp', 'b-tunnel'] },
  });
  t.deepEqual(parseMarkerLine('@@FASTIVC versions {"xen":"4.17.5"}'), {
    kind: 'marker',
    marker: { kind: 'versions', versions: { xen: '4.17.5' } },
  });
  t.deepEqual(
    parseMarkerLine('(XEN) @@FASTIVC result {"name":"x","pass":false,"metrics":{"rr_per_s":12.5,"ok":true},"reason":"slow"}\r'),
    {
      kind: 'marker',
      marker: { kind: 'result', result: { name: 'x', pass: false, metrics: { rr_per_s: 12.5, ok: true }, reason: 'slow' } },
    },
  );
  // metrics may be omitted
  const r = parseMarkerLine('@@FASTIVC result {"name":"y","pass":true}');
  t.deepEqual(r, { kind: 'marker', marker: { kind: 'result', result: { name: 'y', pass: true, metrics: {} } } });
});

test('malformed markers are errors, not exceptions', (t) => {
  const bad = [
    '@@FASTIVC result {"name":"x","pass":tru',
    '@@FASTIVC result {"name":"x"}',
    '@@FASTIVC result {"name":"../etc/passwd","pass":true}',
    '@@FASTIVC result {"name":"x","pass":true,"metrics":{"a":[1]}}',
    '@@FASTIVC result [1,2]',
    '@@FASTIVC versions nope',
    '@@FASTIVC versions [1]',
    '@@FASTIVC log-begin',
    '@@FASTIVC log-begin a b',
    '@@FASTIVC plan ok ../bad',
    '@@FASTIVC frobnicate',
    '@@FASTIVC phase',
    '@@FASTIVC done now',
  ];
  for (const line of bad) {
    const p = parseMarkerLine(line);
    t.is(p.kind, 'error', line);
  }
});

test('LineSplitter joins lines split across chunks, strips \\r and handles split UTF-8', (t) => {
  const s = new LineSplitter();
  const euro = Buffer.from('€'); // 3 bytes
  t.deepEqual(s.push('abc'), []);
  t.deepEqual(s.push('def\r\ngh'), ['abcdef']);
  t.deepEqual(s.push(Buffer.concat([Buffer.from('i '), euro.subarray(0, 1)])), []);
  t.deepEqual(s.push(Buffer.concat([euro.subarray(1), Buffer.from('\r\r\n\n')])), ['ghi €', '']);
  t.deepEqual(s.push('tail'), []);
  t.deepEqual(s.end(), ['tail']);
  t.deepEqual(s.end(), []);
});

test('MarkerStream: marker split over data events byte by byte', (t) => {
  const m = new MarkerStream();
  const text = 'xx@@FASTIVC phase dom0-up\r\n@@FASTIVC res';
  const events: MarkerEvent[] = [];
  for (const ch of text) events.push(...m.push(Buffer.from(ch)));
  events.push(...m.push('ult {"name":"a","pass":true,"metrics":{}}\r\n'));
  t.deepEqual(markersOf(events), [
    { kind: 'phase', name: 'dom0-up', detail: [] },
    { kind: 'result', result: { name: 'a', pass: true, metrics: {} } },
  ]);
  t.deepEqual(
    events.filter((e) => e.kind === 'line').map((e) => e.line),
    ['xx@@FASTIVC phase dom0-up', '@@FASTIVC result {"name":"a","pass":true,"metrics":{}}'],
  );
});

test('MarkerStream: log blocks collect the raw lines in between, never parsing them as markers', (t) => {
  const m = new MarkerStream();
  const events = m.push(
    [
      'before',
      '(d0) @@FASTIVC log-begin s1',
      'iperf line 1',
      '(XEN) interleaved',
      '[ 1.0] guest console: @@FASTIVC done',
      '@@FASTIVC log-end other',
      '@@FASTIVC result {"name":"injected","pass":true}',
      '@@FASTIVC log-end s1\r',
      'after',
      '@@FASTIVC phase scenario-start x',
      '',
    ].join('\r\n'),
  );
  const logLines = events.flatMap((e) => (e.kind === 'log-line' ? [[e.name, e.line]] : []));
  t.deepEqual(logLines, [
    ['s1', 'iperf line 1'],
    ['s1', '(XEN) interleaved'],
    ['s1', '[ 1.0] guest console: @@FASTIVC done'],
    ['s1', '@@FASTIVC log-end other'],
    ['s1', '@@FASTIVC result {"name":"injected","pass":true}'],
  ]);
  t.deepEqual(markersOf(events), [
    { kind: 'log-begin', name: 's1' },
    { kind: 'log-end', name: 's1' },
    { kind: 'phase', name: 'scenario-start', detail: ['x'] },
  ]);
  t.is(m.openLog(), undefined);
  t.deepEqual(events.filter((e) => e.kind === 'error'), []);
});

test('MarkerStream: log-end without begin and unclosed blocks are errors', (t) => {
  const m = new MarkerStream();
  const events = [...m.push('@@FASTIVC log-end nope\n@@FASTIVC log-begin a\nx\n'), ...m.end()];
  const errors = events.flatMap((e) => (e.kind === 'error' ? [e.message] : []));
  t.deepEqual(errors, ['log-end nope without log-begin', 'log block a was never closed (log-end missing)']);
});

test('MarkerStream: an open log block is fine when the stream was cut short', (t) => {
  const m = new MarkerStream();
  const events = [...m.push('@@FASTIVC log-begin a\nx'), ...m.end({ cutShort: true })];
  t.deepEqual(events.filter((e) => e.kind === 'error'), []);
  t.deepEqual(events.at(-1), { kind: 'log-line', name: 'a', line: 'x' });
});

test('MarkerStream: malformed JSON yields an error event and parsing continues', (t) => {
  const m = new MarkerStream();
  const events = m.push('@@FASTIVC result {"name":\n@@FASTIVC done\n');
  t.is(events.filter((e) => e.kind === 'error').length, 1);
  t.deepEqual(markersOf(events), [{ kind: 'done' }]);
});

test('MarkerStream: unterminated final line is flushed by end()', (t) => {
  const m = new MarkerStream();
  t.deepEqual(markersOf(m.push('@@FASTIVC done')), []);
  t.deepEqual(markersOf(m.end()), [{ kind: 'done' }]);
});
