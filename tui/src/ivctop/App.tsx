/**
 * ivctop's screen as a pure function of its props: header, problems line, tunnels table, links table (hidden when no
 * domain reports a link), panels (pending DEM events per domain, fallback reasons, totals) and the keys line, fitted
 * to width x height. Everything is plain lines (see components/Lines.tsx), so what fits is decided here and tests see
 * exactly what a terminal would.
 */
import type { Model, SortKey } from '../data/model.js';
import { fmtBytes, fmtRate, fmtTime } from './format.js';
import { Lines, sideBySide, type Line } from './components/Lines.js';
import { linkSection } from './components/LinkTable.js';
import { fallbackPanel, pendingPanel, totalsPanel, type Panel } from './components/Panels.js';
import { tunnelLines } from './components/TunnelTable.js';

export interface AppProps {
  /** The model to show (already filtered and sorted), or null before the first sample. */
  model: Model | null;
  /** The data source failed (the last sample could not be taken); shown instead of or above the data. */
  error: string | null;
  /** The source's one-line description ("live", "replay x.jsonl 3/40"). */
  source: string;
  sort: SortKey;
  /** Domain filter, null for all. */
  filter: number | null;
  paused: boolean;
  width: number;
  height: number;
  intervalMs: number;
  /** What q does, for the keys line (default "quit"). */
  quitLabel?: string;
}

/** Below this height the panels give way to a one-line summary. */
export const PANELS_MIN_HEIGHT = 16;

/** The links table is shown only with room for a blank line, its title, its header and one row. */
const LINKS_MIN_LINES = 4;

function header(p: AppProps): Line {
  const parts = [
    'ivctop',
    p.source,
    p.model ? fmtTime(p.model.time) : '--:--:--',
    `every ${p.intervalMs / 1000}s`,
    `sort:${p.sort}`,
    `filter:${p.filter === null ? 'all' : `dom ${p.filter}`}`,
  ];
  if (p.paused) parts.push('[PAUSED]');
  return { text: parts.join('  '), bold: true };
}

function problems(p: AppProps): Line {
  const list: string[] = [];
  if (p.error !== null) list.push(`data source failed: ${p.error}`);
  if (p.model && !p.model.dem.ok) list.push(`DEM: ${p.model.dem.error ?? 'unavailable'}`);
  if (p.model) list.push(...p.model.errors);
  if (list.length === 0) {
    const d = p.model?.dem;
    return {
      text: d?.ok === true ? `DEM: ${d.ipEntries ?? 0} addresses, ${d.records ?? 0} records` : '',
      dim: true,
    };
  }
  return { text: `! ${list[0]}${list.length > 1 ? ` (+${list.length - 1} more)` : ''}`, color: 'yellow' };
}

function emptyLines(p: AppProps): Line[] {
  if (p.model === null) {
    return [{ text: p.error !== null ? `cannot read the data source: ${p.error}` : 'waiting for the first sample...' }];
  }
  const why: Line[] = [{ text: p.filter === null ? 'no tunnels' : `no tunnels of domain ${p.filter}` }];
  if (p.model.domains.length === 0) {
    why.push({ text: 'no domain reports fastivc statistics (is fastivc.ko loaded?)', dim: true });
  } else if (p.filter === null) {
    why.push({ text: 'no connection is on a tunnel right now', dim: true });
  }
  return why;
}

function choosePanels(model: Model, width: number, maxBody: number): Line[] {
  const pending = pendingPanel(model, maxBody);
  const fallbacks = fallbackPanel(model, maxBody);
  const totals = totalsPanel(model, maxBody);
  // Dropped first to last when they do not fit side by side: fallbacks, then pending.
  let chosen: Panel[] = [pending, fallbacks, totals];
  const wide = (ps: Panel[]): number => ps.reduce((n, x) => n + x.width, 0) + 3 * (ps.length - 1);
  if (wide(chosen) > width) chosen = [pending, totals];
  if (wide(chosen) > width) chosen = [totals];
  return sideBySide(chosen);
}

function summaryLine(model: Model): Line {
  const t = model.totals;
  return {
    text:
      `${t.tunnels} tunnels  ${fmtRate(t.throughput)}  ${fmtBytes(t.bytes)}  pending ${t.pendingEvents}  fallbacks ${t.fallbacks}` +
      (model.links.length > 0 ? `  links ${model.links.length}` : ''),
    dim: true,
  };
}

/**
 * The links block (a blank line, then linkSection) in `room` lines shared with the tunnels above it: all of it when
 * both fit, else at least a third of the room (or what the tunnels leave), never leaving the tunnels less than
 * `tunnelMin` lines; nothing when that is under LINKS_MIN_LINES or there is no link.
 */
function linkBlock(model: Model, width: number, room: number, tunnelWant: number, tunnelMin: number): Line[] {
  if (model.links.length === 0) return [];
  const want = model.links.length + 3;
  const n = Math.min(want, Math.max(room - tunnelWant, Math.floor(room / 3)), room - tunnelMin);
  if (n < LINKS_MIN_LINES) return [];
  return [{ text: '' }, ...linkSection(model.links, width, n - 1)];
}

export function screenLines(p: AppProps): Line[] {
  const width = Math.max(20, p.width);
  const height = Math.max(6, p.height);
  const top: Line[] = [header(p), problems(p)];
  const keys: Line = { text: `q ${p.quitLabel ?? 'quit'}  p pause  s sort  f filter by domain`, dim: true };
  let bottom: Line[] = [];
  if (p.model) {
    if (height >= PANELS_MIN_HEIGHT) {
      const maxBody = Math.min(8, Math.floor((height - 6) / 3));
      bottom = [{ text: '' }, ...choosePanels(p.model, width, maxBody)];
    } else {
      bottom = [summaryLine(p.model)];
    }
  }
  const room = height - top.length - bottom.length - 1; // -1: keys line
  const hasTunnels = p.model !== null && p.model.tunnels.length > 0;
  const empty = hasTunnels ? [] : emptyLines(p);
  const links = p.model
    ? linkBlock(
        p.model,
        width,
        room,
        hasTunnels ? p.model.tunnels.length + 2 : empty.length,
        hasTunnels ? 3 : empty.length, // title, header and one row; or the lines saying why there is none
      )
    : [];
  const tunnelRoom = room - links.length;
  let middle: Line[];
  if (p.model && hasTunnels) {
    const title: Line = { text: `TUNNELS (${p.model.tunnels.length})`, bold: true };
    // room: title + table header + rows
    middle = [title, ...tunnelLines(p.model.tunnels, width, Math.max(1, tunnelRoom - 2), p.sort)];
  } else {
    middle = empty;
  }
  const lines = [...top, ...middle.slice(0, Math.max(1, tunnelRoom)), ...links, ...bottom, keys];
  return lines.slice(0, height);
}

/**
 * The screen as plain text without the keys line (they mean nothing on paper): what --once prints, and the last
 * frame `fastivc lab run --demo` leaves behind. `height` defaults to everything.
 */
export function screenText(
  model: Model,
  o: { source: string; sort: SortKey; filter: number | null; width: number; intervalMs: number; height?: number },
): string {
  const lines = screenLines({
    model,
    error: null,
    source: o.source,
    sort: o.sort,
    filter: o.filter,
    paused: false,
    width: o.width,
    height: (o.height ?? 1000) + 1,
    intervalMs: o.intervalMs,
  });
  return `${lines.slice(0, -1).map((l) => l.text.slice(0, Math.max(20, o.width)).trimEnd()).join('\n')}\n`;
}

export function App(props: AppProps) {
  return <Lines lines={screenLines(props)} width={Math.max(20, props.width)} />;
}
