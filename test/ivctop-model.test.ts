/** The pure model: rows from reports, merging both ends, rates from two snapshots, occupancy, sort and filter. */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import test from 'ava';
import { mockRecord } from '../native/lib/mock.js';
import { buildModel, domainsOf, filterModel, linksOf, sortTunnels } from '../tui/src/data/model.js';
import { parsePeers, parseSockLine } from '../tui/src/data/parse.js';
import { pushSource } from '../tui/src/data/push.js';
import { parseRecording, replaySource } from '../tui/src/data/replay.js';
import { normalizeSnapshot, type DomainReport, type SockLine, type Snapshot } from '../tui/src/data/types.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const recording = (): Snapshot[] =>
  parseRecording(readFileSync(path.join(root, 'test/fixtures/ivctop/replay.jsonl'), 'utf8'));

const COUNTERS = {
  raises: 0,
  raisesDenied: 0,
  virqs: 0,
  fetches: 0,
  eventsDelivered: 0,
  recordsCreated: 0,
  recordsFreed: 0,
  lookups: 0,
  ipEntries: 0,
  records: 0,
  pending: 0,
};

function sock(line: string): SockLine {
  const s = parseSockLine(`sock ${line}`);
  if (typeof s === 'string') throw new Error(s);
  return s;
}

function dom(domid: number, sockets: string[], stats: Record<string, number | string> = {}, peers = ''): DomainReport {
  return { domid, source: 'xenstore', stats: { domid, ...stats }, sockets: sockets.map(sock), peers: parsePeers(peers) };
}

function snap(time: number, domains: DomainReport[], extra: Partial<Snapshot> = {}): Snapshot {
  return { time, dem: { counters: COUNTERS, records: [], ipTable: [] }, domains, errors: [], ...extra };
}

const FWD = 'id=7 local=10.0.0.1:40000 remote=10.0.0.2:7001 peer=2 mode=tunnel tx=open rx=open';
const REV = 'id=3 local=10.0.0.2:7001 remote=10.0.0.1:40000 peer=1 mode=tunnel tx=open rx=open';
const GEOM = 'tx_channels=4 tx_channel_size=4096 rx_channels=4 rx_channel_size=4096';

test('both ends report one connection: one row, each direction from its sender', (t) => {
  const s = snap(1000, [
    dom(2, [`${REV} ${GEOM} tx_bytes=100 rx_bytes=4990 tx_in_flight=1 events_raised=30 events_received=20`]),
    dom(1, [`${FWD} ${GEOM} tx_bytes=5000 rx_bytes=100 tx_in_flight=3 events_raised=20 events_received=30`]),
  ]);
  const m = buildModel(s);
  t.is(m.tunnels.length, 1);
  const r = m.tunnels[0]!;
  t.is(r.key, '10.0.0.1:40000-10.0.0.2:7001');
  t.deepEqual([r.a.domid, r.a.port, r.b.domid, r.b.port], [1, 40000, 2, 7001]);
  t.deepEqual(r.reportedBy, [1, 2]);
  t.deepEqual(r.bytes, { ab: 5000, ba: 100 });
  t.deepEqual(r.occupancy, { ab: 0.75, ba: 0.25 });
  t.deepEqual(r.geometry.ab, { channels: 4, size: 4096 });
  t.is(r.events, 50); // raised by each end, each event once
  t.deepEqual(r.rate, { ab: null, ba: null });
  t.is(m.interval, null);
});

test('IPv6 tunnels: both ends merge into one row, and rows sort IPv4 before IPv6 without NaN', (t) => {
  const f6 = 'id=8 local=[fd00:fa57::11]:39000 remote=[fd00:fa57::12]:7016 peer=2 mode=tunnel tx=open rx=tcp';
  const r6 = 'id=4 local=[fd00:fa57::12]:7016 remote=[fd00:fa57::11]:39000 peer=1 mode=tunnel tx=tcp rx=open';
  const m = buildModel(snap(1000, [dom(2, [`${REV} ${GEOM}`, `${r6} ${GEOM} rx_bytes=900`]), dom(1, [`${f6} ${GEOM} tx_bytes=1000`, `${FWD} ${GEOM}`])]));
  t.is(m.tunnels.length, 2);
  const v6 = m.tunnels.find((r) => r.a.ip.includes(':'));
  t.truthy(v6);
  t.deepEqual([v6!.a.domid, v6!.a.ip, v6!.a.port, v6!.b.domid, v6!.b.ip, v6!.b.port], [1, 'fd00:fa57::11', 39000, 2, 'fd00:fa57::12', 7016]);
  t.deepEqual(v6!.bytes.ab, 1000);
  const sorted = sortTunnels(m.tunnels, 'domains');
  t.deepEqual(sorted.map((r) => r.a.ip.includes(':')), [false, true]);
});

test('throughput and events per second from two snapshots; a counter that went back has no rate', (t) => {
  const at = (time: number, tx: number, rx: number, ev: number) =>
    snap(time, [dom(1, [`${FWD} ${GEOM} tx_bytes=${tx} rx_bytes=${rx} events_raised=${ev} events_received=${ev}`])]);
  const m = buildModel(at(3000, 6_000_000, 1000, 90), at(1000, 2_000_000, 2000, 10));
  t.is(m.interval, 2);
  const r = m.tunnels[0]!;
  t.deepEqual(r.rate, { ab: 2_000_000, ba: null });
  t.is(r.eventsPerSec, 80); // (90+90 - 10-10) / 2 s: one end reports, raised + received
  t.is(m.totals.throughput, 2_000_000);
  // Only the receiver reports: that direction from rx_*, occupancy unknown.
  const rxOnly = buildModel(snap(0, [dom(2, [`${REV} ${GEOM} tx_bytes=1 rx_bytes=77 tx_in_flight=2`])]));
  t.deepEqual(rxOnly.tunnels[0]!.bytes, { ab: 77, ba: 1 });
  t.deepEqual(rxOnly.tunnels[0]!.occupancy, { ab: null, ba: 0.5 });
  t.is(rxOnly.tunnels[0]!.a.domid, 1); // from the reporter's peer=
  // Same time: no interval, no rates.
  t.is(buildModel(at(1000, 5, 5, 5), at(1000, 1, 1, 1)).tunnels[0]!.rate.ab, null);
});

test('native sockets are not tunnels; broken and closed ones are; the IP table names a peer given as -', (t) => {
  const m = buildModel(
    snap(
      0,
      [
        dom(1, [
          'id=1 local=10.0.0.1:1 remote=10.0.0.9:2 peer=- mode=native reason=not_coresident tx=tcp rx=tcp',
          'id=2 local=10.0.0.1:3 remote=10.0.0.3:4 peer=- mode=broken reason=violation tx=broken rx=open violations=1',
          'id=3 local=10.0.0.1:5 remote=10.0.0.2:6 peer=2 mode=closed tx=closed rx=closed',
        ]),
      ],
      { dem: { counters: COUNTERS, records: [], ipTable: [{ addr: '10.0.0.3', domid: 3 }] } },
    ),
  );
  t.deepEqual(
    m.tunnels.map((r) => [r.mode, r.a.domid, r.b.domid, r.violations]),
    [
      ['broken', 1, 3, 1],
      ['closed', 1, 2, 0],
    ],
  );
});

test('pending DEM events per owner domain, fallback totals, totals', (t) => {
  const s = snap(0, [dom(1, [], { fallback_loopback: 2, fallback_oob: 1, violations: 1, tunnels_open: 2 }), dom(2, [], { fallback_loopback: 3 })], {
    dem: {
      counters: COUNTERS,
      ipTable: [],
      records: [
        mockRecord({ src: 'x:1', dst: 'y:2', owner: 2, raiser: 1, pending: ['SEND_DATA', 'CREATE_TUNNEL'] }),
        mockRecord({ src: 'x:3', dst: 'y:4', owner: 2, raiser: 1 }),
        mockRecord({ src: 'y:2', dst: 'x:1', owner: 5, raiser: 2, pending: ['RECV_GET_DATA'] }),
      ],
    },
  });
  const m = buildModel(s);
  t.deepEqual(
    m.pending.map((p) => [p.domid, p.records, p.pendingRecords, p.pendingEvents]),
    [
      [1, 0, 0, 0],
      [2, 2, 1, 2],
      [5, 1, 1, 1],
    ],
  );
  t.is(m.pending[1]!.byEvent.CREATE_TUNNEL, 1);
  t.deepEqual(m.fallbacks.total, { loopback: 5, oob: 1 });
  t.like(m.totals, { pendingEvents: 3, fallbacks: 6, violations: 1, tunnelsOpenReported: 2, tunnels: 0, throughput: null });
  const err = buildModel(snap(0, [], { dem: { error: 'no Xen here' } }));
  t.deepEqual(err.dem, { ok: false, error: 'no Xen here' });
  t.deepEqual(err.pending, []);
});

test('the recorded fixture: one merged domU1-domU2 row with its rates, one half-open row to dom0', async (t) => {
  const src = replaySource(recording(), { pace: 'step' });
  const s1 = await src.next();
  const s2 = await src.next();
  const m = buildModel(s2, s1);
  t.is(m.tunnels.length, 2);
  const main = m.tunnels.find((r) => r.b.port === 7001)!;
  t.deepEqual([main.a.domid, main.b.domid, main.reportedBy], [1, 2, [1, 2]]);
  t.is(main.rate.ab, 10 * 1024 * 1024);
  t.is(main.rate.ba, 0);
  t.is(main.eventsPerSec, 200);
  t.deepEqual(main.occupancy, { ab: 0.75, ba: 0 });
  const half = m.tunnels.find((r) => r.b.port === 40400)!;
  t.deepEqual([half.a.domid, half.a.addr, half.state], [0, '192.0.2.1:5201', { ab: 'tcp', ba: 'creating' }]);
  t.is(m.totals.demRaisesPerSec, 201);
  t.deepEqual(domainsOf(m), [0, 1, 2]);
});

test('sort by each key and filter by domain', (t) => {
  const rows = (time: number, a: number, b: number, occA: number) =>
    snap(time, [
      dom(1, [
        `id=1 local=10.0.0.1:1 remote=10.0.0.2:1 peer=2 mode=tunnel tx=open ${GEOM} tx_bytes=${a} tx_in_flight=${occA}`,
        `id=2 local=10.0.0.1:2 remote=10.0.0.3:1 peer=3 mode=tunnel tx=open ${GEOM} tx_bytes=${b} events_raised=${time}`,
      ]),
    ]);
  const m = buildModel(rows(2000, 3000, 9000, 4), rows(1000, 1000, 8000, 0));
  const order = (k: Parameters<typeof sortTunnels>[1]) => sortTunnels(m.tunnels, k).map((r) => r.b.domid);
  t.deepEqual(order('throughput'), [2, 3]); // 2000/s vs 1000/s
  t.deepEqual(order('bytes'), [3, 2]);
  t.deepEqual(order('occupancy'), [2, 3]);
  t.deepEqual(order('events'), [3, 2]);
  t.deepEqual(order('domains'), [2, 3]);
  const f = filterModel(m, 3);
  t.deepEqual(f.tunnels.map((r) => r.b.domid), [3]);
  t.deepEqual(f.pending.map((p) => p.domid), []);
  t.is(filterModel(m, null), m);
  t.deepEqual(filterModel(m, 1).tunnels.length, 2);
});

test('replay: stepped, at recorded pace, and its end', async (t) => {
  const snaps = recording();
  let now = 0;
  const paced = replaySource(snaps, { pace: 'recorded', now: () => now, name: 'r' });
  t.is((await paced.next()).time, snaps[0]!.time);
  now = 999;
  t.is((await paced.next()).time, snaps[0]!.time);
  now = 2500;
  t.is((await paced.next()).time, snaps[2]!.time);
  t.is(paced.describe(), 'replay r 3/3 (ended)');
  const step = replaySource(snaps, { pace: 'step', name: 'r' });
  t.is(step.describe(), 'replay r 0/3');
  for (const s of snaps) t.is((await step.next()).time, s.time);
  t.is((await step.next()).time, snaps[2]!.time);
  t.throws(() => parseRecording('{"time":1}\n', 'f'), { message: 'f:1: not a snapshot (needs time, dem, domains, errors)' });
  t.throws(() => parseRecording('\n{\n', 'f'), { message: 'f:2: not JSON' });
  t.throws(() => parseRecording('', 'f'), { message: 'f: no snapshots' });
});

// ---- links ----

const peer = (d: number, pages: number, sockets: number, pooled: number, parked: number, setups: number, reuses: number) =>
  `domain ${d} pages ${pages} quota 4096 sockets ${sockets} pooled ${pooled} parked ${parked} setups ${setups} reuses ${reuses}\n`;

test('links: one row per reporting domain and peer line, both directions of a pair, with the reuse ratio', (t) => {
  const s = snap(0, [
    dom(2, [], {}, peer(1, 16, 3, 1, 2, 4, 12) + peer(0, 0, 0, 0, 0, 0, 0)),
    dom(1, [], {}, peer(2, 24, 3, 1, 1, 4, 1996)),
    dom(3, []), // an older module: no peers
  ]);
  const m = buildModel(s);
  t.deepEqual(
    m.links.map((l) => [l.key, l.domain, l.peer, l.pages, l.quota, l.sockets, l.pooled, l.parked, l.setups, l.reuses]),
    [
      ['1-2', 1, 2, 24, 4096, 3, 1, 1, 4, 1996],
      ['2-0', 2, 0, 0, 4096, 0, 0, 0, 0, 0],
      ['2-1', 2, 1, 16, 4096, 3, 1, 2, 4, 12],
    ],
  );
  t.is(m.links[0]!.reuseRatio, 1996 / 2000);
  t.is(m.links[1]!.reuseRatio, null); // nothing set up or reused yet
  t.is(m.links[2]!.reuseRatio, 0.75);
  t.deepEqual(linksOf(s), m.links);
  // a peer that reports nothing itself is still a domain one can filter on
  t.deepEqual(domainsOf(buildModel(snap(0, [dom(1, [], {}, peer(9, 1, 1, 0, 0, 1, 0))]))), [1, 9]);
  // filter: links with the domain at either end
  t.deepEqual(filterModel(m, 1).links.map((l) => l.key), ['1-2', '2-1']);
  t.deepEqual(filterModel(m, 0).links.map((l) => l.key), ['2-0']);
  t.deepEqual(filterModel(m, 3).links, []);
  // no module with links: none
  t.deepEqual(buildModel(snap(0, [dom(1, []), dom(2, [])])).links, []);
});

test('links from snapshots before links (no peers, or bad ones): none, without an exception', async (t) => {
  // the recorded fixture predates links: its reports get peers [] when read back
  const old = recording();
  t.true(old.every((s) => s.domains.every((d) => Array.isArray(d.peers) && d.peers.length === 0)));
  t.deepEqual(buildModel(old[1]!, old[0]).links, []);
  // a snapshot built by hand (or a stream) without peers, and one whose peers are not peer lines
  const bare = JSON.parse(JSON.stringify(snap(0, [dom(1, [])]))) as Snapshot;
  delete (bare.domains[0] as Partial<DomainReport>).peers;
  t.deepEqual(buildModel(bare).links, []);
  const junk = snap(0, [{ ...dom(1, []), peers: [{ domain: 2, pages: 'x' }, null, { domain: 3, pages: 1, quota: 2, sockets: 0, pooled: 0, parked: 0, setups: 1, reuses: 1 }] as never }]);
  t.deepEqual(buildModel(junk).links.map((l) => [l.peer, l.reuseRatio]), [[3, 0.5]]);
  const normal = normalizeSnapshot(bare);
  t.deepEqual(normal.domains[0]!.peers, []);
  t.false('peers' in bare.domains[0]!); // a copy: what the caller holds is left as it was
  t.is(normalizeSnapshot(normal), normal); // nothing missing: the same snapshot
  // pushed from a dom0 running an ivctop from before links
  const src = pushSource();
  const pushed = JSON.parse(JSON.stringify(old[0])) as Snapshot;
  for (const d of pushed.domains) delete (d as Partial<DomainReport>).peers;
  src.push(pushed);
  t.true((await src.next()).domains.every((d) => Array.isArray(d.peers)));
  t.true(pushed.domains.every((d) => !('peers' in d))); // the pusher's object (the lab report's) is not changed
});
