/** `fastivc dem info [--json]`: what the hypervisor's Domain Event Manager supports (any domain may ask). */
import type { Command } from 'commander';
import type { DemInfo } from '../../../native/lib/index.js';
import type { CliDeps } from '../deps.js';
import { ENV_HELP } from './map.js';

const LABELS: [keyof DemInfo, string][] = [
  ['abiVersion', 'ABI version'],
  ['virq', 'VIRQ'],
  ['maxIpPerDomain', 'max addresses per domain'],
  ['maxRecordsPerDomain', 'max records per domain'],
  ['maxPendingPerDomain', 'max pending per domain'],
  ['maxBatch', 'max batch'],
  ['domid', 'this domain'],
];

export function formatDemInfo(info: DemInfo): string {
  const width = Math.max(...LABELS.map(([, label]) => label.length));
  return LABELS.map(([key, label]) => `${label.padEnd(width)}  ${info[key]}\n`).join('');
}

export function registerDemCommands(program: Command, deps: CliDeps): void {
  const dem = program
    .command('dem')
    .description("the hypervisor's Domain Event Manager")
    .addHelpText('after', ENV_HELP);

  dem
    .command('info')
    .description('print the DEM ABI version, VIRQ and limits')
    .option('--json', 'print JSON')
    .action(async (flags: { json?: boolean }) => {
      const info = await deps.dem().info();
      deps.out(flags.json === true ? `${JSON.stringify(info, null, 2)}\n` : formatDemInfo(info));
    });
}
