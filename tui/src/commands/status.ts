/**
 * `fastivc status [--json]`: the DEM (info, counters, IP table size) and the module's statistics of this domain
 * (/proc/fastivc/stats) and of the domUs (their mirrors in xenstore). Each part that cannot be read is one line under
 * "problems" (or in `errors` with --json); the command still exits 0, since what it could read is the answer.
 */
import type { Command } from 'commander';
import { sampleLive, DEFAULT_PROC_DIR } from '../data/live.js';
import { fallbacksOf } from '../data/parse.js';
import { isDemError, type DomainReport, type Snapshot } from '../data/types.js';
import type { CliDeps } from '../deps.js';
import { parseText } from '../options.js';
import { ENV_HELP } from './map.js';

export interface StatusJson {
  dem: { error: string } | { info?: unknown; counters: unknown; ipEntries: number; records: number };
  domains: DomainReport[];
  errors: string[];
}

export function statusJson(s: Snapshot): StatusJson {
  const dem = isDemError(s.dem)
    ? { error: s.dem.error }
    : { info: s.dem.info, counters: s.dem.counters, ipEntries: s.dem.ipTable.length, records: s.dem.records.length };
  return { dem, domains: s.domains, errors: s.errors };
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
    (fb.length > 0 ? ` (${fb.map(([k, v]) => `${k} ${v}`).join(', ')})` : '')
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
  for (const d of s.domains) rows.push([`dom ${d.domid} (${d.source})`, domainLine(d)]);
  const w = Math.max(...rows.map(([k]) => k.length));
  let out = rows.map(([k, v]) => `${k.padEnd(w)}  ${v}\n`).join('');
  if (s.errors.length > 0) out += `problems:\n${s.errors.map((e) => `  ${e}\n`).join('')}`;
  return out;
}

export function registerStatusCommand(program: Command, deps: CliDeps): void {
  program
    .command('status')
    .description("the DEM's counters and IP table size, and the module's statistics of this domain and the domUs")
    .option('--json', 'print JSON: {dem, domains, errors}')
    .option('--proc-dir <dir>', "this domain's module statistics folder", parseText, DEFAULT_PROC_DIR)
    .option('--no-xenstore', "do not read the domUs' mirrors from xenstore")
    .addHelpText('after', ENV_HELP)
    .action(async (flags: { json?: boolean; procDir: string; xenstore: boolean }) => {
      const s = await sampleLive({
        dem: deps.dem,
        procDir: flags.procDir,
        xenstore: flags.xenstore,
        ...(deps.exec ? { exec: deps.exec } : {}),
        ...(deps.readFile ? { readFile: deps.readFile } : {}),
      });
      deps.out(flags.json === true ? `${JSON.stringify(statusJson(s), null, 2)}\n` : formatStatus(s));
    });
}
