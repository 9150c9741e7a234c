/**
 * A self-contained SVG line chart of benchmark results: one or more panels stacked vertically that share the x-axis
 * (e.g. throughput on top, the ratio to TCP below), with markers, optional error bars, a legend, nice axis ticks
 * and linear or logarithmic scales.
 *
 * The output has no external references and no embedded fonts (font-family sans-serif), so it opens in any browser
 * or image viewer. It is deterministic: the same spec gives the same string (coordinates rounded to 2 decimals).
 * Points that cannot be drawn (non-finite, or non-positive on a log scale) are skipped; a chart without any
 * drawable point says "no data".
 */

/** One point; `lo`..`hi` is an error bar (e.g. q1..q3 or min..max). */
export interface PlotPoint {
  x: number;
  y: number;
  lo?: number;
  hi?: number;
}

/** A named line; a series keeps its colour (by name) in every panel. */
export interface PlotSeries {
  name: string;
  points: readonly PlotPoint[];
  dashed?: boolean;
}

/** One chart area with its own y-axis. */
export interface Panel {
  yLabel: string;
  /** Default linear. */
  yScale?: 'linear' | 'log10';
  series: readonly PlotSeries[];
  /** Bottom of the y-axis (default 0, or the data's minimum when it is negative, for linear; a decade for log10). */
  yMin?: number;
  /** A horizontal dashed line, e.g. ratio 1.0. */
  reference?: { y: number; label: string };
  /** More such lines (e.g. TCP and the thesis' geometry, measured once), drawn like `reference`. */
  references?: readonly { y: number; label: string }[];
}

/** The reference lines of a panel: `reference`, then `references`. */
function referencesOf(panel: Panel): { y: number; label: string }[] {
  return [...(panel.reference !== undefined ? [panel.reference] : []), ...(panel.references ?? [])];
}

export interface PlotSpec {
  title: string;
  subtitle?: string;
  xLabel: string;
  xScale: 'log2' | 'linear';
  /** Default: every x of a point (log2) or nice linear ticks. */
  xTicks?: readonly number[];
  /** Default: formatShort (log2), or labels in the unit of the largest tick (linear: 0, 0.5M, 1M). */
  formatX?: (x: number) => string;
  /** Stacked vertically, sharing the x-axis. */
  panels: readonly Panel[];
  /** Default 760. */
  width?: number;
  /** Default 320. */
  panelHeight?: number;
  /** A line of small text at the bottom (e.g. "median of 3 runs, bars: min..max"). */
  note?: string;
}

/** Okabe & Ito's colour-blind-safe palette, yellow last (weak on white); series take colours in this order. */
export const PALETTE = [
  '#0072B2',
  '#D55E00',
  '#009E73',
  '#CC79A7',
  '#E69F00',
  '#56B4E9',
  '#000000',
  '#F0E442',
] as const;

const FONT_TITLE = 17;
const FONT_SUBTITLE = 12.5;
const FONT_AXIS = 13;
const FONT_TICK = 11.5;
const FONT_LEGEND = 12;
const FONT_NOTE = 11;
/** Average advance of a sans-serif glyph, in font sizes (an estimate: no font metrics here). */
const CHAR_WIDTH = 0.6;
const MARKER_R = 3.2;
const CAP = 4;

/** Text escaped for XML content and attribute values. */
export function escapeXml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => {
    switch (c) {
      case '&':
        return '&amp;';
      case '<':
        return '&lt;';
      case '>':
        return '&gt;';
      case '"':
        return '&quot;';
      default:
        return '&apos;';
    }
  });
}

/** A coordinate rounded to 2 decimals, without trailing zeros or "-0". */
function num(n: number): string {
  const r = Number(n.toFixed(2));
  return String(r === 0 ? 0 : r);
}

/** Estimated width in px of a text. */
function textWidth(text: string, size: number): number {
  return text.length * size * CHAR_WIDTH;
}

/** A value rounded to 3 significant digits, as short text. */
function sig3(v: number): string {
  const r = Number(v.toPrecision(3));
  return String(r === 0 ? 0 : r);
}

/** Short SI-ish text for an axis value: 0.5, 10, 250, 1k, 2.5M, 3G, 1.2T. */
export function formatShort(v: number): string {
  if (!Number.isFinite(v)) return String(v);
  const a = Number(Math.abs(v).toPrecision(3));
  if (a === 0) return '0';
  const sign = v < 0 ? '-' : '';
  for (const [unit, suffix] of [
    [1e12, 'T'],
    [1e9, 'G'],
    [1e6, 'M'],
    [1e3, 'k'],
  ] as const) {
    if (a >= unit) return `${sign}${sig3(a / unit)}${suffix}`;
  }
  return `${sign}${sig3(a)}`;
}

/** Labels of linear-axis ticks, all in the unit of the largest one (0, 0.5M, 1M rather than 0, 500k, 1M). */
function linearLabels(ticks: readonly number[]): string[] {
  const top = Math.max(0, ...ticks.map((v) => Number(Math.abs(v).toPrecision(3))));
  const unit = top >= 1e12 ? 1e12 : top >= 1e9 ? 1e9 : top >= 1e6 ? 1e6 : top >= 1e3 ? 1e3 : 1;
  const suffix = { 1: '', 1e3: 'k', 1e6: 'M', 1e9: 'G', 1e12: 'T' }[unit] ?? '';
  return ticks.map((v) => {
    const r = Number((v / unit).toPrecision(3));
    return r === 0 ? '0' : `${r}${suffix}`;
  });
}

const BYTE_UNITS = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB', 'EiB'] as const;

/**
 * Bytes in binary units: "1 B", "64 B", "4 KiB", "1 MiB", "16 MiB" for multiples of powers of 1024; otherwise with
 * at most 2 decimals, e.g. "1.5 KiB".
 */
export function formatBytes(n: number): string {
  if (!Number.isFinite(n)) return String(n);
  const sign = n < 0 ? '-' : '';
  let a = Math.abs(n);
  let u = 0;
  while (a >= 1024 && u < BYTE_UNITS.length - 1) {
    a /= 1024;
    u++;
  }
  let r = Number.isInteger(a) ? a : Number(a.toFixed(2));
  if (r >= 1024 && u < BYTE_UNITS.length - 1) {
    r = 1;
    u++;
  }
  return `${r === 0 ? '' : sign}${r} ${BYTE_UNITS[u] ?? 'B'}`;
}

/** A 1-2-5 step giving about `target` intervals over `range`. */
function niceStep(range: number, target: number): number {
  const raw = range / target;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const norm = raw / mag;
  return (norm <= 1 ? 1 : norm <= 2 ? 2 : norm <= 5 ? 5 : 10) * mag;
}

/** Multiples of `step` within [lo, hi] (with a little tolerance for rounding), cleaned of float noise. */
function multiples(lo: number, hi: number, step: number): number[] {
  const out: number[] = [];
  const first = Math.ceil(lo / step - 1e-9);
  const last = Math.floor(hi / step + 1e-9);
  for (let i = first; i <= last; i++) out.push(Number((i * step).toPrecision(12)));
  return out;
}

/** [min, max] of some values, or null for none (a loop: spreading a long array into Math.min could overflow). */
function extent(values: readonly number[]): [number, number] | null {
  let lo = Infinity;
  let hi = -Infinity;
  for (const v of values) {
    if (v < lo) lo = v;
    if (v > hi) hi = v;
  }
  return values.length === 0 ? null : [lo, hi];
}

/** An axis: data value -> transformed value (log or not), domain in transformed units, ticks in data units. */
interface Axis {
  /** Transformed value (log2/log10 or identity); NaN when the value cannot be shown on this scale. */
  t: (v: number) => number;
  lo: number;
  hi: number;
  /** Labelled ticks (with grid lines). */
  ticks: number[];
  /** Unlabelled small tick marks (log10 minor ticks). */
  minor: number[];
  /** Label of each tick. */
  labels: string[];
}

const log2 = (v: number): number => (v > 0 && Number.isFinite(v) ? Math.log2(v) : NaN);
const log10 = (v: number): number => (v > 0 && Number.isFinite(v) ? Math.log10(v) : NaN);
const lin = (v: number): number => (Number.isFinite(v) ? v : NaN);

/** The x-axis over the drawn points' x (and the given ticks); null when there is nothing to place. */
function xAxis(spec: PlotSpec, xs: readonly number[]): Axis | null {
  const t = spec.xScale === 'log2' ? log2 : lin;
  const given = spec.xTicks?.filter((x) => Number.isFinite(t(x)));
  const range = extent([...xs, ...(given ?? [])].map(t));
  if (range === null) return null;
  let [lo, hi] = range;
  if (lo === hi) {
    lo -= 1;
    hi += 1;
  }
  let ticks: number[];
  if (given !== undefined) ticks = [...new Set(given)].sort((a, b) => a - b);
  else if (spec.xScale === 'log2') ticks = [...new Set(xs)].sort((a, b) => a - b);
  else {
    const step = niceStep(hi - lo, 6);
    lo = Math.floor(lo / step - 1e-9) * step;
    hi = Math.ceil(hi / step + 1e-9) * step;
    ticks = multiples(lo, hi, step);
  }
  const pad = (hi - lo) * (spec.xScale === 'log2' ? 0.04 : 0.03);
  const format = spec.formatX;
  const labels =
    format !== undefined
      ? ticks.map((v) => format(v))
      : spec.xScale === 'linear'
        ? linearLabels(ticks)
        : ticks.map((v) => formatShort(v));
  return { t, lo: lo - pad, hi: hi + pad, ticks, minor: [], labels };
}

/** The y-axis of a panel over its drawn values (points, error bars, reference); null when there are none. */
function yAxis(panel: Panel, values: readonly number[]): Axis | null {
  const range = extent(values);
  if (range === null) return null;
  let [dmin] = range;
  const dmax = range[1];
  if (panel.yScale === 'log10') {
    const givenMin = panel.yMin !== undefined && panel.yMin > 0 && Number.isFinite(panel.yMin) ? panel.yMin : null;
    if (givenMin !== null) dmin = givenMin;
    let loE = givenMin !== null ? Math.log10(givenMin) : Math.floor(Math.log10(dmin));
    let hiE = Math.ceil(Math.log10(dmax));
    if (hiE <= loE) hiE = Math.floor(loE) + 1;
    if (givenMin === null && hiE - loE < 1) loE = hiE - 1;
    const span = hiE - loE;
    const first = Math.floor(loE + 1e-9);
    const every = Math.max(1, Math.ceil((Math.floor(hiE + 1e-9) - first + 1) / 8));
    const ticks: number[] = [];
    const minor: number[] = [];
    for (let e = Math.floor(loE); e <= Math.floor(hiE + 1e-9); e++) {
      for (let m = 1; m <= 9; m++) {
        const v = Number((m * 10 ** e).toPrecision(12));
        const lv = Math.log10(v);
        if (lv < loE - 1e-9 || lv > hiE + 1e-9) continue;
        const labelled = m === 1 ? (e - first) % every === 0 : span <= 2 && (m === 2 || m === 5);
        if (labelled) ticks.push(v);
        else if (span <= 6) minor.push(v);
      }
    }
    return { t: log10, lo: loE, hi: hiE, ticks, minor, labels: ticks.map((v) => formatShort(v)) };
  }
  const bottom = panel.yMin !== undefined && Number.isFinite(panel.yMin) ? panel.yMin : Math.min(0, dmin);
  let top = dmax;
  if (top <= bottom) top = bottom + (bottom === 0 ? 1 : Math.abs(bottom));
  const step = niceStep(top - bottom, 5);
  const lo = panel.yMin !== undefined && Number.isFinite(panel.yMin) ? bottom : Math.floor(bottom / step + 1e-9) * step;
  const hi = Math.ceil(top / step - 1e-9) * step;
  const ticks = multiples(lo, hi, step);
  return { t: lin, lo, hi, ticks, minor: [], labels: linearLabels(ticks) };
}

/** Is the point drawable on these scales? */
function drawable(p: PlotPoint, tx: (v: number) => number, ty: (v: number) => number): boolean {
  return Number.isFinite(tx(p.x)) && Number.isFinite(ty(p.y));
}

/** 32-bit FNV-1a of a text, in hex: makes clip-path ids unique per chart when several are inlined in one page. */
function hash(text: string): string {
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h.toString(16).padStart(8, '0');
}

/** A text element; `attrs` are written as given. */
function text(x: number, y: number, content: string, attrs: string): string {
  return `<text x="${num(x)}" y="${num(y)}" ${attrs}>${escapeXml(content)}</text>`;
}

/** A line element; `attrs` are written as given. */
function line(x1: number, y1: number, x2: number, y2: number, attrs: string): string {
  return `<line x1="${num(x1)}" y1="${num(y1)}" x2="${num(x2)}" y2="${num(y2)}" ${attrs}/>`;
}

/** A rect element; `attrs` are written as given. */
function rect(x: number, y: number, w: number, h: number, attrs: string): string {
  return `<rect x="${num(x)}" y="${num(y)}" width="${num(w)}" height="${num(h)}" ${attrs}/>`;
}

/** A text cut to about `maxWidth` px, with an ellipsis. */
function fit(content: string, size: number, maxWidth: number): string {
  const chars = Math.max(1, Math.floor(maxWidth / (size * CHAR_WIDTH)));
  return content.length <= chars ? content : `${content.slice(0, Math.max(1, chars - 1))}…`;
}

interface LegendEntry {
  name: string;
  colour: string;
  dashed: boolean;
}

/** One entry per series name, in order of first appearance over the panels, with its colour from the palette. */
function legendOf(panels: readonly Panel[]): LegendEntry[] {
  const entries = new Map<string, LegendEntry>();
  for (const panel of panels) {
    for (const s of panel.series) {
      if (entries.has(s.name)) continue;
      const colour = PALETTE[entries.size % PALETTE.length] ?? '#000000';
      entries.set(s.name, { name: s.name, colour, dashed: s.dashed === true });
    }
  }
  return [...entries.values()];
}

/** The y scale's transform of a panel. */
function yTransform(panel: Panel): (v: number) => number {
  return panel.yScale === 'log10' ? log10 : lin;
}

/** The y-axis of each panel (null for a panel without a drawable point) and every x drawn. */
function axesOf(spec: PlotSpec, panels: readonly Panel[]): { yAxes: (Axis | null)[]; xs: number[] } {
  const tx = spec.xScale === 'log2' ? log2 : lin;
  const xs: number[] = [];
  const yAxes = panels.map((panel) => {
    const ty = yTransform(panel);
    const values: number[] = [];
    for (const s of panel.series) {
      for (const p of s.points) {
        if (!drawable(p, tx, ty)) continue;
        xs.push(p.x);
        values.push(p.y);
        for (const e of [p.lo, p.hi]) if (e !== undefined && Number.isFinite(ty(e))) values.push(e);
      }
    }
    if (values.length === 0) return null;
    for (const ref of referencesOf(panel)) if (Number.isFinite(ty(ref.y))) values.push(ref.y);
    return yAxis(panel, values);
  });
  return { yAxes, xs };
}

/** Indexes of the x ticks to label: every k-th, with k as small as possible so that labels do not overlap. */
function labelledTicks(positions: readonly number[], labels: readonly string[]): Set<number> {
  const half = labels.map((l) => textWidth(l, FONT_TICK) / 2);
  const fits = (k: number): boolean => {
    for (let j = 0; j + k < positions.length; j += k) {
      const room = (positions[j + k] ?? 0) - (positions[j] ?? 0);
      if (room < (half[j] ?? 0) + (half[j + k] ?? 0) + 8) return false;
    }
    return true;
  };
  let k = 1;
  while (k < positions.length && !fits(k)) k++;
  const shown = new Set<number>();
  for (let j = 0; j < positions.length; j += k) shown.add(j);
  return shown;
}

/** Where things go, in px. */
interface Layout {
  width: number;
  height: number;
  plotLeft: number;
  plotRight: number;
  legendWidth: number;
  legendBottom: number;
  xLabelY: number;
  noteY: number;
  /** Top and bottom of panel i's plot area. */
  top: (i: number) => number;
  bottom: (i: number) => number;
  /** x in px (the middle when there is no x-axis). */
  px: (v: number) => number;
}

function layoutOf(
  spec: PlotSpec,
  panelCount: number,
  yAxes: readonly (Axis | null)[],
  xa: Axis | null,
  legend: readonly LegendEntry[],
): Layout {
  const width = spec.width ?? 760;
  const panelHeight = spec.panelHeight ?? 320;
  const header = spec.subtitle !== undefined ? 62 : 44;
  const yTickLabels = yAxes.flatMap((a) => (a === null ? [] : a.labels));
  const plotLeft = Math.round(44 + Math.max(20, ...yTickLabels.map((l) => textWidth(l, FONT_TICK))));
  const nameWidth = Math.min(width * 0.3, Math.max(0, ...legend.map((l) => textWidth(l.name, FONT_LEGEND))));
  const legendWidth = legend.length > 0 ? Math.ceil(48 + nameWidth) : 0;
  const lastXLabel = xa?.labels[xa.labels.length - 1] ?? '';
  const rightMargin = legend.length > 0 ? legendWidth + 18 : Math.max(20, textWidth(lastXLabel, FONT_TICK) / 2 + 6);
  const plotRight = Math.max(plotLeft + 10, width - rightMargin);
  const top = (i: number): number => header + i * panelHeight + 8;
  const bottom = (i: number): number => header + (i + 1) * panelHeight - 16;
  const xLabelY = bottom(panelCount - 1) + 44;
  const noteY = xLabelY + 24;
  const px = (v: number): number =>
    xa === null
      ? (plotLeft + plotRight) / 2
      : plotLeft + ((xa.t(v) - xa.lo) / (xa.hi - xa.lo)) * (plotRight - plotLeft);
  return {
    width,
    height: Math.ceil((spec.note !== undefined ? noteY : xLabelY) + 12),
    plotLeft,
    plotRight,
    legendWidth,
    legendBottom: top(0) + legend.length * 20 + 10,
    xLabelY,
    noteY,
    top,
    bottom,
    px,
  };
}

/** A series' error bars, line and markers (in a group named after it). */
function drawSeries(
  s: PlotSeries,
  colour: string,
  tx: (v: number) => number,
  ty: (v: number) => number,
  px: (v: number) => number,
  py: (v: number) => number,
): string[] {
  const points = s.points.filter((p) => drawable(p, tx, ty)).sort((a, b) => a.x - b.x);
  if (points.length === 0) return [];
  const out = [`<g class="series" data-name="${escapeXml(s.name)}">`];
  for (const p of points) {
    const lo = p.lo !== undefined && Number.isFinite(ty(p.lo)) ? p.lo : undefined;
    const hi = p.hi !== undefined && Number.isFinite(ty(p.hi)) ? p.hi : undefined;
    if (lo === undefined && hi === undefined) continue;
    const x = px(p.x);
    const y1 = py(lo ?? p.y);
    const y2 = py(hi ?? p.y);
    let d = `M${num(x)} ${num(y1)}V${num(y2)}`;
    if (lo !== undefined) d += `M${num(x - CAP)} ${num(y1)}H${num(x + CAP)}`;
    if (hi !== undefined) d += `M${num(x - CAP)} ${num(y2)}H${num(x + CAP)}`;
    out.push(`<path class="errbar" d="${d}" stroke="${colour}" stroke-width="1.2" fill="none"/>`);
  }
  if (points.length > 1) {
    const coords = points.map((p) => `${num(px(p.x))},${num(py(p.y))}`).join(' ');
    const dash = s.dashed === true ? ' stroke-dasharray="7 4"' : '';
    out.push(
      `<polyline points="${coords}" fill="none" stroke="${colour}" stroke-width="2" stroke-linejoin="round"${dash}/>`,
    );
  }
  for (const p of points) {
    const marker = `r="${MARKER_R}" fill="${colour}" stroke="#ffffff" stroke-width="0.8"`;
    out.push(`<circle cx="${num(px(p.x))}" cy="${num(py(p.y))}" ${marker}/>`);
  }
  out.push('</g>');
  return out;
}

/** Everything the panels share. */
interface Chart {
  spec: PlotSpec;
  panelCount: number;
  layout: Layout;
  xa: Axis | null;
  /** Indexes of the labelled x ticks. */
  shownX: Set<number>;
  colour: Map<string, string>;
  /** Unique per chart, for clip-path ids. */
  id: string;
}

/** Panel i: grid, reference line, series (clipped), frame, ticks, labels, or "no data". */
function drawPanel(chart: Chart, panel: Panel, i: number, ya: Axis | null): string[] {
  const { layout: l, xa } = chart;
  const top = l.top(i);
  const bottom = l.bottom(i);
  const tx = chart.spec.xScale === 'log2' ? log2 : lin;
  const ty = yTransform(panel);
  const py = (v: number): number =>
    ya === null ? (top + bottom) / 2 : bottom - ((ty(v) - ya.lo) / (ya.hi - ya.lo)) * (bottom - top);
  const inY = (v: number): boolean => ya !== null && ty(v) >= ya.lo - 1e-9 && ty(v) <= ya.hi + 1e-9;
  const inX = (v: number): boolean => xa !== null && xa.t(v) >= xa.lo - 1e-9 && xa.t(v) <= xa.hi + 1e-9;
  const out = ['<g class="panel">'];

  for (const v of ya?.ticks ?? []) {
    if (inY(v)) out.push(line(l.plotLeft, py(v), l.plotRight, py(v), 'stroke="#e4e4e4" stroke-width="1"'));
  }
  for (const v of xa?.ticks ?? []) {
    if (inX(v)) out.push(line(l.px(v), top, l.px(v), bottom, 'stroke="#eeeeee" stroke-width="1"'));
  }

  if (ya === null || xa === null) {
    const middle = (l.plotLeft + l.plotRight) / 2;
    out.push(text(middle, (top + bottom) / 2 + 6, 'no data', 'font-size="16" fill="#888888" text-anchor="middle"'));
  } else {
    // label baselines used so far, per side: a second line close to the first gets its label moved clear of it
    const placed = { right: [] as number[], left: [] as number[] };
    const clear = (used: number[], y0: number): number => {
      let y = y0;
      while (used.some((u) => Math.abs(u - y) < FONT_NOTE + 1)) y += FONT_NOTE + 1;
      used.push(y);
      return y;
    };
    for (const ref of referencesOf(panel)) {
      if (!Number.isFinite(ty(ref.y)) || !inY(ref.y)) continue;
      const y = py(ref.y);
      out.push(line(l.plotLeft, y, l.plotRight, y, 'stroke="#555555" stroke-width="1.2" stroke-dasharray="4 4"'));
      // the label in the right margin when there is room (not beside the legend), else inside on the left, haloed
      const besideLegend = i === 0 && chart.colour.size > 0 && y < l.legendBottom + 8;
      if (!besideLegend && l.width - l.plotRight - 10 >= textWidth(ref.label, FONT_NOTE)) {
        const ly = clear(placed.right, y + 4);
        out.push(text(l.plotRight + 6, ly, ref.label, `font-size="${FONT_NOTE}" fill="#555555"`));
      } else {
        const halo = 'stroke="#ffffff" stroke-width="3" paint-order="stroke"';
        const ly = clear(placed.left, y - 5);
        out.push(text(l.plotLeft + 6, ly, ref.label, `font-size="${FONT_NOTE}" fill="#555555" ${halo}`));
      }
    }
    // series, clipped to the plot area widened so that markers on the frame stay whole
    const clip = `clip-${chart.id}-${i}`;
    const m = MARKER_R + 2;
    const area = rect(l.plotLeft - m, top - m, l.plotRight - l.plotLeft + 2 * m, bottom - top + 2 * m, '');
    out.push(`<defs><clipPath id="${clip}">${area}</clipPath></defs>`, `<g clip-path="url(#${clip})">`);
    for (const s of panel.series) {
      out.push(...drawSeries(s, chart.colour.get(s.name) ?? '#000000', tx, ty, l.px, py));
    }
    out.push('</g>');
  }

  const frame = 'fill="none" stroke="#888888" stroke-width="1"';
  out.push(rect(l.plotLeft, top, l.plotRight - l.plotLeft, bottom - top, frame));
  ya?.ticks.forEach((v, k) => {
    if (!inY(v)) return;
    out.push(line(l.plotLeft - 5, py(v), l.plotLeft, py(v), 'stroke="#888888"'));
    const label = ya.labels[k] ?? '';
    out.push(text(l.plotLeft - 8, py(v) + 4, label, `font-size="${FONT_TICK}" fill="#333333" text-anchor="end"`));
  });
  for (const v of ya?.minor ?? []) {
    if (inY(v)) out.push(line(l.plotLeft - 3, py(v), l.plotLeft, py(v), 'stroke="#aaaaaa"'));
  }
  xa?.ticks.forEach((v, k) => {
    if (!inX(v)) return;
    const x = l.px(v);
    const shown = chart.shownX.has(k);
    out.push(line(x, bottom, x, bottom + (shown ? 5 : 3), 'stroke="#888888"'));
    if (shown && i === chart.panelCount - 1) {
      const label = xa.labels[k] ?? '';
      out.push(text(x, bottom + 18, label, `font-size="${FONT_TICK}" fill="#333333" text-anchor="middle"`));
    }
  });
  if (panel.yLabel !== '') {
    const cx = 22;
    const cy = (top + bottom) / 2;
    // a long label gets a smaller font so that it fits the panel's height
    const size = Math.max(8, Math.min(FONT_AXIS, (bottom - top) / (panel.yLabel.length * CHAR_WIDTH)));
    const rotate = `transform="rotate(-90 ${num(cx)} ${num(cy)})"`;
    out.push(text(cx, cy, panel.yLabel, `${rotate} font-size="${num(size)}" fill="#222222" text-anchor="middle"`));
  }
  out.push('</g>');
  return out;
}

/** The legend box right of the first panel: a line sample (dashed if the series is) and the name of each series. */
function drawLegend(legend: readonly LegendEntry[], l: Layout): string[] {
  if (legend.length === 0) return [];
  const lx = l.plotRight + 12;
  const ly = l.top(0);
  const box = rect(lx, ly, l.legendWidth, l.legendBottom - ly, 'fill="#ffffff" stroke="#cccccc"');
  const out = ['<g class="legend">', box];
  legend.forEach((e, k) => {
    const y = ly + 15 + k * 20;
    const dash = e.dashed ? ' stroke-dasharray="7 4"' : '';
    out.push(line(lx + 8, y, lx + 34, y, `stroke="${e.colour}" stroke-width="3"${dash}`));
    const name = fit(e.name, FONT_LEGEND, l.legendWidth - 48);
    out.push(text(lx + 40, y + 4, name, `font-size="${FONT_LEGEND}" fill="#222222"`));
  });
  out.push('</g>');
  return out;
}

/**
 * Renders the chart as a standalone SVG document (ending with "\n"): title and subtitle, the panels stacked
 * vertically over one x-axis (labelled under the last panel), the legend right of the first panel, the note at the
 * bottom. Never throws on odd data: what cannot be drawn is skipped, and a panel with nothing to draw says "no data".
 */
export function renderSvg(spec: PlotSpec): string {
  const panels: readonly Panel[] = spec.panels.length > 0 ? spec.panels : [{ yLabel: '', series: [] }];
  const legend = legendOf(panels);
  const { yAxes, xs } = axesOf(spec, panels);
  const xa = xAxis(spec, xs);
  const layout = layoutOf(spec, panels.length, yAxes, xa, legend);
  const chart: Chart = {
    spec,
    panelCount: panels.length,
    layout,
    xa,
    shownX: xa === null ? new Set() : labelledTicks(xa.ticks.map(layout.px), xa.labels),
    colour: new Map(legend.map((e) => [e.name, e.colour])),
    id: hash(JSON.stringify([spec.title, spec.subtitle ?? '', panels.length, layout.width, layout.height, xs.length])),
  };
  const { width, height, plotLeft, plotRight } = layout;

  const out = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${num(width)}" height="${num(height)}" ` +
      `viewBox="0 0 ${num(width)} ${num(height)}" font-family="sans-serif">`,
    `<title>${escapeXml(spec.title)}</title>`,
    rect(0, 0, width, height, 'fill="#ffffff"'),
    text(plotLeft, 26, spec.title, `font-size="${FONT_TITLE}" font-weight="bold" fill="#111111"`),
  ];
  if (spec.subtitle !== undefined) {
    out.push(text(plotLeft, 46, spec.subtitle, `font-size="${FONT_SUBTITLE}" fill="#444444"`));
  }
  panels.forEach((panel, i) => out.push(...drawPanel(chart, panel, i, yAxes[i] ?? null)));
  const middle = (plotLeft + plotRight) / 2;
  out.push(text(middle, layout.xLabelY, spec.xLabel, `font-size="${FONT_AXIS}" fill="#222222" text-anchor="middle"`));
  out.push(...drawLegend(legend, layout));
  if (spec.note !== undefined) {
    out.push(text(plotLeft, layout.noteY, spec.note, `font-size="${FONT_NOTE}" fill="#555555"`));
  }
  out.push('</svg>');
  return `${out.join('\n')}\n`;
}
