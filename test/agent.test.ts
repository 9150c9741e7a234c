// Host tests for lab/agent (lab-agent): real processes on 127.0.0.1.
import test, { type ExecutionContext } from 'ava';
import { spawn, spawnSync } from 'node:child_process';
import net from 'node:net';
import path from 'node:path';
import {
	binDir,
	buildWithMake,
	freePort,
	killAtTeardown,
	type Result,
	startListener,
	startProcess,
	waitFor,
} from './helpers/proc.js';

const agent = path.join(binDir, 'lab-agent');

test.before(() => buildWithMake('lab/agent', agent));

/** Runs lab-agent to completion (stdout as latin1), killed (by pid) after limitMs or at teardown. */
function run(t: ExecutionContext, args: string[], limitMs = 30_000): Promise<Result> {
	return startProcess(t, agent, args, limitMs, 'latin1').done;
}

/** Starts `lab-agent serve` on a free loopback port (--port 0, reported on stderr). */
async function startAgent(t: ExecutionContext): Promise<number> {
	return (await startListener(t, agent, ['serve', '--bind', '127.0.0.1', '--port', '0'], 'agent')).port;
}

const remote = (port: number, ...rest: string[]) => ['run', '--host', '127.0.0.1', '--port', String(port), ...rest];

/** True if a process whose command line matches `pattern` exists (pgrep -f). */
function running(pattern: string): boolean {
	const r = spawnSync('pgrep', ['-f', pattern], { encoding: 'utf8', timeout: 5000 });
	if (r.status !== 0 && r.status !== 1) throw new Error(`pgrep failed: ${r.stderr}`);
	return r.status === 0;
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
	const child = killAtTeardown(
		t,
		spawn(agent, ['run', '--host', '127.0.0.1', '--port', String(port), '--', 'echo ready >&2; sleep 3; echo done'], {
			stdio: ['ignore', 'pipe', 'ignore'],
		}),
	);
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
