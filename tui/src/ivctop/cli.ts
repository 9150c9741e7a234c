#!/usr/bin/env node
/**
 * ivctop entry point: `node build/ts/tui/src/ivctop/cli.js` (after tsc) or `npx tsx tui/src/ivctop/cli.ts`.
 * Exit codes: 0, 2 bad arguments, 1 an unexpected failure.
 */
import { run } from './program.js';

const code = await run(process.argv);
if (code !== 0) process.exitCode = code;
