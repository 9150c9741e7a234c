// Host tests for lab/dem-probe. There is no Xen here: these cover the build (against the patched Xen tree's
// public/evtmgr.h), the usage errors, the device errors, and the parsing/encoding of addresses, ports, event lists
// and tunnel geometry (through --dry-run, which prints the request as encoded and makes no hypercall).
//
// The binary needs build/xen/src/xen/include/public/evtmgr.h (./build.sh xen with the DEM patch in the series).
// Until it exists the tests that need the binary pass with a t.log note; FASTIVC_XEN_PUBLIC=<dir> builds against
// another public header directory instead (into a temporary folder, never into build/bench).
//
// The last group runs the same program built with model.c, a small reference model of the header's semantics that
// answers instead of Xen (host tests only), to check what the probe encodes and decodes, its query paging, and
// that the selftest passes against a conforming DEM and catches a non-conforming one. The real DEM is exercised in
// the lab guests.
import test, { type ExecutionContext } from 'ava';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const srcDir = path.join(root, 'lab/dem-probe');
const patchedPublic = path.join(root, 'build/xen/src/xen/include/public');
const tmp = mkdtempSync(path.join(os.tmpdir(), 'dem-probe-test-'));
const noDevice = path.join(tmp, 'no-such-device');

let probe: string | undefined;
let model: string | undefined;
let skipNote = '';

test.before(() => {
	const override = process.env.FASTIVC_XEN_PUBLIC;
	let xenPublic: string;
	let out: string;
	if (override) {
		xenPublic = path.resolve(override);
		out = path.join(tmp, 'out');
	} else if (existsSync(path.join(patchedPublic, 'evtmgr.h'))) {
		xenPublic = patchedPublic;
		out = path.resolve(root, process.env.FASTIVC_BENCH_DIR ?? 'build/bench');
	} else {
		skipNote = `not built: ${path.relative(root, patchedPublic)}/evtmgr.h does not exist yet (the DEM patch is not in the Xen tree; set FASTIVC_XEN_PUBLIC to build against another header directory)`;
		return;
	}
	const r = spawnSync('make', ['-C', srcDir, `OUT=${out}`, `XEN_PUBLIC=${xenPublic}`], {
		encoding: 'utf8',
		timeout: 180_000,
	});
	// Once the header is there the build must work: a failure fails every test, it is not a skip.
	if (r.status !== 0) throw new Error(`make -C lab/dem-probe failed:\n${r.stdout}\n${r.stderr}`);
	probe = path.join(out, 'dem-probe');
	// The host-test build with the reference model of the header (model.c) in place of Xen; never in build/bench.
	const modelOut = path.join(tmp, 'model-out');
	const m = spawnSync('make', ['-C', srcDir, `OUT=${modelOut}`, `XEN_PUBLIC=${xenPublic}`, 'model'], {
		encoding: 'utf8',
		timeout: 180_000,
	});
	if (m.status !== 0) throw new Error(`make -C lab/dem-probe model failed:\n${m.stdout}\n${m.stderr}`);
	model = path.join(modelOut, 'dem-probe-model');
});

test.after.always(() => rmSync(tmp, { recursive: true, force: true }));

interface Result {
	code: number | null;
	stdout: string;
	stderr: string;
}

function run(args: string[], env: Record<string, string> = {}): Result {
	if (!probe) throw new Error('no binary');
	const r = spawnSync(probe, args, {
		encoding: 'utf8',
		timeout: 20_000,
		env: { ...process.env, DEM_PROBE_PRIVCMD: noDevice, DEM_PROBE_EVTCHN: noDevice, ...env },
	});
	if (r.error) throw r.error;
	return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** The binary, or undefined after logging why the test has nothing to run. */
function needProbe(t: ExecutionContext): boolean {
	if (probe) return true;
	t.log(skipNote);
	t.pass();
	return false;
}

function json(t: ExecutionContext, r: Result): Record<string, unknown> {
	const lines = r.stdout.split('\n').filter((l) => l.length > 0);
	t.is(lines.length, 1, `expected one JSON line, got: ${r.stdout} / stderr: ${r.stderr}`);
	t.true(r.stdout.endsWith('\n'));
	return JSON.parse(lines[0] ?? 'null') as Record<string, unknown>;
}

function usageError(t: ExecutionContext, args: string[]) {
	const r = run(args);
	t.is(r.code, 2, `${args.join(' ')} -> ${r.stdout} ${r.stderr}`);
	t.is(r.stdout, '', args.join(' '));
	t.is(r.stderr.trim().split('\n').length, 1, r.stderr);
	t.regex(r.stderr, /^dem-probe: /);
}

const raise = (src: string, dst: string, events: string, ...rest: string[]) => [
	'raise', '--src', src, '--dst', dst, '--events', events, ...rest,
];

test('make fails with a clear message when evtmgr.h is missing', (t) => {
	const empty = mkdtempSync(path.join(tmp, 'public-'));
	const out = path.join(tmp, 'out-missing');
	const r = spawnSync('make', ['-C', srcDir, `OUT=${out}`, `XEN_PUBLIC=${empty}`], { encoding: 'utf8', timeout: 60_000 });
	t.not(r.status, 0);
	t.regex(r.stderr, /evtmgr\.h not found/);
	t.regex(r.stderr, /XEN_PUBLIC=/);
	t.false(existsSync(path.join(out, 'dem-probe')));
});

test('the build is a static executable', (t) => {
	if (!needProbe(t)) return;
	const r = spawnSync('readelf', ['-l', probe!], { encoding: 'utf8' });
	if (r.error) {
		t.log('readelf not available');
		t.pass();
		return;
	}
	t.is(r.status, 0);
	t.notRegex(r.stdout, /INTERP/);
});

test('--help prints the usage on stdout', (t) => {
	if (!needProbe(t)) return;
	const r = run(['--help']);
	t.is(r.code, 0);
	for (const cmd of ['info', 'set IP DOMID', 'del IP', 'lookup IP', 'raise', 'fetch', 'release', 'query', 'watch', 'selftest']) {
		t.true(r.stdout.includes(cmd), cmd);
	}
});

test('usage errors exit 2 with one line on stderr and nothing on stdout', (t) => {
	if (!needProbe(t)) return;
	for (const args of [
		[],
		['nonsense'],
		['info', 'extra'],
		['info', '--bogus'],
		['set', '10.0.0.1'],
		['set', '10.0.0.1', '3', '4'],
		['set', '10.0.0.1', '65536'],
		['set', '10.0.0.1', '-1'],
		['set', '10.0.0.1', 'x'],
		['del'],
		['del', '10.0.0.1', 'dom1'],
		['lookup'],
		['lookup', '10.0.0.1', '10.0.0.2'],
		['lookup', 'localhost'],
		['raise', '--src', '10.0.0.1:1', '--dst', '10.0.0.2:2'],
		['raise', '--src', '10.0.0.1:1', '--events', 'create'],
		['raise', '--dst', '10.0.0.1:1', '--events', 'create'],
		[...raise('10.0.0.1:1', '10.0.0.2:2', 'create'), '--src', '10.0.0.1:1'],
		[...raise('10.0.0.1:1', '10.0.0.2:2', 'create'), '--repeat', '0'],
		[...raise('10.0.0.1:1', '10.0.0.2:2', 'create'), '--repeat', 'x'],
		[...raise('10.0.0.1:1', '10.0.0.2:2', 'create'), '--repeat', '1000000001'],
		[...raise('10.0.0.1:1', '10.0.0.2:2', 'create'), '--repeat'],
		['fetch', '--nr', 'x'],
		['fetch', '--nr', '65537'],
		['fetch', '--nr', '-1'],
		['fetch', 'extra'],
		['release', '--src', '10.0.0.1:1'],
		['release', '--src', '10.0.0.1:1', '--dst', '10.0.0.2'],
		['query', 'bogus'],
		['query', 'ip', 'records'],
		['watch'],
		['watch', '--seconds', '0'],
		['watch', '--seconds', '-1'],
		['watch', '--seconds', 'x'],
		['watch', '--seconds', '1', '--fetch', '--fetch'],
		['selftest', '--self', '10.0.0.1', '--peer', '10.0.0.2'],
		['selftest', '--self', '10.0.0.1', '--peer', '10.0.0.1', '--unowned', '10.0.0.3'],
		['selftest', '--self', '10.0.0.1', '--peer', '10.0.0.2', '--unowned', '10.0.0.300'],
		['selftest', '--self', '10.0.0.1', '--peer', '10.0.0.2', '--unowned', '10.0.0.3', '--domid', 'none'],
		['selftest', '--self', '2001:db8::1', '--peer', '10.0.0.2', '--unowned', '10.0.0.3'],
		['selftest', '--self', '10.0.0.1', '--peer', '10.0.0.2', '--unowned', '10.0.0.3', '--spare6', '10.0.0.9'],
		['selftest', '--self', '10.0.0.1', '--peer', '10.0.0.2', '--unowned', '10.0.0.3', '--spare6', '2001:db8::fa'],
		['selftest', '--self', '10.0.0.1', '--peer', '10.0.0.2', '--unowned', '10.0.0.3', '--spare6', 'fe80::1%eth0'],
	]) {
		usageError(t, args);
	}
});

test('info without /dev/xen/privcmd exits 1 with ENOENT and says why', (t) => {
	if (!needProbe(t)) return;
	// DEM_PROBE_PRIVCMD names a path that does not exist; on a host without Xen the default path is tried as well.
	const envs: Record<string, string>[] = [{}];
	if (!existsSync('/dev/xen/privcmd')) envs.push({ DEM_PROBE_PRIVCMD: '' });
	for (const env of envs) {
		const r = run(['info'], env);
		t.is(r.code, 1);
		const j = json(t, r);
		t.is(j.errno, 'ENOENT');
		t.is(j.rc, -2);
		t.is(j.op, 'info');
		t.regex(String(j.error), /privcmd.*(not a Xen guest|xen-privcmd)/);
		t.is(r.stderr.trim().split('\n').length, 1);
		t.regex(r.stderr, /cannot open .*privcmd/);
	}
});

test('every hypercall subcommand reports the missing device the same way', (t) => {
	if (!needProbe(t)) return;
	for (const args of [
		['set', '10.0.0.1', '1'],
		['del', '10.0.0.1'],
		['lookup', '10.0.0.1'],
		raise('10.0.0.1:1', '10.0.0.2:2', 'create', '--tunnel', '4,4096,8'),
		['fetch'],
		['fetch', '--nr', '4'],
		['release', '--src', '10.0.0.1:1', '--dst', '10.0.0.2:2'],
		['query'],
		['watch', '--seconds', '1', '--fetch'],
		['selftest', '--self', '10.0.0.1', '--peer', '10.0.0.2', '--unowned', '10.0.0.3'],
	]) {
		const r = run(args);
		t.is(r.code, 1, args.join(' '));
		const j = json(t, r);
		t.is(j.errno, 'ENOENT', args.join(' '));
		t.is(j.rc, -2);
		t.regex(String(j.error), /privcmd/);
	}
});

test('watch without /dev/xen/evtchn exits 1 with ENOENT', (t) => {
	if (!needProbe(t)) return;
	const r = run(['watch', '--seconds', '1']);
	t.is(r.code, 1);
	const j = json(t, r);
	t.is(j.errno, 'ENOENT');
	t.regex(String(j.error), /evtchn/);
	t.notRegex(r.stderr, /ready/);
});

test('a device that is not privcmd/evtchn: the ioctl errno comes back as JSON', (t) => {
	if (!needProbe(t)) return;
	const a = run(['info'], { DEM_PROBE_PRIVCMD: '/dev/null' });
	t.is(a.code, 1);
	t.like(json(t, a), { op: 'info', rc: -25, errno: 'ENOTTY' });
	const b = run(['watch', '--seconds', '1'], { DEM_PROBE_EVTCHN: '/dev/null' });
	t.is(b.code, 1);
	t.like(json(t, b), { op: 'watch', rc: -25, errno: 'ENOTTY' });
	const c = run(raise('10.0.0.1:1', '10.0.0.2:2', 'create', '--repeat', '3'), { DEM_PROBE_PRIVCMD: '/dev/null' });
	t.is(c.code, 1);
	t.like(json(t, c), { repeat: 3, succeeded: 0, failed: 3, errors: { ENOTTY: 3 }, errno: 'ENOTTY' });
});

test('the ioctls are the Linux UAPI ones (privcmd hypercall, evtchn bind VIRQ)', (t) => {
	if (!needProbe(t)) return;
	const trace = (args: string[], env: Record<string, string>) =>
		spawnSync('strace', ['-e', 'trace=ioctl', '-e', 'raw=ioctl', probe!, ...args], {
			encoding: 'utf8',
			timeout: 20_000,
			env: { ...process.env, ...env },
		});
	const a = trace(['info'], { DEM_PROBE_PRIVCMD: '/dev/null' });
	if (a.error || /PTRACE|Operation not permitted/.test(a.stderr)) {
		t.log(`strace unusable here: ${a.error?.message ?? a.stderr.split('\n')[0]}`);
		t.pass();
		return;
	}
	// _IOC(_IOC_NONE, 'P', 0, sizeof(struct privcmd_hypercall) = 48)
	t.regex(a.stderr, /ioctl\((0x)?[0-9a-f]+, 0x305000, /);
	// _IOC(_IOC_NONE, 'E', 0, sizeof(struct ioctl_evtchn_bind_virq) = 4)
	const b = trace(['watch', '--seconds', '1'], { DEM_PROBE_EVTCHN: '/dev/null' });
	t.regex(b.stderr, /ioctl\((0x)?[0-9a-f]+, 0x44500, /);
});

test('IP:PORT parsing: valid endpoints are encoded and printed back', (t) => {
	if (!needProbe(t)) return;
	for (const [src, dst] of [
		['10.0.0.1:5000', '10.0.0.2:80'],
		['0.0.0.0:0', '255.255.255.255:65535'],
		['192.168.100.200:1', '1.2.3.4:65534'],
	] as const) {
		const r = run(raise(src, dst, 'send_data', '--dry-run'));
		t.is(r.code, 0, r.stderr);
		t.like(json(t, r), { op: 'raise', dry_run: true, src, dst, events: ['send_data'], mask: 16, repeat: 1 });
	}
	const r = run(['release', '--dry-run', '--dst', '10.9.8.7:443', '--src', '10.0.0.1:40000']);
	t.is(r.code, 0, r.stderr);
	t.deepEqual(json(t, r), { op: 'release', dry_run: true, src: '10.0.0.1:40000', dst: '10.9.8.7:443' });
});

test('[IPv6]:PORT parsing: encoded as IPv6 and printed compressed (inet_ntop), in brackets', (t) => {
	if (!needProbe(t)) return;
	for (const [src, dst, wantSrc, wantDst] of [
		['[2001:db8::1]:5000', '[fe80::216:3eff:fe00:12]:80', '[2001:db8::1]:5000', '[fe80::216:3eff:fe00:12]:80'],
		['[2001:DB8:0:0::0001]:1', '[FD00:0000:0000:0000:0000:0000:0000:0002]:65535', '[2001:db8::1]:1', '[fd00::2]:65535'],
		// sent as given, for the DEM to refuse: the all-zero and IPv4-mapped addresses, and two families
		['[::]:0', '[::ffff:10.0.0.2]:2', '[::]:0', '[::ffff:10.0.0.2]:2'],
		['10.0.0.1:1', '[2001:db8::2]:2', '10.0.0.1:1', '[2001:db8::2]:2'],
	] as const) {
		const r = run(raise(src, dst, 'send_data', '--dry-run'));
		t.is(r.code, 0, r.stderr);
		t.like(json(t, r), { op: 'raise', dry_run: true, src: wantSrc, dst: wantDst, mask: 16 });
	}
	const r = run(['release', '--dry-run', '--src', '[1:2:3:4:5:6:7:8]:443', '--dst', '[::1.2.3.4]:80']);
	t.is(r.code, 0, r.stderr);
	t.deepEqual(json(t, r), { op: 'release', dry_run: true, src: '[1:2:3:4:5:6:7:8]:443', dst: '[::1.2.3.4]:80' });
});

test('IP:PORT parsing: bad endpoints exit 2', (t) => {
	if (!needProbe(t)) return;
	for (const bad of [
		'', '10.0.0.1', '10.0.0.1:', ':80', '10.0.0.256:1', '10.0.0:1', '10.0.0.1.5:1', '010.0.0.1:1', '10.00.0.1:1',
		'10.0.0.1:65536', '10.0.0.1:-1', '10.0.0.1:+1', '10.0.0.1:0x10', '10.0.0.1:08', ' 10.0.0.1:1', '10.0.0.1:1 ',
		'a.b.c.d:1', '::1:80', '2001:db8::1:80', '10.0.0.1:1:2', '10..0.1:1', '1000.0.0.1:1', '10.0.0.1:99999999999',
		// IPv6 endpoints: brackets required, a port after them, nothing inet_pton refuses inside
		'[10.0.0.1]:80', '[::1]', '[::1]:', '[::1]80', '[fe80::1%eth0]:80', '[::1]:65536', '[[::1]]:1', '2001:db8::1]:1',
		'[2001:db8::1:1', '[:::1]:1', '[1:2:3:4:5:6:7:8:9]:1', '[::1] :1', '[ ::1]:1', '[]:1', '[::1::2]:1', '[::g]:1',
		'[::ffff:1.2.3.04]:1',
	]) {
		usageError(t, raise(bad, '10.0.0.2:2', 'create', '--dry-run'));
		usageError(t, raise('10.0.0.2:2', bad, 'create', '--dry-run'));
		usageError(t, ['release', '--src', bad, '--dst', '10.0.0.2:2', '--dry-run']);
	}
});

test('IP parsing for set, del and lookup, domid none is null', (t) => {
	if (!needProbe(t)) return;
	const ok = (args: string[], want: Record<string, unknown>) => {
		const r = run([...args, '--dry-run']);
		t.is(r.code, 0, `${args.join(' ')}: ${r.stderr}`);
		t.deepEqual(json(t, r), { dry_run: true, ...want });
	};
	ok(['set', '10.0.0.2', '3'], { op: 'ip_set', ip: '10.0.0.2', domid: 3 });
	ok(['set', '10.0.0.2', '0'], { op: 'ip_set', ip: '10.0.0.2', domid: 0 });
	ok(['set', '10.0.0.2', '65535'], { op: 'ip_set', ip: '10.0.0.2', domid: 65535 });
	ok(['del', '10.0.0.2'], { op: 'ip_del', ip: '10.0.0.2', domid: null });
	ok(['del', '10.0.0.2', 'none'], { op: 'ip_del', ip: '10.0.0.2', domid: null });
	ok(['del', '10.0.0.2', '7'], { op: 'ip_del', ip: '10.0.0.2', domid: 7 });
	ok(['lookup', '172.16.0.1'], { op: 'ip_lookup', ip: '172.16.0.1' });
	// IPv6: any inet_pton form in, inet_ntop's compressed form out; :: and ::ffff:a.b.c.d are sent as given
	ok(['set', '2001:db8::2', '3'], { op: 'ip_set', ip: '2001:db8::2', domid: 3 });
	ok(['set', 'FD00:0:0:0:0:0:0:0001', '4'], { op: 'ip_set', ip: 'fd00::1', domid: 4 });
	ok(['del', '2001:0db8:0000::0002'], { op: 'ip_del', ip: '2001:db8::2', domid: null });
	ok(['lookup', 'fe80::216:3eff:fe00:12'], { op: 'ip_lookup', ip: 'fe80::216:3eff:fe00:12' });
	ok(['lookup', '::ffff:192.0.2.1'], { op: 'ip_lookup', ip: '::ffff:192.0.2.1' });
	ok(['lookup', '::'], { op: 'ip_lookup', ip: '::' });
	for (const bad of [
		'10.0.0', '10.0.0.1.', '256.0.0.1', '1.2.3.04', '10.0.0.1/24', 'x', 'fe80::1%eth0', '[::1]', '1:2:3:4:5:6:7:8:9',
		':::1', '::1::2', '2001:db8::g', '2001:db8::/64', '::ffff:1.2.3.04', ' ::1', '12345::1',
	]) {
		usageError(t, ['lookup', bad, '--dry-run']);
		usageError(t, ['set', bad, '1', '--dry-run']);
	}
});

test('event lists: names, all and raw masks', (t) => {
	if (!needProbe(t)) return;
	const all = ['create', 'send_close', 'reject', 'recv_close', 'send_data', 'recv_get_data'];
	for (const [list, events, mask] of [
		['create', ['create'], 1],
		['send_close', ['send_close'], 2],
		['reject', ['reject'], 4],
		['recv_close', ['recv_close'], 8],
		['send_data', ['send_data'], 16],
		['recv_get_data', ['recv_get_data'], 32],
		['recv_get_data,create', ['create', 'recv_get_data'], 33],
		['create,create', ['create'], 1],
		['send_data,recv_get_data,reject', ['reject', 'send_data', 'recv_get_data'], 52],
		['all', all, 63],
		['create,all', all, 63],
		['0x3f', all, 63],
		['0', [], 0],
		['64', ['0x40'], 64],
		['0x80000011', ['create', 'send_data', '0x80000000'], 0x80000011],
	] as const) {
		const r = run(raise('10.0.0.1:1', '10.0.0.2:2', list, '--dry-run'));
		t.is(r.code, 0, `${list}: ${r.stderr}`);
		t.like(json(t, r), { events: [...events], mask }, list);
	}
	for (const bad of [
		'', 'bogus', 'create,', ',create', 'create,,send_data', 'CREATE', 'create send_data', 'create;send_data', '0x',
		'4294967296', '-1', 'create,1', '1,create', 'all,',
	]) {
		usageError(t, raise('10.0.0.1:1', '10.0.0.2:2', bad, '--dry-run'));
	}
});

test('tunnel geometry: CHANNELS,SIZE,GREF[,GREF...] is encoded as given', (t) => {
	if (!needProbe(t)) return;
	for (const [spec, tunnel] of [
		['4,4096,8', { channels: 4, size: 4096, nr_grefs: 1, grefs: [8], flags: 0 }],
		['16,262144,1,2,3,4,5,6,7,8', { channels: 16, size: 262144, nr_grefs: 8, grefs: [1, 2, 3, 4, 5, 6, 7, 8], flags: 0 }],
		// out-of-range geometry is sent as is, for the DEM to refuse
		['0,1000,0x10', { channels: 0, size: 1000, nr_grefs: 1, grefs: [16], flags: 0 }],
		['17,524288,4294967295', { channels: 17, size: 524288, nr_grefs: 1, grefs: [4294967295], flags: 0 }],
	] as const) {
		const r = run(raise('10.0.0.1:1', '10.0.0.2:2', 'create', '--tunnel', spec, '--repeat', '5', '--dry-run'));
		t.is(r.code, 0, `${spec}: ${r.stderr}`);
		t.like(json(t, r), { events: ['create'], mask: 1, repeat: 5, tunnel }, spec);
	}
	for (const bad of ['', '4', '4,4096', '4,4096,', ',4096,8', '4,,8', 'a,4096,8', '4,4096,8,x', '4,4096,1,2,3,4,5,6,7,8,9', '4,4096,4294967296']) {
		usageError(t, raise('10.0.0.1:1', '10.0.0.2:2', 'create', '--tunnel', bad, '--dry-run'));
	}
});

// ---------------------------------------------------------------- against the reference model

let stateSeq = 0;

/** A model "host": a fresh state file; call(domid, args) runs the model build as that domain. */
function modelHost(extra: Record<string, string> = {}) {
	const state = path.join(tmp, `model-state-${stateSeq++}`);
	const call = (domid: number, args: string[], env: Record<string, string> = {}): Result => {
		const r = spawnSync(model!, args, {
			encoding: 'utf8',
			timeout: 20_000,
			env: { ...process.env, DEM_MODEL_STATE: state, DEM_MODEL_DOMID: String(domid), ...extra, ...env },
		});
		if (r.error) throw r.error;
		return { code: r.status, stdout: r.stdout, stderr: r.stderr };
	};
	return { call };
}

/** dom0 registers 10.0.0.1 -> dom1, 10.0.0.2 -> dom2, 10.0.0.3 -> dom3. */
function threeDomains(t: ExecutionContext, extra: Record<string, string> = {}) {
	const h = modelHost(extra);
	for (const d of [1, 2, 3]) {
		const r = h.call(0, ['set', `10.0.0.${d}`, String(d)]);
		t.is(r.code, 0, r.stderr);
		t.deepEqual(json(t, r), { op: 'ip_set', ip: `10.0.0.${d}`, domid: d });
	}
	return h;
}

interface Check {
	name: string;
	pass: boolean;
	expected: string;
	got: string;
}

function checks(t: ExecutionContext, r: Result): { checks: Check[]; passed: number; failed: number; state_left?: string } {
	const j = json(t, r) as unknown as { checks: Check[]; passed: number; failed: number; state_left?: string };
	t.is(j.passed + j.failed, j.checks.length);
	t.is(j.failed, j.checks.filter((c) => !c.pass).length);
	return j;
}

const selftestArgs = ['selftest', '--self', '10.0.0.1', '--peer', '10.0.0.2', '--unowned', '10.0.0.3'];

test('model: the selftest passes against a conforming DEM, unprivileged and privileged, and leaves no state', (t) => {
	if (!needProbe(t)) return;
	const h = threeDomains(t);
	const before = json(t, h.call(0, ['query']));

	const u = h.call(1, selftestArgs);
	const uj = checks(t, u);
	t.is(u.code, 0, JSON.stringify(uj.checks.filter((c) => !c.pass)));
	t.is(uj.failed, 0);
	t.true(uj.passed >= 60, `only ${uj.passed} checks`);
	t.is(uj.state_left, undefined);
	const names = uj.checks.map((c) => c.name);
	for (const want of [
		'unknown op 99 -> EOPNOTSUPP',
		'info arg (void*)1 -> EFAULT',
		'release arg on a PROT_NONE page -> EFAULT',
		'raise events bit 6 -> EINVAL',
		'raise CREATE nr_grefs 9 -> EINVAL',
		'raise from --unowned (not the caller\'s) -> EACCES',
		'raise to 192.0.2.250 (owned by nobody) -> ENOENT',
		'raise to the caller\'s own --self -> ELOOP',
		'get_events nr max_batch+1 -> E2BIG',
		'release of a record that does not exist -> ENOENT',
		'ip_set without privilege -> EPERM',
		'query records without privilege -> EPERM',
		'lookup 2001:db8::fa (IPv6, nobody\'s) -> DOMID_NONE',
		'lookup ::ffff:--self (IPv4-mapped IPv6) -> EINVAL',
		'raise --self (IPv4) -> 2001:db8::fa (IPv6): two families -> EINVAL',
		'raise from 2001:db8::fa (IPv6, not the caller\'s) -> EACCES',
		'release of an IPv6 connection that has no record -> ENOENT',
	]) {
		t.true(names.includes(want), want);
	}
	t.like(uj.checks.find((c) => c.name === 'raise events 0 -> EINVAL'), { pass: true, expected: 'EINVAL', got: 'EINVAL' });

	// dom0 owns no address: --self is set for the run and removed afterwards
	const p = h.call(0, ['selftest', '--self', '10.0.0.100', '--peer', '10.0.0.2', '--unowned', '10.0.0.3', '--privileged']);
	const pj = checks(t, p);
	t.is(p.code, 0, JSON.stringify(pj.checks.filter((c) => !c.pass)));
	const pnames = pj.checks.map((c) => c.name);
	for (const want of [
		'ip_set --self to this domain for the run -> ok',
		'ip_del --self after the run -> ok',
		'query what 7 -> EINVAL',
		'query nr max_batch+1 -> E2BIG',
		'ip_del --spare naming the previous owner -> ESRCH',
		'ip_del of an absent address -> ENOENT',
		'ip_set to non-existent domid 30000 -> ESRCH',
		'query arg (void*)1 -> EFAULT',
		'no state left behind: no record for the selftest connection',
		'ip_set --spare6 (IPv6) to this domain -> ok',
		'lookup --self -> this domain too (one domain, an IPv4 and an IPv6 address)',
		'query ip is in table order (IPv4, then IPv6, by address)',
		'raise --spare6 (IPv6, ours) -> --peer (IPv4): two families -> EINVAL',
		'ip_del --spare6 naming the previous owner -> ESRCH',
		'ip_set ::ffff:--spare (IPv4-mapped IPv6) -> EINVAL',
		'no state left behind: --spare6 unowned at the end',
	]) {
		t.true(pnames.includes(want), want);
	}
	t.false(pnames.includes('ip_set without privilege -> EPERM'));

	const after = json(t, h.call(0, ['query']));
	t.deepEqual(after.ip, before.ip);
	t.deepEqual(after.records, []);
	t.like(after.counters, { raises: 0, records: 0, pending: 0, ip_entries: 3 });
});

test('model: the selftest catches a DEM that accepts a non-zero pad, and says how to drop the record', (t) => {
	if (!needProbe(t)) return;
	const h = threeDomains(t, { DEM_MODEL_BUG: 'raise-pad' });
	const r = h.call(1, selftestArgs);
	t.is(r.code, 1);
	const j = checks(t, r);
	t.deepEqual(
		j.checks.filter((c) => !c.pass).map((c) => [c.name, c.expected, c.got]),
		[
			['raise pad != 0 -> EINVAL', 'EINVAL', 'ok'],
			['no state left behind: every negative raise failed', '0', '1'],
		],
	);
	t.regex(j.state_left ?? '', /release --src 10\.0\.0\.2:2 --dst 10\.0\.0\.1:1/);
	t.regex(r.stderr, /2 of \d+ checks failed/);
	// the privileged run also finds the record in the table
	const p = checks(t, h.call(0, ['selftest', '--self', '10.0.0.100', '--peer', '10.0.0.2', '--unowned', '10.0.0.3', '--privileged']));
	t.true(p.checks.some((c) => c.name === 'no state left behind: no record for the selftest connection' && !c.pass));
	// the peer can clean up as told
	t.is(h.call(2, ['release', '--src', '10.0.0.2:2', '--dst', '10.0.0.1:1']).code, 0);

	const l = checks(t, threeDomains(t, { DEM_MODEL_BUG: 'lookup-pad' }).call(1, selftestArgs));
	t.deepEqual(
		l.checks.filter((c) => !c.pass).map((c) => c.name),
		['lookup ip_entry.pad != 0 -> EINVAL', 'lookup ip_entry.pad2 != 0 -> EINVAL'],
	);
});

test('model: the selftest catches a DEM without IPv6, one that takes IPv4-mapped addresses, one that mixes families', (t) => {
	if (!needProbe(t)) return;
	const privileged = ['selftest', '--self', '10.0.0.100', '--peer', '10.0.0.2', '--unowned', '10.0.0.3', '--privileged'];
	const failing = (bug: string, args: string[], domid: number) => {
		const h = threeDomains(t, { DEM_MODEL_BUG: bug });
		const r = h.call(domid, args);
		t.is(r.code, 1, bug);
		const j = checks(t, r);
		// whatever the bug, the run leaves the table as it found it
		t.deepEqual(json(t, h.call(0, ['query'])).ip, [1, 2, 3].map((d) => ({ ip: `10.0.0.${d}`, domid: d })), bug);
		return j.checks.filter((c) => !c.pass).map((c) => c.name);
	};
	t.deepEqual(failing('ipv4-only', selftestArgs, 1), [
		'lookup 2001:db8::fa (IPv6, nobody\'s) -> DOMID_NONE',
		'raise from 2001:db8::fa (IPv6, not the caller\'s) -> EACCES',
		'release of an IPv6 connection that has no record -> ENOENT',
	]);
	t.deepEqual(failing('ipv4-only', privileged, 0).slice(-2), [
		'lookup --spare6 before the round trip -> DOMID_NONE',
		'IPv6 round trip on --spare6',
	]);
	t.deepEqual(failing('v4-mapped', selftestArgs, 1), [
		'lookup ::ffff:--self (IPv4-mapped IPv6) -> EINVAL',
		'raise ::ffff:--self -> ::ffff:--peer (IPv4-mapped IPv6) -> EINVAL',
	]);
	t.true(failing('v4-mapped', privileged, 0).includes('ip_set ::ffff:--spare (IPv4-mapped IPv6) -> EINVAL'));
	t.deepEqual(failing('two-families', selftestArgs, 1), [
		'raise conn.src family AF_INET6, conn.dst IPv4 (two families) -> EINVAL',
		'raise --self (IPv4) -> 2001:db8::fa (IPv6): two families -> EINVAL',
		'release --self (IPv4) -> 2001:db8::fa (IPv6): two families -> EINVAL',
	]);
	// with an IPv6 address of its own, the privileged run makes the wrongly accepted raise land at the peer, and says so
	const p = failing('two-families', privileged, 0);
	t.true(p.includes('raise --spare6 (IPv6, ours) -> --peer (IPv4): two families -> EINVAL'));
	t.true(p.includes('no state left behind: every negative raise failed'));
});

test('model: IPv6 set, lookup, raise, fetch, query and release, beside IPv4', (t) => {
	if (!needProbe(t)) return;
	const h = threeDomains(t);
	t.deepEqual(json(t, h.call(0, ['set', '2001:DB8::0001', '1'])), { op: 'ip_set', ip: '2001:db8::1', domid: 1 });
	t.is(h.call(0, ['set', 'fd00::2', '2']).code, 0);
	t.deepEqual(json(t, h.call(2, ['lookup', '2001:db8:0::1'])), { op: 'ip_lookup', ip: '2001:db8::1', domid: 1 });
	t.deepEqual(json(t, h.call(2, ['lookup', '2001:db8::9'])), { op: 'ip_lookup', ip: '2001:db8::9', domid: null });
	t.deepEqual(json(t, h.call(2, ['lookup', '10.0.0.1'])), { op: 'ip_lookup', ip: '10.0.0.1', domid: 1 });

	// the table: IPv4 first, then IPv6
	t.deepEqual(json(t, h.call(0, ['query', 'ip'])).ip, [
		{ ip: '10.0.0.1', domid: 1 },
		{ ip: '10.0.0.2', domid: 2 },
		{ ip: '10.0.0.3', domid: 3 },
		{ ip: '2001:db8::1', domid: 1 },
		{ ip: 'fd00::2', domid: 2 },
	]);

	const r = h.call(1, raise('[2001:db8::1]:40000', '[fd00::2]:5201', 'create,send_data', '--tunnel', '2,4096,9'));
	t.is(r.code, 0, r.stderr);
	t.like(json(t, r), { src: '[2001:db8::1]:40000', dst: '[fd00::2]:5201', succeeded: 1 });
	t.like((json(t, h.call(0, ['query', 'records'])).records as unknown[])[0], {
		src: '[2001:db8::1]:40000', dst: '[fd00::2]:5201', owner: 2, raiser: 1, pending: ['create', 'send_data'],
	});
	t.deepEqual(json(t, h.call(2, ['fetch'])).events, [{
		src: '[fd00::2]:5201', dst: '[2001:db8::1]:40000', events: ['create', 'send_data'], peer: 1,
		tunnel: { channels: 2, size: 4096, nr_grefs: 1, grefs: [9], flags: 0 },
	}]);

	for (const [dom, args] of [
		[1, raise('10.0.0.1:40000', '[fd00::2]:5201', 'send_data')],
		[1, raise('[2001:db8::1]:40000', '10.0.0.2:5201', 'send_data')],
		[0, ['set', '::ffff:10.0.0.9', '1']],
		[0, ['set', '::', '1']],
		[2, ['release', '--src', '10.0.0.2:5201', '--dst', '[2001:db8::1]:40000']],
	] as [number, string[]][]) {
		const e = h.call(dom, args);
		t.is(e.code, 1, args.join(' '));
		t.like(json(t, e), { rc: -22, errno: 'EINVAL' }, args.join(' '));
	}
	t.is(h.call(2, ['release', '--src', '[fd00::2]:5201', '--dst', '[2001:db8::1]:40000']).code, 0);
	t.is(json(t, h.call(0, ['query', 'records'])).records_total, 0);
	t.deepEqual(json(t, h.call(0, ['del', '2001:db8::1', '1'])), { op: 'ip_del', ip: '2001:db8::1', domid: 1 });
	t.deepEqual(json(t, h.call(2, ['lookup', '2001:db8::1'])).domid, null);
});

test('model: set, lookup, raise with a tunnel, fetch, query and release round trip', (t) => {
	if (!needProbe(t)) return;
	const h = threeDomains(t);
	t.deepEqual(json(t, h.call(1, ['lookup', '10.0.0.2'])), { op: 'ip_lookup', ip: '10.0.0.2', domid: 2 });
	t.deepEqual(json(t, h.call(1, ['lookup', '10.9.9.9'])), { op: 'ip_lookup', ip: '10.9.9.9', domid: null });

	const r = h.call(1, raise('10.0.0.1:40000', '10.0.0.2:5201', 'create,send_data', '--tunnel', '4,8192,100,101'));
	t.is(r.code, 0, r.stderr);
	t.like(json(t, r), { succeeded: 1, failed: 0, errors: {}, repeat: 1 });
	t.is(h.call(1, raise('10.0.0.1:40000', '10.0.0.2:5201', 'send_data', '--repeat', '3')).code, 0);
	t.is(h.call(2, raise('10.0.0.2:5201', '10.0.0.1:40000', 'recv_get_data')).code, 0);

	const q = json(t, h.call(0, ['query', 'records']));
	t.is(q.records_total, 2);
	t.like((q.records as { owner: number }[]).find((r) => r.owner === 2), {
		src: '10.0.0.1:40000', dst: '10.0.0.2:5201', owner: 2, raiser: 1, pending: ['create', 'send_data'],
		raised: { create: 1, send_data: 4, recv_get_data: 0 }, fetched: 0, nr_channels: 4, channel_size: 8192,
	});
	t.false('ip' in q);

	const f = json(t, h.call(2, ['fetch']));
	t.deepEqual(f, {
		op: 'get_events', nr: 1, more: 0,
		events: [{
			src: '10.0.0.2:5201', dst: '10.0.0.1:40000', events: ['create', 'send_data'], peer: 1,
			tunnel: { channels: 4, size: 8192, nr_grefs: 2, grefs: [100, 101], flags: 0 },
		}],
	});
	t.deepEqual(json(t, h.call(2, ['fetch'])), { op: 'get_events', nr: 0, more: 0, events: [] });
	t.deepEqual(json(t, h.call(1, ['fetch'])).events, [
		{ src: '10.0.0.1:40000', dst: '10.0.0.2:5201', events: ['recv_get_data'], peer: 2 },
	]);

	t.is(h.call(2, ['release', '--src', '10.0.0.2:5201', '--dst', '10.0.0.1:40000']).code, 0);
	const again = h.call(2, ['release', '--src', '10.0.0.2:5201', '--dst', '10.0.0.1:40000']);
	t.is(again.code, 1);
	t.like(json(t, again), { op: 'release', rc: -2, errno: 'ENOENT' });
	t.is(json(t, h.call(0, ['query', 'records'])).records_total, 1);

	t.deepEqual(json(t, h.call(0, ['del', '10.0.0.3', '3'])), { op: 'ip_del', ip: '10.0.0.3', domid: 3 });
	t.like(json(t, h.call(0, ['del', '10.0.0.3'])), { errno: 'ENOENT', rc: -2 });
});

test('model: fetch --nr reports more, query pages through every entry', (t) => {
	if (!needProbe(t)) return;
	const h = threeDomains(t, { DEM_MODEL_BATCH: '2' });
	for (const d of [4, 5, 6, 7]) t.is(h.call(0, ['set', `10.0.1.${d}`, '1']).code, 0);
	for (const port of [1, 2, 3]) t.is(h.call(1, raise(`10.0.0.1:${port}`, '10.0.0.2:80', 'send_data')).code, 0);

	const q = json(t, h.call(0, ['query']));
	t.is(q.ip_total, 7);
	t.deepEqual((q.ip as { ip: string }[]).map((e) => e.ip), [
		'10.0.0.1', '10.0.0.2', '10.0.0.3', '10.0.1.4', '10.0.1.5', '10.0.1.6', '10.0.1.7',
	]);
	t.is(q.records_total, 3);
	t.is((q.records as unknown[]).length, 3);

	const a = json(t, h.call(2, ['fetch', '--nr', '1']));
	t.like(a, { nr: 1, more: 1 });
	t.is((a.events as { dst: string }[])[0]?.dst, '10.0.0.1:1');
	const b = json(t, h.call(2, ['fetch']));
	t.like(b, { nr: 2, more: 0 });
	t.deepEqual((b.events as { dst: string }[]).map((e) => e.dst), ['10.0.0.1:2', '10.0.0.1:3']);

	for (const [nr, errno] of [['0', 'EINVAL'], ['3', 'E2BIG']] as const) {
		const r = h.call(2, ['fetch', '--nr', nr]);
		t.is(r.code, 1);
		t.like(json(t, r), { op: 'get_events', errno });
	}
});

test('model: DEM errors come back as exit 1 with rc and errno', (t) => {
	if (!needProbe(t)) return;
	const h = threeDomains(t);
	const cases: [number, string[], string][] = [
		[1, ['set', '10.0.0.9', '1'], 'EPERM'],
		[1, ['query'], 'EPERM'],
		[0, ['set', '10.0.0.9', '30000'], 'ESRCH'],
		[0, ['set', '0.0.0.0', '1'], 'EINVAL'],
		[1, raise('10.0.0.3:1', '10.0.0.2:2', 'send_data'), 'EACCES'],
		[1, raise('10.0.0.1:1', '10.0.0.1:2', 'send_data'), 'ELOOP'],
		[1, raise('10.0.0.1:1', '10.0.0.2:2', '64'), 'EINVAL'],
		[1, raise('10.0.0.1:1', '10.0.0.2:2', 'create', '--tunnel', '17,4096,1'), 'EINVAL'],
		[1, raise('10.0.0.1:1', '10.0.0.2:2', 'send_data', '--tunnel', '4,4096,1'), 'EINVAL'],
	];
	for (const [dom, args, errno] of cases) {
		const r = h.call(dom, args);
		t.is(r.code, 1, args.join(' '));
		const j = json(t, r);
		t.is(j.errno, errno, args.join(' '));
		t.is(typeof j.rc, 'number');
		t.is(r.stderr.trim().split('\n').length, 1);
	}
	const rep = h.call(1, raise('10.0.0.1:1', '192.0.2.250:2', 'send_data', '--repeat', '5'));
	t.is(rep.code, 1);
	t.like(json(t, rep), { repeat: 5, succeeded: 0, failed: 5, errors: { ENOENT: 5 }, rc: -2, errno: 'ENOENT' });
	const ok = h.call(1, raise('10.0.0.1:1', '10.0.0.2:2', 'send_data', '--repeat', '50'));
	t.is(ok.code, 0);
	t.like(json(t, ok), { repeat: 50, succeeded: 50, failed: 0, errors: {} });
	t.is(json(t, h.call(0, ['info'])).domid, 0);
	t.like(json(t, h.call(3, ['info'])), { abi_version: 1, virq: 14, domid: 3, hypercall: 43 });
});
