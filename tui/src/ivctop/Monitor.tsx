/**
 * The live ivctop: polls the data source with usePoll, keeps the last two snapshots (rates need both), follows the
 * terminal's size and the keys (s sort, f filter, p pause, q quit), and renders App.
 */
import { useApp, useInput, useStdin, useStdout } from 'ink';
import { useEffect, useMemo, useState } from 'react';
import { buildModel, domainsOf, filterModel, sortTunnels, SORT_KEYS, type SortKey } from '../data/model.js';
import type { DataSource, Snapshot } from '../data/types.js';
import { App } from './App.js';
import { usePoll } from './hooks/usePoll.js';

export interface MonitorProps {
  source: DataSource;
  intervalMs: number;
  sort?: SortKey;
  filter?: number | null;
  /** Fixed size (tests); default: the terminal's, following resizes. */
  width?: number;
  height?: number;
  /** Called when the user quits (before Ink unmounts). */
  onQuit?: () => void;
  /** What q does, for the keys line (default "quit"). */
  quitLabel?: string;
  /** Told the sort and filter in use whenever they change (so a caller can print the same view later). */
  onView?: (view: { sort: SortKey; filter: number | null }) => void;
}

function useTerminalSize(fixedW?: number, fixedH?: number): [number, number] {
  const { stdout } = useStdout();
  // One row less than the terminal: a frame as tall as the screen makes Ink clear it on every refresh.
  const read = (): [number, number] => [fixedW ?? stdout.columns ?? 80, fixedH ?? Math.max(1, (stdout.rows ?? 25) - 1)];
  const [size, setSize] = useState(read);
  useEffect(() => {
    const on = (): void => setSize(read());
    stdout.on('resize', on);
    return () => {
      stdout.off('resize', on);
    };
  }, [stdout, fixedW, fixedH]);
  return size;
}

export function Monitor(props: MonitorProps) {
  const { exit } = useApp();
  const { isRawModeSupported } = useStdin();
  const [width, height] = useTerminalSize(props.width, props.height);
  const [snaps, setSnaps] = useState<{ prev?: Snapshot; cur?: Snapshot }>({});
  const [error, setError] = useState<string | null>(null);
  const [paused, setPaused] = useState(false);
  const [sort, setSort] = useState<SortKey>(props.sort ?? 'throughput');
  const [filter, setFilter] = useState<number | null>(props.filter ?? null);
  const [label, setLabel] = useState(props.source.describe());

  usePoll(
    async () => {
      try {
        const s = await props.source.next();
        // The same sample again (an ended replay, a pushed stream with nothing new): keep the pair, so rates stay.
        setSnaps((p) => (p.cur && p.cur.time === s.time ? p : p.cur ? { prev: p.cur, cur: s } : { cur: s }));
        setError(null);
      } catch (e) {
        setError(e instanceof Error ? e.message : String(e));
      }
      setLabel(props.source.describe());
    },
    props.intervalMs,
    !paused,
  );

  const full = useMemo(() => (snaps.cur ? buildModel(snaps.cur, snaps.prev) : null), [snaps]);
  const shown = useMemo(() => {
    if (!full) return null;
    const m = filterModel(full, filter);
    return { ...m, tunnels: sortTunnels(m.tunnels, sort) };
  }, [full, filter, sort]);

  useEffect(() => {
    props.onView?.({ sort, filter });
  }, [sort, filter]);

  useInput(
    (input, key) => {
      if (input === 'q' || key.escape) {
        props.onQuit?.();
        exit();
      } else if (input === 'p') {
        setPaused((x) => !x);
      } else if (input === 's') {
        setSort((s) => SORT_KEYS[(SORT_KEYS.indexOf(s) + 1) % SORT_KEYS.length] as SortKey);
      } else if (input === 'f') {
        const choices: (number | null)[] = [null, ...(full ? domainsOf(full) : [])];
        setFilter((f) => choices[(choices.indexOf(f) + 1) % choices.length] ?? null);
      }
    },
    { isActive: isRawModeSupported === true },
  );

  return (
    <App
      model={shown}
      error={error}
      source={label}
      sort={sort}
      filter={filter}
      paused={paused}
      width={width}
      height={height}
      intervalMs={props.intervalMs}
      {...(props.quitLabel !== undefined ? { quitLabel: props.quitLabel } : {})}
    />
  );
}
