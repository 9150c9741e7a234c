/**
 * `fastivc map ...`: the DEM's IP-to-domain table, which tells a guest whether a peer address is co-resident.
 * Only dom0 may change it; `set`, `del` and `list` need a privileged domain, `lookup` works anywhere. Addresses are
 * IPv4 or IPv6 (any form; shown compressed, as `list` prints them); an IPv4-mapped ::ffff:a.b.c.d is refused, as
 * the DEM refuses it: name it a.b.c.d.
 *
 *   fastivc map set <ip> <domid>     make domain <domid> the owner of <ip> (replacing any previous owner)
 *   fastivc map del <ip> [domid]     remove <ip>; with <domid>, only if that domain owns it
 *   fastivc map list [--json]        the table, in the DEM's order (by address)
 *   fastivc map lookup <ip> [--json] the owner of <ip>, or "none" when no domain of this host owns it
 *
 * Bad arguments: one `error:` line, exit 2. A refused hypercall: one `fastivc: <message>` line, exit 1.
 */
import type { Command } from 'commander';
import type { IpEntry } from '../../../native/lib/index.js';
import type { CliDeps } from '../deps.js';
import { parseDomid, parseIP } from '../options.js';

export const ENV_HELP = `
Environment:
  FASTIVC_PRIVCMD=<path>         privcmd device (default /dev/xen/privcmd)
  FASTIVC_DEM_MOCK=1             use an in-memory mock DEM instead of Xen (also: unprivileged, nodem)
  FASTIVC_DEM_MOCK_STATE=<file>  with the mock: keep its table in this JSON file between runs`;

/** The table as aligned text: ADDRESS left-aligned, DOMID right-aligned. */
export function formatIpTable(entries: readonly IpEntry[]): string {
  const addrWidth = Math.max('ADDRESS'.length, ...entries.map((e) => e.addr.length));
  const domWidth = Math.max('DOMID'.length, ...entries.map((e) => String(e.domid).length));
  const row = (a: string, d: string): string => `${a.padEnd(addrWidth)}  ${d.padStart(domWidth)}\n`;
  return row('ADDRESS', 'DOMID') + entries.map((e) => row(e.addr, String(e.domid))).join('');
}

export function registerMapCommands(program: Command, deps: CliDeps): void {
  const map = program
    .command('map')
    .description("the DEM's IP-to-domain table (which addresses belong to which domain of this host)")
    .addHelpText('after', ENV_HELP);

  map
    .command('set')
    .description('make domain <domid> the owner of <ip> (dom0 only)')
    .argument('<ip>', 'IPv4 or IPv6 address', parseIP)
    .argument('<domid>', 'domain id, 0..32751', parseDomid)
    .action(async (ip: string, domid: number) => {
      await deps.dem().ipSet(ip, domid);
    });

  map
    .command('del')
    .description('remove <ip> from the table; with <domid>, only if that domain owns it (dom0 only)')
    .argument('<ip>', 'IPv4 or IPv6 address', parseIP)
    .argument('[domid]', 'expected owner, 0..32751', parseDomid)
    .action(async (ip: string, domid: number | undefined) => {
      await deps.dem().ipDel(ip, domid);
    });

  map
    .command('list')
    .description('print the table (dom0 only)')
    .option('--json', 'print a JSON array of {addr, domid}')
    .action(async (flags: { json?: boolean }) => {
      const { entries } = await deps.dem().query('ip');
      deps.out(flags.json === true ? `${JSON.stringify(entries, null, 2)}\n` : formatIpTable(entries));
    });

  map
    .command('lookup')
    .description('print the domain that owns <ip>, or "none" if no domain of this host does')
    .argument('<ip>', 'IPv4 or IPv6 address', parseIP)
    .option('--json', 'print {addr, domid} (domid null for none)')
    .action(async (ip: string, flags: { json?: boolean }) => {
      const domid = await deps.dem().ipLookup(ip);
      deps.out(flags.json === true ? `${JSON.stringify({ addr: ip, domid })}\n` : `${domid ?? 'none'}\n`);
    });
}
