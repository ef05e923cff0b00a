/**
 * Pacing (RFC 9002 §7.7): spread a congestion window over the RTT instead of sending it in
 * one burst. A token bucket refilled at N · cwnd / smoothed_rtt (N = 1.25) with a burst of
 * a few packets. Times in microseconds.
 *
 * @module
 */

/** RFC 9002 §7.7 suggests N = 1.25 so the window is not under-used. */
const PACING_GAIN = 1.25;
/** Packets that may leave back to back (an initial burst is allowed by §7.7). */
const BURST_PACKETS = 10;

export class Pacer {
  #tokens: number;
  #capacity: number;
  #last = -1;

  constructor(mtu: number) {
    this.#capacity = BURST_PACKETS * mtu;
    this.#tokens = this.#capacity;
  }

  #refill(now: number, window: number, smoothedRtt: number): void {
    if (this.#last >= 0 && now > this.#last) {
      const rate = (PACING_GAIN * window) / Math.max(smoothedRtt, 1); // bytes per µs
      this.#tokens = Math.min(this.#capacity, this.#tokens + rate * (now - this.#last));
    }
    this.#last = now;
  }

  /**
   * When a packet of `bytes` may be sent: `now` if allowed, else the later time at which
   * enough tokens will have accrued.
   */
  nextSendTime(now: number, bytes: number, window: number, smoothedRtt: number, mtu: number): number {
    this.#capacity = Math.max(BURST_PACKETS * mtu, this.#capacity);
    this.#refill(now, window, smoothedRtt);
    if (this.#tokens >= bytes) return now;
    const rate = (PACING_GAIN * window) / Math.max(smoothedRtt, 1);
    return now + Math.ceil((bytes - this.#tokens) / rate);
  }

  onSent(bytes: number): void {
    this.#tokens = Math.max(0, this.#tokens - bytes);
  }
}
