/** The panels under the tunnels table: pending DEM events per domain, fallback reasons, totals. */
import type { Model } from '../../data/model.js';
import { fmtBytes, fmtPerSec, fmtRate } from '../format.js';
import type { Line } from './Lines.js';

export interface Panel {
  lines: Line[];
  width: number;
}

function panel(title: string, body: string[]): Panel {
  const lines: Line[] = [{ text: title, bold: true }, ...body.map((text) => ({ text }))];
  return { lines, width: Math.max(...lines.map((l) => l.text.length)) };
}

/** Records and pending events in the DEM, per owner domain. */
export function pendingPanel(model: Model, maxBody: number): Panel {
  if (!model.dem.ok) return panel('PENDING DEM EVENTS', ['(DEM unavailable)']);
  const rows = model.pending.map(
    (p) =>
      `${String(p.domid).padStart(5)} ${String(p.records).padStart(7)} ${String(p.pendingEvents).padStart(7)}` +
      (p.pendingEvents > 0
        ? `  ${Object.entries(p.byEvent)
            .filter(([, n]) => n > 0)
            .map(([e, n]) => `${e.toLowerCase()}:${n}`)
            .join(' ')}`
        : ''),
  );
  const body = rows.length === 0 ? ['(no records)'] : [`${'dom'.padStart(5)} ${'records'.padStart(7)} ${'pending'.padStart(7)}`, ...rows];
  return panel('PENDING DEM EVENTS', cut(body, maxBody));
}

/** Non-zero fallback reasons, largest first. */
export function fallbackPanel(model: Model, maxBody: number): Panel {
  const entries = Object.entries(model.fallbacks.total)
    .filter(([, n]) => n > 0)
    .sort((x, y) => y[1] - x[1] || x[0].localeCompare(y[0]));
  const w = Math.max(6, ...entries.map(([k]) => k.length));
  const body = entries.length === 0 ? ['(none)'] : entries.map(([k, n]) => `${k.padEnd(w)} ${String(n).padStart(6)}`);
  return panel('FALLBACK REASONS', cut(body, maxBody));
}

export function totalsPanel(model: Model, maxBody: number): Panel {
  const t = model.totals;
  const body = [
    `tunnels      ${t.tunnels} (${t.tunnelsOpenReported} open ends)`,
    `throughput   ${fmtRate(t.throughput)}`,
    `bytes        ${fmtBytes(t.bytes)}`,
    `events/s     ${fmtPerSec(t.eventsPerSec)}`,
    `DEM raises/s ${fmtPerSec(t.demRaisesPerSec)}`,
    `pending      ${t.pendingEvents}`,
    `fallbacks    ${t.fallbacks}`,
    `violations   ${t.violations}`,
  ];
  return panel('TOTALS', cut(body, maxBody));
}

function cut(body: string[], max: number): string[] {
  if (body.length <= max) return body;
  if (max <= 0) return [];
  return [...body.slice(0, max - 1), `+${body.length - max + 1} more`];
}
