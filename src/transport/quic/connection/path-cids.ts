/**
 * Connection IDs of multipath paths 1 and up (draft-ietf-quic-multipath-21 §3.2, §4.5, §4.6):
 * sequence numbers, retire_prior_to and active_connection_id_limit all count per path id.
 * Path 0 keeps RFC 9000's machinery (`cid-state.ts`); PATH_NEW_CONNECTION_ID and
 * PATH_RETIRE_CONNECTION_ID for path 0 go there.
 *
 * Every map here is bounded: path ids by our maximum (limits.ts MAX_PATH_IDS live at once),
 * connection IDs per path by ACTIVE_CONNECTION_ID_LIMIT, retirements by MAX_PENDING_RETIRES.
 *
 * @module
 */
import { equalBytes, toHex } from '../../../util/bytes.ts';
import type { CryptoProvider } from '../../crypto/provider.ts';
import { TransportError, TransportErrorCode } from '../errors.ts';
import { ACTIVE_CONNECTION_ID_LIMIT, MAX_PENDING_RETIRES } from '../limits.ts';
import type { CidHost, LocalCid, RemoteCid } from './cid-state.ts';

/** A connection ID we issued for a path other than 0. */
export interface PathLocalCid extends LocalCid {
  readonly pathId: number;
}

export class PathCids<C> {
  readonly #provider: CryptoProvider;
  readonly #host: CidHost<C>;
  readonly #owner: C;
  /** Ours, per path id, by sequence number. */
  readonly #local = new Map<number, Map<number, PathLocalCid>>();
  readonly #nextSeq = new Map<number, number>();
  /** Which path each of our connection IDs belongs to (hex of the ID → path id). */
  readonly #pathOf = new Map<string, number>();
  /** The peer's, per path id, by sequence number. */
  readonly #remote = new Map<number, Map<number, RemoteCid>>();
  readonly #retirePriorTo = new Map<number, number>();
  /** The peer's connection ID we send with on each path. */
  readonly #active = new Map<number, RemoteCid>();
  /** PATH_RETIRE_CONNECTION_ID frames owed. */
  readonly pendingRetires: { pathId: number; seq: number }[] = [];
  /** A PATH_NEW_CONNECTION_ID may be owed (some local CID is `pending`). */
  framesPending = false;
  /** IDs of ours no longer in use, still routed here until `until` (reordered packets). */
  readonly #retired: { cid: Uint8Array; until: number }[] = [];

  constructor(provider: CryptoProvider, host: CidHost<C>, owner: C) {
    this.#provider = provider;
    this.#host = host;
    this.#owner = owner;
  }

  /** Paths we issued connection IDs for. */
  get issuedPaths(): number {
    return this.#local.size;
  }

  /** Issue connection IDs for `pathId` until it has `count` (multipath-21 §3.2: for every allowed path id, up front). */
  issue(pathId: number, count: number, length: number): void {
    let m = this.#local.get(pathId);
    if (m === undefined) {
      m = new Map();
      this.#local.set(pathId, m);
    }
    while (m.size < count) {
      const seq = this.#nextSeq.get(pathId) ?? 0;
      this.#nextSeq.set(pathId, seq + 1);
      const cid = this.#provider.randomBytes(length);
      const entry: PathLocalCid = { pathId, seq, cid, resetToken: this.#host.resetToken(cid), pending: true };
      m.set(seq, entry);
      this.#pathOf.set(toHex(cid), pathId);
      this.#host.addCid(cid, this.#owner);
      this.framesPending = true;
    }
  }

  /** The path a packet sent to `dcid` belongs to: 0 unless it is one of the IDs issued here. */
  pathOf(dcid: Uint8Array): number {
    if (this.#pathOf.size === 0) return 0;
    // Nearly every packet carries the DCID of the one before: no string key for those.
    if (this.#lastDcid !== undefined && equalBytes(this.#lastDcid, dcid)) return this.#lastPath;
    const id = this.#pathOf.get(toHex(dcid)) ?? 0;
    this.#lastDcid = dcid.slice();
    this.#lastPath = id;
    return id;
  }

  #lastDcid: Uint8Array | undefined;
  #lastPath = 0;

  /** The next sequence number we would issue for `pathId` (PATH_CIDS_BLOCKED is checked against it). */
  nextSeq(pathId: number): number {
    return this.#nextSeq.get(pathId) ?? 0;
  }

  /** Every local ID still owing its PATH_NEW_CONNECTION_ID. */
  *pendingLocal(): Generator<PathLocalCid> {
    for (const m of this.#local.values()) for (const c of m.values()) if (c.pending) yield c;
  }

  /** A PATH_NEW_CONNECTION_ID was lost: send it again if the ID is still ours. */
  onLost(pathId: number, seq: number): void {
    const c = this.#local.get(pathId)?.get(seq);
    if (c !== undefined) {
      c.pending = true;
      this.framesPending = true;
    }
  }

  /** The peer's connection ID to send with on `pathId`, if it gave us one. */
  active(pathId: number): RemoteCid | undefined {
    return this.#active.get(pathId);
  }

  /**
   * PATH_NEW_CONNECTION_ID for a path other than 0 (RFC 9000 §19.15 rules, per path).
   *
   * @throws {TransportError} PROTOCOL_VIOLATION (a sequence number reused with another ID),
   *   CONNECTION_ID_LIMIT_ERROR (more than our active_connection_id_limit on the path)
   */
  onNewConnectionId(pathId: number, seq: number, retirePriorTo: number, cid: Uint8Array, resetToken: Uint8Array, wireType: number): void {
    let m = this.#remote.get(pathId);
    const known = m?.get(seq);
    if (known) {
      if (!equalBytes(known.cid, cid)) throw new TransportError(TransportErrorCode.PROTOCOL_VIOLATION, 'PATH_NEW_CONNECTION_ID reuses a sequence number', wireType);
      return;
    }
    const floor = this.#retirePriorTo.get(pathId) ?? 0;
    if (seq < floor) {
      this.#queueRetire(pathId, seq, wireType);
      return;
    }
    if (m === undefined) {
      m = new Map();
      this.#remote.set(pathId, m);
    }
    m.set(seq, { seq, cid, resetToken });
    if (retirePriorTo > floor) {
      this.#retirePriorTo.set(pathId, retirePriorTo);
      for (const s of [...m.keys()]) {
        if (s < retirePriorTo) {
          m.delete(s);
          this.#queueRetire(pathId, s, wireType);
        }
      }
    }
    // multipath-21 §2.2: active_connection_id_limit counts per path.
    if (m.size > ACTIVE_CONNECTION_ID_LIMIT) throw new TransportError(TransportErrorCode.CONNECTION_ID_LIMIT_ERROR, 'too many connection IDs for one path', wireType);
    const active = this.#active.get(pathId);
    if (active === undefined || active.seq < (this.#retirePriorTo.get(pathId) ?? 0)) {
      const next = [...m.values()].sort((a, b) => a.seq - b.seq)[0];
      if (next) this.#active.set(pathId, next);
    }
  }

  #queueRetire(pathId: number, seq: number, wireType: number): void {
    if (this.pendingRetires.length >= MAX_PENDING_RETIRES) {
      throw new TransportError(TransportErrorCode.CONNECTION_ID_LIMIT_ERROR, 'too many connection IDs to retire', wireType);
    }
    this.pendingRetires.push({ pathId, seq });
  }

  /**
   * PATH_RETIRE_CONNECTION_ID for one of ours on a path other than 0. Returns whether an ID was
   * retired (a replacement may be issued).
   *
   * @throws {TransportError} PROTOCOL_VIOLATION (never issued, or the ID the packet was sent to)
   */
  onRetireConnectionId(pathId: number, seq: number, wireType: number, packetDcid: Uint8Array, now: number, pto: number): boolean {
    // RFC 9000 §19.16, per path (multipath-21 §4.6).
    if (seq >= this.nextSeq(pathId)) throw new TransportError(TransportErrorCode.PROTOCOL_VIOLATION, 'PATH_RETIRE_CONNECTION_ID for an unissued id', wireType);
    const m = this.#local.get(pathId);
    const c = m?.get(seq);
    if (m === undefined || c === undefined) return false;
    if (equalBytes(c.cid, packetDcid)) throw new TransportError(TransportErrorCode.PROTOCOL_VIOLATION, 'PATH_RETIRE_CONNECTION_ID of the connection ID in use', wireType);
    m.delete(seq);
    this.#retire(c.cid, now + 3 * pto);
    return true;
  }

  /**
   * A path is gone (abandoned, multipath-21 §3.4): the peer's IDs for it are retired at once,
   * ours stay routed for `grace` µs (packets in flight), then are forgotten.
   */
  dropPath(pathId: number, until: number): void {
    this.#remote.delete(pathId);
    this.#active.delete(pathId);
    this.#retirePriorTo.delete(pathId);
    const m = this.#local.get(pathId);
    if (m !== undefined) for (const c of m.values()) this.#retire(c.cid, until);
    // The map stays (empty) so the path id is not issued again.
    m?.clear();
    for (let i = this.pendingRetires.length - 1; i >= 0; i--) if (this.pendingRetires[i]!.pathId === pathId) this.pendingRetires.splice(i, 1);
  }

  /** Whether IDs were ever issued for `pathId` (abandoned paths keep their empty entry). */
  issued(pathId: number): boolean {
    return this.#local.has(pathId);
  }

  #retire(cid: Uint8Array, until: number): void {
    if (this.#retired.length >= MAX_PENDING_RETIRES) {
      const old = this.#retired.shift()!;
      this.#forget(old.cid);
    }
    this.#retired.push({ cid, until });
  }

  #forget(cid: Uint8Array): void {
    this.#pathOf.delete(toHex(cid));
    if (this.#lastDcid !== undefined && equalBytes(this.#lastDcid, cid)) this.#lastDcid = undefined;
    this.#host.removeCid(cid);
  }

  /** Forget retired IDs whose grace ended. */
  expireRetired(now: number): void {
    while (this.#retired.length > 0 && this.#retired[0]!.until <= now) this.#forget(this.#retired.shift()!.cid);
  }

  get nextExpiry(): number {
    return this.#retired.length > 0 ? this.#retired[0]!.until : 0;
  }

  /** The connection is gone. */
  removeAll(): void {
    for (const m of this.#local.values()) for (const c of m.values()) this.#forget(c.cid);
    for (const c of this.#retired.splice(0)) this.#forget(c.cid);
  }
}
