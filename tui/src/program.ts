/**
 * The `fastivc` command tree. One module per command group under commands/.
 */
import { Command, CommanderError } from 'commander';
import { registerBenchCommands } from './commands/bench.js';
import { registerDemCommands } from './commands/dem.js';
import { registerLabCommands } from './commands/lab.js';
import { registerMapCommands } from './commands/map.js';
import { registerStatusCommand } from './commands/status.js';
import { registerSyncCommand } from './commands/sync.js';
import { registerVersionCommand } from './commands/version.js';
import { defaultDeps, type CliDeps } from './deps.js';
import { packageInfo } from './pkg.js';

/** Exit code for usage errors (bad arguments); 1 means the command ran and failed. */
export const EXIT_USAGE = 2;

export function buildProgram(deps: CliDeps = defaultDeps()): Command {
  const program = new Command('fastivc')
    .description('fast inter-VM communication for Xen: lab, tunnel table, status and benchmarks')
    .version(packageInfo().version, '-V, --version', 'print the version')
    .showSuggestionAfterError(true)
    // Set before adding subcommands so they inherit them: errors throw instead of calling process.exit, and all
    // output goes through deps.
    .exitOverride()
    .configureOutput({ writeOut: deps.out, writeErr: deps.err });
  registerLabCommands(program);
  registerBenchCommands(program, deps);
  registerMapCommands(program, deps);
  registerDemCommands(program, deps);
  registerStatusCommand(program, deps);
  registerSyncCommand(program, deps);
  registerVersionCommand(program);
  return program;
}

/**
 * Parses and runs one command line (argv as process.argv: node, script, args...). Resolves with the exit code:
 * 0 success (or help/version), EXIT_USAGE after commander's one-line error, 1 after one `fastivc: <message>` line
 * for a failed command. The stack trace is added only with FASTIVC_DEBUG set.
 */
export async function run(argv: readonly string[], deps: CliDeps = defaultDeps()): Promise<number> {
  const program = buildProgram(deps);
  try {
    await program.parseAsync([...argv]);
    return 0;
  } catch (e) {
    if (e instanceof CommanderError) {
      // commander has already printed its one-line message (or the help/version text).
      return e.exitCode === 0 ? 0 : EXIT_USAGE;
    }
    const message = e instanceof Error ? e.message : String(e);
    deps.err(`fastivc: ${message}\n`);
    if (process.env.FASTIVC_DEBUG && e instanceof Error && e.stack) deps.err(`${e.stack}\n`);
    return 1;
  }
}
