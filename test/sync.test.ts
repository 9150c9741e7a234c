/** `fastivc sync`: the desired table from xenstore, the plan, one pass and the loop over fakes and the mock DEM. */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import test from 'ava';
import { openDem, type DemSource } from '../native/lib/index.js';
import { createMockDem, type MockDemOptions } from '../native/lib/mock.js';
import type { CommandRunner, ExecResult, LineWatcher } from '../tui/src/data/system.js';
import type { CliDeps } from '../tui/src/deps.js';
import { run } from '../tui/src/program.js';
import { desiredFrom, liveDomainsFrom, planSync, syncLoop, type PassResult, type SyncDeps } from '../tui/src/sync.js';

const fixtures = path.join(path.dirname(fileURLToPath(import.meta.url)), 'fixtures', 'fastivc');
const VIF_LS = readFileSync(path.join(fixtures, 'xenstore-ls-dom0-vif.txt'), 'utf8');

const ok = (stdout: string): ExecResult => ({ code: 0, stdout, stderr: '' });

/** A toolstack: what xenstore-ls -f /local/domain/0 and xenstore-list /local/domain answer (changeable). */
function toolstack(state: { ls: string; domains: number[] }, calls: string[] = []): CommandRunner {
  return async (cmd, args) => {
    calls.push([cmd, ...args].join(' '));
    if (cmd === 'xenstore-ls' && args[0] === '-f' && args[1] === '/local/domain/0') return ok(state.ls);
    if (cmd === 'xenstore-list' && args[0] === '/local/domain') return ok(state.domains.map((d) => `${d}\n`).join(''));
    return { code: 1, stdout: '', stderr: `unexpected ${cmd}` };
  };
}

test('desired table: vif ip nodes (IPv4 and IPv6, several per vif, several vifs) and dom0 addresses', (t) => {
  const d = desiredFrom(VIF_LS, ['192.0.2.1']);
  t.deepEqual([...d.map], [
    ['192.0.2.11', 1],
    ['192.0.2.12', 2],
    ['fe80::216:3eff:fe00:12', 2],
    ['192.0.2.22', 2],
    ['10.1.0.2', 2],
    ['192.0.2.1', 0],
  ]);
  t.deepEqual([...d.authoritative].sort(), [0, 1, 2]); // dom 3 has a vif without ip: not authoritative
  t.deepEqual(d.notes, ['skip ::ffff:192.0.2.11 of dom 1 vif 0 (IPv4-mapped: the DEM names it as 192.0.2.11, list that)']);
  const conflict = desiredFrom('/local/domain/0/backend/vif/4/0/ip = "192.0.2.11"\n' + VIF_LS, []);
  t.false(conflict.map.has('192.0.2.11'));
  t.deepEqual(conflict.notes.slice(-1), ['skip 192.0.2.11: configured for doms 1, 4 (conflict, left alone)']);
  t.deepEqual([...liveDomainsFrom('0\n1\n2\nfoo\n\n')], [0, 1, 2]);
});

test('plan: set the missing and the wrong, delete the gone and the unconfigured, leave the rest', (t) => {
  const desired = desiredFrom(VIF_LS, ['192.0.2.1']);
  const actual = [
    { addr: '192.0.2.11', domid: 1 }, // right already
    { addr: '192.0.2.12', domid: 7 }, // wrong owner (7 gone too)
    { addr: '192.0.2.13', domid: 9 }, // domain 9 gone
    { addr: '192.0.2.14', domid: 2 }, // dom 2 no longer has it
    { addr: '192.0.2.15', domid: 3 }, // dom 3: vif without ip, manual entry kept
    { addr: '192.0.2.16', domid: 0 }, // dom0 with --dom0-ip: not one of its addresses
  ];
  const ops = planSync(desired, actual, new Set([0, 1, 2, 3]));
  t.deepEqual(ops, [
    { op: 'del', addr: '192.0.2.13', domid: 9, why: 'gone' },
    { op: 'del', addr: '192.0.2.14', domid: 2, why: 'unconfigured' },
    { op: 'del', addr: '192.0.2.16', domid: 0, why: 'unconfigured' },
    { op: 'set', addr: '10.1.0.2', domid: 2 },
    { op: 'set', addr: '192.0.2.1', domid: 0 },
    { op: 'set', addr: '192.0.2.12', domid: 2, was: 7 },
    { op: 'set', addr: '192.0.2.22', domid: 2 },
    { op: 'set', addr: 'fe80::216:3eff:fe00:12', domid: 2 },
  ]);
  // In step: nothing to do. Without --dom0-ip, dom0's entries are left alone.
  const done = actual.filter((e) => e.addr === '192.0.2.11' || e.addr === '192.0.2.15');
  const inStep = [...done, ...[...desired.map].filter(([a]) => a !== '192.0.2.11').map(([addr, domid]) => ({ addr, domid }))];
  t.deepEqual(planSync(desired, inStep, new Set([0, 1, 2, 3])), []);
  t.deepEqual(planSync(desiredFrom('', []), [{ addr: '192.0.2.1', domid: 0 }], new Set([0])), []);
});

test('sync: IPv6 vif addresses are set in the DEM\'s spelling, IPv4-mapped and unspecified ones skipped', async (t) => {
  const ls =
    '/local/domain/0/backend/vif/1/0/ip = "192.0.2.11 2001:DB8:0:0::0011 ::ffff:192.0.2.11 :: fe80::1%eth0"\n' +
    '/local/domain/0/backend/vif/2/0/ip = "2001:db8::12 10.0.0.2/24"\n';
  const { binding, dem } = mock({ ip: [{ addr: '2001:db8::99', domid: 1 }, { addr: '2001:db8::12', domid: 3 }] });
  const state = { ls, domains: [0, 1, 2, 3] };
  const r = await cli(['sync', '--once', '--dom0-ip', '2001:DB8::1'], { dem: () => dem, exec: toolstack(state) });
  t.is(r.code, 0, r.stderr);
  t.is(
    r.stdout,
    'skip ::ffff:192.0.2.11 of dom 1 vif 0 (IPv4-mapped: the DEM names it as 192.0.2.11, list that)\n' +
      'skip :: of dom 1 vif 0 (not an IP host address)\n' +
      'skip fe80::1%eth0 of dom 1 vif 0 (not an IP host address)\n' +
      'skip 10.0.0.2/24 of dom 2 vif 0 (not an IP host address)\n' +
      'del 2001:db8::99 (no longer an address of dom 1)\n' +
      'set 192.0.2.11 -> dom 1\n' +
      'set 2001:db8::1 -> dom 0\n' +
      'set 2001:db8::11 -> dom 1\n' +
      'set 2001:db8::12 -> dom 2 (was dom 3)\n',
  );
  t.deepEqual(binding.table(), [
    { addr: '192.0.2.11', domid: 1 },
    { addr: '2001:db8::1', domid: 0 },
    { addr: '2001:db8::11', domid: 1 },
    { addr: '2001:db8::12', domid: 2 },
  ]);
  // the DEM answers the compressed form: the second pass finds the table in step, whatever xenstore's spelling
  const again = await cli(['sync', '--once', '--dom0-ip', '2001:DB8::1'], { dem: () => dem, exec: toolstack(state) });
  t.deepEqual([again.code, again.stdout.split('\n').filter((l) => !l.startsWith('skip'))], [0, ['']]);
  t.deepEqual(desiredFrom(ls, ['2001:0db8::1']).map.get('2001:db8::1'), 0);
});

interface Out {
  code: number;
  stdout: string;
  stderr: string;
}

async function cli(args: string[], deps: Partial<CliDeps> & { dem: () => DemSource }): Promise<Out> {
  const r: Out = { code: -1, stdout: '', stderr: '' };
  r.code = await run(['node', 'fastivc', ...args], {
    out: (s) => (r.stdout += s),
    err: (s) => (r.stderr += s),
    ...deps,
  });
  return r;
}

const mock = (o: MockDemOptions = {}) => {
  const b = createMockDem(o);
  return { binding: b, dem: openDem({ binding: b }) };
};

test('sync --once: one line per change, exit 0; a second pass changes nothing', async (t) => {
  const { binding, dem } = mock({ ip: [{ addr: '192.0.2.12', domid: 2 }, { addr: '192.0.2.13', domid: 5 }] });
  const state = { ls: VIF_LS, domains: [0, 1, 2, 3] };
  const calls: string[] = [];
  const r = await cli(['sync', '--once', '--dom0-ip', '192.0.2.1'], { dem: () => dem, exec: toolstack(state, calls) });
  t.is(r.code, 0, r.stderr);
  t.is(
    r.stdout,
    'skip ::ffff:192.0.2.11 of dom 1 vif 0 (IPv4-mapped: the DEM names it as 192.0.2.11, list that)\n' +
      'del 192.0.2.13 (dom 5 gone)\n' +
      'set 10.1.0.2 -> dom 2\n' +
      'set 192.0.2.1 -> dom 0\n' +
      'set 192.0.2.11 -> dom 1\n' +
      'set 192.0.2.22 -> dom 2\n' +
      'set fe80::216:3eff:fe00:12 -> dom 2\n',
  );
  t.is(r.stderr, '');
  t.deepEqual(calls.sort(), ['xenstore-list /local/domain', 'xenstore-ls -f /local/domain/0']);
  t.deepEqual(binding.table(), [
    { addr: '10.1.0.2', domid: 2 },
    { addr: '192.0.2.1', domid: 0 },
    { addr: '192.0.2.11', domid: 1 },
    { addr: '192.0.2.12', domid: 2 },
    { addr: '192.0.2.22', domid: 2 },
    { addr: 'fe80::216:3eff:fe00:12', domid: 2 },
  ]);
  const again = await cli(['sync', '--once', '--dom0-ip', '192.0.2.1'], { dem: () => dem, exec: toolstack(state) });
  t.deepEqual([again.code, again.stdout.split('\n').filter((l) => !l.startsWith('skip'))], [0, ['']]);
});

test('sync --once: a refused operation is logged, the others go on, exit 1', async (t) => {
  const { binding, dem } = mock({ liveDomains: [0, 2] }); // domain 1 not live for the DEM: ESRCH
  const r = await cli(['sync', '--once'], { dem: () => dem, exec: toolstack({ ls: VIF_LS, domains: [0, 1, 2] }) });
  t.is(r.code, 1);
  t.regex(r.stderr, /^fastivc sync: set 192\.0\.2\.11 -> dom 1 failed: ip_set: no live domain 1\n/);
  t.regex(r.stderr, /\nfastivc: sync: 1 failure\(s\) in the pass \(see above\)\n$/);
  t.is(binding.table().length, 4);
  // No toolstack, or no DEM: one line each, exit 1, nothing changed.
  const noXs = await cli(['sync', '--once'], {
    dem: () => dem,
    exec: async () => ({ code: null, stdout: '', stderr: '', error: { code: 'ENOENT', message: 'x' } }),
  });
  t.is(noXs.code, 1);
  t.is(noXs.stderr.split('\n')[0], "fastivc sync: cannot read the toolstack's addresses: xenstore-ls not found (no Xen toolstack here)");
  const noDem = await cli(['sync', '--once'], {
    dem: () => openDem({ binding: createMockDem({ privileged: false }) }),
    exec: toolstack({ ls: VIF_LS, domains: [0, 1, 2] }),
  });
  t.is(noDem.code, 1);
  t.is(noDem.stderr.split('\n')[0], "fastivc sync: cannot read the DEM's table: the DEM refused: this domain is not privileged (run in dom0)");
});

test('sync: bad arguments are one line and exit 2', async (t) => {
  const dem = () => mock().dem;
  const cases: [string[], string][] = [
    [['sync', '--interval', '2'], "error: option '--interval <ms>' argument '2' is invalid. expected milliseconds, an integer >= 100."],
    [['sync', '--interval', '1.5s'], "error: option '--interval <ms>' argument '1.5s' is invalid. expected milliseconds, an integer >= 100."],
    [['sync', '--dom0-ip', '192.0.2'], "error: option '--dom0-ip <ip>' argument '192.0.2' is invalid. expected an IPv4 address a.b.c.d or an IPv6 address."],
    [['sync', '--dom0-ip', '::ffff:192.0.2.1'], "error: option '--dom0-ip <ip>' argument '::ffff:192.0.2.1' is invalid. ::ffff:192.0.2.1 is an IPv4-mapped IPv6 address: the DEM names it as IPv4, 192.0.2.1."],
    [['sync', '--dom0-ip'], "error: option '--dom0-ip <ip>' argument missing"],
    [['sync', 'extra'], "error: too many arguments for 'sync'. Expected 0 arguments but got 1."],
    [['sync', '--forever'], "error: unknown option '--forever'"],
    [['status', '--yaml'], "error: unknown option '--yaml'"],
    [['status', 'x'], "error: too many arguments for 'status'. Expected 0 arguments but got 1."],
  ];
  for (const [args, line] of cases) {
    const r = await cli(args, { dem });
    t.deepEqual([r.code, r.stdout, r.stderr], [2, '', `${line}\n`], args.join(' '));
  }
});

function loopDeps(dem: DemSource, exec: CommandRunner, lines: string[]): SyncDeps {
  return { dem: () => dem, exec, log: (l) => lines.push(l), warn: (l) => lines.push(`! ${l}`) };
}

test('sync loop: a pass at once and one per xenstore-watch event; a domain that goes is purged', async (t) => {
  const { binding, dem } = mock();
  const state = { ls: VIF_LS, domains: [0, 1, 2] };
  const lines: string[] = [];
  let emit: ((l: string) => void) | undefined;
  let stopped = 0;
  const watch: LineWatcher = (cmd, args, onLine) => {
    t.deepEqual([cmd, ...args], ['xenstore-watch', '/local/domain/0/backend/vif']);
    emit = onLine;
    return { stop: () => void stopped++ };
  };
  const ac = new AbortController();
  const passes: PassResult[] = [];
  let wake: (() => void) | undefined;
  const nextPass = () => new Promise<void>((r) => (wake = r));
  let p = nextPass();
  const done = syncLoop(loopDeps(dem, toolstack(state), lines), {
    dom0Ips: ['192.0.2.1'],
    intervalMs: 60_000, // never polls in this test: the watch drives it
    watch,
    signal: ac.signal,
    onPass: (r) => {
      passes.push(r);
      wake?.();
    },
  });
  await p;
  t.is(binding.table().length, 6);
  // domU2 is destroyed: its vif goes from xenstore, the watch fires.
  state.ls = VIF_LS.split('\n').filter((l) => !l.includes('/vif/2')).join('\n');
  state.domains = [0, 1];
  p = nextPass();
  emit?.('/local/domain/0/backend/vif/2');
  await p;
  t.deepEqual(binding.table(), [
    { addr: '192.0.2.1', domid: 0 },
    { addr: '192.0.2.11', domid: 1 },
  ]);
  t.deepEqual(lines.slice(-4), [
    'del 10.1.0.2 (dom 2 gone)',
    'del 192.0.2.12 (dom 2 gone)',
    'del 192.0.2.22 (dom 2 gone)',
    'del fe80::216:3eff:fe00:12 (dom 2 gone)',
  ]);
  t.is(lines.filter((l) => l.startsWith('skip')).length, 1); // notes once, not every pass
  ac.abort();
  await done;
  t.is(stopped, 1);
  t.is(passes.length, 2);
});

test('sync loop: without xenstore-watch it polls every interval', async (t) => {
  const { binding, dem } = mock();
  const state = { ls: '', domains: [0] };
  const lines: string[] = [];
  const ac = new AbortController();
  let n = 0;
  const watch: LineWatcher = (_c, _a, _l, onEnd) => {
    setImmediate(() => onEnd('xenstore-watch not found'));
    return { stop: () => {} };
  };
  await syncLoop(loopDeps(dem, toolstack(state), lines), {
    dom0Ips: [],
    intervalMs: 100,
    watch,
    signal: ac.signal,
    onPass: () => {
      n += 1;
      if (n === 1) state.ls = VIF_LS; // a domain appears between passes
      if (n === 3) ac.abort();
    },
  });
  t.is(n, 3);
  t.is(lines[0], '! xenstore-watch not found; polling every 100 ms');
  t.true(binding.table().some((e) => e.addr === '192.0.2.11' && e.domid === 1));
});

test('sync without --once runs the loop until its signal aborts', async (t) => {
  const { binding, dem } = mock();
  const ac = new AbortController();
  const watch: LineWatcher = () => {
    setTimeout(() => ac.abort(), 200);
    return { stop: () => {} };
  };
  const r = await cli(['sync', '--dom0-ip', '192.0.2.1'], {
    dem: () => dem,
    exec: toolstack({ ls: VIF_LS, domains: [0, 1, 2] }),
    watch,
    signal: ac.signal,
  });
  t.is(r.code, 0);
  t.regex(r.stdout, /^set 192\.0\.2\.1 -> dom 0$/m);
  t.is(binding.table().length, 6);
});
