/** The project's own package.json, found by walking up from this file (works from source and from build/ts). */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export interface PackageInfo {
  name: string;
  version: string;
}

let cached: PackageInfo | undefined;

export function packageInfo(): PackageInfo {
  if (cached) return cached;
  let dir = path.dirname(fileURLToPath(import.meta.url));
  for (;;) {
    try {
      const pkg = JSON.parse(readFileSync(path.join(dir, 'package.json'), 'utf8')) as Partial<PackageInfo>;
      if (pkg.name === 'fastivc' && typeof pkg.version === 'string') {
        cached = { name: pkg.name, version: pkg.version };
        return cached;
      }
    } catch {
      // not here; keep walking up
    }
    const parent = path.dirname(dir);
    if (parent === dir) return { name: 'fastivc', version: 'unknown' };
    dir = parent;
  }
}

/**
 * The folder that holds the project's package.json: the repository root, or the installed app (the Debian package's
 * /usr/lib/fastivc/app, the lab's /lab/app), laid out like the repository (build/ts/..., lab/guest/..., build/bench/).
 * Found from this file's location, never from the current directory. Throws when there is none.
 */
export function appRoot(from: string = path.dirname(fileURLToPath(import.meta.url))): string {
  let dir = from;
  for (;;) {
    try {
      const pkg = JSON.parse(readFileSync(path.join(dir, 'package.json'), 'utf8')) as Partial<PackageInfo>;
      if (pkg.name === 'fastivc') return dir;
    } catch {
      // not here; keep walking up
    }
    const parent = path.dirname(dir);
    if (parent === dir) throw new Error(`no fastivc package.json above ${from}`);
    dir = parent;
  }
}
