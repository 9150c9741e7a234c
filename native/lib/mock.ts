/**
 * An in-memory stand-in for the native binding, for tests of code that uses it (ivctop, CLI commands) on machines
 * without Xen. It follows the addon's contract (native/src/addon.cc): the same synchronous TypeError/RangeError for
 * bad arguments, the same error codes, `syscall`/`op`/`path` properties and messages (test/native.test.ts checks
 * describeError() against the addon's table), and a DEM with an IP table, event records and counters.
 *
 *   createMockBinding(devices, dem)  devices: path -> state; unlisted paths reject with ENOENT like a missing file
 *   createMockDem(dem)               the same with /dev/xen/privcmd present ('ok')
 *
 * DEM behaviour (evtmgr.h): ip_set/ip_del/query are privileged (EPERM when `privileged: false`); ip_set rejects a
 * domain that is not live (ESRCH), a domain at max_ip_per_domain or a full table (ENOSPC); every op rejects the
 * addresses the DEM does not take (EINVAL): 0.0.0.0, :: and the IPv4-mapped ::ffff:a.b.c.d; ip_del rejects an
 * absent address (ENOENT) and a domid that is not the owner (ESRCH); IPv4 and IPv6 entries share the table, in the
 * DEM's order (IPv4 first), each kept in the addon's printed form (IPv6 compressed); a device in state 'ENOTTY'
 * opens but refuses the ioctl, like /dev/null; `dem: 'EOPNOTSUPP' | 'ENOSYS'` is a hypervisor without the DEM.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { constants } from 'node:os';
import {
  DEFAULT_PRIVCMD,
  DOMID_MAX,
  EVENT_NAMES,
  canonicalIP,
  compareIP,
  formatIP,
  ipBytes,
  isV4Mapped,
  type DemCounters,
  type DemInfo,
  type DemQueryResult,
  type DemQueryWhat,
  type DemRecord,
  type FastivcBinding,
  type IpEntry,
  type ProbeResult,
} from './index.js';

export type MockDeviceState = 'ok' | 'ENOENT' | 'EACCES' | 'ENODEV' | 'ENOTTY';

export interface MockDemOptions {
  /** false: the caller is a domU; privileged ops reject with EPERM (default true). */
  privileged?: boolean;
  /** A hypervisor without the DEM answers every op with this code (default 'ok': DEM present). */
  dem?: 'ok' | 'EOPNOTSUPP' | 'ENOSYS';
  /** Domains that exist; ip_set to any other rejects with ESRCH (default: every domid is live). */
  liveDomains?: readonly number[];
  /** Table limits (defaults 16 per domain, 1024 in all). */
  maxIpPerDomain?: number;
  maxIpTotal?: number;
  /** Overrides of the info() answer. */
  info?: Partial<DemInfo>;
  /** Initial IP table and records. */
  ip?: readonly IpEntry[];
  records?: readonly DemRecord[];
  /** Initial counters (the sizes are always computed). */
  counters?: Partial<DemCounters>;
  /** Keep the IP table in this JSON file across processes (the CLI's FASTIVC_DEM_MOCK_STATE). */
  stateFile?: string;
}

const errnoOf = (code: string): number => (constants.errno as Record<string, number | undefined>)[code] ?? 0;

// glibc's strerror() texts, for the messages that quote them (addon.cc uses strerror).
const STRERROR: Record<string, string> = {
  EPERM: 'Operation not permitted',
  ENOENT: 'No such file or directory',
  ESRCH: 'No such process',
  EINTR: 'Interrupted system call',
  EIO: 'Input/output error',
  ENXIO: 'No such device or address',
  E2BIG: 'Argument list too long',
  EAGAIN: 'Resource temporarily unavailable',
  ENOMEM: 'Cannot allocate memory',
  EACCES: 'Permission denied',
  EFAULT: 'Bad address',
  EBUSY: 'Device or resource busy',
  EEXIST: 'File exists',
  ENODEV: 'No such device',
  ENOTDIR: 'Not a directory',
  EISDIR: 'Is a directory',
  EINVAL: 'Invalid argument',
  ENFILE: 'Too many open files in system',
  EMFILE: 'Too many open files',
  ENOTTY: 'Inappropriate ioctl for device',
  ENOSPC: 'No space left on device',
  EROFS: 'Read-only file system',
  ERANGE: 'Numerical result out of range',
  ENAMETOOLONG: 'File name too long',
  ENOSYS: 'Function not implemented',
  ELOOP: 'Too many levels of symbolic links',
  EPROTO: 'Protocol error',
  EOPNOTSUPP: 'Operation not supported',
};

/** The errno names the mock (and the addon) know, with their numbers on this platform. */
export const KNOWN_ERRNOS: readonly string[] = Object.keys(STRERROR);

function codeOf(errno: number): string {
  return KNOWN_ERRNOS.find((c) => errnoOf(c) === errno) ?? `E${errno}`;
}

function strerror(errno: number): string {
  const code = KNOWN_ERRNOS.find((c) => errnoOf(c) === errno);
  return code !== undefined ? (STRERROR[code] ?? '') : `Unknown error ${errno}`;
}

/** The addon's message table (DescribeError in addon.cc), line for line. */
export function describeError(
  op: string,
  syscall: string,
  errno: number,
  device: string,
  addr = '',
  domid = -1,
): { code: string; message: string } {
  const code = codeOf(errno);
  const m = (message: string) => ({ code, message });
  if (syscall === 'open') {
    switch (code) {
      case 'ENOENT':
        return m(`no Xen here: ${device} does not exist (run in dom0 with xen-privcmd loaded)`);
      case 'EACCES':
      case 'EPERM':
        return m(`permission denied opening ${device} (run as root in dom0)`);
      case 'ENODEV':
      case 'ENXIO':
        return m(`no Xen here: ${device} exists but no device answers (${strerror(errno)}; is this running under Xen?)`);
      default:
        return m(`cannot open ${device}: ${strerror(errno)}`);
    }
  }
  switch (code) {
    case 'EPERM':
      return m('the DEM refused: this domain is not privileged (run in dom0)');
    case 'EOPNOTSUPP':
    case 'ENOSYS':
      return m('the hypervisor has no Domain Event Manager (not a fastivc Xen, or booted with evtmgr=0)');
    case 'ENOTTY':
      return m(`${op}: ${device} is not a Xen privcmd device (it does not take the hypercall ioctl)`);
    case 'EFAULT':
      return m(`${op}: the hypervisor could not access the argument buffer`);
    default:
      break;
  }
  if (op === 'ip_set') {
    if (code === 'ESRCH') return m(`ip_set: no live domain ${domid}`);
    if (code === 'ENOSPC') {
      return m(`ip_set: domain ${domid} owns the maximum number of addresses already, or the table is full`);
    }
    if (code === 'EINVAL') return m(`ip_set: the DEM rejected ${addr} (not a usable host address)`);
  } else if (op === 'ip_del') {
    if (code === 'ENOENT') return m(`ip_del: ${addr} is not in the table`);
    if (code === 'ESRCH') return m(`ip_del: ${addr} is owned by another domain than ${domid}`);
  }
  return m(`${op}: ${strerror(errno)} (${code})`);
}

interface Ctx {
  op: string;
  device: string;
  addr?: string;
  domid?: number;
}

function systemError(code: string, syscall: 'open' | 'ioctl', ctx: Ctx): Error {
  const errno = errnoOf(code);
  const { message } = describeError(ctx.op, syscall, errno, ctx.device, ctx.addr ?? '', ctx.domid ?? -1);
  return Object.assign(new Error(message), { code, errno, syscall, op: ctx.op, path: ctx.device });
}

// ---- synchronous argument checks, with addon.cc's messages

function quote(s: string): string {
  return `'${s.length > 64 ? `${s.slice(0, 64)}...` : s}'`;
}

function checkDevice(fn: string, device: unknown): string {
  if (device === undefined || device === null) return DEFAULT_PRIVCMD;
  if (typeof device !== 'string') throw new TypeError(`${fn}: device must be a string`);
  if (device === '') throw new TypeError(`${fn}: device must not be empty`);
  if (device.includes('\0')) throw new TypeError(`${fn}: device must not contain NUL bytes`);
  return device;
}

/** The address as the addon passes it on (IPv6 compressed, as it prints it). */
function checkAddr(fn: string, addr: unknown): string {
  if (typeof addr !== 'string') throw new TypeError(`${fn}: addr must be a string`);
  const b = ipBytes(addr);
  if (b === undefined) throw new RangeError(`${fn}: ${quote(addr)} is not an IP address (a.b.c.d or IPv6)`);
  return formatIP(b);
}

/** What the DEM refuses with EINVAL: the all-zero address of either family, and IPv4-mapped IPv6 addresses. */
function demRefuses(addr: string): boolean {
  const b = ipBytes(addr) as Uint8Array;
  return b.every((x) => x === 0) || isV4Mapped(b);
}

function checkDomid(fn: string, domid: unknown, optional: boolean): number | undefined {
  if (optional && (domid === undefined || domid === null)) return undefined;
  if (typeof domid !== 'number') throw new TypeError(`${fn}: domid must be a number`);
  if (!(domid >= 0 && domid <= DOMID_MAX) || !Number.isInteger(domid)) {
    throw new RangeError(`${fn}: domid must be an integer in 0..32751 (0x7FEF), got ${String(domid)}`);
  }
  return domid;
}

const ZERO_COUNTERS: DemCounters = {
  raises: 0,
  raisesDenied: 0,
  virqs: 0,
  fetches: 0,
  eventsDelivered: 0,
  recordsCreated: 0,
  recordsFreed: 0,
  lookups: 0,
  ipEntries: 0,
  records: 0,
  pending: 0,
};

export interface MockBinding extends FastivcBinding {
  /** The IP table now, in the DEM's order (by address). */
  table(): IpEntry[];
}

/** A binding whose devices behave as listed (missing ones: ENOENT), over an in-memory DEM. */
export function createMockBinding(devices: Record<string, MockDeviceState> = {}, dem: MockDemOptions = {}): MockBinding {
  const privileged = dem.privileged ?? true;
  const info: DemInfo = {
    abiVersion: 1,
    virq: 14,
    maxIpPerDomain: dem.maxIpPerDomain ?? 16,
    maxRecordsPerDomain: 256,
    maxPendingPerDomain: 256,
    maxBatch: 4,
    domid: privileged ? 0 : 1,
    ...dem.info,
  };
  const maxIpTotal = dem.maxIpTotal ?? 1024;
  const counters: DemCounters = { ...ZERO_COUNTERS, ...dem.counters };
  let records: DemRecord[] = (dem.records ?? []).map((r) => structuredClone(r));
  let ip: Map<string, number> | undefined;

  const loadTable = (): Map<string, number> => {
    if (ip) return ip;
    let initial: readonly IpEntry[] = dem.ip ?? [];
    if (dem.stateFile !== undefined) {
      try {
        const saved = JSON.parse(readFileSync(dem.stateFile, 'utf8')) as { ip?: IpEntry[] };
        if (Array.isArray(saved.ip)) initial = saved.ip;
      } catch {
        // no state yet
      }
    }
    ip = new Map(initial.map((e) => [canonicalIP(e.addr) ?? e.addr, e.domid]));
    return ip;
  };
  const saveTable = (): void => {
    if (dem.stateFile !== undefined) writeFileSync(dem.stateFile, `${JSON.stringify({ ip: sortedTable() }, null, 2)}\n`);
  };
  const sortedTable = (): IpEntry[] =>
    [...loadTable()].map(([addr, domid]) => ({ addr, domid })).sort((a, b) => compareIP(a.addr, b.addr));
  // Records whose either end is `addr` go when the address changes hands (evtmgr.h).
  const dropRecordsOf = (addr: string): void => {
    const end = addr.includes(':') ? `[${addr}]:` : `${addr}:`;
    const keep = records.filter((r) => !r.src.startsWith(end) && !r.dst.startsWith(end));
    counters.recordsFreed += records.length - keep.length;
    records = keep;
  };

  // Runs a DEM op: device, DEM presence and privilege checks first, as the addon and the hypervisor order them.
  const run = <T>(ctx: Ctx, privilegedOp: boolean, body: () => T): Promise<T> => {
    const state = devices[ctx.device] ?? 'ENOENT';
    if (state !== 'ok' && state !== 'ENOTTY') return Promise.reject(systemError(state, 'open', ctx));
    if (state === 'ENOTTY') return Promise.reject(systemError('ENOTTY', 'ioctl', ctx));
    if (dem.dem !== undefined && dem.dem !== 'ok') return Promise.reject(systemError(dem.dem, 'ioctl', ctx));
    if (privilegedOp && !privileged) return Promise.reject(systemError('EPERM', 'ioctl', ctx));
    try {
      return Promise.resolve(body());
    } catch (e) {
      return Promise.reject(e instanceof Error ? e : new Error(String(e)));
    }
  };
  const fail = (code: string, ctx: Ctx): never => {
    throw systemError(code, 'ioctl', ctx);
  };

  return {
    defaultPrivcmdPath: DEFAULT_PRIVCMD,
    describeError,

    probe(path?: string): Promise<ProbeResult> {
      const device = checkDevice('probe', path);
      const state = devices[device] ?? 'ENOENT';
      return state === 'ok' || state === 'ENOTTY'
        ? Promise.resolve({ device, ok: true })
        : Promise.reject(systemError(state, 'open', { op: 'probe', device }));
    },

    info(device?: string): Promise<DemInfo> {
      const ctx = { op: 'info', device: checkDevice('info', device) };
      return run(ctx, false, () => ({ ...info }));
    },

    ipSet(addr: string, domid: number, device?: string): Promise<void> {
      const a = checkAddr('ipSet', addr);
      const d = checkDomid('ipSet', domid, false) as number;
      const ctx = { op: 'ip_set', device: checkDevice('ipSet', device), addr: a, domid: d };
      return run(ctx, true, () => {
        const table = loadTable();
        if (demRefuses(a)) fail('EINVAL', ctx);
        if (dem.liveDomains !== undefined && !dem.liveDomains.includes(d)) fail('ESRCH', ctx);
        const previous = table.get(a);
        if (previous !== d) {
          const owned = [...table.values()].filter((o) => o === d).length;
          if (owned >= info.maxIpPerDomain || (previous === undefined && table.size >= maxIpTotal)) fail('ENOSPC', ctx);
          if (previous !== undefined) dropRecordsOf(a);
          table.set(a, d);
          saveTable();
        }
      });
    },

    ipDel(addr: string, domid?: number | null, device?: string): Promise<void> {
      const a = checkAddr('ipDel', addr);
      const d = checkDomid('ipDel', domid, true);
      const ctx = { op: 'ip_del', device: checkDevice('ipDel', device), addr: a, domid: d ?? -1 };
      return run(ctx, true, () => {
        if (demRefuses(a)) fail('EINVAL', ctx);
        const table = loadTable();
        const owner = table.get(a);
        if (owner === undefined) fail('ENOENT', ctx);
        if (d !== undefined && owner !== d) fail('ESRCH', ctx);
        table.delete(a);
        dropRecordsOf(a);
        saveTable();
      });
    },

    ipLookup(addr: string, device?: string): Promise<number | null> {
      const a = checkAddr('ipLookup', addr);
      const ctx = { op: 'ip_lookup', device: checkDevice('ipLookup', device), addr: a };
      return run(ctx, false, () => {
        if (demRefuses(a)) fail('EINVAL', ctx);
        counters.lookups += 1;
        return loadTable().get(a) ?? null;
      });
    },

    query<W extends DemQueryWhat>(what: W, device?: string): Promise<DemQueryResult<W>> {
      if (typeof what !== 'string') throw new TypeError('query: what must be a string');
      if (what !== 'ip' && what !== 'records') {
        throw new RangeError(`query: what must be 'ip' or 'records', got ${quote(what)}`);
      }
      const ctx = { op: 'query', device: checkDevice('query', device) };
      return run(ctx, true, () => {
        const table = sortedTable();
        const c: DemCounters = {
          ...counters,
          ipEntries: table.length,
          records: records.length,
          pending: records.filter((r) => r.pending.length > 0).length,
        };
        const entries = what === 'ip' ? table : records.map((r) => structuredClone(r));
        return { what, total: entries.length, entries, counters: c } as DemQueryResult<W>;
      });
    },

    table: sortedTable,
  };
}

/** A mock with /dev/xen/privcmd present (plus `devices`), over an in-memory DEM. */
export function createMockDem(dem: MockDemOptions & { devices?: Record<string, MockDeviceState> } = {}): MockBinding {
  return createMockBinding({ [DEFAULT_PRIVCMD]: 'ok', ...dem.devices }, dem);
}

/** A DemRecord with every count zero unless given (for tests and demos). */
export function mockRecord(r: Partial<DemRecord> & Pick<DemRecord, 'src' | 'dst' | 'owner' | 'raiser'>): DemRecord {
  const raised = Object.fromEntries(EVENT_NAMES.map((n) => [n, 0])) as DemRecord['raised'];
  return { pending: [], fetched: 0, nrChannels: 0, channelSize: 0, ...r, raised: { ...raised, ...r.raised } };
}
