/**
 * `fastivc bench run --remote`: the options, the command bench.sh is started with, and whole runs of the CLI: one
 * against a small script speaking the marker protocol (what the TS side does with any bench.sh), and one of the real
 * lab/guest/remote/bench.sh + experiments.sh against two fake domUs (folders on this machine, a fake ivcbench that
 * counts its "tunnels" in the fake module statistics), where a point that falls back to TCP must fail.
 */
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { chmod, mkdir, mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { release, tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import test, { type ExecutionContext } from 'ava';
import { selectExperiments } from '../../tui/src/bench/experiments.js';
import {
  parseAddrs,
  parseDomU,
  parseRemote,
  remoteCommand,
  remoteFlagsProblem,
  remoteSelection,
  selfCommand,
} from '../../tui/src/bench/remote.js';
import { sourceHardware, versionsWithoutHardware } from '../../tui/src/bench/results.js';
import { appRoot } from '../../tui/src/pkg.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const cli = path.join(root, 'tui', 'src', 'cli.ts');

interface CliResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

function runCli(args: string[], env: NodeJS.ProcessEnv = {}, onStderr?: (s: string, pid: number) => void): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', cli, ...args], {
      cwd: root,
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, ...env },
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => {
      stderr += d.toString();
      if (child.pid !== undefined) onStderr?.(stderr, child.pid);
    });
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

async function tempDir(t: ExecutionContext): Promise<string> {
  const dir = await mkdtemp(path.join(tmpdir(), 'fastivc-remote-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

test('--remote takes two different [user@]host, never an ssh option or shell text', (t) => {
  t.deepEqual(parseRemote('root@10.0.0.11,root@10.0.0.12'), ['root@10.0.0.11', 'root@10.0.0.12']);
  t.deepEqual(parseRemote(' domu-a.example.org , bench@domu-b '), ['domu-a.example.org', 'bench@domu-b']);
  t.deepEqual(parseDomU('root@10.0.0.11'), { user: 'root', host: '10.0.0.11' });
  t.deepEqual(parseDomU('domu1'), { host: 'domu1' });
  for (const bad of ['root@a', 'a,a', 'root@a,a', 'a,b,c', 'a,', '-oProxyCommand=x,b', 'a;reboot,b', 'a b,c', 'ro ot@a,b', '@a,b', 'a,$(x)']) {
    t.throws(() => parseRemote(bad), undefined, bad);
  }
  t.deepEqual(parseAddrs('10.0.0.11,10.0.0.12'), ['10.0.0.11', '10.0.0.12']);
  for (const bad of ['10.0.0.11', '10.0.0.11,10.0.0.11', '10.0.0.11,domu', '0.0.0.0,10.0.0.1', '10.0.0.256,10.0.0.1']) {
    t.throws(() => parseAddrs(bad), undefined, bad);
  }
});

test('the remote options go together: --via/--ssh-key/--addr need --remote, the agent takes no user or key', (t) => {
  t.is(remoteFlagsProblem({ via: 'ssh' }, false), undefined);
  t.regex(remoteFlagsProblem({ via: 'agent' }, true) ?? '', /need --remote/);
  t.regex(remoteFlagsProblem({ via: 'ssh', sshKey: 'k' }, false) ?? '', /need --remote/);
  t.regex(remoteFlagsProblem({ via: 'ssh', addr: ['10.0.0.1', '10.0.0.2'] }, false) ?? '', /need --remote/);
  t.is(remoteFlagsProblem({ via: 'ssh', remote: ['root@a', 'root@b'], sshKey: 'k' }, false), undefined);
  t.is(remoteFlagsProblem({ via: 'agent', remote: ['a', 'b'] }, true), undefined);
  t.regex(remoteFlagsProblem({ via: 'agent', remote: ['a', 'root@b'] }, true) ?? '', /not user@host \(root@b\)/);
  t.regex(remoteFlagsProblem({ via: 'agent', remote: ['a', 'b'], sshKey: 'k' }, true) ?? '', /--ssh-key is for --via ssh/);
});

test('a remote run does the lab experiments but fig11 (refused when named); ring only when named', (t) => {
  const all = remoteSelection(selectExperiments([]), []);
  t.deepEqual(all.remote.map((e) => e.id), ['fig10', 'fig12', 'rtt', 'geom', 'geomrr']);
  t.deepEqual(all.host, []);
  t.is(all.skipped.length, 2);
  t.regex(all.skipped[0] ?? '', /^fig11 \(the lab only/);
  t.regex(all.skipped[1] ?? '', /^ring \(runs on this host/);
  t.deepEqual(remoteSelection(selectExperiments(['all']), ['all']).remote.length, 5);
  const named = remoteSelection(selectExperiments(['ring', 'rtt']), ['ring', 'rtt']);
  t.deepEqual([named.remote.map((e) => e.id), named.host.map((e) => e.id), named.skipped], [['rtt'], ['ring'], []]);
  const e = t.throws(() => remoteSelection(selectExperiments(['fig12', 'fig11']), ['fig12', 'fig11']));
  t.regex(e?.message ?? '', /fig11 cannot run with --remote: .*virtual disk.*xl block-attach/);
});

test('bench.sh is started with bash from the app root, its settings in the environment', (t) => {
  const cmd = remoteCommand(
    {
      domus: ['root@10.0.0.11', 'root@domu2'],
      via: 'ssh',
      sshKey: 'keys/id',
      addrs: ['10.0.0.11', '10.0.0.12'],
      experiments: ['fig12', 'rtt'],
      repeat: 2,
      quick: true,
    },
    { appRoot: '/usr/lib/fastivc/app', fastivc: ['/usr/lib/fastivc/node', '/usr/lib/fastivc/app/build/ts/tui/src/cli.js'] },
  );
  t.is(cmd.command, 'bash');
  t.deepEqual(cmd.args, ['/usr/lib/fastivc/app/lab/guest/remote/bench.sh']);
  t.deepEqual(cmd.env, {
    FASTIVC_BENCH_EXPERIMENTS: 'fig12,rtt',
    FASTIVC_BENCH_REPEAT: '2',
    FASTIVC_BENCH_QUICK: '1',
    FASTIVC_BENCH_DOMUS: 'root@10.0.0.11 root@domu2',
    FASTIVC_BENCH_VIA: 'ssh',
    FASTIVC_BENCH_SSH_KEY: path.resolve('keys/id'),
    FASTIVC_BENCH_ADDRS: '10.0.0.11 10.0.0.12',
    FASTIVC_BENCH_IVCBENCH: '/usr/lib/fastivc/app/build/bench/ivcbench',
    FASTIVC_BENCH_LAB_AGENT: '/usr/lib/fastivc/app/build/bench/lab-agent',
    FASTIVC_BENCH_FASTIVC: '/usr/lib/fastivc/node\n/usr/lib/fastivc/app/build/ts/tui/src/cli.js',
  });
  const agent = remoteCommand(
    { domus: ['a', 'b'], via: 'agent', experiments: ['fig10'], repeat: 3, quick: false },
    { appRoot: '/app', fastivc: ['fastivc'], script: '/t/fake.sh', ivcbench: '/t/ivcbench' },
  );
  t.deepEqual(agent.args, ['/t/fake.sh']);
  t.like(agent.env, {
    FASTIVC_BENCH_QUICK: '0',
    FASTIVC_BENCH_SSH_KEY: '',
    FASTIVC_BENCH_ADDRS: '',
    FASTIVC_BENCH_VIA: 'agent',
    FASTIVC_BENCH_IVCBENCH: '/t/ivcbench',
  });
  // fastivc runs again as it runs now: node, its flags (tsx's loader), the script
  t.deepEqual(selfCommand(['node', '/x/cli.js', 'bench'], ['--import', 'tsx']), [process.execPath, '--import', 'tsx', '/x/cli.js']);
  t.deepEqual(selfCommand(['node'], []), ['fastivc']);
});

test('the app root is the folder of package.json above the code, wherever the current directory is', (t) => {
  t.is(appRoot(), root);
  t.is(appRoot(path.join(root, 'build', 'ts', 'tui', 'src', 'bench')), root);
  t.true(existsSync(path.join(appRoot(), 'lab', 'guest', 'remote', 'bench.sh')));
  t.throws(() => appRoot('/'), { message: /no fastivc package.json above \// });
});

test('results.json names the hardware from the versions marker, and the run', (t) => {
  const v = { hardware: { run: 'remote', cpu_model: 'Xeon', nr_cpus: 8 }, xen: '4.17.5' };
  t.deepEqual(sourceHardware(v, 'remote'), { run: 'remote', cpu_model: 'Xeon', nr_cpus: 8 });
  t.deepEqual(sourceHardware({ xen: '4.17.5' }, 'lab'), { run: 'lab' });
  t.deepEqual(versionsWithoutHardware(v), { xen: '4.17.5' });
});

test('bad remote command lines: usage errors before anything runs', async (t) => {
  const one = await runCli(['bench', 'run', 'fig12', '--remote', 'root@a']);
  t.is(one.code, 2);
  t.regex(one.stderr, /expected two domUs/);
  const via = await runCli(['bench', 'run', 'fig12', '--via', 'agent']);
  t.is(via.code, 1);
  t.regex(via.stderr, /--via, --ssh-key and --addr need --remote/);
  const fig11 = await runCli(['bench', 'run', 'fig11', '--remote', 'a,b']);
  t.is(fig11.code, 1);
  t.regex(fig11.stderr, /fig11 cannot run with --remote/);
  const key = await runCli(['bench', 'run', 'fig12', '--remote', 'a,b', '--ssh-key', '/nonexistent/key']);
  t.is(key.code, 1);
  t.regex(key.stderr, /cannot read the ssh key \/nonexistent\/key/);
  const help = await runCli(['bench', 'run', '--help']);
  t.is(help.code, 0);
  t.regex(help.stdout, /--remote <domU1,domU2>/);
  t.regex(help.stdout, /--via <how>.*\(choices: "ssh", "agent", default: "ssh"\)/s);
  t.regex(help.stdout, /fastivc bench run fig12 rtt --remote root@10\.0\.0\.11,root@10\.0\.0\.12/);
});

/** A fig12 point's marker lines, as bench.sh prints them through run_scenario. */
function point(series: string, x: number, mbps: number | undefined, reason?: string): string {
  const xn = x === 0 ? '0B' : `${x / 1024}KiB`;
  const name = `bench.fig12.${series}.${xn}.r1`;
  const metrics = { experiment: 'fig12', series, x, rep: 1, ...(mbps !== undefined ? { throughput_MBps: mbps, tunnels_created: series === 'tcp' ? 0 : 1 } : {}) };
  const result = { name, pass: reason === undefined, metrics, ...(reason !== undefined ? { reason } : {}) };
  return [
    `@@FASTIVC phase scenario-start ${name}`,
    `@@FASTIVC log-begin ${name}`,
    `path: ${series}`,
    `@@FASTIVC log-end ${name}`,
    `@@FASTIVC result ${JSON.stringify(result)}`,
  ].join('\n');
}

const HARDWARE = {
  run: 'remote',
  cpu_model: 'Intel(R) Xeon(R) Gold 6338 CPU @ 2.00GHz',
  xen_version: '4.17.5',
  nr_cpus: 64,
  cores_per_socket: 32,
  threads_per_core: 1,
  cpu_mhz: 1995.3,
  total_memory_MiB: 261758,
  virt_caps: 'pv hvm hap shadow',
  xen_caps: 'xen-3.0-x86_64',
  dom0_kernel: '6.1.0-28-amd64',
  dom0_vcpus: 4,
  dom0_memory_MiB: 4096,
  domUs: [
    { name: 'domU1', addr: '10.0.0.11', kernel: '6.1.0-28-amd64', vcpus: 2, memory_MiB: 2048 },
    { name: 'domU2', addr: '10.0.0.12', kernel: '6.1.0-28-amd64', vcpus: 2, memory_MiB: 2048 },
  ],
};

test('a remote run end to end against a script that speaks the markers: progress, files, hardware, exit 1 for a failed point', async (t) => {
  const dir = await tempDir(t);
  const script = path.join(dir, 'fake-bench.sh');
  const key = path.join(dir, 'key');
  await writeFile(key, 'not a key\n');
  const lines = [
    'echo "noise before the markers"',
    `env | grep '^FASTIVC_BENCH_' | sort > '${dir}/env'`,
    'echo "@@FASTIVC phase remote root@10.0.0.11 root@10.0.0.12 via=ssh"',
    'echo "@@FASTIVC plan remote-setup bench.fig12.tcp.0B.r1 bench.fig12.tunnel-4.4KiB.r1 bench.fig12.tunnel-4.64KiB.r1"',
    'echo "@@FASTIVC phase scenario-start remote-setup"',
    `echo '@@FASTIVC result {"name":"remote-setup","pass":true,"metrics":{"domU1":"10.0.0.11","domU2":"10.0.0.12"}}'`,
    `echo '@@FASTIVC versions ${JSON.stringify({ hardware: HARDWARE, xen: '4.17.5', ivcbench: '1.2.0' })}'`,
    'echo "ssh: some warning" >&2',
    `cat <<'EOF'\n${point('tcp', 0, 52.5)}\n${point('tunnel-4', 4096, 21.25)}\n${point('tunnel-4', 65536, undefined, 'only 0 tunnels for 1 connection(s): fell back to TCP')}\nEOF`,
    'echo "@@FASTIVC done"',
  ];
  await writeFile(script, `${lines.join('\n')}\n`);
  const out = path.join(dir, 'out');
  const r = await runCli(
    ['bench', 'run', 'fig12', '--quick', '--repeat', '1', '--remote', 'root@10.0.0.11,root@10.0.0.12', '--ssh-key', key, '--out', out],
    { FASTIVC_BENCH_REMOTE_SCRIPT: script },
  );
  t.is(r.code, 1, r.stderr);
  t.regex(r.stderr, /bench: on this host, bash .*fake-bench\.sh against root@10\.0\.0\.11 and root@10\.0\.0\.12 \(ssh\)/);
  t.regex(r.stderr, /plan: 3 point\(s\) after 1 setup step\(s\)/);
  t.regex(r.stderr, /PASS remote-setup/);
  t.regex(r.stderr, /2\/3 fig12 tunnel-4 4 KiB r1 {2}21\.25 MB\/s/);
  t.regex(r.stderr, /3\/3 fig12 tunnel-4 64 KiB r1 {2}FAILED: only 0 tunnels/);
  t.regex(r.stderr, /remote report: .*remote-report\.json \(3 point\(s\), 1 failed\)/);
  t.regex(r.stderr, /bench: 2 passed, 1 failed/);
  // what bench.sh was given
  const env = await readFile(path.join(dir, 'env'), 'utf8');
  t.regex(env, /^FASTIVC_BENCH_EXPERIMENTS=fig12$/m);
  t.regex(env, /^FASTIVC_BENCH_REPEAT=1$/m);
  t.regex(env, /^FASTIVC_BENCH_QUICK=1$/m);
  t.regex(env, /^FASTIVC_BENCH_DOMUS=root@10\.0\.0\.11 root@10\.0\.0\.12$/m);
  t.regex(env, /^FASTIVC_BENCH_VIA=ssh$/m);
  t.true(env.includes(`FASTIVC_BENCH_SSH_KEY=${key}\n`));
  t.true(env.includes(`FASTIVC_BENCH_IVCBENCH=${path.join(root, 'build', 'bench', 'ivcbench')}\n`));
  // the files
  const results = JSON.parse(await readFile(path.join(out, 'fig12', 'results.json'), 'utf8')) as {
    source: { run: string; remote_report: string; domus: string[]; via: string; hardware: Record<string, unknown>; versions: Record<string, unknown> };
    samples: unknown[];
    failed: { name: string; reason: string }[];
  };
  t.is(results.source.run, 'remote');
  t.deepEqual(results.source.hardware, HARDWARE);
  t.deepEqual(results.source.domus, ['root@10.0.0.11', 'root@10.0.0.12']);
  t.is(results.source.via, 'ssh');
  t.is(results.source.versions.xen, '4.17.5');
  t.false('hardware' in results.source.versions);
  t.is(results.source.remote_report, path.join(out, 'remote-report.json'));
  t.is(results.samples.length, 2);
  t.deepEqual(results.failed.map((f) => f.name), ['bench.fig12.tunnel-4.64KiB.r1']);
  const samples = await readFile(path.join(out, 'fig12', 'samples.csv'), 'utf8');
  t.is(samples.trim().split('\n').length, 3);
  t.regex(samples, /^fig12,tunnel-4,4096,1,21\.25,1$/m);
  t.regex(await readFile(path.join(out, 'fig12', 'summary.csv'), 'utf8'), /fig12,tcp,0,throughput_MBps,1,52\.5,/);
  t.regex(await readFile(path.join(out, 'fig12', 'fig12.svg'), 'utf8'), /1 point\(s\) failed/);
  const report = JSON.parse(await readFile(path.join(out, 'remote-report.json'), 'utf8')) as {
    pass: boolean;
    scenarios: { name: string; log: string }[];
  };
  t.false(report.pass);
  t.deepEqual(report.scenarios.map((s) => s.name), ['remote-setup', 'bench.fig12.tcp.0B.r1', 'bench.fig12.tunnel-4.4KiB.r1', 'bench.fig12.tunnel-4.64KiB.r1']);
  t.is(report.scenarios[1]?.log, 'logs/bench.fig12.tcp.0B.r1.log');
  t.is(await readFile(path.join(out, 'logs', 'bench.fig12.tcp.0B.r1.log'), 'utf8'), 'path: tcp\n');
  t.regex(await readFile(path.join(out, 'logs', 'remote-stderr.log'), 'utf8'), /ssh: some warning/);
  t.regex(await readFile(path.join(out, 'logs', 'remote.log'), 'utf8'), /^noise before the markers$/m);
});

test('a remote run whose bench.sh dies before done, or whose setup fails, fails with the reason', async (t) => {
  const dir = await tempDir(t);
  const dies = path.join(dir, 'dies.sh');
  await writeFile(
    dies,
    'echo "@@FASTIVC plan remote-setup bench.fig12.tcp.0B.r1"\necho "@@FASTIVC phase scenario-start remote-setup"\necho "boom: cannot go on" >&2\nexit 3\n',
  );
  const a = await runCli(['bench', 'run', 'fig12', '--remote', 'a,b', '--out', path.join(dir, 'a')], { FASTIVC_BENCH_REMOTE_SCRIPT: dies });
  t.is(a.code, 1);
  t.regex(a.stderr, /FAIL remote-run: bench\.sh exited with code 3 before it reported done .*boom: cannot go on/);
  // the point without a result, the setup step that never ended, the run itself
  t.regex(a.stderr, /bench: 0 passed, 3 failed/);
  const ra = JSON.parse(await readFile(path.join(dir, 'a', 'remote-report.json'), 'utf8')) as { scenarios: { name: string; reason?: string }[] };
  t.regex(ra.scenarios.find((s) => s.name === 'bench.fig12.tcp.0B.r1')?.reason ?? '', /^no result: bench\.sh exited with code 3/);
  const fa = JSON.parse(await readFile(path.join(dir, 'a', 'fig12', 'results.json'), 'utf8')) as { failed: unknown[] };
  t.is(fa.failed.length, 1);

  const setup = path.join(dir, 'setup.sh');
  await writeFile(
    setup,
    [
      'echo "@@FASTIVC plan remote-setup bench.fig12.tcp.0B.r1"',
      'echo "@@FASTIVC phase scenario-start remote-setup"',
      `echo '@@FASTIVC result {"name":"remote-setup","pass":false,"metrics":{},"reason":"fastivc.ko is not loaded in root@b"}'`,
      'echo "@@FASTIVC phase remote-failed remote-setup: fastivc.ko is not loaded in root@b"',
      'echo "@@FASTIVC done"',
      'exit 1',
    ].join('\n'),
  );
  const b = await runCli(['bench', 'run', 'fig12', '--remote', 'a,b', '--out', path.join(dir, 'b')], { FASTIVC_BENCH_REMOTE_SCRIPT: setup });
  t.is(b.code, 1);
  t.regex(b.stderr, /remote: remote-setup failed: fastivc\.ko is not loaded in root@b/);
  t.regex(b.stderr, /remote: remote-run failed: remote-setup: fastivc\.ko is not loaded/);
  t.regex(b.stderr, /bench: 0 passed, 3 failed/);
});

test('stopping a remote run stops bench.sh and everything it started (its process group)', async (t) => {
  const dir = await tempDir(t);
  const script = path.join(dir, 'hang.sh');
  // bench.sh's shape: a child that runs long (ssh's place), a trap that cleans up on TERM
  await writeFile(
    script,
    [
      `trap 'echo cleaned > "${dir}/cleaned"; exit 143' TERM`,
      'sleep 300 & echo $! > "' + dir + '/child.pid"',
      'echo "@@FASTIVC plan remote-setup bench.fig12.tcp.0B.r1"',
      'echo "@@FASTIVC phase scenario-start remote-setup"',
      'wait',
    ].join('\n'),
  );
  let sent = false;
  const r = await runCli(['bench', 'run', 'fig12', '--remote', 'a,b', '--out', path.join(dir, 'out')], { FASTIVC_BENCH_REMOTE_SCRIPT: script }, (err, pid) => {
    if (!sent && err.includes('> remote-setup')) {
      sent = true;
      process.kill(pid, 'SIGTERM'); // the CLI we spawned
    }
  });
  t.true(sent);
  t.is(r.code, 1);
  t.regex(r.stderr, /SIGTERM received, stopping/);
  t.is((await readFile(path.join(dir, 'cleaned'), 'utf8')).trim(), 'cleaned');
  const child = Number((await readFile(path.join(dir, 'child.pid'), 'utf8')).trim());
  let alive = true;
  for (let i = 0; i < 50 && alive; i++) {
    try {
      process.kill(child, 0);
      await new Promise((res) => setTimeout(res, 100));
    } catch {
      alive = false;
    }
  }
  t.false(alive, 'the script\'s child (pid we wrote down) is still running');
  const report = JSON.parse(await readFile(path.join(dir, 'out', 'remote-report.json'), 'utf8')) as { scenarios: { name: string; reason?: string }[] };
  t.regex(report.scenarios.find((s) => s.name === 'remote-run')?.reason ?? '', /^interrupted \(SIGTERM\)/);
});

/**
 * Fake domUs for the real bench.sh: <dir>/<host>/{proc/fastivc/stats, sys/module/fastivc/parameters/*} and a fake
 * ivcbench that, like a module with enable set, counts one tunnel and its bytes in its domU's statistics for each
 * stream, except at the channel size in <host>/fallback-size (a fallback to TCP that the path check must catch).
 */
const FAKE_IVCBENCH = `#!/bin/sh
r=\${FAKE_ROOT:?fake ivcbench outside a fake domU}
mode=$1; shift
bytes=0
while [ $# -gt 0 ]; do case $1 in --bytes) bytes=$2; shift ;; esac; shift; done
p=$r/sys/module/fastivc/parameters
case $mode in
  version) echo '{"tool":"ivcbench","version":"9.9.9-fake","protocol":1}' ;;
  server) exit 0 ;;
  rr) echo '{"tool":"ivcbench","mode":"rr","verified":true,"count":3,"rr_per_s":1000}' ;;
  stream)
    size=$(cat $p/channel_size); on=$(cat $p/enable)
    if { [ "$on" = 1 ] || [ "$on" = Y ]; } && [ "$size" != "$(cat $r/fallback-size 2>/dev/null)" ]; then
      awk -v b="$bytes" '$1 == "tunnels_created" { $2 += 1 } $1 == "bytes_tx" { $2 += b } { print }' $r/proc/fastivc/stats > $r/stats.new
      mv $r/stats.new $r/proc/fastivc/stats
      tp=$(( size / 1024 + 100 ))
    else tp=50; fi
    echo "{\\"tool\\":\\"ivcbench\\",\\"mode\\":\\"stream\\",\\"verified\\":true,\\"bytes_received\\":$bytes,\\"throughput_MBps\\":$tp,\\"seconds\\":0.1}" ;;
  *) echo "fake ivcbench: no mode $mode" >&2; exit 2 ;;
esac
`;

async function fakeDomU(dir: string, host: string, fallbackSize?: number): Promise<string> {
  const d = path.join(dir, 'domus', host);
  await mkdir(path.join(d, 'proc', 'fastivc'), { recursive: true });
  await mkdir(path.join(d, 'sys', 'module', 'fastivc', 'parameters'), { recursive: true });
  await mkdir(path.join(d, 'tmp'), { recursive: true });
  await writeFile(path.join(d, 'proc', 'fastivc', 'stats'), 'version 0.3.0-fake\ndomid 7\ntunnels_created 5\nbytes_tx 100\nbytes_rx 0\nevents_raised 0\n');
  for (const [k, v] of [['enable', 'Y'], ['channels', '0'], ['channel_size', '0'], ['auto_bytes', '1048576']] as const) {
    await writeFile(path.join(d, 'sys', 'module', 'fastivc', 'parameters', k), `${v}\n`);
  }
  if (fallbackSize !== undefined) await writeFile(path.join(d, 'fallback-size'), `${fallbackSize}\n`);
  return d;
}

async function fakeHost(t: ExecutionContext, map: { addr: string; domid: number }[]) {
  const dir = await tempDir(t);
  const d1 = await fakeDomU(dir, 'domu1', 65536);
  const d2 = await fakeDomU(dir, 'domu2');
  const ivcbench = path.join(dir, 'ivcbench');
  await writeFile(ivcbench, FAKE_IVCBENCH);
  await chmod(ivcbench, 0o755);
  const state = path.join(dir, 'dem.json');
  await writeFile(state, JSON.stringify({ ip: map }));
  const env = {
    FASTIVC_BENCH_FAKE_DOMUS: path.join(dir, 'domus'),
    FASTIVC_BENCH_IVCBENCH: ivcbench,
    FASTIVC_DEM_MOCK: '1',
    FASTIVC_DEM_MOCK_STATE: state,
    AGENT_TIMEOUT: '30',
  };
  return { dir, d1, d2, env };
}

test('the real bench.sh against two fake domUs: the sweep runs, the path check catches a fallback, the domUs are left as found', async (t) => {
  const { dir, d1, d2, env } = await fakeHost(t, [
    { addr: '10.0.0.11', domid: 7 },
    { addr: '10.0.0.12', domid: 8 },
  ]);
  const out = path.join(dir, 'out');
  const r = await runCli(
    ['bench', 'run', 'fig12', '--quick', '--repeat', '1', '--remote', 'root@domu1,root@domu2', '--addr', '10.0.0.11,10.0.0.12', '--out', out],
    env,
  );
  t.is(r.code, 1, r.stderr);
  t.regex(r.stderr, /PASS remote-setup +domU1=10\.0\.0\.11 domU2=10\.0\.0\.12 via=fake domid1=7 domid2=8/);
  t.regex(r.stderr, /1\/3 fig12 tcp reference r1 {2}50 MB\/s/);
  t.regex(r.stderr, /2\/3 fig12 tunnel-4 4 KiB r1 {2}104 MB\/s/);
  t.regex(r.stderr, /3\/3 fig12 tunnel-4 64 KiB r1 {2}FAILED: only 0 tunnels for 1 connections: fell back to TCP/);
  t.regex(r.stderr, /bench: 2 passed, 1 failed/);
  const results = JSON.parse(await readFile(path.join(out, 'fig12', 'results.json'), 'utf8')) as {
    source: { run: string; hardware: Record<string, unknown> & { domUs: Record<string, unknown>[] }; versions: Record<string, unknown> };
    samples: { series: string; x: number; values: Record<string, number> }[];
    failed: { name: string }[];
  };
  t.deepEqual(results.failed.map((f) => f.name), ['bench.fig12.tunnel-4.64KiB.r1']);
  const tunnel = results.samples.find((s) => s.series === 'tunnel-4');
  t.like(tunnel, { x: 4096, values: { throughput_MBps: 104, tunnels_created: 1, tunnel_bytes_tx: 4 << 20, tunnel_share: 1 } });
  t.like(results.samples.find((s) => s.series === 'tcp'), { x: 0, values: { throughput_MBps: 50, tunnels_created: 0 } });
  // the hardware: this machine plays dom0 and both domUs (no Xen here: its fields are null)
  const hw = results.source.hardware;
  t.is(hw.run, 'remote');
  t.true(typeof hw.cpu_model === 'string' && hw.cpu_model.length > 0, JSON.stringify(hw));
  t.is(hw.xen_version, null);
  t.is(hw.dom0_kernel, release());
  t.deepEqual(hw.domUs.map((d) => [d.name, d.addr, d.kernel]), [['domU1', '10.0.0.11', release()], ['domU2', '10.0.0.12', release()]]);
  t.true(typeof hw.domUs[0]?.vcpus === 'number' && hw.domUs[0].vcpus > 0);
  t.like(results.source.versions, { fastivc_ko: { domU1: '0.3.0-fake', domU2: '0.3.0-fake' } });
  t.regex(String(results.source.versions.ivcbench), /9\.9\.9-fake/);
  // the domUs as they were: the parameters back, our folder gone
  for (const d of [d1, d2]) {
    const p = path.join(d, 'sys', 'module', 'fastivc', 'parameters');
    const values = await Promise.all(['enable', 'channels', 'channel_size', 'auto_bytes'].map((k) => readFile(path.join(p, k), 'utf8')));
    t.deepEqual(values.map((v) => v.trim()), ['Y', '0', '0', '1048576'], d);
    t.deepEqual(await readdir(path.join(d, 'tmp')), [], d);
  }
  // each point's log, as in the lab
  t.regex(await readFile(path.join(out, 'logs', 'bench.fig12.tunnel-4.64KiB.r1.log'), 'utf8'), /fell back to TCP/);
});

test('the real bench.sh refuses clearly: a domU address missing from the DEM table, a domU without fastivc.ko', async (t) => {
  const { dir, d2, env } = await fakeHost(t, [{ addr: '10.0.0.11', domid: 7 }]);
  const r = await runCli(
    ['bench', 'run', 'fig12', '--quick', '--repeat', '1', '--remote', 'root@domu1,root@domu2', '--addr', '10.0.0.11,10.0.0.12', '--out', path.join(dir, 'a')],
    env,
  );
  t.is(r.code, 1);
  t.regex(r.stderr, /FAIL remote-setup +10\.0\.0\.12 not in the DEM's table \(fastivc map list\) after fastivc sync --once: start the fastivc-sync service/);
  t.regex(r.stderr, /bench: 0 passed, 5 failed/);
  // what it had done before it failed is undone
  t.deepEqual(await readdir(path.join(d2, 'tmp')), []);

  await rm(path.join(d2, 'proc', 'fastivc', 'stats'));
  const r2 = await runCli(
    ['bench', 'run', 'fig12', '--quick', '--repeat', '1', '--remote', 'root@domu1,root@domu2', '--addr', '10.0.0.11,10.0.0.12', '--out', path.join(dir, 'b')],
    env,
  );
  t.is(r2.code, 1);
  t.regex(r2.stderr, /fastivc\.ko is not loaded in root@domu2 \(no \/proc\/fastivc\/stats\): install the fastivc-dkms package there/);
});

/** A fake ssh: logs its argument vector, then runs the remote command in the fake domU its destination names. */
const FAKE_SSH = `#!/bin/bash
printf '%s\\n' "$(printf '%q ' "$@")" >> "$FAKE_SSH_LOG"
dest= ctl=
while [ $# -gt 0 ]; do
  case $1 in
    -n) ;;
    -o|-i) shift ;;
    -O) ctl=$2; shift ;;
    --) shift; break ;;
    *) dest=$1 ;;
  esac
  shift
done
[ -n "$ctl" ] && exit 0
r=$FAKE_SSH_DOMUS/\${dest#*@}
[ -d "$r" ] || { echo "ssh: Could not resolve hostname \${dest#*@}" >&2; exit 255; }
cmd=$*
cmd=\${cmd//\\/proc\\/fastivc\\//$r/proc/fastivc/}
cmd=\${cmd//\\/sys\\/module\\/fastivc\\//$r/sys/module/fastivc/}
cmd=\${cmd//\\/tmp\\/fastivc-bench./$r/tmp/fastivc-bench.}
cd "$r" && FAKE_ROOT=$r exec sh -c "$cmd"
`;

test('the ssh transport: batch mode, one multiplexed connection per domU, the key, stdin only for the copy, closed at the end', async (t) => {
  const { dir, env } = await fakeHost(t, [
    { addr: '10.0.0.11', domid: 7 },
    { addr: '10.0.0.12', domid: 8 },
  ]);
  const bin = path.join(dir, 'bin');
  await mkdir(bin);
  await writeFile(path.join(bin, 'ssh'), FAKE_SSH);
  await chmod(path.join(bin, 'ssh'), 0o755);
  const key = path.join(dir, 'id_ed25519');
  await writeFile(key, 'fake\n');
  const log = path.join(dir, 'ssh.log');
  const { FASTIVC_BENCH_FAKE_DOMUS: domus, ...rest } = env;
  const r = await runCli(
    ['bench', 'run', 'fig12', '--quick', '--repeat', '1', '--remote', 'root@domu1,root@domu2', '--ssh-key', key, '--addr', '10.0.0.11,10.0.0.12', '--out', path.join(dir, 'out')],
    { ...rest, FAKE_SSH_DOMUS: domus, FAKE_SSH_LOG: log, PATH: `${bin}:${process.env.PATH ?? ''}` },
  );
  t.is(r.code, 1, r.stderr); // the fake domU1 falls back at 64 KiB channels
  t.regex(r.stderr, /PASS remote-setup .*via=ssh/);
  t.regex(r.stderr, /bench: 2 passed, 1 failed/);
  const calls = (await readFile(log, 'utf8')).trim().split('\n');
  const opts = `-o BatchMode=yes -o ConnectTimeout=10 -o ControlMaster=auto -o ControlPath=/tmp/fastivc-bench\\.\\w+/ssh-%C -o ControlPersist=120 -o ServerAliveInterval=15 -i ${key.replace(/[/.]/g, '\\$&')} -o IdentitiesOnly=yes`;
  // every command: no stdin (-n), the options, the login of the address (never the bare address), after --
  const commands = calls.filter((c) => !c.includes(' -O exit ') && !c.includes('cat\\ \\>'));
  t.true(commands.length > 20, calls.join('\n'));
  for (const c of commands) t.regex(c, new RegExp(`^-n ${opts} root@domu[12] -- `), c);
  // the copy of ivcbench reads stdin, so no -n there
  const copies = calls.filter((c) => c.includes('cat\\ \\>'));
  t.is(copies.length, 2);
  for (const c of copies) t.regex(c, new RegExp(`^${opts} root@domu[12] -- cat\\\\ \\\\>\\\\ /tmp/fastivc-bench\\.[0-9.]+/ivcbench`), c);
  // points run with ivcbench from our folder first on the PATH
  t.true(commands.some((c) => /root@domu1 -- PATH=\/tmp\/fastivc-bench\.[0-9.]+:\\\$PATH\\;\\ export\\ PATH\\;\\ ivcbench\\ stream\\ --host\\ 10\.0\.0\.12/.test(c)), commands.join('\n'));
  // the master connections closed at the end
  const exits = calls.filter((c) => / -O exit root@domu[12] ?$/.test(c));
  t.is(exits.length, 2, calls.slice(-4).join('\n'));
});
