/** `fastivc map` and `fastivc dem`, run in-process against the mock DEM (commands take their DEM by injection). */
import test from 'ava';
import { AddonLoadError, openDem, type DemSource } from '../native/lib/index.js';
import { createMockDem, type MockDemOptions } from '../native/lib/mock.js';
import { formatIpTable } from '../tui/src/commands/map.js';
import { demFromEnv, type CliDeps } from '../tui/src/deps.js';
import { run } from '../tui/src/program.js';

interface Result {
  code: number;
  stdout: string;
  stderr: string;
  /** How many times the command asked for its DEM. */
  opened: number;
}

async function cli(args: string[], dem: DemSource | (() => DemSource) = openDem({ binding: createMockDem() })): Promise<Result> {
  const r: Result = { code: -1, stdout: '', stderr: '', opened: 0 };
  const deps: CliDeps = {
    dem: () => {
      r.opened++;
      return typeof dem === 'function' ? dem() : dem;
    },
    out: (s) => (r.stdout += s),
    err: (s) => (r.stderr += s),
  };
  r.code = await run(['node', 'fastivc', ...args], deps);
  return r;
}

const mockDem = (opts: MockDemOptions = {}): DemSource => openDem({ binding: createMockDem(opts) });

test('map set, list, lookup, del: success is quiet, the table is aligned', async (t) => {
  const dem = mockDem();
  for (const [ip, domid] of [['10.0.0.2', '1'], ['192.168.100.200', '12'], ['10.0.0.10', '3']] as const) {
    const r = await cli(['map', 'set', ip, domid], dem);
    t.deepEqual([r.code, r.stdout, r.stderr], [0, '', '']);
  }
  const list = await cli(['map', 'list'], dem);
  t.is(list.code, 0);
  t.is(list.stderr, '');
  t.is(
    list.stdout,
    'ADDRESS          DOMID\n' +
      '10.0.0.2             1\n' +
      '10.0.0.10            3\n' +
      '192.168.100.200     12\n',
  );
  const json = await cli(['map', 'list', '--json'], dem);
  t.is(json.code, 0);
  t.deepEqual(JSON.parse(json.stdout), [
    { addr: '10.0.0.2', domid: 1 },
    { addr: '10.0.0.10', domid: 3 },
    { addr: '192.168.100.200', domid: 12 },
  ]);
  t.is((await cli(['map', 'lookup', '10.0.0.10'], dem)).stdout, '3\n');
  t.is((await cli(['map', 'lookup', '10.0.0.11'], dem)).stdout, 'none\n');
  t.deepEqual(JSON.parse((await cli(['map', 'lookup', '10.0.0.11', '--json'], dem)).stdout), { addr: '10.0.0.11', domid: null });
  t.is((await cli(['map', 'del', '10.0.0.2'], dem)).code, 0);
  t.is((await cli(['map', 'del', '10.0.0.10', '3'], dem)).code, 0);
  t.is((await cli(['map', 'list'], dem)).stdout, 'ADDRESS          DOMID\n192.168.100.200     12\n');
});

test('map with IPv6: any spelling in, the compressed form out and in the table, after the IPv4 entries', async (t) => {
  const dem = mockDem();
  for (const [ip, domid] of [['2001:DB8:0:0::0001', '1'], ['10.0.0.2', '1'], ['fe80::216:3eff:fe00:12', '12']] as const) {
    const r = await cli(['map', 'set', ip, domid], dem);
    t.deepEqual([r.code, r.stdout, r.stderr], [0, '', ''], ip);
  }
  t.is(
    (await cli(['map', 'list'], dem)).stdout,
    'ADDRESS                 DOMID\n' +
      '10.0.0.2                    1\n' +
      '2001:db8::1                 1\n' +
      'fe80::216:3eff:fe00:12     12\n',
  );
  t.deepEqual(JSON.parse((await cli(['map', 'list', '--json'], dem)).stdout), [
    { addr: '10.0.0.2', domid: 1 },
    { addr: '2001:db8::1', domid: 1 },
    { addr: 'fe80::216:3eff:fe00:12', domid: 12 },
  ]);
  t.is((await cli(['map', 'lookup', '2001:db8:0000::1'], dem)).stdout, '1\n');
  t.deepEqual(JSON.parse((await cli(['map', 'lookup', 'FE80::216:3EFF:FE00:12', '--json'], dem)).stdout), {
    addr: 'fe80::216:3eff:fe00:12',
    domid: 12,
  });
  t.is((await cli(['map', 'lookup', '2001:db8::2'], dem)).stdout, 'none\n');
  const wrong = await cli(['map', 'del', '2001:db8::1', '12'], dem);
  t.deepEqual([wrong.code, wrong.stderr], [1, 'fastivc: ip_del: 2001:db8::1 is owned by another domain than 12\n']);
  t.is((await cli(['map', 'del', '2001:0db8::0001', '1'], dem)).code, 0);
  const absent = await cli(['map', 'del', '2001:DB8::1'], dem);
  t.deepEqual([absent.code, absent.stderr], [1, 'fastivc: ip_del: 2001:db8::1 is not in the table\n']);
  t.is((await cli(['map', 'list'], dem)).stdout.split('\n').length, 4);
});

test('an empty table prints the header only, or []', async (t) => {
  t.is((await cli(['map', 'list'])).stdout, 'ADDRESS  DOMID\n');
  t.is((await cli(['map', 'list', '--json'])).stdout, '[]\n');
  t.is(formatIpTable([{ addr: '1.2.3.4', domid: 32751 }]), 'ADDRESS  DOMID\n1.2.3.4  32751\n');
});

const usage: [string[], string][] = [
  [['map', 'set', '10.0.0', '1'], "error: command-argument value '10.0.0' is invalid for argument 'ip'. expected an IPv4 address a.b.c.d or an IPv6 address."],
  [['map', 'set', '10.0.0.256', '1'], "error: command-argument value '10.0.0.256' is invalid for argument 'ip'. expected an IPv4 address a.b.c.d or an IPv6 address."],
  [['map', 'set', '010.0.0.1', '1'], "error: command-argument value '010.0.0.1' is invalid for argument 'ip'. expected an IPv4 address a.b.c.d or an IPv6 address."],
  [['map', 'set', '0.0.0.0', '1'], "error: command-argument value '0.0.0.0' is invalid for argument 'ip'. 0.0.0.0 is not a host address."],
  [['map', 'set', '10.0.0.1', '32752'], "error: command-argument value '32752' is invalid for argument 'domid'. expected a domain id, an integer 0..32751."],
  [['map', 'set', '10.0.0.1', '-1'], "error: command-argument value '-1' is invalid for argument 'domid'. expected a domain id, an integer 0..32751."],
  [['map', 'set', '10.0.0.1', '1.5'], "error: command-argument value '1.5' is invalid for argument 'domid'. expected a domain id, an integer 0..32751."],
  [['map', 'set', '10.0.0.1', 'dom1'], "error: command-argument value 'dom1' is invalid for argument 'domid'. expected a domain id, an integer 0..32751."],
  [['map', 'set', '10.0.0.1'], "error: missing required argument 'domid'"],
  [['map', 'set'], "error: missing required argument 'ip'"],
  [['map', 'set', '10.0.0.1', '1', '2'], "error: too many arguments for 'set'. Expected 2 arguments but got 3."],
  [['map', 'del', 'host', '1'], "error: command-argument value 'host' is invalid for argument 'ip'. expected an IPv4 address a.b.c.d or an IPv6 address."],
  [['map', 'del', '10.0.0.1', '0x10'], "error: command-argument value '0x10' is invalid for argument 'domid'. expected a domain id, an integer 0..32751."],
  [['map', 'del'], "error: missing required argument 'ip'"],
  [['map', 'list', 'extra'], "error: too many arguments for 'list'. Expected 0 arguments but got 1."],
  [['map', 'list', '--yaml'], "error: unknown option '--yaml'"],
  [['map', 'lookup', '1.2.3'], "error: command-argument value '1.2.3' is invalid for argument 'ip'. expected an IPv4 address a.b.c.d or an IPv6 address."],
  [['map', 'set', '::', '1'], "error: command-argument value '::' is invalid for argument 'ip'. :: is not a host address."],
  [['map', 'set', '::ffff:10.0.0.1', '1'], "error: command-argument value '::ffff:10.0.0.1' is invalid for argument 'ip'. ::ffff:10.0.0.1 is an IPv4-mapped IPv6 address: the DEM names it as IPv4, 10.0.0.1."],
  [['map', 'del', '::FFFF:a00:1'], "error: command-argument value '::FFFF:a00:1' is invalid for argument 'ip'. ::FFFF:a00:1 is an IPv4-mapped IPv6 address: the DEM names it as IPv4, 10.0.0.1."],
  [['map', 'lookup', 'fe80::1%eth0'], "error: command-argument value 'fe80::1%eth0' is invalid for argument 'ip'. expected an IPv4 address a.b.c.d or an IPv6 address."],
  [['map', 'set', '[2001:db8::1]', '1'], "error: command-argument value '[2001:db8::1]' is invalid for argument 'ip'. expected an IPv4 address a.b.c.d or an IPv6 address."],
  [['map', 'set', '2001:db8::1/64', '1'], "error: command-argument value '2001:db8::1/64' is invalid for argument 'ip'. expected an IPv4 address a.b.c.d or an IPv6 address."],
];

test('bad arguments: one error line, exit 2, nothing on stdout, the DEM never opened', async (t) => {
  for (const [args, line] of usage) {
    const r = await cli(args);
    t.is(r.code, 2, args.join(' '));
    t.is(r.stdout, '', args.join(' '));
    t.is(r.stderr, `${line}\n`, args.join(' '));
    t.is(r.opened, 0, args.join(' '));
  }
});

test('a refused hypercall: one "fastivc:" line and exit 1', async (t) => {
  const eperm = 'fastivc: the DEM refused: this domain is not privileged (run in dom0)\n';
  for (const args of [['map', 'set', '10.0.0.1', '1'], ['map', 'del', '10.0.0.1'], ['map', 'list'], ['map', 'list', '--json']]) {
    const r = await cli(args, mockDem({ privileged: false }));
    t.deepEqual([r.code, r.stdout, r.stderr], [1, '', eperm], args.join(' '));
  }
  const noDem = await cli(['dem', 'info'], mockDem({ dem: 'EOPNOTSUPP' }));
  t.deepEqual([noDem.code, noDem.stderr], [1, 'fastivc: the hypervisor has no Domain Event Manager (not a fastivc Xen, or booted with evtmgr=0)\n']);
  const absent = await cli(['map', 'del', '10.0.0.1']);
  t.deepEqual([absent.code, absent.stderr], [1, 'fastivc: ip_del: 10.0.0.1 is not in the table\n']);
  const full = mockDem({ maxIpPerDomain: 1 });
  t.is((await cli(['map', 'set', '10.0.0.1', '4'], full)).code, 0);
  const second = await cli(['map', 'set', '10.0.0.2', '4'], full);
  t.deepEqual([second.code, second.stderr], [
    1,
    'fastivc: ip_set: domain 4 owns the maximum number of addresses already, or the table is full\n',
  ]);
  const noXen = await cli(['map', 'list'], openDem({ binding: createMockDem({ devices: { '/dev/xen/privcmd': 'ENOENT' } }) }));
  t.deepEqual([noXen.code, noXen.stderr], [1, 'fastivc: no Xen here: /dev/xen/privcmd does not exist (run in dom0 with xen-privcmd loaded)\n']);
});

test('a missing addon is a one-line failure too', async (t) => {
  const r = await cli(['map', 'list'], () => {
    throw new AddonLoadError('fastivc native addon not built (looked for x); run: npm run build:native');
  });
  t.deepEqual([r.code, r.stderr], [1, 'fastivc: fastivc native addon not built (looked for x); run: npm run build:native\n']);
});

test('dem info: aligned text or JSON', async (t) => {
  const r = await cli(['dem', 'info'], mockDem({ info: { maxBatch: 32 } }));
  t.is(r.code, 0);
  t.is(
    r.stdout,
    'ABI version               1\n' +
      'VIRQ                      14\n' +
      'max addresses per domain  16\n' +
      'max records per domain    256\n' +
      'max pending per domain    256\n' +
      'max batch                 32\n' +
      'this domain               0\n',
  );
  const j = await cli(['dem', 'info', '--json']);
  t.deepEqual(JSON.parse(j.stdout), {
    abiVersion: 1,
    virq: 14,
    maxIpPerDomain: 16,
    maxRecordsPerDomain: 256,
    maxPendingPerDomain: 256,
    maxBatch: 4,
    domid: 0,
  });
});

test('map --help lists the subcommands and the environment', async (t) => {
  const r = await cli(['map', '--help']);
  t.is(r.code, 0);
  for (const s of ['set <ip> <domid>', 'del <ip> [domid]', 'list [options]', 'lookup [options] <ip>', 'FASTIVC_DEM_MOCK=1']) {
    t.true(r.stdout.includes(s), s);
  }
});

test('demFromEnv: the addon by default, the mock with FASTIVC_DEM_MOCK', async (t) => {
  t.is(demFromEnv({}).device, '/dev/xen/privcmd');
  t.is(demFromEnv({ FASTIVC_PRIVCMD: '/dev/other' }).device, '/dev/other');
  t.is(demFromEnv({ FASTIVC_DEM_MOCK: '0' }).device, '/dev/xen/privcmd');
  const mock = demFromEnv({ FASTIVC_DEM_MOCK: '1' });
  await mock.ipSet('10.0.0.1', 1);
  t.is(await mock.ipLookup('10.0.0.1'), 1);
  await t.throwsAsync(demFromEnv({ FASTIVC_DEM_MOCK: 'unprivileged' }).query('ip'), { message: /not privileged/ });
  await t.throwsAsync(demFromEnv({ FASTIVC_DEM_MOCK: 'nodem' }).info(), { message: /no Domain Event Manager/ });
  t.throws(() => demFromEnv({ FASTIVC_DEM_MOCK: 'yes' }), { message: "FASTIVC_DEM_MOCK must be 1, unprivileged or nodem (got 'yes')" });
});
