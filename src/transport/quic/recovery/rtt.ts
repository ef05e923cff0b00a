/**
 * RTT estimation (RFC 9002 §5). All times in microseconds.
 *
 * @module
 */

/** RFC 9002 §6.2.2: kInitialRtt = 333 ms. */
export const INITIAL_RTT = 333_000;
/** RFC 9002 §6.1.2: kGranularity = 1 ms. */
export const GRANULARITY = 1_000;

export class RttEstimator {
  latest = 0;
  smoothed: number;
  variance: number;
  min = Infinity;
  hasSample = false;

  constructor(initialRtt = INITIAL_RTT) {
    this.smoothed = initialRtt;
    this.variance = initialRtt / 2;
  }

  /**
   * RFC 9002 §5.3: on the first sample smoothed = latest, var = latest/2; later the ack delay
   * (capped at max_ack_delay once the handshake is confirmed) is subtracted when that does not
   * go below min_rtt, and the EWMAs are updated with 1/8 and 1/4 gains.
   */
  update(latestRtt: number, ackDelay: number, handshakeConfirmed: boolean, maxAckDelay: number): void {
    this.latest = latestRtt;
    this.min = Math.min(this.min, latestRtt);
    if (!this.hasSample) {
      this.hasSample = true;
      this.smoothed = latestRtt;
      this.variance = latestRtt / 2;
      return;
    }
    const delay = handshakeConfirmed ? Math.min(ackDelay, maxAckDelay) : ackDelay;
    const adjusted = latestRtt >= this.min + delay ? latestRtt - delay : latestRtt;
    this.variance = 0.75 * this.variance + 0.25 * Math.abs(this.smoothed - adjusted);
    this.smoothed = 0.875 * this.smoothed + 0.125 * adjusted;
  }

  /** RFC 9002 §6.2.1: PTO = smoothed_rtt + max(4·rttvar, kGranularity) + max_ack_delay. */
  pto(maxAckDelay: number): number {
    return Math.ceil(this.smoothed + Math.max(4 * this.variance, GRANULARITY) + maxAckDelay);
  }

  /** RFC 9002 §6.1.2: the time threshold for loss, 9/8 · max(smoothed, latest), at least kGranularity. */
  lossDelay(): number {
    return Math.ceil(Math.max((9 / 8) * Math.max(this.smoothed, this.latest), GRANULARITY));
  }
}
