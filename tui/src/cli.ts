#!/usr/bin/env node
/**
 * fastivc command-line entry point. Parses arguments and dispatches; the work lives in commands/*.
 * Runs as `node build/ts/tui/src/cli.js` (after tsc) or `npx tsx tui/src/cli.ts`.
 *
 * Exit codes: 0 success, 1 the command failed (e.g. a lab scenario failed, the DEM refused), 2 bad arguments.
 */
import { run } from './program.js';

const code = await run(process.argv);
// A command may have set process.exitCode itself (lab run: 1 when a scenario failed).
if (code !== 0) process.exitCode = code;
