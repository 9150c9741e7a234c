/**
 * The experiments `fastivc bench` knows: the thesis' chapter 4 (Figures 10-12) and our own (round-trip time, the
 * sweep that chose the default tunnel size for bulk data and for request/response, the ring protocol on the host). One entry says where an experiment runs, what its x and its metric are, and how its plot
 * is drawn; the sweeps themselves (sizes, series, how a point is measured) live where they run:
 * lab/guest/scenarios/experiments.sh for the lab, experiments/ringbench for the host (see ring.ts).
 */

export type ExperimentId = 'fig10' | 'fig11' | 'fig12' | 'rtt' | 'geom' | 'geomrr' | 'ring';

export interface Experiment {
  id: ExperimentId;
  /** Where it runs: the QEMU lab (one boot for every lab experiment) or this host. */
  where: 'lab' | 'host';
  title: string;
  /** What the thesis did, or "not in the thesis". */
  thesis: string;
  xLabel: string;
  /** The metric plotted, as named in the points' metrics. */
  metric: string;
  yLabel: string;
  yScale: 'linear' | 'log10';
  /** Series in plot order. */
  series: readonly string[];
  /** The series the others are divided by in the ratio panel (none: no ratio panel). */
  baseline?: string;
  /**
   * Series measured once per repetition at x = 0 and drawn as horizontal reference lines (their median), not as
   * series over x: fig12's tcp, geom's tcp and the thesis' 4 x 4 KiB. An experiment with references has no ratio
   * panel; the baseline, if any, is one of them.
   */
  references?: readonly string[];
  /** The ratio panel's scale (log10 when the series differ by orders of magnitude). */
  ratioScale?: 'linear' | 'log10';
  /** Larger is better (throughput) or smaller (latency): said in the ratio panel's label. */
  better: 'higher' | 'lower';
}

export const EXPERIMENTS: readonly Experiment[] = [
  {
    id: 'fig10',
    where: 'lab',
    title: 'Throughput against block size, data in memory (thesis Figure 10)',
    thesis: 'one block per new connection, TCP vs 2/4/8 channels; tunnels always ahead except 8 channels at 1 B',
    xLabel: 'block size (one new connection per block)',
    metric: 'throughput_MBps',
    yLabel: 'throughput (MB/s)',
    yScale: 'log10',
    series: ['tcp', 'default', 'tunnel-2', 'tunnel-4', 'tunnel-8'],
    baseline: 'tcp',
    better: 'higher',
  },
  {
    id: 'fig11',
    where: 'lab',
    title: 'FTP download from a virtual disk (thesis Figure 11)',
    thesis: 'vsftpd + ftp client, files from disk; 4 channels better than 2, 8 no better than 4',
    xLabel: 'file size',
    metric: 'throughput_MBps',
    yLabel: 'throughput (MB/s)',
    yScale: 'log10',
    series: ['tcp', 'tunnel-2', 'tunnel-4', 'tunnel-8'],
    baseline: 'tcp',
    better: 'higher',
  },
  {
    id: 'fig12',
    where: 'lab',
    title: 'Throughput against channel size, 4 channels (thesis Figure 12)',
    thesis: '4 channels; best at 4 KiB channels, no gain from larger ones',
    xLabel: 'channel size',
    metric: 'throughput_MBps',
    yLabel: 'throughput (MB/s), one stream, 64 KiB writes',
    yScale: 'linear',
    series: ['tunnel-4', 'tcp'],
    baseline: 'tcp',
    references: ['tcp'],
    better: 'higher',
  },
  {
    id: 'rtt',
    where: 'lab',
    title: 'Round-trip time against message size (not in the thesis)',
    thesis: 'not in the thesis',
    xLabel: 'message size (request and echo)',
    metric: 'latency_us_p50',
    yLabel: 'round-trip time, median (µs)',
    yScale: 'log10',
    series: ['tcp', 'tunnel-4', 'tunnel-16x64KiB'],
    baseline: 'tcp',
    better: 'lower',
  },
  {
    id: 'geom',
    where: 'lab',
    title: 'Throughput against tunnel size by demand (not in the thesis)',
    thesis: 'not in the thesis (a fixed 4 x 4 KiB); the sweep that chose auto_bytes, the default tunnel size',
    xLabel: 'tunnel bytes (auto_bytes; 16 channels of a sixteenth, at least a page each)',
    metric: 'throughput_MBps',
    yLabel: 'throughput (MB/s), one stream, 64 KiB writes',
    yScale: 'linear',
    series: ['tunnel-auto', 'tcp', 'thesis'],
    baseline: 'tcp',
    references: ['tcp', 'thesis'],
    better: 'higher',
  },
  {
    id: 'geomrr',
    where: 'lab',
    title: '1 B request/response against tunnel size (not in the thesis)',
    thesis: 'not in the thesis (a fixed 4 x 4 KiB); with geom, the sweep that chose auto_bytes',
    xLabel: 'tunnel bytes (auto_bytes; 16 channels of a sixteenth, at least a page each)',
    metric: 'rr_per_s',
    yLabel: 'round trips per second, 1 B request and echo',
    yScale: 'linear',
    series: ['tunnel-auto', 'tcp', 'thesis'],
    baseline: 'tcp',
    references: ['tcp', 'thesis'],
    better: 'higher',
  },
  {
    id: 'ring',
    where: 'host',
    title: 'The ring protocol alone, between two processes (not in the thesis)',
    thesis: 'not in the thesis',
    xLabel: 'message size (bytes per send and per receive)',
    metric: 'throughput_MBps',
    yLabel: 'throughput (MB/s)',
    yScale: 'log10',
    series: ['memcpy', 'ring-16x64KiB', 'ring-4x4KiB', 'unix', 'tcp-loopback'],
    baseline: 'tcp-loopback',
    ratioScale: 'log10',
    better: 'higher',
  },
];

/** fig12's tcp, geom's tcp and thesis: measured once per repetition and drawn as a reference line, not over x. */
export function isReferenceSeries(e: Experiment, series: string): boolean {
  return e.references?.includes(series) === true;
}

export const EXPERIMENT_IDS: readonly ExperimentId[] = EXPERIMENTS.map((e) => e.id);

export function experiment(id: string): Experiment | undefined {
  return EXPERIMENTS.find((e) => e.id === id);
}

/**
 * The experiments a command line names: ids in catalogue order, without duplicates; "all" (or nothing) is every
 * one. Throws with the known ids on an unknown name.
 */
export function selectExperiments(names: readonly string[]): Experiment[] {
  if (names.length === 0 || names.includes('all')) return [...EXPERIMENTS];
  const unknown = names.filter((n) => experiment(n) === undefined);
  if (unknown.length > 0) {
    throw new Error(`unknown experiment ${unknown.join(', ')}: choose from ${EXPERIMENT_IDS.join(', ')} or all`);
  }
  return EXPERIMENTS.filter((e) => names.includes(e.id));
}
