/**
 * Coarse timeouts for work that happens thousands of times a second and almost never times
 * out (message exchanges): one shared interval checks every pending deadline, instead of a
 * timer set and cleared per operation. Precision: {@link COARSE_TICK_MS}.
 *
 * @module
 */

/** How often pending deadlines are checked (ms). */
export const COARSE_TICK_MS = 50;

interface Entry {
  readonly at: number;
  readonly fn: () => void;
}

const pending = new Set<Entry>();
let interval: ReturnType<typeof setInterval> | undefined;

function tick(): void {
  const now = performance.now();
  for (const e of pending) {
    if (e.at > now) continue;
    pending.delete(e);
    try {
      e.fn();
    } catch {
      // A deadline's callback failing is its owner's business.
    }
  }
  if (pending.size === 0 && interval !== undefined) {
    clearInterval(interval);
    interval = undefined;
  }
}

/** Call `fn` once `ms` have passed (to within a tick), unless the returned cancel runs first. */
export function coarseTimeout(ms: number, fn: () => void): () => void {
  const entry: Entry = { at: performance.now() + ms, fn };
  pending.add(entry);
  if (interval === undefined) {
    interval = setInterval(tick, COARSE_TICK_MS);
    interval.unref?.();
  }
  return () => {
    pending.delete(entry);
  };
}
