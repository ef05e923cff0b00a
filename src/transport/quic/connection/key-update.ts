/**
 * 1-RTT key updates (RFC 9001 §6): the key phase we send with and the one the peer uses, the
 * previous and next read keys kept around an update, and when the next update is allowed.
 *
 * @module
 */
import type { PacketKeys } from '../protection/packet-keys.ts';
import type { PacketSpace } from './spaces.ts';

export class KeyPhase {
  /** Phase of the keys we send with. */
  phase = 0;
  /** Phase of the keys the peer sends with (current read keys). */
  remotePhase = 0;
  /** First packet number the peer sent in its current phase (older ones use the previous keys). */
  remotePhaseStartPn = 0;
  previousRemoteKeys: PacketKeys | undefined;
  nextRemoteKeys: PacketKeys | undefined;
  /** First packet number we sent in the current phase. */
  firstPnInPhase = 0;
  /** An ACK arrived for a packet sent in the current phase (RFC 9001 §6.1 gate for the next update). */
  phaseAcked = true;
  packetsInPhase = 0;
  updates = 0;
  /** The peer updated: the old read keys go 3 PTO after the next send (RFC 9001 §6.5). */
  discardPending = false;
  /** When the previous read keys are dropped (µs), 0 when none are kept. */
  discardAt = 0;
  /** The application asked for an update that was not yet allowed. */
  wanted = false;

  /**
   * The read keys for a 1-RTT packet with key-phase bit `phase` and number `pn` (RFC 9001
   * §6.3): an older packet uses the previous keys, a newer one in another phase means an update
   * (`change` is then true, and {@link onPeerUpdate} follows once it authenticates).
   */
  openKeys(app: PacketSpace, phase: number, pn: number): { keys: PacketKeys; change: boolean } {
    const current = app.keys!.remote;
    if (phase === this.remotePhase) return { keys: current, change: false };
    if (pn < this.remotePhaseStartPn && this.previousRemoteKeys) return { keys: this.previousRemoteKeys, change: false };
    this.nextRemoteKeys ??= current.next();
    return { keys: this.nextRemoteKeys, change: true };
  }

  /** The peer's packets moved to the next key phase (RFC 9001 §6.2). */
  /**
   * Keys for a packet of a path other than the one whose packet numbers `remotePhaseStartPn`
   * counts (multipath): a flipped phase bit is an old packet while the previous keys are kept
   * (RFC 9001 §6.5), otherwise the peer's next update.
   */
  openKeysOffPath(app: PacketSpace, phase: number): { keys: PacketKeys; change: boolean } {
    const current = app.keys!.remote;
    if (phase === this.remotePhase) return { keys: current, change: false };
    if (this.previousRemoteKeys) return { keys: this.previousRemoteKeys, change: false };
    this.nextRemoteKeys ??= current.next();
    return { keys: this.nextRemoteKeys, change: true };
  }

  onPeerUpdate(app: PacketSpace, pn: number): void {
    const keys = app.keys!;
    this.previousRemoteKeys = keys.remote;
    const remote = this.nextRemoteKeys!;
    this.nextRemoteKeys = undefined;
    this.remotePhase ^= 1;
    this.remotePhaseStartPn = pn;
    if (this.remotePhase !== this.phase) {
      // The peer initiated: we follow with our write keys before acknowledging (RFC 9001 §6.2).
      app.keys = { local: keys.local.next(), remote };
      this.phase = this.remotePhase;
      this.firstPnInPhase = app.nextPn;
      this.phaseAcked = false;
      this.packetsInPhase = 0;
      this.updates++;
    } else {
      // The peer answered our update: only the read side moves.
      app.keys = { local: keys.local, remote };
    }
    // RFC 9001 §6.5: keep the old read keys for a while (3 PTO), for reordered packets.
    this.discardPending = true;
  }

  /**
   * Update now if RFC 9001 §6.1 allows it: not before the handshake is confirmed (the caller
   * checks), and not again before a packet of the current phase was acknowledged (nor while
   * the peer has not followed the last one).
   */
  tryUpdate(app: PacketSpace): boolean {
    if (!this.phaseAcked || this.phase !== this.remotePhase) return false;
    if (app.keys === undefined) return false;
    this.wanted = false;
    app.keys = { local: app.keys.local.next(), remote: app.keys.remote };
    this.phase ^= 1;
    this.firstPnInPhase = app.nextPn;
    this.phaseAcked = false;
    this.packetsInPhase = 0;
    this.updates++;
    return true;
  }

  /** A 1-RTT packet numbered `pn` was acknowledged. Returns whether a wanted update may go now. */
  onAcked(pn: number): boolean {
    if (pn < this.firstPnInPhase) return false;
    this.phaseAcked = true;
    return this.wanted;
  }
}
