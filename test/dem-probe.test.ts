// Host tests for lab/dem-probe. There is no Xen here: these cover the build (against the patched Xen tree's
// public/evtmgr.h), the usage errors, the device errors, and the parsing/encoding of addresses, ports, event lists
// and tunnel geometry (through --dry-run, which prints the request as encoded and makes no hypercall).
//
// The binary needs build/xen/src/xen/include/public/evtmgr.h (./build.sh xen with the DEM patch in the series).
// Until it exists the tests that need the binary pass with a t.log note; FASTIVC_XEN_PUBLIC=<dir> builds against
// another public header directory instead (into a temporary folder, never into build/bench).
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

test('IP:PORT parsing: bad endpoints exit 2', (t) => {
	if (!needProbe(t)) return;
	for (const bad of [
		'', '10.0.0.1', '10.0.0.1:', ':80', '10.0.0.256:1', '10.0.0:1', '10.0.0.1.5:1', '010.0.0.1:1', '10.00.0.1:1',
		'10.0.0.1:65536', '10.0.0.1:-1', '10.0.0.1:+1', '10.0.0.1:0x10', '10.0.0.1:08', ' 10.0.0.1:1', '10.0.0.1:1 ',
		'a.b.c.d:1', '[::1]:80', '::1:80', '10.0.0.1:1:2', '10..0.1:1', '1000.0.0.1:1', '10.0.0.1:99999999999',
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
	for (const bad of ['10.0.0', '10.0.0.1.', '256.0.0.1', '1.2.3.04', '10.0.0.1/24', 'x']) {
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
