/** The statistics parsers (guest-kmod/README.md, format 1) and the live source's parts, on fixture text. */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import test from 'ava';
import { openDem } from '../native/lib/index.js';
import { createMockDem, mockRecord } from '../native/lib/mock.js';
import { reportsFromXenstore, sampleLive } from '../tui/src/data/live.js';
import {
  FALLBACK_REASONS,
  fallbacksOf,
  parsePeerLine,
  parsePeers,
  parseSockets,
  parseSockLine,
  parseStats,
  parseXenstoreLs,
  unescapeXenstore,
} from '../tui/src/data/parse.js';
import type { ExecResult } from '../tui/src/data/system.js';

const fixtures = path.join(path.dirname(fileURLToPath(import.meta.url)), 'fixtures', 'fastivc');
const fixture = (name: string): string => readFileSync(path.join(fixtures, name), 'utf8');

test('stats: every documented key, numbers as numbers, version as text, unknown keys ignored', (t) => {
  const s = parseStats(fixture('stats-domU1.txt'));
  t.is(s.format, 1);
  t.is(s.version, '0.2.0');
  t.is(s.domid, 1);
  t.is(s.channel_size, 4096);
  t.is(s.bytes_tx, 67108864);
  t.is(s.pages_deferred, 0);
  t.is(s.lost_wakeups, 1);
  t.is(s.switch_pushes, 2);
  t.is(s.owner_events, 3);
  t.is(s.dem_calls, 120);
  t.is(s.grant_unmap_calls, 5);
  t.false('future_key' in s);
  const fb = fallbacksOf(s);
  t.deepEqual(Object.keys(fb), [...FALLBACK_REASONS]);
  t.like(fb, { not_coresident: 2, loopback: 5, excluded_port: 1, oob: 0 });
});

test('stats: blank and malformed lines are skipped; a new fallback reason is kept', (t) => {
  t.deepEqual(parseStats('\n  \nformat 1\nnovalue\n=x 3\nfallback_new_reason 4\nbytes_tx  12  \n'), {
    format: 1,
    fallback_new_reason: 4,
    bytes_tx: 12,
  });
  t.deepEqual(parseStats(''), {});
});

test('sockets: the documented line, native lines, unknown keys ignored, bad lines reported', (t) => {
  const { sockets, problems } = parseSockets(fixture('sockets-domU1.txt'));
  t.is(sockets.length, 3);
  t.deepEqual(sockets[0], {
    id: 7,
    local: '192.0.2.11:40312',
    remote: '192.0.2.12:7001',
    peer: 2,
    mode: 'tunnel',
    reason: null,
    tx: 'open',
    txChannels: 4,
    txChannelSize: 4096,
    txBytes: 67108864,
    txInFlight: 3,
    txStalls: 812,
    rx: 'open',
    rxChannels: 4,
    rxChannelSize: 4096,
    rxBytes: 16,
    eventsRaised: 40,
    eventsReceived: 51,
    violations: 0,
  });
  t.like(sockets[1], { id: 8, peer: null, mode: 'native', reason: 'not_coresident', tx: 'tcp' });
  t.like(sockets[2], { id: 9, peer: 0, tx: 'creating', eventsRaised: 1 });
  t.false('newfield' in (sockets[2] as object));
  t.is(problems.length, 2);
  t.regex(problems[0] ?? '', /^not a socket line/);
  t.regex(problems[1] ?? '', /^socket line without a valid id/);
  // Missing counters read 0; a bad endpoint is refused.
  t.like(parseSockLine('sock id=1 local=10.0.0.1:1 remote=10.0.0.2:2'), { txBytes: 0, mode: 'native', peer: null });
  t.is(typeof parseSockLine('sock id=1 local=10.0.0.1:99999 remote=10.0.0.2:2'), 'string');
  // IPv6 sockets: "[addr]:port"; an IPv6 address without brackets is refused
  t.like(parseSockLine('sock id=3 local=[fd00:fa57::11]:40000 remote=[fd00:fa57::12]:7016 peer=2 mode=tunnel'), {
    id: 3,
    local: '[fd00:fa57::11]:40000',
    remote: '[fd00:fa57::12]:7016',
    peer: 2,
  });
  t.is(typeof parseSockLine('sock id=3 local=fd00:fa57::11:40000 remote=[fd00:fa57::12]:7016'), 'string');
});

test('xenstore-ls -f: paths and values, with its escapes undone and unescaped quotes kept', (t) => {
  t.is(unescapeXenstore('a\\nb\\tc\\\\d\\001e\\q'), 'a\nb\tc\\d\x01e\\q');
  const m = parseXenstoreLs(fixture('xenstore-ls-domains.txt'));
  t.is(m.get('/local/domain/1/name'), 'domU1');
  t.is(m.get('/local/domain/1/description'), 'a "quoted" value with \t tab and \x01 byte');
  t.is(m.get('/local/domain/0'), '');
  t.is(parseStats(m.get('/local/domain/1/data/fastivc/stats') ?? '').bytes_tx, 67108864);
  t.is(parseXenstoreLs('not a line\n/x = unquoted\n').size, 0);
});

test('the domUs mirrors from xenstore: stats and sock lines per domain, bad lines reported', (t) => {
  const errors: string[] = [];
  const reports = reportsFromXenstore(fixture('xenstore-ls-domains.txt'), errors);
  t.deepEqual(
    reports.map((r) => [r.domid, r.source, r.stats.domid, r.sockets.map((s) => s.id)]),
    [
      [0, 'xenstore', 0, []],
      [1, 'xenstore', 1, [7]],
      [2, 'xenstore', 2, [3]],
    ],
  );
  t.is(errors.length, 1);
  t.regex(errors[0] ?? '', /^domain 2: \/local\/domain\/2\/data\/fastivc\/sock\/4: not a socket line/);
});

const ok = (stdout: string): ExecResult => ({ code: 0, stdout, stderr: '' });

test('live sample: DEM, /proc and xenstore together; this domain from /proc, not its mirror', async (t) => {
  const files: Record<string, string> = {
    '/p/stats': fixture('stats-domU1.txt').replace('domid 1', 'domid 0'),
    '/p/sockets': 'sock id=1 local=192.0.2.1:22 remote=192.0.2.11:5000 peer=1 mode=native reason=loopback tx=tcp rx=tcp\n',
  };
  const calls: string[] = [];
  const dem = openDem({
    binding: createMockDem({
      ip: [{ addr: '192.0.2.11', domid: 1 }],
      records: [mockRecord({ src: '192.0.2.11:1', dst: '192.0.2.12:2', owner: 2, raiser: 1, pending: ['SEND_DATA'] })],
    }),
  });
  const s = await sampleLive({
    dem: () => dem,
    procDir: '/p',
    now: () => 42,
    readFile: async (p) => {
      const v = files[p];
      if (v === undefined) throw Object.assign(new Error(`ENOENT: ${p}`), { code: 'ENOENT' });
      return v;
    },
    exec: async (cmd, args) => {
      calls.push([cmd, ...args].join(' '));
      return ok(fixture('xenstore-ls-domains.txt'));
    },
  });
  t.deepEqual(calls, ['xenstore-ls -f /local/domain']);
  t.is(s.time, 42);
  t.deepEqual(
    s.domains.map((d) => [d.domid, d.source, d.sockets.length]),
    [
      [0, 'proc', 1],
      [1, 'xenstore', 1],
      [2, 'xenstore', 1],
    ],
  );
  if ('error' in s.dem) return t.fail(s.dem.error);
  t.is(s.dem.info?.domid, 0);
  t.is(s.dem.records.length, 1);
  t.deepEqual(s.dem.ipTable, [{ addr: '192.0.2.11', domid: 1 }]);
  t.is(s.errors.length, 1); // the fixture's bad sock node
});

test('live sample: each part fails on its own, with one line and no exception', async (t) => {
  const s = await sampleLive({
    dem: () => openDem({ binding: createMockDem({ devices: { '/dev/xen/privcmd': 'ENOENT' } }) }),
    procDir: '/nowhere',
    readFile: async () => {
      throw Object.assign(new Error('ENOENT'), { code: 'ENOENT' });
    },
    exec: async () => ({ code: null, stdout: '', stderr: '', error: { code: 'ENOENT', message: 'spawn xenstore-ls ENOENT' } }),
  });
  t.deepEqual(s.dem, { error: 'no Xen here: /dev/xen/privcmd does not exist (run in dom0 with xen-privcmd loaded)' });
  t.deepEqual(s.domains, []);
  t.deepEqual(s.errors, [
    'this domain: fastivc.ko is not loaded (no /nowhere/stats)',
    'other domains: xenstore-ls not found (no Xen toolstack here)',
  ]);
  const thrown = await sampleLive({
    dem: () => {
      throw new Error('fastivc native addon not built');
    },
    xenstore: false,
    readFile: async () => 'format 2\ndomid 3\n',
  });
  t.deepEqual(thrown.dem, { error: 'fastivc native addon not built' });
  t.is(thrown.domains[0]?.domid, 3);
  t.true(thrown.errors.includes('this domain: statistics format 2, this tool reads format 1 (known keys only)'));
  const failing = await sampleLive({
    dem: () => openDem({ binding: createMockDem({ dem: 'EOPNOTSUPP' }) }),
    readFile: async () => '',
    exec: async () => ({ code: 1, stdout: '', stderr: 'xs_directory (/local/domain): Permission denied\n' }),
  });
  t.true(failing.errors.includes('other domains: xenstore-ls failed (exit 1): xs_directory (/local/domain): Permission denied'));
  t.regex((failing.dem as { error: string }).error, /no Domain Event Manager/);
});

// ---- links: the link_* statistics keys and /proc/fastivc/peers ----

test('stats: the link keys (counters and gauges) are kept as numbers', (t) => {
  const s = parseStats(
    'format 1\nlink_setups 8\nlink_reuses 1996\nlink_evictions 3\nearly_switches 1990\nlinks_pooled 1\nlinks_parked 2\nlink_pages 24\nlink_future 5\n',
  );
  t.deepEqual(s, {
    format: 1,
    link_setups: 8,
    link_reuses: 1996,
    link_evictions: 3,
    early_switches: 1990,
    links_pooled: 1,
    links_parked: 2,
    link_pages: 24,
  });
});

test('peers: good lines, unknown extra pairs ignored, malformed lines skipped, by domain', (t) => {
  const peers = parsePeers(fixture('peers-dom0.txt'));
  t.deepEqual(peers, [
    { domain: 1, pages: 24, quota: 4096, sockets: 3, pooled: 1, parked: 1, setups: 4, reuses: 1996 },
    { domain: 2, pages: 0, quota: 4096, sockets: 0, pooled: 0, parked: 0, setups: 2, reuses: 0 },
  ]);
  t.false('evicted' in (peers[1] as object));
  // each kind of malformed line, alone
  for (const bad of [
    'domain 3 pages 8 quota 4096 sockets 1', // keys missing
    'domain x pages 1 quota 1 sockets 1 pooled 1 parked 1 setups 1 reuses 1', // not a domain id
    'peer 4 pages 1 quota 1 sockets 1 pooled 1 parked 1 setups 1 reuses 1', // another first word
    'domain 5 pages -1 quota 1 sockets 1 pooled 1 parked 1 setups 1 reuses 1', // negative
    'domain 6 pages 1 quota 1 sockets 1 pooled 1 parked 1 setups 1 reuses', // a key without value
    'domain 7 pages 1.5 quota 1 sockets 1 pooled 1 parked 1 setups 1 reuses 1', // not an integer
    'domain 32752 pages 1 quota 1 sockets 1 pooled 1 parked 1 setups 1 reuses 1', // a reserved domain id
    'domain 8 pages 99999999999999999999 quota 1 sockets 1 pooled 1 parked 1 setups 1 reuses 1', // beyond 2^53
    'sock id=1 local=10.0.0.1:1 remote=10.0.0.2:2',
  ]) {
    t.is(parsePeerLine(bad), null, bad);
    t.deepEqual(parsePeers(bad), [], bad);
  }
  // keys in another order, and extra ones anywhere after the domain
  t.deepEqual(parsePeerLine('domain 9 reuses 5 new 1 setups 6 parked 0 pooled 2 sockets 1 quota 64 pages 32'), {
    domain: 9,
    pages: 32,
    quota: 64,
    sockets: 1,
    pooled: 2,
    parked: 0,
    setups: 6,
    reuses: 5,
  });
  // a domain listed twice: its first line; lines sorted by domain; CRLF and spacing tolerated
  const twice = parsePeers(
    'domain 4 pages 2 quota 9 sockets 0 pooled 0 parked 0 setups 0 reuses 0\r\n' +
      '  domain 3  pages 1 quota 9 sockets 0 pooled 0 parked 0 setups 0 reuses 0\n' +
      'domain 4 pages 7 quota 9 sockets 0 pooled 0 parked 0 setups 0 reuses 0\n',
  );
  t.deepEqual(twice.map((p) => [p.domain, p.pages]), [
    [3, 1],
    [4, 2],
  ]);
});

test('peers: empty text, an older module\'s text, or garbage give no line and never throw', (t) => {
  t.deepEqual(parsePeers(''), []);
  t.deepEqual(parsePeers('\n\n  \n'), []);
  t.deepEqual(parsePeers('domain 2 pages 24 quota 24 sockets 3\n'), []); // the format before links
  t.deepEqual(parsePeers('\u0000\u00ff domain'), []);
  t.notThrows(() => parsePeers(undefined as unknown as string));
});

test('the domUs mirrors: data/fastivc/peers read as stats are (escaped newlines), none from an older module', (t) => {
  const errors: string[] = [];
  const reports = reportsFromXenstore(fixture('xenstore-ls-links.txt'), errors);
  t.deepEqual(errors, []);
  t.deepEqual(
    reports.map((r) => [r.domid, r.peers.map((p) => [p.domain, p.pages, p.reuses])]),
    [
      [1, [[2, 24, 1996]]],
      [
        2,
        [
          [0, 0, 0],
          [1, 4096, 12],
        ],
      ],
      [3, []],
    ],
  );
  t.like(reports[0]?.stats, { link_setups: 8, link_reuses: 1996, link_evictions: 3, links_pooled: 1, links_parked: 1, link_pages: 16 });
  t.false('link_setups' in (reports[2]?.stats ?? {}));
  // the old fixture has no peers node anywhere
  t.true(reportsFromXenstore(fixture('xenstore-ls-domains.txt'), []).every((r) => Array.isArray(r.peers) && r.peers.length === 0));
});

test('live sample: this domain\'s /proc/fastivc/peers; absent is no problem, unreadable is one', async (t) => {
  const base: Record<string, string> = {
    '/p/stats': fixture('stats-domU1.txt').replace('domid 1', 'domid 0'),
    '/p/sockets': '',
  };
  const sample = (files: Record<string, string | NodeJS.ErrnoException>) =>
    sampleLive({
      dem: () => openDem({ binding: createMockDem() }),
      procDir: '/p',
      xenstore: false,
      readFile: async (p) => {
        const v = files[p];
        if (v === undefined) throw Object.assign(new Error(`ENOENT: ${p}`), { code: 'ENOENT' });
        if (typeof v !== 'string') throw v;
        return v;
      },
    });
  const withPeers = await sample({ ...base, '/p/peers': fixture('peers-dom0.txt') });
  t.deepEqual(withPeers.errors, []);
  t.deepEqual(withPeers.domains[0]?.peers.map((p) => p.domain), [1, 2]);
  const old = await sample(base);
  t.deepEqual(old.errors, []);
  t.deepEqual(old.domains[0]?.peers, []);
  const denied = await sample({ ...base, '/p/peers': Object.assign(new Error('EACCES: permission denied'), { code: 'EACCES' }) });
  t.deepEqual(denied.errors, ['this domain: cannot read /p/peers: EACCES: permission denied']);
  t.deepEqual(denied.domains[0]?.peers, []);
  t.is(denied.domains[0]?.stats.bytes_tx, 67108864); // the rest of the report stays
});
