// Process helpers for the host tests of the lab's guest programs (bench.test.ts, agent.test.ts).
// Not a test file: ava runs only test/**/*.test.ts.
import type { ExecutionContext } from 'ava';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
/** Where the guest programs are built (FASTIVC_BENCH_DIR, else build/bench). */
export const binDir = path.resolve(root, process.env.FASTIVC_BENCH_DIR ?? 'build/bench');

/**
 * For test.before: builds `binary` with `make -C <root>/<makeDir> OUT=<binDir>`.
 * An explicit FASTIVC_BENCH_DIR is used as is; otherwise make keeps build/bench current.
 */
export function buildWithMake(makeDir: string, binary: string): void {
	if (process.env.FASTIVC_BENCH_DIR && existsSync(binary)) return;
	const r = spawnSync('make', ['-C', path.join(root, makeDir), `OUT=${binDir}`], {
		encoding: 'utf8',
		timeout: 180_000,
	});
	if (r.status !== 0) throw new Error(`make -C ${makeDir} failed:\n${r.stdout}\n${r.stderr}`);
}

/** Returns child, which is killed (SIGKILL, by pid) at the test's teardown if still running. */
export function killAtTeardown<C extends ChildProcess>(t: ExecutionContext, child: C): C {
	t.teardown(() => {
		if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
	});
	return child;
}

export interface Result {
	code: number | null;
	signal: NodeJS.Signals | null;
	stdout: string;
	stderr: string;
	ms: number;
}

/**
 * Starts `binary args` with its output collected (stdout decoded as stdoutEncoding, stderr as
 * UTF-8); `done` settles when it ends, or rejects once it has been killed after limitMs.
 */
export function startProcess(
	t: ExecutionContext,
	binary: string,
	args: string[],
	limitMs: number,
	stdoutEncoding: BufferEncoding = 'utf8',
): { pid: number; done: Promise<Result> } {
	const begin = performance.now();
	const child = killAtTeardown(t, spawn(binary, args, { stdio: ['ignore', 'pipe', 'pipe'] }));
	const out: Buffer[] = [];
	let stderr = '';
	child.stdout.on('data', (d: Buffer) => out.push(d));
	child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
	const done = new Promise<Result>((resolve, reject) => {
		const timer = setTimeout(() => {
			child.kill('SIGKILL');
			reject(new Error(`${path.basename(binary)} ${args.join(' ')} still running after ${limitMs} ms`));
		}, limitMs);
		child.on('error', (e) => {
			clearTimeout(timer);
			reject(e);
		});
		child.on('close', (code, signal) => {
			clearTimeout(timer);
			const stdout = Buffer.concat(out).toString(stdoutEncoding);
			resolve({ code, signal, stdout, stderr, ms: performance.now() - begin });
		});
	});
	return { pid: child.pid ?? -1, done };
}

export interface Listener {
	port: number;
	pid: number;
	exited: Promise<number | null>;
}

/**
 * Starts a server (`binary args`, which should bind 127.0.0.1 with --port 0) and resolves
 * once it reports "listening on 127.0.0.1:PORT" on stderr; `what` names it in errors.
 */
export function startListener(t: ExecutionContext, binary: string, args: string[], what: string): Promise<Listener> {
	const child = killAtTeardown(t, spawn(binary, args, { stdio: ['ignore', 'ignore', 'pipe'] }));
	const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
	let stderr = '';
	return new Promise((resolve, reject) => {
		const timer = setTimeout(() => reject(new Error(`${what} did not start: ${stderr}`)), 10_000);
		child.on('error', reject);
		child.on('exit', (code) => reject(new Error(`${what} exited (${code}): ${stderr}`)));
		child.stderr.setEncoding('utf8').on('data', (d: string) => {
			stderr += d;
			const m = /listening on 127\.0\.0\.1:(\d+)/.exec(stderr);
			if (m && child.pid !== undefined) {
				clearTimeout(timer);
				resolve({ port: Number(m[1]), pid: child.pid, exited });
			}
		});
	});
}

/** A loopback TCP port that was free a moment ago. */
export async function freePort(): Promise<number> {
	const srv = net.createServer();
	await new Promise<void>((resolve) => srv.listen(0, '127.0.0.1', resolve));
	const addr = srv.address();
	await new Promise<void>((resolve) => srv.close(() => resolve()));
	if (addr === null || typeof addr === 'string') throw new Error('no port');
	return addr.port;
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Polls until cond() holds or ms elapse; returns the last value. */
export async function waitFor(cond: () => boolean, ms: number): Promise<boolean> {
	const deadline = Date.now() + ms;
	for (;;) {
		if (cond()) return true;
		if (Date.now() > deadline) return false;
		await sleep(50);
	}
}

/** p, or a rejection naming `what` if it has not settled after ms. */
export function within<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
	let timer: NodeJS.Timeout | undefined;
	const limit = new Promise<never>((_, reject) => {
		timer = setTimeout(() => reject(new Error(`${what}: no result after ${ms} ms`)), ms);
	});
	return Promise.race([p, limit]).finally(() => clearTimeout(timer));
}
