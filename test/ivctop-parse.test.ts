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
