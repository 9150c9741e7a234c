// Host tests for the lab's tunnel geometry helpers (lab/guest/scenarios/tunnel.sh, experiments.sh), run with bash:
// the agent is a stub that prints what it would run in each domU, so the module parameters each helper writes show.
import { spawn } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import test from 'ava';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const scenarios = path.join(root, 'lab', 'guest', 'scenarios');

/** Runs BODY after sourcing tunnel.sh and experiments.sh with stubs; stdout lines, one per agent call. */
function run(body: string): Promise<{ code: number | null; lines: string[]; stderr: string }> {
  const script = [
    'mark() { :; }',
    `cat() { if [ "$1" = /proc/cmdline ]; then echo quiet; else command cat "$@"; fi; }`,
    'agent() { local h=$1; shift; echo "$h: $*"; }',
    'fail() { echo "FAIL: $*"; return 1; }',
    'declare -A DOMU_IP=([domU1]=192.0.2.11 [domU2]=192.0.2.12); D1=192.0.2.11 D2=192.0.2.12; PLAN=()',
    `. '${path.join(scenarios, 'tunnel.sh')}'`,
    `. '${path.join(scenarios, 'experiments.sh')}'`,
    body,
  ].join('\n');
  return new Promise((resolve, reject) => {
    const child = spawn('bash', ['-c', script], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, lines: out.split('\n').filter(Boolean), stderr: err }));
  });
}

/** The parameters an agent line writes: "enable channels channel_size". */
function params(line: string): string {
  const m = /^192\.0\.2\.1[12]: echo (\d+) > \S+\/enable && echo (\d+) > \S+\/channels && echo (\d+) > \S+\/channel_size$/.exec(line);
  return m ? `${m[1]} ${m[2]} ${m[3]}` : `unparsed: ${line}`;
}

test('tun_defaults asks both domUs for demand-sized tunnels (0 x 0: auto)', async (t) => {
  const r = await run('tun_defaults');
  t.is(r.code, 0, r.stderr);
  t.deepEqual(r.lines.map(params), ['1 0 0', '1 0 0']);
  t.deepEqual(r.lines.map((l) => l.split(':')[0]), ['192.0.2.11', '192.0.2.12']);
});

test('with_geometry and with_thesis_geometry: the geometry for FN, the defaults after it, FN status kept', async (t) => {
  const r = await run('with_geometry 16 65536 echo FN-ran; echo "rc=$?"; with_thesis_geometry false; echo "rc=$?"');
  t.is(r.code, 0, r.stderr);
  const out = r.lines.map((l) => (l.startsWith('192.0.2.') ? params(l) : l));
  t.deepEqual(out, ['16 65536', '16 65536', 'FN-ran', '0 0', '0 0', 'rc=0', '4 4096', '4 4096', '0 0', '0 0', 'rc=1'].map((x) =>
    /^\d+ \d+$/.test(x) ? `1 ${x}` : x,
  ));
});

test("experiments.sh's series keep explicit geometries (tcp disables new tunnels)", async (t) => {
  const r = await run(
    'for s in tcp tunnel-2 tunnel-8 tunnel-16x64KiB default; do bench_geometry "$s"; done; bench_geometry tunnel-4 32768',
  );
  t.is(r.code, 0, r.stderr);
  const got = r.lines.map(params);
  t.deepEqual(got, ['0 4 4096', '1 2 4096', '1 8 4096', '1 16 65536', '1 0 0', '1 4 32768'].flatMap((x) => [x, x]));
});
