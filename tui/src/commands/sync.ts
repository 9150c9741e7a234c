/**
 * `fastivc sync [--once] [--interval ms] [--dom0-ip ip]...`: the dom0 daemon that keeps the DEM's IP table in step
 * with the toolstack (see ../sync.ts for the rules). Logs one line per change; `--once` does one pass and exits 0,
 * or 1 if an operation failed. Without --once it runs until SIGINT/SIGTERM, following `xenstore-watch`, or polling
 * every --interval ms when that is unavailable.
 */
import { InvalidArgumentError, type Command } from 'commander';
import { runCommand, watchLines } from '../data/system.js';
import type { CliDeps } from '../deps.js';
import { parseIP } from '../options.js';
import { syncLoop, syncPass, VIF_BACKEND, type SyncDeps } from '../sync.js';
import { ENV_HELP } from './map.js';

export const MIN_INTERVAL_MS = 100;

/** Milliseconds, an integer >= 100 (so `--interval 2` meaning seconds is refused, not a busy loop). */
export function parseMillis(value: string): number {
  const v = Number(value);
  if (!/^\d+$/.test(value) || !Number.isSafeInteger(v) || v < MIN_INTERVAL_MS) {
    throw new InvalidArgumentError(`expected milliseconds, an integer >= ${MIN_INTERVAL_MS}.`);
  }
  return v;
}

function collectIP(value: string, previous: string[]): string[] {
  const ip = parseIP(value);
  return previous.includes(ip) ? previous : [...previous, ip];
}

interface SyncFlags {
  once?: boolean;
  interval: number;
  dom0Ip: string[];
}

/** Aborts on SIGINT or SIGTERM (also used by `status --serve`); dispose() removes the handlers. */
export function stopSignal(): { signal: AbortSignal; dispose: () => void } {
  const c = new AbortController();
  const on = (): void => c.abort();
  process.once('SIGINT', on);
  process.once('SIGTERM', on);
  return {
    signal: c.signal,
    dispose: () => {
      process.off('SIGINT', on);
      process.off('SIGTERM', on);
    },
  };
}

export function registerSyncCommand(program: Command, deps: CliDeps): void {
  program
    .command('sync')
    .description(
      "keep the DEM's IP table in step with the toolstack: the vif addresses in xenstore and dom0's own (dom0 only)",
    )
    .option('--once', 'one pass, then exit (1 if an operation failed)')
    .option('--interval <ms>', 'polling period when xenstore-watch is unavailable, and retry delay', parseMillis, 2000)
    .option('--dom0-ip <ip>', 'an address of dom0 itself, IPv4 or IPv6 (repeatable)', collectIP, [] as string[])
    .addHelpText(
      'after',
      `\nSource: ${VIF_BACKEND}/<domid>/<devid>/ip (libxl's vif ip=), live domains under /local/domain.\n` +
        'Each change is one line: "set 192.0.2.11 -> dom 1", "del 192.0.2.12 (dom 2 gone)".\n' +
        ENV_HELP,
    )
    .action(async (flags: SyncFlags) => {
      const sd: SyncDeps = {
        dem: deps.dem,
        exec: deps.exec ?? runCommand,
        log: (l) => deps.out(`${l}\n`),
        warn: (l) => deps.err(`fastivc sync: ${l}\n`),
      };
      if (flags.once === true) {
        const r = await syncPass(sd, flags.dom0Ip);
        if (r.failures > 0) throw new Error(`sync: ${r.failures} failure(s) in the pass (see above)`);
        return;
      }
      const stop = deps.signal ? { signal: deps.signal, dispose: () => {} } : stopSignal();
      try {
        await syncLoop(sd, {
          dom0Ips: flags.dom0Ip,
          intervalMs: flags.interval,
          watch: deps.watch === undefined ? watchLines : deps.watch,
          signal: stop.signal,
        });
      } finally {
        stop.dispose();
      }
    });
}
