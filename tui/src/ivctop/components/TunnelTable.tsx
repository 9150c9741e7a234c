/**
 * The tunnels table. Columns have a priority; on a narrow screen the least important go first (below about 80
 * columns: state, geometry, events, bytes), except the one the rows are sorted by. Rows beyond `maxRows` are cut with a "+N more" line.
 */
import type { SortKey, TunnelRow } from '../../data/model.js';
import { fit, fmtBytes, fmtPct, fmtPerSec, fmtRate } from '../format.js';
import { Lines, type Line } from './Lines.js';

interface Column {
  id: string;
  header: string;
  width: number;
  align: 'left' | 'right';
  /** 0 is kept longest. */
  priority: number;
  /** The sort key this column shows (header marked). */
  sort?: SortKey;
  cell: (r: TunnelRow) => string;
}

const dom = (d: number | null): string => (d === null ? '?' : String(d));

function geometry(r: TunnelRow): string {
  const g = (x: TunnelRow['geometry']['ab']): string => (x ? `${x.channels}x${fmtBytes(x.size)}` : '-');
  const ab = g(r.geometry.ab);
  const ba = g(r.geometry.ba);
  return ab === ba ? ab : `${ab}/${ba}`;
}

function state(r: TunnelRow): string {
  if (r.mode !== 'tunnel') return r.mode;
  return r.state.ab === r.state.ba ? r.state.ab : `${r.state.ab}/${r.state.ba}`;
}

export function columnsFor(rows: readonly TunnelRow[], width: number, sort?: SortKey): Column[] {
  const addrW = Math.max(6, ...rows.flatMap((r) => [r.a.addr.length, r.b.addr.length]));
  const all: Column[] = [
    { id: 'doms', header: 'DOMS', width: 7, align: 'left', priority: 0, sort: 'domains', cell: (r) => `${dom(r.a.domid)}-${dom(r.b.domid)}` },
    { id: 'a', header: 'A', width: addrW, align: 'left', priority: 0, cell: (r) => r.a.addr },
    { id: 'b', header: 'B', width: addrW, align: 'left', priority: 0, cell: (r) => r.b.addr },
    { id: 'state', header: 'STATE', width: 13, align: 'left', priority: 2, cell: state },
    { id: 'geom', header: 'CHxSIZE', width: 9, align: 'left', priority: 3, cell: geometry },
    { id: 'ab', header: 'A>B', width: 9, align: 'right', priority: 0, sort: 'throughput', cell: (r) => fmtRate(r.rate.ab) },
    { id: 'ba', header: 'B>A', width: 9, align: 'right', priority: 1, cell: (r) => fmtRate(r.rate.ba) },
    {
      id: 'occ',
      header: 'OCC',
      width: 9,
      align: 'right',
      priority: 1,
      sort: 'occupancy',
      cell: (r) => (r.occupancy.ba === null ? fmtPct(r.occupancy.ab) : `${fmtPct(r.occupancy.ab)}/${fmtPct(r.occupancy.ba)}`),
    },
    { id: 'ev', header: 'EV/s', width: 6, align: 'right', priority: 2, sort: 'events', cell: (r) => fmtPerSec(r.eventsPerSec) },
    { id: 'bytes', header: 'BYTES', width: 7, align: 'right', priority: 3, sort: 'bytes', cell: (r) => fmtBytes(r.bytes.ab + r.bytes.ba) },
  ];
  const total = (cs: Column[]): number => cs.reduce((n, c) => n + c.width, 0) + Math.max(0, cs.length - 1);
  // The column the rows are sorted by stays as long as the endpoints do.
  for (const c of all) if (sort !== undefined && c.sort === sort) c.priority = 0;
  let cols = all;
  for (let p = 3; p > 0 && total(cols) > width; p--) cols = cols.filter((c) => c.priority < p);
  return cols;
}

export function tunnelLines(rows: readonly TunnelRow[], width: number, maxRows: number, sort: SortKey): Line[] {
  const cols = columnsFor(rows, width, sort);
  const header = cols
    .map((c) => fit(c.sort === sort ? `${c.header}*` : c.header, c.width, c.align))
    .join(' ');
  const lines: Line[] = [{ text: header, bold: true, inverse: true }];
  const shown = rows.length > maxRows ? Math.max(0, maxRows - 1) : rows.length;
  for (const r of rows.slice(0, shown)) {
    lines.push({
      text: cols.map((c) => fit(c.cell(r), c.width, c.align)).join(' '),
      ...(r.mode === 'broken' ? { color: 'red' } : r.mode !== 'tunnel' ? { dim: true } : {}),
    });
  }
  if (shown < rows.length) lines.push({ text: `+${rows.length - shown} more`, dim: true });
  return lines;
}

export function TunnelTable(props: { rows: readonly TunnelRow[]; width: number; maxRows: number; sort: SortKey }) {
  return <Lines lines={tunnelLines(props.rows, props.width, props.maxRows, props.sort)} width={props.width} />;
}
