/**
 * Calls `callback` at once and then every `intervalMs` while `active`; stops on cleanup. The latest callback is
 * kept in a ref, so a re-render does not restart the timer, and a tick is skipped while the previous one (async)
 * is still running.
 */
import { useEffect, useRef } from 'react';

export function usePoll(callback: () => void | Promise<void>, intervalMs: number, active = true): void {
  const saved = useRef(callback);
  useEffect(() => {
    saved.current = callback;
  }, [callback]);

  useEffect(() => {
    if (!active) return undefined;
    let stopped = false;
    let running = false;
    const tick = async (): Promise<void> => {
      if (running || stopped) return;
      running = true;
      try {
        await saved.current();
      } finally {
        running = false;
      }
    };
    void tick();
    const id = setInterval(() => void tick(), intervalMs);
    return () => {
      stopped = true;
      clearInterval(id);
    };
  }, [intervalMs, active]);
}
