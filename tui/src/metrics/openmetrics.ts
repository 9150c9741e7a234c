/**
 * A snapshot as OpenMetrics 1.0 text (`fastivc status --openmetrics`), for node_exporter's textfile collector or a
 * Prometheus scrape. Pure: the same snapshot always gives the same text.
 *
 * Names follow Prometheus practice: prefix `fastivc_`; a monotonically increasing count is a `counter` family whose
 * sample is `<family>_total`; a current value is a `gauge`; a unit is the name's suffix and has a `# UNIT` line
 * (bytes, seconds). Every per-domain sample carries `domain="<domid>"`. The DEM is host-wide: its families have no
 * domain label. The decision per key is the maps below (DEM_MAP, STATS_MAP, PEER_MAP); `fallback_<reason>` keys
 * become `fastivc_fallbacks_total{domain,reason}`. Each line of a domain's /proc/fastivc/peers (its link with one peer
 * domain) becomes one sample per fastivc_peer_* family with `domain` (the reporter) and `peer` labels; the domain-wide
 * link_* keys are fastivc_link_* and fastivc_links_* (their sums over the peers, for what the module still holds).
 * Names starting `fastivc_dem_` are the DEM's.
 *
 * Keys this code does not know (a newer module or addon) are skipped: their meaning, hence counter or gauge, is
 * unknown, and a guess could break a query later. parseStats already drops them; the maps drop them again for
 * snapshots from elsewhere. Values that are not finite numbers are skipped, and so are negative counter values, so
 * the output is always valid whatever the snapshot holds. Label values are escaped (backslash, double quote,
 * newline), since some come from the guests (version, fallback reasons).
 *
 * Why no `info` type: node_exporter's textfile collector reads files with the Prometheus text parser, which rejects
 * the whole file for a type it does not know (`info` is OpenMetrics-only); `fastivc_module_info` is therefore a
 * gauge of value 1, as `node_uname_info` is. That parser reads `# UNIT` and `# EOF` as comments.
 */
import type { DemCounters } from '../../../native/lib/index.js';
import { STATS_KEYS } from '../data/parse.js';
import { isDemError, peersOf, type DomainReport, type PeerLine, type Snapshot } from '../data/types.js';

/** The Content-Type of this text over HTTP. */
export const CONTENT_TYPE = 'application/openmetrics-text; version=1.0.0; charset=utf-8';

export type MetricType = 'counter' | 'gauge';

export interface Family {
  /** Family name; a counter's sample adds `_total`. */
  name: string;
  type: MetricType;
  /** `# UNIT`; the name then ends with `_<unit>`. */
  unit?: 'bytes' | 'seconds';
  help: string;
}

const fam = (name: string, type: MetricType, help: string, unit?: Family['unit']): Family =>
  unit === undefined ? { name: `fastivc_${name}`, type, help } : { name: `fastivc_${name}`, type, help, unit };

/** Where one key of the statistics goes, or why it goes nowhere. */
export type Mapping = { family: Family; labels?: Record<string, string>; scale?: number } | { skip: string };

// ---- the families, in output order ----

const DEM_UP = fam('dem_up', 'gauge', '1 when the DEM could be queried (dom0 with the DEM), else 0');
const SCRAPE_ERRORS = fam(
  'scrape_errors',
  'gauge',
  'parts of this sample that could not be read (DEM, /proc/fastivc, xenstore, bad lines); fastivc status lists them',
);
const SAMPLE_TIME = fam(
  'sample_timestamp_seconds',
  'gauge',
  'when this sample was taken, seconds since the epoch',
  'seconds',
);

/** DemCounters -> family. Typed by DemCounters, so a new field does not compile until it is decided here. */
export const DEM_MAP: Record<keyof DemCounters, Family> = {
  raises: fam('dem_raises', 'counter', 'successful raise_event calls'),
  raisesDenied: fam('dem_raises_denied', 'counter', 'raise_event calls the DEM refused (any error)'),
  virqs: fam('dem_virqs', 'counter', 'VIRQ_EVTMGR signals attempted (a destination going from 0 to 1 pending)'),
  fetches: fam('dem_fetches', 'counter', 'get_events calls, refused ones included'),
  eventsDelivered: fam('dem_events_delivered', 'counter', 'records returned by get_events'),
  recordsCreated: fam('dem_records_created', 'counter', 'event_info records created'),
  recordsFreed: fam('dem_records_freed', 'counter', 'event_info records freed'),
  lookups: fam('dem_lookups', 'counter', 'IP-to-domain lookups'),
  ipEntries: fam('dem_ip_entries', 'gauge', 'entries in the IP-to-domain table now'),
  records: fam('dem_records', 'gauge', 'event_info records now'),
  pending: fam('dem_records_pending', 'gauge', 'event_info records with events not yet fetched, now'),
};

const MODULE_UP = fam('module_up', 'gauge', '1 when the domain reported its module statistics, 0 when listed without');
const MODULE_INFO = fam('module_info', 'gauge', "the module's version, as the domain reports it (value always 1)");
const PARAM_CHANNELS = fam('param_channels', 'gauge', 'channels per new tunnel (module parameter; 0: sized by demand)');
const PARAM_CHANNEL_SIZE = fam(
  'param_channel_size_bytes',
  'gauge',
  'channel size of new tunnels (module parameter; 0: sized by demand)',
  'bytes',
);
const SOCKETS = fam('sockets', 'gauge', 'socket contexts now (sockets the Protocol Monitor decided on, still open)');
const TUNNELS_OPEN = fam('tunnels_open', 'gauge', 'tunnels (one per direction) open now, either end');
const TUNNEL_PAGES = fam('tunnel_pages', 'gauge', 'pages held now: tx our sending tunnels, rx peers tunnels we map');
const TUNNEL_PAGES_LIMIT = fam('tunnel_pages_limit', 'gauge', 'page budget (tx_pages_max, rx_pages_max parameters)');
const TUNNELS_CREATED = fam('tunnels_created', 'counter', 'tunnels this domain created as sender');
const TUNNELS_MAPPED = fam('tunnels_mapped', 'counter', 'tunnels this domain mapped as receiver');
const SENT = fam('tunnel_sent_bytes', 'counter', 'bytes sent through tunnels', 'bytes');
const RECEIVED = fam('tunnel_received_bytes', 'counter', 'bytes received through tunnels', 'bytes');
const EVENTS_RAISED = fam('events_raised', 'counter', 'DEM events this domain raised (raise hypercalls)');
const EVENTS_RECEIVED = fam('events_received', 'counter', 'DEM events this domain received (event bits fetched)');
const VIRQS = fam('virqs', 'counter', 'VIRQ_EVTMGR interrupts taken');
const FETCHES = fam('fetches', 'counter', 'get_events calls');
const VIOLATIONS = fam('tunnel_violations', 'counter', 'tunnels broken because the peer wrote a bad value');
const PAGES_DEFERRED = fam('tunnel_pages_deferred', 'counter', 'pages the peer still had mapped at release');
const LOST_WAKEUPS = fam('lost_wakeups', 'counter', 'waits that found news only when their 100 ms slice ran out');
const SWITCH_PUSHES = fam('switch_pushes', 'counter', 'switches to a tunnel that first pushed data TCP held back');
const KICKS_FAILED = fam('kicks_failed', 'counter', 'data events the DEM refused for lack of room (raised again)');
const KICKS_RETRIED = fam('kicks_retried', 'counter', "sockets whose pending data events the SEM's tick raised again");
const TICK_WAKES = fam('tick_wakes', 'counter', "wake-ups the SEM's tick gave a waiter with news");
const VIRQ_STEERS = fam('virq_steers', 'counter', 'moves of VIRQ_EVTMGR to the vCPU of a task about to sleep on a tunnel');
const SUSPENDS = fam('suspends', 'counter', 'suspends of this domain (save, migration) its tunnels were detached for');
const DETACHES = fam('tunnel_detaches', 'counter', 'tunnels left before a suspend, ours or the peer domain\'s');
const RESENT = fam('resent_bytes', 'counter', 'bytes a detached receiver had not consumed, sent again on TCP', 'bytes');
const OWNER_EVENTS = fam('owner_events', 'counter', "control events the SEM left to the socket's owner, who held its lock");
const DEM_CALLS = fam('evtmgr_calls', 'counter', 'DEM hypercalls (evtmgr_op) this module made: look-ups, raises, fetches, releases');
const GRANT_MAP_CALLS = fam('grant_map_calls', 'counter', 'grant map hypercalls (batches) this module made to map peers\' tunnels');
const GRANT_UNMAP_CALLS = fam('grant_unmap_calls', 'counter', 'grant unmap hypercalls (batches) this module made');
const VIRQ_CPU = fam('virq_cpu', 'gauge', 'the vCPU VIRQ_EVTMGR is delivered to (-1: not bound)');
const EVENTS_PER_MIB = fam('events_per_mebibyte', 'gauge', 'events raised per MiB carried by tunnels, since load');
const LINK_SETUPS = fam('link_setups', 'counter', 'tunnels set up anew (granted as sender, mapped as receiver), not taken from a link');
const LINK_REUSES = fam('link_reuses', 'counter', 'tunnels taken from a link for a new connection (no hypercall, no allocation)');
const LINK_EVICTIONS = fam('link_evictions', 'counter', 'tunnels that left a link (idle, quota, peer gone, suspend, links off)');
const EARLY_SWITCHES = fam('early_switches', 'counter', 'connections switched to a tunnel at their first byte (a tunnel from a link)');
const LINKS_POOLED = fam('links_pooled', 'gauge', 'our sending tunnels kept granted in links for the next connection, now');
const LINKS_PARKED = fam('links_parked', 'gauge', "peers' tunnels kept mapped in links for the next connection, now");
const LINK_PAGES = fam('link_pages', 'gauge', 'pages held in links now (part of fastivc_tunnel_pages)');
const FALLBACKS = fam('fallbacks', 'counter', 'sockets (or directions) that stayed on or returned to TCP, per reason');

/**
 * The decision for every key of /proc/fastivc/stats (guest-kmod/README.md, "Statistics"). Typed by STATS_KEYS, so
 * a key parse.ts learns does not compile until it is decided here. `fallback_<reason>` keys: FALLBACKS.
 */
export const STATS_MAP: Record<(typeof STATS_KEYS)[number], Mapping> = {
  format: { skip: 'the text format version, not a measurement' },
  version: { family: MODULE_INFO }, // text: a label of fastivc_module_info
  domid: { skip: 'the domain label' },
  channels: { family: PARAM_CHANNELS },
  channel_size: { family: PARAM_CHANNEL_SIZE },
  sockets: { family: SOCKETS },
  tunnels_open: { family: TUNNELS_OPEN },
  tx_pages: { family: TUNNEL_PAGES, labels: { direction: 'tx' } },
  rx_pages: { family: TUNNEL_PAGES, labels: { direction: 'rx' } },
  tx_pages_max: { family: TUNNEL_PAGES_LIMIT, labels: { direction: 'tx' } },
  rx_pages_max: { family: TUNNEL_PAGES_LIMIT, labels: { direction: 'rx' } },
  tunnels_created: { family: TUNNELS_CREATED },
  tunnels_mapped: { family: TUNNELS_MAPPED },
  bytes_tx: { family: SENT },
  bytes_rx: { family: RECEIVED },
  events_raised: { family: EVENTS_RAISED },
  events_received: { family: EVENTS_RECEIVED },
  virqs: { family: VIRQS },
  fetches: { family: FETCHES },
  violations: { family: VIOLATIONS },
  pages_deferred: { family: PAGES_DEFERRED },
  lost_wakeups: { family: LOST_WAKEUPS },
  switch_pushes: { family: SWITCH_PUSHES },
  kicks_failed: { family: KICKS_FAILED },
  kicks_retried: { family: KICKS_RETRIED },
  tick_wakes: { family: TICK_WAKES },
  virq_steers: { family: VIRQ_STEERS },
  suspends: { family: SUSPENDS },
  detaches: { family: DETACHES },
  bytes_resent: { family: RESENT },
  owner_events: { family: OWNER_EVENTS },
  dem_calls: { family: DEM_CALLS },
  grant_map_calls: { family: GRANT_MAP_CALLS },
  grant_unmap_calls: { family: GRANT_UNMAP_CALLS },
  link_setups: { family: LINK_SETUPS },
  link_reuses: { family: LINK_REUSES },
  link_evictions: { family: LINK_EVICTIONS },
  early_switches: { family: EARLY_SWITCHES },
  links_pooled: { family: LINKS_POOLED },
  links_parked: { family: LINKS_PARKED },
  link_pages: { family: LINK_PAGES },
  virq_cpu: { family: VIRQ_CPU },
  events_per_MiB_x100: { family: EVENTS_PER_MIB, scale: 0.01 }, // a ratio since load: a gauge, in units (not x100)
};

/**
 * The decision for every number of a /proc/fastivc/peers line (guest-kmod/README.md), each sample labelled
 * {domain, peer}. Typed by PeerLine, so a field parse.ts learns does not compile until it is decided here.
 */
export const PEER_MAP: Record<Exclude<keyof PeerLine, 'domain'>, Family> = {
  pages: fam('peer_pages', 'gauge', "pages of this domain's per-peer quota the peer domain is charged now (granted, mapped, held)"),
  quota: fam('peer_pages_limit', 'gauge', 'the per-peer page quota (peer_pages_max parameter)'),
  sockets: fam('peer_sockets', 'gauge', 'tunnel-mode sockets with the peer domain now'),
  pooled: fam('peer_links_pooled', 'gauge', 'our sending tunnels to the peer domain kept granted in its link, now'),
  parked: fam('peer_links_parked', 'gauge', "the peer domain's tunnels to us kept mapped in its link, now"),
  setups: fam('peer_link_setups', 'counter', 'tunnels set up anew with the peer domain (grants or maps)'),
  reuses: fam('peer_link_reuses', 'counter', "tunnels with the peer domain taken from its link (no hypercall)"),
};

/** Every family, in output order (families with no sample are left out, except the first two). */
export const FAMILIES: readonly Family[] = [
  DEM_UP,
  SCRAPE_ERRORS,
  SAMPLE_TIME,
  ...Object.values(DEM_MAP),
  MODULE_UP,
  MODULE_INFO,
  PARAM_CHANNELS,
  PARAM_CHANNEL_SIZE,
  SOCKETS,
  TUNNELS_OPEN,
  TUNNEL_PAGES,
  TUNNEL_PAGES_LIMIT,
  TUNNELS_CREATED,
  TUNNELS_MAPPED,
  SENT,
  RECEIVED,
  EVENTS_RAISED,
  EVENTS_RECEIVED,
  VIRQS,
  FETCHES,
  VIOLATIONS,
  PAGES_DEFERRED,
  LOST_WAKEUPS,
  SWITCH_PUSHES,
  KICKS_FAILED,
  KICKS_RETRIED,
  TICK_WAKES,
  VIRQ_STEERS,
  SUSPENDS,
  DETACHES,
  RESENT,
  OWNER_EVENTS,
  DEM_CALLS,
  GRANT_MAP_CALLS,
  GRANT_UNMAP_CALLS,
  LINK_SETUPS,
  LINK_REUSES,
  LINK_EVICTIONS,
  EARLY_SWITCHES,
  LINKS_POOLED,
  LINKS_PARKED,
  LINK_PAGES,
  ...Object.values(PEER_MAP),
  VIRQ_CPU,
  EVENTS_PER_MIB,
  FALLBACKS,
];

const FALLBACK_PREFIX = 'fallback_';

/** A label value or HELP text as OpenMetrics escapes it; lone UTF-16 surrogates (not encodable) become U+FFFD. */
export function escapeValue(v: string): string {
  return v.replace(/\p{Cs}/gu, '\uFFFD').replace(/[\\"\n]/g, (c) => (c === '\n' ? '\\n' : `\\${c}`));
}

function labelText(labels: [string, string][]): string {
  return labels.length === 0 ? '' : `{${labels.map(([k, v]) => `${k}="${escapeValue(v)}"`).join(',')}}`;
}

/** Collects samples per family, so families come out whole and in FAMILIES order. */
class Exposition {
  private readonly samples = new Map<Family, string[]>(FAMILIES.map((f) => [f, []]));

  add(f: Family, labels: [string, string][], value: number): void {
    if (!Number.isFinite(value) || (f.type === 'counter' && value < 0)) return;
    const name = f.type === 'counter' ? `${f.name}_total` : f.name;
    this.samples.get(f)?.push(`${name}${labelText(labels)} ${String(value)}`);
  }

  text(): string {
    const out: string[] = [];
    for (const [f, lines] of this.samples) {
      if (lines.length === 0 && f !== DEM_UP && f !== SCRAPE_ERRORS) continue;
      out.push(`# HELP ${f.name} ${escapeValue(f.help)}`, `# TYPE ${f.name} ${f.type}`);
      if (f.unit !== undefined) out.push(`# UNIT ${f.name} ${f.unit}`);
      out.push(...lines);
    }
    out.push('# EOF');
    return `${out.join('\n')}\n`;
  }
}

function addDomain(x: Exposition, d: DomainReport): void {
  const dom: [string, string] = ['domain', String(d.domid)];
  const st = d.stats;
  x.add(MODULE_UP, [dom, ['source', d.source]], Object.keys(st).length > 0 ? 1 : 0);
  for (const [key, value] of Object.entries(st)) {
    if (key.startsWith(FALLBACK_PREFIX)) {
      if (typeof value === 'number') x.add(FALLBACKS, [dom, ['reason', key.slice(FALLBACK_PREFIX.length)]], value);
      continue;
    }
    const m = Object.hasOwn(STATS_MAP, key) ? STATS_MAP[key as keyof typeof STATS_MAP] : undefined;
    if (m === undefined || 'skip' in m) continue;
    if (m.family === MODULE_INFO) {
      if (typeof value === 'string' || typeof value === 'number') {
        x.add(MODULE_INFO, [dom, ['version', String(value)]], 1);
      }
      continue;
    }
    if (typeof value !== 'number') continue;
    x.add(m.family, [dom, ...Object.entries(m.labels ?? {})], value * (m.scale ?? 1));
  }
  // One series per peer domain (peersOf keeps well-formed lines; a peer listed twice: its first line).
  const peers = new Set<number>();
  for (const p of peersOf(d)) {
    if (peers.has(p.domain)) continue;
    peers.add(p.domain);
    for (const [field, f] of Object.entries(PEER_MAP) as [keyof typeof PEER_MAP, Family][]) {
      x.add(f, [dom, ['peer', String(p.domain)]], p[field]);
    }
  }
}

/** The snapshot as an OpenMetrics exposition, ending with `# EOF` and a newline. */
export function toOpenMetrics(s: Snapshot): string {
  const x = new Exposition();
  const demDown = isDemError(s.dem);
  x.add(DEM_UP, [], demDown ? 0 : 1);
  x.add(SCRAPE_ERRORS, [], s.errors.length + (demDown ? 1 : 0));
  x.add(SAMPLE_TIME, [], s.time / 1000);
  if (!isDemError(s.dem)) {
    const c = s.dem.counters as unknown as Record<string, unknown>;
    for (const [key, f] of Object.entries(DEM_MAP)) {
      const v = c[key];
      if (typeof v === 'number') x.add(f, [], v);
    }
  }
  // One report per domain: sampleLive never gives two, a hand-made snapshot might (the first one counts).
  const seen = new Set<number>();
  for (const d of [...s.domains].sort((a, b) => a.domid - b.domid)) {
    if (seen.has(d.domid)) continue;
    seen.add(d.domid);
    addDomain(x, d);
  }
  return x.text();
}
