/**
 * Recorded snapshot streams: one JSON Snapshot per line (`ivctop --record FILE` writes them). A replay source plays
 * one back either at its recorded pace (each next() returns the newest snapshot whose recorded offset has elapsed
 * since the replay began) or stepped (each next() returns the following snapshot). At the end it keeps returning the
 * last one and says "(ended)".
 */
import { appendFileSync, readFileSync, writeFileSync } from 'node:fs';
import { normalizeSnapshot, snapshotProblem, type DataSource, type Snapshot } from './types.js';

/** Parses a recording; throws Error naming the first bad line. Recordings from before links get `peers: []`. */
export function parseRecording(text: string, name = 'recording'): Snapshot[] {
  const out: Snapshot[] = [];
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const line = (lines[i] as string).trim();
    if (line === '') continue;
    let v: unknown;
    try {
      v = JSON.parse(line);
    } catch {
      throw new Error(`${name}:${i + 1}: not JSON`);
    }
    const problem = snapshotProblem(v);
    if (problem !== undefined) throw new Error(`${name}:${i + 1}: ${problem}`);
    out.push(normalizeSnapshot(v as Snapshot));
  }
  if (out.length === 0) throw new Error(`${name}: no snapshots`);
  return out;
}

export interface ReplayOptions {
  pace: 'recorded' | 'step';
  /** Label for describe() (the file name). */
  name?: string;
  now?: () => number;
}

export function replaySource(snapshots: readonly Snapshot[], opts: ReplayOptions): DataSource {
  if (snapshots.length === 0) throw new Error('replay: no snapshots');
  const now = opts.now ?? Date.now;
  const name = opts.name ?? 'recording';
  const first = (snapshots[0] as Snapshot).time;
  let index = -1;
  let start: number | undefined;
  const ended = (): boolean => index >= snapshots.length - 1;
  return {
    kind: 'replay',
    describe: () => `replay ${name} ${Math.max(index + 1, 0)}/${snapshots.length}${ended() ? ' (ended)' : ''}`,
    next: () => {
      if (opts.pace === 'step') {
        index = Math.min(index + 1, snapshots.length - 1);
      } else {
        const t = now();
        start ??= t;
        const due = first + (t - start);
        while (index + 1 < snapshots.length && (snapshots[index + 1] as Snapshot).time <= due) index += 1;
        if (index < 0) index = 0;
      }
      return Promise.resolve(structuredClone(snapshots[index] as Snapshot));
    },
    close: () => {},
  };
}

/** Reads FILE and returns a replay source over it (throws Error with a clear message for a bad file). */
export function replayFile(file: string, opts: Omit<ReplayOptions, 'name'>): DataSource {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    throw new Error(`cannot read ${file}: ${(e as Error).message}`);
  }
  return replaySource(parseRecording(text, file), { ...opts, name: file });
}

/** Wraps a source so every snapshot it gives is appended to FILE (truncated first) as one JSON line. */
export function recordingTo(file: string, source: DataSource): DataSource {
  writeFileSync(file, '');
  return {
    kind: source.kind,
    describe: () => `${source.describe()}, recording to ${file}`,
    next: async () => {
      const s = await source.next();
      appendFileSync(file, `${JSON.stringify(s)}\n`);
      return s;
    },
    close: () => source.close(),
  };
}
