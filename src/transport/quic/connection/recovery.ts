/**
 * Loss detection and congestion control of one path (RFC 9002): its RTT estimate,
 * congestion controller, pacer and bytes in flight, the loss and PTO timers computed from the
 * packet-number spaces that send on it, and the packet- and time-threshold loss rules.
 *
 * @module
 */
import type { ConnectionSettings } from '../config.ts';
import { createCongestionController, type CongestionController } from '../recovery/congestion.ts';
import { Pacer } from '../recovery/pacer.ts';
import { RttEstimator } from '../recovery/rtt.ts';
import type { PacketSpace, SentPacket } from './spaces.ts';

/** RFC 9002 §6.1.1: kPacketThreshold. */
export const PACKET_THRESHOLD = 3;

export class PathRecovery {
  rtt: RttEstimator;
  cc: CongestionController;
  readonly pacer: Pacer;
  bytesInFlight = 0;
  ptoCount = 0;
  /** When the loss or PTO timer fires (µs), 0 when unarmed. */
  lossTimer = 0;
  /**
   * Counts path switches; sent packets carry it ({@link SentPacket.epoch}): packets of an old
   * path leave congestion control and give no RTT sample (RFC 9000 §9.4).
   */
  epoch = 0;
  congestionEvents = 0;

  constructor(settings: ConnectionSettings, mtu: number) {
    this.rtt = new RttEstimator(settings.initialRtt);
    this.cc = createCongestionController(settings.congestion, mtu);
    this.pacer = new Pacer(mtu);
  }

  /**
   * RFC 9000 §9.4: congestion control (and, unless only the port changed, the RTT estimate)
   * start over on a new path; packets in flight on the old one no longer count.
   */
  resetForNewPath(settings: ConnectionSettings, mtu: number, keepRtt: boolean): void {
    this.cc = createCongestionController(settings.congestion, mtu);
    this.epoch++;
    this.bytesInFlight = 0;
    if (!keepRtt) this.rtt = new RttEstimator(settings.initialRtt);
    this.ptoCount = 0;
  }

  /** A sent packet is no longer in flight (it counts only on the path it was sent on). */
  leaveFlight(p: SentPacket): void {
    if (p.inFlight && p.epoch === this.epoch) this.bytesInFlight -= p.size;
  }

  /**
   * RFC 9002 §7.3: an acknowledged packet leaves flight and grows the window (unless the
   * application, with no stream data queued, is what limits sending: §7.8).
   */
  onPacketAcked(p: SentPacket, now: number, hasStreamData: boolean): void {
    if (p.inFlight && p.epoch === this.epoch) {
      this.bytesInFlight -= p.size;
      if (!p.mtuProbe) this.cc.onAck(now, p.time, p.size, this.rtt, this.isAppLimited(hasStreamData));
    }
  }

  /**
   * RFC 9002 §6.1: the packet and time thresholds. Removes what is lost from `space`, fills
   * `lost` in packet-number order, and reacts in the congestion controller (§7.3.2, §7.6).
   */
  detectLoss(space: PacketSpace, now: number, peerMaxAckDelay: number, lost: SentPacket[]): void {
    space.lossTime = 0;
    if (space.largestAcked < 0) return;
    const lossDelay = this.rtt.lossDelay();
    for (const p of space.sent.values()) {
      if (p.pn > space.largestAcked) break;
      // One expression for both the test and the timer, so a timer firing at exactly
      // p.time + lossDelay always declares the loss (no floating-point livelock).
      const lossAt = p.time + lossDelay;
      if (lossAt <= now || space.largestAcked >= p.pn + PACKET_THRESHOLD) {
        lost.push(p);
      } else if (space.lossTime === 0 || lossAt < space.lossTime) {
        space.lossTime = lossAt;
      }
    }
    if (lost.length === 0) return;
    let largestLostTime = 0;
    let ccLoss = false;
    for (const p of lost) {
      space.sent.delete(p.pn);
      if (p.ackEliciting) space.ackElicitingInFlight--;
      this.leaveFlight(p);
      if (p.inFlight && !p.mtuProbe && p.epoch === this.epoch) {
        ccLoss = true;
        largestLostTime = Math.max(largestLostTime, p.time);
      }
    }
    if (ccLoss) {
      this.congestionEvents++;
      this.cc.onCongestionEvent(now, largestLostTime);
      // RFC 9002 §7.6: persistent congestion when the lost packets span the persistent-congestion duration.
      const first = lost.find((p) => p.ackEliciting && !p.mtuProbe && p.epoch === this.epoch);
      const lastLost = [...lost].reverse().find((p) => p.ackEliciting && !p.mtuProbe && p.epoch === this.epoch);
      if (this.rtt.hasSample && first && lastLost && lastLost.time - first.time > 3 * this.rtt.pto(peerMaxAckDelay) && lost.length >= 2) {
        this.cc.onPersistentCongestion();
      }
    }
  }

  /** Whether sending is limited by the application rather than the window (RFC 9002 §7.8). */
  isAppLimited(hasStreamData: boolean): boolean {
    return this.bytesInFlight < this.cc.window / 2 && !hasStreamData;
  }
}
