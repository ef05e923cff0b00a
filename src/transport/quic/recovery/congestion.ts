/**
 * Congestion control: NewReno (RFC 9002 §7) and CUBIC (RFC 9438), behind one interface.
 * All times in microseconds, sizes in bytes.
 *
 * @module
 */
import type { RttEstimator } from './rtt.ts';

export type CongestionAlgorithm = 'newreno' | 'cubic';

export interface CongestionController {
  /** The congestion window in bytes. */
  readonly window: number;
  /** True while in slow start. */
  readonly inSlowStart: boolean;
  /** A packet counted in bytes in flight was acknowledged (RFC 9002 §7.3.1, §7.3.2). */
  onAck(now: number, sentTime: number, bytes: number, rtt: RttEstimator, appLimited: boolean): void;
  /** Packets were declared lost; `largestLostSentTime` is the send time of the newest one (§7.3.2). */
  onCongestionEvent(now: number, largestLostSentTime: number): void;
  /** Persistent congestion (§7.6): collapse to the minimum window. */
  onPersistentCongestion(): void;
  /** The path MTU changed. */
  onMtuChange(mtu: number): void;
}

/** RFC 9002 §7.2: initial window min(10 · mds, max(14720, 2 · mds)); minimum 2 · mds. */
export function initialWindow(mtu: number): number {
  return Math.min(10 * mtu, Math.max(14720, 2 * mtu));
}

/** RFC 9002 §7.3: NewReno with the loss-recovery period keyed on send times. */
export class NewReno implements CongestionController {
  window: number;
  #ssthresh = Infinity;
  #recoveryStart = -Infinity;
  #mtu: number;
  #ackedInCa = 0;

  constructor(mtu: number) {
    this.#mtu = mtu;
    this.window = initialWindow(mtu);
  }

  get inSlowStart(): boolean {
    return this.window < this.#ssthresh;
  }

  onAck(_now: number, sentTime: number, bytes: number, _rtt: RttEstimator, appLimited: boolean): void {
    // RFC 9002 §7.3.2: no growth for packets sent before the recovery period began; §7.8: none when app-limited.
    if (sentTime <= this.#recoveryStart || appLimited) return;
    if (this.inSlowStart) {
      this.window += bytes;
      return;
    }
    // Congestion avoidance: one MTU per window of acknowledged bytes.
    this.#ackedInCa += bytes;
    if (this.#ackedInCa >= this.window) {
      this.#ackedInCa -= this.window;
      this.window += this.#mtu;
    }
  }

  onCongestionEvent(now: number, largestLostSentTime: number): void {
    // RFC 9002 §7.3.2: one reduction per round trip: ignore losses of packets sent before recovery began.
    if (largestLostSentTime <= this.#recoveryStart) return;
    this.#recoveryStart = now;
    this.#ssthresh = Math.max(this.window / 2, 2 * this.#mtu);
    this.window = this.#ssthresh;
    this.#ackedInCa = 0;
  }

  onPersistentCongestion(): void {
    this.window = 2 * this.#mtu;
    this.#recoveryStart = -Infinity;
  }

  onMtuChange(mtu: number): void {
    this.#mtu = mtu;
    this.window = Math.max(this.window, 2 * mtu);
  }
}

/** RFC 9438 §4: C = 0.4, β_cubic = 0.7. */
const CUBIC_C = 0.4;
const CUBIC_BETA = 0.7;

/** CUBIC (RFC 9438) with the Reno-friendly region (§4.3) and fast convergence (§4.7). */
export class Cubic implements CongestionController {
  window: number;
  #ssthresh = Infinity;
  #recoveryStart = -Infinity;
  #mtu: number;
  /** W_max in bytes, the window before the last reduction. */
  #wMax = 0;
  #k = 0;
  /** Start of the current congestion-avoidance epoch, µs; −1 when none. */
  #epochStart = -1;
  /** The Reno-friendly estimate W_est in bytes (§4.3). */
  #wEst = 0;
  #ackedInEpoch = 0;

  constructor(mtu: number) {
    this.#mtu = mtu;
    this.window = initialWindow(mtu);
  }

  get inSlowStart(): boolean {
    return this.window < this.#ssthresh;
  }

  onAck(now: number, sentTime: number, bytes: number, rtt: RttEstimator, appLimited: boolean): void {
    if (sentTime <= this.#recoveryStart || appLimited) return;
    if (this.inSlowStart) {
      this.window += bytes;
      return;
    }
    if (this.#epochStart < 0) {
      this.#epochStart = now;
      this.#ackedInEpoch = 0;
      this.#wEst = this.window;
      if (this.#wMax <= this.window) {
        this.#k = 0;
        this.#wMax = this.window;
      } else {
        // RFC 9438 §4.2: K = cbrt((W_max − cwnd_epoch) / C), in segments and seconds.
        this.#k = Math.cbrt((this.#wMax - this.window) / this.#mtu / CUBIC_C);
      }
    }
    this.#ackedInEpoch += bytes;
    // §4.3: W_est grows by α_cubic · acked / cwnd segments, α = 3(1 − β)/(1 + β).
    const alpha = (3 * (1 - CUBIC_BETA)) / (1 + CUBIC_BETA);
    this.#wEst += (alpha * bytes * this.#mtu) / this.window;
    // §4.2: W_cubic(t + RTT), t in seconds since the epoch began.
    const t = (now - this.#epochStart + rtt.smoothed) / 1e6;
    const target = (CUBIC_C * (t - this.#k) ** 3) * this.#mtu + this.#wMax;
    if (this.#wEst > target) {
      this.window = Math.max(this.window, this.#wEst);
    } else if (target > this.window) {
      // §4.4: grow by (target − cwnd) / cwnd per acked segment, capped at 1.5× per RTT.
      const inc = Math.min(target - this.window, this.window / 2);
      this.window += (inc * bytes) / this.window;
    }
  }

  onCongestionEvent(now: number, largestLostSentTime: number): void {
    if (largestLostSentTime <= this.#recoveryStart) return;
    this.#recoveryStart = now;
    // §4.7 fast convergence: if the window shrank since the last event, remember less.
    this.#wMax = this.window < this.#wMax ? (this.window * (1 + CUBIC_BETA)) / 2 : this.window;
    this.#ssthresh = Math.max(this.window * CUBIC_BETA, 2 * this.#mtu);
    this.window = this.#ssthresh;
    this.#epochStart = -1;
  }

  onPersistentCongestion(): void {
    this.window = 2 * this.#mtu;
    this.#recoveryStart = -Infinity;
    this.#epochStart = -1;
    this.#wMax = 0;
  }

  onMtuChange(mtu: number): void {
    this.#mtu = mtu;
    this.window = Math.max(this.window, 2 * mtu);
  }
}

export function createCongestionController(algorithm: CongestionAlgorithm, mtu: number): CongestionController {
  return algorithm === 'cubic' ? new Cubic(mtu) : new NewReno(mtu);
}
