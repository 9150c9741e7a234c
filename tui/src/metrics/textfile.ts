/**
 * `fastivc status --out FILE`: the file node_exporter's textfile collector reads, replaced atomically. The text goes
 * to FILE.tmp.<pid> in the same directory (the collector reads only *.prom, so it never sees the partial file), then
 * is renamed over FILE, so a reader sees the old file or the new one, never half of one.
 */
import { rename, rm, writeFile } from 'node:fs/promises';

/** Writes text to file atomically (see above). On failure the temporary file is removed and the error says which. */
export async function writeAtomic(file: string, text: string): Promise<void> {
  const tmp = `${file}.tmp.${process.pid}`;
  try {
    await writeFile(tmp, text, { mode: 0o644 });
    await rename(tmp, file);
  } catch (e) {
    await rm(tmp, { force: true }).catch(() => {});
    throw new Error(`cannot write ${file}: ${e instanceof Error ? e.message : String(e)}`);
  }
}
