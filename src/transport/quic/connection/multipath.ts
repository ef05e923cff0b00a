/**
 * Multipath negotiation and the peer's path limits (draft-ietf-quic-multipath-21, noq's
 * behaviour where they differ: holepunch.md §1).
 *
 * What this holds: whether both sides offered `initial_max_path_id` and the handshake is
 * complete (then the extension is in use), the path ids each side allows, and the peer's
 * advisory path status. It checks every multipath frame against them, so a peer cannot name a
 * path id above what we allowed or use the frames without having negotiated them.
 *
 * It also keeps the paths themselves ({@link MpPath}: per path id a packet-number space, loss
 * recovery with RTT and congestion control, an address and its validation, our advisory
 * status) and which path ids are closed for good (ids are never reused, §3.1).
 *
 * @module
 */
import { TransportError, TransportErrorCode } from '../errors.ts';
import { MAX_PATH_ID_VALUE } from '../wire/frames.ts';
import type { TransportParameters } from '../wire/transport-params.ts';
import type { PathState } from './paths.ts';
import type { PathRecovery } from './recovery.ts';
import type { PacketSpace } from './spaces.ts';

/** One multipath path (id 0 is the handshake's path). */
export interface MpPath {
  readonly id: number;
  /** Its 1-RTT packet-number space (multipath-21 §2.4: one per path id). */
  space: PacketSpace;
  /** RTT, congestion control and PTO of this path. */
  recovery: PathRecovery;
  /** Its 4-tuple, validation, challenge and owed responses. */
  state: PathState;
  /** We sent (or owe) PATH_ABANDON: nothing else goes out on it (§3.4). */
  abandoned: boolean;
  abandonPending: boolean;
  abandonCode: number;
  /** When its state is dropped after the abandon (3 PTO, §3.4). */
  dropAt: number;
  /** Our PATH_STATUS for it (§3.3): last sequence number used, value, and whether a frame is owed. */
  statusSeq: number;
  statusAvailable: boolean;
  statusPending: boolean;
  /** When a keep-alive PING is due on it while it is not the path we send on (0: not armed yet). */
  keepAliveAt: number;
  /** A keep-alive PING is owed on it. */
  pingPending: boolean;
}
const violation = (reason: string, wireType: number): TransportError => new TransportError(TransportErrorCode.PROTOCOL_VIOLATION, reason, wireType);

export class MultipathState {
  /** The path ids we allow (initial_max_path_id, raised by our MAX_PATH_ID); undefined when we do not offer multipath. */
  localMax: number | undefined;
  /** A MAX_PATH_ID frame with `localMax` is owed. */
  maxPathIdPending = false;
  /** Live paths by id (0 included once multipath is in use). */
  readonly paths = new Map<number, MpPath>();
  /** The highest path id ever used by either side: below it, an id that is not live is closed for good. */
  highestUsed = 0;
  /** The path ids the peer allows us (its initial_max_path_id, raised by MAX_PATH_ID); −1 before its parameters. */
  remoteMax = -1;
  /** The peer's initial_max_path_id: a MAX_PATH_ID below it is a PROTOCOL_VIOLATION (§4.7). */
  #peerInitialMax = -1;
  /** Both sides offered it (known once the peer's transport parameters arrive). */
  #offered = false;
  /** §2: in use once the handshake is complete. */
  #negotiated = false;
  /** The peer's last PATH_STATUS per path id: sequence number and whether it said "available". */
  readonly #peerStatus = new Map<number, { seq: number; available: boolean }>();
  /** The peer's last PATHS_BLOCKED value (informational, kept for stats and tests). */
  pathsBlocked: number | undefined;

  constructor(localMax: number | undefined) {
    if (localMax !== undefined && !(Number.isInteger(localMax) && localMax >= 0 && localMax <= MAX_PATH_ID_VALUE)) {
      throw new RangeError(`initial_max_path_id must be an integer in 0..${MAX_PATH_ID_VALUE}`);
    }
    this.localMax = localMax;
  }

  /** Multipath is in use (both offered it and the handshake is complete). */
  get negotiated(): boolean {
    return this.#negotiated;
  }

  /**
   * The peer's transport parameters arrived. `peerCidLength` is the length of the connection
   * ID the peer chose for itself (its initial_source_connection_id).
   *
   * @throws {TransportError} PROTOCOL_VIOLATION when the peer offers multipath with a zero-length connection ID
   */
  onPeerParams(p: TransportParameters, peerCidLength: number): void {
    if (p.initialMaxPathId === undefined) return;
    // §2.1: initial_max_path_id with a zero-length connection ID → PROTOCOL_VIOLATION.
    if (peerCidLength === 0) throw new TransportError(TransportErrorCode.PROTOCOL_VIOLATION, 'initial_max_path_id with a zero-length connection ID');
    if (this.localMax === undefined) return;
    this.#offered = true;
    this.#peerInitialMax = p.initialMaxPathId;
    this.remoteMax = p.initialMaxPathId;
  }

  /** The handshake completed: from now on the extension is in use if both offered it (§2). */
  onHandshakeComplete(): void {
    this.#negotiated = this.#offered;
  }

  /**
   * A multipath frame arrived. §2: without negotiation both sides MUST NOT use them, so one is
   * a PROTOCOL_VIOLATION (as noq); so is a path id above the ones we allowed (§4.5, §4.8).
   */
  checkFrame(wireType: number, pathId?: number): void {
    if (!this.#negotiated) throw violation('multipath frame without multipath negotiated', wireType);
    if (pathId !== undefined && pathId > this.localMax!) throw violation(`path id ${pathId} above our maximum ${this.localMax}`, wireType);
  }

  /** Path ids the peer may use now (its limit and ours, §4.7): ids 1..this. */
  get usableMax(): number {
    return this.#negotiated ? Math.min(this.localMax!, this.remoteMax) : 0;
  }

  /** Whether `id` was used and is closed (abandoned): never reopened (§3.1). */
  isClosed(id: number): boolean {
    return id <= this.highestUsed && !this.paths.has(id);
  }

  /** A path was abandoned: as noq, allow one more path id so the peer does not run out (§3.4, holepunch.md §1.5). */
  refill(): void {
    this.localMax = this.localMax! + 1;
    this.maxPathIdPending = true;
  }

  /** MAX_PATH_ID (§4.7): only raises; above 2^32 − 1 or below the peer's own initial value → PROTOCOL_VIOLATION. */
  onMaxPathId(max: number, wireType: number): void {
    this.checkFrame(wireType);
    if (max > MAX_PATH_ID_VALUE) throw violation('MAX_PATH_ID above 2^32 - 1', wireType);
    if (max < this.#peerInitialMax) throw violation('MAX_PATH_ID below initial_max_path_id', wireType);
    if (max > this.remoteMax) this.remoteMax = max;
  }

  /** PATH_STATUS_AVAILABLE / PATH_STATUS_BACKUP (§4.3): advisory; an old sequence number MUST be ignored. */
  onPathStatus(pathId: number, seq: number, available: boolean, wireType: number): void {
    this.checkFrame(wireType, pathId);
    const last = this.#peerStatus.get(pathId);
    if (last !== undefined && seq <= last.seq) return;
    // Bounded: path ids are at most localMax, which our settings bound.
    this.#peerStatus.set(pathId, { seq, available });
  }

  /** What the peer last said of a path: 'available', 'backup' or undefined (nothing said). */
  peerStatus(pathId: number): 'available' | 'backup' | undefined {
    const s = this.#peerStatus.get(pathId);
    return s === undefined ? undefined : s.available ? 'available' : 'backup';
  }

  /** PATHS_BLOCKED (§4.8): informational; a maximum above ours → PROTOCOL_VIOLATION. */
  onPathsBlocked(max: number, wireType: number): void {
    this.checkFrame(wireType);
    if (max > this.localMax!) throw violation('PATHS_BLOCKED above our maximum path id', wireType);
    this.pathsBlocked = max;
  }

  /**
   * PATH_CIDS_BLOCKED (§4.8): informational; a path id above ours, or a next sequence number
   * beyond the next one we would issue for that path → PROTOCOL_VIOLATION.
   */
  onPathCidsBlocked(pathId: number, nextSeq: number, nextLocalSeq: number, wireType: number): void {
    this.checkFrame(wireType, pathId);
    if (nextSeq > nextLocalSeq) throw violation('PATH_CIDS_BLOCKED names a connection ID we have not issued', wireType);
  }
}
