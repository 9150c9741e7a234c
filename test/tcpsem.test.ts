// Host tests for lab/tcpsem (the TCP semantics checker): real processes on 127.0.0.1.
import test, { type ExecutionContext } from 'ava';
import path from 'node:path';
import { binDir, buildWithMake, type Listener, type Result, startListener, startProcess } from './helpers/proc.js';

const tcpsem = path.join(binDir, 'tcpsem');

const CHECKS = [
	'bulk_both_ways',
	'many_small_writes',
	'partial_reads',
	'nonblocking',
	'msg_peek',
	'msg_waitall',
	'poll_in',
	'epoll_lt_et',
	'shutdown_wr_eof',
	'close_unread',
	'so_rcvtimeo',
	'sendfile',
	'readv_writev',
	'rr_ping_pong',
	'msg_oob',
	'sendfile_first',
	'splice_read',
	'threads_two_senders',
	'threads_recv_epoll',
	'threads_close_in_recv',
	'recv_zero',
	'o_async_sigio',
	'peek_waitall',
	'msg_trunc',
	'rcvlowat_poll',
	'outq_info',
	'msg_zerocopy',
	'threads_switch_senders',
	'user_timeout',
	'so_linger',
	'close_unread_switched',
	'disconnect_reconnect',
	'recv_waitall_first',
	'held_sender',
	'ulp_slot',
	'linger_poll_reader',
];

// Same as bench.test.ts: an explicit FASTIVC_BENCH_DIR is used as is, otherwise make keeps build/bench current.
test.before(() => buildWithMake('lab/tcpsem', tcpsem));

function run(t: ExecutionContext, args: string[], limitMs = 90_000): Promise<Result> {
	return startProcess(t, tcpsem, args, limitMs).done;
}

/** Starts `tcpsem server` on a free loopback port (--port 0, reported on stderr). */
function startServer(t: ExecutionContext): Promise<Listener> {
	return startListener(t, tcpsem, ['server', '--bind', '127.0.0.1', '--port', '0', '--timeout', '60'], 'tcpsem server');
}

interface Check {
	name: string;
	pass: boolean;
	detail: string;
	ms: number;
}

interface Report {
	checks: Check[];
	passed: number;
	failed: number;
}

/** The one JSON object on stdout, with its shape checked. */
function report(t: ExecutionContext, r: Result): Report {
	const lines = r.stdout.split('\n').filter((l) => l.length > 0);
	t.is(lines.length, 1, `expected one JSON line, got: ${r.stdout} / stderr: ${r.stderr}`);
	const j = JSON.parse(lines[0] ?? 'null') as Report;
	t.deepEqual(Object.keys(j), ['checks', 'passed', 'failed']);
	t.true(Array.isArray(j.checks));
	for (const c of j.checks) {
		t.deepEqual(Object.keys(c), ['name', 'pass', 'detail', 'ms'], JSON.stringify(c));
		t.is(typeof c.name, 'string');
		t.is(typeof c.pass, 'boolean');
		t.is(typeof c.detail, 'string');
		t.true(c.detail.length > 0, `${c.name}: empty detail`);
		t.true(Number.isInteger(c.ms) && c.ms >= 0, `${c.name}: ms ${c.ms}`);
	}
	t.is(j.passed, j.checks.filter((c) => c.pass).length);
	t.is(j.failed, j.checks.filter((c) => !c.pass).length);
	return j;
}

test('version prints the protocol JSON', async (t) => {
	const r = await run(t, ['version']);
	t.is(r.code, 0);
	t.deepEqual(JSON.parse(r.stdout), { tool: 'tcpsem', version: '1.4.0', protocol: 1 });
});

test('list prints every check name, one a line', async (t) => {
	const r = await run(t, ['list']);
	t.is(r.code, 0, r.stderr);
	t.deepEqual(r.stdout.trimEnd().split('\n'), CHECKS);
});

test('every check passes over loopback TCP', async (t) => {
	const s = await startServer(t);
	const r = await run(t, ['client', '--host', '127.0.0.1', '--port', String(s.port), '--timeout', '30']);
	const j = report(t, r);
	t.deepEqual(
		j.checks.map((c) => c.name),
		CHECKS,
	);
	for (const c of j.checks) t.true(c.pass, `${c.name}: ${c.detail}`);
	t.is(j.passed, CHECKS.length);
	t.is(j.failed, 0);
	t.is(r.code, 0, r.stderr);
	const detail = (name: string) => j.checks.find((c) => c.name === name)?.detail ?? '';
	t.regex(detail('close_unread'), /server: (recv|send) -> (ECONNRESET|EPIPE)/);
	t.regex(detail('msg_oob'), /recv\(MSG_OOB\) returned 1 '!'/);
	t.regex(detail('so_rcvtimeo'), /-1 EAGAIN after \d+ ms/);
	t.regex(detail('threads_two_senders'), /server: received 2097152 and 2097152 bytes of threads 0 and 1 to EOF, each thread's bytes in order and exact/);
	t.regex(detail('threads_switch_senders'), /server: received 2097152 and 262144 bytes of threads 0 and 1 to EOF, each thread's bytes in order and exact/);
	t.regex(detail('peek_waitall'), /MSG_WAITALL\) returned all 10000 after \d+ ms/);
	t.regex(detail('msg_trunc'), /MSG_TRUNC without a buffer discarded them/);
	t.regex(detail('rcvlowat_poll'), /no POLLIN in 500 ms for 500 queued bytes, POLLIN \d+ ms after 600 more/);
	t.regex(detail('outq_info'), /SIOCOUTQ [1-9]\d* with the peer not reading, 0 once it had read all/);
	t.regex(detail('user_timeout'), /SO_ERROR ETIMEDOUT \d+ ms after the first EAGAIN, then POLLIN\|POLLHUP and EOF/);
	t.regex(detail('so_linger'), /SO_LINGER \{1, 10\}: .* close\(\) -> 0: \d+ ms; server: .* exactly 524288 bytes, verified/);
	t.regex(detail('close_unread_switched'), /server: (recv|send) -> (ECONNRESET|EPIPE) .* no EOF before it/);
	t.regex(detail('disconnect_reconnect'), /connect\(AF_UNSPEC\) -> 0, connected again .* 1048576 bytes each way at once, client verified/);
	t.regex(detail('recv_waitall_first'), /MSG_WAITALL\), blocked before the peer wrote, returned all 65536 bytes/);
	t.regex(detail('ulp_slot'), /no ULP after a round trip; (a sockmap took the socket and let it go|no sockmap here \(E[A-Z]+\)), (kTLS attached|no tls module here); 4096 \+ 65536 bytes exact both ways/);
	t.regex(detail('linger_poll_reader'), /262144 \+ 1000 bytes read by a polling reader; close\(\) with SO_LINGER \{1, 5\} returned 0 after \d+ ms/);
	t.regex(detail('held_sender'), /a send of 65536 bytes held \d+ ms in a page fault \(userfaultfd\) returned all of them/);
	t.regex(detail('msg_zerocopy'), /16 send\(MSG_ZEROCOPY\) calls of 65536 bytes, each completed once/);
	t.regex(detail('threads_recv_epoll'), /every round the recv returned \d+\.\.100 bytes and epoll_wait EPOLLIN/);
	// Linux TCP: close() from another thread does not wake a blocked recv; it returns with the data, ~1 s later
	t.regex(detail('threads_close_in_recv'), /left the blocked recv\(MSG_WAITALL\) asleep .* returned the server's 10000 bytes, exact, (\d+) ms after the close; server: EOF/);
	t.regex(detail('recv_zero'), /EAGAIN at once \(MSG_DONTWAIT\), 0 after \d+ ms \(SO_RCVTIMEO 300 ms\), 0 at once with data, nothing taken/);
	t.regex(detail('o_async_sigio'), /1 MiB read between SIGIOs, byte-exact: \d+ waits/);
	const cirMs = Number(/exact, (\d+) ms after the close/.exec(detail('threads_close_in_recv'))?.[1]);
	t.true(cirMs >= 900 && cirMs < 6000, `recv returned ${cirMs} ms after the close`);
});

test('--only runs the matching checks', async (t) => {
	const s = await startServer(t);
	const r = await run(t, ['client', '--host', '127.0.0.1', '--port', String(s.port), '--only', '^msg_(peek|waitall)$']);
	t.is(r.code, 0, r.stderr);
	const j = report(t, r);
	t.deepEqual(
		j.checks.map((c) => c.name),
		['msg_peek', 'msg_waitall'],
	);
	t.is(j.passed, 2);
});

test('a server that never answers fails the checks by timeout, exit 1', async (t) => {
	// The kernel still completes the handshakes, but nothing reads or writes: tcpsem's own server, stopped.
	const s = await startServer(t);
	process.kill(s.pid, 'SIGSTOP');
	t.teardown(() => {
		try {
			process.kill(s.pid, 'SIGCONT');
		} catch {
			// already gone
		}
	});
	const r = await run(t, ['client', '--host', '127.0.0.1', '--port', String(s.port), '--only', '^(rr_ping_pong|msg_waitall)$', '--timeout', '1'], 20_000);
	t.is(r.code, 1);
	const j = report(t, r);
	t.is(j.failed, 2);
	for (const c of j.checks) t.regex(c.detail, /timed out after 1 s/);
	t.true(r.ms < 10_000, `took ${r.ms} ms`);
});

test('usage errors exit 2 with one clear line on stderr', async (t) => {
	for (const [args, re] of [
		[['client', '--port', '1'], /needs --host/],
		[['client', '--host', '127.0.0.1', '--bogus'], /unknown option '--bogus'/],
		[['client', '--host', '127.0.0.1', '--only', 'no_such_check'], /no check name matches/],
		[['client', '--host', '127.0.0.1', '--only', '('], /bad --only regex/],
		[['client', '--host', '127.0.0.1', '--timeout', 'soon'], /bad --timeout/],
		[['server', '--port', '70000'], /bad --port/],
		[['list', 'extra'], /takes no arguments/],
		[['nonsense'], /unknown command 'nonsense'/],
		[[], /missing command/],
	] as const) {
		const r = await run(t, [...args], 10_000);
		t.is(r.code, 2, args.join(' '));
		t.is(r.stdout, '');
		const lines = r.stderr.trim().split('\n');
		t.is(lines.length, 1, r.stderr);
		t.regex(lines[0] ?? '', /^tcpsem: /);
		t.regex(r.stderr, re);
	}
});
