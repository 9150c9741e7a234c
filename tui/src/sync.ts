/**
 * `fastivc sync`: keeps the DEM's IP table in step with the toolstack. libxl records each vif's addresses in
 * xenstore at /local/domain/0/backend/vif/<domid>/<devid>/ip (space-separated; the `ip=` of the vif spec); dom0's own
 * addresses come from --dom0-ip. Each pass compares that with the DEM's table and
 *   - sets every configured IPv4 and IPv6 address that is missing or owned by another domain;
 *   - deletes entries owned by a domain that no longer exists (not under /local/domain);
 *   - deletes entries of a domain whose addresses the toolstack knows (it has a vif `ip`; dom0 with --dom0-ip) when
 *     the address is no longer one of them.
 * Entries of live domains the toolstack says nothing about (a vif without `ip`, manual `fastivc map set`) are left
 * alone. IPv6 addresses are taken in the form the DEM's tools print (compressed), so any spelling in xenstore
 * compares equal to the table. Text that is no host address, and IPv4-mapped IPv6 addresses (::ffff:a.b.c.d, which
 * the DEM names as IPv4: the vif should list a.b.c.d) are logged and skipped; an address configured for two domains
 * is logged and left alone.
 *
 * planSync() is the pure part; syncPass() runs one pass; syncLoop() repeats it on xenstore-watch events, or polls.
 */
import { canonicalIP, compareIP, formatIP, ipBytes, isV4Mapped, type DemSource, type IpEntry } from '../../native/lib/index.js';
import { parseXenstoreLs } from './data/parse.js';
import { commandProblem, type CommandRunner, type LineWatcher } from './data/system.js';

export const VIF_BACKEND = '/local/domain/0/backend/vif';

export interface Desired {
  /** addr -> domid for every address to set. */
  map: Map<string, number>;
  /** Domains whose full address list is known (their entries not in `map` are deleted). */
  authoritative: Set<number>;
  /** Log lines about what was skipped (not a host address, IPv4-mapped, conflicts). */
  notes: string[];
}

export type SyncOp =
  | { op: 'set'; addr: string; domid: number; was?: number }
  | { op: 'del'; addr: string; domid: number; why: 'gone' | 'unconfigured' };

/** The log line of an operation: "set 192.0.2.11 -> dom 1", "del 192.0.2.12 (dom 2 gone)". */
export function describeOp(op: SyncOp): string {
  if (op.op === 'set') return `set ${op.addr} -> dom ${op.domid}${op.was !== undefined ? ` (was dom ${op.was})` : ''}`;
  return op.why === 'gone'
    ? `del ${op.addr} (dom ${op.domid} gone)`
    : `del ${op.addr} (no longer an address of dom ${op.domid})`;
}

const VIF_IP = /^\/local\/domain\/0\/backend\/vif\/(\d+)\/(\d+)\/ip$/;

/**
 * The desired table from `xenstore-ls -f /local/domain/0` output and dom0's addresses. Deterministic: domains and
 * devices in ascending order.
 */
export function desiredFrom(xenstoreLs: string, dom0Ips: readonly string[], dom0 = 0): Desired {
  const notes: string[] = [];
  const claims = new Map<string, Set<number>>();
  const authoritative = new Set<number>();
  const claim = (addr: string, domid: number): void => {
    const s = claims.get(addr) ?? new Set<number>();
    s.add(domid);
    claims.set(addr, s);
  };
  const vifs: [number, number, string][] = [];
  for (const [path, value] of parseXenstoreLs(xenstoreLs)) {
    const m = VIF_IP.exec(path);
    if (m) vifs.push([Number(m[1]), Number(m[2]), value]);
  }
  vifs.sort((x, y) => x[0] - y[0] || x[1] - y[1]);
  for (const [domid, devid, value] of vifs) {
    authoritative.add(domid);
    for (const addr of value.split(/\s+/).filter((a) => a !== '')) {
      const b = ipBytes(addr);
      if (b === undefined || b.every((x) => x === 0)) {
        notes.push(`skip ${addr} of dom ${domid} vif ${devid} (not an IP host address)`);
      } else if (isV4Mapped(b)) {
        const v4 = formatIP(b.subarray(12));
        notes.push(`skip ${addr} of dom ${domid} vif ${devid} (IPv4-mapped: the DEM names it as ${v4}, list that)`);
      } else {
        claim(formatIP(b), domid);
      }
    }
  }
  if (dom0Ips.length > 0) authoritative.add(dom0);
  for (const addr of dom0Ips) claim(canonicalIP(addr) ?? addr, dom0);
  const map = new Map<string, number>();
  for (const [addr, owners] of claims) {
    if (owners.size === 1) map.set(addr, [...owners][0] as number);
    else notes.push(`skip ${addr}: configured for doms ${[...owners].sort((x, y) => x - y).join(', ')} (conflict, left alone)`);
  }
  // A conflicting address stays as it is: its owners are not authoritative for it.
  return { map, authoritative, notes };
}

/** The domain ids from `xenstore-list /local/domain` output. */
export function liveDomainsFrom(xenstoreList: string): Set<number> {
  return new Set(
    xenstoreList
      .split('\n')
      .map((l) => l.trim())
      .filter((l) => /^\d+$/.test(l))
      .map(Number),
  );
}

/**
 * What to change so the table matches: deletions first (they free per-domain slots), then sets, each by address.
 * Pure.
 */
export function planSync(desired: Desired, actual: readonly IpEntry[], live: ReadonlySet<number>): SyncOp[] {
  const conflicted = new Set(
    desired.notes.map((n) => /^skip (\S+): configured for/.exec(n)?.[1]).filter((a): a is string => a !== undefined),
  );
  const dels: SyncOp[] = [];
  const sets: SyncOp[] = [];
  const have = new Map(actual.map((e) => [e.addr, e.domid]));
  for (const e of actual) {
    if (desired.map.has(e.addr) || conflicted.has(e.addr)) continue;
    if (!live.has(e.domid)) dels.push({ op: 'del', addr: e.addr, domid: e.domid, why: 'gone' });
    else if (desired.authoritative.has(e.domid)) dels.push({ op: 'del', addr: e.addr, domid: e.domid, why: 'unconfigured' });
  }
  for (const [addr, domid] of desired.map) {
    const was = have.get(addr);
    if (was === domid) continue;
    sets.push(was === undefined ? { op: 'set', addr, domid } : { op: 'set', addr, domid, was });
  }
  const byAddr = (x: SyncOp, y: SyncOp): number => compareIP(x.addr, y.addr);
  return [...dels.sort(byAddr), ...sets.sort(byAddr)];
}

export interface SyncDeps {
  dem: () => DemSource;
  exec: CommandRunner;
  /** One log line (a change, a note). */
  log: (line: string) => void;
  /** One error line (a failed operation or read). */
  warn: (line: string) => void;
}

export interface PassResult {
  ops: SyncOp[];
  /** Operations or reads that failed. */
  failures: number;
}

/** One pass: read xenstore and the DEM, plan, apply, log. Never rejects. */
export async function syncPass(deps: SyncDeps, dom0Ips: readonly string[], seenNotes?: Set<string>): Promise<PassResult> {
  const [ls, list] = await Promise.all([
    deps.exec('xenstore-ls', ['-f', '/local/domain/0']),
    deps.exec('xenstore-list', ['/local/domain']),
  ]);
  const problem = commandProblem('xenstore-ls', ls) ?? commandProblem('xenstore-list', list);
  if (problem) {
    deps.warn(`cannot read the toolstack's addresses: ${problem}`);
    return { ops: [], failures: 1 };
  }
  let dem: DemSource;
  let actual: IpEntry[];
  try {
    dem = deps.dem();
    actual = (await dem.query('ip')).entries;
  } catch (e) {
    deps.warn(`cannot read the DEM's table: ${(e as Error).message}`);
    return { ops: [], failures: 1 };
  }
  const desired = desiredFrom(ls.stdout, dom0Ips);
  for (const n of desired.notes) {
    // In a loop, say each note once, not on every pass.
    if (seenNotes?.has(n)) continue;
    seenNotes?.add(n);
    deps.log(n);
  }
  const ops = planSync(desired, actual, liveDomainsFrom(list.stdout));
  let failures = 0;
  for (const op of ops) {
    try {
      if (op.op === 'set') await dem.ipSet(op.addr, op.domid);
      else await dem.ipDel(op.addr, op.domid);
      deps.log(describeOp(op));
    } catch (e) {
      failures += 1;
      deps.warn(`${describeOp(op)} failed: ${(e as Error).message}`);
    }
  }
  return { ops, failures };
}

export interface LoopOptions {
  dom0Ips: readonly string[];
  /** Polling period, and the delay before retrying after a failed pass. */
  intervalMs: number;
  /** Follows xenstore (`xenstore-watch PATH`); null: poll only. */
  watch: LineWatcher | null;
  signal: AbortSignal;
  /** Called after each pass (tests count passes). */
  onPass?: (r: PassResult) => void;
}

/**
 * Runs passes until `signal` aborts: one at once, then one after each xenstore-watch event (bursts coalesce: at most
 * one pass runs and one waits), or every intervalMs if xenstore-watch is unavailable or ends. A failed pass is
 * retried after intervalMs. Resolves when aborted.
 */
export function syncLoop(deps: SyncDeps, opts: LoopOptions): Promise<void> {
  return new Promise((resolve) => {
    const notes = new Set<string>();
    let running = false;
    let again = false;
    let timer: NodeJS.Timeout | undefined;
    let watching = false;
    let stopWatch: (() => void) | undefined;

    const finish = (): void => {
      if (timer) clearTimeout(timer);
      stopWatch?.();
      resolve();
    };
    const schedule = (ms: number): void => {
      if (timer) clearTimeout(timer);
      timer = setTimeout(() => {
        timer = undefined;
        trigger();
      }, ms);
    };
    const trigger = (): void => {
      if (opts.signal.aborted) return;
      if (running) {
        again = true;
        return;
      }
      running = true;
      void syncPass(deps, opts.dom0Ips, notes).then((r) => {
        running = false;
        opts.onPass?.(r);
        if (opts.signal.aborted) return;
        if (again) {
          again = false;
          trigger();
        } else if (!watching || r.failures > 0) schedule(opts.intervalMs);
      });
    };

    if (opts.signal.aborted) {
      resolve();
      return;
    }
    opts.signal.addEventListener('abort', finish, { once: true });
    if (opts.watch) {
      watching = true;
      const w = opts.watch(
        'xenstore-watch',
        [VIF_BACKEND],
        () => trigger(),
        (why) => {
          if (opts.signal.aborted || !watching) return;
          watching = false;
          deps.warn(`${why}; polling every ${opts.intervalMs} ms`);
          if (!running && !timer) schedule(opts.intervalMs);
        },
      );
      stopWatch = () => {
        watching = false;
        w.stop();
      };
    }
    trigger();
  });
}
