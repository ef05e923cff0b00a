/**
 * Waiting with an `AbortSignal` without leaking: every wait adds its abort listener and
 * removes it again however the wait ends (resolved, rejected or aborted), so a long-lived
 * signal passed to many short waits does not accumulate listeners.
 *
 * @module
 */

/** The reason a signal was aborted with (an `AbortError` DOMException when none was given). */
export function abortReason(signal: AbortSignal): unknown {
  return signal.reason ?? new DOMException('The operation was aborted', 'AbortError');
}

/**
 * A promise settled by `executor` or by `signal` aborting, whichever comes first. The
 * executor may return a cleanup function; it runs exactly once when the wait ends, before
 * the promise settles, and the abort listener is removed at the same moment.
 */
export function abortable<T>(
  signal: AbortSignal | undefined,
  executor: (resolve: (value: T) => void, reject: (error: unknown) => void) => (() => void) | void,
): Promise<T> {
  if (signal?.aborted) return Promise.reject(abortReason(signal));
  return new Promise<T>((resolve, reject) => {
    let settled = false;
    let cleanup: (() => void) | void;
    const finish = (): void => {
      settled = true;
      signal?.removeEventListener('abort', onAbort);
      const c = cleanup;
      cleanup = undefined;
      c?.();
    };
    const onAbort = (): void => {
      if (settled) return;
      finish();
      reject(abortReason(signal!));
    };
    signal?.addEventListener('abort', onAbort, { once: true });
    const c = executor(
      (value) => {
        if (settled) return;
        finish();
        resolve(value);
      },
      (error) => {
        if (settled) return;
        finish();
        reject(error);
      },
    );
    if (settled) c?.();
    else cleanup = c;
  });
}

/** Resolves after `ms`, or rejects when `signal` aborts (the timer is cleared either way). */
export function delay(ms: number, signal?: AbortSignal): Promise<void> {
  return abortable<void>(signal, (resolve) => {
    const t = setTimeout(resolve, ms);
    return () => clearTimeout(t);
  });
}

/**
 * A signal that aborts when any of `signals` does or after `timeoutMs` (if given), and a
 * `dispose` that detaches it from its parents (call it when the operation ends so the
 * parents do not keep it alive).
 */
export function linkedSignal(signals: readonly (AbortSignal | undefined)[], timeoutMs?: number, timeoutReason?: () => unknown): { signal: AbortSignal; dispose: () => void } {
  const controller = new AbortController();
  const parents = signals.filter((s): s is AbortSignal => s !== undefined);
  const onAbort = (e: Event): void => controller.abort(abortReason(e.target as AbortSignal));
  let timer: ReturnType<typeof setTimeout> | undefined;
  const dispose = (): void => {
    for (const p of parents) p.removeEventListener('abort', onAbort);
    if (timer !== undefined) clearTimeout(timer);
    timer = undefined;
  };
  for (const p of parents) {
    if (p.aborted) {
      controller.abort(abortReason(p));
      return { signal: controller.signal, dispose };
    }
    p.addEventListener('abort', onAbort, { once: true });
  }
  if (timeoutMs !== undefined && Number.isFinite(timeoutMs)) {
    timer = setTimeout(() => controller.abort(timeoutReason ? timeoutReason() : new DOMException('The operation timed out', 'TimeoutError')), Math.max(0, timeoutMs));
    timer.unref?.();
  }
  controller.signal.addEventListener('abort', dispose, { once: true });
  return { signal: controller.signal, dispose };
}
