/** `fastivc version`: the tool's version and its runtime. */
import type { Command } from 'commander';
import { packageInfo } from '../pkg.js';

export function versionText(): string {
  const { name, version } = packageInfo();
  return `${name} ${version} (node ${process.version}, ${process.platform}-${process.arch})`;
}

export function registerVersionCommand(program: Command): void {
  program
    .command('version')
    .description('print the fastivc version')
    .action(() => {
      process.stdout.write(`${versionText()}\n`);
    });
}
