/** The ivctop command line: arguments, --once --json on a replayed recording, --record, and the real binary. */
import { spawn } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import test from 'ava';
import { openDem } from '../native/lib/index.js';
import { createMockDem } from '../native/lib/mock.js';
import { parsePeers } from '../tui/src/data/parse.js';
import { parseRecording } from '../tui/src/data/replay.js';
import { run, type IvctopDeps, type OnceJson } from '../tui/src/ivctop/program.js';
import type { MonitorProps } from '../tui/src/ivctop/Monitor.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const REPLAY = path.join(root, 'test', 'fixtures', 'ivctop', 'replay.jsonl');

interface Out {
  code: number;
  stdout: string;
  stderr: string;
  monitors: MonitorProps[];
}

async function ivctop(args: string[], over: Partial<IvctopDeps> = {}): Promise<Out> {
  const o: Out = { code: -1, stdout: '', stderr: '', monitors: [] };
  o.code = await run(['node', 'ivctop', ...args], {
    dem: () => openDem({ binding: createMockDem() }),
    out: (s) => (o.stdout += s),
    err: (s) => (o.stderr += s),
    monitor: async (p) => {
      o.monitors.push(p);
    },
    exec: async () => ({ code: null, stdout: '', stderr: '', error: { code: 'ENOENT', message: 'x' } }),
    readFile: async () => {
      throw Object.assign(new Error('x'), { code: 'ENOENT' });
    },
    sleep: async () => {},
    columns: 100,
    ...over,
  });
  return o;
}

test('--once --json on a replayed recording: the model of its first two snapshots', async (t) => {
  const r = await ivctop(['--once', '--json', '--replay', REPLAY]);
  t.is(r.code, 0, r.stderr);
  t.is(r.stderr, '');
  const j = JSON.parse(r.stdout) as OnceJson;
  t.is(j.source, `replay ${REPLAY} 2/3`);
  t.is(j.interval, 1);
  t.is(j.tunnels.length, 2);
  const main = j.tunnels[0]!;
  t.like(main, {
    a: { domid: 1, ip: '192.0.2.11', port: 40312 },
    b: { domid: 2, ip: '192.0.2.12', port: 7001 },
    reportedBy: [1, 2],
    mode: 'tunnel',
    bytes: { ab: 20 * 1024 * 1024, ba: 16 },
    rate: { ab: 10 * 1024 * 1024, ba: 0 },
    occupancy: { ab: 0.75, ba: 0 },
    eventsPerSec: 200,
  });
  t.deepEqual(
    j.pending.map((p) => [p.domid, p.pendingEvents]),
    [
      [0, 1],
      [1, 0],
      [2, 0],
    ],
  );
  t.deepEqual(j.fallbacks.total.loopback, 5);
  t.like(j.totals, { tunnels: 2, pendingEvents: 1, fallbacks: 7 });
  // The lab scenario's question, as jq would ask it.
  const between = j.tunnels.filter(
    (x) => [x.a.ip, x.b.ip].sort().join() === '192.0.2.11,192.0.2.12' && (x.a.port === 7001 || x.b.port === 7001),
  );
  t.is(between.length, 1);
});

test('--once: sort, filter and text output', async (t) => {
  const byDomains = JSON.parse((await ivctop(['--once', '--json', '--replay', REPLAY, '--sort', 'domains'])).stdout) as OnceJson;
  t.deepEqual(byDomains.tunnels.map((x) => x.a.domid), [0, 1]);
  const dom0 = JSON.parse((await ivctop(['--once', '--json', '--replay', REPLAY, '--filter', '0'])).stdout) as OnceJson;
  t.deepEqual([dom0.filter, dom0.tunnels.length, dom0.pending.map((p) => p.domid)], [0, 1, [0]]);
  const text = await ivctop(['--once', '--replay', REPLAY]);
  t.is(text.code, 0);
  const lines = text.stdout.split('\n');
  t.regex(lines[0] ?? '', /^ivctop {2}replay /);
  t.regex(text.stdout, /^1-2 +192\.0\.2\.11:40312 +192\.0\.2\.12:7001 /m);
  t.notRegex(text.stdout, /q quit/);
});

test('--once on the live source: two samples one interval apart; failures are in the JSON, exit 0', async (t) => {
  const slept: number[] = [];
  const r = await ivctop(['--once', '--json', '--interval', '250'], {
    dem: () => openDem({ binding: createMockDem({ dem: 'EOPNOTSUPP' }) }),
    sleep: async (ms) => void slept.push(ms),
  });
  t.is(r.code, 0);
  t.deepEqual(slept, [250]);
  const j = JSON.parse(r.stdout) as OnceJson;
  t.deepEqual(j.dem, {
    ok: false,
    error: 'the hypervisor has no Domain Event Manager (not a fastivc Xen, or booted with evtmgr=0)',
  });
  t.deepEqual(j.tunnels, []);
  t.deepEqual(j.errors, [
    'this domain: fastivc.ko is not loaded (no /proc/fastivc/stats)',
    'other domains: xenstore-ls not found (no Xen toolstack here)',
  ]);
});

test('--once with links: in the JSON (the model\'s links, filtered) and as the LINKS section of the text', async (t) => {
  const dir = await mkdtemp(path.join(tmpdir(), 'ivctop-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const file = path.join(dir, 'links.jsonl');
  const peers: Record<number, string> = {
    1: 'domain 2 pages 24 quota 4096 sockets 3 pooled 1 parked 1 setups 4 reuses 12\n',
    2: 'domain 1 pages 16 quota 4096 sockets 3 pooled 0 parked 1 setups 4 reuses 0\n',
  };
  const snaps = parseRecording(await readFile(REPLAY, 'utf8')).map((s) => ({
    ...s,
    domains: s.domains.map((d) => ({ ...d, peers: parsePeers(peers[d.domid] ?? '') })),
  }));
  await writeFile(file, snaps.map((s) => JSON.stringify(s)).join('\n'));
  const j = JSON.parse((await ivctop(['--once', '--json', '--replay', file])).stdout) as OnceJson;
  t.deepEqual(j.links, [
    { key: '1-2', domain: 1, peer: 2, pages: 24, quota: 4096, sockets: 3, pooled: 1, parked: 1, setups: 4, reuses: 12, reuseRatio: 0.75 },
    { key: '2-1', domain: 2, peer: 1, pages: 16, quota: 4096, sockets: 3, pooled: 0, parked: 1, setups: 4, reuses: 0, reuseRatio: 0 },
  ]);
  const dom0 = JSON.parse((await ivctop(['--once', '--json', '--replay', file, '--filter', '0'])).stdout) as OnceJson;
  t.deepEqual(dom0.links, []);
  const text = (await ivctop(['--once', '--replay', file])).stdout;
  t.regex(text, /^LINKS \(2\)\nLINK +PAGES +CONNS +POOLED +PARKED +REUSES +SETUPS +REUSE%\n1 ↔ 2 +24\/4096 +3 +1 +1 +12 +4 +75%\n2 ↔ 1 +16\/4096 +3 +0 +1 +0 +4 +0%\n/m);
  // the recording from before links: an empty list, and no section
  const old = await ivctop(['--once', '--json', '--replay', REPLAY]);
  t.deepEqual((JSON.parse(old.stdout) as OnceJson).links, []);
  t.notRegex((await ivctop(['--once', '--replay', REPLAY])).stdout, /LINKS/);
});

test('--record writes the snapshots taken; --replay reads them back', async (t) => {
  const dir = await mkdtemp(path.join(tmpdir(), 'ivctop-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const file = path.join(dir, 'rec.jsonl');
  t.is((await ivctop(['--once', '--json', '--record', file, '--no-xenstore'])).code, 0);
  const snaps = parseRecording(await readFile(file, 'utf8'));
  t.is(snaps.length, 2);
  t.like(snaps[0]!.dem, { counters: { raises: 0 } });
  const back = await ivctop(['--once', '--json', '--replay', file]);
  t.is(back.code, 0);
  t.deepEqual((JSON.parse(back.stdout) as OnceJson).errors, ['this domain: fastivc.ko is not loaded (no /proc/fastivc/stats)']);
});

test('without --once: the monitor gets the source and the options', async (t) => {
  const r = await ivctop(['--replay', REPLAY, '--step', '--interval', '500', '--sort', 'events', '--filter', '2']);
  t.is(r.code, 0, r.stderr);
  t.is(r.monitors.length, 1);
  const m = r.monitors[0]!;
  t.deepEqual([m.intervalMs, m.sort, m.filter, m.source.kind], [500, 'events', 2, 'replay']);
  t.is((await m.source.next()).time, 1700000000000);
  t.is((await m.source.next()).time, 1700000001000);
  const live = await ivctop([]);
  t.deepEqual([live.monitors[0]?.intervalMs, live.monitors[0]?.sort, live.monitors[0]?.filter, live.monitors[0]?.source.kind], [
    1000,
    'throughput',
    null,
    'live',
  ]);
});

test('bad arguments: one line, exit 2', async (t) => {
  const dir = await mkdtemp(path.join(tmpdir(), 'ivctop-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const bad = path.join(dir, 'bad.jsonl');
  await writeFile(bad, '{"time": 1}\n');
  const cases: [string[], string][] = [
    [['--json'], 'error: --json needs --once'],
    [['--step'], 'error: --step needs --replay'],
    [['--interval', '1'], "error: option '--interval <ms>' argument '1' is invalid. expected milliseconds, an integer >= 100."],
    [['--interval', 'fast'], "error: option '--interval <ms>' argument 'fast' is invalid. expected milliseconds, an integer >= 100."],
    [['--sort', 'name'], "error: option '--sort <key>' argument 'name' is invalid. expected one of throughput, bytes, occupancy, events, domains."],
    [['--filter', 'dom1'], "error: option '--filter <domid>' argument 'dom1' is invalid. expected a domain id, an integer 0..32751."],
    [['--once', 'extra'], "error: too many arguments. Expected 0 arguments but got 1."],
    [['--frobnicate'], "error: unknown option '--frobnicate'"],
    [['--once', '--replay', path.join(dir, 'missing.jsonl')], `ivctop: cannot read ${path.join(dir, 'missing.jsonl')}: ENOENT: no such file or directory, open '${path.join(dir, 'missing.jsonl')}'`],
    [['--once', '--replay', bad], `ivctop: ${bad}:1: not a snapshot (needs time, dem, domains, errors)`],
  ];
  for (const [args, line] of cases) {
    const r = await ivctop(args);
    t.deepEqual([r.code, r.stdout, r.stderr, r.monitors.length], [2, '', `${line}\n`, 0], args.join(' '));
  }
});

test('the ivctop binary (tsx): --once --json on the fixture, --help', async (t) => {
  const exec = (args: string[]) =>
    new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve, reject) => {
      const child = spawn(process.execPath, ['--import', 'tsx', path.join(root, 'tui/src/ivctop/cli.ts'), ...args], {
        cwd: root,
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      let stdout = '';
      let stderr = '';
      child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
      child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
      child.on('error', reject);
      child.on('close', (code) => resolve({ code, stdout, stderr }));
    });
  const r = await exec(['--once', '--json', '--replay', REPLAY]);
  t.is(r.code, 0, r.stderr);
  t.is((JSON.parse(r.stdout) as OnceJson).tunnels.length, 2);
  const h = await exec(['--help']);
  t.is(h.code, 0);
  t.regex(h.stdout, /Keys: s cycles the sort column, f cycles the domain filter, p pauses, q quits\./);
  const bad = await exec(['--interval', '5']);
  t.is(bad.code, 2);
  t.is(bad.stderr.trimEnd().split('\n').length, 1);
});
