/**
 * Connection IDs (RFC 9000 §5.1): the ones we issue (and the endpoint routes to us), the
 * ones the peer issued and which of them we send with, and the retirements owed either way.
 *
 * @module
 */
import type { CryptoProvider } from '../../crypto/provider.ts';
import { equalBytes, equalBytesConstantTime } from '../../../util/bytes.ts';
import { TransportError, TransportErrorCode } from '../errors.ts';
import { ACTIVE_CONNECTION_ID_LIMIT, MAX_PENDING_RETIRES } from '../limits.ts';
import type { Frame } from '../wire/frames.ts';

/** What the connection asks of the endpoint for its connection IDs. */
export interface CidHost<C> {
  addCid(cid: Uint8Array, connection: C): void;
  removeCid(cid: Uint8Array): void;
  resetToken(cid: Uint8Array): Uint8Array;
  setPeerResetToken(connection: C, token: Uint8Array | undefined): void;
}

export interface RemoteCid {
  readonly seq: number;
  readonly cid: Uint8Array;
  readonly resetToken: Uint8Array | undefined;
}

export interface LocalCid {
  readonly seq: number;
  readonly cid: Uint8Array;
  readonly resetToken: Uint8Array;
  /** Needs a NEW_CONNECTION_ID frame. */
  pending: boolean;
}

/** Retired connection IDs kept routed at most (the oldest is forgotten first). */
const MAX_RETIRED_ROUTED = 8;

export class CidState<C> {
  readonly #provider: CryptoProvider;
  readonly #host: CidHost<C>;
  readonly #owner: C;
  readonly local = new Map<number, LocalCid>();
  nextLocalSeq = 0;
  readonly remote = new Map<number, RemoteCid>();
  /** The peer's connection ID we send with. */
  active: RemoteCid;
  remoteRetirePriorTo = 0;
  readonly pendingRetires: number[] = [];
  /** A NEW_CONNECTION_ID frame may be owed (some local CID is `pending`). */
  framesPending = false;
  /** Our connection IDs the peer retired, still routed here until `until`. */
  readonly retiredLocal: { cid: Uint8Array; until: number }[] = [];

  constructor(provider: CryptoProvider, host: CidHost<C>, owner: C, firstRemote: RemoteCid) {
    this.#provider = provider;
    this.#host = host;
    this.#owner = owner;
    this.active = firstRemote;
    this.remote.set(firstRemote.seq, firstRemote);
  }

  /** Length of the connection IDs we issue. */
  get localLength(): number {
    const any = this.local.values().next().value;
    return any?.cid.length ?? 8;
  }

  issue(length: number, pending: boolean): LocalCid {
    const cid = this.#provider.randomBytes(length);
    const entry: LocalCid = { seq: this.nextLocalSeq++, cid, resetToken: this.#host.resetToken(cid), pending };
    if (pending) this.framesPending = true;
    this.local.set(entry.seq, entry);
    this.#host.addCid(cid, this.#owner);
    return entry;
  }

  /** Issue connection IDs up to what the peer lets us give it (RFC 9000 §5.1.1). */
  issueUpTo(peerLimit: number | undefined): void {
    const limit = Math.min(peerLimit ?? 2, ACTIVE_CONNECTION_ID_LIMIT + 4);
    while (this.local.size < limit) this.issue(this.localLength, true);
  }

  /** Replace the peer's connection ID of sequence 0 (its SCID; after a Retry or its first packet). */
  setInitialRemote(c: RemoteCid): void {
    this.active = c;
    this.remote.set(0, c);
  }

  onNewConnectionId(f: Extract<Frame, { type: 'new_connection_id' }>, wireType: number): void {
    const known = this.remote.get(f.seq);
    if (known) {
      // RFC 9000 §19.15: the same sequence number with different contents → PROTOCOL_VIOLATION.
      if (!equalBytes(known.cid, f.cid)) throw new TransportError(TransportErrorCode.PROTOCOL_VIOLATION, 'NEW_CONNECTION_ID reuses a sequence number', wireType);
      return;
    }
    if (f.seq < this.remoteRetirePriorTo) {
      // Already retired by an earlier retire_prior_to: retire it right away (RFC 9000 §19.15).
      if (!this.queueRetire(f.seq)) throw retireOverflow(wireType);
      return;
    }
    this.remote.set(f.seq, { seq: f.seq, cid: f.cid, resetToken: f.resetToken });
    if (f.retirePriorTo > this.remoteRetirePriorTo) {
      this.remoteRetirePriorTo = f.retirePriorTo;
      for (const seq of [...this.remote.keys()]) {
        if (seq < f.retirePriorTo) {
          this.remote.delete(seq);
          if (!this.queueRetire(seq)) throw retireOverflow(wireType);
        }
      }
      if (this.active.seq < f.retirePriorTo) {
        const next = [...this.remote.values()].sort((a, b) => a.seq - b.seq)[0];
        if (next) this.use(next);
      }
    }
    // RFC 9000 §5.1.1: more than our active_connection_id_limit → CONNECTION_ID_LIMIT_ERROR.
    if (this.remote.size > ACTIVE_CONNECTION_ID_LIMIT) throw new TransportError(TransportErrorCode.CONNECTION_ID_LIMIT_ERROR, 'too many connection IDs', wireType);
  }

  /** Queue a RETIRE_CONNECTION_ID; false (nothing queued) when too many are pending already. Never throws: timers call it. */
  queueRetire(seq: number): boolean {
    if (this.pendingRetires.length >= MAX_PENDING_RETIRES) return false;
    this.pendingRetires.push(seq);
    return true;
  }

  /**
   * RETIRE_CONNECTION_ID from the peer, in a packet sent to `packetDcid`. Returns whether one
   * of our IDs was retired (a replacement may be issued).
   */
  onRetireConnectionId(seq: number, wireType: number, packetDcid: Uint8Array, now: number, pto: number): boolean {
    // RFC 9000 §19.16: retiring a sequence number never sent → PROTOCOL_VIOLATION.
    if (seq >= this.nextLocalSeq) throw new TransportError(TransportErrorCode.PROTOCOL_VIOLATION, 'RETIRE_CONNECTION_ID for an unissued id', wireType);
    const c = this.local.get(seq);
    if (c === undefined) return false;
    // RFC 9000 §19.16: it must not retire the ID the packet carrying it was sent to.
    if (equalBytes(c.cid, packetDcid)) throw new TransportError(TransportErrorCode.PROTOCOL_VIOLATION, 'RETIRE_CONNECTION_ID of the connection ID in use', wireType);
    this.local.delete(seq);
    // Packets still in flight with it (on a slower path, after a migration) should reach us,
    // not draw a stateless reset: it stays routed for three PTOs.
    if (this.retiredLocal.length >= MAX_RETIRED_ROUTED) this.#host.removeCid(this.retiredLocal.shift()!.cid);
    this.retiredLocal.push({ cid: c.cid, until: now + 3 * pto });
    return true;
  }

  /** Switch the connection ID we send with, and tell the endpoint its reset token. */
  use(c: RemoteCid): void {
    this.active = c;
    this.#host.setPeerResetToken(this.#owner, c.resetToken);
  }

  /** A peer connection ID other than the active one (the oldest), if the peer gave us one. */
  unused(): RemoteCid | undefined {
    return [...this.remote.values()].filter((c) => c.seq !== this.active.seq).sort((a, b) => a.seq - b.seq)[0];
  }

  /**
   * RFC 9000 §9.5: a new path uses a new connection ID when one is available. If the
   * retirement cannot be queued now (the peer retired many IDs while this path could not
   * send), the path keeps the ID in use: switching paths must not fail.
   */
  rotate(): void {
    const fresh = this.unused();
    if (fresh && this.queueRetire(this.active.seq)) {
      this.remote.delete(this.active.seq);
      this.use(fresh);
    }
  }

  /** RFC 9000 §10.3.1: does `datagram` end in the reset token of the connection ID in use (never of unused IDs)? */
  isStatelessReset(datagram: Uint8Array): boolean {
    if (datagram.length < 21) return false;
    const token = this.active.resetToken;
    return token !== undefined && equalBytesConstantTime(token, datagram.subarray(datagram.length - 16));
  }

  /** Forget retired IDs whose grace period ended. */
  expireRetired(now: number): void {
    while (this.retiredLocal.length > 0 && this.retiredLocal[0]!.until <= now) this.#host.removeCid(this.retiredLocal.shift()!.cid);
  }

  /** When {@link expireRetired} has work, or 0. */
  get nextExpiry(): number {
    return this.retiredLocal.length > 0 ? this.retiredLocal[0]!.until : 0;
  }

  /** The connection is gone: nothing routes to it any more. */
  removeAll(): void {
    for (const c of this.local.values()) this.#host.removeCid(c.cid);
    for (const c of this.retiredLocal.splice(0)) this.#host.removeCid(c.cid);
  }
}

/** A peer whose NEW_CONNECTION_IDs retire faster than we can say so (CVE-2024-22189). */
function retireOverflow(wireType: number): TransportError {
  return new TransportError(TransportErrorCode.CONNECTION_ID_LIMIT_ERROR, 'too many connection IDs to retire', wireType);
}
