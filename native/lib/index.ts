/**
 * Typed wrapper around the fastivc native addon (native/src/addon.cc).
 *
 * The addon is loaded lazily, on first use, from $FASTIVC_ADDON or native/build/Release/fastivc.node, so importing
 * this module never fails on a machine where the addon has not been built; calling into it then throws an
 * AddonLoadError with the build command.
 */
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const DEFAULT_PRIVCMD = '/dev/xen/privcmd';
export const ADDON_ENV = 'FASTIVC_ADDON';

export interface ProbeResult {
  device: string;
  ok: true;
}

/** The raw binding as exported by addon.cc. */
export interface FastivcBinding {
  probe(path?: string): Promise<ProbeResult>;
  readonly defaultPrivcmdPath: string;
}

/** An operating-system error from the addon: `code` is the errno name (ENOENT, EACCES, ...), `errno` its number. */
export class XenError extends Error {
  readonly code: string;
  readonly errno: number;
  readonly syscall: string | undefined;
  readonly path: string | undefined;

  constructor(message: string, code: string, errno: number, syscall?: string, path?: string) {
    super(message);
    this.name = 'XenError';
    this.code = code;
    this.errno = errno;
    this.syscall = syscall;
    this.path = path;
  }

  /** Wraps an error thrown or rejected by the addon; other values are returned unchanged. */
  static from(e: unknown): unknown {
    if (e instanceof XenError) return e;
    if (e instanceof Error) {
      const x = e as Error & { code?: unknown; errno?: unknown; syscall?: unknown; path?: unknown };
      if (typeof x.code === 'string' && typeof x.errno === 'number') {
        const err = new XenError(
          e.message,
          x.code,
          x.errno,
          typeof x.syscall === 'string' ? x.syscall : undefined,
          typeof x.path === 'string' ? x.path : undefined,
        );
        err.stack = e.stack;
        return err;
      }
    }
    return e;
  }
}

/** The compiled addon could not be found or loaded. */
export class AddonLoadError extends Error {
  readonly code = 'EADDONLOAD';
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'AddonLoadError';
  }
}

const here = path.dirname(fileURLToPath(import.meta.url));

/**
 * Where the addon is looked for: $FASTIVC_ADDON, else native/build/Release/fastivc.node found relative to this file
 * both when run from source (native/lib) and when compiled (build/ts/native/lib).
 */
export function addonCandidates(env: NodeJS.ProcessEnv = process.env): string[] {
  const fromEnv = env[ADDON_ENV];
  if (fromEnv !== undefined && fromEnv !== '') return [path.resolve(fromEnv)];
  return [
    path.resolve(here, '../build/Release/fastivc.node'),
    path.resolve(here, '../../../../native/build/Release/fastivc.node'),
  ];
}

let cached: FastivcBinding | undefined;

/** Loads (once) and returns the binding. Throws AddonLoadError if it is missing or does not load. */
export function loadBinding(file?: string): FastivcBinding {
  if (file === undefined && cached) return cached;
  const candidates = file !== undefined ? [path.resolve(file)] : addonCandidates();
  const found = candidates.find((c) => existsSync(c));
  if (found === undefined) {
    throw new AddonLoadError(
      `fastivc native addon not built (looked for ${candidates.join(', ')}); run: npm run build:native`,
    );
  }
  let mod: unknown;
  try {
    mod = createRequire(import.meta.url)(found);
  } catch (e) {
    throw new AddonLoadError(`cannot load fastivc native addon ${found}: ${(e as Error).message}`, { cause: e });
  }
  const b = mod as Partial<FastivcBinding>;
  if (typeof b.probe !== 'function') throw new AddonLoadError(`${found} is not the fastivc addon (no probe())`);
  const binding = b as FastivcBinding;
  if (file === undefined) cached = binding;
  return binding;
}

/**
 * Checks that the Xen privcmd device can be opened read-write (dom0 with xen-privcmd loaded, running as root).
 * Resolves {device, ok: true}; rejects with XenError (code ENOENT: no Xen here, EACCES: not root, ...).
 */
export async function probe(device?: string, binding: FastivcBinding = loadBinding()): Promise<ProbeResult> {
  try {
    return await binding.probe(device);
  } catch (e) {
    throw XenError.from(e);
  }
}
