/**
 * Acknowledgments and loss (RFC 9002): ACK and PATH_ACK frames processed against what each
 * packet-number space sent (RTT samples, congestion control through `recovery.ts`), packets
 * declared lost by the packet and time thresholds and what they carried queued again
 * (RFC 9000 §13.3), and the loss-detection / PTO timer, including the fall back to the relay
 * when a direct path goes silent.
 *
 * @module
 */
import { type MpPath } from './multipath.ts';
import { MAX_NAT_ADDRESSES } from './nat-traversal.ts';
import { TransportError, TransportErrorCode } from '../errors.ts';
import { MAX_PENDING_RETIRES } from '../limits.ts';
import { type AckRange, type Frame } from '../wire/frames.ts';
import { PacketSpace, SPACE_APP, SPACE_HANDSHAKE, SPACE_IDS, SPACE_INITIAL, type SentPacket, type SpaceId } from './spaces.ts';
import type { ConnectionCore } from './core.ts';

/** Consecutive PTOs on a direct path after which a client falls back to its relay path. */
const FALLBACK_PTO_COUNT = 2;

/**
 * ...and at least this long (µs) without an authenticated packet on it: on loopback or a LAN
 * two PTOs are ~50 ms, which a busy machine's scheduling stall matches; a dead path does not
 * come back within a second.
 */
const FALLBACK_SILENCE = 1_000_000;

/** The packets of `space` that `ranges` acknowledge for the first time, in packet-number order. */
function newlyAckedIn(space: PacketSpace, ranges: readonly AckRange[]): SentPacket[] {
  const out: SentPacket[] = [];
  const lowest = space.sent.keys().next().value;
  if (lowest === undefined) return out;
  for (const range of ranges) {
    if (range.end < lowest) break;
    for (let pn = Math.max(range.start, lowest); pn <= range.end; pn++) {
      const p = space.sent.get(pn);
      if (p !== undefined) out.push(p);
    }
  }
  return out.sort((a, b) => a.pn - b.pn);
}

export class LossDetection {
  readonly c: ConnectionCore;

  constructor(c: ConnectionCore) {
    this.c = c;
  }

  // ---- acknowledgments (RFC 9002 §A.7; multipath-21 §4.1)

  /** An ACK of `spaceId` (of the path we send on): RTT sample, acknowledged frames, loss detection (RFC 9002 §A.7). */
  onAck(now: number, frame: Extract<Frame, { type: 'ack' }>, spaceId: SpaceId, wireType: number): void {
    const space = this.c.spaces[spaceId];
    const recovery = this.c.recovery;
    // RFC 9000 §13.1: acknowledging a packet we never sent → PROTOCOL_VIOLATION.
    if (frame.largest >= space.nextPn) throw new TransportError(TransportErrorCode.PROTOCOL_VIOLATION, 'ACK for an unsent packet', wireType);
    const newlyAcked = newlyAckedIn(space, frame.ranges);
    if (frame.largest > space.largestAcked) space.largestAcked = frame.largest;
    if (newlyAcked.length === 0) return;
    const largest = newlyAcked[newlyAcked.length - 1]!;
    let ackElicitingAcked = false;
    for (const p of newlyAcked) if (p.ackEliciting) ackElicitingAcked = true;
    // RFC 9002 §5.1: an RTT sample when the largest acknowledged is newly acked and ack-eliciting.
    // RFC 9000 §9.4: packets sent on an old path give no RTT sample for the new one.
    if (largest.pn === frame.largest && ackElicitingAcked && largest.epoch === recovery.epoch) {
      const ackDelay = spaceId === SPACE_APP ? frame.delay * 2 ** this.c.peerAckDelayExponent : 0;
      recovery.rtt.update(now - largest.time, ackDelay, this.c.handshakeConfirmed, this.c.peerMaxAckDelay);
    }
    for (const p of newlyAcked) {
      space.sent.delete(p.pn);
      if (p.ackEliciting) space.ackElicitingInFlight--;
      recovery.onPacketAcked(p, now, this.c.streams.hasStreamData());
      this.#onPacketAcked(p, spaceId);
    }
    // RFC 9001 §4.1.2: a client's handshake is also confirmed by an ACK of a 1-RTT packet.
    if (spaceId === SPACE_APP && this.c.side === 'client' && this.c.state === 'established') this.c.handshake.confirmHandshake(now);
    this.#detectLoss(now, spaceId);
    // RFC 9002 §6.2.1: reset the PTO backoff on an acknowledgment (clients: once the server validated them).
    if (this.c.peerCompletedAddressValidation) recovery.ptoCount = 0;
  }

  /** A PATH_ACK for a path we do not send on now (multipath-21 §4.1): its own space and recovery. */
  onPathAck(now: number, frame: Extract<Frame, { type: 'ack' }>, rec: MpPath, wireType: number): void {
    const space = rec.space;
    if (frame.largest >= space.nextPn) throw new TransportError(TransportErrorCode.PROTOCOL_VIOLATION, 'PATH_ACK for an unsent packet', wireType);
    if (frame.largest > space.largestAcked) space.largestAcked = frame.largest;
    const newlyAcked = newlyAckedIn(space, frame.ranges);
    if (newlyAcked.length === 0) return;
    const largest = newlyAcked[newlyAcked.length - 1]!;
    if (largest.pn === frame.largest && largest.ackEliciting && largest.epoch === rec.recovery.epoch) {
      rec.recovery.rtt.update(now - largest.time, frame.delay * 2 ** this.c.peerAckDelayExponent, this.c.handshakeConfirmed, this.c.peerMaxAckDelay);
    }
    for (const p of newlyAcked) {
      space.sent.delete(p.pn);
      if (p.ackEliciting) space.ackElicitingInFlight--;
      rec.recovery.onPacketAcked(p, now, false);
      for (const f of p.frames) {
        if (f.k === 'ack') this.#ackSpace(f.pathId)?.onAckAcked(f.largest);
        else if (f.k === 'stream' || f.k === 'reset_stream') this.c.streams.onFrameAcked(f);
      }
    }
    const lost: SentPacket[] = [];
    rec.recovery.detectLoss(space, now, this.c.peerMaxAckDelay, lost);
    for (const p of lost) this.onPacketLost(p, SPACE_APP, true);
  }

  /** The space an ACK record of ours acknowledged (its path's; the send path's when untagged). */
  #ackSpace(pathId: number | undefined): PacketSpace | undefined {
    if (pathId === undefined || pathId === this.c.tx) return this.c.spaces[SPACE_APP];
    return this.c.multipath.paths.get(pathId)?.space;
  }

  /** What an acknowledged packet carried is done with (stream data, CRYPTO, our ACKs, an MTU probe, a key update). */
  #onPacketAcked(p: SentPacket, spaceId: SpaceId): void {
    const space = this.c.spaces[spaceId];
    if (spaceId === SPACE_APP && this.c.keys.onAcked(p.pn)) this.c.tryKeyUpdate();
    if (this.c.mtuProbe && p.mtuProbe && p.pn === this.c.mtuProbe.pn) {
      this.c.path.mtu = this.c.mtuProbe.size;
      this.c.recovery.cc.onMtuChange(this.c.path.mtu);
      this.c.mtuProbe = undefined;
    }
    for (const f of p.frames) {
      switch (f.k) {
        case 'stream':
        case 'reset_stream':
          this.c.streams.onFrameAcked(f);
          break;
        case 'crypto':
          space.cryptoSend.onAck(f.offset, f.length);
          break;
        case 'ack':
          (f.pathId === undefined ? space : this.#ackSpace(f.pathId))?.onAckAcked(f.largest);
          break;
        default:
          break;
      }
    }
  }

  // ---- loss (RFC 9002 §6.1, RFC 9000 §13.3)

  /** RFC 9002 §6.1: packet and time thresholds. */
  #detectLoss(now: number, spaceId: SpaceId): void {
    const lost: SentPacket[] = [];
    this.c.recovery.detectLoss(this.c.spaces[spaceId], now, this.c.peerMaxAckDelay, lost);
    for (const p of lost) this.onPacketLost(p, spaceId, true);
  }

  /** Requeue what a lost packet carried (RFC 9000 §13.3). */
  onPacketLost(p: SentPacket, spaceId: SpaceId, count: boolean): void {
    if (count) this.c.lost++;
    if (p.mtuProbe && this.c.mtuProbe && p.pn === this.c.mtuProbe.pn) {
      this.c.mtuProbe.failures++;
      this.c.mtuProbe.pn = -1;
      // Try again a little later; after three failures the probe size is abandoned.
      if (this.c.mtuProbe.failures >= 3) {
        this.c.mtuProbe = undefined;
        this.c.mtuProbeAt = 0;
      } else {
        this.c.mtuProbeAt = this.c.now + Math.max(this.c.recovery.rtt.pto(this.c.peerMaxAckDelay), 100_000);
      }
    }
    const space = this.c.spaces[spaceId];
    for (const f of p.frames) {
      switch (f.k) {
        case 'crypto':
          space.cryptoSend.onLost(f.offset, f.length);
          break;
        case 'new_cid': {
          const c = [...this.c.cids.local.values()].find((x) => x.seq === f.seq);
          if (c) {
            c.pending = true;
            this.c.cids.framesPending = true;
          }
          break;
        }
        case 'retire_cid':
          this.c.cids.pendingRetires.push(f.seq);
          break;
        case 'handshake_done':
          this.c.handshakeDonePending = true;
          break;
        case 'observed_address':
          // draft-ietf-quic-address-discovery §3: resent (with a new sequence number) while that path is current.
          if (this.c.observedFor === f.path) this.c.observedFor = undefined;
          break;
        case 'path_new_cid':
          this.c.pathCids.onLost(f.pathId, f.seq);
          break;
        case 'path_retire_cid':
          if (!this.c.multipath.isClosed(f.pathId) && this.c.pathCids.pendingRetires.length < MAX_PENDING_RETIRES) this.c.pathCids.pendingRetires.push({ pathId: f.pathId, seq: f.seq });
          break;
        case 'path_abandon': {
          const rec = this.c.multipath.paths.get(f.pathId);
          if (rec !== undefined && rec.abandoned) rec.abandonPending = true;
          break;
        }
        case 'path_status': {
          // multipath-21 §4.3: resent only if it is still the last status sent for that path.
          const rec = this.c.multipath.paths.get(f.pathId);
          if (rec !== undefined && !rec.abandoned && rec.statusSeq === f.seq) rec.statusPending = true;
          break;
        }
        case 'max_path_id':
          this.c.multipath.maxPathIdPending = true;
          break;
        case 'add_address': {
          const a = this.c.nat.advertised.find((x) => x.seq === f.seq);
          if (a !== undefined) a.pending = true;
          break;
        }
        case 'reach_out':
          // Sent again only while its round is the current one.
          if (f.round === this.c.nat.round && this.c.nat.reachOuts.length < MAX_NAT_ADDRESSES) this.c.nat.reachOuts.push({ ip: f.ip, port: f.port });
          break;
        case 'ack':
          break;
        default:
          this.c.streams.onFrameLost(f);
          break;
      }
    }
  }

  // ---- loss-detection and PTO timer (RFC 9002 §6.2, §A.8, §A.9)

  /** RFC 9002 §A.9: OnLossDetectionTimeout. */
  onLossTimer(now: number): void {
    this.c.recovery.lossTimer = 0;
    let earliest: SpaceId | undefined;
    for (const id of SPACE_IDS) {
      const s = this.c.spaces[id];
      if (s.lossTime > 0 && (earliest === undefined || s.lossTime < this.c.spaces[earliest].lossTime)) earliest = id;
    }
    if (earliest !== undefined && this.c.spaces[earliest].lossTime <= now) {
      this.#detectLoss(now, earliest);
      return;
    }
    // PTO: send probes in the space whose timer fired.
    const { space } = this.#ptoTime();
    if (space === undefined) return;
    this.c.recovery.ptoCount++;
    // A direct path that no longer answers: continue over the relay (the probes below go there).
    const silent = this.c.recovery.ptoCount >= FALLBACK_PTO_COUNT && !this.c.path.addr.relayed && now - this.c.path.heardAt >= FALLBACK_SILENCE;
    if (silent && this.c.managePaths && this.c.fallbackKey !== undefined && this.c.handshakeConfirmed) this.c.paths.fallBack(now);
    else if (silent && this.c.multipath.paths.size > 1) this.c.paths.mpFallBack(now);
    const s = this.c.spaces[space];
    if (s.keys === undefined) {
      // Client anti-deadlock before Handshake keys: an Initial probe (RFC 9002 §6.2.4).
      this.c.spaces[SPACE_INITIAL].probes = 1;
      return;
    }
    s.probes = 2;
    // Send the unacknowledged CRYPTO data again (cheap and it is what the peer is likely missing).
    for (const p of s.sent.values()) {
      for (const f of p.frames) {
        if (f.k === 'crypto') s.cryptoSend.onLost(f.offset, f.length);
      }
    }
    if (space === SPACE_APP) {
      // Retransmit the oldest in-flight packet's stream data as well.
      const oldest = s.sent.values().next().value;
      if (oldest) {
        for (const f of oldest.frames) this.c.streams.retransmit(f);
      }
    }
  }

  /** RFC 9002 §A.8: GetPtoTimeAndSpace. */
  #ptoTime(): { time: number; space: SpaceId | undefined } {
    const backoff = 2 ** Math.min(this.c.recovery.ptoCount, 16);
    let duration = this.c.recovery.rtt.pto(0) * backoff;
    // Anti-deadlock: a client with nothing in flight before the peer validated its address.
    const inFlight = this.c.spaces.some((s) => s.ackElicitingInFlight > 0);
    if (!inFlight && this.c.side === 'client' && !this.c.peerCompletedAddressValidation) {
      const space = this.c.spaces[SPACE_HANDSHAKE].keys ? SPACE_HANDSHAKE : SPACE_INITIAL;
      return { time: this.c.now + duration, space };
    }
    let best = Infinity;
    let bestSpace: SpaceId | undefined;
    for (const id of SPACE_IDS) {
      const s = this.c.spaces[id];
      if (s.ackElicitingInFlight === 0 || s.discarded) continue;
      if (id === SPACE_APP) {
        // RFC 9002 §6.2.1: no application PTO before the handshake is confirmed.
        if (!this.c.handshakeConfirmed) break;
        duration += this.c.peerMaxAckDelay * backoff;
      }
      const t = s.timeOfLastAckEliciting + duration;
      if (t < best) {
        best = t;
        bestSpace = id;
      }
    }
    return { time: best, space: bestSpace };
  }

  /** Arm the loss-detection timer: the earliest loss time, else the PTO (RFC 9002 §A.8 SetLossDetectionTimer). */
  setLossTimer(): void {
    let earliest = 0;
    for (const s of this.c.spaces) if (s.lossTime > 0 && (earliest === 0 || s.lossTime < earliest)) earliest = s.lossTime;
    if (earliest > 0) {
      this.c.recovery.lossTimer = earliest;
      return;
    }
    // RFC 9002 §A.8: a server blocked by the amplification limit arms no PTO.
    if (this.c.side === 'server' && !this.c.addressValidated && this.c.amplificationBudget() <= 0) {
      this.c.recovery.lossTimer = 0;
      return;
    }
    const inFlight = this.c.spaces.some((s) => s.ackElicitingInFlight > 0);
    if (!inFlight && this.c.peerCompletedAddressValidation) {
      this.c.recovery.lossTimer = 0;
      return;
    }
    const { time } = this.#ptoTime();
    this.c.recovery.lossTimer = Number.isFinite(time) ? time : 0;
  }

}
