/** ivctop's screen: frames of real states through ink-testing-library, and the keys of the live monitor. */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import test from 'ava';
import { render } from 'ink-testing-library';
// The tests are outside tsconfig's include, so tsx compiles their JSX with the classic runtime: React in scope.
import React from 'react';
import { buildModel, sortTunnels, type Model } from '../tui/src/data/model.js';
import { parseRecording, replaySource } from '../tui/src/data/replay.js';
import type { DataSource, Snapshot } from '../tui/src/data/types.js';
import { parsePeers } from '../tui/src/data/parse.js';
import { App, screenText, type AppProps } from '../tui/src/ivctop/App.js';
import { LinkTable, linkLines, linkSection } from '../tui/src/ivctop/components/LinkTable.js';
import { Monitor } from '../tui/src/ivctop/Monitor.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const recording = (): Snapshot[] =>
  parseRecording(readFileSync(path.join(root, 'test/fixtures/ivctop/replay.jsonl'), 'utf8'));

// eslint-disable-next-line no-control-regex
const plain = (s: string | undefined): string => (s ?? '').replace(/\x1b\[[0-9;?]*[A-Za-z]/g, '');

function fixtureModel(): Model {
  const [a, b] = recording();
  const m = buildModel(b!, a);
  return { ...m, tunnels: sortTunnels(m.tunnels, 'throughput') };
}

const base = (over: Partial<AppProps> = {}): AppProps => ({
  model: fixtureModel(),
  error: null,
  source: 'replay fixture',
  sort: 'throughput',
  filter: null,
  paused: false,
  width: 120,
  height: 30,
  intervalMs: 1000,
  ...over,
});

function frame(props: AppProps): string[] {
  const inst = render(<App {...props} />);
  const lines = plain(inst.lastFrame()).split('\n');
  inst.unmount();
  return lines;
}

test('tunnels present: the table, pending events, fallback reasons and totals', (t) => {
  const f = frame(base());
  t.regex(f[0] ?? '', /^ivctop {2}replay fixture {2}22:13:21 {2}every 1s {2}sort:throughput {2}filter:all$/);
  t.is(f[1], 'DEM: 3 addresses, 3 records');
  t.is(f[2], 'TUNNELS (2)');
  t.regex(f[3] ?? '', /^DOMS +A +B +STATE +CHxSIZE +A>B\* +B>A +OCC +EV\/s +BYTES$/);
  t.regex(f[4] ?? '', /^1-2 +192\.0\.2\.11:40312 192\.0\.2\.12:7001 +open +4x4K +10M\/s +0B\/s +75%\/0% +200 +20M$/);
  t.regex(f[5] ?? '', /^0-1 +192\.0\.2\.1:5201 +192\.0\.2\.11:40400 +tcp\/creating +- +0B\/s +0B\/s +- +0 +0B$/);
  const text = f.join('\n');
  t.regex(text, /PENDING DEM EVENTS +FALLBACK REASONS +TOTALS/);
  t.regex(text, /^ +dom records pending +loopback +5 +tunnels +2 \(4 open ends\)$/m);
  t.regex(text, /^ +0 +1 +1 +create_tunnel:1 +excluded_port +1 +throughput +10M\/s$/m);
  t.is(f.at(-1), 'q quit  p pause  s sort  f filter by domain');
  t.true(f.length <= 30);
});

test('no tunnels: says so, and why when no domain reports', (t) => {
  const snap = recording()[0]!;
  const quiet = buildModel({ ...snap, domains: snap.domains.map((d) => ({ ...d, sockets: [] })) });
  const f = frame(base({ model: quiet }));
  t.is(f[2], 'no tunnels');
  t.is(f[3], 'no connection is on a tunnel right now');
  t.regex(f.join('\n'), /PENDING DEM EVENTS/);
  const none = frame(base({ model: buildModel({ ...snap, domains: [] }) }));
  t.is(none[3], 'no domain reports fastivc statistics (is fastivc.ko loaded?)');
  const filtered = frame(base({ model: { ...quiet, tunnels: [] }, filter: 7 }));
  t.is(filtered[2], 'no tunnels of domain 7');
  t.regex(filtered[0] ?? '', /filter:dom 7/);
});

test('source errors: before any data, and a DEM that cannot be read', (t) => {
  const f = frame(base({ model: null, error: 'EACCES reading /proc/fastivc/stats' }));
  t.is(f[1], '! data source failed: EACCES reading /proc/fastivc/stats');
  t.is(f[2], 'cannot read the data source: EACCES reading /proc/fastivc/stats');
  t.regex(f[0] ?? '', /--:--:--/);
  t.is(frame(base({ model: null }))[2], 'waiting for the first sample...');
  const snap = recording()[0]!;
  const noDem = buildModel({ ...snap, dem: { error: 'no Xen here: /dev/xen/privcmd does not exist' }, errors: ['x', 'y'] });
  const g = frame(base({ model: noDem }));
  t.is(g[1], '! DEM: no Xen here: /dev/xen/privcmd does not exist (+2 more)');
  t.regex(g.join('\n'), /\(DEM unavailable\)/);
});

test('small terminal: columns dropped below 80, rows cut to the height, panels become one line', (t) => {
  const many = recording().map((s) => ({
    ...s,
    domains: s.domains.map((d) =>
      d.domid !== 1
        ? d
        : {
            ...d,
            sockets: Array.from({ length: 12 }, (_, i) => ({
              ...d.sockets[0]!,
              id: 100 + i,
              local: `192.0.2.11:${41000 + i}`,
            })),
          },
    ),
  }));
  const model = buildModel(many[1]!, many[0]);
  const f = frame(base({ model, width: 60, height: 12 }));
  t.true(f.length <= 12, f.join('\n'));
  for (const l of f) t.true(l.length <= 60, l);
  t.regex(f[3] ?? '', /^DOMS +A +B +A>B\*$/);
  t.notRegex(f[3] ?? '', /STATE|CHxSIZE|BYTES/);
  t.regex(f.join('\n'), /^\+\d+ more$/m);
  t.regex(f.at(-2) ?? '', /^13 tunnels +\S+\/s +\S+ +pending \d+ +fallbacks \d+$/);
  t.notRegex(f.join('\n'), /PENDING DEM EVENTS/);
  // 80 wide: the main columns stay.
  const w80 = frame(base({ width: 80, height: 24 }));
  for (const l of w80) t.true(l.length <= 80, l);
  t.regex(w80[3] ?? '', /A>B\* +B>A +OCC/);
});

test('paused: the header says so', (t) => {
  t.regex(frame(base({ paused: true }))[0] ?? '', /\[PAUSED\]$/);
});

async function until(get: () => string, cond: (s: string) => boolean, ms = 3000): Promise<string> {
  const end = Date.now() + ms;
  for (;;) {
    const s = get();
    if (cond(s) || Date.now() > end) return s;
    await new Promise((r) => setTimeout(r, 10));
  }
}

function counting(source: DataSource): DataSource & { calls: () => number } {
  let n = 0;
  return {
    ...source,
    describe: () => source.describe(),
    next: () => {
      n += 1;
      return source.next();
    },
    calls: () => n,
  };
}

test('keys: s changes the sort, f the domain filter, p pauses polling, q quits', async (t) => {
  const src = counting(replaySource(recording(), { pace: 'step', name: 'fixture' }));
  let quit = 0;
  const inst = render(<Monitor source={src} intervalMs={30} width={120} height={30} onQuit={() => void quit++} />);
  const get = () => plain(inst.lastFrame());
  t.regex(await until(get, (s) => s.includes('3/3')), /TUNNELS \(2\)/);
  t.regex(get(), /sort:throughput/);
  inst.stdin.write('s');
  t.regex(await until(get, (s) => s.includes('sort:bytes')), /BYTES\*/);
  inst.stdin.write('f');
  const f0 = await until(get, (s) => s.includes('filter:dom 0'));
  t.regex(f0, /TUNNELS \(1\)/);
  inst.stdin.write('f');
  await until(get, (s) => s.includes('filter:dom 1'));
  inst.stdin.write('p');
  t.regex(await until(get, (s) => s.includes('[PAUSED]')), /\[PAUSED\]/);
  // a poll already under way when p was pressed may still finish: settle, then count
  await new Promise((r) => setTimeout(r, 100));
  const calls = src.calls();
  await new Promise((r) => setTimeout(r, 150));
  t.is(src.calls(), calls); // no polling while paused
  inst.stdin.write('p');
  await until(get, (s) => !s.includes('[PAUSED]'));
  // polling resumes (waited for, not timed: a loaded machine may take longer than one interval)
  t.true(Number(await until(() => String(src.calls()), (s) => Number(s) > calls, 5000)) > calls);
  inst.stdin.write('q');
  await until(() => String(quit), (s) => s === '1');
  t.is(quit, 1);
  inst.unmount();
});

test('a source that throws shows its message, then recovers', async (t) => {
  let fail = true;
  const good = replaySource(recording(), { pace: 'step' });
  const src: DataSource = {
    kind: 'live',
    describe: () => 'live',
    next: () => (fail ? Promise.reject(new Error('boom')) : good.next()),
    close: () => {},
  };
  const inst = render(<Monitor source={src} intervalMs={20} width={100} height={24} />);
  const get = () => plain(inst.lastFrame());
  t.regex(await until(get, (s) => s.includes('boom')), /cannot read the data source: boom/);
  fail = false;
  t.regex(await until(get, (s) => s.includes('TUNNELS')), /TUNNELS \(2\)/);
  inst.unmount();
});

// ---- the links table ----

const PEERS: Record<number, string> = {
  1: 'domain 2 pages 24 quota 4096 sockets 3 pooled 1 parked 1 setups 4 reuses 1996\n',
  2: 'domain 1 pages 4096 quota 4096 sockets 3 pooled 1 parked 2 setups 4 reuses 12\ndomain 0 pages 0 quota 4096 sockets 0 pooled 0 parked 0 setups 0 reuses 0\n',
};

/** The fixture recording as a module with links would have written it. */
function withLinks(snaps: Snapshot[] = recording()): Snapshot[] {
  return snaps.map((s) => ({ ...s, domains: s.domains.map((d) => ({ ...d, peers: parsePeers(PEERS[d.domid] ?? '') })) }));
}

function linksModel(): Model {
  const [a, b] = withLinks();
  const m = buildModel(b!, a);
  return { ...m, tunnels: sortTunnels(m.tunnels, 'throughput') };
}

test('links: a section under the tunnels, one row per domain and peer, pages against the quota and reuse %', (t) => {
  const f = frame(base({ model: linksModel() }));
  t.is(f[2], 'TUNNELS (2)');
  t.regex(f[5] ?? '', /^0-1 /); // the tunnels table is whole
  t.is(f[6], '');
  t.is(f[7], 'LINKS (3)');
  t.regex(f[8] ?? '', /^LINK +PAGES +CONNS +POOLED +PARKED +REUSES +SETUPS +REUSE%$/);
  t.regex(f[9] ?? '', /^1 ↔ 2 +24\/4096 +3 +1 +1 +1996 +4 +100%$/);
  t.regex(f[10] ?? '', /^2 ↔ 0 +0\/4096 +0 +0 +0 +0 +0 +-$/);
  t.regex(f[11] ?? '', /^2 ↔ 1 +4096\/4096 +3 +1 +2 +12 +4 +75%$/);
  t.is(f[12], '');
  t.regex(f[13] ?? '', /^PENDING DEM EVENTS +FALLBACK REASONS +TOTALS$/); // the panels stay
  t.is(f.at(-1), 'q quit  p pause  s sort  f filter by domain');
  t.true(f.length <= 30);
  // columns line up: every row as wide as the header
  t.true([9, 10, 11].every((i) => (f[i] ?? '').length === (f[8] ?? '').length));
});

test('links: hidden when no domain reports one (a module before links, or none yet)', (t) => {
  const f = frame(base());
  t.notRegex(f.join('\n'), /LINKS|LINK +PAGES|↔/);
  t.is(f[6], ''); // right after the tunnels: the blank line before the panels
  t.regex(f[7] ?? '', /^PENDING DEM EVENTS/);
  t.deepEqual(linkSection([], 120, 10), []);
  const inst = render(<LinkTable rows={[]} width={80} maxLines={10} />);
  t.is(plain(inst.lastFrame()), '');
  inst.unmount();
  // with no tunnels, the links still show under the lines saying so
  const snap = withLinks()[0]!;
  const quiet = frame(base({ model: buildModel({ ...snap, domains: snap.domains.map((d) => ({ ...d, sockets: [] })) }) }));
  t.is(quiet[2], 'no tunnels');
  t.is(quiet[5], 'LINKS (3)');
});

test('links: the LinkTable component, narrow widths drop columns, rows cut with +N more, colours', (t) => {
  const rows = linksModel().links;
  const inst = render(<LinkTable rows={rows} width={80} maxLines={10} />);
  const lines = plain(inst.lastFrame()).split('\n');
  inst.unmount();
  t.is(lines[0], 'LINKS (3)');
  t.regex(lines[1] ?? '', /^LINK +PAGES +CONNS +POOLED +PARKED +REUSES +SETUPS +REUSE%$/);
  t.is(lines.length, 5);
  // 44 columns: reuses and setups go; 30: connections, pooled and parked too; the name, pages and reuse % stay
  const mid = linkLines(rows, 44, 10);
  t.regex(mid[0]?.text ?? '', /^LINK +PAGES +CONNS +POOLED +PARKED +REUSE%$/);
  t.regex(mid[1]?.text ?? '', /^1 ↔ 2 +24\/4096 +3 +1 +1 +100%$/);
  t.true(mid.every((l) => l.text.length <= 44));
  const narrow = linkLines(rows, 30, 10);
  t.regex(narrow[0]?.text ?? '', /^LINK +PAGES +REUSE%$/);
  t.true(narrow.every((l) => l.text.length <= 30));
  // two rows of room for three links
  const cut = linkLines(rows, 80, 2);
  t.deepEqual(cut.map((l) => l.text.split(/ +/)[0]), ['LINK', '1', '+2']);
  t.is(cut[2]?.text, '+2 more');
  // a peer at its quota stands out; a link holding nothing now is dim
  const full = linkLines(rows, 80, 10);
  t.is(full.find((l) => l.text.startsWith('2 ↔ 1'))?.color, 'yellow');
  t.is(full.find((l) => l.text.startsWith('2 ↔ 0'))?.dim, true);
  t.is(full.find((l) => l.text.startsWith('1 ↔ 2'))?.color, undefined);
});

test('links: a short screen keeps the tunnels first; the summary line counts the links', (t) => {
  const many = withLinks().map((s) => ({
    ...s,
    domains: s.domains.map((d) =>
      d.domid !== 1
        ? d
        : {
            ...d,
            sockets: Array.from({ length: 12 }, (_, i) => ({ ...d.sockets[0]!, id: 100 + i, local: `192.0.2.11:${41000 + i}` })),
          },
    ),
  }));
  const model = buildModel(many[1]!, many[0]);
  const small = frame(base({ model, width: 80, height: 12 }));
  t.true(small.length <= 12);
  t.notRegex(small.join('\n'), /LINKS/); // no room for both: the tunnels stay
  t.regex(small.at(-2) ?? '', /^13 tunnels .* links 3$/);
  // taller: a third of the room at least for the links, the tunnels cut instead
  const tall = frame(base({ model, width: 100, height: 26 }));
  t.true(tall.length <= 26);
  const text = tall.join('\n');
  t.regex(text, /^TUNNELS \(13\)$/m);
  t.regex(text, /^\+6 more\n\nLINKS \(3\)$/m);
  // 15 lines between the problems line and the panels: a third (5) for the blank line, title, header, a row, +2 more
  t.regex(text, /\n\nLINKS \(3\)\nLINK .*\n1 ↔ 2 .*\n\+2 more\n\nPENDING/);
  // --once text (everything fits) has both whole
  const once = screenText(model, { source: 'x', sort: 'throughput', filter: null, width: 100, intervalMs: 1000 });
  t.regex(once, /^LINKS \(3\)\n.*\n1 ↔ 2 .*\n2 ↔ 0 .*\n2 ↔ 1 /m);
  t.notRegex(once, /more/);
});

test('keys: the domain filter applies to the links too', async (t) => {
  const src = replaySource(withLinks(), { pace: 'step', name: 'links' });
  const inst = render(<Monitor source={src} intervalMs={30} width={120} height={30} filter={0} />);
  const get = () => plain(inst.lastFrame());
  const f = await until(get, (s) => s.includes('LINKS'));
  t.regex(f, /LINKS \(1\)/);
  t.regex(f, /^2 ↔ 0 /m);
  t.notRegex(f, /^1 ↔ 2 /m);
  inst.unmount();
});
