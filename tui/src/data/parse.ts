/**
 * Parsers for the module's statistics (guest-kmod/README.md, "Statistics (format version 1)") and for the output of
 * `xenstore-ls -f`. They never throw: what they cannot read is skipped and, where it matters, reported as a problem.
 */
import type { PeerLine, SockLine } from './types.js';

/** Keys of /proc/fastivc/stats this code knows; `fallback_<reason>` keys are kept whatever the reason. */
export const STATS_KEYS = [
  'format',
  'version',
  'domid',
  'channels',
  'channel_size',
  'sockets',
  'tunnels_open',
  'tunnels_created',
  'tunnels_mapped',
  'bytes_tx',
  'bytes_rx',
  'events_raised',
  'events_received',
  'virqs',
  'fetches',
  'violations',
  'pages_deferred',
  'lost_wakeups',
  'switch_pushes',
  'kicks_failed',
  'kicks_retried',
  'tick_wakes',
  'virq_steers',
  'suspends',
  'detaches',
  'bytes_resent',
  'owner_events',
  'dem_calls',
  'grant_map_calls',
  'grant_unmap_calls',
  'virq_cpu',
  'events_per_MiB_x100',
  'tx_pages',
  'tx_pages_max',
  'rx_pages',
  'rx_pages_max',
  'link_setups',
  'link_reuses',
  'link_evictions',
  'early_switches',
  'links_pooled',
  'links_parked',
  'link_pages',
] as const;

/** The fallback reasons format 1 lists (every one always present in the stats). */
export const FALLBACK_REASONS = [
  'not_coresident',
  'same_domain',
  'loopback',
  'not_ipv4',
  'excluded_port',
  'not_established',
  'other_ulp',
  'kernel_socket',
  'disabled',
  'dem_error',
  'no_memory',
  'grant_failed',
  'raise_failed',
  'peer_rejected',
  'map_failed',
  'peer_timeout',
  'oob',
  'violation',
  'peer_gone',
  'tunnel_budget',
  'user_timeout',
  'local_address',
  'suspend',
  'peer_quota',
] as const;

const KNOWN_STATS = new Set<string>(STATS_KEYS);
const FALLBACK_PREFIX = 'fallback_';

function numberOrText(v: string): number | string {
  return /^-?\d+$/.test(v) && Number.isSafeInteger(Number(v)) ? Number(v) : v;
}

/**
 * /proc/fastivc/stats (or its xenstore mirror): one `key value` pair per line. Known keys and every `fallback_*` key
 * are kept, numbers as numbers; unknown keys and malformed lines are ignored. `version` stays text.
 */
export function parseStats(text: string): Record<string, number | string> {
  const out: Record<string, number | string> = {};
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (line === '') continue;
    const m = /^([A-Za-z0-9_]+)\s+(.*)$/.exec(line);
    if (!m) continue;
    const key = m[1] as string;
    const value = (m[2] as string).trim();
    if (!KNOWN_STATS.has(key) && !key.startsWith(FALLBACK_PREFIX)) continue;
    out[key] = key === 'version' ? value : numberOrText(value);
  }
  return out;
}

/** The fallback counters of parsed stats: reason -> count (non-numbers skipped). */
export function fallbacksOf(stats: Record<string, number | string>): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [k, v] of Object.entries(stats)) {
    if (k.startsWith(FALLBACK_PREFIX) && typeof v === 'number') out[k.slice(FALLBACK_PREFIX.length)] = v;
  }
  return out;
}

/** "a.b.c.d:port", or "[v6]:port" (the module's IPv6 sockets): the address without brackets, and the port. */
const ENDPOINT = /^(?:(\d{1,3}(?:\.\d{1,3}){3})|\[([0-9A-Fa-f:.]*:[0-9A-Fa-f:.]*)\]):(\d{1,5})$/;

/** "a.b.c.d:port" -> [ip, port], or null. */
export function splitEndpoint(s: string): [string, number] | null {
  const m = ENDPOINT.exec(s);
  if (!m) return null;
  const port = Number(m[3]);
  return port <= 65535 ? [(m[1] ?? m[2]) as string, port] : null;
}

const SOCK_NUMBERS: [string, keyof SockLine][] = [
  ['tx_channels', 'txChannels'],
  ['tx_channel_size', 'txChannelSize'],
  ['tx_bytes', 'txBytes'],
  ['tx_in_flight', 'txInFlight'],
  ['tx_stalls', 'txStalls'],
  ['rx_channels', 'rxChannels'],
  ['rx_channel_size', 'rxChannelSize'],
  ['rx_bytes', 'rxBytes'],
  ['events_raised', 'eventsRaised'],
  ['events_received', 'eventsReceived'],
  ['violations', 'violations'],
];

/**
 * One socket line: `sock key=value ...`. Unknown keys are ignored; missing counters read 0. Returns a string (the
 * problem) when the line is not a socket line or lacks what identifies the socket (id, local, remote).
 */
export function parseSockLine(line: string): SockLine | string {
  const words = line.trim().split(/\s+/);
  if (words[0] !== 'sock') return `not a socket line: ${JSON.stringify(line.slice(0, 60))}`;
  const f = new Map<string, string>();
  for (const w of words.slice(1)) {
    const eq = w.indexOf('=');
    if (eq > 0) f.set(w.slice(0, eq), w.slice(eq + 1));
  }
  const id = Number(f.get('id'));
  const local = f.get('local') ?? '';
  const remote = f.get('remote') ?? '';
  if (!/^\d+$/.test(f.get('id') ?? '') || !splitEndpoint(local) || !splitEndpoint(remote)) {
    return `socket line without a valid id, local and remote: ${JSON.stringify(line.slice(0, 60))}`;
  }
  const peerText = f.get('peer') ?? '-';
  const reasonText = f.get('reason') ?? '-';
  const s: SockLine = {
    id,
    local,
    remote,
    peer: /^\d+$/.test(peerText) ? Number(peerText) : null,
    mode: f.get('mode') ?? 'native',
    reason: reasonText === '-' || reasonText === '' ? null : reasonText,
    tx: f.get('tx') ?? 'tcp',
    txChannels: 0,
    txChannelSize: 0,
    txBytes: 0,
    txInFlight: 0,
    txStalls: 0,
    rx: f.get('rx') ?? 'tcp',
    rxChannels: 0,
    rxChannelSize: 0,
    rxBytes: 0,
    eventsRaised: 0,
    eventsReceived: 0,
    violations: 0,
  };
  for (const [key, prop] of SOCK_NUMBERS) {
    const v = f.get(key);
    if (v !== undefined && /^\d+$/.test(v)) (s as unknown as Record<string, number>)[prop] = Number(v);
  }
  return s;
}

/** /proc/fastivc/sockets: every parseable line, and one problem per line that is not. Blank lines are skipped. */
export function parseSockets(text: string): { sockets: SockLine[]; problems: string[] } {
  const sockets: SockLine[] = [];
  const problems: string[] = [];
  for (const line of text.split('\n')) {
    if (line.trim() === '') continue;
    const s = parseSockLine(line);
    if (typeof s === 'string') problems.push(s);
    else sockets.push(s);
  }
  return { sockets, problems };
}

/** The numbers of a peers line, in the module's order (all required). */
const PEER_KEYS = ['pages', 'quota', 'sockets', 'pooled', 'parked', 'setups', 'reuses'] as const;

/** Domain ids a peer can have (below DOMID_FIRST_RESERVED). */
const MAX_DOMID = 32751;

/**
 * One line of /proc/fastivc/peers: `domain D pages N quota Q sockets S pooled P parked K setups U reuses R`, as
 * `key value` pairs after `domain D`. Unknown pairs are ignored (a newer module may add some). Returns null for a
 * line that is not one: another first word, an odd number of words, a required key missing, or a value that is not a
 * non-negative integer (a key given twice: the first counts).
 */
export function parsePeerLine(line: string): PeerLine | null {
  const words = line.trim().split(/\s+/);
  if (words[0] !== 'domain' || words.length % 2 !== 0) return null;
  const f = new Map<string, string>();
  for (let i = 0; i < words.length; i += 2) {
    const k = words[i] as string;
    if (!f.has(k)) f.set(k, words[i + 1] as string);
  }
  const int = (k: string): number | null => {
    const v = f.get(k);
    return v !== undefined && /^\d+$/.test(v) && Number.isSafeInteger(Number(v)) ? Number(v) : null;
  };
  const domain = int('domain');
  if (domain === null || domain > MAX_DOMID) return null;
  const out: PeerLine = { domain, pages: 0, quota: 0, sockets: 0, pooled: 0, parked: 0, setups: 0, reuses: 0 };
  for (const k of PEER_KEYS) {
    const v = int(k);
    if (v === null) return null;
    out[k] = v;
  }
  return out;
}

/**
 * /proc/fastivc/peers (or its xenstore mirror): one PeerLine per well-formed line, by peer domain (ascending; a
 * domain listed twice: its first line). Blank and malformed lines are skipped; never throws ('' and text from an
 * older module give []).
 */
export function parsePeers(text: string): PeerLine[] {
  const byDomain = new Map<number, PeerLine>();
  for (const line of String(text).split('\n')) {
    if (line.trim() === '') continue;
    const p = parsePeerLine(line);
    if (p && !byDomain.has(p.domain)) byDomain.set(p.domain, p);
  }
  return [...byDomain.values()].sort((a, b) => a.domain - b.domain);
}

/** Undoes xenstore-ls's escaping of a value: \n \r \t \\ and \ooo (octal) for other bytes outside ' '..'~'. */
export function unescapeXenstore(v: string): string {
  let out = '';
  for (let i = 0; i < v.length; i++) {
    const c = v[i] as string;
    if (c !== '\\' || i + 1 >= v.length) {
      out += c;
      continue;
    }
    const n = v[i + 1] as string;
    if (n === 'n') out += '\n';
    else if (n === 'r') out += '\r';
    else if (n === 't') out += '\t';
    else if (n === '\\') out += '\\';
    else if (/^[0-7]{3}$/.test(v.slice(i + 1, i + 4))) {
      out += String.fromCharCode(parseInt(v.slice(i + 1, i + 4), 8));
      i += 2;
    } else {
      out += c + n;
    }
    i += 1;
  }
  return out;
}

/**
 * `xenstore-ls -f PATH` output: `/full/path = "value"` per node (values escaped as unescapeXenstore undoes; quotes
 * inside values are not escaped, so the value runs to the line's last quote). Returns path -> value.
 */
export function parseXenstoreLs(text: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const line of text.split('\n')) {
    const eq = line.indexOf(' = "');
    if (eq <= 0 || !line.startsWith('/') || !line.endsWith('"')) continue;
    out.set(line.slice(0, eq), unescapeXenstore(line.slice(eq + 4, -1)));
  }
  return out;
}
