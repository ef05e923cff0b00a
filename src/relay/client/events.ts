/**
 * A minimal typed event emitter that works in browsers and Node alike. Listener exceptions
 * never propagate into the emitter (they would otherwise escape from a socket callback and
 * kill the process, reliability.md §5.L.1); they go to `onListenerError`.
 *
 * @module
 */

export type Listener<T> = (event: T) => void;

export class TypedEmitter<Events extends Record<string, unknown>> {
  readonly #listeners = new Map<keyof Events, Set<Listener<never>>>();
  readonly #onListenerError: (err: unknown, event: keyof Events) => void;

  constructor(onListenerError?: (err: unknown, event: keyof Events) => void) {
    this.#onListenerError =
      onListenerError ??
      ((err, event) => {
        console.error(`sdnet: a '${String(event)}' listener threw:`, err);
      });
  }

  /** Add a listener; returns a function that removes it. */
  on<K extends keyof Events>(type: K, listener: Listener<Events[K]>): () => void {
    let set = this.#listeners.get(type);
    if (set === undefined) {
      set = new Set();
      this.#listeners.set(type, set);
    }
    set.add(listener as Listener<never>);
    return () => this.off(type, listener);
  }

  /** Add a listener that runs once. */
  once<K extends keyof Events>(type: K, listener: Listener<Events[K]>): () => void {
    const off = this.on(type, (e) => {
      off();
      listener(e);
    });
    return off;
  }

  off<K extends keyof Events>(type: K, listener: Listener<Events[K]>): void {
    this.#listeners.get(type)?.delete(listener as Listener<never>);
  }

  /** Whether anyone listens to `type`. */
  has(type: keyof Events): boolean {
    return (this.#listeners.get(type)?.size ?? 0) > 0;
  }

  emit<K extends keyof Events>(type: K, event: Events[K]): void {
    const set = this.#listeners.get(type);
    if (set === undefined || set.size === 0) return;
    for (const l of [...set]) {
      try {
        (l as Listener<Events[K]>)(event);
      } catch (err) {
        try {
          this.#onListenerError(err, type);
        } catch {
          // An error handler that throws too must not break the emitter's caller (the
          // client would stop half-way through a state change, e.g. never reconnect).
        }
      }
    }
  }

  removeAll(): void {
    this.#listeners.clear();
  }
}
