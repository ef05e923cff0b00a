/**
 * A token bucket on injected time (µs): `size` tokens at most, one back every `refill` µs.
 * Bounds how often a peer can make a connection send something on its behalf.
 *
 * @module
 */
export class TokenBucket {
  #tokens: number;
  #at = 0;

  readonly size: number;
  readonly refill: number;

  constructor(size: number, refill: number) {
    this.size = size;
    this.refill = refill;
    this.#tokens = size;
  }

  /** Take one token at `now`; false when the bucket is empty. */
  take(now: number): boolean {
    const refilled = Math.floor((now - this.#at) / this.refill);
    if (refilled > 0) {
      this.#tokens = Math.min(this.size, this.#tokens + refilled);
      this.#at += refilled * this.refill;
    }
    if (this.#tokens === this.size) this.#at = now;
    if (this.#tokens <= 0) return false;
    this.#tokens--;
    return true;
  }

  /** When the next token comes back. */
  get nextAt(): number {
    return this.#at + this.refill;
  }
}
