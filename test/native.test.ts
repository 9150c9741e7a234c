/**
 * The native addon on this host: no Xen here, so every DEM call must fail cleanly with a typed error; argument
 * checks are synchronous; the mock (native/lib/mock.ts) must say exactly what the addon says. The hypercall path
 * itself is exercised against a fake privcmd device preloaded into child processes (fixtures/native/fake-privcmd.c).
 */
import { execFile } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { constants, tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import test from 'ava';
import {
  AddonLoadError,
  DOMID_MAX,
  DOMID_NONE,
  XenError,
  addonCandidates,
  loadBinding,
  openDem,
  probe,
  type FastivcBinding,
} from '../native/lib/index.js';
import { KNOWN_ERRNOS, createMockBinding, createMockDem } from '../native/lib/mock.js';
import { addonPath as addon, buildFakePrivcmd, ensureAddon, root } from './fixtures/native/helpers.js';

const run = promisify(execFile);
const NO_XEN = 'no Xen here: /dev/xen/privcmd does not exist (run in dom0 with xen-privcmd loaded)';
const FAKE = '/fake/xen/privcmd';
const hasXen = existsSync('/dev/xen/privcmd');

let shim: string | undefined;
let tmp = '';

test.before(async () => {
  ensureAddon();
  tmp = await mkdtemp(path.join(tmpdir(), 'fastivc-native-'));
  shim = buildFakePrivcmd(tmp);
});

test.after.always(async () => {
  if (tmp !== '') await rm(tmp, { recursive: true, force: true });
});

/** Every DEM call of the binding, with a device argument. */
function demCalls(b: FastivcBinding, device?: string): [string, () => Promise<unknown>][] {
  return [
    ['info', () => b.info(device)],
    ['ip_set', () => b.ipSet('10.0.0.2', 1, device)],
    ['ip_del', () => b.ipDel('10.0.0.2', undefined, device)],
    ['ip_lookup', () => b.ipLookup('10.0.0.2', device)],
    ['query', () => b.query('ip', device)],
    ['query', () => b.query('records', device)],
  ];
}

// ---- loading and probe

test('addon is found at native/build/Release/fastivc.node and exports the DEM calls', (t) => {
  t.true(addonCandidates({}).includes(addon));
  t.deepEqual(addonCandidates({ FASTIVC_ADDON: '/x/y.node' }), ['/x/y.node']);
  const b = loadBinding() as FastivcBinding & Record<string, unknown>;
  t.is(b.defaultPrivcmdPath, '/dev/xen/privcmd');
  for (const f of ['probe', 'info', 'ipSet', 'ipDel', 'ipLookup', 'query', 'describeError']) t.is(typeof b[f], 'function', f);
  t.is(b.hypercall, 43);
  t.is(b.abiVersion, 1);
  t.is(b.domidMax, DOMID_MAX);
  t.is(b.domidNone, DOMID_NONE);
});

test('probe of a missing device rejects with XenError ENOENT and a clear message', async (t) => {
  const e = await t.throwsAsync(probe('/nonexistent/privcmd'), { instanceOf: XenError });
  t.is(e?.code, 'ENOENT');
  t.is(e?.errno, 2);
  t.is(e?.syscall, 'open');
  t.is(e?.op, 'probe');
  t.is(e?.path, '/nonexistent/privcmd');
  t.is(e?.message, 'no Xen here: /nonexistent/privcmd does not exist (run in dom0 with xen-privcmd loaded)');
});

test('probe opens the given path read-write: /dev/null works', async (t) => {
  t.deepEqual(await probe('/dev/null'), { device: '/dev/null', ok: true });
});

test('probe without a path uses /dev/xen/privcmd', async (t) => {
  if (hasXen) {
    try {
      t.deepEqual(await probe(), { device: '/dev/xen/privcmd', ok: true });
    } catch (e) {
      t.true(e instanceof XenError);
    }
    return;
  }
  const e = await t.throwsAsync(probe(), { instanceOf: XenError });
  t.is(e?.code, 'ENOENT');
  t.is(e?.message, NO_XEN);
});

test('other errno values keep their name: a directory is EISDIR', async (t) => {
  const e = await t.throwsAsync(probe('/'), { instanceOf: XenError });
  t.is(e?.code, 'EISDIR');
  t.is(e?.message, 'cannot open /: Is a directory');
});

test('a missing addon file gives AddonLoadError with the build command', (t) => {
  t.throws(() => loadBinding('/nonexistent/fastivc.node'), { instanceOf: AddonLoadError, message: /build:native/ });
});

// ---- no Xen on this host

test('every DEM call with the default device rejects ENOENT: no Xen here', async (t) => {
  if (hasXen) {
    t.pass('this host has /dev/xen/privcmd');
    return;
  }
  const b = loadBinding();
  for (const [op, call] of demCalls(b)) {
    const e = await t.throwsAsync(call(), { instanceOf: Error }, op);
    const x = e as Error & Record<string, unknown>;
    t.is(x.code, 'ENOENT', op);
    t.is(x.errno, constants.errno.ENOENT, op);
    t.is(x.syscall, 'open', op);
    t.is(x.op, op);
    t.is(x.path, '/dev/xen/privcmd', op);
    t.is(e?.message, NO_XEN, op);
  }
  // Through the typed wrapper: XenError with the same fields.
  const dem = openDem();
  for (const call of [() => dem.info(), () => dem.ipSet('10.0.0.2', 1), () => dem.ipDel('10.0.0.2'), () => dem.ipLookup('10.0.0.2'), () => dem.query('ip'), () => dem.query('records')]) {
    const e = await t.throwsAsync(call(), { instanceOf: XenError });
    t.is(e?.code, 'ENOENT');
    t.is(e?.message, NO_XEN);
  }
});

test('a device that is not privcmd (/dev/null): the ioctl fails with ENOTTY, reported per op', async (t) => {
  const b = loadBinding();
  for (const [op, call] of demCalls(b, '/dev/null')) {
    const e = (await t.throwsAsync(call(), { instanceOf: Error }, op)) as Error & Record<string, unknown>;
    t.is(e.code, 'ENOTTY', op);
    t.is(e.errno, constants.errno.ENOTTY, op);
    t.is(e.syscall, 'ioctl', op);
    t.is(e.op, op);
    t.is(e.message, `${op}: /dev/null is not a Xen privcmd device (it does not take the hypercall ioctl)`);
  }
  const e = await t.throwsAsync(openDem({ device: '/dev/null' }).query('records'), { instanceOf: XenError });
  t.is(e?.code, 'ENOTTY');
  t.is(e?.op, 'query');
});

// ---- synchronous argument checks (addon and mock alike)

type BadCall = [string, (b: FastivcBinding) => unknown, typeof TypeError | typeof RangeError, string];
const badCalls: BadCall[] = [
  ['ipSet number addr', (b) => b.ipSet(42 as unknown as string, 1), TypeError, 'ipSet: addr must be a string'],
  ['ipSet no args', (b) => (b.ipSet as unknown as () => unknown)(), TypeError, 'ipSet: addr must be a string'],
  ['ipSet short addr', (b) => b.ipSet('10.0.0', 1), RangeError, "ipSet: '10.0.0' is not an IP address (a.b.c.d or IPv6)"],
  ['ipSet octet 256', (b) => b.ipSet('10.0.0.256', 1), RangeError, "ipSet: '10.0.0.256' is not an IP address (a.b.c.d or IPv6)"],
  ['ipSet leading zero', (b) => b.ipSet('10.0.0.01', 1), RangeError, "ipSet: '10.0.0.01' is not an IP address (a.b.c.d or IPv6)"],
  ['ipSet spaces', (b) => b.ipSet(' 10.0.0.1', 1), RangeError, "ipSet: ' 10.0.0.1' is not an IP address (a.b.c.d or IPv6)"],
  ['ipSet ipv6 zone', (b) => b.ipSet('fe80::1%eth0', 1), RangeError, "ipSet: 'fe80::1%eth0' is not an IP address (a.b.c.d or IPv6)"],
  ['ipSet ipv6 brackets', (b) => b.ipSet('[::1]', 1), RangeError, "ipSet: '[::1]' is not an IP address (a.b.c.d or IPv6)"],
  ['ipSet ipv6 nine groups', (b) => b.ipSet('1:2:3:4:5:6:7:8:9', 1), RangeError, "ipSet: '1:2:3:4:5:6:7:8:9' is not an IP address (a.b.c.d or IPv6)"],
  ['ipSet ipv6 empty ::', (b) => b.ipSet('1:2:3:4:5:6:7::8', 1), RangeError, "ipSet: '1:2:3:4:5:6:7::8' is not an IP address (a.b.c.d or IPv6)"],
  ['ipSet ipv6 two ::', (b) => b.ipSet('1::2::3', 1), RangeError, "ipSet: '1::2::3' is not an IP address (a.b.c.d or IPv6)"],
  ['ipSet ipv6 hex', (b) => b.ipSet('2001:db8::g', 1), RangeError, "ipSet: '2001:db8::g' is not an IP address (a.b.c.d or IPv6)"],
  ['ipSet ipv6 quad zero', (b) => b.ipSet('::ffff:1.2.3.04', 1), RangeError, "ipSet: '::ffff:1.2.3.04' is not an IP address (a.b.c.d or IPv6)"],
  ['ipSet ipv6 NUL', (b) => b.ipSet('::1\0', 1), RangeError, "ipSet: '::1\0' is not an IP address (a.b.c.d or IPv6)"],
  ['ipSet string domid', (b) => b.ipSet('10.0.0.1', '1' as unknown as number), TypeError, 'ipSet: domid must be a number'],
  ['ipSet missing domid', (b) => (b.ipSet as unknown as (a: string) => unknown)('10.0.0.1'), TypeError, 'ipSet: domid must be a number'],
  ['ipSet domid too big', (b) => b.ipSet('10.0.0.1', 0x7ff0), RangeError, 'ipSet: domid must be an integer in 0..32751 (0x7FEF), got 32752'],
  ['ipSet negative domid', (b) => b.ipSet('10.0.0.1', -1), RangeError, 'ipSet: domid must be an integer in 0..32751 (0x7FEF), got -1'],
  ['ipSet fractional domid', (b) => b.ipSet('10.0.0.1', 1.5), RangeError, 'ipSet: domid must be an integer in 0..32751 (0x7FEF), got 1.5'],
  ['ipSet NaN domid', (b) => b.ipSet('10.0.0.1', Number.NaN), RangeError, 'ipSet: domid must be an integer in 0..32751 (0x7FEF), got NaN'],
  ['ipSet numeric device', (b) => b.ipSet('10.0.0.1', 1, 5 as unknown as string), TypeError, 'ipSet: device must be a string'],
  ['ipDel bad addr', (b) => b.ipDel('1.2.3.4.5'), RangeError, "ipDel: '1.2.3.4.5' is not an IP address (a.b.c.d or IPv6)"],
  ['ipDel bad domid', (b) => b.ipDel('1.2.3.4', 40000), RangeError, 'ipDel: domid must be an integer in 0..32751 (0x7FEF), got 40000'],
  ['ipDel string domid', (b) => b.ipDel('1.2.3.4', 'x' as unknown as number), TypeError, 'ipDel: domid must be a number'],
  ['ipLookup object', (b) => b.ipLookup({} as unknown as string), TypeError, 'ipLookup: addr must be a string'],
  ['ipLookup empty', (b) => b.ipLookup(''), RangeError, "ipLookup: '' is not an IP address (a.b.c.d or IPv6)"],
  ['ipLookup empty device', (b) => b.ipLookup('1.2.3.4', ''), TypeError, 'ipLookup: device must not be empty'],
  ['query number', (b) => b.query(1 as unknown as 'ip'), TypeError, 'query: what must be a string'],
  ['query unknown', (b) => b.query('tunnels' as 'ip'), RangeError, "query: what must be 'ip' or 'records', got 'tunnels'"],
  ['info numeric device', (b) => b.info(7 as unknown as string), TypeError, 'info: device must be a string'],
  ['probe numeric device', (b) => b.probe(42 as unknown as string), TypeError, 'probe: device must be a string'],
];

test('bad arguments throw TypeError/RangeError synchronously from the addon', (t) => {
  const b = loadBinding();
  for (const [name, call, type, message] of badCalls) {
    t.throws(() => call(b), { instanceOf: type, message }, name);
  }
});

test('the mock throws the same errors with the same messages', (t) => {
  const mock = createMockDem();
  for (const [name, call, type, message] of badCalls) {
    t.throws(() => call(mock), { instanceOf: type, message }, name);
  }
});

test("the mock's error table is the addon's, for every op, syscall and errno", (t) => {
  const b = loadBinding();
  const mock = createMockDem();
  const errnos = [...KNOWN_ERRNOS.map((c) => (constants.errno as Record<string, number>)[c] ?? 0), 200];
  let n = 0;
  for (const op of ['probe', 'info', 'ip_set', 'ip_del', 'ip_lookup', 'query']) {
    for (const syscall of ['open', 'ioctl']) {
      for (const errno of errnos) {
        t.deepEqual(
          mock.describeError(op, syscall, errno, '/dev/xen/privcmd', '10.1.2.3', 7),
          b.describeError(op, syscall, errno, '/dev/xen/privcmd', '10.1.2.3', 7),
          `${op} ${syscall} ${errno}`,
        );
        n++;
      }
    }
  }
  t.true(n > 300);
});

test('the mock and the addon reject a missing device the same way', async (t) => {
  const mock = createMockBinding({ '/dev/xen/privcmd': 'ok', '/locked': 'EACCES' });
  t.deepEqual(await probe(undefined, mock), { device: '/dev/xen/privcmd', ok: true });
  const e = await t.throwsAsync(probe('/locked', mock), { instanceOf: XenError });
  t.is(e?.code, 'EACCES');
  const real = await t.throwsAsync(openDem({ device: '/nonexistent/privcmd' }).query('ip'), { instanceOf: XenError });
  const fake = await t.throwsAsync(openDem({ device: '/nonexistent/privcmd', binding: mock }).query('ip'), { instanceOf: XenError });
  for (const k of ['message', 'code', 'errno', 'syscall', 'op', 'path'] as const) t.is(fake?.[k], real?.[k], k);
  const realTty = await t.throwsAsync(openDem({ device: '/dev/null' }).ipSet('10.0.0.1', 3), { instanceOf: XenError });
  const fakeTty = await t.throwsAsync(
    openDem({ device: '/dev/null', binding: createMockDem({ devices: { '/dev/null': 'ENOTTY' } }) }).ipSet('10.0.0.1', 3),
    { instanceOf: XenError },
  );
  for (const k of ['message', 'code', 'errno', 'syscall', 'op', 'path'] as const) t.is(fakeTty?.[k], realTty?.[k], k);
});

// ---- the hypercall path, against the fake privcmd device

interface Failure {
  code: string;
  errno: number;
  syscall: string;
  op: string;
  message: string;
}

/** Runs `body` (async JS with `b` = the addon, `d` = the fake device, `err(p)`) in a child with the fake preloaded. */
async function inFake(body: string, env: Record<string, string> = {}): Promise<unknown> {
  const script = `
const b = require(${JSON.stringify(addon)});
const d = ${JSON.stringify(FAKE)};
const err = (p) => p.then((v) => ({ ok: v === undefined ? null : v }),
  (e) => ({ code: e.code, errno: e.errno, syscall: e.syscall, op: e.op, message: e.message }));
(async () => { ${body} })().then((r) => process.stdout.write(JSON.stringify(r)), (e) => { console.error(e); process.exit(3); });`;
  const { stdout } = await run(process.execPath, ['-e', script], {
    env: { ...process.env, LD_PRELOAD: shim ?? '', ...env },
    timeout: 30_000,
  });
  return JSON.parse(stdout) as unknown;
}

test('fake device: info and a paged query of the IP table', async (t) => {
  if (shim === undefined) return t.pass('fake privcmd not built (no C compiler or no evtmgr.h)');
  const log = path.join(tmp, 'paged.log');
  const r = (await inFake('return { info: await b.info(d), ip: await b.query("ip", d) };', {
    FAKE_DEM_PRELOAD: '5',
    FAKE_DEM_BATCH: '2',
    FAKE_DEM_LOG: log,
  })) as { info: Record<string, number>; ip: { what: string; total: number; entries: unknown[]; counters: Record<string, number> } };
  t.deepEqual(r.info, {
    abiVersion: 1,
    virq: 14,
    maxIpPerDomain: 3,
    maxRecordsPerDomain: 256,
    maxPendingPerDomain: 128,
    maxBatch: 2,
    domid: 0,
  });
  t.is(r.ip.what, 'ip');
  t.is(r.ip.total, 5);
  t.deepEqual(r.ip.entries, [
    { addr: '10.0.0.1', domid: 1 },
    { addr: '10.0.0.2', domid: 2 },
    { addr: '10.0.0.3', domid: 3 },
    { addr: '10.0.0.4', domid: 1 },
    { addr: '10.0.0.5', domid: 2 },
  ]);
  t.is(r.ip.counters.raises, 2 ** 40, 'u64 counters survive the conversion');
  t.is(r.ip.counters.ipEntries, 5);
  // Hypercall 43 every time: info (cmd 0), then info again inside query and three query pages of max_batch 2.
  t.deepEqual(readFileSync(log, 'utf8').trim().split('\n'), [
    '43 0 0 0 0',
    '43 0 0 0 0',
    '43 7 0 0 2',
    '43 7 0 2 2',
    '43 7 0 4 2',
  ]);
});

test('fake device: records are converted field by field', async (t) => {
  if (shim === undefined) return t.pass('fake privcmd not built (no C compiler or no evtmgr.h)');
  const r = (await inFake('return await b.query("records", d);', { FAKE_DEM_RECORDS: '3', FAKE_DEM_BATCH: '1' })) as {
    total: number;
    entries: Record<string, unknown>[];
    counters: Record<string, number>;
  };
  t.is(r.total, 3);
  t.is(r.entries.length, 3);
  t.deepEqual(r.entries[0], {
    src: '10.0.0.1:40000',
    dst: '10.0.1.1:5201',
    owner: 2,
    raiser: 1,
    pending: ['CREATE_TUNNEL', 'SEND_DATA'],
    raised: { CREATE_TUNNEL: 0, SEND_CLOSE_TUNNEL: 1, REJECT_TUNNEL: 2, RECV_CLOSE_TUNNEL: 3, SEND_DATA: 4, RECV_GET_DATA: 5 },
    fetched: 7,
    nrChannels: 4,
    channelSize: 4096,
  });
  t.deepEqual(r.entries[1]?.pending, []);
  t.deepEqual(r.entries[2]?.pending, ['RECV_GET_DATA']);
  t.is((r.entries[2]?.raised as Record<string, number>).SEND_DATA, 204);
  t.is(r.entries[2]?.channelSize, 3 * 4096);
  t.like(r.counters, { records: 3, pending: 2, virqs: 5, fetches: 6, eventsDelivered: 8, raisesDenied: 3 });
  // an IPv6 connection: "[address]:port", the address compressed
  const v6 = (await inFake('return await b.query("records", d);', { FAKE_DEM_RECORDS: '4' })) as { entries: Record<string, unknown>[] };
  t.like(v6.entries[3], { src: '[2001:db8::4]:40003', dst: '[2001:db8::1:4]:5201', owner: 2, raiser: 1 });
});

test('fake device: set, lookup, del and their errors', async (t) => {
  if (shim === undefined) return t.pass('fake privcmd not built (no C compiler or no evtmgr.h)');
  const r = (await inFake(`
    const out = {};
    out.set = await err(b.ipSet('192.168.1.7', 4, d));
    out.found = await b.ipLookup('192.168.1.7', d);
    out.absent = await b.ipLookup('192.168.1.8', d);
    out.move = await err(b.ipSet('192.168.1.7', 5, d));
    out.after = await b.ipLookup('192.168.1.7', d);
    out.notLive = await err(b.ipSet('192.168.1.9', 50, d));
    for (const a of ['10.1.0.1', '10.1.0.2', '10.1.0.3']) await b.ipSet(a, 6, d);
    out.full = await err(b.ipSet('10.1.0.4', 6, d));
    out.zero = await err(b.ipSet('0.0.0.0', 6, d));
    out.wrongOwner = await err(b.ipDel('192.168.1.7', 4, d));
    out.del = await err(b.ipDel('192.168.1.7', 5, d));
    out.gone = await b.ipLookup('192.168.1.7', d);
    out.delAbsent = await err(b.ipDel('192.168.1.7', undefined, d));
    out.delAny = await err(b.ipDel('10.1.0.1', null, d));
    out.table = (await b.query('ip', d)).entries;
    return out;`)) as Record<string, unknown>;
  t.deepEqual(r.set, { ok: null });
  t.is(r.found, 4);
  t.is(r.absent, null);
  t.deepEqual(r.move, { ok: null });
  t.is(r.after, 5);
  const f = (k: string) => r[k] as Failure;
  t.deepEqual(f('notLive'), { code: 'ESRCH', errno: constants.errno.ESRCH, syscall: 'ioctl', op: 'ip_set', message: 'ip_set: no live domain 50' });
  t.is(f('full').code, 'ENOSPC');
  t.is(f('full').message, 'ip_set: domain 6 owns the maximum number of addresses already, or the table is full');
  t.is(f('zero').code, 'EINVAL');
  t.is(f('zero').message, 'ip_set: the DEM rejected 0.0.0.0 (not a usable host address)');
  t.is(f('wrongOwner').code, 'ESRCH');
  t.is(f('wrongOwner').message, 'ip_del: 192.168.1.7 is owned by another domain than 4');
  t.deepEqual(r.del, { ok: null });
  t.is(r.gone, null);
  t.is(f('delAbsent').code, 'ENOENT');
  t.is(f('delAbsent').syscall, 'ioctl');
  t.is(f('delAbsent').message, 'ip_del: 192.168.1.7 is not in the table');
  t.deepEqual(r.delAny, { ok: null });
  t.deepEqual(r.table, [
    { addr: '10.1.0.2', domid: 6 },
    { addr: '10.1.0.3', domid: 6 },
  ]);
});

test('fake device: IPv6 entries; the addon reads and prints addresses as the mock does (inet_pton / inet_ntop)', async (t) => {
  if (shim === undefined) return t.pass('fake privcmd not built (no C compiler or no evtmgr.h)');
  // glibc's corner cases of the compressed form, IPv4 beside them; two per domain (the fake's limit is 3)
  const addrs = [
    '2001:DB8:0000:0000:0000:0000:0000:0001', 'fe80::216:3eff:fe00:12', '::1', '1::', '1:2:3:4:5:6:7::', '::2:3:4:5:6:7:8',
    '1:0:0:2:0:0:0:3', '1:0:0:2:0:0:3:4', '0:0:1::', '::1.2.3.4', '::0.0.0.2', '::ffff:0:1.2.3.4', '1:2:3:4:5:6:1.2.3.4',
    '10.0.0.1', '192.0.2.1',
  ];
  const r = (await inFake(`
    const out = {};
    const addrs = ${JSON.stringify(addrs)};
    for (let i = 0; i < addrs.length; i++) await b.ipSet(addrs[i], 1 + (i >> 1), d);
    out.table = (await b.query('ip', d)).entries;
    out.found = await b.ipLookup('2001:db8:0::1', d);
    out.absent = await b.ipLookup('2001:db8::2', d);
    out.mapped = await err(b.ipSet('::ffff:10.0.0.1', 9, d));
    out.zero = await err(b.ipLookup('::', d));
    out.wrongOwner = await err(b.ipDel('2001:DB8::1', 2, d));
    out.del = await err(b.ipDel('2001:db8::0:1', 1, d));
    out.gone = await b.ipLookup('2001:db8::1', d);
    return out;`)) as Record<string, unknown>;
  const mock = createMockDem();
  for (const [i, a] of addrs.entries()) await mock.ipSet(a, 1 + (i >> 1));
  t.deepEqual(r.table, (await mock.query('ip')).entries);
  t.deepEqual((r.table as { addr: string }[]).slice(0, 3).map((e) => e.addr), ['10.0.0.1', '192.0.2.1', '::1']);
  t.is(r.found, 1);
  t.is(r.absent, null);
  t.like(r.mapped, { code: 'EINVAL', op: 'ip_set', message: 'ip_set: the DEM rejected ::ffff:10.0.0.1 (not a usable host address)' });
  t.like(r.zero, { code: 'EINVAL', op: 'ip_lookup' });
  t.like(r.wrongOwner, { code: 'ESRCH', message: 'ip_del: 2001:db8::1 is owned by another domain than 2' });
  t.deepEqual(r.del, { ok: null });
  t.is(r.gone, null);
});

test('fake device: an unprivileged caller, a Xen without the DEM, and the DEM disabled', async (t) => {
  if (shim === undefined) return t.pass('fake privcmd not built (no C compiler or no evtmgr.h)');
  const body = `return { info: await err(b.info(d)), set: await err(b.ipSet('10.0.0.9', 1, d)),
    del: await err(b.ipDel('10.0.0.9', undefined, d)), lookup: await err(b.ipLookup('10.0.0.9', d)),
    query: await err(b.query('records', d)) };`;
  const eperm = (await inFake(body, { FAKE_DEM: 'eperm' })) as Record<string, Failure | { ok: unknown }>;
  t.like(eperm.info, { ok: { domid: 0 } });
  t.deepEqual(eperm.lookup, { ok: null });
  for (const k of ['set', 'del', 'query']) {
    t.like(eperm[k], {
      code: 'EPERM',
      errno: constants.errno.EPERM,
      syscall: 'ioctl',
      message: 'the DEM refused: this domain is not privileged (run in dom0)',
    }, k);
  }
  const noDem = 'the hypervisor has no Domain Event Manager (not a fastivc Xen, or booted with evtmgr=0)';
  for (const [mode, code] of [['nodem', 'ENOSYS'], ['evtmgr0', 'EOPNOTSUPP']] as const) {
    const r = (await inFake(body, { FAKE_DEM: mode })) as Record<string, Failure>;
    for (const k of ['info', 'set', 'del', 'lookup', 'query']) t.like(r[k], { code, syscall: 'ioctl', message: noDem }, `${mode} ${k}`);
  }
});

/** The CLI over the real addon and the fake device. */
async function cliInFake(args: string[], env: Record<string, string> = {}) {
  try {
    const { stdout, stderr } = await run(process.execPath, ['--import', 'tsx', path.join(root, 'tui', 'src', 'cli.ts'), ...args], {
      cwd: root,
      env: { ...process.env, LD_PRELOAD: shim ?? '', FASTIVC_PRIVCMD: FAKE, FASTIVC_DEM_MOCK: '', ...env },
      timeout: 60_000,
    });
    return { code: 0, stdout, stderr };
  } catch (e) {
    const x = e as { code: number; stdout: string; stderr: string };
    return { code: x.code, stdout: x.stdout, stderr: x.stderr };
  }
}

test('fastivc map list / set / dem info through the addon and the fake device', async (t) => {
  if (shim === undefined) return t.pass('fake privcmd not built (no C compiler or no evtmgr.h)');
  const list = await cliInFake(['map', 'list'], { FAKE_DEM_PRELOAD: '3' });
  t.is(list.code, 0, list.stderr);
  t.is(list.stdout, 'ADDRESS   DOMID\n10.0.0.1      1\n10.0.0.2      2\n10.0.0.3      3\n');
  const json = await cliInFake(['map', 'list', '--json'], { FAKE_DEM_PRELOAD: '1' });
  t.deepEqual(JSON.parse(json.stdout), [{ addr: '10.0.0.1', domid: 1 }]);
  const v6 = await cliInFake(['map', 'set', '2001:DB8::0001', '1']);
  t.deepEqual([v6.code, v6.stderr], [0, '']);
  const mapped = await cliInFake(['map', 'set', '::ffff:10.0.0.1', '1']);
  t.deepEqual([mapped.code, mapped.stderr], [
    2,
    "error: command-argument value '::ffff:10.0.0.1' is invalid for argument 'ip'. ::ffff:10.0.0.1 is an IPv4-mapped IPv6 address: the DEM names it as IPv4, 10.0.0.1.\n",
  ]);
  const set = await cliInFake(['map', 'set', '10.0.0.9', '50']);
  t.is(set.code, 1);
  t.is(set.stderr, 'fastivc: ip_set: no live domain 50\n');
  const eperm = await cliInFake(['map', 'set', '10.0.0.9', '1'], { FAKE_DEM: 'eperm' });
  t.is(eperm.code, 1);
  t.is(eperm.stderr, 'fastivc: the DEM refused: this domain is not privileged (run in dom0)\n');
  const info = await cliInFake(['dem', 'info', '--json']);
  t.is(info.code, 0, info.stderr);
  t.like(JSON.parse(info.stdout), { abiVersion: 1, maxBatch: 2 });
  const tty = await cliInFake(['map', 'list'], { FASTIVC_PRIVCMD: '/dev/null' });
  t.is(tty.code, 1);
  t.is(tty.stderr, 'fastivc: query: /dev/null is not a Xen privcmd device (it does not take the hypercall ioctl)\n');
});

test('fastivc map list on this host without Xen: one "no Xen here" line, exit 1', async (t) => {
  if (hasXen) return t.pass('this host has /dev/xen/privcmd');
  const r = await cliInFake(['map', 'list'], { LD_PRELOAD: '', FASTIVC_PRIVCMD: '' });
  t.is(r.code, 1);
  t.is(r.stdout, '');
  t.is(r.stderr, `fastivc: ${NO_XEN}\n`);
});
