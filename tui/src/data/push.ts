/**
 * A data source fed from outside: whoever receives snapshots (the lab runner, from dom0's `ivctop --emit` lines on
 * the serial console) pushes them, and ivctop's Monitor polls it like any other source. next() returns the newest
 * snapshot pushed that it has not returned yet, waiting for one if there is none; once the stream has ended it
 * keeps returning the newest (the Monitor ignores a repeated sample, so the last rates stay on screen).
 *
 *   const src = pushSource({ name: 'lab dom0' });
 *   src.push(snapshot);        // from the serial stream
 *   render(<Monitor source={src} intervalMs={1000} />);
 *   src.end();                 // the lab is over
 */
import { normalizeSnapshot, type DataSource, type Snapshot } from './types.js';

export interface PushSource extends DataSource {
  readonly kind: 'stream';
  /** A new snapshot; an older one (by time) than the newest is ignored. One from before links gets `peers: []`. */
  push(snapshot: Snapshot): void;
  /** No more snapshots will come: waiting next() calls return the newest (or reject if there never was one). */
  end(): void;
  /** Snapshots pushed (and kept). */
  count(): number;
  /** The newest snapshot and the one before it (for rates), if any. */
  latest(): Snapshot | undefined;
  previous(): Snapshot | undefined;
  ended(): boolean;
}

interface Waiter {
  resolve: (s: Snapshot) => void;
  reject: (e: Error) => void;
}

export function pushSource(opts: { name?: string } = {}): PushSource {
  const name = opts.name ?? 'stream';
  let newest: Snapshot | undefined;
  let before: Snapshot | undefined;
  let returned: Snapshot | undefined;
  let n = 0;
  let over = false;
  let waiters: Waiter[] = [];

  const settle = (): void => {
    const ws = waiters;
    waiters = [];
    for (const w of ws) {
      if (newest !== undefined) {
        returned = newest;
        w.resolve(newest);
      } else {
        w.reject(new Error(`${name}: the stream ended before any snapshot`));
      }
    }
  };

  return {
    kind: 'stream',
    describe: () => `${name} #${n}${over ? ' (ended)' : ''}`,
    next: () => {
      if (newest !== undefined && (newest !== returned || over)) {
        returned = newest;
        return Promise.resolve(newest);
      }
      if (over) return Promise.reject(new Error(`${name}: the stream ended before any snapshot`));
      return new Promise<Snapshot>((resolve, reject) => waiters.push({ resolve, reject }));
    },
    close: () => {
      over = true;
      settle();
    },
    push: (s) => {
      if (over) return;
      if (newest !== undefined && s.time < newest.time) return;
      before = newest;
      newest = normalizeSnapshot(s);
      n += 1;
      settle();
    },
    end: () => {
      over = true;
      settle();
    },
    count: () => n,
    latest: () => newest,
    previous: () => before,
    ended: () => over,
  };
}
