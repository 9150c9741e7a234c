/** `fastivc status --openmetrics | --out | --serve`: the OpenMetrics exposition, checked by a strict line validator. */
import { spawn } from 'node:child_process';
import { link, mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import test, { type ExecutionContext } from 'ava';
import { openDem, type DemCounters, type DemSource } from '../native/lib/index.js';
import { createMockDem, mockRecord } from '../native/lib/mock.js';
import { reportsFromXenstore } from '../tui/src/data/live.js';
import { parsePeers, parseStats, STATS_KEYS } from '../tui/src/data/parse.js';
import type { CommandRunner, FileReader } from '../tui/src/data/system.js';
import type { DomainReport, Snapshot } from '../tui/src/data/types.js';
import { CONTENT_TYPE, PEER_MAP, STATS_MAP, toOpenMetrics } from '../tui/src/metrics/openmetrics.js';
import { writeAtomic } from '../tui/src/metrics/textfile.js';
import { parseListen } from '../tui/src/options.js';
import { run } from '../tui/src/program.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const fixtures = path.join(root, 'test', 'fixtures', 'fastivc');
const fixture = (name: string): Promise<string> => readFile(path.join(fixtures, name), 'utf8');

// ---- a strict OpenMetrics 1.0 line validator (the subset of types this exporter may use, and what it must not do) ----

interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}
interface Fam {
  type: string;
  unit?: string;
  help?: string;
  samples: Sample[];
}

const METRIC_NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const LABEL_NAME = /^[a-zA-Z_][a-zA-Z0-9_]*$/;
const NUMBER = /^(?:[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?|NaN|[+-]?Inf)$/;
const TYPES = new Set(['counter', 'gauge', 'info', 'stateset', 'histogram', 'gaugehistogram', 'summary', 'unknown']);

/** Reads `"..."` at s[i] (i at the opening quote); returns the unescaped value and the index after the closing quote. */
function readQuoted(s: string, i: number, where: string): [string, number] {
  if (s[i] !== '"') throw new Error(`${where}: expected '"'`);
  let v = '';
  for (let j = i + 1; j < s.length; j++) {
    const c = s[j];
    if (c === '"') return [v, j + 1];
    if (c === '\\') {
      const e = s[j + 1];
      if (e === '\\' || e === '"') v += e;
      else if (e === 'n') v += '\n';
      else throw new Error(`${where}: bad escape \\${e ?? ''}`);
      j++;
    } else v += c;
  }
  throw new Error(`${where}: unterminated label value`);
}

/** HELP text: the same escapes as a label value, and a raw double quote is not allowed either. */
function unescapeHelp(s: string, where: string): string {
  if (/(^|[^\\])(\\\\)*"/.test(s)) throw new Error(`${where}: unescaped '"' in HELP`);
  const [v, end] = readQuoted(`"${s}"`, 0, where);
  if (end !== s.length + 2) throw new Error(`${where}: bad HELP text`);
  return v;
}

function parseSample(line: string, where: string): Sample {
  const m = /^([^{\s]+)/.exec(line);
  const name = m?.[1] ?? '';
  if (!METRIC_NAME.test(name)) throw new Error(`${where}: bad metric name ${JSON.stringify(name)}`);
  let i = name.length;
  const labels: Record<string, string> = {};
  if (line[i] === '{') {
    i++;
    while (line[i] !== '}') {
      const eq = line.indexOf('=', i);
      if (eq < 0) throw new Error(`${where}: label without '='`);
      const ln = line.slice(i, eq);
      if (!LABEL_NAME.test(ln) || ln.startsWith('__')) throw new Error(`${where}: bad label name ${JSON.stringify(ln)}`);
      if (Object.hasOwn(labels, ln)) throw new Error(`${where}: label ${ln} twice`);
      const [v, next] = readQuoted(line, eq + 1, where);
      labels[ln] = v;
      i = next;
      if (line[i] === ',') i++;
      else if (line[i] !== '}') throw new Error(`${where}: expected ',' or '}' after a label`);
    }
    i++;
  }
  if (line[i] !== ' ') throw new Error(`${where}: expected one space before the value`);
  const value = line.slice(i + 1);
  if (!NUMBER.test(value)) throw new Error(`${where}: bad value ${JSON.stringify(value)} (timestamps are not used here)`);
  return { name, labels, value: value === 'NaN' ? NaN : Number(value.replace('Inf', 'Infinity')) };
}

/** Validates the whole exposition and returns its families; throws with the line number on the first problem. */
function validate(text: string): Map<string, Fam> {
  const fams = new Map<string, Fam>();
  if (!text.endsWith('\n')) throw new Error('the text does not end with a newline');
  const lines = text.slice(0, -1).split('\n');
  if (lines[lines.length - 1] !== '# EOF') throw new Error('the last line is not # EOF');
  let current: string | undefined;
  let seenSample = false;
  const closed = new Set<string>();
  const seenSeries = new Set<string>();
  lines.forEach((line, n) => {
    const where = `line ${n + 1}`;
    if (n === lines.length - 1) return;
    if (line === '' || line === '# EOF') throw new Error(`${where}: empty line or early # EOF`);
    const meta = /^# (HELP|TYPE|UNIT) (\S+)(?: (.*))?$/.exec(line);
    if (line.startsWith('#')) {
      if (!meta) throw new Error(`${where}: not a HELP, TYPE or UNIT line: ${line}`);
      const [, kind, name, rest = ''] = meta as unknown as [string, string, string, string | undefined];
      if (!METRIC_NAME.test(name)) throw new Error(`${where}: bad family name`);
      if (name !== current) {
        if (current !== undefined) closed.add(current);
        if (fams.has(name) || closed.has(name)) throw new Error(`${where}: family ${name} again (interleaved or duplicate)`);
        fams.set(name, { type: 'unknown', samples: [] });
        current = name;
        seenSample = false;
      }
      const f = fams.get(name) as Fam;
      if (seenSample) throw new Error(`${where}: ${kind} after samples of ${name}`);
      if (kind === 'TYPE') {
        if (!TYPES.has(rest)) throw new Error(`${where}: unknown type ${rest}`);
        if ((f as { typed?: boolean }).typed) throw new Error(`${where}: second TYPE`);
        (f as { typed?: boolean }).typed = true;
        f.type = rest;
      } else if (kind === 'UNIT') {
        if (f.unit !== undefined) throw new Error(`${where}: second UNIT`);
        if (!name.endsWith(`_${rest}`)) throw new Error(`${where}: ${name} does not end with its unit _${rest}`);
        f.unit = rest;
      } else {
        if (f.help !== undefined) throw new Error(`${where}: second HELP`);
        f.help = unescapeHelp(rest, where);
      }
      return;
    }
    const s = parseSample(line, where);
    if (current === undefined) throw new Error(`${where}: sample before any family`);
    const f = fams.get(current) as Fam;
    const want = f.type === 'counter' ? [`${current}_total`, `${current}_created`] : [current];
    if (!want.includes(s.name)) throw new Error(`${where}: sample ${s.name} does not belong to family ${current} (${f.type})`);
    if (f.type === 'counter' && (Number.isNaN(s.value) || s.value < 0)) throw new Error(`${where}: counter value ${s.value}`);
    const series = `${s.name}${JSON.stringify(Object.entries(s.labels).sort())}`;
    if (seenSeries.has(series)) throw new Error(`${where}: duplicate series ${series}`);
    seenSeries.add(series);
    seenSample = true;
    f.samples.push(s);
  });
  for (const [name, f] of fams) {
    if (f.type === 'counter' && /_total$/.test(name)) throw new Error(`counter family ${name} ends with _total`);
  }
  return fams;
}

/** The value of the one sample of `name` with exactly these labels (undefined when none). */
function value(fams: Map<string, Fam>, name: string, labels: Record<string, string> = {}): number | undefined {
  const fam = fams.get(name.replace(/_total$/, ''));
  const want = JSON.stringify(Object.entries(labels).sort());
  const hits = (fam?.samples ?? []).filter((s) => s.name === name && JSON.stringify(Object.entries(s.labels).sort()) === want);
  return hits.length === 1 ? hits[0]?.value : undefined;
}

// ---- snapshots from the fixtures ----

const COUNTERS: DemCounters = {
  raises: 9,
  raisesDenied: 1,
  virqs: 2,
  fetches: 3,
  eventsDelivered: 8,
  recordsCreated: 4,
  recordsFreed: 3,
  lookups: 5,
  ipEntries: 2,
  records: 1,
  pending: 1,
};

async function fixtureSnapshot(): Promise<Snapshot> {
  const errors: string[] = [];
  const self: DomainReport = { domid: 0, source: 'proc', stats: parseStats(await fixture('stats-domU1.txt')), sockets: [] };
  self.stats.domid = 0;
  const domains = [self, ...reportsFromXenstore(await fixture('xenstore-ls-domains.txt'), errors).filter((d) => d.domid !== 0)];
  return {
    time: 1765000000500,
    dem: { info: undefined, counters: COUNTERS, records: [], ipTable: [] },
    domains,
    errors,
  };
}

test('validator: rejects what is not OpenMetrics (so the checks below can fail)', (t) => {
  const ok = '# TYPE a counter\na_total 1\n# TYPE b gauge\nb{x="1"} 2\n# EOF\n';
  t.notThrows(() => validate(ok));
  const bad: [string, RegExp][] = [
    ['# TYPE a counter\na_total 1\n', /last line/],
    ['# TYPE a counter\na_total 1\n# EOF', /newline/],
    ['# TYPE a counter\na 1\n# EOF\n', /does not belong/],
    ['# TYPE a gauge\na_total 1\n# EOF\n', /does not belong/],
    ['# TYPE a gauge\na 1\n# TYPE b gauge\nb 1\n# TYPE a gauge\n# EOF\n', /again/],
    ['# TYPE a gauge\na 1\na 2\n# EOF\n', /duplicate series/],
    ['# TYPE a gauge\na{x="\\t"} 1\n# EOF\n', /bad escape/],
    ['# TYPE a gauge\na{x="1",x="2"} 1\n# EOF\n', /twice/],
    ['# TYPE a_bytes gauge\n# UNIT a_bytes seconds\na_bytes 1\n# EOF\n', /unit/],
    ['# TYPE a counter\na_total -1\n# EOF\n', /counter value/],
    ['# TYPE a gauge\na 1\n# TYPE a gauge\n# EOF\n', /TYPE after samples/],
    ['b 1\n# EOF\n', /before any family/],
    ['# TYPE a gauge\na 1\n# EOF\n# EOF\n', /early # EOF/],
    ['# TYPE a gauge\na 1 2\n# EOF\n', /bad value/],
    ['# HELP a say "hi"\n# TYPE a gauge\na 1\n# EOF\n', /unescaped/],
    ['# HELP a x\\q\n# TYPE a gauge\na 1\n# EOF\n', /bad escape/],
    ['# TYPE a gauge\n# FOO a\na 1\n# EOF\n', /not a HELP/],
  ];
  for (const [text, err] of bad) t.throws(() => validate(text), { message: err }, JSON.stringify(text));
});

test('exposition of the fixtures: types, _total, units, domain labels, exact values, # EOF last', async (t) => {
  const text = toOpenMetrics(await fixtureSnapshot());
  const fams = validate(text);
  t.true(text.endsWith('\n# EOF\n'));
  // types decided per meaning
  const types = Object.fromEntries([...fams].map(([n, f]) => [n, f.type]));
  t.like(types, {
    fastivc_dem_up: 'gauge',
    fastivc_scrape_errors: 'gauge',
    fastivc_dem_raises: 'counter',
    fastivc_dem_raises_denied: 'counter',
    fastivc_dem_virqs: 'counter',
    fastivc_dem_fetches: 'counter',
    fastivc_dem_events_delivered: 'counter',
    fastivc_dem_records_created: 'counter',
    fastivc_dem_records_freed: 'counter',
    fastivc_dem_lookups: 'counter',
    fastivc_dem_ip_entries: 'gauge',
    fastivc_dem_records: 'gauge',
    fastivc_dem_records_pending: 'gauge',
    fastivc_module_up: 'gauge',
    fastivc_sockets: 'gauge',
    fastivc_tunnels_open: 'gauge',
    fastivc_tunnels_created: 'counter',
    fastivc_tunnel_sent_bytes: 'counter',
    fastivc_tunnel_received_bytes: 'counter',
    fastivc_fallbacks: 'counter',
    fastivc_lost_wakeups: 'counter',
  });
  t.is(fams.get('fastivc_tunnel_sent_bytes')?.unit, 'bytes');
  t.is(fams.get('fastivc_sample_timestamp_seconds')?.unit, 'seconds');
  t.true([...fams.values()].every((f) => typeof f.help === 'string' && f.help.length > 0));
  // the DEM, host-wide
  t.is(value(fams, 'fastivc_dem_up'), 1);
  t.is(value(fams, 'fastivc_dem_raises_total'), 9);
  t.is(value(fams, 'fastivc_dem_raises_denied_total'), 1);
  t.is(value(fams, 'fastivc_dem_events_delivered_total'), 8);
  t.is(value(fams, 'fastivc_dem_records_freed_total'), 3);
  t.is(value(fams, 'fastivc_dem_lookups_total'), 5);
  t.is(value(fams, 'fastivc_dem_records'), 1);
  t.is(value(fams, 'fastivc_dem_records_pending'), 1);
  t.is(value(fams, 'fastivc_dem_ip_entries'), 2);
  t.is(value(fams, 'fastivc_sample_timestamp_seconds'), 1765000000.5);
  t.is(value(fams, 'fastivc_scrape_errors'), 1); // domain 2's "not a sock line"
  // per domain
  t.is(value(fams, 'fastivc_module_up', { domain: '0', source: 'proc' }), 1);
  t.is(value(fams, 'fastivc_module_up', { domain: '2', source: 'xenstore' }), 1);
  t.is(value(fams, 'fastivc_module_info', { domain: '1', version: '0.2.0' }), 1);
  t.is(value(fams, 'fastivc_tunnel_sent_bytes_total', { domain: '1' }), 67108864);
  t.is(value(fams, 'fastivc_tunnel_received_bytes_total', { domain: '1' }), 16);
  t.is(value(fams, 'fastivc_tunnel_sent_bytes_total', { domain: '2' }), 16);
  t.is(value(fams, 'fastivc_tunnel_received_bytes_total', { domain: '2' }), 67108864);
  t.is(value(fams, 'fastivc_tunnels_open', { domain: '0' }), 2);
  t.is(value(fams, 'fastivc_param_channels', { domain: '0' }), 4);
  t.is(value(fams, 'fastivc_param_channel_size_bytes', { domain: '0' }), 4096);
  t.is(value(fams, 'fastivc_lost_wakeups_total', { domain: '0' }), 1);
  t.is(value(fams, 'fastivc_switch_pushes_total', { domain: '0' }), 2);
  t.is(value(fams, 'fastivc_owner_events_total', { domain: '0' }), 3);
  t.is(value(fams, 'fastivc_grant_map_calls_total', { domain: '0' }), 6);
  t.is(value(fams, 'fastivc_fallbacks_total', { domain: '1', reason: 'loopback' }), 5);
  t.is(value(fams, 'fastivc_fallbacks_total', { domain: '0', reason: 'tunnel_budget' }), 0);
  t.is(value(fams, 'fastivc_fallbacks_total', { domain: '1', reason: 'tunnel_budget' }), undefined); // not in the mirror
  t.is(fams.get('fastivc_fallbacks')?.samples.filter((s) => s.labels.domain === '0').length, 24);
  // every sample of a module family says which domain; the DEM's and the meta families do not
  for (const [name, f] of fams) {
    const perDomain = !/^fastivc_(dem_|scrape_errors|sample_timestamp)/.test(name);
    for (const s of f.samples) t.is(Object.hasOwn(s.labels, 'domain'), perDomain, `${s.name} ${JSON.stringify(s.labels)}`);
  }
  // the fixture's future_key is not invented into a metric
  t.false(text.includes('future'));
  // exact lines where it matters
  t.true(text.includes('\nfastivc_tunnel_sent_bytes_total{domain="1"} 67108864\n'));
  t.true(text.includes('\nfastivc_fallbacks_total{domain="0",reason="not_coresident"} 2\n'));
  t.true(
    text.includes(
      '# HELP fastivc_tunnel_sent_bytes bytes sent through tunnels\n' +
        '# TYPE fastivc_tunnel_sent_bytes counter\n# UNIT fastivc_tunnel_sent_bytes bytes\n',
    ),
  );
  t.is(text.split('\n').filter((l) => l === '# EOF').length, 1);
});

test('every known statistics key becomes exactly one sample with its value, or is skipped on purpose', (t) => {
  const stats: Record<string, number | string> = {};
  STATS_KEYS.forEach((k, i) => (stats[k] = k === 'version' ? '9.9.9' : i + 1));
  stats.events_per_MiB_x100 = 250;
  stats.fallback_tunnel_budget = 7;
  const fams = validate(
    toOpenMetrics({ time: 0, dem: { error: 'x' }, domains: [{ domid: 3, source: 'proc', stats, sockets: [] }], errors: [] }),
  );
  const samples = [...fams.values()].flatMap((f) => f.samples).filter((s) => s.labels.domain === '3');
  const mapped = Object.entries(STATS_MAP).filter(([, m]) => !('skip' in m));
  t.deepEqual(Object.keys(STATS_MAP).sort(), [...STATS_KEYS].sort());
  t.is(samples.length, mapped.length + 2); // + fastivc_module_up and the fallback
  t.is(value(fams, 'fastivc_tunnel_pages', { domain: '3', direction: 'tx' }), STATS_KEYS.indexOf('tx_pages') + 1);
  t.is(value(fams, 'fastivc_tunnel_pages', { domain: '3', direction: 'rx' }), STATS_KEYS.indexOf('rx_pages') + 1);
  t.is(value(fams, 'fastivc_tunnel_pages_limit', { domain: '3', direction: 'rx' }), STATS_KEYS.indexOf('rx_pages_max') + 1);
  t.is(value(fams, 'fastivc_kicks_failed_total', { domain: '3' }), STATS_KEYS.indexOf('kicks_failed') + 1);
  t.is(value(fams, 'fastivc_tick_wakes_total', { domain: '3' }), STATS_KEYS.indexOf('tick_wakes') + 1);
  t.is(value(fams, 'fastivc_tunnel_pages_deferred_total', { domain: '3' }), STATS_KEYS.indexOf('pages_deferred') + 1);
  t.is(value(fams, 'fastivc_tunnel_violations_total', { domain: '3' }), STATS_KEYS.indexOf('violations') + 1);
  t.is(value(fams, 'fastivc_events_per_mebibyte', { domain: '3' }), 2.5);
  t.is(value(fams, 'fastivc_module_info', { domain: '3', version: '9.9.9' }), 1);
  t.is(value(fams, 'fastivc_fallbacks_total', { domain: '3', reason: 'tunnel_budget' }), 7);
  t.is(value(fams, 'fastivc_module_up', { domain: '3', source: 'proc' }), 1);
  // the link keys: counters, and gauges for what links hold now
  t.is(fams.get('fastivc_link_setups')?.type, 'counter');
  t.is(fams.get('fastivc_link_reuses')?.type, 'counter');
  t.is(fams.get('fastivc_link_evictions')?.type, 'counter');
  t.is(fams.get('fastivc_links_pooled')?.type, 'gauge');
  t.is(fams.get('fastivc_links_parked')?.type, 'gauge');
  t.is(fams.get('fastivc_link_pages')?.type, 'gauge');
  t.is(value(fams, 'fastivc_link_setups_total', { domain: '3' }), STATS_KEYS.indexOf('link_setups') + 1);
  t.is(value(fams, 'fastivc_link_reuses_total', { domain: '3' }), STATS_KEYS.indexOf('link_reuses') + 1);
  t.is(value(fams, 'fastivc_link_evictions_total', { domain: '3' }), STATS_KEYS.indexOf('link_evictions') + 1);
  t.is(fams.get('fastivc_early_switches')?.type, 'counter');
  t.is(value(fams, 'fastivc_early_switches_total', { domain: '3' }), STATS_KEYS.indexOf('early_switches') + 1);
  t.is(value(fams, 'fastivc_links_pooled', { domain: '3' }), STATS_KEYS.indexOf('links_pooled') + 1);
  t.is(value(fams, 'fastivc_links_parked', { domain: '3' }), STATS_KEYS.indexOf('links_parked') + 1);
  t.is(value(fams, 'fastivc_link_pages', { domain: '3' }), STATS_KEYS.indexOf('link_pages') + 1);
  // no peers lines: no per-peer family at all
  t.false([...fams.keys()].some((n) => n.startsWith('fastivc_peer_')));
});

test('links: one sample per peers line in each fastivc_peer_* family, labelled {domain, peer}', (t) => {
  const peers = parsePeers(
    'domain 2 pages 24 quota 4096 sockets 3 pooled 1 parked 2 setups 4 reuses 1996\n' +
      'domain 7 pages 0 quota 4096 sockets 0 pooled 0 parked 0 setups 1 reuses 0 future 9\n',
  );
  const snap: Snapshot = {
    time: 0,
    dem: { error: 'x' },
    domains: [
      { domid: 1, source: 'xenstore', stats: { link_setups: 5 }, sockets: [], peers },
      { domid: 4, source: 'xenstore', stats: {}, sockets: [], peers: [] },
    ],
    errors: [],
  };
  const text = toOpenMetrics(snap);
  const fams = validate(text);
  const expect: [string, string, number, number][] = [
    ['fastivc_peer_pages', 'gauge', 24, 0],
    ['fastivc_peer_pages_limit', 'gauge', 4096, 4096],
    ['fastivc_peer_sockets', 'gauge', 3, 0],
    ['fastivc_peer_links_pooled', 'gauge', 1, 0],
    ['fastivc_peer_links_parked', 'gauge', 2, 0],
    ['fastivc_peer_link_setups', 'counter', 4, 1],
    ['fastivc_peer_link_reuses', 'counter', 1996, 0],
  ];
  t.deepEqual(
    Object.values(PEER_MAP).map((f) => f.name).sort(),
    expect.map(([n]) => n).sort(),
  );
  for (const [name, type, to2, to7] of expect) {
    t.is(fams.get(name)?.type, type, name);
    t.true((fams.get(name)?.help ?? '').length > 0, name);
    const sample = type === 'counter' ? `${name}_total` : name;
    t.is(value(fams, sample, { domain: '1', peer: '2' }), to2, name);
    t.is(value(fams, sample, { domain: '1', peer: '7' }), to7, name);
    t.is(fams.get(name)?.samples.length, 2, name); // nothing for domain 4, which has no peer
  }
  t.true(text.includes('\nfastivc_peer_link_reuses_total{domain="1",peer="2"} 1996\n'));
  t.false(text.includes('future'));
  t.false([...fams.keys()].some((n) => n.startsWith('fastivc_dem_') && n !== 'fastivc_dem_up'));
  t.is(value(fams, 'fastivc_link_setups_total', { domain: '1' }), 5);
});

test('links: peers from elsewhere (a recording, a hand-made snapshot) that are not peer lines are skipped', (t) => {
  const good = { domain: 2, pages: 1, quota: 8, sockets: 1, pooled: 0, parked: 0, setups: 1, reuses: 0 };
  const snap = {
    time: 0,
    dem: { error: 'x' },
    domains: [
      {
        domid: 1,
        source: 'xenstore',
        stats: {},
        sockets: [],
        peers: [good, { ...good, pages: 99 }, { ...good, domain: 3, reuses: -1 }, { ...good, domain: 4, setups: 'many' }, null, 'domain 5'],
      },
      { domid: 6, source: 'xenstore', stats: {}, sockets: [] }, // a snapshot from before links
      { domid: 8, source: 'xenstore', stats: {}, sockets: [], peers: 'domain 9 pages 1' },
    ],
    errors: [],
  } as unknown as Snapshot;
  const fams = validate(toOpenMetrics(snap)); // no duplicate series, no bad value
  t.deepEqual(
    fams.get('fastivc_peer_pages')?.samples.map((s) => [s.labels.domain, s.labels.peer, s.value]),
    [['1', '2', 1]], // the first line of peer 2 only
  );
  t.deepEqual(fams.get('fastivc_peer_link_setups')?.samples.length, 1);
});

test('status --openmetrics with links: dom0\'s /proc/fastivc/peers and the domUs\' data/fastivc/peers', async (t) => {
  const files: Record<string, string> = {
    '/proc/fastivc/stats': procStats,
    '/proc/fastivc/sockets': '',
    '/proc/fastivc/peers': await fixture('peers-dom0.txt'),
  };
  const o = { stdout: '', stderr: '' };
  const d = dem();
  const xs = await fixture('xenstore-ls-links.txt');
  const code = await run(['node', 'fastivc', 'status', '--openmetrics'], {
    dem: () => d,
    exec: async () => ({ code: 0, stdout: xs, stderr: '' }),
    readFile: async (p) => {
      const v = files[p];
      if (v === undefined) throw Object.assign(new Error(`ENOENT ${p}`), { code: 'ENOENT' });
      return v;
    },
    out: (s) => (o.stdout += s),
    err: (s) => (o.stderr += s),
  });
  t.is(code, 0);
  t.is(o.stderr, '');
  const fams = validate(o.stdout);
  t.is(value(fams, 'fastivc_scrape_errors'), 0);
  t.deepEqual(
    fams.get('fastivc_peer_pages')?.samples.map((s) => [s.labels.domain, s.labels.peer, s.value]),
    [
      ['0', '1', 24],
      ['0', '2', 0],
      ['1', '2', 24],
      ['2', '0', 0],
      ['2', '1', 4096],
    ],
  );
  t.is(value(fams, 'fastivc_peer_pages_limit', { domain: '2', peer: '1' }), 4096);
  t.is(value(fams, 'fastivc_peer_link_reuses_total', { domain: '1', peer: '2' }), 1996);
  t.is(value(fams, 'fastivc_link_reuses_total', { domain: '1' }), 1996);
  t.is(value(fams, 'fastivc_link_pages', { domain: '2' }), 24);
  t.is(value(fams, 'fastivc_links_parked', { domain: '2' }), 2);
  t.is(value(fams, 'fastivc_link_evictions_total', { domain: '1' }), 3);
  t.is(value(fams, 'fastivc_link_setups_total', { domain: '0' }), undefined); // dom0's module predates the link keys
  t.is(value(fams, 'fastivc_link_setups_total', { domain: '3' }), undefined);
  t.is(fams.get('fastivc_link_setups')?.samples.length, 2);
});

test('label values are escaped (backslash, double quote, newline); unknown keys and bad values are skipped', (t) => {
  const stats: Record<string, number | string> = {
    version: 'v"1\\2\nx',
    'fallback_a"b': 1,
    fallback_bad: 'many',
    bytes_tx: Number.NaN,
    bytes_rx: -5,
    tunnels_open: Number.POSITIVE_INFINITY,
    sockets: 'three',
    'weird-key{}': 3,
    brand_new_counter: 12,
    sockets_now: 4,
    lost_wakeups: 3,
  };
  const snap: Snapshot = {
    time: 1000,
    dem: { error: 'no Xen here' },
    domains: [
      { domid: 5, source: 'xenstore', stats, sockets: [] },
      { domid: 5, source: 'xenstore', stats: { lost_wakeups: 99 }, sockets: [] },
      { domid: 4, source: 'xenstore', stats: {}, sockets: [] },
    ],
    errors: ['a', 'b'],
  };
  const text = toOpenMetrics(snap);
  const fams = validate(text);
  t.true(text.includes('\nfastivc_module_info{domain="5",version="v\\"1\\\\2\\nx"} 1\n'));
  t.is(value(fams, 'fastivc_module_info', { domain: '5', version: 'v"1\\2\nx' }), 1);
  t.is(value(fams, 'fastivc_fallbacks_total', { domain: '5', reason: 'a"b' }), 1);
  t.is(fams.get('fastivc_fallbacks')?.samples.length, 1);
  t.false(fams.has('fastivc_tunnel_sent_bytes')); // NaN
  t.false(fams.has('fastivc_tunnel_received_bytes')); // a negative counter
  t.false(fams.has('fastivc_tunnels_open'));
  t.false(fams.has('fastivc_sockets'));
  t.false(/weird|brand_new|sockets_now/.test(text));
  t.is(value(fams, 'fastivc_lost_wakeups_total', { domain: '5' }), 3); // the first report of domain 5 only
  // what could not be read shows
  t.is(value(fams, 'fastivc_dem_up'), 0);
  t.is(value(fams, 'fastivc_scrape_errors'), 3);
  t.is(value(fams, 'fastivc_module_up', { domain: '4', source: 'xenstore' }), 0);
  t.false([...fams.keys()].some((n) => n.startsWith('fastivc_dem_') && n !== 'fastivc_dem_up'));
  t.is(text.indexOf('domain="4"') < text.indexOf('domain="5"'), true); // domains in id order
});

// ---- the CLI, in-process with fake deps (as status.test.ts) ----

let procStats = '';
/** /proc/fastivc of dom0, its stats from `stats()` (tests run concurrently: one that changes them has its own). */
const procReader =
  (stats: () => string): FileReader =>
  async (p) => {
    if (p === '/proc/fastivc/stats') return stats();
    if (p === '/proc/fastivc/sockets') return '';
    throw Object.assign(new Error(`ENOENT ${p}`), { code: 'ENOENT' });
  };
test.before(async () => {
  procStats = (await fixture('stats-domU1.txt')).replace('domid 1', 'domid 0');
});
const execFake: CommandRunner = async () => ({ code: 0, stdout: await fixture('xenstore-ls-domains.txt'), stderr: '' });
const dem = (): DemSource =>
  openDem({
    binding: createMockDem({
      ip: [
        { addr: '192.0.2.1', domid: 0 },
        { addr: '192.0.2.11', domid: 1 },
      ],
      records: [mockRecord({ src: '192.0.2.11:1', dst: '192.0.2.12:2', owner: 2, raiser: 1, pending: ['SEND_DATA'] })],
      counters: { raises: 9, virqs: 2, fetches: 2, eventsDelivered: 8, recordsCreated: 1, lookups: 4 },
    }),
  });

async function status(
  args: string[],
  signal?: AbortSignal,
  onErr?: (s: string) => void,
  readFile: FileReader = procReader(() => procStats),
) {
  const o = { code: -1, stdout: '', stderr: '' };
  const d = dem();
  o.code = await run(['node', 'fastivc', 'status', ...args], {
    dem: () => d,
    exec: execFake,
    readFile,
    out: (s) => (o.stdout += s),
    err: (s) => {
      o.stderr += s;
      onErr?.(s);
    },
    ...(signal ? { signal } : {}),
  });
  return o;
}

const withoutTime = (text: string): string => text.replace(/^fastivc_sample_timestamp_seconds .*\n/m, '');

test('status --openmetrics: the DEM, dom0 from /proc and the domUs from xenstore', async (t) => {
  const r = await status(['--openmetrics']);
  t.is(r.code, 0);
  t.is(r.stderr, '');
  const fams = validate(r.stdout);
  t.is(value(fams, 'fastivc_dem_up'), 1);
  t.is(value(fams, 'fastivc_dem_raises_total'), 9);
  t.is(value(fams, 'fastivc_dem_virqs_total'), 2);
  t.is(value(fams, 'fastivc_dem_records'), 1);
  t.is(value(fams, 'fastivc_dem_records_pending'), 1);
  t.is(value(fams, 'fastivc_dem_ip_entries'), 2);
  t.is(value(fams, 'fastivc_scrape_errors'), 1);
  t.deepEqual(
    fams.get('fastivc_module_up')?.samples.map((s) => [s.labels.domain, s.labels.source, s.value]),
    [
      ['0', 'proc', 1],
      ['1', 'xenstore', 1],
      ['2', 'xenstore', 1],
    ],
  );
  t.is(value(fams, 'fastivc_tunnel_sent_bytes_total', { domain: '0' }), 67108864);
  t.is(value(fams, 'fastivc_tunnel_received_bytes_total', { domain: '2' }), 67108864);
  t.is(value(fams, 'fastivc_fallbacks_total', { domain: '2', reason: 'excluded_port' }), 1);
  const s = Math.abs((value(fams, 'fastivc_sample_timestamp_seconds') ?? 0) - Date.now() / 1000);
  t.true(s < 60);
});

test('status: --json with --openmetrics, --out or --serve, --out with --serve, and bad --serve values are refused', async (t) => {
  for (const args of [
    ['--json', '--openmetrics'],
    ['--json', '--out', 'x.prom'],
    ['--json', '--serve', '9464'],
    ['--out', 'x.prom', '--serve', '9464'],
    ['--serve', '70000'],
    ['--serve', 'host.example:80'],
    ['--out', ''],
  ]) {
    const r = await status(args);
    t.is(r.code, 2, args.join(' '));
    t.regex(r.stderr, /^error: option .*(cannot be used with|is invalid)/, args.join(' '));
    t.is(r.stdout, '');
  }
});

test('parseListen: [host:]port, a port alone on 127.0.0.1', (t) => {
  t.deepEqual(parseListen('9464'), { host: '127.0.0.1', port: 9464 });
  t.deepEqual(parseListen('0'), { host: '127.0.0.1', port: 0 });
  t.deepEqual(parseListen('0.0.0.0:9100'), { host: '0.0.0.0', port: 9100 });
  t.deepEqual(parseListen('192.0.2.1:65535'), { host: '192.0.2.1', port: 65535 });
  t.deepEqual(parseListen('localhost:1'), { host: 'localhost', port: 1 });
  t.deepEqual(parseListen('[::1]:9464'), { host: '::1', port: 9464 });
  for (const bad of ['', ':9100', '65536', '-1', 'x', '1.2.3:4', '01.2.3.4:5', '[zz]:1', '[::1]', '1.2.3.4:', 'a:b:1', '9464 ']) {
    t.throws(() => parseListen(bad), { message: /expected|not an IPv6/ }, JSON.stringify(bad));
  }
});

async function tmp(t: ExecutionContext): Promise<string> {
  const dir = await mkdtemp(path.join(tmpdir(), 'fastivc-metrics-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

test('status --out: replaces the file atomically (a new file renamed over it), no temporary file left', async (t) => {
  const dir = await tmp(t);
  const file = path.join(dir, 'fastivc.prom');
  await writeFile(file, 'old\n');
  await link(file, path.join(dir, 'old-inode')); // written in place, this link would show the new text
  const r = await status(['--openmetrics', '--out', file]);
  t.is(r.code, 0);
  t.is(r.stdout, '');
  t.is(r.stderr, '');
  const text = await readFile(file, 'utf8');
  validate(text);
  t.is(await readFile(path.join(dir, 'old-inode'), 'utf8'), 'old\n');
  t.is(withoutTime(text), withoutTime((await status(['--openmetrics'])).stdout));
  t.deepEqual((await readdir(dir)).sort(), ['fastivc.prom', 'old-inode']);
  // --out alone implies the format
  t.is((await status(['--out', file])).code, 0);
  t.is(withoutTime(await readFile(file, 'utf8')), withoutTime(text));
});

test('status --out: a file it cannot write fails with one line and leaves no temporary file', async (t) => {
  const dir = await tmp(t);
  const r = await status(['--out', path.join(dir, 'no', 'such', 'dir.prom')]);
  t.is(r.code, 1);
  t.regex(r.stderr, /^fastivc: cannot write .*dir\.prom: ENOENT/);
  const target = path.join(dir, 'target.prom');
  await mkdir(target); // rename onto a directory fails after the temporary file was written
  await t.throwsAsync(writeAtomic(target, 'x\n'), { message: /^cannot write .*target\.prom: E/ });
  t.deepEqual(await readdir(dir), ['target.prom']);
});

test('status --serve: GET /metrics sampled per request, 404 elsewhere, 405 for POST, stops on its signal', async (t) => {
  const ac = new AbortController();
  let resolveUrl: (u: string) => void = () => {};
  const url = new Promise<string>((r) => (resolveUrl = r));
  let stats = procStats;
  const done = status(
    ['--serve', '127.0.0.1:0'],
    ac.signal,
    (s) => {
      const m = /serving (http:\/\/127\.0\.0\.1:\d+\/metrics)/.exec(s);
      if (m?.[1]) resolveUrl(m[1]);
    },
    procReader(() => stats),
  );
  t.teardown(() => ac.abort());
  const u = await url;
  const a = await fetch(u);
  t.is(a.status, 200);
  t.is(a.headers.get('content-type'), CONTENT_TYPE);
  const fams = validate(await a.text());
  t.is(value(fams, 'fastivc_tunnel_sent_bytes_total', { domain: '0' }), 67108864);
  t.is(value(fams, 'fastivc_dem_raises_total'), 9);
  // a fresh sample on each request
  stats = stats.replace('bytes_tx 67108864', 'bytes_tx 67108900');
  const b = validate(await (await fetch(u)).text());
  t.is(value(b, 'fastivc_tunnel_sent_bytes_total', { domain: '0' }), 67108900);
  const nf = await fetch(u.replace('/metrics', '/'));
  t.is(nf.status, 404);
  await nf.text();
  const nf2 = await fetch(`${u}/x`);
  t.is(nf2.status, 404);
  await nf2.text();
  const q = await fetch(`${u}?x=1`);
  t.is(q.status, 200);
  await q.text();
  const post = await fetch(u, { method: 'POST', body: 'x' });
  t.is(post.status, 405);
  t.is(post.headers.get('allow'), 'GET, HEAD');
  await post.text();
  const head = await fetch(u, { method: 'HEAD' });
  t.is(head.status, 200);
  t.is(await head.text(), '');
  ac.abort();
  const r = await done;
  t.is(r.code, 0);
  t.is(r.stdout, '');
  await t.throwsAsync(fetch(u));
});

test('status --serve: an address in use fails with one line', async (t) => {
  const ac = new AbortController();
  t.teardown(() => ac.abort());
  let resolveUrl: (u: string) => void = () => {};
  const url = new Promise<string>((r) => (resolveUrl = r));
  const first = status(['--serve', '127.0.0.1:0'], ac.signal, (s) => {
    const m = /serving (http:\/\/127\.0\.0\.1:(\d+)\/metrics)/.exec(s);
    if (m?.[2]) resolveUrl(m[2]);
  });
  const port = await url;
  const second = await status(['--serve', `127.0.0.1:${port}`], ac.signal);
  t.is(second.code, 1);
  t.is(second.stderr, `fastivc: cannot listen on 127.0.0.1:${port}: EADDRINUSE\n`);
  ac.abort();
  t.is((await first).code, 0);
});

test('fastivc status --serve in its own process: serves, then exits 0 on SIGTERM', async (t) => {
  const dir = await tmp(t);
  await writeFile(path.join(dir, 'stats'), procStats);
  await writeFile(path.join(dir, 'sockets'), '');
  const child = spawn(
    process.execPath,
    ['--import', 'tsx', path.join(root, 'tui', 'src', 'cli.ts'), 'status', '--serve', '127.0.0.1:0', '--no-xenstore']
      .concat(['--proc-dir', dir]),
    {
      cwd: root,
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, FASTIVC_DEM_MOCK: '1', FASTIVC_DEM_MOCK_STATE: '' },
    },
  );
  t.teardown(() => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  });
  let stderr = '';
  const exited = new Promise<[number | null, NodeJS.Signals | null]>((r) => child.on('close', (c, s) => r([c, s])));
  const u = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no "serving" line: ${stderr}`)), 30_000);
    child.stderr.setEncoding('utf8').on('data', (d: string) => {
      stderr += d;
      const m = /serving (\S+)/.exec(stderr);
      if (m?.[1]) {
        clearTimeout(timer);
        resolve(m[1]);
      }
    });
  });
  const res = await fetch(u);
  t.is(res.status, 200);
  const fams = validate(await res.text());
  t.is(value(fams, 'fastivc_tunnel_sent_bytes_total', { domain: '0' }), 67108864);
  t.is(value(fams, 'fastivc_dem_up'), 1);
  child.kill('SIGTERM');
  t.deepEqual(await exited, [0, null]);
});
