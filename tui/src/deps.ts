/**
 * What the `fastivc` commands take from outside, so tests can run them in-process: where output goes and which
 * DEM they talk to.
 *
 * The default DEM is the native addon on /dev/xen/privcmd. Environment, for manual runs and tests:
 *   FASTIVC_PRIVCMD=<path>        the privcmd device (default /dev/xen/privcmd)
 *   FASTIVC_DEM_MOCK=1            use the in-memory mock DEM (native/lib/mock.ts) instead of the addon: privileged,
 *                                 empty table; `unprivileged` makes it answer EPERM like a domU, `nodem` like a Xen
 *                                 without the DEM (EOPNOTSUPP); 0 or empty means the addon
 *   FASTIVC_DEM_MOCK_STATE=<file> with the mock: keep its IP table in this JSON file, so `map set` then `map list`
 *                                 in two runs see the same table
 */
import { openDem, type DemSource } from '../../native/lib/index.js';
import { createMockDem, type MockDemOptions } from '../../native/lib/mock.js';
import type { CommandRunner, FileReader, LineWatcher } from './data/system.js';

export interface CliDeps {
  /** The DEM the map/dem commands use; called when a command runs (not when arguments are parsed). */
  dem: () => DemSource;
  /** Standard output and error (commander's own messages go to err too). */
  out: (text: string) => void;
  err: (text: string) => void;
  /** Runs xenstore-ls/xenstore-list (status, sync); default: the real commands. */
  exec?: CommandRunner;
  /** Follows `xenstore-watch` (sync's loop); null: poll only; default: the real command. */
  watch?: LineWatcher | null;
  /** Reads /proc/fastivc/* (status); default: the file system. */
  readFile?: FileReader;
  /** Stops the long-running commands (sync's loop); default: SIGINT or SIGTERM. */
  signal?: AbortSignal;
}

export const MOCK_ENV = 'FASTIVC_DEM_MOCK';
export const MOCK_STATE_ENV = 'FASTIVC_DEM_MOCK_STATE';
export const PRIVCMD_ENV = 'FASTIVC_PRIVCMD';

/** The DEM selected by the environment (see above). Throws on a FASTIVC_DEM_MOCK value it does not know. */
export function demFromEnv(env: NodeJS.ProcessEnv = process.env): DemSource {
  const device = env[PRIVCMD_ENV] !== undefined && env[PRIVCMD_ENV] !== '' ? env[PRIVCMD_ENV] : undefined;
  const mock = env[MOCK_ENV] ?? '';
  if (mock === '' || mock === '0') return openDem(device !== undefined ? { device } : {});
  const opts: MockDemOptions = {};
  const state = env[MOCK_STATE_ENV];
  if (state !== undefined && state !== '') opts.stateFile = state;
  if (mock === 'unprivileged') opts.privileged = false;
  else if (mock === 'nodem') opts.dem = 'EOPNOTSUPP';
  else if (mock !== '1') throw new Error(`${MOCK_ENV} must be 1, unprivileged or nodem (got '${mock}')`);
  return openDem({ binding: createMockDem(opts) });
}

export function defaultDeps(): CliDeps {
  return {
    dem: () => demFromEnv(),
    out: (text) => process.stdout.write(text),
    err: (text) => process.stderr.write(text),
  };
}
