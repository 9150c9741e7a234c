/**
 * The `fastivc` command tree. One module per command group under commands/; later groups (map, status, sync,
 * bench) register themselves here the same way.
 */
import { Command } from 'commander';
import { registerLabCommands } from './commands/lab.js';
import { registerVersionCommand } from './commands/version.js';
import { packageInfo } from './pkg.js';

/** Exit code for usage errors (bad arguments); 1 means the command ran and failed. */
export const EXIT_USAGE = 2;

export function buildProgram(): Command {
  const program = new Command('fastivc')
    .description('fast inter-VM communication for Xen: lab, tunnel table, status and benchmarks')
    .version(packageInfo().version, '-V, --version', 'print the version')
    .showSuggestionAfterError(true)
    // Set before adding subcommands so they inherit it: errors throw instead of calling process.exit.
    .exitOverride();
  registerLabCommands(program);
  registerVersionCommand(program);
  return program;
}
