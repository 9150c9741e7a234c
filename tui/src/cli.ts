#!/usr/bin/env node
/**
 * fastivc command-line entry point. Parses arguments and dispatches; the work lives in commands/*.
 * Runs as `node build/ts/tui/src/cli.js` (after tsc) or `npx tsx tui/src/cli.ts`.
 *
 * Exit codes: 0 success, 1 the command failed (e.g. a lab scenario failed), 2 bad arguments.
 */
import { CommanderError } from 'commander';
import { EXIT_USAGE, buildProgram } from './program.js';

async function main(argv: string[]): Promise<void> {
  const program = buildProgram();
  try {
    await program.parseAsync(argv);
  } catch (e) {
    if (e instanceof CommanderError) {
      // commander has already printed its one-line message (or the help/version text).
      process.exitCode = e.exitCode === 0 ? 0 : EXIT_USAGE;
      return;
    }
    const message = e instanceof Error ? e.message : String(e);
    process.stderr.write(`fastivc: ${message}\n`);
    if (process.env.FASTIVC_DEBUG && e instanceof Error && e.stack) process.stderr.write(`${e.stack}\n`);
    process.exitCode = 1;
  }
}

await main(process.argv);
