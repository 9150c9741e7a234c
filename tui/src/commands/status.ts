/**
 * `fastivc status [--json | --openmetrics [--out FILE] | --serve [host:]port]`: the DEM (info, counters, IP table
 * size) and the module's statistics of this domain (/proc/fastivc/stats) and of the domUs (their mirrors in
 * xenstore), with each domain's links to its peer domains (/proc/fastivc/peers, one `link A ↔ B` line each, as
 * ivctop's links table shows them). Each part that cannot be read is one line under "problems" (or in `errors` with
 * --json, or counted in `fastivc_scrape_errors`); the command still exits 0, since what it could read is the answer.
 */
import { Option, type Command } from 'commander';
import { sampleLive, DEFAULT_PROC_DIR } from '../data/live.js';
import { linksOf, type LinkRow } from '../data/model.js';
import { fallbacksOf } from '../data/parse.js';
import { isDemError, type DomainReport, type Snapshot } from '../data/types.js';
import type { CliDeps } from '../deps.js';
import { toOpenMetrics } from '../metrics/openmetrics.js';
import { serveMetrics } from '../metrics/serve.js';
import { writeAtomic } from '../metrics/textfile.js';
import { linkName } from '../ivctop/format.js';
import { parseListen, parseText } from '../options.js';
import { ENV_HELP } from './map.js';
import { stopSignal } from './sync.js';

export interface StatusJson {
  dem: { error: string } | { info?: unknown; counters: unknown; ipEntries: number; records: number };
  /** Each with its `peers` lines (/proc/fastivc/peers; [] from a module older than links). */
  domains: DomainReport[];
  /** The links, as ivctop's model has them: one per reporting domain and peer domain, with the reuse ratio. */
  links: LinkRow[];
  errors: string[];
}

export function statusJson(s: Snapshot): StatusJson {
  const dem = isDemError(s.dem)
    ? { error: s.dem.error }
    : { info: s.dem.info, counters: s.dem.counters, ipEntries: s.dem.ipTable.length, records: s.dem.records.length };
  return { dem, domains: s.domains, links: linksOf(s), errors: s.errors };
}

const n = (v: number | string | undefined): string => (v === undefined ? '?' : String(v));

function domainLine(d: DomainReport): string {
  const st = d.stats;
  if (Object.keys(st).length === 0) return `${d.sockets.length} tunnelled sockets mirrored, no statistics`;
  const fb = Object.entries(fallbacksOf(st)).filter(([, v]) => v > 0);
  const fbTotal = fb.reduce((x, [, v]) => x + v, 0);
  return (
    `fastivc ${n(st.version)}: ${n(st.sockets)} sockets, ${n(st.tunnels_open)} tunnels open ` +
    `(${n(st.tunnels_created)} created, ${n(st.tunnels_mapped)} mapped), ${n(st.bytes_tx)} B sent, ` +
    `${n(st.bytes_rx)} B received, ${n(st.channels)} x ${n(st.channel_size)} B channels, ` +
    `${n(st.violations)} violations, fallbacks ${fbTotal}` +
    (fb.length > 0 ? ` (${fb.map(([k, v]) => `${k} ${v}`).join(', ')})` : '') +
    // A module with links (older ones have no link_* keys).
    (st.link_setups !== undefined || st.link_reuses !== undefined
      ? `; links: ${n(st.links_pooled)} pooled, ${n(st.links_parked)} parked (${n(st.link_pages)} pages), ` +
        `${n(st.link_setups)} setups, ${n(st.link_reuses)} reuses, ${n(st.link_evictions)} evictions`
      : '')
  );
}

const plural = (k: number, one: string, many = `${one}s`): string => `${k} ${k === 1 ? one : many}`;

/**
 * One link as `fastivc status` prints it, after `link A ↔ B`:
 * "pages 12/4096, 1 connection, 2 pooled, 1 parked, 40 reuses, 8 setups (83% reused)".
 */
export function linkLine(l: LinkRow): string {
  return (
    `pages ${l.pages}/${l.quota}, ${plural(l.sockets, 'connection')}, ${l.pooled} pooled, ${l.parked} parked, ` +
    `${plural(l.reuses, 'reuse')}, ${plural(l.setups, 'setup')}` +
    (l.reuseRatio === null ? '' : ` (${Math.round(l.reuseRatio * 100)}% reused)`)
  );
}

export function formatStatus(s: Snapshot): string {
  const rows: [string, string][] = [];
  if (isDemError(s.dem)) rows.push(['DEM', `unavailable: ${s.dem.error}`]);
  else {
    const { info, counters: c } = s.dem;
    if (info) rows.push(['DEM', `ABI ${info.abiVersion}, VIRQ ${info.virq}, this domain ${info.domid}`]);
    rows.push([
      'counters',
      `raises ${c.raises} (denied ${c.raisesDenied}), VIRQs ${c.virqs}, fetches ${c.fetches}, ` +
        `events delivered ${c.eventsDelivered}, lookups ${c.lookups}`,
    ]);
    rows.push(['records', `${c.records} now (${c.pending} with pending events), ${c.recordsCreated} created, ${c.recordsFreed} freed`]);
    rows.push(['IP table', `${s.dem.ipTable.length} entries`]);
  }
  if (s.domains.length === 0) rows.push(['module', 'no domain reports statistics']);
  const links = linksOf(s);
  for (const d of s.domains) {
    rows.push([`dom ${d.domid} (${d.source})`, domainLine(d)]);
    for (const l of links) if (l.domain === d.domid) rows.push([`link ${linkName(l)}`, linkLine(l)]);
  }
  const w = Math.max(...rows.map(([k]) => k.length));
  let out = rows.map(([k, v]) => `${k.padEnd(w)}  ${v}\n`).join('');
  if (s.errors.length > 0) out += `problems:\n${s.errors.map((e) => `  ${e}\n`).join('')}`;
  return out;
}

interface StatusFlags {
  json?: boolean;
  openmetrics?: boolean;
  out?: string;
  serve?: { host: string; port: number };
  procDir: string;
  xenstore: boolean;
}

const METRICS_HELP = `
--openmetrics, --out and --serve give the counters as OpenMetrics text: fastivc_dem_* (the DEM), per domain
fastivc_tunnel_*, fastivc_link_*, fastivc_fallbacks_total{reason} and the rest with a domain label, per link
fastivc_peer_*{domain,peer} (pages against the quota, sockets, pooled, parked, setups, reuses), and fastivc_dem_up,
fastivc_module_up and fastivc_scrape_errors for what could not be read. For node_exporter's textfile collector:
  fastivc status --out /var/lib/prometheus/node-exporter/fastivc.prom   (e.g. from cron)
`;

export function registerStatusCommand(program: Command, deps: CliDeps): void {
  program
    .command('status')
    .description("the DEM's counters and IP table size, and the module's statistics of this domain and the domUs")
    .addOption(new Option('--json', 'print JSON: {dem, domains, links, errors}').conflicts(['openmetrics', 'out', 'serve']))
    .option('--openmetrics', 'print the counters as OpenMetrics text (Prometheus)')
    .addOption(
      new Option('--out <file>', 'write the OpenMetrics text to FILE atomically (via FILE.tmp.<pid>)')
        .argParser(parseText)
        .conflicts('serve'),
    )
    .option(
      '--serve <[host:]port>',
      'serve GET /metrics (OpenMetrics, sampled per request) until SIGINT/SIGTERM; a port alone is 127.0.0.1',
      parseListen,
    )
    .option('--proc-dir <dir>', "this domain's module statistics folder", parseText, DEFAULT_PROC_DIR)
    .option('--no-xenstore', "do not read the domUs' mirrors from xenstore")
    .addHelpText('after', METRICS_HELP + ENV_HELP)
    .action(async (flags: StatusFlags) => {
      const cache = {};
      const sample = (): Promise<Snapshot> =>
        sampleLive(
          {
            dem: deps.dem,
            procDir: flags.procDir,
            xenstore: flags.xenstore,
            ...(deps.exec ? { exec: deps.exec } : {}),
            ...(deps.readFile ? { readFile: deps.readFile } : {}),
          },
          cache,
        );
      if (flags.serve !== undefined) {
        const stop = deps.signal ? { signal: deps.signal, dispose: () => {} } : stopSignal();
        try {
          await serveMetrics({
            ...flags.serve,
            render: async () => toOpenMetrics(await sample()),
            signal: stop.signal,
            onListening: (url) => deps.err(`fastivc status: serving ${url}\n`),
          });
        } finally {
          stop.dispose();
        }
        return;
      }
      const s = await sample();
      if (flags.out !== undefined) await writeAtomic(flags.out, toOpenMetrics(s));
      else if (flags.openmetrics === true) deps.out(toOpenMetrics(s));
      else deps.out(flags.json === true ? `${JSON.stringify(statusJson(s), null, 2)}\n` : formatStatus(s));
    });
}
