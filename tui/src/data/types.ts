/**
 * The data ivctop and `fastivc status` show, as one typed snapshot per sample: the Domain Event Manager's view
 * (records, counters, IP table) and each domain's module statistics (guest-kmod/README.md, "Statistics").
 *
 * Every part fails on its own: a missing module, a missing toolstack or a hypervisor without the DEM leaves that part
 * empty with a message in `errors` (or `dem.error`), never an exception.
 */
import type { DemCounters, DemInfo, DemRecord, IpEntry } from '../../../native/lib/index.js';

/** Statistics format version this code reads (the `format` key of /proc/fastivc/stats). */
export const STATS_FORMAT = 1;

/** Direction states of a socket context (`tx=`, `rx=`). */
export type DirState = 'tcp' | 'creating' | 'open' | 'reverted' | 'closed' | 'broken' | 'resend';
/** Socket context modes (`mode=`). */
export type SockMode = 'native' | 'tunnel' | 'broken' | 'closed';

/** One line of /proc/fastivc/sockets (or one xenstore sock/<id> node), parsed. Unknown keys are ignored. */
export interface SockLine {
  id: number;
  /** "a.b.c.d:port" */
  local: string;
  remote: string;
  /** The peer's domain id, or null for `-`. */
  peer: number | null;
  /** Kept as text: a newer module may report values this code does not know. */
  mode: SockMode | string;
  /** Fallback reason, or null for `-`. */
  reason: string | null;
  tx: DirState | string;
  txChannels: number;
  txChannelSize: number;
  txBytes: number;
  txInFlight: number;
  txStalls: number;
  rx: DirState | string;
  rxChannels: number;
  rxChannelSize: number;
  rxBytes: number;
  eventsRaised: number;
  eventsReceived: number;
  violations: number;
}

/** Where a domain's report came from: this domain's /proc, or a domain's mirror in xenstore (written by the guest). */
export type ReportSource = 'proc' | 'xenstore';

/**
 * One line of /proc/fastivc/peers (or its xenstore mirror data/fastivc/peers): what the reporting domain holds with
 * one peer domain, its link (`domain D pages N quota Q sockets S pooled P parked K setups U reuses R`).
 */
export interface PeerLine {
  /** The peer domain's id. */
  domain: number;
  /** Pages of the per-peer quota charged to that peer now (granted, mapped and held together). */
  pages: number;
  /** The quota (module parameter peer_pages_max). */
  quota: number;
  /** Our tunnel-mode sockets with that peer now. */
  sockets: number;
  /** Our sending tunnels to that peer kept granted in the link. */
  pooled: number;
  /** That peer's tunnels to us kept mapped in the link. */
  parked: number;
  /** Tunnels set up anew with that peer since load (grants or maps). */
  setups: number;
  /** Tunnels taken from the link, without a hypercall, since load. */
  reuses: number;
}

export interface DomainReport {
  domid: number;
  source: ReportSource;
  /** /proc/fastivc/stats as key -> value (numbers where the value is a number); empty when the domain wrote none. */
  stats: Record<string, number | string>;
  sockets: SockLine[];
  /** /proc/fastivc/peers, by peer domain; empty when the module writes none (older than links) or has no peer yet. */
  peers: PeerLine[];
}

/** The DEM part of a snapshot (dom0 only: query is privileged). */
export interface DemPart {
  info?: DemInfo;
  counters: DemCounters;
  /** Every event_info record; pending events per owner domain are computed from them. */
  records: DemRecord[];
  ipTable: IpEntry[];
}

export interface DemError {
  error: string;
}

export interface Snapshot {
  /** Milliseconds since the epoch when the sample was taken. */
  time: number;
  dem: DemPart | DemError;
  domains: DomainReport[];
  /** One line per part that could not be read (module not loaded, no toolstack, a bad line...). */
  errors: string[];
}

export function isDemError(d: DemPart | DemError): d is DemError {
  return typeof (d as DemError).error === 'string';
}

/**
 * Why a parsed JSON value is not a Snapshot (only the shape the model relies on is checked: time, dem, domains,
 * errors), or undefined when it is one. Used for recordings and for the snapshots dom0 streams to the lab runner.
 */
export function snapshotProblem(v: unknown): string | undefined {
  const s = v as Partial<Snapshot> | null;
  if (
    typeof s !== 'object' ||
    s === null ||
    Array.isArray(s) ||
    typeof s.time !== 'number' ||
    !Number.isFinite(s.time) ||
    typeof s.dem !== 'object' ||
    s.dem === null ||
    !Array.isArray(s.domains) ||
    !Array.isArray(s.errors)
  ) {
    return 'not a snapshot (needs time, dem, domains, errors)';
  }
  return undefined;
}

const PEER_FIELDS = ['domain', 'pages', 'quota', 'sockets', 'pooled', 'parked', 'setups', 'reuses'] as const;

/** A well-formed peer line: every field a non-negative safe integer. */
export function isPeerLine(v: unknown): v is PeerLine {
  if (typeof v !== 'object' || v === null) return false;
  const o = v as Record<string, unknown>;
  return PEER_FIELDS.every((k) => Number.isSafeInteger(o[k]) && (o[k] as number) >= 0);
}

/**
 * A report's well-formed peer lines; [] for a report without them (a recording or stream from before links). Reports
 * that parsePeers filled are always well-formed; snapshots from elsewhere (recordings, streams) are checked here.
 */
export function peersOf(d: DomainReport): PeerLine[] {
  const peers = (d as Partial<DomainReport>).peers;
  return Array.isArray(peers) ? peers.filter(isPeerLine) : [];
}

/**
 * A snapshot that passed snapshotProblem, with what older producers did not write filled in (`peers: []` on each
 * domain report), so the rest of the code can rely on the current shape. `s` itself is left as it is: the result is
 * `s` when nothing was missing, else a copy (shallow, but for the reports it completes).
 */
export function normalizeSnapshot(s: Snapshot): Snapshot {
  const lacks = (d: DomainReport): boolean =>
    typeof d === 'object' && d !== null && !Array.isArray((d as Partial<DomainReport>).peers);
  if (!s.domains.some(lacks)) return s;
  return { ...s, domains: s.domains.map((d) => (lacks(d) ? { ...d, peers: [] } : d)) };
}

/**
 * Where snapshots come from: the live system (dom0) or a recording. next() never rejects for a failing part; it may
 * reject only for a programming error, which callers show as a message.
 */
export interface DataSource {
  /** `stream`: snapshots pushed from elsewhere (the lab runner's serial console, see push.ts). */
  readonly kind: 'live' | 'replay' | 'stream';
  /** One line for the header: "live", "replay file.jsonl 3/40", "replay ... (ended)", "lab dom0 #12". */
  describe(): string;
  next(): Promise<Snapshot>;
  close(): void;
}
