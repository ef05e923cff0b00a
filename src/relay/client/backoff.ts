/**
 * Reconnect backoff: exponential with jitter, as iroh's relay actor (`backon` exponential
 * builder with jitter, 10 ms … 16 s; `shared/docs/iroh-wire.md` §1.1). Each delay is drawn
 * uniformly from [base/2, base] where base doubles per failure up to the cap, so many clients
 * that lost the same relay do not come back in lock-step.
 *
 * Pure: randomness is injected.
 *
 * @module
 */
import { RECONNECT_BACKOFF_MAX_MS, RECONNECT_BACKOFF_MIN_MS } from '../protocol/limits.ts';

export interface BackoffOptions {
  minMs?: number;
  maxMs?: number;
  factor?: number;
  /** Uniform random in [0, 1). */
  random?: () => number;
}

export class Backoff {
  readonly #min: number;
  readonly #max: number;
  readonly #factor: number;
  readonly #random: () => number;
  #attempt = 0;

  constructor(options: BackoffOptions = {}) {
    this.#min = options.minMs ?? RECONNECT_BACKOFF_MIN_MS;
    this.#max = Math.max(this.#min, options.maxMs ?? RECONNECT_BACKOFF_MAX_MS);
    this.#factor = options.factor ?? 2;
    this.#random = options.random ?? Math.random;
    if (!(this.#min >= 0) || !(this.#factor >= 1)) throw new RangeError('backoff needs minMs ≥ 0 and factor ≥ 1');
  }

  /** Failures since the last reset. */
  get attempt(): number {
    return this.#attempt;
  }

  /** The un-jittered delay of the next attempt. */
  peekBaseMs(): number {
    return Math.min(this.#max, this.#min * this.#factor ** this.#attempt);
  }

  /** The delay before the next attempt; advances the sequence. */
  next(): number {
    const base = this.peekBaseMs();
    this.#attempt++;
    return Math.round(base / 2 + (this.#random() * base) / 2);
  }

  reset(): void {
    this.#attempt = 0;
  }
}
