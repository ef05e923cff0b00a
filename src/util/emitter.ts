/**
 * Typed events with `AbortSignal` support, for the endpoint, connections and the device
 * layer: `on(type, listener, { signal })` stops listening when the signal aborts, and
 * `next(type, { signal, filter })` waits for one event. Listener exceptions never reach the
 * emitter (they would escape from a socket callback, reliability.md §5.L.1).
 *
 * @module
 */
import { TypedEmitter, type Listener } from '../relay/client/events.ts';
import { abortable } from './abort.ts';

export type { Listener };

export interface ListenOptions {
  /** Stop listening when this aborts. */
  signal?: AbortSignal;
}

export class Emitter<Events extends Record<string, unknown>> extends TypedEmitter<Events> {
  /**
   * Add a listener; returns a function that removes it. With a `signal`, it is removed when
   * the signal aborts (and the abort listener goes away with it).
   */
  override on<K extends keyof Events>(type: K, listener: Listener<Events[K]>, options: ListenOptions = {}): () => void {
    const signal = options.signal;
    if (signal?.aborted) return () => undefined;
    const off = super.on(type, listener);
    if (signal === undefined) return off;
    const onAbort = (): void => off();
    signal.addEventListener('abort', onAbort, { once: true });
    return () => {
      signal.removeEventListener('abort', onAbort);
      off();
    };
  }

  /**
   * The next event of `type` (matching `filter`, if given). Rejects with the signal's reason
   * if it aborts first; the listener is removed either way.
   */
  next<K extends keyof Events>(type: K, options: ListenOptions & { filter?: (event: Events[K]) => boolean } = {}): Promise<Events[K]> {
    return abortable<Events[K]>(options.signal, (resolve) =>
      super.on(type, (event) => {
        if (options.filter === undefined || options.filter(event)) resolve(event);
      }),
    );
  }
}
