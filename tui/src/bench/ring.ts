/**
 * The host experiment "ring": experiments/ringbench between two processes on this machine, the tunnel's ring code
 * (guest-kmod/ivc_ring.h) against TCP over loopback, a UNIX stream socket and memcpy, for message sizes 1 B..1 MiB.
 * Repetitions are interleaved like the lab's: rep 1 of every point, then rep 2...
 */
import { execFile } from 'node:child_process';
import type { Sample } from './stats.js';
import type { FailedPoint } from './results.js';

export const DEFAULT_RINGBENCH = 'build/experiments/bin/ringbench';

/** One series: its name in the plot and the ringbench arguments that make it. */
export interface RingSeries {
  name: string;
  args: readonly string[];
}

export const RING_SERIES: readonly RingSeries[] = [
  { name: 'memcpy', args: ['--path', 'memcpy'] },
  { name: 'ring-16x64KiB', args: ['--path', 'ring', '--channels', '16', '--channel-size', '65536'] },
  { name: 'ring-4x4KiB', args: ['--path', 'ring', '--channels', '4', '--channel-size', '4096'] },
  { name: 'unix', args: ['--path', 'unix'] },
  { name: 'tcp-loopback', args: ['--path', 'tcp'] },
];

export const RING_SIZES = [1, 64, 1024, 4096, 16384, 65536, 262144, 1048576] as const;
export const RING_SIZES_QUICK = [1, 4096, 65536] as const;

/** Bytes moved at one message size: enough messages to time (50 000, at least 64 KiB), at most 256 MiB. */
export function ringBytes(msgSize: number, quick: boolean): number {
  const n = Math.min(256 << 20, Math.max(64 << 10, msgSize * 50_000));
  return quick ? Math.max(64 << 10, Math.floor(n / 8)) : n;
}

export interface RingPoint {
  series: RingSeries;
  x: number;
  rep: number;
  bytes: number;
}

export function ringPlan(repeat: number, quick: boolean): RingPoint[] {
  const sizes = quick ? RING_SIZES_QUICK : RING_SIZES;
  const out: RingPoint[] = [];
  for (let rep = 1; rep <= repeat; rep++) {
    for (const series of RING_SERIES) {
      for (const x of sizes) out.push({ series, x, rep, bytes: ringBytes(x, quick) });
    }
  }
  return out;
}

/** Runs one ringbench; resolves with its JSON, or rejects with what went wrong. */
export type RingRunner = (bin: string, args: readonly string[]) => Promise<Record<string, unknown>>;

export const execRingbench: RingRunner = (bin, args) =>
  new Promise((resolve, reject) => {
    execFile(bin, [...args], { timeout: 120_000, maxBuffer: 1 << 20 }, (err, stdout, stderr) => {
      const line = stdout.trim().split('\n').pop() ?? '';
      let json: Record<string, unknown> | undefined;
      try {
        const v: unknown = JSON.parse(line);
        if (v !== null && typeof v === 'object' && !Array.isArray(v)) json = v as Record<string, unknown>;
      } catch {
        json = undefined;
      }
      if (json && typeof json.error === 'string') reject(new Error(json.error));
      else if (json && !err) resolve(json);
      else reject(new Error(`${bin} ${args.join(' ')}: ${err?.message ?? 'no JSON'} ${stderr.trim()}`.trim()));
    });
  });

export interface RingSweepResult {
  samples: Sample[];
  failed: FailedPoint[];
}

/**
 * Runs the plan point by point; onPoint is told before (done = false) and after each point, with the value or the
 * error. A point that is not verified, or has no throughput, fails.
 */
export async function runRingSweep(
  plan: readonly RingPoint[],
  bin: string,
  onPoint: (p: RingPoint, done: false | { value?: number; error?: string }) => void,
  run: RingRunner = execRingbench,
  signal?: AbortSignal,
): Promise<RingSweepResult> {
  const samples: Sample[] = [];
  const failed: FailedPoint[] = [];
  for (const p of plan) {
    if (signal?.aborted) break;
    onPoint(p, false);
    const args = [...p.series.args, '--msg-size', String(p.x), '--bytes', String(p.bytes)];
    try {
      const r = await run(bin, args);
      const tp = r.throughput_MBps;
      if (r.verified !== true || typeof tp !== 'number' || !Number.isFinite(tp)) {
        throw new Error(`not verified or no throughput: ${JSON.stringify(r)}`);
      }
      const values: Record<string, number> = {};
      for (const [k, v] of Object.entries(r)) if (typeof v === 'number' && Number.isFinite(v)) values[k] = v;
      samples.push({ series: p.series.name, x: p.x, rep: p.rep, values });
      onPoint(p, { value: tp });
    } catch (e) {
      const reason = e instanceof Error ? e.message : String(e);
      failed.push({ name: `ring.${p.series.name}.${p.x}.r${p.rep}`, series: p.series.name, x: p.x, rep: p.rep, reason });
      onPoint(p, { error: reason });
    }
  }
  return { samples, failed };
}
