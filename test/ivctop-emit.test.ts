/** `ivctop --emit`: raw snapshots as JSON lines on stdout every interval, until stopped; SIGTERM ends it with 0. */
import { spawn } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import test from 'ava';
import { openDem } from '../native/lib/index.js';
import { createMockDem } from '../native/lib/mock.js';
import { parseRecording } from '../tui/src/data/replay.js';
import { run, type IvctopDeps } from '../tui/src/ivctop/program.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const REPLAY = path.join(root, 'test', 'fixtures', 'ivctop', 'replay.jsonl');

/** Runs ivctop with fake sources; stops --emit after `lines` lines. */
async function emitLines(args: string[], lines: number, over: Partial<IvctopDeps> = {}) {
  const stop = new AbortController();
  let stdout = '';
  let stderr = '';
  const slept: number[] = [];
  const code = await run(['node', 'ivctop', ...args], {
    dem: () => openDem({ binding: createMockDem() }),
    out: (s) => {
      stdout += s;
      if (stdout.split('\n').length > lines) stop.abort();
    },
    err: (s) => (stderr += s),
    exec: async () => ({ code: 0, stdout: '', stderr: '' }),
    readFile: async (f) => {
      if (f.endsWith('/stats')) return 'format 1\ndomid 0\nversion 0.1.0\nsockets 0\n';
      if (f.endsWith('/sockets')) return '';
      throw Object.assign(new Error('x'), { code: 'ENOENT' });
    },
    sleep: async (ms) => void slept.push(ms),
    stop: stop.signal,
    ...over,
  });
  return { code, stdout, stderr, slept };
}

test('--emit on the live source: one raw snapshot per line, valid JSON, read back by the replay parser', async (t) => {
  // a clock on which each look at it is 30 ms later: a sample that took time, without depending on this machine's load
  let clock = 1_000_000;
  const r = await emitLines(['--emit', '--interval', '200'], 2, { now: () => (clock += 30) });
  t.is(r.code, 0, r.stderr);
  t.is(r.stderr, '');
  const lines = r.stdout.trimEnd().split('\n');
  t.is(lines.length, 2);
  for (const l of lines) t.notThrows(() => JSON.parse(l) as unknown);
  const snaps = parseRecording(r.stdout);
  t.is(snaps.length, 2);
  t.like(snaps[0]!.dem, { counters: { raises: 0 } });
  t.deepEqual(snaps[0]!.domains.map((d) => [d.domid, d.source]), [[0, 'proc']]);
  // Paced on the interval: the first wait is one interval minus the time the sample took (30 ms on this clock).
  t.is(r.slept[0], 170, String(r.slept));
});

test('--emit with --replay gives the recorded snapshots; --emit cannot go with --once', async (t) => {
  const r = await emitLines(['--emit', '--replay', REPLAY, '--step'], 3);
  t.is(r.code, 0);
  t.deepEqual(parseRecording(r.stdout).map((s) => s.time), [1700000000000, 1700000001000, 1700000002000]);
  const bad = await emitLines(['--emit', '--once'], 1);
  t.deepEqual([bad.code, bad.stdout, bad.stderr], [2, '', 'error: --emit and --once cannot be used together\n']);
});

test('the ivctop binary: --emit streams lines until SIGTERM, then exits 0 with nothing on stderr', async (t) => {
  const child = spawn(
    process.execPath,
    ['--import', 'tsx', path.join(root, 'tui/src/ivctop/cli.ts'), '--emit', '--interval', '100', '--replay', REPLAY],
    { cwd: root, stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let stdout = '';
  let stderr = '';
  let signalled = false;
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  child.stdout.on('data', (d: Buffer) => {
    stdout += d.toString();
    if (!signalled && stdout.split('\n').length > 3) {
      signalled = true;
      child.kill('SIGTERM');
    }
  });
  const code = await new Promise<number | null>((resolve) => child.on('close', (c) => resolve(c)));
  t.is(code, 0, stderr);
  t.is(stderr, '');
  const snaps = parseRecording(stdout);
  t.true(snaps.length >= 3);
  t.is(snaps[0]!.time, 1700000000000);
});
