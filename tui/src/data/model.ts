/**
 * The pure model ivctop shows: from two successive snapshots, one row per tunnelled connection with its endpoints,
 * state, geometry, throughput each way, channel occupancy and event rate; pending DEM events per domain; fallback
 * reasons; totals. No I/O here.
 *
 * A row is a connection as a guest reports it (one socket line: both directions of one TCP connection). When both
 * ends report it (mirror 4-tuples: one's local is the other's remote), the two lines become one row; each direction
 * is then taken from its sender (tx_* fields: bytes, in-flight channels), or from the receiver (rx_*) when only the
 * receiver reports. Endpoints are ordered by (domid, address), so `a` -> `b` is stable from sample to sample.
 *
 * A link row is what one domain (A) reports of its link with one peer domain (B), from A's /proc/fastivc/peers: A's
 * pages charged to B against the quota, A's sockets with B, A's tunnels to B pooled, B's tunnels to A parked at A,
 * and A's setups and reuses with B. When both domains report, the pair shows twice (A -> B and B -> A).
 */
import { EVENT_NAMES, type DemCounters, type EventName } from '../../../native/lib/index.js';
import { fallbacksOf, splitEndpoint } from './parse.js';
import { isDemError, peersOf, type DomainReport, type PeerLine, type SockLine, type Snapshot } from './types.js';

export interface Endpoint {
  /** The domain at this end: the reporter's own id, else the peer id the other end gives, else the DEM's table. */
  domid: number | null;
  ip: string;
  port: number;
  /** "ip:port" */
  addr: string;
}

export interface Geometry {
  channels: number;
  size: number;
}

/** A value per direction: `ab` is a -> b, `ba` is b -> a. */
export interface PerDir<T> {
  ab: T;
  ba: T;
}

export interface TunnelRow {
  /** "a.addr-b.addr": stable across samples. */
  key: string;
  a: Endpoint;
  b: Endpoint;
  /** Domains whose report has this connection (one or both ends). */
  reportedBy: number[];
  /** The socket mode (tunnel, broken, closed), the worst of the reports. */
  mode: string;
  /** Direction states (tcp, creating, open, reverted, closed, broken, resend). */
  state: PerDir<string>;
  /** null while a direction has no tunnel. */
  geometry: PerDir<Geometry | null>;
  /** Bytes carried by the tunnel in each direction, since it opened. */
  bytes: PerDir<number>;
  /** Bytes per second over the last interval (null on the first sample or when the counter went back). */
  rate: PerDir<number | null>;
  /** tx_in_flight / channels, 0..1 (null when the sender did not report or there is no tunnel). */
  occupancy: PerDir<number | null>;
  /** Times the sender waited for a free channel. */
  stalls: PerDir<number>;
  /** DEM events on this connection (each counted once), cumulative, and per second over the last interval. */
  events: number;
  eventsPerSec: number | null;
  violations: number;
}

/**
 * One domain's link with one peer domain, as that domain reports it (one line of its /proc/fastivc/peers): the
 * line's counts (PeerLine), seen from the reporting domain A towards the peer B.
 */
export interface LinkRow extends Omit<PeerLine, 'domain'> {
  /** "domain-peer": stable across samples. */
  key: string;
  /** The reporting domain (A). */
  domain: number;
  /** The peer domain (B). */
  peer: number;
  /** reuses / (setups + reuses), 0..1; null when A has set up and reused none. */
  reuseRatio: number | null;
}

export interface PendingRow {
  domid: number;
  /** event_info records this domain owns (connections on which it receives events). */
  records: number;
  /** Records with undelivered events, and the number of undelivered event bits. */
  pendingRecords: number;
  pendingEvents: number;
  byEvent: Record<EventName, number>;
}

export interface FallbackModel {
  /** reason -> sockets, summed over the domains. */
  total: Record<string, number>;
  byDomain: { domid: number; reasons: Record<string, number> }[];
}

export interface DomainSummary {
  domid: number;
  source: DomainReport['source'];
  version: string | null;
  sockets: number;
  tunnelsOpen: number;
  bytesTx: number;
  bytesRx: number;
  violations: number;
}

export interface Totals {
  tunnels: number;
  /** Sum of the domains' tunnels_open (a tunnel reported by both ends counts twice). */
  tunnelsOpenReported: number;
  bytes: number;
  /** Sum of the rows' rates (null when no row has one). */
  throughput: number | null;
  eventsPerSec: number | null;
  pendingEvents: number;
  fallbacks: number;
  violations: number;
  /** DEM raise hypercalls per second over the last interval, from its counters. */
  demRaisesPerSec: number | null;
}

export interface DemSummary {
  ok: boolean;
  error?: string;
  counters?: DemCounters;
  ipEntries?: number;
  records?: number;
}

export interface Model {
  time: number;
  /** Seconds between the previous snapshot and this one (null on the first). */
  interval: number | null;
  dem: DemSummary;
  tunnels: TunnelRow[];
  /** Every reporting domain's links (one row per peers line), by domain then peer; [] when no module has links. */
  links: LinkRow[];
  pending: PendingRow[];
  fallbacks: FallbackModel;
  domains: DomainSummary[];
  totals: Totals;
  errors: string[];
}

const num = (v: number | string | undefined): number => (typeof v === 'number' ? v : 0);

function ipKey(ip: string): number {
  return ip.split('.').reduce((n, p) => n * 256 + Number(p), 0);
}

/** IPv4 addresses in numeric order, before IPv6 ones (in text order: the module prints them compressed). */
function cmpIp(a: string, b: string): number {
  const a4 = !a.includes(':');
  const b4 = !b.includes(':');
  if (a4 && b4) return ipKey(a) - ipKey(b);
  if (a4 !== b4) return a4 ? -1 : 1;
  return a < b ? -1 : a > b ? 1 : 0;
}

function endpointOf(addr: string, domid: number | null): Endpoint {
  const [ip, port] = splitEndpoint(addr) ?? [addr, 0];
  return { domid, ip, port, addr };
}

function cmpEndpoint(x: Endpoint, y: Endpoint): number {
  return (x.domid ?? 1e9) - (y.domid ?? 1e9) || cmpIp(x.ip, y.ip) || x.port - y.port;
}

const MODE_RANK: Record<string, number> = { broken: 3, tunnel: 2, closed: 1 };

interface Report {
  domid: number;
  sock: SockLine;
}

/** The rows of one snapshot, without rates (see ratesFrom). */
function rowsOf(s: Snapshot): TunnelRow[] {
  const owners = new Map<string, number>();
  if (!isDemError(s.dem)) for (const e of s.dem.ipTable) owners.set(e.addr, e.domid);
  const groups = new Map<string, Report[]>();
  for (const d of s.domains) {
    for (const sock of d.sockets) {
      if (sock.mode === 'native') continue;
      const k = [sock.local, sock.remote].sort().join(' ');
      const g = groups.get(k) ?? [];
      g.push({ domid: d.domid, sock });
      groups.set(k, g);
    }
  }
  const rows: TunnelRow[] = [];
  for (const reports of groups.values()) {
    const first = reports[0] as Report;
    const at = (addr: string): Report | undefined => reports.find((r) => r.sock.local === addr);
    const domidOf = (addr: string): number | null => {
      const own = at(addr);
      if (own) return own.domid;
      const other = reports.find((r) => r.sock.remote === addr);
      if (other && other.sock.peer !== null) return other.sock.peer;
      return owners.get(splitEndpoint(addr)?.[0] ?? '') ?? null;
    };
    let a = endpointOf(first.sock.local, domidOf(first.sock.local));
    let b = endpointOf(first.sock.remote, domidOf(first.sock.remote));
    if (cmpEndpoint(a, b) > 0) [a, b] = [b, a];
    const ra = at(a.addr);
    const rb = at(b.addr);
    // One direction, from its sender (tx) or else its receiver (rx).
    const dir = (sender: Report | undefined, receiver: Report | undefined) => {
      if (sender) {
        const x = sender.sock;
        const geometry = x.txChannels > 0 ? { channels: x.txChannels, size: x.txChannelSize } : null;
        return {
          state: x.tx,
          geometry,
          bytes: x.txBytes,
          occupancy: geometry ? Math.min(1, x.txInFlight / geometry.channels) : null,
          stalls: x.txStalls,
        };
      }
      const x = (receiver as Report).sock;
      const geometry = x.rxChannels > 0 ? { channels: x.rxChannels, size: x.rxChannelSize } : null;
      return { state: x.rx, geometry, bytes: x.rxBytes, occupancy: null, stalls: 0 };
    };
    const ab = dir(ra, rb);
    const ba = dir(rb, ra);
    const events =
      ra && rb
        ? ra.sock.eventsRaised + rb.sock.eventsRaised
        : first.sock.eventsRaised + first.sock.eventsReceived;
    const mode = reports.map((r) => r.sock.mode).sort((x, y) => (MODE_RANK[y] ?? 0) - (MODE_RANK[x] ?? 0))[0] ?? '';
    rows.push({
      key: `${a.addr}-${b.addr}`,
      a,
      b,
      reportedBy: [...new Set(reports.map((r) => r.domid))].sort((x, y) => x - y),
      mode,
      state: { ab: ab.state, ba: ba.state },
      geometry: { ab: ab.geometry, ba: ba.geometry },
      bytes: { ab: ab.bytes, ba: ba.bytes },
      rate: { ab: null, ba: null },
      occupancy: { ab: ab.occupancy, ba: ba.occupancy },
      stalls: { ab: ab.stalls, ba: ba.stalls },
      events,
      eventsPerSec: null,
      violations: reports.reduce((n, r) => n + r.sock.violations, 0),
    });
  }
  return rows.sort((x, y) => cmpEndpoint(x.a, y.a) || cmpEndpoint(x.b, y.b));
}

/** The link rows of a snapshot: for each reporting domain A and each of its peers lines (peer B), A -> B. */
export function linksOf(s: Snapshot): LinkRow[] {
  const rows: LinkRow[] = [];
  const seen = new Set<string>();
  for (const d of s.domains) {
    for (const p of peersOf(d)) {
      const key = `${d.domid}-${p.domain}`;
      if (seen.has(key)) continue; // a hand-made snapshot listing a domain twice: its first report counts
      seen.add(key);
      const uses = p.setups + p.reuses;
      rows.push({
        key,
        domain: d.domid,
        peer: p.domain,
        pages: p.pages,
        quota: p.quota,
        sockets: p.sockets,
        pooled: p.pooled,
        parked: p.parked,
        setups: p.setups,
        reuses: p.reuses,
        reuseRatio: uses > 0 ? p.reuses / uses : null,
      });
    }
  }
  return rows.sort((x, y) => x.domain - y.domain || x.peer - y.peer);
}

const perSec = (now: number, before: number | undefined, dt: number | null): number | null =>
  dt === null || before === undefined || now < before ? null : (now - before) / dt;

function pendingOf(s: Snapshot): PendingRow[] {
  const by = new Map<number, PendingRow>();
  const row = (domid: number): PendingRow => {
    let r = by.get(domid);
    if (!r) {
      r = {
        domid,
        records: 0,
        pendingRecords: 0,
        pendingEvents: 0,
        byEvent: Object.fromEntries(EVENT_NAMES.map((n) => [n, 0])) as Record<EventName, number>,
      };
      by.set(domid, r);
    }
    return r;
  };
  for (const d of s.domains) row(d.domid);
  if (!isDemError(s.dem)) {
    for (const rec of s.dem.records) {
      const r = row(rec.owner);
      r.records += 1;
      if (rec.pending.length > 0) r.pendingRecords += 1;
      r.pendingEvents += rec.pending.length;
      for (const e of rec.pending) r.byEvent[e] = (r.byEvent[e] ?? 0) + 1;
    }
  }
  return [...by.values()].sort((x, y) => x.domid - y.domid);
}

/** The model of `cur`, with rates from `prev` (the snapshot before it), if any. */
export function buildModel(cur: Snapshot, prev?: Snapshot): Model {
  const dt = prev && cur.time > prev.time ? (cur.time - prev.time) / 1000 : null;
  const tunnels = rowsOf(cur);
  if (prev && dt !== null) {
    const before = new Map(rowsOf(prev).map((r) => [r.key, r]));
    for (const r of tunnels) {
      const p = before.get(r.key);
      r.rate = { ab: perSec(r.bytes.ab, p?.bytes.ab, dt), ba: perSec(r.bytes.ba, p?.bytes.ba, dt) };
      r.eventsPerSec = perSec(r.events, p?.events, dt);
    }
  }
  const pending = pendingOf(cur);
  const byDomain = cur.domains.map((d) => ({ domid: d.domid, reasons: fallbacksOf(d.stats) }));
  const total: Record<string, number> = {};
  for (const d of byDomain) for (const [k, v] of Object.entries(d.reasons)) total[k] = (total[k] ?? 0) + v;
  const domains: DomainSummary[] = cur.domains.map((d) => ({
    domid: d.domid,
    source: d.source,
    version: d.stats.version !== undefined ? String(d.stats.version) : null,
    sockets: num(d.stats.sockets),
    tunnelsOpen: num(d.stats.tunnels_open),
    bytesTx: num(d.stats.bytes_tx),
    bytesRx: num(d.stats.bytes_rx),
    violations: num(d.stats.violations),
  }));
  const sumOrNull = (xs: (number | null)[]): number | null =>
    xs.some((x) => x !== null) ? xs.reduce<number>((n, x) => n + (x ?? 0), 0) : null;
  let dem: DemSummary;
  let demRaisesPerSec: number | null = null;
  if (isDemError(cur.dem)) dem = { ok: false, error: cur.dem.error };
  else {
    dem = { ok: true, counters: cur.dem.counters, ipEntries: cur.dem.ipTable.length, records: cur.dem.records.length };
    if (prev && !isDemError(prev.dem)) demRaisesPerSec = perSec(cur.dem.counters.raises, prev.dem.counters.raises, dt);
  }
  return {
    time: cur.time,
    interval: dt,
    dem,
    tunnels,
    links: linksOf(cur),
    pending,
    fallbacks: { total, byDomain },
    domains,
    totals: {
      tunnels: tunnels.length,
      tunnelsOpenReported: domains.reduce((n, d) => n + d.tunnelsOpen, 0),
      bytes: tunnels.reduce((n, r) => n + r.bytes.ab + r.bytes.ba, 0),
      throughput: sumOrNull(tunnels.flatMap((r) => [r.rate.ab, r.rate.ba])),
      eventsPerSec: sumOrNull(tunnels.map((r) => r.eventsPerSec)),
      pendingEvents: pending.reduce((n, p) => n + p.pendingEvents, 0),
      fallbacks: Object.values(total).reduce((n, v) => n + v, 0),
      violations: domains.reduce((n, d) => n + d.violations, 0),
      demRaisesPerSec,
    },
    errors: [...cur.errors],
  };
}

// ---- views: sort and filter (what the keys s and f change)

export const SORT_KEYS = ['throughput', 'bytes', 'occupancy', 'events', 'domains'] as const;
export type SortKey = (typeof SORT_KEYS)[number];

const both = (p: PerDir<number | null>): number => (p.ab ?? 0) + (p.ba ?? 0);
const most = (p: PerDir<number | null>): number => Math.max(p.ab ?? -1, p.ba ?? -1);

/** Rows sorted by `key`: the largest first for numbers, by endpoints for `domains`; ties by endpoints. */
export function sortTunnels(rows: readonly TunnelRow[], key: SortKey): TunnelRow[] {
  const byEnds = (x: TunnelRow, y: TunnelRow): number => cmpEndpoint(x.a, y.a) || cmpEndpoint(x.b, y.b);
  const value: Record<Exclude<SortKey, 'domains'>, (r: TunnelRow) => number> = {
    throughput: (r) => both(r.rate),
    bytes: (r) => both(r.bytes),
    occupancy: (r) => most(r.occupancy),
    events: (r) => r.eventsPerSec ?? -1,
  };
  if (key === 'domains') return [...rows].sort(byEnds);
  const v = value[key];
  return [...rows].sort((x, y) => v(y) - v(x) || byEnds(x, y));
}

/** The domains one can filter on: every domain the model mentions, ascending. */
export function domainsOf(model: Model): number[] {
  const ids = new Set<number>();
  for (const d of model.domains) ids.add(d.domid);
  for (const p of model.pending) ids.add(p.domid);
  for (const r of model.tunnels) {
    if (r.a.domid !== null) ids.add(r.a.domid);
    if (r.b.domid !== null) ids.add(r.b.domid);
  }
  for (const l of model.links) {
    ids.add(l.domain);
    ids.add(l.peer);
  }
  return [...ids].sort((x, y) => x - y);
}

/** The model seen through a domain filter (null: all): its tunnels, links (either end), pending row and fallbacks. */
export function filterModel(model: Model, domid: number | null): Model {
  if (domid === null) return model;
  const byDomain = model.fallbacks.byDomain.filter((d) => d.domid === domid);
  return {
    ...model,
    tunnels: model.tunnels.filter((r) => r.a.domid === domid || r.b.domid === domid),
    links: model.links.filter((l) => l.domain === domid || l.peer === domid),
    pending: model.pending.filter((p) => p.domid === domid),
    fallbacks: { total: { ...(byDomain[0]?.reasons ?? {}) }, byDomain },
  };
}
