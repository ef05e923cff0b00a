/**
 * Paths (RFC 9000 §8–9, draft-ietf-quic-multipath-21, n0 NAT traversal): validation with
 * PATH_CHALLENGE/PATH_RESPONSE, migration and NAT rebinding, the client's direct candidates
 * while it runs over a relay (upgrade, fall back, back-off), multipath paths (open, accept,
 * select, abandon, per-path timers and keep-alive) and REACH_OUT rounds.
 *
 * @module
 */
import { type MpPath } from './multipath.ts';
import { TokenBucket } from './token-bucket.ts';
import { equalBytes } from '../../../util/bytes.ts';
import { ADVERTISED_PROBE_REFILL, MAX_ADVERTISED_PROBES, MAX_PADDED_PROBE_RESPONSES, PADDED_PROBE_RESPONSE_REFILL, MAX_PATH_CANDIDATES, PATH_CIDS_PER_PATH, PATH_CIDS_PER_UNUSED_PATH } from '../limits.ts';
import { CHALLENGE_SENDS, MIN_DATAGRAM, newPath, startChallenge, type PathState } from './paths.ts';
import { PathRecovery } from './recovery.ts';
import { PacketSpace, SPACE_APP, type SentPacket } from './spaces.ts';
import { type PathAddr, type PathChangeReason } from './types.ts';
import type { ConnectionCore } from './core.ts';

/** A direct path a client tries while its connection runs over a relay. */
export interface Candidate {
  readonly addr: PathAddr;
  /**
   * The peer told us about it (sdnet_direct_addresses), rather than our own dial: until it
   * validates once, its probes come out of the connection's probe budget.
   */
  readonly advertised: boolean;
  /** It answered a PATH_CHALLENGE at least once. */
  validated: boolean;
  /** Failed probes in a row. */
  attempts: number;
  /** When to probe it next (µs). */
  nextAt: number;
  probing: boolean;
}

/** Paths besides the current one a connection keeps state for. */
export const MAX_OTHER_PATHS = 8;

/**
 * A client on a direct path with a relay to fall back to sends an ack-eliciting packet at
 * least this often (µs), so that a path gone silent shows up as PTOs even while only
 * receiving.
 */
const PATH_LIVENESS_INTERVAL = 1_000_000;

/** Client: a new REACH_OUT round this often while only the relay works (iroh: every 5 to 60 s). */
const NAT_ROUND_INTERVAL = 15_000_000;

/** multipath-21 §4.2: PATH_UNSTABLE_OR_POOR, the code noq abandons unvalidated paths with. */
const PATH_UNSTABLE_OR_POOR = 0x3e76;

/** First retry delay of a direct path whose probe failed (µs); doubles up to the maximum. */
const UPGRADE_RETRY_BASE = 1_000_000;
const UPGRADE_RETRY_MAX = 30_000_000;

export class PathManager {
  readonly c: ConnectionCore;
  /** Client: direct paths to move to while on a relayed path. */
  readonly candidates = new Map<string, Candidate>();
  /**
   * Probes of advertised addresses that never answered: a bucket of MAX_ADVERTISED_PROBES,
   * refilled one per ADVERTISED_PROBE_REFILL. A peer listing addresses that are not its own
   * (a victim's) gets a few PATH_CHALLENGEs sent there, not a stream of them.
   */
  readonly probes = new TokenBucket(MAX_ADVERTISED_PROBES, ADVERTISED_PROBE_REFILL);
  /** Padded answers to off-path probes: a bucket of MAX_PADDED_PROBE_RESPONSES, one back per PADDED_PROBE_RESPONSE_REFILL. */
  readonly paddedResponses = new TokenBucket(MAX_PADDED_PROBE_RESPONSES, PADDED_PROBE_RESPONSE_REFILL);

  constructor(c: ConnectionCore) {
    this.c = c;
  }

  // ---- validation and single-path migration (RFC 9000 §8.2, §9)

  /** The state of path `addr` besides the current one, created if new (kept unless over MAX_OTHER_PATHS, or `create`). */
  otherPath(addr: PathAddr, create: boolean, peerInitiated: boolean): PathState {
    let p = this.c.otherPaths.get(addr.key);
    if (p === undefined) {
      p = newPath(addr, false, peerInitiated);
      if (create || this.c.otherPaths.size < MAX_OTHER_PATHS) this.c.otherPaths.set(addr.key, p);
    }
    return p;
  }

  /** Validate `p` with a fresh PATH_CHALLENGE (RFC 9000 §8.2.1). */
  startChallenge(now: number, p: PathState): void {
    startChallenge(p, this.c.provider.randomBytes(8), now, this.c.recovery.rtt.pto(this.c.peerMaxAckDelay), this.c.settings.initialRtt);
  }

  /** A PATH_RESPONSE for a single-path challenge (RFC 9000 §8.2.3): the path is validated; a validated candidate is moved to. */
  onPathResponse(now: number, path: PathAddr, data: Uint8Array): void {
    const candidates = [this.c.path, ...this.c.otherPaths.values()];
    for (const p of candidates) {
      if (p.challenge && equalBytes(p.challenge, data)) {
        p.challenge = undefined;
        p.challengePending = false;
        p.validated = true;
        if (p === this.c.path) {
          this.c.addressValidated = true;
          this.#restartMtuDiscovery(now);
        }
        this.c.events.push({ type: 'path-validated', path: p.addr });
        void path;
        const c = this.candidates.get(p.addr.key);
        if (c !== undefined) {
          c.probing = false;
          c.validated = true;
          c.attempts = 0;
          if (p !== this.c.path && this.c.managePaths && this.c.path.addr.relayed) this.#upgrade(now, p);
        }
        return;
      }
    }
  }

  /**
   * The challenge timers of path `p`: RFC 9000 §8.2.1, a lost PATH_CHALLENGE is sent again (a new
   * datagram, same data) every PTO of `recovery`; at its deadline the challenge ends, and a
   * candidate being probed there backs off. Returns whether the challenge just failed.
   */
  #runChallengeTimer(now: number, p: PathState, recovery: PathRecovery): boolean {
    if (!p.challenge) return false;
    if (now >= p.challengeDeadline) {
      p.challenge = undefined;
      p.challengePending = false;
      const c = this.candidates.get(p.addr.key);
      if (c !== undefined && c.probing) {
        c.probing = false;
        c.attempts++;
        c.nextAt = now + this.#upgradeRetryDelay(c.attempts);
      }
      return true;
    }
    if (p.challengeSends < CHALLENGE_SENDS && now >= p.challengeResendAt) {
      p.challengePending = true;
      p.challengeSends++;
      p.challengeResendAt = now + recovery.rtt.pto(this.c.peerMaxAckDelay);
    }
    return false;
  }

  /**
   * The validation timers of the current path and the other single-path paths: a failed
   * validation of the path we send on goes back to the last validated path (RFC 9000 §9.3.2;
   * on a multipath path, abandons it, multipath-21 §3.4); another path that failed is dropped
   * (the relay kept to fall back to excepted).
   */
  runChallengeTimers(now: number): void {
    for (const p of [this.c.path, ...this.c.otherPaths.values()]) {
      if (this.#runChallengeTimer(now, p, this.c.recovery)) {
        if (p === this.c.path && !p.validated && this.c.tx !== 0) {
          // The multipath path we send on did not validate at its new address: abandoned, and
          // sending continues on another validated path (multipath-21 §3.4).
          this.abandonPath(now, this.c.tx, PATH_UNSTABLE_OR_POOR);
        } else if (p === this.c.path && !p.validated) {
          // RFC 9000 §9.3.2: validation of the new path failed: go back to the last validated one.
          const back = [...this.c.otherPaths.values()].find((x) => x.validated);
          if (back) {
            this.c.otherPaths.delete(back.addr.key);
            this.c.otherPaths.set(p.addr.key, p);
            this.switchPath(now, back, false, 'validation-failed');
          }
        } else if (p !== this.c.path && p.addr.key !== this.c.fallbackKey) {
          this.c.otherPaths.delete(p.addr.key);
        }
      }
    }
  }

  /** A non-probing packet with the largest packet number arrived on `addr`: the peer migrated (RFC 9000 §9.3). */
  onPathActivity(now: number, addr: PathAddr): void {
    if (addr.key === this.c.path.addr.key || this.c.summary.probingOnly) return;
    if (this.c.side === 'client' || this.c.state !== 'established' || !this.c.handshakeConfirmed) return;
    const p = this.otherPath(addr, true, true);
    this.c.otherPaths.delete(addr.key);
    this.c.otherPaths.set(this.c.path.addr.key, this.c.path);
    this.switchPath(now, p, !p.validated, 'peer-migrated');
  }

  /** Send on `p` from now on (RFC 9000 §9): a fresh connection ID, recovery reset, validated if `validate`. */
  switchPath(now: number, p: PathState, validate: boolean, reason: PathChangeReason): void {
    const old = this.c.path;
    this.c.path = p;
    p.heardAt = Math.max(p.heardAt, now);
    this.c.pathChanges++;
    // RFC 9000 §9.5: a new path uses a new connection ID when one is available.
    this.c.cids.rotate();
    // RFC 9000 §9.4: reset congestion control and RTT for a new path (the RTT estimate stays
    // when only the peer's port changed).
    this.c.recovery.resetForNewPath(this.c.settings, p.mtu, !(old.addr.host === undefined || old.addr.host !== p.addr.host));
    // A new path's MTU is found again, once it is validated (probes are not sent beyond the
    // anti-amplification limit).
    if (!validate) this.#restartMtuDiscovery(now);
    if (validate) this.startChallenge(now, p);
    this.c.events.push({ type: 'path-changed', path: p.addr, reason });
  }

  /** Find the MTU of the current path again, from the start (after a path change or validation). */
  #restartMtuDiscovery(now: number): void {
    if (this.c.settings.mtuDiscovery && this.c.handshakeConfirmed && this.c.path.mtu < this.c.settings.maxUdpPayloadSize) {
      this.c.mtuProbe = undefined;
      this.c.mtuProbeAt = now;
    }
  }

  // ---- client: direct candidates while on a relay (upgrade, fall back)

  /** Client: a direct path to try while on a relay (`advertised`: the peer named it, so its probes are budgeted). */
  addCandidate(now: number, path: PathAddr, advertised: boolean): void {
    if (this.c.side !== 'client' || path.relayed || this.candidates.has(path.key) || this.candidates.size >= MAX_PATH_CANDIDATES) return;
    this.candidates.set(path.key, { addr: path, advertised, validated: false, attempts: 0, nextAt: now, probing: false });
  }

  /** Client: a direct path validated while we are on a relay: move there (RFC 9000 §9.2). */
  #upgrade(now: number, p: PathState): void {
    // RFC 9000 §9.5: a new path needs a connection ID the old one did not use; wait for one.
    if (this.c.cids.unused() === undefined) {
      const c = this.candidates.get(p.addr.key);
      if (c) c.nextAt = now + UPGRADE_RETRY_BASE;
      return;
    }
    const relay = this.c.path;
    this.c.otherPaths.delete(p.addr.key);
    this.c.otherPaths.set(relay.addr.key, relay);
    this.c.fallbackKey = relay.addr.key;
    this.switchPath(now, p, false, 'upgrade');
  }

  /** Client: the direct path went silent (consecutive PTOs): back to the relay. */
  fallBack(now: number): void {
    const relay = this.c.fallbackKey === undefined ? undefined : this.c.otherPaths.get(this.c.fallbackKey);
    if (relay === undefined) return;
    const dead = this.c.path;
    // It is not a path to return to until it validates again.
    dead.validated = false;
    this.c.otherPaths.delete(relay.addr.key);
    this.c.otherPaths.set(dead.addr.key, dead);
    const c = this.candidates.get(dead.addr.key);
    if (c !== undefined) {
      c.attempts++;
      c.probing = false;
      c.nextAt = now + this.#upgradeRetryDelay(c.attempts);
    }
    this.switchPath(now, relay, !relay.validated, 'fallback');
  }

  /** Back-off before probing a failed candidate again. */
  #upgradeRetryDelay(attempts: number): number {
    return Math.min(UPGRADE_RETRY_BASE * 2 ** Math.max(0, attempts - 1), UPGRADE_RETRY_MAX);
  }

  /** Client path management, run from the timer: probe candidates while relayed, keep the direct path live. */
  runPathTimers(now: number): void {
    if (!this.c.managePaths || this.c.state !== 'established' || !this.c.handshakeConfirmed) return;
    if (this.c.path.addr.relayed) {
      if (this.c.nat.active && this.c.nextRoundAt > 0 && now >= this.c.nextRoundAt) this.startNatRound(now);
      for (const c of this.candidates.values()) {
        if (c.probing || now < c.nextAt) continue;
        if (c.advertised && !c.validated && !this.probes.take(now)) {
          // Out of budget: try again when it refills (not on every timer pass).
          c.nextAt = this.probes.nextAt;
          continue;
        }
        if (this.#multipathPaths) {
          // With multipath the direct path is a path of its own (one mechanism, issue 17 item 5).
          if (this.#openPath(now, c.addr) === undefined) {
            c.nextAt = now + UPGRADE_RETRY_BASE;
            continue;
          }
          c.probing = true;
          continue;
        }
        c.probing = true;
        this.startChallenge(now, this.otherPath(c.addr, true, false));
      }
    } else if ((this.c.fallbackKey !== undefined || this.c.tx !== 0) && now >= this.c.lastAckElicitingSent + PATH_LIVENESS_INTERVAL) {
      this.c.pingPending = true;
    }
  }

  /** The next time {@link #runPathTimers} has work, or 0. */
  pathTimerAt(): number {
    if (!this.c.managePaths || this.c.state !== 'established' || !this.c.handshakeConfirmed) return 0;
    if (!this.c.path.addr.relayed) return (this.c.fallbackKey !== undefined || this.c.tx !== 0) && !this.c.pingPending ? this.c.lastAckElicitingSent + PATH_LIVENESS_INTERVAL : 0;
    let t = this.c.nat.active && this.c.nextRoundAt > 0 ? this.c.nextRoundAt : 0;
    for (const c of this.candidates.values()) if (!c.probing && (t === 0 || c.nextAt < t)) t = Math.max(c.nextAt, 1);
    return t;
  }

  /** Client: a REACH_OUT round announcing our addresses (holepunch.md §2.2), and when the next is due. */
  startNatRound(now: number): void {
    if (this.c.localAddresses.length > 0) this.c.nat.startRound(this.c.localAddresses);
    this.c.nextRoundAt = now + NAT_ROUND_INTERVAL;
  }

  // ---- multipath paths (multipath-21 §3; multipath.ts)

  /** A multipath path record (path id `id` counts as used from now on, and gets its spare connection ID). */
  newMpPath(id: number, space: PacketSpace, recovery: PathRecovery, state: PathState): MpPath {
    if (id > this.c.multipath.highestUsed) this.c.multipath.highestUsed = id;
    if (id !== 0 && this.c.pathCids.issued(id)) this.c.pathCids.issue(id, this.#cidsPerPath(PATH_CIDS_PER_PATH), this.c.cids.localLength);
    return { id, space, recovery, state, abandoned: false, abandonPending: false, abandonCode: 0, dropAt: 0, statusSeq: 0, statusAvailable: false, statusPending: false, keepAliveAt: 0, pingPending: false };
  }

  /** Connection IDs for every path id the peer may use now, up front: one each, two for a path in use (multipath-21 §3.2). */
  issuePathCids(): void {
    const mp = this.c.multipath;
    if (!mp.negotiated) return;
    for (let id = 1; id <= mp.usableMax; id++) {
      if (this.c.pathCids.issued(id) || mp.isClosed(id)) continue;
      const count = mp.paths.has(id) ? PATH_CIDS_PER_PATH : PATH_CIDS_PER_UNUSED_PATH;
      this.c.pathCids.issue(id, this.#cidsPerPath(count), this.c.cids.localLength);
    }
  }

  /** `count`, or fewer if the peer's active_connection_id_limit is lower (it counts per path, multipath-21 §2.2). */
  #cidsPerPath(count: number): number {
    return Math.min(this.c.peerParams?.activeConnectionIdLimit ?? 2, count);
  }

  /**
   * Client: open a new multipath path to `addr` (multipath-21 §3.1): the next unused path id,
   * a PATH_CHALLENGE padded to 1200 bytes with our status for it. Returns the id, or undefined
   * when no id or no connection ID of the peer's is available for it.
   */
  #openPath(now: number, addr: PathAddr): number | undefined {
    const mp = this.c.multipath;
    if (this.c.side !== 'client' || this.c.state !== 'established' || !mp.negotiated || !this.c.handshakeConfirmed) return undefined;
    const id = mp.highestUsed + 1;
    if (id > mp.usableMax || this.c.pathCids.active(id) === undefined) return undefined;
    for (const p of mp.paths.values()) if (!p.abandoned && this.c.mp(p.id)!.state.addr.key === addr.key) return p.id;
    const rec = this.newMpPath(id, new PacketSpace(), new PathRecovery(this.c.settings, MIN_DATAGRAM), newPath(addr, false, false));
    mp.paths.set(id, rec);
    rec.statusSeq = 1;
    rec.statusAvailable = false;
    rec.statusPending = true;
    this.startChallenge(now, rec.state);
    this.c.events.push({ type: 'path-opened', id, path: addr });
    return id;
  }

  /** Whether multipath paths can be opened now (negotiated, and the peer allows an id above 0). */
  get #multipathPaths(): boolean {
    return this.c.multipath.negotiated && this.c.multipath.usableMax > 0;
  }

  /**
   * Server: an authenticated packet on a path id not in use yet opens that path (multipath-21
   * §3.1; noq `ensure_path`). It is challenged at once, as every new path.
   */
  acceptPath(now: number, id: number, addr: PathAddr): MpPath | undefined {
    const mp = this.c.multipath;
    if (this.c.side !== 'server' || id > mp.usableMax || mp.paths.has(id) || mp.isClosed(id)) return undefined;
    const rec = this.newMpPath(id, new PacketSpace(), new PathRecovery(this.c.settings, MIN_DATAGRAM), newPath(addr, false, true));
    mp.paths.set(id, rec);
    this.startChallenge(now, rec.state);
    this.c.events.push({ type: 'path-opened', id, path: addr });
    return rec;
  }

  /** A PATH_RESPONSE for a multipath path's challenge (multipath-21 §3.1). Returns whether it matched one. */
  onMpPathResponse(now: number, addr: PathAddr, data: Uint8Array): boolean {
    for (const p of this.c.multipath.paths.values()) {
      const rec = this.c.mp(p.id)!;
      const st = rec.state;
      if (rec.abandoned || st.challenge === undefined || !equalBytes(st.challenge, data)) continue;
      // Validated only by a response from the 4-tuple the challenge went to (RFC 9000 §8.2.3 as noq).
      if (st.addr.key !== addr.key) return true;
      // The challenge's round trip is the path's first RTT sample (as noq), when it was sent once.
      if (!rec.recovery.rtt.hasSample && st.challengeSends === 1) rec.recovery.rtt.update(now - st.challengeSentAt, 0, true, this.c.peerMaxAckDelay);
      st.challenge = undefined;
      st.challengePending = false;
      st.validated = true;
      this.c.events.push({ type: 'path-validated', path: st.addr });
      const c = this.candidates.get(st.addr.key);
      if (c !== undefined) {
        c.probing = false;
        c.validated = true;
        c.attempts = 0;
      }
      if (rec.id === this.c.tx) {
        this.c.addressValidated = true;
        this.#restartMtuDiscovery(now);
      }
      this.#choosePath(now);
      return true;
    }
    return false;
  }

  /**
   * Server: a non-probing packet with the largest packet number of multipath path `id` came from
   * another address than the path's (a NAT rebinding): RFC 9000 §9.3 per path (multipath-21 §5.1),
   * as noq. The path is sent to at its new address from now on, validated there, and until then
   * gets at most three times what arrived from that address (§9.4: a new address starts over
   * with the minimum MTU; RTT and congestion state are kept, as for a port-only change).
   */
  onMpPathActivity(now: number, id: number, addr: PathAddr, bytes: number): void {
    if (this.c.side !== 'server' || this.c.summary.probingOnly || this.c.state !== 'established' || !this.c.handshakeConfirmed) return;
    const rec = this.c.mp(id);
    if (rec === undefined || rec.abandoned || rec.state.addr.key === addr.key) return;
    const moved = this.c.otherPaths.get(addr.key) ?? newPath(addr, false, true);
    this.c.otherPaths.delete(addr.key);
    if (moved.bytesReceived === 0) moved.bytesReceived = bytes;
    rec.state = moved;
    if (!moved.validated) this.startChallenge(now, moved);
    if (id === this.c.tx) {
      this.c.path = moved;
      this.c.pathChanges++;
      this.c.mtuProbe = undefined;
      this.c.events.push({ type: 'path-changed', path: addr, reason: 'peer-migrated' });
    }
  }

  /**
   * Send on path `id` from now on. Its space, recovery and address move into the connection's
   * send slots; what was in flight on the old path is sent again on the new one (a path we
   * leave may be dead, and frames are idempotent, RFC 9000 §13.3).
   */
  #selectPath(now: number, id: number, reason: PathChangeReason): void {
    if (id === this.c.tx) return;
    const from = this.c.mp(this.c.tx)!;
    const to = this.c.mp(id);
    if (to === undefined || to.abandoned) return;
    to.space.keys = from.space.keys;
    const lost: SentPacket[] = [];
    for (const p of from.space.sent.values()) if (p.ackEliciting) lost.push(p);
    for (const p of lost) {
      from.space.sent.delete(p.pn);
      from.space.ackElicitingInFlight--;
      from.recovery.leaveFlight(p);
      this.c.loss.onPacketLost(p, SPACE_APP, false);
    }
    this.c.spaces[SPACE_APP] = to.space;
    this.c.recovery = to.recovery;
    this.c.path = to.state;
    to.state.heardAt = Math.max(to.state.heardAt, now);
    this.c.tx = id;
    this.c.pathChanges++;
    // The MTU probe in flight counted packet numbers of the old path.
    this.c.mtuProbe = undefined;
    this.#restartMtuDiscovery(now);
    // multipath-21 §3.3 (as iroh): the path we send on is AVAILABLE, the others BACKUP.
    for (const p of this.c.multipath.paths.values()) {
      if (p.abandoned) continue;
      const available = p.id === id;
      if (p.statusSeq > 0 && p.statusAvailable === available) continue;
      p.statusSeq++;
      p.statusAvailable = available;
      p.statusPending = true;
    }
    this.c.events.push({ type: 'path-changed', path: to.state.addr, reason });
  }

  /** The best path to send on: a validated direct path beats the relay; then the one in use (multipath-21 §5.5). */
  #choosePath(now: number): void {
    const current = this.c.mp(this.c.tx)!;
    let best = current;
    for (const p of this.c.multipath.paths.values()) {
      const rec = this.c.mp(p.id)!;
      if (rec.abandoned || !rec.state.validated || rec === best) continue;
      const direct = rec.state.addr.relayed !== true;
      const bestDirect = best.state.addr.relayed !== true;
      if (direct && !bestDirect) best = rec;
    }
    if (best !== current) this.#selectPath(now, best.id, current.state.addr.relayed ? 'upgrade' : 'fallback');
  }

  /** The direct path we send on went silent: continue on a validated relay path, abandon the dead one (it is opened anew later). */
  mpFallBack(now: number): void {
    const relay = [...this.c.multipath.paths.values()].find((p) => p.id !== this.c.tx && !p.abandoned && this.c.mp(p.id)!.state.validated && this.c.mp(p.id)!.state.addr.relayed === true);
    if (relay === undefined) return;
    const dead = this.c.tx;
    const addr = this.c.path.addr;
    this.#selectPath(now, relay.id, 'fallback');
    this.abandonPath(now, dead, PATH_UNSTABLE_OR_POOR);
    const c = this.candidates.get(addr.key);
    if (c !== undefined) {
      c.validated = false;
      c.probing = false;
      c.attempts++;
      c.nextAt = now + this.#upgradeRetryDelay(c.attempts);
    }
  }

  /** Abandon path `id` (multipath-21 §3.4): PATH_ABANDON owed, the peer's IDs for it retired, state kept 3 PTO. */
  abandonPath(now: number, id: number, code: number): void {
    const rec = this.c.mp(id);
    if (rec === undefined || rec.abandoned) return;
    rec.abandoned = true;
    rec.abandonPending = true;
    rec.abandonCode = code;
    rec.state.challenge = undefined;
    rec.state.challengePending = false;
    rec.state.responses = [];
    rec.dropAt = now + 3 * this.c.recovery.rtt.pto(this.c.peerMaxAckDelay);
    if (id === this.c.tx) {
      const other = [...this.c.multipath.paths.values()].find((p) => !p.abandoned && this.c.mp(p.id)!.state.validated);
      if (other !== undefined) this.#selectPath(now, other.id, 'fallback');
    }
    this.c.events.push({ type: 'path-closed', id, path: rec.state.addr });
  }

  /** The peer abandoned path `id` that we never saw a packet on: closed, its IDs retired, one more id allowed. */
  closeUnseenPath(now: number, id: number): void {
    const mp = this.c.multipath;
    // Ids are opened in order (multipath-21 §3.1), so the ids below it were used already.
    if (id > mp.highestUsed) mp.highestUsed = id;
    this.c.pathCids.dropPath(id, now + 3 * this.c.recovery.rtt.pto(this.c.peerMaxAckDelay));
    mp.refill();
    this.issuePathCids();
  }

  /** Forget abandoned paths whose grace ended (and make room for one more path id, as noq). */
  #dropAbandonedPaths(now: number): void {
    for (const p of [...this.c.multipath.paths.values()]) {
      if (!p.abandoned || p.abandonPending || p.dropAt > now || p.id === this.c.tx) continue;
      this.c.multipath.paths.delete(p.id);
      if (p.id !== 0) this.c.pathCids.dropPath(p.id, now + 3 * this.c.recovery.rtt.pto(this.c.peerMaxAckDelay));
      this.c.multipath.refill();
      this.issuePathCids();
    }
  }

  /** Acknowledgment deadlines, challenges and abandon grace periods of the paths we do not send on. */
  runMultipathTimers(now: number): void {
    for (const p of [...this.c.multipath.paths.values()]) {
      if (p.id === this.c.tx) continue;
      const sp = p.space;
      if (sp.ackElicitingSinceAck > 0 && sp.ackDeadline <= now) sp.ackPending = true;
      const st = p.state;
      // multipath-21 §3.1 (noq): a path whose challenges went unanswered is abandoned as unstable.
      if (this.#runChallengeTimer(now, st, p.recovery) && !st.validated) this.abandonPath(now, p.id, PATH_UNSTABLE_OR_POOR);
      // Keep-alive per path (as noq): a validated path we do not send on (the relay kept as
      // backup, a second direct path) gets a PING every keep-alive interval, so neither its NAT
      // mapping nor the peer's idle handling of paths lets it lapse.
      const interval = this.c.settings.keepAliveInterval * 1000;
      if (interval > 0 && st.validated && !p.abandoned) {
        if (p.keepAliveAt === 0) p.keepAliveAt = now + interval;
        else if (now >= p.keepAliveAt) {
          p.pingPending = true;
          p.keepAliveAt = now + interval;
        }
      }
    }
    this.#dropAbandonedPaths(now);
    this.c.pathCids.expireRetired(now);
  }

}
