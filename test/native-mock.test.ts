/** The mock DEM (native/lib/mock.ts) and the typed DemSource over it: no addon, no Xen needed. */
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { constants, tmpdir } from 'node:os';
import path from 'node:path';
import test from 'ava';
import {
  XenError,
  canonicalIP,
  compareIP,
  formatIP,
  ipBytes,
  isDomid,
  isIPv4,
  isIPv6,
  isV4Mapped,
  openDem,
} from '../native/lib/index.js';
import { createMockBinding, createMockDem, mockRecord } from '../native/lib/mock.js';

test('isIPv4 and isDomid follow the addon rules', (t) => {
  for (const ok of ['0.0.0.0', '10.0.0.1', '255.255.255.255', '192.168.100.200']) t.true(isIPv4(ok), ok);
  for (const bad of ['', '1.2.3', '1.2.3.4.5', '01.2.3.4', '256.1.1.1', '1.2.3.4 ', 'a.b.c.d', '1..2.3', '::1', '1.2.3.-4']) {
    t.false(isIPv4(bad), bad);
  }
  for (const ok of [0, 1, 32751]) t.true(isDomid(ok));
  for (const bad of [-1, 32752, 0x7ff4, 1.5, Number.NaN, Number.POSITIVE_INFINITY]) t.false(isDomid(bad));
});

test('IPv6 addresses: read as inet_pton(AF_INET6) reads them, printed as glibc inet_ntop prints them', (t) => {
  for (const [input, canonical] of [
    ['2001:db8::1', '2001:db8::1'],
    ['2001:DB8:0000:0000:0000:0000:0000:0001', '2001:db8::1'],
    ['fe80::216:3eff:fe00:12', 'fe80::216:3eff:fe00:12'],
    ['::', '::'],
    ['::1', '::1'],
    ['1::', '1::'],
    ['1:2:3:4:5:6:7::', '1:2:3:4:5:6:7:0'], // "::" for one group, printed without it (a run of one)
    ['::2:3:4:5:6:7:8', '0:2:3:4:5:6:7:8'],
    ['1:0:0:2:0:0:0:3', '1:0:0:2::3'], // the longest run
    ['1:0:0:2:0:0:3:4', '1::2:0:0:3:4'], // the first of two equal runs
    ['0:0:1::', '0:0:1::'],
    ['::ffff:10.0.0.1', '::ffff:10.0.0.1'], // IPv4-mapped
    ['::ffff:a00:1', '::ffff:10.0.0.1'],
    ['::1.2.3.4', '::1.2.3.4'], // IPv4-compatible: glibc prints the dotted quad
    ['::0.0.0.2', '::2'],
    ['::ffff:0:1.2.3.4', '::ffff:0:102:304'],
    ['1:2:3:4:5:6:1.2.3.4', '1:2:3:4:5:6:102:304'],
    ['0000:0000:0000:0000:0000:0000:0000:0000', '::'],
  ] as const) {
    t.is(canonicalIP(input), canonical, input);
    t.true(isIPv6(input), input);
    t.false(isIPv4(input), input);
    t.is(ipBytes(input)?.length, 16, input);
  }
  t.is(canonicalIP('10.0.0.1'), '10.0.0.1');
  t.false(isIPv6('10.0.0.1'));
  for (const bad of [
    '', ':', ':::', '::1::', '1::2::3', '1:2:3:4:5:6:7:8:9', '1:2:3:4:5:6:7::8', '1:2:3:4:5:6:7', '1:', ':1',
    '1::2:', '12345::1', '::g', 'fe80::1%eth0', '[::1]', ' ::1', '::1 ', '::1.2.3', '::1.2.3.04', '::256.1.1.1',
    '::a.1.1.1', '1:2:3:4:5:6:7:1.2.3.4', '::1.2.3.4:5', '2001:db8::/64', '::1\0', '01.2.3.4', '1.2.3', 'x',
  ]) {
    t.is(ipBytes(bad), undefined, JSON.stringify(bad));
    t.is(canonicalIP(bad), undefined, JSON.stringify(bad));
    t.false(isIPv6(bad), JSON.stringify(bad));
  }
  t.true(isV4Mapped(ipBytes('::ffff:1.2.3.4') as Uint8Array));
  for (const a of ['::fffe:1.2.3.4', '::1:ffff:1.2.3.4', '1.2.3.4', '::1.2.3.4']) t.false(isV4Mapped(ipBytes(a) as Uint8Array), a);
  t.is(formatIP(Uint8Array.from([192, 0, 2, 1])), '192.0.2.1');
  // the DEM's table order: IPv4 first, then IPv6, each by address bytes
  t.deepEqual(['fe80::1', '10.0.0.2', '2001:db8::1', '9.0.0.1', '::1', '10.0.0.10'].sort(compareIP), [
    '9.0.0.1', '10.0.0.2', '10.0.0.10', '::1', '2001:db8::1', 'fe80::1',
  ]);
});

test('IPv6 over the mock: any spelling in, compressed out, beside IPv4 in the DEM order; refused as the DEM refuses', async (t) => {
  const b = createMockDem({
    records: [
      mockRecord({ src: '[2001:db8::1]:40000', dst: '[2001:db8::2]:5201', owner: 2, raiser: 1 }),
      mockRecord({ src: '10.0.0.1:40000', dst: '10.0.0.2:5201', owner: 2, raiser: 1 }),
    ],
  });
  const dem = openDem({ binding: b });
  await dem.ipSet('2001:DB8:0::0002', 2);
  await dem.ipSet('2001:db8::1', 1);
  await dem.ipSet('10.0.0.1', 1);
  await dem.ipSet('10.0.0.2', 2);
  t.is(await dem.ipLookup('2001:db8:0:0:0:0:0:2'), 2);
  t.is(await dem.ipLookup('2001:db8::3'), null);
  t.deepEqual((await dem.query('ip')).entries, [
    { addr: '10.0.0.1', domid: 1 },
    { addr: '10.0.0.2', domid: 2 },
    { addr: '2001:db8::1', domid: 1 },
    { addr: '2001:db8::2', domid: 2 },
  ]);
  // the IPv6 address moves: the record that names it goes, the IPv4 one stays
  await dem.ipSet('2001:db8::2', 3);
  t.deepEqual((await dem.query('records')).entries.map((r) => r.src), ['10.0.0.1:40000']);
  for (const [addr, call] of [
    ['::', () => dem.ipSet('::', 1)],
    ['::ffff:10.0.0.9', () => dem.ipSet('::ffff:10.0.0.9', 1)],
    ['::ffff:10.0.0.1', () => dem.ipDel('::ffff:10.0.0.1')],
    ['::ffff:10.0.0.1', () => dem.ipLookup('::ffff:10.0.0.1')],
  ] as const) {
    t.like(await t.throwsAsync(call(), { instanceOf: XenError }), { code: 'EINVAL' }, addr);
  }
  t.is(b.table().length, 4);
  await dem.ipDel('2001:0db8::0001', 1);
  t.is(await dem.ipLookup('2001:db8::1'), null);
});

test('set, lookup, list and del over the mock', async (t) => {
  const dem = openDem({ binding: createMockDem() });
  t.is(dem.device, '/dev/xen/privcmd');
  await dem.ipSet('10.0.0.10', 2);
  await dem.ipSet('10.0.0.2', 1);
  await dem.ipSet('10.0.0.2', 3); // replaces the owner
  t.is(await dem.ipLookup('10.0.0.2'), 3);
  t.is(await dem.ipLookup('10.0.0.3'), null);
  const q = await dem.query('ip');
  t.deepEqual(q.entries, [
    { addr: '10.0.0.2', domid: 3 },
    { addr: '10.0.0.10', domid: 2 },
  ]);
  t.is(q.total, 2);
  t.is(q.counters.ipEntries, 2);
  t.is(q.counters.lookups, 2);
  await dem.ipDel('10.0.0.2', 3);
  await dem.ipDel('10.0.0.10');
  t.deepEqual((await dem.query('ip')).entries, []);
});

test('mock errors: ENOSPC at the per-domain limit, ENOENT/ESRCH on del, ESRCH for a dead domain, EINVAL for 0.0.0.0', async (t) => {
  const dem = openDem({ binding: createMockDem({ maxIpPerDomain: 2, liveDomains: [0, 1, 2] }) });
  await dem.ipSet('10.0.0.1', 1);
  await dem.ipSet('10.0.0.2', 1);
  await dem.ipSet('10.0.0.2', 1); // same owner again: no new entry, no error
  const full = await t.throwsAsync(dem.ipSet('10.0.0.3', 1), { instanceOf: XenError });
  t.like(full, {
    code: 'ENOSPC',
    errno: constants.errno.ENOSPC,
    syscall: 'ioctl',
    op: 'ip_set',
    path: '/dev/xen/privcmd',
    message: 'ip_set: domain 1 owns the maximum number of addresses already, or the table is full',
  });
  await dem.ipSet('10.0.0.3', 2); // another domain still has room
  t.like(await t.throwsAsync(dem.ipSet('10.0.0.4', 9), { instanceOf: XenError }), {
    code: 'ESRCH',
    message: 'ip_set: no live domain 9',
  });
  t.like(await t.throwsAsync(dem.ipSet('0.0.0.0', 1), { instanceOf: XenError }), { code: 'EINVAL' });
  t.like(await t.throwsAsync(dem.ipDel('10.9.9.9'), { instanceOf: XenError }), {
    code: 'ENOENT',
    errno: constants.errno.ENOENT,
    syscall: 'ioctl',
    op: 'ip_del',
    message: 'ip_del: 10.9.9.9 is not in the table',
  });
  t.like(await t.throwsAsync(dem.ipDel('10.0.0.3', 1), { instanceOf: XenError }), {
    code: 'ESRCH',
    message: 'ip_del: 10.0.0.3 is owned by another domain than 1',
  });
});

test('the table limit in all gives ENOSPC too', async (t) => {
  const dem = openDem({ binding: createMockDem({ maxIpTotal: 2 }) });
  await dem.ipSet('10.0.0.1', 1);
  await dem.ipSet('10.0.0.2', 2);
  t.like(await t.throwsAsync(dem.ipSet('10.0.0.3', 3)), { code: 'ENOSPC' });
  await dem.ipSet('10.0.0.2', 3); // moving an existing address needs no new slot
});

test('an unprivileged mock: EPERM for set, del and query; info and lookup still work', async (t) => {
  const dem = openDem({ binding: createMockDem({ privileged: false, ip: [{ addr: '10.0.0.5', domid: 5 }] }) });
  const refused = 'the DEM refused: this domain is not privileged (run in dom0)';
  for (const p of [dem.ipSet('10.0.0.1', 1), dem.ipDel('10.0.0.5'), dem.query('ip'), dem.query('records')]) {
    t.like(await t.throwsAsync(p, { instanceOf: XenError }), { code: 'EPERM', errno: constants.errno.EPERM, syscall: 'ioctl', message: refused });
  }
  t.is((await dem.info()).domid, 1);
  t.is(await dem.ipLookup('10.0.0.5'), 5);
});

test('a Xen without the DEM, a missing device and a non-privcmd device', async (t) => {
  const noDem = 'the hypervisor has no Domain Event Manager (not a fastivc Xen, or booted with evtmgr=0)';
  for (const code of ['EOPNOTSUPP', 'ENOSYS'] as const) {
    const dem = openDem({ binding: createMockDem({ dem: code }) });
    t.like(await t.throwsAsync(dem.info(), { instanceOf: XenError }), { code, message: noDem });
  }
  const missing = openDem({ binding: createMockBinding() });
  t.like(await t.throwsAsync(missing.ipLookup('1.2.3.4'), { instanceOf: XenError }), {
    code: 'ENOENT',
    syscall: 'open',
    op: 'ip_lookup',
    message: 'no Xen here: /dev/xen/privcmd does not exist (run in dom0 with xen-privcmd loaded)',
  });
  const tty = openDem({ binding: createMockDem({ devices: { '/dev/null': 'ENOTTY' } }), device: '/dev/null' });
  t.like(await t.throwsAsync(tty.info(), { instanceOf: XenError }), { code: 'ENOTTY', syscall: 'ioctl', op: 'info' });
});

test('records and counters come back from query("records"); moving an address drops its records', async (t) => {
  const rec = mockRecord({
    src: '10.0.0.1:40000',
    dst: '10.0.0.2:5201',
    owner: 2,
    raiser: 1,
    pending: ['SEND_DATA'],
    raised: { SEND_DATA: 12 },
    nrChannels: 4,
    channelSize: 4096,
  });
  const other = mockRecord({ src: '10.0.0.3:1', dst: '10.0.0.4:2', owner: 4, raiser: 3 });
  const binding = createMockDem({
    ip: [
      { addr: '10.0.0.1', domid: 1 },
      { addr: '10.0.0.2', domid: 2 },
    ],
    records: [rec, other],
    counters: { raises: 12, virqs: 1 },
  });
  const dem = openDem({ binding });
  const q = await dem.query('records');
  t.is(q.what, 'records');
  t.is(q.total, 2);
  t.deepEqual(q.entries[0], rec);
  t.is(q.entries[0]?.raised.SEND_DATA, 12);
  t.is(q.entries[0]?.raised.CREATE_TUNNEL, 0);
  t.like(q.counters, { raises: 12, virqs: 1, records: 2, pending: 1, ipEntries: 2 });
  await dem.ipSet('10.0.0.2', 5);
  const after = await dem.query('records');
  t.deepEqual(after.entries, [other]);
  t.is(after.counters.recordsFreed, 1);
});

test('the mock keeps its table in a state file when asked', async (t) => {
  const dir = await mkdtemp(path.join(tmpdir(), 'fastivc-mock-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const stateFile = path.join(dir, 'state.json');
  await openDem({ binding: createMockDem({ stateFile }) }).ipSet('10.0.0.7', 7);
  t.deepEqual(JSON.parse(await readFile(stateFile, 'utf8')), { ip: [{ addr: '10.0.0.7', domid: 7 }] });
  const again = openDem({ binding: createMockDem({ stateFile }) });
  t.is(await again.ipLookup('10.0.0.7'), 7);
});

test('DemSource passes argument errors through synchronously', (t) => {
  const dem = openDem({ binding: createMockDem() });
  t.throws(() => dem.ipSet('10.0.0', 1), { instanceOf: RangeError });
  t.throws(() => dem.ipDel('10.0.0.1', 70000), { instanceOf: RangeError });
  t.throws(() => dem.query('nope' as 'ip'), { instanceOf: RangeError });
});
