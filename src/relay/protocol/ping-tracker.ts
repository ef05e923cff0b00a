/**
 * The relay keep-alive ping tracker, shared by client and server (`shared/docs/iroh-wire.md`
 * §1.7, iroh `ping_tracker.rs`): one outstanding Ping at a time with 8 random bytes; its Pong
 * deadline is 3 × the last round-trip time clamped to [0.5 s, max], or max (5 s) before any
 * RTT is known. A Pong with other bytes is ignored.
 *
 * Sans-IO: time is passed in (milliseconds), randomness by the caller.
 *
 * @module
 */
import { MIN_PONG_TIMEOUT_MS, PING_DATA_LENGTH, PONG_TIMEOUT_MS } from './limits.ts';

export class PingTracker {
  readonly #maxTimeoutMs: number;
  readonly #minTimeoutMs: number;
  #data: Uint8Array | undefined;
  #sentAt = 0;
  #deadline = 0;
  #lastRttMs: number | undefined;

  constructor(options: { maxTimeoutMs?: number; minTimeoutMs?: number } = {}) {
    this.#maxTimeoutMs = options.maxTimeoutMs ?? PONG_TIMEOUT_MS;
    this.#minTimeoutMs = Math.min(options.minTimeoutMs ?? MIN_PONG_TIMEOUT_MS, this.#maxTimeoutMs);
  }

  /** The round-trip time of the last answered ping, if any. */
  get lastRttMs(): number | undefined {
    return this.#lastRttMs;
  }

  /** Whether a ping is waiting for its pong. */
  get outstanding(): boolean {
    return this.#data !== undefined;
  }

  /** When the outstanding ping times out, or `undefined`. */
  get deadline(): number | undefined {
    return this.#data === undefined ? undefined : this.#deadline;
  }

  /** The current pong timeout (iroh `ping_timeout`). */
  timeoutMs(): number {
    if (this.#lastRttMs === undefined) return this.#maxTimeoutMs;
    return Math.min(this.#maxTimeoutMs, Math.max(this.#minTimeoutMs, 3 * this.#lastRttMs));
  }

  /** Start a ping with `data` (8 random bytes) at `now`; replaces any outstanding one. */
  newPing(now: number, data: Uint8Array): Uint8Array {
    if (data.length !== PING_DATA_LENGTH) throw new RangeError(`ping data must be ${PING_DATA_LENGTH} bytes`);
    this.#data = data;
    this.#sentAt = now;
    this.#deadline = now + this.timeoutMs();
    return data;
  }

  /** Settle the outstanding ping if `data` matches it. Returns the RTT, or `undefined`. */
  pongReceived(now: number, data: Uint8Array): number | undefined {
    const expected = this.#data;
    if (expected === undefined || data.length !== expected.length) return undefined;
    for (let i = 0; i < expected.length; i++) if (expected[i] !== data[i]) return undefined;
    this.#data = undefined;
    this.#lastRttMs = Math.max(0, now - this.#sentAt);
    return this.#lastRttMs;
  }

  /** True (once) if the outstanding ping's deadline has passed at `now`. */
  expired(now: number): boolean {
    if (this.#data === undefined || now < this.#deadline) return false;
    this.#data = undefined;
    return true;
  }
}
