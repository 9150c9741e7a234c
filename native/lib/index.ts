/**
 * Typed wrapper around the fastivc native addon (native/src/addon.cc).
 *
 * The addon is loaded lazily, on first use, from $FASTIVC_ADDON or native/build/Release/fastivc.node, so importing
 * this module never fails on a machine where the addon has not been built; calling into it then throws an
 * AddonLoadError with the build command.
 */
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const DEFAULT_PRIVCMD = '/dev/xen/privcmd';
export const ADDON_ENV = 'FASTIVC_ADDON';

/** The DEM's hypercall number (__HYPERVISOR_evtmgr_op). */
export const DEM_HYPERCALL = 43;
/** Highest id of an ordinary domain (DOMID_FIRST_RESERVED - 1 = 0x7FEF). */
export const DOMID_MAX = 0x7fef;
/** XEN_EVTMGR_DOMID_NONE (DOMID_INVALID): "no domain of this host owns that address". */
export const DOMID_NONE = 0x7ff4;

/** The six tunnel events of the thesis' Table 1, in bit order (XEN_EVTMGR_EVENT_*). */
export const EVENT_NAMES = [
  'CREATE_TUNNEL',
  'SEND_CLOSE_TUNNEL',
  'REJECT_TUNNEL',
  'RECV_CLOSE_TUNNEL',
  'SEND_DATA',
  'RECV_GET_DATA',
] as const;
export type EventName = (typeof EVENT_NAMES)[number];

export interface ProbeResult {
  device: string;
  ok: true;
}

/** XEN_EVTMGR_OP_info: what this DEM supports (limits are per domain). */
export interface DemInfo {
  abiVersion: number;
  /** The VIRQ the DEM signals guests with (VIRQ_EVTMGR). */
  virq: number;
  maxIpPerDomain: number;
  maxRecordsPerDomain: number;
  maxPendingPerDomain: number;
  /** Entries per get_events/query call; query() pages with it. */
  maxBatch: number;
  /** The caller's own domain id. */
  domid: number;
}

/** One IP-table entry: `addr` (dotted IPv4, or IPv6 in inet_ntop's compressed form) belongs to domain `domid`. */
export interface IpEntry {
  addr: string;
  domid: number;
}

/** One event_info record in the hypervisor: a connection as seen by the domain that raises on it. */
export interface DemRecord {
  /** The raiser's end, "a.b.c.d:port" or "[IPv6]:port". */
  src: string;
  /** The owner's end, "a.b.c.d:port" or "[IPv6]:port". */
  dst: string;
  /** Destination domain, which owns the record and fetches its events. */
  owner: number;
  /** Domain that raises events on it. */
  raiser: number;
  /** Events raised and not yet fetched (event_flag is set iff this is non-empty). */
  pending: EventName[];
  /** Per event: how many raises set it. */
  raised: Record<EventName, number>;
  /** get_events calls that returned this record. */
  fetched: number;
  /** Last tunnel geometry seen (0 if none). */
  nrChannels: number;
  channelSize: number;
}

/**
 * The DEM's global counters, returned with every query. The hypervisor keeps the first eight as u64; they are
 * JS numbers here (exact up to 2^53 - 1, about 285 years at a million events a second), so callers can do rate
 * arithmetic directly. The last three are current sizes.
 */
export interface DemCounters {
  raises: number;
  raisesDenied: number;
  virqs: number;
  fetches: number;
  eventsDelivered: number;
  recordsCreated: number;
  recordsFreed: number;
  lookups: number;
  ipEntries: number;
  records: number;
  pending: number;
}

export type DemQueryWhat = 'ip' | 'records';
export type DemEntry<W extends DemQueryWhat> = W extends 'ip' ? IpEntry : DemRecord;

/** A complete query: every entry (paged through with max_batch), the DEM's total at the last call and its counters. */
export interface DemQueryResult<W extends DemQueryWhat = DemQueryWhat> {
  what: W;
  total: number;
  entries: DemEntry<W>[];
  counters: DemCounters;
}

/** The raw binding as exported by addon.cc (and imitated by mock.ts). `device` defaults to /dev/xen/privcmd. */
export interface FastivcBinding {
  probe(device?: string): Promise<ProbeResult>;
  info(device?: string): Promise<DemInfo>;
  ipSet(addr: string, domid: number, device?: string): Promise<void>;
  /** domid undefined/null: remove whichever domain owns addr. */
  ipDel(addr: string, domid?: number | null, device?: string): Promise<void>;
  /** The owner of addr, or null when no domain of this host owns it. */
  ipLookup(addr: string, device?: string): Promise<number | null>;
  query<W extends DemQueryWhat>(what: W, device?: string): Promise<DemQueryResult<W>>;
  /** The error table: the message and code the binding gives for (op, syscall, errno). */
  describeError(
    op: string,
    syscall: string,
    errno: number,
    device: string,
    addr?: string,
    domid?: number,
  ): { code: string; message: string };
  readonly defaultPrivcmdPath: string;
}

/**
 * An operating-system or hypercall error from the addon: `code` is the errno name (ENOENT, EPERM, EOPNOTSUPP, ...),
 * `errno` its number, `syscall` 'open' (the device) or 'ioctl' (the hypercall), `op` the DEM op ('info', 'ip_set',
 * 'ip_del', 'ip_lookup', 'query') or 'probe', `path` the device.
 */
export class XenError extends Error {
  readonly code: string;
  readonly errno: number;
  readonly syscall: string | undefined;
  readonly path: string | undefined;
  readonly op: string | undefined;

  constructor(message: string, code: string, errno: number, syscall?: string, path?: string, op?: string) {
    super(message);
    this.name = 'XenError';
    this.code = code;
    this.errno = errno;
    this.syscall = syscall;
    this.path = path;
    this.op = op;
  }

  /** Wraps an error thrown or rejected by the addon; other values are returned unchanged. */
  static from(e: unknown): unknown {
    if (e instanceof XenError) return e;
    if (e instanceof Error) {
      const x = e as Error & { code?: unknown; errno?: unknown; syscall?: unknown; path?: unknown; op?: unknown };
      if (typeof x.code === 'string' && typeof x.errno === 'number') {
        const str = (v: unknown): string | undefined => (typeof v === 'string' ? v : undefined);
        const err = new XenError(e.message, x.code, x.errno, str(x.syscall), str(x.path), str(x.op));
        err.stack = e.stack;
        return err;
      }
    }
    return e;
  }
}

const IPV4 = /^(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(\.(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3}$/;

/** A strict dotted-quad IPv4 address (no leading zeros, nothing around it): the rule the addon applies. */
export function isIPv4(s: string): boolean {
  return IPV4.test(s);
}

/**
 * The 16 bytes of an IPv6 address, read as glibc's inet_pton(AF_INET6) reads it (the addon's rule): hex groups of
 * 1..4 digits, at most one "::", an optional dotted quad in the last 32 bits; no zone ("%eth0"), no brackets, no
 * spaces. undefined if it is not one.
 */
function ipv6Bytes(s: string): Uint8Array | undefined {
  const out = new Uint8Array(16);
  let i = 0;
  let tp = 0;
  let colonp = -1;
  if (s.startsWith(':')) {
    if (s[1] !== ':') return undefined;
    i = 1;
  }
  let curtok = i;
  let digits = 0;
  let val = 0;
  while (i < s.length) {
    const ch = s[i++] as string;
    const d = /^[0-9a-fA-F]$/.test(ch) ? Number.parseInt(ch, 16) : -1;
    if (d >= 0) {
      if (digits === 4) return undefined;
      val = (val << 4) | d;
      digits++;
      continue;
    }
    if (ch === ':') {
      curtok = i;
      if (digits === 0) {
        if (colonp >= 0) return undefined;
        colonp = tp;
        continue;
      }
      if (i === s.length || tp + 2 > 16) return undefined;
      out[tp++] = val >> 8;
      out[tp++] = val & 0xff;
      digits = 0;
      val = 0;
      continue;
    }
    if (ch === '.' && tp + 4 <= 16 && IPV4.test(s.slice(curtok))) {
      for (const part of s.slice(curtok).split('.')) out[tp++] = Number(part);
      digits = 0;
      break;
    }
    return undefined;
  }
  if (digits > 0) {
    if (tp + 2 > 16) return undefined;
    out[tp++] = val >> 8;
    out[tp++] = val & 0xff;
  }
  if (colonp >= 0) {
    if (tp === 16) return undefined; // "::" must stand for at least one group
    const n = tp - colonp;
    out.copyWithin(16 - n, colonp, tp);
    out.fill(0, colonp, 16 - n);
    tp = 16;
  }
  return tp === 16 ? out : undefined;
}

/**
 * The address's bytes in network order: 4 for an IPv4 address (strict dotted quad), 16 for an IPv6 address (any form
 * inet_pton reads). undefined if `s` is neither: exactly what the addon accepts.
 */
export function ipBytes(s: string): Uint8Array | undefined {
  if (IPV4.test(s)) return Uint8Array.from(s.split('.').map(Number));
  return s.includes(':') ? ipv6Bytes(s) : undefined;
}

/** An IPv6 address in any form inet_pton(AF_INET6) reads (no zone, no brackets): the rule the addon applies. */
export function isIPv6(s: string): boolean {
  return !IPV4.test(s) && ipBytes(s) !== undefined;
}

/** ::ffff:a.b.c.d, an IPv4 address in IPv6 form: the DEM refuses it (the address is named as IPv4, a.b.c.d). */
export function isV4Mapped(b: Uint8Array): boolean {
  return b.length === 16 && b.subarray(0, 10).every((x) => x === 0) && b[10] === 0xff && b[11] === 0xff;
}

/**
 * An address as the addon prints it: IPv4 dotted, IPv6 as glibc's inet_ntop(3) does (lower-case hex, the first
 * longest run of two or more zero groups as "::", and ::a.b.c.d / ::ffff:a.b.c.d for the IPv4-compatible and
 * -mapped forms).
 */
export function formatIP(b: Uint8Array): string {
  if (b.length === 4) return Array.from(b).join('.');
  const w = Array.from({ length: 8 }, (_, i) => ((b[2 * i] as number) << 8) | (b[2 * i + 1] as number));
  let best = { base: -1, len: 0 };
  let cur = { base: -1, len: 0 };
  for (let i = 0; i <= 8; i++) {
    if (i < 8 && w[i] === 0) {
      cur = cur.base === -1 ? { base: i, len: 1 } : { base: cur.base, len: cur.len + 1 };
    } else if (cur.base !== -1) {
      if (best.base === -1 || cur.len > best.len) best = cur;
      cur = { base: -1, len: 0 };
    }
  }
  if (best.len < 2) best = { base: -1, len: 0 };
  let out = '';
  for (let i = 0; i < 8; i++) {
    if (best.base !== -1 && i >= best.base && i < best.base + best.len) {
      if (i === best.base) out += ':';
      continue;
    }
    if (i !== 0) out += ':';
    if (i === 6 && best.base === 0 && (best.len === 6 || (best.len === 5 && w[5] === 0xffff))) {
      out += Array.from(b.subarray(12)).join('.');
      return out;
    }
    out += (w[i] as number).toString(16);
  }
  if (best.base !== -1 && best.base + best.len === 8) out += ':';
  return out;
}

/** `s` as the addon prints it (IPv6 compressed), or undefined if it is no address the addon accepts. */
export function canonicalIP(s: string): string | undefined {
  const b = ipBytes(s);
  return b === undefined ? undefined : formatIP(b);
}

/** The DEM's table order, on two addresses the addon accepts: IPv4 before IPv6, then by address bytes. */
export function compareIP(a: string, b: string): number {
  const x = ipBytes(a) ?? new Uint8Array(0);
  const y = ipBytes(b) ?? new Uint8Array(0);
  if (x.length !== y.length) return x.length - y.length;
  for (let i = 0; i < x.length; i++) if (x[i] !== y[i]) return (x[i] as number) - (y[i] as number);
  return 0;
}

/** An ordinary domain id: an integer 0..DOMID_MAX. */
export function isDomid(n: number): boolean {
  return Number.isInteger(n) && n >= 0 && n <= DOMID_MAX;
}

/** The compiled addon could not be found or loaded. */
export class AddonLoadError extends Error {
  readonly code = 'EADDONLOAD';
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'AddonLoadError';
  }
}

const here = path.dirname(fileURLToPath(import.meta.url));

/**
 * Where the addon is looked for: $FASTIVC_ADDON, else native/build/Release/fastivc.node found relative to this file
 * both when run from source (native/lib) and when compiled (build/ts/native/lib).
 */
export function addonCandidates(env: NodeJS.ProcessEnv = process.env): string[] {
  const fromEnv = env[ADDON_ENV];
  if (fromEnv !== undefined && fromEnv !== '') return [path.resolve(fromEnv)];
  return [
    path.resolve(here, '../build/Release/fastivc.node'),
    path.resolve(here, '../../../../native/build/Release/fastivc.node'),
  ];
}

let cached: FastivcBinding | undefined;

/** Loads (once) and returns the binding. Throws AddonLoadError if it is missing or does not load. */
export function loadBinding(file?: string): FastivcBinding {
  if (file === undefined && cached) return cached;
  const candidates = file !== undefined ? [path.resolve(file)] : addonCandidates();
  const found = candidates.find((c) => existsSync(c));
  if (found === undefined) {
    throw new AddonLoadError(
      `fastivc native addon not built (looked for ${candidates.join(', ')}); run: npm run build:native`,
    );
  }
  let mod: unknown;
  try {
    mod = createRequire(import.meta.url)(found);
  } catch (e) {
    throw new AddonLoadError(`cannot load fastivc native addon ${found}: ${(e as Error).message}`, { cause: e });
  }
  const b = mod as Partial<FastivcBinding>;
  if (typeof b.probe !== 'function') throw new AddonLoadError(`${found} is not the fastivc addon (no probe())`);
  if (typeof b.query !== 'function') {
    throw new AddonLoadError(`${found} is an older fastivc addon without the DEM calls; run: npm run build:native`);
  }
  const binding = b as FastivcBinding;
  if (file === undefined) cached = binding;
  return binding;
}

/**
 * Checks that the Xen privcmd device can be opened read-write (dom0 with xen-privcmd loaded, running as root).
 * Resolves {device, ok: true}; rejects with XenError (code ENOENT: no Xen here, EACCES: not root, ...).
 */
export async function probe(device?: string, binding: FastivcBinding = loadBinding()): Promise<ProbeResult> {
  try {
    return await binding.probe(device);
  } catch (e) {
    throw XenError.from(e);
  }
}

/**
 * The Domain Event Manager as dom0 tools see it (the `fastivc map`/`dem` commands, ivctop). Implemented over the
 * addon by openDem(), over the in-memory mock by openDem({binding: createMockDem()}).
 *
 * Argument errors throw synchronously (TypeError: wrong type; RangeError: not an IPv4 or IPv6 address, domid
 * outside 0..DOMID_MAX), as does AddonLoadError when the addon is not built; everything the device or the hypervisor
 * answers rejects with a XenError:
 *   ENOENT (open)  no /dev/xen/privcmd: not dom0, or xen-privcmd not loaded
 *   EACCES (open)  not root
 *   EPERM          the DEM refused: the caller is not privileged (ip_set, ip_del, query are dom0-only)
 *   EOPNOTSUPP / ENOSYS  the hypervisor has no DEM (not a fastivc Xen, or booted with evtmgr=0)
 *   ENOTTY         the device is not a privcmd device
 *   ESRCH, ENOSPC, ENOENT, EINVAL ...  op-specific (see evtmgr.h); the message says what it means
 */
export interface DemSource {
  /** The privcmd device used. */
  readonly device: string;
  info(): Promise<DemInfo>;
  /** Makes `domid` the owner of `addr` (replacing any previous owner). Privileged. */
  ipSet(addr: string, domid: number): Promise<void>;
  /** Removes `addr` from the table; with `domid`, only if that domain owns it (ESRCH otherwise). Privileged. */
  ipDel(addr: string, domid?: number): Promise<void>;
  /** The domain that owns `addr`, or null when none of this host does. Any domain. */
  ipLookup(addr: string): Promise<number | null>;
  /** Every IP entry or every event record, with the DEM's counters. Privileged. */
  query<W extends DemQueryWhat>(what: W): Promise<DemQueryResult<W>>;
}

export interface OpenDemOptions {
  /** The binding to use (default: the addon, loaded on first call). */
  binding?: FastivcBinding;
  /** The privcmd device (default /dev/xen/privcmd). */
  device?: string;
}

/** A DemSource over the addon (default) or any binding with the same contract (mock.ts). */
export function openDem(options: OpenDemOptions = {}): DemSource {
  const device = options.device ?? DEFAULT_PRIVCMD;
  const b = (): FastivcBinding => options.binding ?? loadBinding();
  // Synchronous throws (bad arguments, missing addon) pass through; rejections become XenError.
  const wrap = <T>(p: Promise<T>): Promise<T> =>
    p.catch((e: unknown) => {
      throw XenError.from(e);
    });
  return {
    device,
    info: () => wrap(b().info(device)),
    ipSet: (addr, domid) => wrap(b().ipSet(addr, domid, device)),
    ipDel: (addr, domid) => wrap(b().ipDel(addr, domid ?? null, device)),
    ipLookup: (addr) => wrap(b().ipLookup(addr, device)),
    query: (what) => wrap(b().query(what, device)),
  };
}
