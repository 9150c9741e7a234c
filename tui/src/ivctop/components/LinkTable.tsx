/**
 * The links table: one row per domain and peer domain (what the first domain reports of its link with the second,
 * from its /proc/fastivc/peers): pages charged to the peer against the quota, connections, tunnels pooled (ours, kept
 * granted) and parked (the peer's, kept mapped), reuses, setups and the share of tunnels that came from the link.
 * Columns have a priority, as in the tunnels table: on a narrow screen REUSES and SETUPS go first, then CONNS,
 * POOLED and PARKED. With no link the section is empty (nothing shown).
 */
import type { LinkRow } from '../../data/model.js';
import { fit, fmtPct, linkName } from '../format.js';
import { Lines, type Line } from './Lines.js';

interface Column {
  header: string;
  width: number;
  align: 'left' | 'right';
  /** 0 is kept longest. */
  priority: number;
  cell: (r: LinkRow) => string;
}

const pagesCell = (r: LinkRow): string => `${r.pages}/${r.quota}`;

export function linkColumns(rows: readonly LinkRow[], width: number): Column[] {
  const w = (header: string, cell: (r: LinkRow) => string): number =>
    Math.max(header.length, ...rows.map((r) => cell(r).length));
  const num = (header: string, priority: number, get: (r: LinkRow) => number): Column => {
    const cell = (r: LinkRow): string => String(get(r));
    return { header, width: w(header, cell), align: 'right', priority, cell };
  };
  const all: Column[] = [
    { header: 'LINK', width: w('LINK', linkName), align: 'left', priority: 0, cell: linkName },
    { header: 'PAGES', width: w('PAGES', pagesCell), align: 'right', priority: 0, cell: pagesCell },
    num('CONNS', 1, (r) => r.sockets),
    num('POOLED', 1, (r) => r.pooled),
    num('PARKED', 1, (r) => r.parked),
    num('REUSES', 2, (r) => r.reuses),
    num('SETUPS', 2, (r) => r.setups),
    { header: 'REUSE%', width: 6, align: 'right', priority: 0, cell: (r) => fmtPct(r.reuseRatio) },
  ];
  const total = (cs: Column[]): number => cs.reduce((n, c) => n + c.width, 0) + Math.max(0, cs.length - 1);
  let cols = all;
  for (let p = 2; p > 0 && total(cols) > width; p--) cols = cols.filter((c) => c.priority < p);
  return cols;
}

/** Header and rows (at most `maxRows` lines after the header, the last one "+N more" when they do not fit). */
export function linkLines(rows: readonly LinkRow[], width: number, maxRows: number): Line[] {
  const cols = linkColumns(rows, width);
  const lines: Line[] = [{ text: cols.map((c) => fit(c.header, c.width, c.align)).join(' '), bold: true, inverse: true }];
  const shown = rows.length > maxRows ? Math.max(0, maxRows - 1) : rows.length;
  for (const r of rows.slice(0, shown)) {
    const full = r.quota > 0 && r.pages >= r.quota; // at its quota: the peer's next tunnel waits for an eviction
    const idle = r.pages === 0 && r.sockets === 0 && r.pooled === 0 && r.parked === 0;
    lines.push({
      text: cols.map((c) => fit(c.cell(r), c.width, c.align)).join(' '),
      ...(full ? { color: 'yellow' } : idle ? { dim: true } : {}),
    });
  }
  if (shown < rows.length) lines.push({ text: `+${rows.length - shown} more`, dim: true });
  return lines;
}

/** Title, header and rows in at most `maxLines` lines; [] when there is no link (the section is hidden). */
export function linkSection(rows: readonly LinkRow[], width: number, maxLines: number): Line[] {
  if (rows.length === 0 || maxLines < 3) return [];
  return [{ text: `LINKS (${rows.length})`, bold: true }, ...linkLines(rows, width, maxLines - 2)];
}

export function LinkTable(props: { rows: readonly LinkRow[]; width: number; maxLines: number }) {
  const lines = linkSection(props.rows, props.width, props.maxLines);
  return lines.length === 0 ? null : <Lines lines={lines} width={props.width} />;
}
