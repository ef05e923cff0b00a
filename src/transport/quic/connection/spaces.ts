/**
 * Packet-number spaces (RFC 9000 §12.3): what one space has sent and not yet seen
 * acknowledged, what it received and owes an ACK for, and its CRYPTO streams.
 *
 * @module
 */
import type { DirectionalKeys } from '../protection/packet-keys.ts';
import type { EncryptionLevel } from '../tls/index.ts';
import { MAX_ACK_RANGES } from '../limits.ts';
import { RangeSet } from './range-set.ts';
import { RecvBuffer } from './recv-buffer.ts';
import { SendBuffer } from './send-buffer.ts';
import type { Dir } from './streams.ts';

export const SPACE_INITIAL = 0;
export const SPACE_HANDSHAKE = 1;
export const SPACE_APP = 2;
export type SpaceId = 0 | 1 | 2;
/** The packet number spaces in order (one array, not one per call on the send path). */
export const SPACE_IDS: readonly SpaceId[] = [SPACE_INITIAL, SPACE_HANDSHAKE, SPACE_APP];
export const LEVEL_OF: readonly EncryptionLevel[] = ['initial', 'handshake', 'application'];

/** What a sent packet carried that matters when it is acknowledged or lost. */
export type FrameRecord =
  | { k: 'stream'; id: number; offset: number; length: number; fin: boolean }
  | { k: 'crypto'; offset: number; length: number }
  /** An ACK (or PATH_ACK of `pathId`, multipath-21 §4.1) up to `largest`. */
  | { k: 'ack'; largest: number; pathId?: number }
  /** Multipath control frames, sent again when lost while still current. */
  | { k: 'path_new_cid'; pathId: number; seq: number }
  | { k: 'path_retire_cid'; pathId: number; seq: number }
  | { k: 'path_abandon'; pathId: number }
  | { k: 'path_status'; pathId: number; seq: number }
  | { k: 'max_path_id' }
  /** n0 NAT traversal frames. */
  | { k: 'add_address'; seq: number }
  | { k: 'reach_out'; round: number; ip: Uint8Array; port: number }
  | { k: 'max_data' }
  | { k: 'max_stream_data'; id: number }
  | { k: 'max_streams'; dir: Dir }
  | { k: 'data_blocked' }
  | { k: 'stream_data_blocked'; id: number }
  | { k: 'streams_blocked'; dir: Dir }
  | { k: 'reset_stream'; id: number }
  | { k: 'stop_sending'; id: number }
  | { k: 'new_cid'; seq: number }
  | { k: 'retire_cid'; seq: number }
  | { k: 'handshake_done' }
  /** An OBSERVED_ADDRESS sent for the path with this key (resent while that path is current). */
  | { k: 'observed_address'; path: string }
  | { k: 'close' };

export interface SentPacket {
  readonly pn: number;
  readonly time: number;
  readonly size: number;
  readonly ackEliciting: boolean;
  readonly inFlight: boolean;
  readonly frames: FrameRecord[];
  readonly mtuProbe: boolean;
  /** Key phase of 1-RTT packets (for key-update bookkeeping). */
  readonly keyPhase: number;
  /** The path (epoch) it was sent on: packets of an old path leave congestion control (RFC 9000 §9.4). */
  readonly epoch: number;
}

export class PacketSpace {
  keys: DirectionalKeys | undefined;
  nextPn = 0;
  readonly sent = new Map<number, SentPacket>();
  largestAcked = -1;
  lossTime = 0;
  timeOfLastAckEliciting = 0;
  ackElicitingInFlight = 0;
  readonly received = new RangeSet();
  /**
   * Every packet number below this is treated as a duplicate (RFC 9000 §12.3): `received`
   * forgets old ranges (it only feeds ACK frames), this remembers that they were forgotten.
   */
  duplicateFloor = 0;
  largestReceived = -1;
  largestReceivedTime = 0;
  ackPending = false;
  ackElicitingSinceAck = 0;
  ackDeadline = Infinity;
  readonly cryptoSend = new SendBuffer();
  readonly cryptoRecv = new RecvBuffer();
  discarded = false;
  /** PTO probes to send in this space. */
  probes = 0;

  /** RFC 9000 §12.3: a duplicate packet number MUST NOT be processed again (nor one below the floor). */
  isDuplicate(pn: number): boolean {
    return pn < this.duplicateFloor || this.received.contains(pn);
  }

  /**
   * Record a processed packet for acknowledgment (RFC 9000 §13.2). `immediate`: the space
   * acknowledges every ack-eliciting packet at once (Initial, Handshake); otherwise every
   * second one, or an out-of-order one, at once, and the rest within `maxAckDelay` µs.
   * Returns whether it is the largest packet number received so far.
   */
  onReceived(pn: number, now: number, ackEliciting: boolean, immediate: boolean, maxAckDelay: number): boolean {
    const wasLargest = pn > this.largestReceived;
    const outOfOrder = this.largestReceived >= 0 && pn !== this.largestReceived + 1;
    this.received.insert(pn, pn + 1);
    if (this.received.size > MAX_ACK_RANGES) {
      // The oldest ranges are dropped; every number below what is kept counts as seen.
      this.received.truncate(MAX_ACK_RANGES);
      this.duplicateFloor = Math.max(this.duplicateFloor, this.received.min!);
    }
    if (wasLargest) {
      this.largestReceived = pn;
      this.largestReceivedTime = now;
    }
    if (ackEliciting) {
      this.ackElicitingSinceAck++;
      if (immediate || this.ackElicitingSinceAck >= 2 || outOfOrder) {
        this.ackPending = true;
        this.ackDeadline = now;
      } else if (this.ackDeadline === Infinity) {
        this.ackDeadline = now + maxAckDelay;
      }
    }
    return wasLargest;
  }

  /** An ACK frame went out: nothing is owed until the next ack-eliciting packet. */
  onAckSent(): void {
    this.ackPending = false;
    this.ackElicitingSinceAck = 0;
    this.ackDeadline = Infinity;
  }

  /** The peer has our ACK up to `largest`: older ranges need not be repeated (RFC 9000 §13.2.4). */
  onAckAcked(largest: number): void {
    if (largest > 0) {
      const floor = Math.max(0, largest - 2 * MAX_ACK_RANGES);
      this.received.removeBelow(floor);
      this.duplicateFloor = Math.max(this.duplicateFloor, floor);
    }
  }
}
