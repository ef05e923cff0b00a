/**
 * A token bucket on bytes read from one client (iroh `server/streams.rs` `RateLimited`,
 * reliability.md §4): `bytesPerSecond` refill, at most `burstBytes` saved up. Consuming more
 * than is available drives the balance negative; the caller stops reading until it is back
 * to zero, which is how the limit turns into TCP back-pressure instead of drops.
 *
 * Pure: time is passed in (milliseconds).
 *
 * @module
 */
export class TokenBucket {
  readonly bytesPerSecond: number;
  readonly burstBytes: number;
  #tokens: number;
  #last: number;

  constructor(bytesPerSecond: number, burstBytes: number, now: number) {
    if (!(bytesPerSecond > 0) || !Number.isFinite(bytesPerSecond)) throw new RangeError('bytesPerSecond must be a positive number');
    if (!(burstBytes > 0) || !Number.isFinite(burstBytes)) throw new RangeError('burstBytes must be a positive number');
    this.bytesPerSecond = bytesPerSecond;
    this.burstBytes = burstBytes;
    this.#tokens = burstBytes;
    this.#last = now;
  }

  #refill(now: number): void {
    if (now > this.#last) {
      this.#tokens = Math.min(this.burstBytes, this.#tokens + ((now - this.#last) * this.bytesPerSecond) / 1000);
      this.#last = now;
    }
  }

  /** Current balance (may be negative). */
  tokens(now: number): number {
    this.#refill(now);
    return this.#tokens;
  }

  /**
   * Take `bytes`. Returns 0 if the balance stays non-negative, else the milliseconds until
   * it is back to zero (the time to stop reading).
   */
  consume(bytes: number, now: number): number {
    this.#refill(now);
    this.#tokens -= bytes;
    return this.#tokens >= 0 ? 0 : Math.ceil((-this.#tokens * 1000) / this.bytesPerSecond);
  }
}
