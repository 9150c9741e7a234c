/**
 * The live data source, for dom0: the DEM's query (records, counters, IP table) through the addon, this domain's
 * /proc/fastivc/{stats,sockets,peers}, and the domUs' mirrors in xenstore (/local/domain/<domid>/data/fastivc/stats,
 * .../peers and .../sock/<id>, read with `xenstore-ls -f /local/domain`). A module older than links writes no peers
 * (file or node): its reports have `peers: []`, without a problem line.
 *
 * Each part fails on its own, with a one-line message: no module loaded -> no report for this domain; no toolstack
 * -> no domU reports; no Xen or no DEM -> `dem.error`.
 */
import type { DemInfo, DemSource } from '../../../native/lib/index.js';
import { parsePeers, parseSockets, parseStats, parseSockLine, parseXenstoreLs } from './parse.js';
import { commandProblem, readText, runCommand, type CommandRunner, type FileReader } from './system.js';
import { STATS_FORMAT, type DataSource, type DemError, type DemPart, type DomainReport, type Snapshot } from './types.js';

export const DEFAULT_PROC_DIR = '/proc/fastivc';
export const XENSTORE_DOMAINS = '/local/domain';

export interface LiveOptions {
  /** The DEM (called on each sample; may throw, e.g. when the addon is not built). */
  dem: () => DemSource;
  /** Folder with `stats`, `sockets` and `peers` (default /proc/fastivc). */
  procDir?: string;
  exec?: CommandRunner;
  readFile?: FileReader;
  /** Read the domUs' mirrors from xenstore (default true). */
  xenstore?: boolean;
  now?: () => number;
}

function message(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

/** The DEM part: info (once), records and IP table. */
async function readDem(dem: () => DemSource, cachedInfo: { info?: DemInfo }): Promise<DemPart | DemError> {
  try {
    const d = dem();
    if (cachedInfo.info === undefined) cachedInfo.info = await d.info();
    const records = await d.query('records');
    const ip = await d.query('ip');
    return { info: cachedInfo.info, counters: ip.counters, records: records.entries, ipTable: ip.entries };
  } catch (e) {
    return { error: message(e) };
  }
}

/** This domain's report from /proc, or null with a problem line. */
export async function readProc(
  procDir: string,
  read: FileReader,
  errors: string[],
  fallbackDomid: number | undefined,
): Promise<DomainReport | null> {
  let statsText: string;
  try {
    statsText = await read(`${procDir}/stats`);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    errors.push(
      code === 'ENOENT'
        ? `this domain: fastivc.ko is not loaded (no ${procDir}/stats)`
        : `this domain: cannot read ${procDir}/stats: ${message(e)}`,
    );
    return null;
  }
  const stats = parseStats(statsText);
  checkFormat('this domain', stats, errors);
  let sockets: DomainReport['sockets'] = [];
  try {
    const parsed = parseSockets(await read(`${procDir}/sockets`));
    sockets = parsed.sockets;
    for (const p of parsed.problems) errors.push(`this domain: ${p}`);
  } catch (e) {
    errors.push(`this domain: cannot read ${procDir}/sockets: ${message(e)}`);
  }
  let peers: DomainReport['peers'] = [];
  try {
    peers = parsePeers(await read(`${procDir}/peers`));
  } catch (e) {
    // No such file: a module older than links, not a problem.
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') errors.push(`this domain: cannot read ${procDir}/peers: ${message(e)}`);
  }
  const domid = typeof stats.domid === 'number' ? stats.domid : (fallbackDomid ?? 0);
  return { domid, source: 'proc', stats, sockets, peers };
}

function checkFormat(who: string, stats: Record<string, number | string>, errors: string[]): void {
  if (stats.format !== undefined && stats.format !== STATS_FORMAT) {
    errors.push(`${who}: statistics format ${stats.format}, this tool reads format ${STATS_FORMAT} (known keys only)`);
  }
}

const STATS_PATH = /^\/local\/domain\/(\d+)\/data\/fastivc\/stats$/;
const PEERS_PATH = /^\/local\/domain\/(\d+)\/data\/fastivc\/peers$/;
const SOCK_PATH = /^\/local\/domain\/(\d+)\/data\/fastivc\/sock\/([^/]+)$/;

/** The domains' mirrors from `xenstore-ls -f /local/domain` output, by domid (ascending). */
export function reportsFromXenstore(text: string, errors: string[]): DomainReport[] {
  const byDom = new Map<number, DomainReport>();
  const get = (domid: number): DomainReport => {
    let r = byDom.get(domid);
    if (!r) {
      r = { domid, source: 'xenstore', stats: {}, sockets: [], peers: [] };
      byDom.set(domid, r);
    }
    return r;
  };
  for (const [path, value] of parseXenstoreLs(text)) {
    let m = STATS_PATH.exec(path);
    if (m) {
      const r = get(Number(m[1]));
      r.stats = parseStats(value);
      checkFormat(`domain ${r.domid}`, r.stats, errors);
      continue;
    }
    m = PEERS_PATH.exec(path);
    if (m) {
      get(Number(m[1])).peers = parsePeers(value);
      continue;
    }
    m = SOCK_PATH.exec(path);
    if (m) {
      const r = get(Number(m[1]));
      const s = parseSockLine(value);
      if (typeof s === 'string') errors.push(`domain ${r.domid}: ${path}: ${s}`);
      else r.sockets.push(s);
    }
  }
  const out = [...byDom.values()].sort((a, b) => a.domid - b.domid);
  for (const r of out) r.sockets.sort((a, b) => a.id - b.id);
  return out;
}

/** One sample of everything (see the file comment). Never rejects. */
export async function sampleLive(opts: LiveOptions, cache: { info?: DemInfo } = {}): Promise<Snapshot> {
  const now = opts.now ?? Date.now;
  const exec = opts.exec ?? runCommand;
  const read = opts.readFile ?? readText;
  const errors: string[] = [];
  const time = now();
  const [dem, xs] = await Promise.all([
    readDem(opts.dem, cache),
    opts.xenstore === false ? Promise.resolve(null) : exec('xenstore-ls', ['-f', XENSTORE_DOMAINS]),
  ]);
  const self = await readProc(opts.procDir ?? DEFAULT_PROC_DIR, read, errors, cache.info?.domid);
  const domains: DomainReport[] = self ? [self] : [];
  if (xs) {
    const problem = commandProblem('xenstore-ls', xs);
    if (problem) errors.push(`other domains: ${problem}`);
    else {
      // This domain's own mirror is a copy of what /proc just gave.
      for (const r of reportsFromXenstore(xs.stdout, errors)) if (!self || r.domid !== self.domid) domains.push(r);
    }
  }
  domains.sort((a, b) => a.domid - b.domid);
  return { time, dem, domains, errors };
}

export function liveSource(opts: LiveOptions): DataSource {
  const cache: { info?: DemInfo } = {};
  return {
    kind: 'live',
    describe: () => 'live',
    next: () => sampleLive(opts, cache),
    close: () => {},
  };
}
