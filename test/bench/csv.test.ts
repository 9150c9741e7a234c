/** CSV of benchmark results: RFC 4180 quoting, number formatting, summary and raw sample tables. */
import test from 'ava';
import { samplesCsv, summaryCsv, toCsv } from '../../tui/src/bench/csv.js';
import { spread, summarize, type Sample } from '../../tui/src/bench/stats.js';

test('toCsv quotes fields with a comma, quote, CR or LF and doubles quotes', (t) => {
  const csv = toCsv(
    ['name', 'note'],
    [
      { name: 'a,b', note: 'say "hi"' },
      { name: 'two\nlines', note: 'cr\rhere' },
      { name: 'plain', note: 'also plain' },
    ],
  );
  t.is(csv, 'name,note\n"a,b","say ""hi"""\n"two\nlines","cr\rhere"\nplain,also plain\n');
});

test('toCsv: header quoted too, empty fields for undefined, null and missing keys, booleans as words', (t) => {
  const csv = toCsv(['a,b', 'c', 'd', 'e'], [{ 'a,b': undefined, c: null, e: true }, { 'a,b': false, c: '', d: 0 }]);
  t.is(csv, '"a,b",c,d,e\n,,,true\nfalse,,0,\n');
});

test('toCsv numbers: integers exactly, others with up to 6 significant digits', (t) => {
  const values = [123456789, 1 / 3, 2.5, 1234567.891, 0.000123456789, -0, -42, 1e21, 9007199254740993, 1.1];
  const csv = toCsv(
    values.map((_, i) => `c${i}`),
    [Object.fromEntries(values.map((v, i) => [`c${i}`, v]))],
  );
  const line = csv.split('\n')[1];
  t.is(line, '123456789,0.333333,2.5,1234570,0.000123457,0,-42,1000000000000000000000,9007199254740992,1.1');
  t.true(csv.endsWith('\n'));
  t.false(csv.includes('\r'));
});

test('toCsv with no rows is the header line', (t) => {
  t.is(toCsv(['x', 'y'], []), 'x,y\n');
});

test('summaryCsv: columns and one line per summary row', (t) => {
  const csv = summaryCsv('stream, 1 conn', [
    { series: 'tunnel-4', x: 4096, metric: 'MB/s', spread: spread([1, 2, 3, 4]) },
    { series: 'tcp', x: 1, metric: 'MB/s', spread: spread([10]) },
  ]);
  t.is(
    csv,
    'experiment,series,x,metric,n,median,q1,q3,min,max,mean,stdev\n' +
      '"stream, 1 conn",tunnel-4,4096,MB/s,4,2.5,1.75,3.25,1,4,2.5,1.29099\n' +
      '"stream, 1 conn",tcp,1,MB/s,1,10,10,10,10,10,10,0\n',
  );
});

test('samplesCsv: metric columns are the union by first appearance; missing metrics are empty', (t) => {
  const samples: Sample[] = [
    { series: 'tcp', x: 64, rep: 0, values: { 'MB/s': 100.25 } },
    { series: 'tcp', x: 64, rep: 1, values: { cpu: 0.5, 'MB/s': 101 } },
    { series: 'tun"nel', x: 64, rep: 0, values: { 'lat,us': 12, cpu: 0.25 } },
  ];
  t.is(
    samplesCsv('e1', samples),
    'experiment,series,x,rep,MB/s,cpu,"lat,us"\n' +
      'e1,tcp,64,0,100.25,,\n' +
      'e1,tcp,64,1,101,0.5,\n' +
      'e1,"tun""nel",64,0,,0.25,12\n',
  );
});

test('samplesCsv: a metric named like a fixed column does not overwrite it', (t) => {
  const csv = samplesCsv('e', [{ series: 's', x: 2, rep: 0, values: { x: 99 } }]);
  t.is(csv, 'experiment,series,x,rep,x\ne,s,2,0,99\n');
});

test('summaryCsv over summarize output has one line per (series, x, metric)', (t) => {
  const samples: Sample[] = [
    { series: 'a', x: 1, rep: 0, values: { m: 1, n: 2 } },
    { series: 'a', x: 2, rep: 0, values: { m: 3 } },
  ];
  const lines = summaryCsv('e', summarize(samples)).trimEnd().split('\n');
  t.is(lines.length, 1 + 3);
});
