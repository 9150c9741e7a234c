/** Number formatting for ivctop: short, fixed-width friendly (binary units, as the module's sizes are). */

const UNITS = ['B', 'K', 'M', 'G', 'T'];

/** 0 -> "0B", 1536 -> "1.5K", 67108864 -> "64M". */
export function fmtBytes(n: number): string {
  let v = n;
  let u = 0;
  while (v >= 1024 && u < UNITS.length - 1) {
    v /= 1024;
    u += 1;
  }
  const s = u === 0 || v >= 10 ? Math.round(v).toString() : v.toFixed(1).replace(/\.0$/, '');
  return `${s}${UNITS[u]}`;
}

/** Bytes per second, "-" when unknown. */
export function fmtRate(n: number | null): string {
  return n === null ? '-' : `${fmtBytes(n)}/s`;
}

/** 0..1 -> "75%", "-" when unknown. */
export function fmtPct(n: number | null): string {
  return n === null ? '-' : `${Math.round(n * 100)}%`;
}

/** Events per second, "-" when unknown. */
export function fmtPerSec(n: number | null): string {
  if (n === null) return '-';
  return n >= 100 ? Math.round(n).toString() : n.toFixed(1).replace(/\.0$/, '');
}

/** A clock time "12:34:56" (UTC, so recordings replay the same everywhere). */
export function fmtTime(ms: number): string {
  return new Date(ms).toISOString().slice(11, 19);
}

/** Pads or cuts `s` to exactly `w` columns. */
export function fit(s: string, w: number, align: 'left' | 'right' = 'left'): string {
  if (s.length > w) return w <= 1 ? s.slice(0, w) : `${s.slice(0, w - 1)}~`;
  return align === 'left' ? s.padEnd(w) : s.padStart(w);
}

/** A link's name, "1 ↔ 2": the reporting domain first, then its peer, by id (as the tunnels table's "1-2"). */
export function linkName(l: { domain: number; peer: number }): string {
  return `${l.domain} ↔ ${l.peer}`;
}
