// Host tests for lab/agent (lab-agent): real processes on 127.0.0.1.
import test, { type ExecutionContext } from 'ava';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const binDir = path.resolve(root, process.env.FASTIVC_BENCH_DIR ?? 'build/bench');
const agent = path.join(binDir, 'lab-agent');

test.before(() => {
	// An explicit FASTIVC_BENCH_DIR is used as is; otherwise make keeps build/bench current.
	if (process.env.FASTIVC_BENCH_DIR && existsSync(agent)) return;
	const r = spawnSync('make', ['-C', path.join(root, 'lab/agent'), `OUT=${binDir}`], {
		encoding: 'utf8',
		timeout: 180_000,
	});
	if (r.status !== 0) throw new Error(`make -C lab/agent failed:\n${r.stdout}\n${r.stderr}`);
});

interface Result {
	code: number | null;
	signal: NodeJS.Signals | null;
	stdout: string;
	stderr: string;
	ms: number;
}

/** Runs lab-agent to completion, killed (by pid) after limitMs or at teardown. */
function run(t: ExecutionContext, args: string[], limitMs = 30_000): Promise<Result> {
	const start = performance.now();
	const child = spawn(agent, args, { stdio: ['ignore', 'pipe', 'pipe'] });
	t.teardown(() => {
		if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
	});
	const out: Buffer[] = [];
	let stderr = '';
	child.stdout.on('data', (d: Buffer) => out.push(d));
	child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
	return new Promise((resolve, reject) => {
		const timer = setTimeout(() => {
			child.kill('SIGKILL');
			reject(new Error(`lab-agent ${args.join(' ')} still running after ${limitMs} ms`));
		}, limitMs);
		child.on('error', (e) => {
			clearTimeout(timer);
			reject(e);
		});
		child.on('close', (code, signal) => {
			clearTimeout(timer);
			resolve({ code, signal, stdout: Buffer.concat(out).toString('latin1'), stderr, ms: performance.now() - start });
		});
	});
}

/** Starts `lab-agent serve` on a free loopback port (--port 0, reported on stderr). */
function startAgent(t: ExecutionContext): Promise<number> {
	const child = spawn(agent, ['serve', '--bind', '127.0.0.1', '--port', '0'], { stdio: ['ignore', 'ignore', 'pipe'] });
	t.teardown(() => {
		if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
	});
	let stderr = '';
	return new Promise((resolve, reject) => {
		const timer = setTimeout(() => reject(new Error(`agent did not start: ${stderr}`)), 10_000);
		child.on('error', reject);
		child.on('exit', (code) => reject(new Error(`agent exited (${code}): ${stderr}`)));
		child.stderr.setEncoding('utf8').on('data', (d: string) => {
			stderr += d;
			const m = /listening on 127\.0\.0\.1:(\d+)/.exec(stderr);
			if (m) {
				clearTimeout(timer);
				resolve(Number(m[1]));
			}
		});
	});
}

const remote = (port: number, ...rest: string[]) => ['run', '--host', '127.0.0.1', '--port', String(port), ...rest];

async function freePort(): Promise<number> {
	const srv = net.createServer();
	await new Promise<void>((resolve) => srv.listen(0, '127.0.0.1', resolve));
	const addr = srv.address();
	await new Promise<void>((resolve) => srv.close(() => resolve()));
	if (addr === null || typeof addr === 'string') throw new Error('no port');
	return addr.port;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** True if a process whose command line matches `pattern` exists (pgrep -f). */
function running(pattern: string): boolean {
	const r = spawnSync('pgrep', ['-f', pattern], { encoding: 'utf8', timeout: 5000 });
	if (r.status !== 0 && r.status !== 1) throw new Error(`pgrep failed: ${r.stderr}`);
	return r.status === 0;
}

/** Polls until cond() holds or ms elapse; returns the last value. */
async function waitFor(cond: () => boolean, ms: number): Promise<boolean> {
	const deadline = Date.now() + ms;
	for (;;) {
		if (cond()) return true;
		if (Date.now() > deadline) return false;
		await sleep(50);
	}
}

test('run returns the output and the remote exit status', async (t) => {
	const port = await startAgent(t);
	const r = await run(t, remote(port, '--', 'echo hi; exit 3'));
	t.is(r.stdout, 'hi\n');
	t.is(r.code, 3);
});

test('run joins the command words and keeps stderr and output without a newline', async (t) => {
	const port = await startAgent(t);
	const r = await run(t, remote(port, '--', 'printf', 'a;', 'printf', 'b', '>&2'));
	t.is(r.code, 0);
	t.is(r.stdout, 'ab');
});

test('a remote signal is reported as 128+signal', async (t) => {
	const port = await startAgent(t);
	const r = await run(t, remote(port, '--', 'kill -9 $$'));
	t.is(r.code, 137);
});

test('output that looks like a trailer is passed through', async (t) => {
	const port = await startAgent(t);
	const r = await run(t, remote(port, '--', 'printf "x\\n@@EXIT 7\\n"; exit 4'));
	t.is(r.stdout, 'x\n@@EXIT 7\n');
	t.is(r.code, 4);
});

test('output bigger than 1 MiB arrives intact', async (t) => {
	const port = await startAgent(t);
	const r = await run(t, remote(port, '--', "head -c 2000000 /dev/zero | tr '\\0' a"));
	t.is(r.code, 0, r.stderr);
	t.is(r.stdout.length, 2_000_000);
	t.regex(r.stdout, /^a+$/);
});

test('--timeout exits 124 and the remote command is killed', async (t) => {
	const port = await startAgent(t);
	const marker = `30.${process.pid % 1000}${Date.now() % 1000}1`; // unique `sleep` argument
	// Anchored, so that it matches the remote sleep and not our own client's argv.
	const pattern = `^sleep ${marker.replace('.', '\\.')}$`;
	t.false(running(pattern), 'marker already in use');
	const pending = run(t, remote(port, '--timeout', '1', '--', `sleep ${marker}`), 10_000);
	t.true(await waitFor(() => running(pattern), 3000), 'the remote sleep never started');
	const r = await pending;
	t.is(r.code, 124);
	t.true(r.ms < 3000, `took ${r.ms} ms`);
	t.true(await waitFor(() => !running(pattern), 5000), 'the remote sleep is still running');
});

test('no agent listening exits 125 within the connect timeout', async (t) => {
	const port = await freePort();
	const r = await run(t, remote(port, '--connect-timeout', '1', '--', 'true'), 10_000);
	t.is(r.code, 125);
	t.true(r.ms < 3000, `took ${r.ms} ms`);
	t.is(r.stdout, '');
});

test('the agent survives a client that disconnects early', async (t) => {
	const port = await startAgent(t);
	await new Promise<void>((resolve, reject) => {
		const s = net.connect(port, '127.0.0.1', () => {
			s.end('no newline here');
			s.destroy();
			resolve();
		});
		s.on('error', reject);
	});
	const r = await run(t, remote(port, '--', 'echo still here'));
	t.is(r.code, 0);
	t.is(r.stdout, 'still here\n');
});

test('wait succeeds against a live agent', async (t) => {
	const port = await startAgent(t);
	const r = await run(t, ['wait', '--host', '127.0.0.1', '--port', String(port), '--timeout', '10'], 15_000);
	t.is(r.code, 0, r.stderr);
	t.true(r.ms < 5000);
});

test('wait returns 124 when nothing answers', async (t) => {
	const port = await freePort();
	const r = await run(t, ['wait', '--host', '127.0.0.1', '--port', String(port), '--timeout', '1'], 10_000);
	t.is(r.code, 124);
	t.true(r.ms >= 900 && r.ms < 3000, `took ${r.ms} ms`);
});

test('usage errors exit 2', async (t) => {
	for (const args of [['run', '--host', '127.0.0.1'], ['wait', '--host', '127.0.0.1'], ['run', '--bogus', 'x'], ['nonsense']]) {
		const r = await run(t, args, 5000);
		t.is(r.code, 2, args.join(' '));
		t.not(r.stderr, '');
	}
});

test('output reaches the caller while the command still runs (a script can wait for a ready line)', async (t) => {
	const port = await startAgent(t);
	const child = spawn(agent, ['run', '--host', '127.0.0.1', '--port', String(port), '--', 'echo ready >&2; sleep 3; echo done'], {
		stdio: ['ignore', 'pipe', 'ignore'],
	});
	t.teardown(() => {
		if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
	});
	const start = performance.now();
	let out = '';
	const firstAt = await new Promise<number>((resolve, reject) => {
		const timer = setTimeout(() => reject(new Error(`no output after 10 s: ${JSON.stringify(out)}`)), 10_000);
		child.stdout.setEncoding('utf8').on('data', (d: string) => {
			out += d;
			if (out.includes('ready')) {
				clearTimeout(timer);
				resolve(performance.now() - start);
			}
		});
	});
	t.true(firstAt < 2500, `the ready line took ${Math.round(firstAt)} ms, the command takes 3000`);
	await new Promise((resolve) => child.on('close', resolve));
	t.is(out, 'ready\ndone\n');
	t.is(child.exitCode, 0);
});
