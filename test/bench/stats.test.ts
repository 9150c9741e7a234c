/** Benchmark statistics: quartiles (type 7), summaries grouped by series and x, ratios of medians. */
import test from 'ava';
import { ratioOfMedians, spread, summarize, type Sample, type SummaryRow } from '../../tui/src/bench/stats.js';

const close = (a: number, b: number): boolean => Math.abs(a - b) < 1e-12;

test('spread of [1,2,3,4]: quartiles by linear interpolation, sample stdev', (t) => {
  const s = spread([1, 2, 3, 4]);
  t.is(s.n, 4);
  t.is(s.min, 1);
  t.is(s.max, 4);
  t.is(s.q1, 1.75);
  t.is(s.median, 2.5);
  t.is(s.q3, 3.25);
  t.is(s.mean, 2.5);
  t.true(close(s.stdev, Math.sqrt(5 / 3)));
});

test('spread sorts a copy and does not touch its input', (t) => {
  const values = [4, 1, 3, 2];
  const s = spread(values);
  t.deepEqual(values, [4, 1, 3, 2]);
  t.is(s.q1, 1.75);
  t.is(s.q3, 3.25);
});

test('spread quartiles against hand-computed type-7 values', (t) => {
  // n = 6: h = 5p -> q1 at 1.25 (2 + 0.25*8), median at 2.5 ((10+11)/2), q3 at 3.75 (11 + 0.75*1)
  const s = spread([100, 1, 12, 2, 11, 10]);
  t.is(s.q1, 4);
  t.is(s.median, 10.5);
  t.is(s.q3, 11.75);
  // n = 5: q1 and q3 fall on order statistics
  const five = spread([1, 3, 8, 20, 21]);
  t.is(five.q1, 3);
  t.is(five.median, 8);
  t.is(five.q3, 20);
  t.is(five.mean, 10.6);
  // n = 3
  const three = spread([30, 10, 20]);
  t.is(three.q1, 15);
  t.is(three.q3, 25);
  t.is(three.stdev, 10);
});

test('spread of one value: stdev 0, every statistic that value', (t) => {
  t.deepEqual(spread([7]), { n: 1, median: 7, min: 7, max: 7, q1: 7, q3: 7, mean: 7, stdev: 0 });
});

test('spread throws RangeError on empty or non-finite input', (t) => {
  t.throws(() => spread([]), { instanceOf: RangeError });
  t.throws(() => spread([1, Number.NaN]), { instanceOf: RangeError });
  t.throws(() => spread([Number.POSITIVE_INFINITY]), { instanceOf: RangeError });
  t.throws(() => spread([2, Number.NEGATIVE_INFINITY]), { instanceOf: RangeError });
});

const sample = (series: string, x: number, rep: number, values: Record<string, number>): Sample => ({
  series,
  x,
  rep,
  values,
});

test('summarize groups by (series, x): series by first appearance, x ascending, metric order', (t) => {
  const samples = [
    sample('tunnel', 1024, 0, { mbps: 10, cpu: 1 }),
    sample('tcp', 64, 0, { mbps: 1 }),
    sample('tunnel', 64, 0, { mbps: 5, cpu: 2 }),
    sample('tunnel', 1024, 1, { mbps: 30, cpu: 3 }),
    sample('tcp', 64, 1, { mbps: 3 }),
    sample('tunnel', 1024, 2, { mbps: 20, cpu: 2 }),
  ];
  const rows = summarize(samples);
  t.deepEqual(
    rows.map((r) => [r.series, r.x, r.metric, r.spread.n, r.spread.median]),
    [
      ['tunnel', 64, 'mbps', 1, 5],
      ['tunnel', 64, 'cpu', 1, 2],
      ['tunnel', 1024, 'mbps', 3, 20],
      ['tunnel', 1024, 'cpu', 3, 2],
      ['tcp', 64, 'mbps', 2, 2],
    ],
  );
});

test('summarize with explicit metrics keeps their order and skips samples lacking a metric', (t) => {
  const samples = [
    sample('a', 1, 0, { mbps: 10, cpu: 0.5 }),
    sample('a', 1, 1, { mbps: 20 }),
    sample('a', 1, 2, { mbps: 30, cpu: 0.7 }),
    sample('a', 2, 0, { mbps: 40 }),
  ];
  const rows = summarize(samples, ['cpu', 'mbps', 'absent']);
  t.deepEqual(
    rows.map((r) => [r.x, r.metric, r.spread.n, r.spread.median]),
    [
      [1, 'cpu', 2, 0.6],
      [1, 'mbps', 3, 20],
      // x = 2 has no cpu at all: no row for it
      [2, 'mbps', 1, 40],
    ],
  );
});

test('summarize treats a non-finite value as missing, and gives nothing for no samples', (t) => {
  const rows = summarize([sample('a', 1, 0, { m: Number.NaN }), sample('a', 1, 1, { m: 4 })]);
  t.is(rows.length, 1);
  t.is(rows[0]?.spread.n, 1);
  t.deepEqual(summarize([]), []);
});

const row = (series: string, x: number, metric: string, median: number): SummaryRow => ({
  series,
  x,
  metric,
  spread: { n: 1, median, min: median, max: median, q1: median, q3: median, mean: median, stdev: 0 },
});

test('ratioOfMedians: x both series have, ascending, skipping zero denominators', (t) => {
  const rows = [
    row('tunnel', 4096, 'mbps', 300),
    row('tunnel', 64, 'mbps', 30),
    row('tunnel', 1, 'mbps', 5),
    row('tunnel', 8, 'mbps', 7),
    row('tcp', 64, 'mbps', 10),
    row('tcp', 4096, 'mbps', 200),
    row('tcp', 1, 'mbps', 0),
    row('tcp', 2, 'mbps', 3),
    row('tcp', 64, 'cpu', 1),
    row('tunnel', 64, 'cpu', 99),
  ];
  const r = ratioOfMedians(rows, 'mbps', 'tunnel', 'tcp');
  t.deepEqual(r, [
    { x: 64, ratio: 3 },
    { x: 4096, ratio: 1.5 },
  ]);
  t.true(r.every((p) => Number.isFinite(p.ratio)));
  t.deepEqual(ratioOfMedians(rows, 'cpu', 'tunnel', 'tcp'), [{ x: 64, ratio: 99 }]);
  t.deepEqual(ratioOfMedians(rows, 'mbps', 'nope', 'tcp'), []);
});

test('ratioOfMedians over summarize output', (t) => {
  const samples = [
    sample('tcp', 16, 0, { mbps: 1 }),
    sample('tcp', 16, 1, { mbps: 3 }),
    sample('tcp', 16, 2, { mbps: 2 }),
    sample('tunnel', 16, 0, { mbps: 8 }),
    sample('tunnel', 16, 1, { mbps: 7 }),
  ];
  t.deepEqual(ratioOfMedians(summarize(samples), 'mbps', 'tunnel', 'tcp'), [{ x: 16, ratio: 3.75 }]);
});
