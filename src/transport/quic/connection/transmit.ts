/**
 * Datagrams out (RFC 9000 §12.2, §13, §14; RFC 9002 §7): which path and space sends what and
 * when — path probes and responses in their own padded datagrams, off-path NAT probes, close
 * repeats, MTU probes, and coalesced packets of the three spaces under the congestion window,
 * the pacer and the anti-amplification limit — and the frames that go into each packet.
 * Headers and sealing are `packet-builder.ts`.
 *
 * @module
 */
import { type MpPath } from './multipath.ts';
import { PROBE_SCHEDULE, type NatProbe } from './nat-traversal.ts';
import { TransportErrorCode } from '../errors.ts';
import { MAX_ACK_RANGES } from '../limits.ts';
import type { FixedWriter } from '../wire/fixed-writer.ts';
import { ackFrameSize, cryptoFrameOverhead, frameSize, writeAck, writeCryptoHeader, writeFrame, type AckRange } from '../wire/frames.ts';
import { DatagramSlab, MAX_PN, beginPacket, padForSample, sealPacket, type PacketDraft } from './packet-builder.ts';
import { MIN_DATAGRAM, pathBudget, type PathState } from './paths.ts';
import { PacketSpace, SPACE_APP, SPACE_HANDSHAKE, SPACE_IDS, SPACE_INITIAL, type FrameRecord, type SentPacket, type SpaceId } from './spaces.ts';
import { type ControlSink } from './streams-state.ts';
import { type Transmit } from './types.ts';
import type { ConnectionCore } from './core.ts';

export class Transmitter {
  readonly c: ConnectionCore;
  readonly #slab = new DatagramSlab();

  /** Writes control frames while they fit, recording them for loss and acknowledgment. */
  readonly #controlSink: ControlSink & { w: FixedWriter | undefined; frames: FrameRecord[]; any: boolean } = {
    w: undefined,
    frames: [],
    any: false,
    put(f, record) {
      const w = this.w!;
      if (frameSize(f) > w.remaining) return false;
      writeFrame(w, f);
      this.frames.push(record);
      this.any = true;
      return true;
    },
  };

  constructor(c: ConnectionCore) {
    this.c = c;
  }

  /**
   * The next datagram to send, or undefined when there is nothing (more) to send now.
   */
  pollTransmit(now: number): Transmit | undefined {
    this.c.now = now;
    if (this.c.state === 'closed' || this.c.state === 'draining') return undefined;
    if (this.c.keys.discardPending) {
      this.c.keys.discardPending = false;
      this.c.keys.discardAt = now + 3 * this.c.recovery.rtt.pto(this.c.peerMaxAckDelay);
    }
    const copy = this.c.dialCopies.shift();
    if (copy) return copy;
    const deferred = this.c.closeAfterFlight;
    if (deferred && !this.c.finishedUnsent) {
      this.c.closeAfterFlight = undefined;
      if (this.c.state === 'established') this.c.enterClosing(now, deferred.frame, deferred.error);
    }
    if (this.c.state === 'closing') return this.#transmitClose(now);
    // Owed PATH_RESPONSEs / challenges go first, in their own datagrams padded to 1200 bytes
    // (RFC 9000 §8.2.1, §8.2.2), on the current path as on the others.
    const current = this.c.path;
    if (current.responses.length > 0 || (current.challengePending && current.challenge !== undefined)) {
      const t = this.#transmitPathFrames(now, current);
      if (t) return t;
    }
    for (const p of this.c.otherPaths.values()) {
      if (p.responses.length > 0 || p.challengePending) {
        const t = this.#transmitPathFrames(now, p);
        if (t) return t;
      }
    }
    if (this.c.multipath.paths.size > 1) {
      // The other multipath paths: their challenges and responses, on their own path id and 4-tuple.
      for (const p of this.c.multipath.paths.values()) {
        if (p.id === this.c.tx || p.abandoned) continue;
        const st = p.state;
        if (st.responses.length > 0 || (st.challengePending && st.challenge !== undefined)) {
          const t = this.#transmitPathFrames(now, st, p.id);
          if (t) return t;
        }
        if (p.pingPending) {
          const t = this.#transmitPathPing(now, p);
          if (t) return t;
        }
      }
    }
    if (this.c.nat.probes.length > 0) {
      const probe = this.#transmitNatProbe(now);
      if (probe) return probe;
    }
    const t = this.#transmit(now);
    if (t) return t;
    if (this.c.ownCidsPending && this.c.state === 'established' && !this.c.finishedUnsent) {
      // A client's connection IDs, once everything else has left: the first request goes
      // out before we spend time on them (handshake.ts).
      this.c.handshake.issueOwnCids();
      const ids = this.#transmit(now);
      if (ids) return ids;
    }
    // An MTU probe only when there is nothing else to send (as quinn does): the first
    // application data after the handshake does not wait behind a 1452-byte probe.
    if (this.c.mtuProbeAt > 0 && now >= this.c.mtuProbeAt && this.c.handshakeConfirmed) {
      this.c.mtuProbeAt = 0;
      return this.#transmitMtuProbe(now);
    }
    return undefined;
  }

  // ---- datagrams of their own: path frames, keep-alives, NAT probes, MTU probes, close

  /** Owed PATH_RESPONSEs and a PATH_CHALLENGE of path `p` (path id `pathId`) in one datagram padded to 1200 bytes (RFC 9000 §8.2.1, §8.2.2). */
  #transmitPathFrames(now: number, p: PathState, pathId = this.c.tx): Transmit | undefined {
    const app = this.c.spaces[SPACE_APP];
    if (app.keys === undefined || this.c.state !== 'established') {
      p.responses = [];
      p.challengePending = false;
      return undefined;
    }
    // RFC 9000 §8.2.1, §8.2.2: PATH_CHALLENGE/PATH_RESPONSE datagrams are padded to 1200
    // bytes unless the anti-amplification limit of the path does not allow that much.
    const size = Math.min(MIN_DATAGRAM, pathBudget(p));
    if (size < 64) return undefined;
    const out = new Uint8Array(size);
    const draft = this.#beginPacket(out, 0, SPACE_APP, size, pathId);
    if (draft === undefined) {
      // No connection ID of the peer's for that path (yet): nothing can go there.
      p.responses = [];
      p.challengePending = false;
      return undefined;
    }
    const w = draft.w;
    for (const data of p.responses.splice(0)) {
      writeFrame(w, { type: 'path_response', data });
    }
    if (p.challengePending && p.challenge) {
      writeFrame(w, { type: 'path_challenge', data: p.challenge });
      p.challengePending = false;
    }
    w.zeros(w.remaining);
    // Recorded as not ack-eliciting: a probe lost on a dead path must not arm the PTO of the
    // path in use (its loss is handled by the challenge timers).
    const len = this.#finishPacket(now, draft, [], false, false, false);
    p.bytesSent += len;
    return { path: p.addr, data: out.subarray(0, len) };
  }

  /** A keep-alive PING on multipath path `p` that we do not send on (its own path id and 4-tuple). */
  #transmitPathPing(now: number, p: MpPath): Transmit | undefined {
    p.pingPending = false;
    const st = p.state;
    if (this.c.spaces[SPACE_APP].keys === undefined || this.c.state !== 'established' || !st.validated || p.abandoned) return undefined;
    const out = new Uint8Array(64);
    const draft = this.#beginPacket(out, 0, SPACE_APP, out.length, p.id);
    if (draft === undefined) return undefined;
    writeFrame(draft.w, { type: 'ping' });
    padForSample(draft);
    // Not tracked for loss (the PTO runs on the path we send on): its PATH_ACK is what matters to the peer.
    const len = this.#finishPacket(now, draft, [], false, false, false);
    st.bytesSent += len;
    return { path: st.addr, data: out.subarray(0, len) };
  }

  /** Server: the off-path probe due next, as a 1-RTT packet with one PATH_CHALLENGE, unpadded (holepunch.md §2.3). */
  #transmitNatProbe(now: number): Transmit | undefined {
    const nat = this.c.nat;
    let due: NatProbe | undefined;
    for (const p of nat.probes) if (p.start + PROBE_SCHEDULE[p.attempt]! <= now) due = p;
    if (due === undefined || this.c.spaces[SPACE_APP].keys === undefined) return undefined;
    due.attempt++;
    if (due.attempt >= PROBE_SCHEDULE.length) nat.probes.splice(nat.probes.indexOf(due), 1);
    const out = new Uint8Array(96);
    const draft = this.#beginPacket(out, 0, SPACE_APP, out.length);
    if (draft === undefined) return undefined;
    writeFrame(draft.w, { type: 'path_challenge', data: due.data });
    // Not congestion-controlled or loss-tracked (as noq): the peer sees a gap in packet numbers.
    const len = this.#finishPacket(now, draft, [], false, false, false);
    return { path: due.addr, data: out.subarray(0, len) };
  }

  /** A PING padded to the next MTU to try (DPLPMTUD, RFC 9000 §14.3). */
  #transmitMtuProbe(now: number): Transmit | undefined {
    const target = Math.min(this.c.settings.maxUdpPayloadSize, this.c.peerParams?.maxUdpPayloadSize ?? MIN_DATAGRAM);
    if (target <= this.c.path.mtu || this.c.spaces[SPACE_APP].keys === undefined || pathBudget(this.c.path) < target) return undefined;
    const out = new Uint8Array(target);
    const draft = this.#beginPacket(out, 0, SPACE_APP, target);
    if (draft === undefined) return undefined;
    writeFrame(draft.w, { type: 'ping' });
    draft.w.zeros(draft.w.remaining);
    const failures = this.c.mtuProbe?.failures ?? 0;
    const pn = draft.pn;
    const len = this.#finishPacket(now, draft, [], true, true, true);
    this.c.mtuProbe = { size: target, pn, failures };
    return { path: this.c.path.addr, data: out.subarray(0, len) };
  }

  /** CONNECTION_CLOSE again while closing (RFC 9000 §10.2.1), at every level the peer may need, within the 3× limit. */
  #transmitClose(now: number): Transmit | undefined {
    const close = this.c.close;
    if (close.sendsOwed <= 0 || close.frame === undefined) return undefined;
    close.sendsOwed--;
    const out = new Uint8Array(Math.max(this.c.path.mtu, MIN_DATAGRAM));
    let pos = 0;
    let containsInitial = false;
    const drafts: PacketDraft[] = [];
    for (const id of SPACE_IDS) {
      const space = this.c.spaces[id];
      if (space.keys === undefined || space.discarded) continue;
      // Before the peer surely has 1-RTT keys, close at every level we have keys for (RFC 9000 §10.2.3).
      if (id === SPACE_APP && this.c.tls.isHandshaking) continue;
      let frame = close.frame;
      // RFC 9000 §10.2.3: an application close outside 1-RTT becomes APPLICATION_ERROR in a transport close.
      if (id !== SPACE_APP && frame.app) frame = { type: 'connection_close', app: false, code: TransportErrorCode.APPLICATION_ERROR, frameType: 0, reason: new Uint8Array(0) };
      const draft = this.#beginPacket(out, pos, id, out.length);
      if (draft === undefined) continue;
      // Acknowledge what we received first: a peer waiting for its last data to be
      // acknowledged learns it arrived before it learns the connection closed.
      if (!space.received.isEmpty) space.ackPending = true;
      this.#fillPacket(now, draft, id, [], false);
      if (frameSize(frame) > draft.w.remaining) {
        space.nextPn--;
        continue;
      }
      writeFrame(draft.w, frame);
      padForSample(draft);
      drafts.push(draft);
      if (id === SPACE_INITIAL) containsInitial = true;
      pos = draft.w.pos + 16;
    }
    if (drafts.length === 0) return undefined;
    // RFC 9000 §14.1: a client's datagram carrying an Initial packet is at least 1200 bytes,
    // closes included (a server drops smaller ones, and would keep resending its flight).
    if (containsInitial && this.c.side === 'client') {
      const last = drafts[drafts.length - 1]!;
      const need = MIN_DATAGRAM - (last.w.pos + 16);
      if (need > 0) {
        last.w.end = Math.max(last.w.end, MIN_DATAGRAM - 16);
        last.w.zeros(need);
      }
    }
    for (const d of drafts) pos = d.start + this.#finishPacket(now, d, [{ k: 'close' }], false, false, false);
    // RFC 9000 §8.1: the anti-amplification limit holds in the closing state too.
    if (pos === 0 || pos > pathBudget(this.c.path)) return undefined;
    this.c.path.bytesSent += pos;
    return { path: this.c.path.addr, data: out.subarray(0, pos) };
  }

  // ---- coalesced packets (RFC 9000 §12.2)

  /** Build one datagram with whatever each space has to send (coalescing, RFC 9000 §12.2). */
  #transmit(now: number): Transmit | undefined {
    const path = this.c.path;
    const recovery = this.c.recovery;
    let limit = path.mtu;
    const budget = pathBudget(path);
    if (budget < Infinity) {
      // RFC 9000 §8.1, §9.3: before validation, at most three times the bytes received. During
      // the handshake a server datagram needs room for a full padded Initial.
      if (budget < (this.c.state === 'handshaking' ? MIN_DATAGRAM : 64)) return undefined;
      limit = Math.min(limit, budget);
    }
    const out = this.#slab.take(Math.max(limit, MIN_DATAGRAM));
    let pos = 0;
    let containsInitial = false;
    let ackElicitingInitial = false;
    const drafts: PacketDraft[] = [];
    const ccAllows = recovery.bytesInFlight < recovery.cc.window;
    for (const id of SPACE_IDS) {
      const space = this.c.spaces[id];
      if (space.keys === undefined || space.discarded) continue;
      // A client sends 1-RTT packets only once its handshake is complete (no 0-RTT).
      if (id === SPACE_APP && this.c.tls.isHandshaking) continue;
      const probe = space.probes > 0;
      // RFC 9002 §6.2.4: probes should carry data; in the Initial and Handshake spaces every
      // probe datagram carries the unacknowledged CRYPTO data, not only the first one — a
      // server may see only a later probe, and a first Initial without CRYPTO is rejected
      // by strict servers.
      if (probe && id !== SPACE_APP && !space.cryptoSend.hasSendable() && !space.cryptoSend.allAcked) {
        space.cryptoSend.onLost(space.cryptoSend.base, space.cryptoSend.end - space.cryptoSend.base);
      }
      const wantAck = space.ackPending || (id === SPACE_APP && this.c.multipath.paths.size > 1 && this.#otherPathAckPending());
      const hasCrypto = space.cryptoSend.hasSendable();
      const hasApp = id === SPACE_APP && (this.#hasAppData() || this.c.pingPending);
      if (!wantAck && !probe && !hasCrypto && !hasApp) continue;
      // Congestion control gates ack-eliciting packets; ACK-only packets and probes always go (RFC 9002 §7).
      let mayElicit = ccAllows || probe;
      if (id === SPACE_APP && hasApp && mayElicit && !probe) {
        // Pacing (RFC 9002 §7.7): if the pacer says later, send at most an ACK now.
        const at = recovery.pacer.nextSendTime(now, limit, recovery.cc.window, recovery.rtt.smoothed, path.mtu);
        if (at > now) {
          this.c.pacingAt = at;
          mayElicit = false;
        }
      }
      if (!wantAck && !mayElicit) continue;
      const room = limit - pos;
      if (room < 64) break;
      const draft = this.#beginPacket(out, pos, id, pos + room);
      if (draft === undefined) continue;
      const frames: FrameRecord[] = [];
      let elicits = this.#fillPacket(now, draft, id, frames, mayElicit);
      if (probe && !elicits && draft.w.remaining >= 1) {
        writeFrame(draft.w, { type: 'ping' });
        elicits = true;
      }
      if (probe && elicits) space.probes--;
      if (draft.w.pos === draft.payloadStart) {
        // Nothing fit: abandon this packet (its number is not consumed).
        space.nextPn--;
        continue;
      }
      padForSample(draft);
      draft.frames = frames;
      draft.ackEliciting = elicits;
      drafts.push(draft);
      if (id === SPACE_INITIAL) {
        containsInitial = true;
        if (elicits) ackElicitingInitial = true;
      }
      pos = draft.w.pos + 16;
    }
    if (drafts.length === 0) {
      // Nothing to send (the common answer of an idle connection, which the endpoint polls
      // for every datagram any of its connections sends): the reservation goes back whole, or
      // each such poll would use up 1.2–1.5 KB of the slab and an idle neighbour would double
      // a bulk sender's allocations.
      this.#slab.giveBack(out.length);
      return undefined;
    }
    // RFC 9000 §14.1: client datagrams with Initial packets, and server datagrams with
    // ack-eliciting Initial packets, are padded to at least 1200 bytes.
    if (containsInitial && (this.c.side === 'client' || ackElicitingInitial)) {
      const last = drafts[drafts.length - 1]!;
      const need = MIN_DATAGRAM - (last.w.pos + 16);
      if (need > 0) {
        last.w.end = Math.max(last.w.end, MIN_DATAGRAM - 16);
        last.w.zeros(need);
      }
    }
    let total = 0;
    let appElicit = false;
    for (const d of drafts) {
      total = d.start + this.#finishPacket(now, d, d.frames, d.ackEliciting, d.ackEliciting, false);
      if (d.space === SPACE_APP && d.ackEliciting) appElicit = true;
    }
    path.bytesSent += total;
    if (appElicit) recovery.pacer.onSent(total);
    this.c.loss.setLossTimer();
    // Give the unused tail of the reservation back to the slab.
    this.#slab.giveBack(out.length - total);
    const data = out.subarray(0, total);
    for (const alt of this.c.dialPaths) this.c.dialCopies.push({ path: alt, data });
    return { path: path.addr, data };
  }

  /** A path we do not send on owes a PATH_ACK. */
  #otherPathAckPending(): boolean {
    for (const p of this.c.multipath.paths.values()) if (p.id !== this.c.tx && p.space.ackPending && !p.space.received.isEmpty) return true;
    return false;
  }

  /** Something for a 1-RTT packet: stream data, datagrams, control frames. */
  #hasAppData(): boolean {
    if (this.c.state !== 'established' && !(this.c.side === 'server' && this.c.spaces[SPACE_APP].keys)) return false;
    return (
      this.c.streams.hasStreamData() || this.c.datagrams.outgoing.length > 0 || this.c.handshakeDonePending || this.#connectionControlPending() || this.c.streams.hasStreamControl()
    );
  }

  /** The peer's connection ID for path `id` (path 0: RFC 9000's active one). */
  #dcidOf(id: number): Uint8Array | undefined {
    return id === 0 ? this.c.cids.active.cid : this.c.pathCids.active(id)?.cid;
  }

  /** Start a packet in `space` (1-RTT: of path `pathId`) at `out[start]`: header written, payload begins after it. */
  #beginPacket(out: Uint8Array, start: number, spaceId: SpaceId, end: number, pathId = this.c.tx): PacketDraft | undefined {
    const space = spaceId === SPACE_APP && pathId !== this.c.tx ? this.c.multipath.paths.get(pathId)?.space : this.c.spaces[spaceId];
    const dcid = spaceId === SPACE_APP ? this.#dcidOf(pathId) : this.c.cids.active.cid;
    if (space === undefined || dcid === undefined) return undefined;
    const pn = space.nextPn;
    if (pn >= MAX_PN) return undefined;
    const draft = beginPacket(out, start, end, {
      space: spaceId,
      pn,
      largestAcked: space.largestAcked,
      dcid,
      pathId: spaceId === SPACE_APP ? pathId : 0,
      scid: spaceId === SPACE_APP ? undefined : this.c.cids.local.values().next().value!.cid,
      token: spaceId === SPACE_INITIAL && this.c.side === 'client' ? this.c.retryToken : undefined,
      keyPhase: this.c.keys.phase,
    });
    if (draft === undefined) return undefined;
    space.nextPn++;
    return draft;
  }

  /** Seal a drafted packet in place; returns its length. */
  #finishPacket(now: number, d: PacketDraft, frames: FrameRecord[], ackEliciting: boolean, inFlight: boolean, mtuProbe: boolean): number {
    const other = d.space === SPACE_APP && d.pathId !== this.c.tx ? this.c.multipath.paths.get(d.pathId) : undefined;
    const space = other?.space ?? this.c.spaces[d.space];
    const recovery = other?.recovery ?? this.c.recovery;
    const size = sealPacket(d, this.c.spaces[d.space].keys!.local);
    const record: SentPacket = { pn: d.pn, time: now, size, ackEliciting, inFlight, frames, mtuProbe, keyPhase: this.c.keys.phase, epoch: recovery.epoch };
    space.sent.set(d.pn, record);
    if (ackEliciting) {
      space.ackElicitingInFlight++;
      space.timeOfLastAckEliciting = now;
      // RFC 9000 §10.1: restart the idle timer on the first ack-eliciting packet after receiving.
      if (this.c.lastAckElicitingSent <= this.c.lastActivity) this.c.resetIdleTimer(now);
      this.c.lastAckElicitingSent = now;
    }
    if (inFlight) recovery.bytesInFlight += size;
    this.c.packetsSent++;
    this.c.bytesSent += size;
    if (d.space === SPACE_APP) {
      this.c.keys.packetsInPhase++;
      // RFC 9001 §6.6: update keys well before the AEAD confidentiality limit.
      if (this.c.keys.packetsInPhase >= this.c.settings.keyUpdateInterval) this.c.initiateKeyUpdate();
    }
    // RFC 9001 §4.9.1: a client discards Initial keys when it first sends a Handshake packet.
    if (this.c.side === 'client' && d.space === SPACE_HANDSHAKE) this.c.handshake.discardSpace(SPACE_INITIAL);
    return size;
  }

  // ---- frames

  /** Write frames into a drafted packet. Returns whether any ack-eliciting frame went in. */
  #fillPacket(now: number, d: PacketDraft, spaceId: SpaceId, frames: FrameRecord[], mayElicit: boolean): boolean {
    const space = this.c.spaces[spaceId];
    const w = d.w;
    let elicits = false;
    // ACK first (RFC 9000 §13.2: acknowledge promptly). multipath-21 §2.3: once multipath is in
    // use, SHOULD acknowledge with PATH_ACK (of the path this space is).
    if ((space.ackPending || (space.ackElicitingSinceAck > 0 && mayElicit)) && !space.received.isEmpty) {
      this.#writeAck(now, w, frames, space, spaceId === SPACE_APP, spaceId === SPACE_APP && this.c.multipath.negotiated ? this.c.tx : undefined);
    }
    // multipath-21 §4.1 (as noq): acknowledgments of every path travel in any 1-RTT packet.
    if (spaceId === SPACE_APP && this.c.multipath.paths.size > 1) this.#fillPathAcks(now, w, frames, mayElicit);
    if (!mayElicit) return false;
    // CRYPTO data (retransmissions first).
    while (space.cryptoSend.hasSendable()) {
      const overhead = cryptoFrameOverhead(space.cryptoSend.unsent + 0xffff, 0x3fff);
      if (w.remaining <= overhead) break;
      const range = space.cryptoSend.nextRange(w.remaining - overhead);
      if (range === undefined) break;
      writeCryptoHeader(w, range.offset, range.length);
      space.cryptoSend.copyTo(range.offset, range.length, w.buf, w.pos);
      w.pos += range.length;
      frames.push({ k: 'crypto', offset: range.offset, length: range.length });
      elicits = true;
    }
    if (spaceId !== SPACE_APP) return elicits;
    if (this.c.handshakeDonePending && w.remaining >= 1) {
      writeFrame(w, { type: 'handshake_done' });
      frames.push({ k: 'handshake_done' });
      this.c.handshakeDonePending = false;
      elicits = true;
    }
    elicits = this.#fillControl(w, frames) || elicits;
    if (this.c.pingPending && w.remaining >= 1) {
      writeFrame(w, { type: 'ping' });
      this.c.pingPending = false;
      elicits = true;
    }
    // Datagrams, then stream data round-robin.
    if (this.c.datagrams.fill(w)) elicits = true;
    elicits = this.c.streams.fillStreams(w, frames) || elicits;
    return elicits;
  }

  /** PATH_ACK frames for the paths other than the one this packet goes on. */
  #fillPathAcks(now: number, w: FixedWriter, frames: FrameRecord[], mayElicit: boolean): void {
    for (const p of this.c.multipath.paths.values()) {
      if (p.id === this.c.tx) continue;
      const space = p.space;
      if (!(space.ackPending || (space.ackElicitingSinceAck > 0 && mayElicit)) || space.received.isEmpty) continue;
      if (!this.#writeAck(now, w, frames, space, true, p.id)) return;
    }
  }

  /**
   * An ACK (a PATH_ACK with `pathId`) of what `space` received, the newest ranges that fit;
   * `timed`: with the ack delay (1-RTT). Returns whether it was written.
   */
  #writeAck(now: number, w: FixedWriter, frames: FrameRecord[], space: PacketSpace, timed: boolean, pathId: number | undefined): boolean {
    const ranges: AckRange[] = [];
    for (const [s, e] of space.received.descending()) {
      ranges.push({ start: s, end: e - 1 });
      if (ranges.length >= MAX_ACK_RANGES) break;
    }
    const delay = timed ? Math.floor(Math.max(0, now - space.largestReceivedTime) / 2 ** this.c.settings.ackDelayExponent) : 0;
    let size = ackFrameSize(ranges, delay, pathId);
    while (size > w.remaining && ranges.length > 1) {
      ranges.pop();
      size = ackFrameSize(ranges, delay, pathId);
    }
    if (size > w.remaining) return false;
    writeAck(w, ranges, delay, pathId);
    frames.push(pathId === undefined ? { k: 'ack', largest: ranges[0]!.end } : { k: 'ack', largest: ranges[0]!.end, pathId });
    space.onAckSent();
    return true;
  }

  /** Whether any control frame may be owed (checked before every packet, so it allocates nothing). */
  #controlPending(): boolean {
    return this.c.streams.controlDirty || this.#connectionControlPending();
  }

  /** A connection-level control frame (flow control, path, connection IDs) is owed. */
  #connectionControlPending(): boolean {
    const p = this.c.path;
    return (
      p.responses.length > 0 ||
      (p.challengePending && p.challenge !== undefined) ||
      this.c.streams.flowControlPending ||
      this.c.cids.framesPending ||
      this.c.cids.pendingRetires.length > 0 ||
      this.#observationOwed() ||
      (this.c.multipath.paths.size > 0 && this.#multipathControlPending())
    );
  }

  /** A multipath or NAT-traversal control frame is owed. */
  #multipathControlPending(): boolean {
    const mp = this.c.multipath;
    if (mp.maxPathIdPending || this.c.pathCids.framesPending || this.c.pathCids.pendingRetires.length > 0) return true;
    if (this.c.nat.reachOuts.length > 0) return true;
    for (const a of this.c.nat.advertised) if (a.pending) return true;
    for (const p of mp.paths.values()) if (p.abandonPending || p.statusPending) return true;
    return false;
  }

  /**
   * draft-ietf-quic-address-discovery §4: when we offered observations and the peer asked for
   * them, an OBSERVED_ADDRESS MUST go on every new path, the handshake's included (direct
   * UDP paths only: a relayed path has no address of the peer's to report).
   */
  #observationOwed(): boolean {
    const mine = this.c.settings.addressDiscovery;
    const theirs = this.c.peerParams?.addressDiscovery;
    const a = this.c.path.addr;
    return (mine === 0 || mine === 2) && (theirs === 1 || theirs === 2) && a.ip !== undefined && a.port !== undefined && this.c.observedFor !== a.key;
  }

  /** Flow-control, stream-control and connection-ID frames. */
  #fillControl(w: FixedWriter, frames: FrameRecord[]): boolean {
    if (!this.#controlPending()) return false;
    const sink = this.#controlSink;
    sink.w = w;
    sink.frames = frames;
    sink.any = false;
    for (const p of [this.c.path]) {
      while (p.responses.length > 0) {
        if (!sink.put({ type: 'path_response', data: p.responses[0]! }, { k: 'close' })) break;
        p.responses.shift();
      }
      if (p.challengePending && p.challenge && sink.put({ type: 'path_challenge', data: p.challenge }, { k: 'close' })) p.challengePending = false;
    }
    this.c.streams.fillFlowControl(sink);
    this.c.streams.fillStreamControl(sink);
    const cids = this.c.cids;
    if (cids.framesPending) {
      let left = false;
      for (const c of cids.local.values()) {
        if (c.pending && sink.put({ type: 'new_connection_id', seq: c.seq, retirePriorTo: 0, cid: c.cid, resetToken: c.resetToken }, { k: 'new_cid', seq: c.seq })) c.pending = false;
        if (c.pending) left = true;
      }
      cids.framesPending = left;
    }
    while (cids.pendingRetires.length > 0) {
      const seq = cids.pendingRetires[0]!;
      if (!sink.put({ type: 'retire_connection_id', seq }, { k: 'retire_cid', seq })) break;
      cids.pendingRetires.shift();
    }
    if (this.c.multipath.paths.size > 0) this.#fillMultipathControl(sink);
    if (this.#observationOwed()) {
      const a = this.c.path.addr;
      // §3: sequence numbers increase monotonically within the connection.
      if (sink.put({ type: 'observed_address', seq: this.c.observedSeq, ip: a.ip!, port: a.port! }, { k: 'observed_address', path: a.key })) {
        this.c.observedSeq++;
        this.c.observedFor = a.key;
      }
    }
    return sink.any;
  }

  /** Multipath control frames owed (multipath-21 §4): abandons, statuses, connection IDs, MAX_PATH_ID. */
  #fillMultipathControl(sink: ControlSink): void {
    const mp = this.c.multipath;
    for (const p of mp.paths.values()) {
      if (p.abandonPending && sink.put({ type: 'path_abandon', pathId: p.id, code: p.abandonCode }, { k: 'path_abandon', pathId: p.id })) p.abandonPending = false;
      if (p.statusPending && !p.abandoned && sink.put({ type: 'path_status', pathId: p.id, seq: p.statusSeq, available: p.statusAvailable }, { k: 'path_status', pathId: p.id, seq: p.statusSeq })) p.statusPending = false;
    }
    if (mp.maxPathIdPending && sink.put({ type: 'max_path_id', max: mp.localMax! }, { k: 'max_path_id' })) mp.maxPathIdPending = false;
    const nat = this.c.nat;
    for (const a of nat.advertised) {
      if (a.pending && sink.put({ type: 'add_address', seq: a.seq, ip: a.address.ip, port: a.address.port }, { k: 'add_address', seq: a.seq })) a.pending = false;
    }
    while (nat.reachOuts.length > 0) {
      const a = nat.reachOuts[0]!;
      if (!sink.put({ type: 'reach_out', round: nat.round, ip: a.ip, port: a.port }, { k: 'reach_out', round: nat.round, ip: a.ip, port: a.port })) break;
      nat.reachOuts.shift();
    }
    const cids = this.c.pathCids;
    if (cids.framesPending) {
      let left = false;
      for (const c of cids.pendingLocal()) {
        if (sink.put({ type: 'new_connection_id', pathId: c.pathId, seq: c.seq, retirePriorTo: 0, cid: c.cid, resetToken: c.resetToken }, { k: 'path_new_cid', pathId: c.pathId, seq: c.seq })) c.pending = false;
        else left = true;
      }
      cids.framesPending = left;
    }
    while (cids.pendingRetires.length > 0) {
      const r = cids.pendingRetires[0]!;
      if (!sink.put({ type: 'retire_connection_id', pathId: r.pathId, seq: r.seq }, { k: 'path_retire_cid', pathId: r.pathId, seq: r.seq })) break;
      cids.pendingRetires.shift();
    }
  }

}
