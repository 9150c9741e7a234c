/** The SVG chart writer: escaping, markers, scales, error bars, "no data", well-formed and deterministic output. */
import test from 'ava';
import {
  formatBytes,
  formatShort,
  renderSvg,
  type Panel,
  type PlotPoint,
  type PlotSpec,
} from '../../tui/src/bench/svg.js';

/**
 * A small XML well-formedness check: one root element, every tag closed in order, attributes quoted and unique,
 * no raw "<" in text or attributes, every "&" an entity reference. Returns the problem, or null.
 */
function xmlProblem(xml: string): string | null {
  const stack: string[] = [];
  let roots = 0;
  let i = 0;
  const tag = /<(\/?)([A-Za-z_][\w.:-]*)((?:\s+[A-Za-z_][\w.:-]*\s*=\s*(?:"[^"]*"|'[^']*'))*)\s*(\/?)>/y;
  const attr = /([A-Za-z_][\w.:-]*)\s*=\s*(?:"([^"]*)"|'([^']*)')/g;
  const badAmp = /&(?!(?:amp|lt|gt|quot|apos|#\d+|#x[0-9a-fA-F]+);)/;
  while (i < xml.length) {
    const lt = xml.indexOf('<', i);
    const textPart = xml.slice(i, lt === -1 ? xml.length : lt);
    if (badAmp.test(textPart)) return `bad & in text near ${i}`;
    if (textPart.trim() !== '' && stack.length === 0) return `text outside the root near ${i}`;
    if (lt === -1) break;
    if (xml.startsWith('<!--', lt)) {
      const end = xml.indexOf('-->', lt);
      if (end === -1) return 'unclosed comment';
      i = end + 3;
      continue;
    }
    tag.lastIndex = lt;
    const m = tag.exec(xml);
    if (m === null) return `malformed tag near ${lt}: ${xml.slice(lt, lt + 40)}`;
    const [, closing, name = '', attrs = '', selfClosing] = m;
    if (closing === '/') {
      if (attrs !== '' || selfClosing === '/') return `bad closing tag ${name}`;
      if (stack.pop() !== name) return `mismatched </${name}> near ${lt}`;
    } else {
      const seen = new Set<string>();
      for (const a of attrs.matchAll(attr)) {
        const key = a[1] ?? '';
        const value = a[2] ?? a[3] ?? '';
        if (seen.has(key)) return `duplicate attribute ${key} on <${name}>`;
        seen.add(key);
        if (value.includes('<') || badAmp.test(value)) return `bad attribute value ${key}="${value}"`;
      }
      if (stack.length === 0) roots++;
      if (roots > 1) return 'more than one root element';
      if (selfClosing !== '/') stack.push(name);
    }
    i = lt + m[0].length;
  }
  if (stack.length > 0) return `unclosed <${stack.join('> <')}>`;
  return roots === 1 ? null : 'no root element';
}

test('the XML checker itself catches what it should', (t) => {
  t.is(xmlProblem('<svg a="1"><g><text>a &amp; b</text></g><rect/></svg>'), null);
  t.not(xmlProblem('<svg><g></svg>'), null);
  t.not(xmlProblem('<svg><text>a & b</text></svg>'), null);
  t.not(xmlProblem('<svg><text>a < b</text></svg>'), null);
  t.not(xmlProblem('<svg a="1" a="2"></svg>'), null);
  t.not(xmlProblem('<svg a=1></svg>'), null);
  t.not(xmlProblem('<svg></svg><svg></svg>'), null);
});

const count = (svg: string, what: RegExp): number => [...svg.matchAll(what)].length;
const circles = (svg: string): number => count(svg, /<circle\b/g);
const cxs = (svg: string): number[] => [...svg.matchAll(/<circle cx="([-\d.]+)"/g)].map((m) => Number(m[1]));
const cys = (svg: string): number[] =>
  [...svg.matchAll(/<circle cx="[-\d.]+" cy="([-\d.]+)"/g)].map((m) => Number(m[1]));
/** Texts of the y tick labels (right-aligned texts). */
const yTickLabels = (svg: string): string[] =>
  [...svg.matchAll(/<text [^>]*text-anchor="end"[^>]*>([^<]*)<\/text>/g)].map((m) => m[1] ?? '');

const POW2 = [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024];

/** A panel with one series "s". */
function one(points: PlotPoint[], extra: Partial<Panel> = {}): Panel {
  return { yLabel: 'y', series: [{ name: 's', points }], ...extra };
}

function spec(panels: Panel[], extra: Partial<PlotSpec> = {}): PlotSpec {
  return { title: 'Throughput', xLabel: 'block size', xScale: 'log2', panels, ...extra };
}

test('the title, labels and every series name appear XML-escaped', (t) => {
  const svg = renderSvg(
    spec(
      [
        {
          yLabel: 'MB/s <median>',
          series: [
            { name: 'tcp <&> "x"', points: [{ x: 1, y: 1 }] },
            { name: "tunnel's", points: [{ x: 2, y: 2 }] },
          ],
        },
      ],
      { title: 'A & B <test>', subtitle: 'sub & title', note: 'n < 3', xLabel: 'size [B] & more' },
    ),
  );
  t.is(xmlProblem(svg), null);
  t.true(svg.includes('A &amp; B &lt;test&gt;'));
  t.true(svg.includes('tcp &lt;&amp;&gt; &quot;x&quot;'));
  t.true(svg.includes('tunnel&apos;s'));
  t.true(svg.includes('MB/s &lt;median&gt;'));
  t.true(svg.includes('sub &amp; title'));
  t.true(svg.includes('n &lt; 3'));
  t.true(svg.includes('size [B] &amp; more'));
  t.false(svg.includes('<&>'));
  t.false(svg.includes('<test>'));
});

test('a standalone document: size, viewBox, white background, sans-serif, no external references', (t) => {
  const svg = renderSvg(spec([one([{ x: 1, y: 1 }])], { width: 500, panelHeight: 200 }));
  t.true(svg.startsWith('<svg xmlns="http://www.w3.org/2000/svg" width="500" height="'));
  t.regex(svg, /^<svg [^>]*height="(\d+)" viewBox="0 0 500 \1" font-family="sans-serif">/);
  t.regex(svg, /<rect x="0" y="0" width="500" height="\d+" fill="#ffffff"\/>/);
  t.false(/href|@import|url\((?!#)/.test(svg));
  t.true(svg.endsWith('</svg>\n'));
});

test('one circle marker per finite point; non-finite points are skipped, not drawn as NaN', (t) => {
  const svg = renderSvg(
    spec([
      {
        yLabel: 'y',
        series: [
          {
            name: 'a',
            points: [
              { x: 1, y: 3 },
              { x: 2, y: Number.NaN },
              { x: 4, y: 5 },
              { x: Number.POSITIVE_INFINITY, y: 1 },
            ],
          },
          { name: 'b', points: [{ x: 1, y: 2 }, { x: 8, y: Number.NEGATIVE_INFINITY }] },
        ],
      },
      { yLabel: 'ratio', series: [{ name: 'a', points: [{ x: 2, y: 1.5 }, { x: Number.NaN, y: 1 }] }] },
    ]),
  );
  t.is(xmlProblem(svg), null);
  t.is(circles(svg), 4);
  t.false(/NaN|Infinity/.test(svg));
});

test('log scales skip non-positive values (x on log2, y on log10)', (t) => {
  const svg = renderSvg(
    spec([
      {
        yLabel: 'MB/s',
        yScale: 'log10',
        series: [
          {
            name: 's',
            points: [
              { x: 1, y: 10 },
              { x: 2, y: 0 },
              { x: 4, y: -5 },
              { x: 0, y: 100 },
              { x: -8, y: 100 },
              { x: 16, y: 1000 },
            ],
          },
        ],
      },
    ]),
  );
  t.is(xmlProblem(svg), null);
  t.is(circles(svg), 2);
  t.false(/NaN|Infinity/.test(svg));
  // a linear y keeps y = 0 and y < 0, a linear x keeps x <= 0
  const linear = renderSvg(
    spec([{ yLabel: 'y', series: [{ name: 's', points: [{ x: 0, y: 0 }, { x: 1, y: -5 }, { x: 2, y: 3 }] }] }], {
      xScale: 'linear',
    }),
  );
  t.is(circles(linear), 3);
});

test('log10 y-axis has decade ticks', (t) => {
  const svg = renderSvg(
    spec([{ yLabel: 'y', yScale: 'log10', series: [{ name: 's', points: [{ x: 1, y: 1.5 }, { x: 2, y: 4000 }] }] }]),
  );
  t.deepEqual(yTickLabels(svg), ['1', '10', '100', '1k', '10k']);
});

test('linear y-axis has nice 1-2-5 ticks from 0 with short labels', (t) => {
  const svg = renderSvg(spec([one([{ x: 1, y: 120 }, { x: 2, y: 3500 }])]));
  t.deepEqual(yTickLabels(svg), ['0', '1k', '2k', '3k', '4k']);
  const big = renderSvg(spec([{ yLabel: 'y', series: [{ name: 's', points: [{ x: 1, y: 2.4e6 }] }] }]));
  t.deepEqual(yTickLabels(big), ['0', '0.5M', '1M', '1.5M', '2M', '2.5M']);
  const small = renderSvg(spec([one([{ x: 1, y: 0.9 }, { x: 2, y: 1.4 }], { yMin: 0.5 })]));
  // yMin is the bottom of the axis; ticks stay on multiples of the step
  t.deepEqual(yTickLabels(small), ['0.6', '0.8', '1', '1.2', '1.4']);
});

test('error bars only where lo/hi are given, as vertical lines with caps', (t) => {
  const none = renderSvg(spec([{ yLabel: 'y', series: [{ name: 's', points: [{ x: 1, y: 1 }, { x: 2, y: 2 }] }] }]));
  t.is(count(none, /class="errbar"/g), 0);
  const some = renderSvg(
    spec([
      {
        yLabel: 'y',
        series: [
          {
            name: 's',
            points: [
              { x: 1, y: 1, lo: 0.5, hi: 1.5 },
              { x: 2, y: 2 },
              { x: 4, y: 3, lo: 2, hi: 4 },
              { x: 8, y: Number.NaN, lo: 1, hi: 2 },
            ],
          },
        ],
      },
    ]),
  );
  t.is(xmlProblem(some), null);
  const bars = [...some.matchAll(/<path class="errbar" d="([^"]+)"/g)].map((m) => m[1] ?? '');
  t.is(bars.length, 2);
  for (const d of bars) {
    // one vertical stroke and two horizontal caps
    t.is(count(d, /V/g), 1);
    t.is(count(d, /H/g), 2);
  }
});

test('a log scale drops a non-positive error-bar end but keeps the point', (t) => {
  const svg = renderSvg(
    spec([{ yLabel: 'y', yScale: 'log10', series: [{ name: 's', points: [{ x: 1, y: 10, lo: 0, hi: 20 }] }] }]),
  );
  const d = /class="errbar" d="([^"]+)"/.exec(svg)?.[1] ?? '';
  t.is(count(d, /H/g), 1);
  t.is(circles(svg), 1);
  t.false(svg.includes('NaN'));
});

test('x positions increase with x on a log2 scale, evenly for powers of two', (t) => {
  const svg = renderSvg(
    spec([{ yLabel: 'y', series: [{ name: 's', points: [...POW2].reverse().map((x) => ({ x, y: x })) }] }]),
  );
  const xs = cxs(svg);
  t.is(xs.length, POW2.length);
  const gaps = xs.slice(1).map((x, i) => x - (xs[i] ?? 0));
  t.true(gaps.every((g) => g > 0));
  const first = gaps[0] ?? 0;
  t.true(gaps.every((g) => Math.abs(g - first) <= 0.02));
  // and y grows upwards
  const ys = cys(svg);
  t.true(ys.slice(1).every((y, i) => y < (ys[i] ?? 0)));
});

test('x tick labels use formatX and do not crowd', (t) => {
  const xs = [1, 4, 16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304, 16777216];
  const svg = renderSvg(
    spec([{ yLabel: 'y', series: [{ name: 's', points: xs.map((x) => ({ x, y: 1 })) }] }], { formatX: formatBytes }),
  );
  const labels = [...svg.matchAll(/<text x="([\d.]+)" [^>]*text-anchor="middle"[^>]*>([^<]*B)<\/text>/g)];
  t.true(labels.length >= 4);
  t.is(labels[0]?.[2], '1 B');
  const positions = labels.map((m) => Number(m[1]));
  const names = labels.map((m) => m[2] ?? '');
  for (let i = 1; i < labels.length; i++) {
    const room = (positions[i] ?? 0) - (positions[i - 1] ?? 0);
    t.true(room > ((names[i]?.length ?? 0) + (names[i - 1]?.length ?? 0)) * 3.5, `labels ${i - 1} and ${i} overlap`);
  }
});

test('a series keeps its colour in every panel, by name', (t) => {
  const svg = renderSvg(
    spec([
      {
        yLabel: 'MB/s',
        series: [
          { name: 'tcp', points: [{ x: 1, y: 1 }] },
          { name: 'tunnel-2', points: [{ x: 1, y: 2 }] },
          { name: 'tunnel-4', points: [{ x: 1, y: 3 }] },
        ],
      },
      {
        yLabel: 'ratio',
        series: [
          { name: 'tunnel-4', points: [{ x: 1, y: 3 }] },
          { name: 'tunnel-2', points: [{ x: 1, y: 2 }] },
        ],
        reference: { y: 1, label: 'TCP' },
      },
    ]),
  );
  const group = /<g class="series" data-name="([^"]+)">\n<circle [^>]*fill="(#[0-9A-Fa-f]{6})"/g;
  const groups = [...svg.matchAll(group)].map((m) => [m[1], m[2]]);
  t.is(groups.length, 5);
  const byName = new Map<string, Set<string>>();
  for (const [name, fill] of groups) {
    const set = byName.get(name ?? '') ?? new Set<string>();
    set.add(fill ?? '');
    byName.set(name ?? '', set);
  }
  t.is(byName.size, 3);
  for (const set of byName.values()) t.is(set.size, 1);
  t.is(new Set([...byName.values()].map((s) => [...s][0])).size, 3);
  // the legend names each series once
  const legend = /<g class="legend">([\s\S]*?)<\/g>/.exec(svg)?.[1] ?? '';
  t.is(count(legend, /<text/g), 3);
});

test('a reference line is drawn dashed with its label', (t) => {
  const svg = renderSvg(
    spec([one([{ x: 1, y: 2 }], { yLabel: 'ratio', reference: { y: 1, label: 'TCP = 1 & up' } })]),
  );
  t.is(xmlProblem(svg), null);
  t.regex(svg, /<line [^>]*stroke-dasharray="4 4"\/>/);
  t.true(svg.includes('TCP = 1 &amp; up'));
});

test('"no data" instead of throwing: no panels, no series, no drawable point', (t) => {
  const cases: PlotSpec[] = [
    spec([]),
    spec([{ yLabel: 'y', series: [] }]),
    spec([one([{ x: 1, y: 0 }, { x: 2, y: Number.NaN }], { yScale: 'log10' })]),
    spec([{ yLabel: 'y', series: [{ name: 's', points: [] }] }], { xScale: 'linear', xTicks: [0, 10] }),
  ];
  for (const c of cases) {
    const svg = renderSvg(c);
    t.is(xmlProblem(svg), null);
    t.true(svg.includes('>no data<'));
    t.is(circles(svg), 0);
    t.false(/NaN|Infinity/.test(svg));
  }
  // one empty panel among others says so on its own
  const mixed = renderSvg(
    spec([
      { yLabel: 'a', series: [{ name: 's', points: [{ x: 1, y: 1 }] }] },
      { yLabel: 'b', series: [] },
    ]),
  );
  t.is(count(mixed, />no data</g), 1);
  t.is(circles(mixed), 1);
});

test('a single point, equal values and a linear x-axis render without NaN', (t) => {
  for (const s of [
    spec([{ yLabel: 'y', series: [{ name: 's', points: [{ x: 64, y: 5 }] }] }]),
    spec([{ yLabel: 'y', series: [{ name: 's', points: [{ x: 1, y: 0 }, { x: 2, y: 0 }] }] }]),
    spec([{ yLabel: 'y', yScale: 'log10', series: [{ name: 's', points: [{ x: 1, y: 100 }, { x: 2, y: 100 }] }] }]),
    spec([{ yLabel: 'y', series: [{ name: 's', points: [{ x: -3, y: -1 }, { x: 7, y: 2 }] }] }], { xScale: 'linear' }),
  ]) {
    const svg = renderSvg(s);
    t.is(xmlProblem(svg), null);
    t.false(/NaN|Infinity/.test(svg));
  }
});

test('deterministic, with coordinates rounded to 2 decimals', (t) => {
  const s = spec(
    [
      {
        yLabel: 'y',
        series: [
          {
            name: 's',
            dashed: true,
            points: POW2.map((x) => ({ x, y: Math.sqrt(x) / 3, lo: Math.sqrt(x) / 4, hi: x / 7 })),
          },
        ],
      },
    ],
    { xScale: 'log2', note: 'median of 3 runs' },
  );
  const a = renderSvg(s);
  t.is(renderSvg(s), a);
  t.false(/\d\.\d{3,}/.test(a));
  t.regex(a, /<polyline [^>]*stroke-dasharray/);
});

test('formatBytes: powers of 1024 exactly, others with decimals', (t) => {
  t.is(formatBytes(1), '1 B');
  t.is(formatBytes(64), '64 B');
  t.is(formatBytes(1000), '1000 B');
  t.is(formatBytes(4096), '4 KiB');
  t.is(formatBytes(1024 * 1024), '1 MiB');
  t.is(formatBytes(16 * 1024 * 1024), '16 MiB');
  t.is(formatBytes(1536), '1.5 KiB');
  t.is(formatBytes(3 * 1024 ** 3), '3 GiB');
  t.is(formatBytes(0), '0 B');
});

test('formatShort: SI-ish short axis labels', (t) => {
  t.is(formatShort(0.5), '0.5');
  t.is(formatShort(10), '10');
  t.is(formatShort(1000), '1k');
  t.is(formatShort(2.5e6), '2.5M');
  t.is(formatShort(0.1 + 0.2), '0.3');
  t.is(formatShort(-1500), '-1.5k');
  t.is(formatShort(999999), '1M');
});
