/** `fastivc status`: DEM, this domain's /proc statistics and the domUs' xenstore mirrors, as text and JSON. */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import test from 'ava';
import { openDem, type DemSource } from '../native/lib/index.js';
import { createMockDem, mockRecord } from '../native/lib/mock.js';
import type { CommandRunner, FileReader } from '../tui/src/data/system.js';
import { run } from '../tui/src/program.js';

const fixtures = path.join(path.dirname(fileURLToPath(import.meta.url)), 'fixtures', 'fastivc');
const fixture = (name: string): string => readFileSync(path.join(fixtures, name), 'utf8');

const files: Record<string, string> = {
  '/proc/fastivc/stats': fixture('stats-domU1.txt').replace('domid 1', 'domid 0'),
  '/proc/fastivc/sockets': '',
};
const readFile: FileReader = async (p) => {
  const v = files[p];
  if (v === undefined) throw Object.assign(new Error(`ENOENT ${p}`), { code: 'ENOENT' });
  return v;
};
const exec: CommandRunner = async () => ({ code: 0, stdout: fixture('xenstore-ls-domains.txt'), stderr: '' });
const noExec: CommandRunner = async () => ({ code: null, stdout: '', stderr: '', error: { code: 'ENOENT', message: 'x' } });

async function status(args: string[], dem: DemSource, e: CommandRunner = exec, r: FileReader = readFile) {
  const o = { code: -1, stdout: '', stderr: '' };
  o.code = await run(['node', 'fastivc', 'status', ...args], {
    dem: () => dem,
    exec: e,
    readFile: r,
    out: (s) => (o.stdout += s),
    err: (s) => (o.stderr += s),
  });
  return o;
}

const dem = () =>
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

test('status: the DEM, this domain from /proc, the domUs from xenstore, problems listed', async (t) => {
  const r = await status([], dem());
  t.is(r.code, 0);
  t.is(r.stderr, '');
  const lines = r.stdout.split('\n');
  t.is(lines[0], 'DEM               ABI 1, VIRQ 14, this domain 0');
  t.is(lines[1], 'counters          raises 9 (denied 0), VIRQs 2, fetches 2, events delivered 8, lookups 4');
  t.is(lines[2], 'records           1 now (1 with pending events), 1 created, 0 freed');
  t.is(lines[3], 'IP table          2 entries');
  t.regex(lines[4] ?? '', /^dom 0 \(proc\)      fastivc 0\.2\.0: 3 sockets, 2 tunnels open \(1 created, 1 mapped\), 67108864 B sent, 16 B received, 4 x 4096 B channels, 0 violations, fallbacks 8 \(not_coresident 2, loopback 5, excluded_port 1\)$/);
  t.regex(lines[5] ?? '', /^dom 1 \(xenstore\)  fastivc 0\.2\.0: /);
  t.regex(lines[6] ?? '', /^dom 2 \(xenstore\)  fastivc 0\.2\.0: .*67108864 B received/);
  t.is(lines[7], 'problems:');
  t.regex(lines[8] ?? '', /^  domain 2: .*not a socket line/);
});

test('status --json: dem, domains with stats and sockets, errors', async (t) => {
  const r = await status(['--json'], dem());
  t.is(r.code, 0);
  const j = JSON.parse(r.stdout) as {
    dem: { info: { domid: number }; counters: { raises: number }; ipEntries: number; records: number };
    domains: { domid: number; source: string; stats: Record<string, unknown>; sockets: unknown[] }[];
    errors: string[];
  };
  t.like(j.dem, { info: { domid: 0 }, counters: { raises: 9 }, ipEntries: 2, records: 1 });
  t.deepEqual(j.domains.map((d) => [d.domid, d.source, d.sockets.length]), [
    [0, 'proc', 0],
    [1, 'xenstore', 1],
    [2, 'xenstore', 1],
  ]);
  t.is(j.domains[1]?.stats.bytes_tx, 67108864);
  t.is(j.errors.length, 1);
});

test('status with nothing to read: still exit 0, each part says why', async (t) => {
  const noXen = openDem({ binding: createMockDem({ devices: { '/dev/xen/privcmd': 'ENOENT' } }) });
  const r = await status([], noXen, noExec, async () => {
    throw Object.assign(new Error('x'), { code: 'ENOENT' });
  });
  t.is(r.code, 0);
  t.is(
    r.stdout,
    'DEM     unavailable: no Xen here: /dev/xen/privcmd does not exist (run in dom0 with xen-privcmd loaded)\n' +
      'module  no domain reports statistics\n' +
      'problems:\n' +
      '  this domain: fastivc.ko is not loaded (no /proc/fastivc/stats)\n' +
      '  other domains: xenstore-ls not found (no Xen toolstack here)\n',
  );
  const j = JSON.parse((await status(['--json', '--no-xenstore', '--proc-dir', '/x'], noXen, noExec, readFile)).stdout);
  t.deepEqual(j, {
    dem: { error: 'no Xen here: /dev/xen/privcmd does not exist (run in dom0 with xen-privcmd loaded)' },
    domains: [],
    links: [],
    errors: ['this domain: fastivc.ko is not loaded (no /x/stats)'],
  });
});

// ---- links: /proc/fastivc/peers of dom0, data/fastivc/peers of the domUs ----

const linkFiles: Record<string, string> = { ...files, '/proc/fastivc/peers': fixture('peers-dom0.txt') };
const linkRead: FileReader = async (p) => {
  const v = linkFiles[p];
  if (v === undefined) throw Object.assign(new Error(`ENOENT ${p}`), { code: 'ENOENT' });
  return v;
};
const linkExec: CommandRunner = async () => ({ code: 0, stdout: fixture('xenstore-ls-links.txt'), stderr: '' });

test('status with links: one line per domain and peer under its domain, and the link totals of a module with links', async (t) => {
  const r = await status([], dem(), linkExec, linkRead);
  t.is(r.code, 0);
  t.is(r.stderr, '');
  const lines = r.stdout.split('\n').slice(4);
  const key = (l: string): string => l.slice(0, 18);
  t.deepEqual(lines.map(key), [
    'dom 0 (proc)      ',
    'link 0 ↔ 1        ',
    'link 0 ↔ 2        ',
    'dom 1 (xenstore)  ',
    'link 1 ↔ 2        ',
    'dom 2 (xenstore)  ',
    'link 2 ↔ 0        ',
    'link 2 ↔ 1        ',
    'dom 3 (xenstore)  ',
    '',
  ]);
  t.is(lines[1], 'link 0 ↔ 1        pages 24/4096, 3 connections, 1 pooled, 1 parked, 1996 reuses, 4 setups (100% reused)');
  t.is(lines[2], 'link 0 ↔ 2        pages 0/4096, 0 connections, 0 pooled, 0 parked, 0 reuses, 2 setups (0% reused)');
  t.is(lines[7], 'link 2 ↔ 1        pages 4096/4096, 3 connections, 1 pooled, 1 parked, 12 reuses, 4 setups (75% reused)');
  // the domain's own link counters, only from a module that has them
  t.regex(lines[3] ?? '', /; links: 1 pooled, 1 parked \(16 pages\), 8 setups, 1996 reuses, 3 evictions$/);
  t.regex(lines[5] ?? '', /; links: 1 pooled, 2 parked \(24 pages\), 8 setups, 12 reuses, 0 evictions$/);
  t.notRegex(lines[0] ?? '', /links:/);
  t.notRegex(lines[8] ?? '', /links:/);
  // one connection, one reuse, nothing reused yet
  const one = await status([], dem(), noExec, async (p) =>
    p === '/proc/fastivc/peers' ? 'domain 4 pages 1 quota 8 sockets 1 pooled 0 parked 0 setups 0 reuses 1\ndomain 5 pages 0 quota 8 sockets 0 pooled 0 parked 0 setups 0 reuses 0\n' : linkRead(p),
  );
  t.regex(one.stdout, /^link 0 ↔ 4 +pages 1\/8, 1 connection, 0 pooled, 0 parked, 1 reuse, 0 setups \(100% reused\)$/m);
  t.regex(one.stdout, /^link 0 ↔ 5 +pages 0\/8, 0 connections, 0 pooled, 0 parked, 0 reuses, 0 setups$/m);
});

test('status --json with links: each domain\'s peers, and the links with their reuse ratio', async (t) => {
  const r = await status(['--json'], dem(), linkExec, linkRead);
  t.is(r.code, 0);
  const j = JSON.parse(r.stdout) as {
    domains: { domid: number; stats: Record<string, unknown>; peers: { domain: number; pages: number }[] }[];
    links: { key: string; domain: number; peer: number; pages: number; quota: number; reuseRatio: number | null }[];
    errors: string[];
  };
  t.deepEqual(j.errors, []);
  t.deepEqual(
    j.domains.map((d) => [d.domid, d.peers.map((p) => p.domain)]),
    [
      [0, [1, 2]],
      [1, [2]],
      [2, [0, 1]],
      [3, []],
    ],
  );
  t.like(j.domains[1]?.stats, { link_setups: 8, link_reuses: 1996, links_pooled: 1, links_parked: 1, link_pages: 16 });
  t.deepEqual(j.links.map((l) => l.key), ['0-1', '0-2', '1-2', '2-0', '2-1']);
  t.like(j.links[4], { domain: 2, peer: 1, pages: 4096, quota: 4096, reuseRatio: 0.75 });
  t.is(j.links[1]?.reuseRatio, 0);
  // a module before links: peers [] and no link, as in the test above
  const old = JSON.parse((await status(['--json'], dem())).stdout) as typeof j;
  t.true(old.domains.every((d) => d.peers.length === 0));
  t.deepEqual(old.links, []);
});
