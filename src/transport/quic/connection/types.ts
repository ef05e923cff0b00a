/**
 * Types shared by the connection and the endpoint: paths, transmits, events, errors.
 *
 * @module
 */
import { SdnetError } from '../../../util/errors.ts';
import { transportErrorName } from '../errors.ts';
import type { Dir } from './streams.ts';

/**
 * Where datagrams come from and go to. The core only compares `key`s; the driver decides
 * what an address is (a UDP socket address, or a relay URL and endpoint id).
 */
export interface PathAddr {
  readonly key: string;
  /**
   * Datagrams on this path go through a relay: it is always there but slower. A client whose
   * peer supports migration moves from such a path to a validated direct one, and back when
   * the direct path goes silent.
   */
  readonly relayed?: boolean;
  /**
   * The peer's host on this path (its IP, or the relay): RTT estimates are kept when only the
   * port changes (RFC 9000 §9.4). Paths without one are all different hosts.
   */
  readonly host?: string;
  /**
   * The peer is on this machine (a loopback address): the endpoint's per-address caps do not
   * apply, since every local process shares the address.
   */
  readonly loopback?: boolean;
  /**
   * The peer's IP address (4 or 16 bytes) and UDP port on a direct path: what an
   * OBSERVED_ADDRESS frame reports to it (draft-ietf-quic-address-discovery). Relayed paths
   * have none.
   */
  readonly ip?: Uint8Array;
  readonly port?: number;
}

/** One datagram to send. */
export interface Transmit {
  readonly path: PathAddr;
  readonly data: Uint8Array;
}

export type ConnectionEvent =
  | { readonly type: 'connected' }
  | { readonly type: 'stream-opened'; readonly id: number }
  | { readonly type: 'stream-readable'; readonly id: number }
  | { readonly type: 'stream-writable'; readonly id: number }
  | { readonly type: 'stream-stopped'; readonly id: number; readonly code: number }
  /** Everything written on the stream, and its end, was acknowledged by the peer. */
  | { readonly type: 'stream-finished'; readonly id: number }
  | { readonly type: 'streams-available'; readonly dir: Dir }
  | { readonly type: 'datagram' }
  /** The peer reported the address it sees our packets come from (QUIC address discovery). */
  | { readonly type: 'observed-address'; readonly ip: Uint8Array; readonly port: number }
  | { readonly type: 'path-validated'; readonly path: PathAddr }
  /** A multipath path was opened (by us as client, or by the peer): its path id and address. */
  | { readonly type: 'path-opened'; readonly id: number; readonly path: PathAddr }
  /** A multipath path was abandoned (by either side). */
  | { readonly type: 'path-closed'; readonly id: number; readonly path: PathAddr }
  | { readonly type: 'path-changed'; readonly path: PathAddr; readonly reason: PathChangeReason }
  | { readonly type: 'closed'; readonly error: ConnectionError };

/**
 * Why a connection changed paths: the server answered the first flight on it (`'dial'`), the
 * client upgraded from a relay to a validated direct path (`'upgrade'`), fell back to the
 * relay because the direct path went silent (`'fallback'`), the peer moved (`'peer-migrated'`),
 * validation of a new path failed (`'validation-failed'`), or the application asked (`'migrate'`).
 */
export type PathChangeReason = 'dial' | 'upgrade' | 'fallback' | 'peer-migrated' | 'validation-failed' | 'migrate';

export type CloseKind = 'local' | 'application' | 'transport' | 'idle-timeout' | 'stateless-reset' | 'handshake-timeout' | 'version-mismatch';

/** Why a connection ended. `code` is stable (ERR_QUIC_*, or the ERR_TLS_* that caused it). */
export class ConnectionError extends SdnetError {
  readonly kind: CloseKind;
  /** True if the peer closed or caused the close. */
  readonly remote: boolean;
  /** The application close code (kind 'application' or 'local'). */
  readonly applicationCode: number | undefined;
  /** The QUIC transport error code (kind 'transport'). */
  readonly transportCode: number | undefined;
  /** The reason phrase sent or received. */
  readonly reason: string;

  constructor(options: { code: string; kind: CloseKind; remote: boolean; applicationCode?: number; transportCode?: number; reason: string; message?: string }) {
    const what =
      options.kind === 'application' || options.kind === 'local'
        ? `application code ${options.applicationCode ?? 0}`
        : options.kind === 'transport'
          ? transportErrorName(options.transportCode ?? 0)
          : options.kind;
    // A close is an outcome, not a fault: its stack would only name the core's dispatch
    // frames, and capturing one cost ~3 µs on every connection's close (issue 11 item 8).
    const stackTraceLimit = Error.stackTraceLimit;
    Error.stackTraceLimit = 0;
    try {
      super(options.code, options.message ?? `Connection closed ${options.remote ? 'by peer' : 'locally'}: ${what}${options.reason ? ` (${options.reason})` : ''}`);
    } finally {
      Error.stackTraceLimit = stackTraceLimit;
    }
    this.name = 'ConnectionError';
    this.kind = options.kind;
    this.remote = options.remote;
    this.applicationCode = options.applicationCode;
    this.transportCode = options.transportCode;
    this.reason = options.reason;
  }
}

/** One network path of a connection, as {@link Connection.paths} reports it. */
export interface PathInfo {
  /** Multipath path id (draft-ietf-quic-multipath-21), when the connection uses multipath paths. */
  readonly id?: number;
  readonly addr: PathAddr;
  /** Datagrams go through a relay on this path. */
  readonly relayed: boolean;
  /** The peer has proven it receives on this path (RFC 9000 §8.2), or it is the handshake's. */
  readonly validated: boolean;
  /** `active`: the path the connection sends on; `candidate`: known, validated or being validated, not in use. */
  readonly status: 'active' | 'candidate';
  /** Smoothed RTT in ms (the active path's estimate; undefined for the others). */
  readonly rttMs: number | undefined;
  readonly bytesSent: number;
  readonly bytesReceived: number;
}

/** Connection statistics. */
export interface ConnectionStats {
  /** Smoothed RTT, ms. */
  rtt: number;
  /** Minimum RTT seen, ms. */
  minRtt: number;
  /** Congestion window, bytes. */
  cwnd: number;
  bytesInFlight: number;
  /** Path MTU in use, bytes. */
  mtu: number;
  packetsSent: number;
  packetsReceived: number;
  bytesSent: number;
  bytesReceived: number;
  lostPackets: number;
  congestionEvents: number;
  /** Key updates done (either side initiated). */
  keyUpdates: number;
  /** Times the connection moved to another path (upgrades, fallbacks, migrations). */
  pathChanges: number;
  /** Whether the current path goes through a relay. */
  relayed: boolean;
  /** Whether QUIC multipath (draft-ietf-quic-multipath-21) is in use on this connection. */
  multipath: boolean;
}
