// Host tests for lab/bench (ivcbench): real processes on 127.0.0.1.
import test, { type ExecutionContext } from 'ava';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import {
	binDir,
	buildWithMake,
	freePort,
	type Listener,
	type Result,
	sleep,
	startListener,
	startProcess,
	within,
} from './helpers/proc.js';

const bench = path.join(binDir, 'ivcbench');
const MiB = 1024 * 1024;

test.before(() => buildWithMake('lab/bench', bench));

/** Runs ivcbench to completion, killed (by pid) after limitMs or at teardown. */
function run(t: ExecutionContext, args: string[], limitMs = 60_000): Promise<Result> {
	return start(t, args, limitMs).done;
}

function start(t: ExecutionContext, args: string[], limitMs: number): { pid: number; done: Promise<Result> } {
	return startProcess(t, bench, args, limitMs);
}

/** Starts `ivcbench server` on a free loopback port (--port 0, reported on stderr). */
function startServer(t: ExecutionContext, extra: string[] = []): Promise<Listener> {
	return startListener(t, bench, ['server', '--bind', '127.0.0.1', '--port', '0', '--timeout', '30', ...extra], 'server');
}

function json(t: ExecutionContext, r: Result): Record<string, unknown> {
	const lines = r.stdout.split('\n').filter((l) => l.length > 0);
	t.is(lines.length, 1, `expected one JSON line, got: ${r.stdout} / stderr: ${r.stderr}`);
	return JSON.parse(lines[0] ?? 'null') as Record<string, unknown>;
}

function stream(port: number, ...args: string[]): string[] {
	return ['stream', '--host', '127.0.0.1', '--port', String(port), '--connect-timeout', '10', '--timeout', '30', ...args];
}

function assertStreamOk(t: ExecutionContext, r: Result, bytes: number, msgSize: number, direction: string) {
	t.is(r.code, 0, r.stderr);
	const j = json(t, r);
	t.is(j.tool, 'ivcbench');
	t.is(j.mode, 'stream');
	t.is(j.direction, direction);
	t.is(j.msg_size, msgSize);
	t.is(j.bytes, bytes);
	t.is(j.bytes_received, bytes);
	t.true(j.verified);
	t.is(j.mismatch_offset, -1);
	t.regex(String(j.checksum_sent), /^[0-9a-f]{16}$/);
	t.is(j.checksum_received, j.checksum_sent);
	t.true(typeof j.seconds === 'number' && j.seconds > 0);
	t.true(typeof j.throughput_MBps === 'number' && j.throughput_MBps > 0);
	return j;
}

test('version prints the protocol JSON', async (t) => {
	const r = await run(t, ['version']);
	t.is(r.code, 0);
	t.deepEqual(json(t, r), { tool: 'ivcbench', version: '1.2.0', protocol: 1 });
});

for (const msgSize of [1024, 64 * 1024, MiB]) {
	test(`stream send 8 MiB, msg size ${msgSize}`, async (t) => {
		const s = await startServer(t);
		const r = await run(t, stream(s.port, '--bytes', String(8 * MiB), '--msg-size', String(msgSize)));
		assertStreamOk(t, r, 8 * MiB, msgSize, 'send');
	});
}

test('stream send 64 KiB with msg size 1', async (t) => {
	const s = await startServer(t);
	const r = await run(t, stream(s.port, '--bytes', '65536', '--msg-size', '1'));
	assertStreamOk(t, r, 65536, 1, 'send');
});

test('stream recv 4 MiB', async (t) => {
	const s = await startServer(t);
	const r = await run(t, stream(s.port, '--bytes', String(4 * MiB), '--direction', 'recv'));
	assertStreamOk(t, r, 4 * MiB, 65536, 'recv');
});

for (const direction of ['send', 'recv']) {
	test(`stream --corrupt-at is detected (${direction})`, async (t) => {
		const s = await startServer(t);
		const r = await run(t, stream(s.port, '--bytes', String(MiB), '--direction', direction, '--corrupt-at', '123457'));
		t.is(r.code, 1, r.stderr);
		const j = json(t, r);
		t.is(j.direction, direction);
		t.is(j.verified, false);
		t.is(j.mismatch_offset, 123457);
		t.is(j.bytes_received, MiB);
	});
}

test('the checksum depends on the seed, not on the message size', async (t) => {
	const s = await startServer(t);
	const a = json(t, await run(t, stream(s.port, '--bytes', String(MiB), '--seed', '1')));
	const b = json(t, await run(t, stream(s.port, '--bytes', String(MiB), '--seed', '2')));
	const c = json(t, await run(t, stream(s.port, '--bytes', String(MiB), '--seed', '1', '--msg-size', '4093')));
	t.true(a.verified && b.verified && c.verified);
	t.not(a.checksum_sent, b.checksum_sent);
	t.is(a.checksum_sent, c.checksum_sent);
	t.is(a.checksum_received, c.checksum_received);
});

for (const msgSize of [1, 4096]) {
	test(`rr --count 2000, msg size ${msgSize}`, async (t) => {
		const s = await startServer(t);
		const r = await run(t, [
			'rr', '--host', '127.0.0.1', '--port', String(s.port), '--connect-timeout', '10', '--timeout', '30',
			'--msg-size', String(msgSize), '--count', '2000',
		]);
		t.is(r.code, 0, r.stderr);
		const j = json(t, r);
		t.is(j.mode, 'rr');
		t.is(j.msg_size, msgSize);
		t.is(j.count, 2000);
		t.true(j.verified);
		const n = (k: string) => {
			const v = j[k];
			if (typeof v !== 'number') throw new Error(`${k} is not a number: ${String(v)}`);
			return v;
		};
		t.true(n('rr_per_s') > 0);
		t.true(n('seconds') > 0);
		t.true(n('latency_us_min') > 0);
		t.true(n('latency_us_min') <= n('latency_us_p50'));
		t.true(n('latency_us_p50') <= n('latency_us_p90'));
		t.true(n('latency_us_p90') <= n('latency_us_p99'));
		t.true(n('latency_us_p99') <= n('latency_us_max'));
		t.true(n('latency_us_mean') >= n('latency_us_min') && n('latency_us_mean') <= n('latency_us_max'));
	});
}

test('rr --seconds stops at the deadline', async (t) => {
	const s = await startServer(t);
	const r = await run(t, ['rr', '--host', '127.0.0.1', '--port', String(s.port), '--seconds', '0.5', '--msg-size', '64']);
	t.is(r.code, 0, r.stderr);
	const j = json(t, r);
	t.true(typeof j.count === 'number' && j.count > 0);
	t.true(typeof j.seconds === 'number' && j.seconds >= 0.5 && j.seconds < 5);
});

function pipeline(port: number, ...args: string[]): string[] {
	const timeout = args.includes('--timeout') ? [] : ['--timeout', '30'];
	return ['pipeline', '--host', '127.0.0.1', '--port', String(port), '--connect-timeout', '10', ...timeout, ...args];
}

for (const msgSize of [64, 4096]) {
	test(`pipeline --count 256, msg size ${msgSize}: every request written before any answer is read`, async (t) => {
		const s = await startServer(t, ['--verbose']);
		const r = await run(t, pipeline(s.port, '--msg-size', String(msgSize), '--count', '256'));
		t.is(r.code, 0, r.stderr);
		const j = json(t, r);
		t.like(j, {
			tool: 'ivcbench', mode: 'pipeline', msg_size: msgSize, count: 256, warmup: 10,
			bytes_sent: 266 * msgSize, bytes_received: 266 * msgSize, server_bytes_received: 266 * msgSize,
			answers_verified: true, requests_verified: true, mismatch_offset: -1, server_mismatch_offset: -1, verified: true,
		});
		const secs = typeof j.seconds === 'number' ? j.seconds : 0;
		t.true(secs > 0 && secs < 30);
		t.true(typeof j.send_seconds === 'number' && j.send_seconds >= 0 && j.send_seconds <= secs);
		t.true(Math.abs((j.pipeline_per_s as number) - 256 / secs) <= (256 / secs) * 1e-3 + 0.1, `pipeline_per_s ${String(j.pipeline_per_s)}`);
	});
}

test('pipeline --warmup 0 with a msg size above the pattern window', async (t) => {
	const s = await startServer(t);
	const r = await run(t, pipeline(s.port, '--msg-size', String(300 * 1024 + 3), '--count', '3', '--warmup', '0', '--seed', '7'));
	t.is(r.code, 0, r.stderr);
	t.like(json(t, r), { mode: 'pipeline', count: 3, warmup: 0, verified: true });
});

test('pipeline that no path can buffer ends with exit 3 at the send timeout, naming the request', async (t) => {
	// 1024 x 64 KiB requests with nothing read: more than loopback TCP buffers, so the client's send blocks for good
	const s = await startServer(t);
	const r = await run(t, pipeline(s.port, '--msg-size', '65536', '--count', '1024', '--timeout', '2'), 30_000);
	t.is(r.code, 3, r.stderr);
	const j = json(t, r);
	t.is(j.mode, 'pipeline');
	// a blocked send times out, or (if the window still trickles) the burst's own deadline ends it
	t.regex(
		String(j.error),
		/^(send request \d+ of 1024 \(all requests before any answer; none read yet\): timed out after 2 s|the burst did not finish within 2 s: \d+ of 1024 requests written)/,
	);
	t.true(r.ms < 15_000, `took ${r.ms} ms`);
});

test('memcpy: one copy per byte into a ring, verified, with its throughput', async (t) => {
	const r = await run(t, ['memcpy', '--bytes', String(64 * MiB), '--msg-size', '64K']);
	t.is(r.code, 0, r.stderr);
	const j = json(t, r);
	t.like(j, { tool: 'ivcbench', mode: 'memcpy', msg_size: 65536, ring_size: MiB, bytes: 64 * MiB, verified: true, mismatch_offset: -1 });
	t.true(num(j, 'seconds') > 0);
	const tp = (64 * MiB) / num(j, 'seconds') / 1e6;
	t.true(Math.abs(num(j, 'throughput_MBps') - tp) <= tp * 1e-3 + 1e-3, `throughput_MBps ${num(j, 'throughput_MBps')} vs ${tp}`);
});

test('memcpy with writes larger than the ring and a ring that does not divide the stream', async (t) => {
	for (const [bytes, msg, ring] of [
		[1_000_003, 100_000, 4096],
		[12_345, 7, 1_000_000],
		[5 * MiB + 1, 65536, 77_777],
	] as const) {
		const r = await run(t, ['memcpy', '--bytes', String(bytes), '--msg-size', String(msg), '--ring-size', String(ring), '--seed', '0x99']);
		t.is(r.code, 0, r.stderr);
		t.like(json(t, r), { mode: 'memcpy', bytes, msg_size: msg, ring_size: ring, verified: true });
	}
});

function block(port: number, ...args: string[]): string[] {
	return ['block', '--host', '127.0.0.1', '--port', String(port), '--connect-timeout', '10', '--timeout', '30', ...args];
}

/** A number field of j (fails the test otherwise). */
function num(j: Record<string, unknown>, k: string): number {
	const v = j[k];
	if (typeof v !== 'number') throw new Error(`${k} is not a number: ${String(v)}`);
	return v;
}

function assertBlockOk(t: ExecutionContext, r: Result, bytes: number, msgSize: number, count?: number) {
	t.is(r.code, 0, r.stderr);
	const j = json(t, r);
	t.is(j.tool, 'ivcbench');
	t.is(j.mode, 'block');
	t.is(j.bytes, bytes);
	t.is(j.msg_size, msgSize);
	if (count !== undefined) t.is(j.count, count);
	t.true(j.verified);
	t.is(j.mismatch_block, -1);
	t.is(j.mismatch_offset, -1);
	t.regex(String(j.checksum_sent), /^[0-9a-f]{16}$/);
	t.is(j.checksum_received, j.checksum_sent);
	t.true(num(j, 'seconds') > 0);
	t.true(num(j, 'block_us_min') > 0);
	t.true(num(j, 'block_us_min') <= num(j, 'block_us_p50'));
	t.true(num(j, 'block_us_p50') <= num(j, 'block_us_p90'));
	t.true(num(j, 'block_us_p90') <= num(j, 'block_us_p99'));
	t.true(num(j, 'block_us_p99') <= num(j, 'block_us_max'));
	t.true(num(j, 'block_us_mean') >= num(j, 'block_us_min') && num(j, 'block_us_mean') <= num(j, 'block_us_max'));
	// throughput_MBps: the median block (bytes per microsecond); the mean one: bytes * count / sum of times.
	const tp = bytes / num(j, 'block_us_p50');
	t.true(Math.abs(num(j, 'throughput_MBps') - tp) <= tp * 1e-3 + 1e-6, `throughput_MBps ${num(j, 'throughput_MBps')} vs ${tp}`);
	const tm = bytes / num(j, 'block_us_mean');
	t.true(Math.abs(num(j, 'throughput_mean_MBps') - tm) <= tm * 1e-3 + 1e-6, `throughput_mean_MBps ${num(j, 'throughput_mean_MBps')} vs ${tm}`);
	// The timed wall time covers every block.
	t.true(num(j, 'seconds') * 1e6 >= num(j, 'block_us_mean') * num(j, 'count') * 0.999);
	return j;
}

for (const [bytes, msgSize] of [
	[1, 1],
	[100, 100],
	[4096, 4096],
	[64 * 1024, 64 * 1024],
	[MiB, 64 * 1024],
	[16 * MiB, 64 * 1024],
] as const) {
	test(`block --bytes ${bytes} --count 20 (default msg size ${msgSize})`, async (t) => {
		const s = await startServer(t);
		assertBlockOk(t, await run(t, block(s.port, '--bytes', String(bytes), '--count', '20')), bytes, msgSize, 20);
	});
}

test('block with a msg size that does not divide the block, and a non-default seed', async (t) => {
	const s = await startServer(t);
	assertBlockOk(t, await run(t, block(s.port, '--bytes', String(MiB + 7), '--msg-size', '4093', '--count', '5')), MiB + 7, 4093, 5);
	assertBlockOk(t, await run(t, block(s.port, '--bytes', '100000', '--msg-size', '3M', '--count', '3', '--seed', '0x1234')), 100000, 3 * MiB, 3);
});

test('block --seconds stops at the deadline', async (t) => {
	const s = await startServer(t);
	const j = assertBlockOk(t, await run(t, block(s.port, '--bytes', '4096', '--seconds', '0.5', '--warmup', '0')), 4096, 4096);
	t.true(num(j, 'count') > 1);
	t.true(num(j, 'seconds') >= 0.5 && num(j, 'seconds') < 5);
});

test('server --once --verbose serves one block and reports it', async (t) => {
	const port = await freePort();
	const server = start(t, ['server', '--bind', '127.0.0.1', '--port', String(port), '--once', '--verbose', '--timeout', '30'], 30_000);
	const r = await run(t, block(port, '--bytes', '1000', '--count', '1', '--warmup', '0'));
	assertBlockOk(t, r, 1000, 1000, 1);
	const sr = await server.done;
	t.is(sr.code, 0, sr.stderr);
	t.like(json(t, sr), { mode: 'block', role: 'server', bytes: 1000, msg_size: 1000, bytes_received: 1000, verified: true, status: 0 });
});

test('server --serial serves connections one after the other in one process, and outlives a bad one', async (t) => {
	const s = await startServer(t, ['--serial']);
	assertBlockOk(t, await run(t, block(s.port, '--bytes', '4096', '--count', '30')), 4096, 4096, 30);
	const bad = await run(t, block(s.port, '--bytes', '65536', '--count', '2', '--corrupt-at', '77'));
	t.is(bad.code, 1, bad.stderr);
	t.like(json(t, bad), { verified: false, mismatch_offset: 77 });
	assertBlockOk(t, await run(t, block(s.port, '--bytes', String(MiB), '--count', '3')), MiB, 64 * 1024, 3);
	// the same process served them all, and forked none
	t.is(readFileSync(`/proc/${s.pid}/task/${s.pid}/children`, 'utf8').trim(), '');
	const exited = await Promise.race([s.exited.then(() => true), sleep(200).then(() => false)]);
	t.false(exited);
});

test('block --corrupt-at is detected and stops the run', async (t) => {
	const s = await startServer(t);
	const r = await run(t, block(s.port, '--bytes', String(MiB), '--count', '5', '--corrupt-at', '123457'));
	t.is(r.code, 1, r.stderr);
	const j = json(t, r);
	t.is(j.mode, 'block');
	t.is(j.verified, false);
	t.is(j.mismatch_block, 0);
	t.is(j.mismatch_offset, 123457);
	t.is(j.count, 0); // the first (warm-up) block failed
});

test('connecting to a closed port exits 3 with an error JSON', async (t) => {
	const port = await freePort();
	const r = await run(t, ['stream', '--host', '127.0.0.1', '--port', String(port), '--bytes', '1000', '--connect-timeout', '1'], 10_000);
	t.is(r.code, 3);
	t.true(r.ms < 3000, `took ${r.ms} ms`);
	const j = json(t, r);
	t.is(j.tool, 'ivcbench');
	t.is(j.mode, 'stream');
	t.regex(String(j.error), /refused/i);
});

test('usage errors exit 2 with one line on stderr', async (t) => {
	for (const args of [
		['stream', '--host', '127.0.0.1', '--bytes', '10', '--bogus'],
		['stream', '--host', '127.0.0.1'],
		['rr', '--host', '127.0.0.1', '--count', '5', '--seconds', '1'],
		['block', '--host', '127.0.0.1', '--count', '5'],
		['block', '--host', '127.0.0.1', '--bytes', '0', '--count', '5'],
		['block', '--host', '127.0.0.1', '--bytes', '10'],
		['block', '--host', '127.0.0.1', '--bytes', '10', '--count', '100001'],
		['block', '--host', '127.0.0.1', '--bytes', '10', '--count', '1', '--direction', 'recv'],
		['stream', '--host', '127.0.0.1', '--bytes', '10', '--msg-size', '0'],
		['pipeline', '--host', '127.0.0.1'],
		['pipeline', '--host', '127.0.0.1', '--count', '5', '--seconds', '1'],
		['pipeline', '--count', '5'],
		['memcpy'],
		['memcpy', '--bytes', '10', '--ring-size', '0'],
		['memcpy', '--bytes', '10', '--ring-size', '2G'],
		['memcpy', '--bytes', '10', '--host', '127.0.0.1'],
		['nonsense'],
	]) {
		const r = await run(t, args, 10_000);
		t.is(r.code, 2, args.join(' '));
		t.is(r.stdout, '');
		t.is(r.stderr.trim().split('\n').length, 1, r.stderr);
	}
});

test('stream --read-delay usage errors exit 2 with one line on stderr', async (t) => {
	for (const delay of ['-1', '-0', 'abc', '7ms', '1.5', '', '0x10', '600001', '1K', '99999999999999999999']) {
		const args = ['stream', '--host', '127.0.0.1', '--bytes', '10', '--read-delay', delay];
		const r = await run(t, args, 10_000);
		t.is(r.code, 2, args.join(' '));
		t.is(r.stdout, '');
		t.is(r.stderr.trim().split('\n').length, 1, r.stderr);
		t.regex(r.stderr, /--read-delay/);
	}
	// only stream takes it
	const r = await run(t, ['rr', '--host', '127.0.0.1', '--count', '5', '--read-delay', '10'], 10_000);
	t.is(r.code, 2);
	t.is(r.stdout, '');
	t.is(r.stderr.trim().split('\n').length, 1, r.stderr);
});

for (const direction of ['recv', 'send']) {
	const who = direction === 'recv' ? 'the client' : 'the server';
	test(`stream --read-delay 700 --direction ${direction}: ${who} reads 512 KiB late, byte-exact, no timeout`, async (t) => {
		// Both sides' --timeout (0.5 s) is below the delay: the receiver sleeps with nothing
		// waiting on its socket, and the sender's timeouts are lengthened by the delay.
		const port = await freePort();
		const server = start(t, ['server', '--bind', '127.0.0.1', '--port', String(port), '--once', '--verbose', '--timeout', '0.5'], 30_000);
		const bytes = 512 * 1024;
		const r = await run(t, [
			'stream', '--host', '127.0.0.1', '--port', String(port), '--connect-timeout', '10', '--timeout', '0.5',
			'--bytes', String(bytes), '--direction', direction, '--read-delay', '700',
		], 30_000);
		const j = assertStreamOk(t, r, bytes, 65536, direction);
		t.is(j.read_delay_ms, 700);
		t.true(r.ms >= 650, `took ${r.ms} ms`);
		t.true(num(j, 'seconds') >= 0.65 && num(j, 'seconds') < 10, `seconds ${String(j.seconds)}`);
		const sr = await server.done;
		t.is(sr.code, 0, sr.stderr);
		t.like(json(t, sr), {
			mode: 'stream', role: 'server', direction, bytes, read_delay_ms: 700,
			bytes_received: bytes, checksum_received: j.checksum_sent, mismatch_offset: -1, verified: true, status: 0,
		});
	});
}

test('stream --read-delay-at: the client reads the first OFFSET bytes, then waits, then the rest', async (t) => {
	for (const bad of [
		['--read-delay-at', '10'], // no --read-delay
		['--read-delay', '100', '--read-delay-at', '10'], // not --direction recv
		['--read-delay', '100', '--direction', 'recv', '--read-delay-at', '100000'], // not below --bytes
		['--read-delay', '100', '--direction', 'recv', '--read-delay-at', 'x'],
	]) {
		const r = await run(t, ['stream', '--host', '127.0.0.1', '--bytes', '100000', ...bad], 10_000);
		t.is(r.code, 2, bad.join(' '));
		t.is(r.stderr.trim().split('\n').length, 1, r.stderr);
		t.regex(r.stderr, /--read-delay/);
	}
	const port = await freePort();
	const server = start(t, ['server', '--bind', '127.0.0.1', '--port', String(port), '--once', '--timeout', '5'], 30_000);
	const bytes = 2 * 1024 * 1024;
	const r = await run(t, [
		'stream', '--host', '127.0.0.1', '--port', String(port), '--connect-timeout', '10', '--timeout', '5',
		'--bytes', String(bytes), '--direction', 'recv', '--read-delay', '700', '--read-delay-at', '1048576',
	], 30_000);
	const j = assertStreamOk(t, r, bytes, 65536, 'recv');
	t.is(j.read_delay_ms, 700);
	t.is(j.read_delay_at, 1048576);
	t.true(r.ms >= 650, `took ${r.ms} ms`);
	t.is((await server.done).code, 0);
});

test('stream --read-delay 0 is the default: no read_delay_ms in the JSON', async (t) => {
	const s = await startServer(t);
	const j = assertStreamOk(t, await run(t, stream(s.port, '--bytes', '100000', '--read-delay', '0')), 100000, 65536, 'send');
	t.false('read_delay_ms' in j);
});

/** Bytes moved by a process so far, from /proc/<pid>/io (rchar + wchar). */
function ioBytes(pid: number): number {
	try {
		const txt = readFileSync(`/proc/${pid}/io`, 'utf8');
		const get = (k: string) => Number(new RegExp(`^${k}: (\\d+)`, 'm').exec(txt)?.[1] ?? 0);
		return get('rchar') + get('wchar');
	} catch {
		return 0;
	}
}

for (const direction of ['send', 'recv']) {
	test(`server killed mid-stream gives exit 3, not a hang (${direction})`, async (t) => {
		const s = await startServer(t, ['--once']);
		const client = start(t, stream(s.port, '--bytes', String(1024 * 1024 * MiB), '--direction', direction), 20_000);
		// Wait until the stream is really flowing (bounded), then kill the server.
		// (The receiver uses read(), which /proc/<pid>/io counts; send() is not.)
		const deadline = Date.now() + 10_000;
		let moved = 0;
		while (Date.now() < deadline && (moved = ioBytes(s.pid) + ioBytes(client.pid)) < 20 * MiB) {
			await sleep(20);
		}
		process.kill(s.pid, 'SIGKILL');
		const r = await client.done;
		t.true(moved >= 20 * MiB, `stream never started (${moved} bytes)`);
		t.is(r.code, 3, r.stderr);
		const j = json(t, r);
		t.is(j.mode, 'stream');
		t.is(typeof j.error, 'string');
	});
}

test('server --once exits with the connection status', async (t) => {
	const s = await startServer(t, ['--once']);
	const r = await run(t, stream(s.port, '--bytes', '100000', '--corrupt-at', '5'));
	t.is(r.code, 1);
	t.is(await within(s.exited, 10_000, 'server --once exit'), 1);
});
