/**
 * What the parts of a {@link Connection} share: its state (packet-number spaces, the path we
 * send on and the others, loss recovery, connection IDs, streams, multipath and NAT-traversal
 * state, timers, counters) and the transitions every part may take (closing, draining, the
 * idle timer, key updates).
 *
 * A connection is split the way quinn's `connection/` folder is: this core holds the state;
 * each concern is a class of its own that reads and changes it through `c`, and reaches the
 * others through the core (`c.handshake`, `c.loss`, `c.paths`, `c.out`):
 * - `connection.ts`: the public API, packets in (decrypt, duplicate check, dispatch) and timers;
 * - `handshake.ts`: CRYPTO frames, TLS, keys and transport parameters, Retry, Version Negotiation;
 * - `frame-handlers.ts`: what each received frame does (decoded by `frame-dispatch.ts`);
 * - `loss-detection.ts`: acknowledgments, loss, PTO (with `recovery.ts` per path);
 * - `path-manager.ts`: path validation, migration, multipath paths, NAT traversal;
 * - `transmit.ts`: which space and path sends what, and packet assembly (`packet-builder.ts`).
 *
 * Nothing outside this folder sees the core: the endpoint holds the {@link Connection}.
 *
 * @module
 */
import type { CryptoProvider } from '../../crypto/provider.ts';
import { MultipathState, type MpPath } from './multipath.ts';
import { PathCids } from './path-cids.ts';
import { MAX_NAT_ADDRESSES, NatTraversal } from './nat-traversal.ts';
import type { ConnectionSettings } from '../config.ts';
import { TransportError } from '../errors.ts';
import { ACTIVE_CONNECTION_ID_LIMIT, MAX_PATH_ID_OFFERED } from '../limits.ts';
import { initialKeys } from '../protection/packet-keys.ts';
import { isProbeable } from '../address.ts';
import { type CryptoSession } from '../tls/index.ts';
import { type DirectAddress, type TransportParameters } from '../wire/transport-params.ts';
import { CidState } from './cid-state.ts';
import { CloseState, peerCloseError, transportClose, type CloseFrame } from './close.ts';
import { DatagramQueues } from './datagrams.ts';
import { type PacketSummary } from './frame-dispatch.ts';
import { KeyPhase } from './key-update.ts';
import { MIN_DATAGRAM, newPath, pathBudget, type PathState } from './paths.ts';
import { PathRecovery } from './recovery.ts';
import { PacketSpace, SPACE_APP, SPACE_HANDSHAKE, SPACE_INITIAL, type SpaceId } from './spaces.ts';
import { StreamsState } from './streams-state.ts';
import { ConnectionError, type ConnectionEvent, type PathAddr, type Transmit } from './types.ts';
import type { Connection, ConnectionOptions, ConnectionHost } from './connection.ts';
import { Handshake } from './handshake.ts';
import { LossDetection } from './loss-detection.ts';
import { PathManager, MAX_OTHER_PATHS } from './path-manager.ts';
import { Transmitter } from './transmit.ts';

export type State = 'handshaking' | 'established' | 'closing' | 'draining' | 'closed';

export class ConnectionCore {
  /** The connection these parts make up (what the endpoint routes connection IDs to). */
  readonly conn: Connection;
  /** CRYPTO frames, TLS, keys, transport parameters, Retry and Version Negotiation (handshake.ts). */
  readonly handshake: Handshake;
  /** Acknowledgments, loss detection and the PTO (loss-detection.ts). */
  readonly loss: LossDetection;
  /** Paths: validation, migration, multipath, NAT traversal (path-manager.ts). */
  readonly paths: PathManager;
  /** Datagrams out: which space and path sends what, packet assembly (transmit.ts). */
  readonly out: Transmitter;

  readonly side: 'client' | 'server';
  readonly provider: CryptoProvider;
  readonly settings: ConnectionSettings;
  readonly #host: ConnectionHost;
  readonly tls: CryptoSession;
  readonly spaces: [PacketSpace, PacketSpace, PacketSpace] = [new PacketSpace(), new PacketSpace(), new PacketSpace()];
  state: State = 'handshaking';
  readonly events: ConnectionEvent[] = [];
  readonly close = new CloseState();
  /**
   * An application close asked for while our last handshake flight (the client's Finished)
   * was still unsent: it takes effect once that flight has left (transmit.ts).
   */
  closeAfterFlight: { frame: CloseFrame; error: ConnectionError } | undefined;
  /** A client's connection IDs, issued once the datagram with its Finished is built (handshake.ts). */
  ownCidsPending = false;

  // ---- identity of the connection
  readonly originalDcid: Uint8Array;
  readonly cids: CidState<Connection>;
  retryToken: Uint8Array = new Uint8Array(0);
  retrySourceCid: Uint8Array | undefined;
  receivedFirstServerPacket = false;
  peerInitialScid: Uint8Array | undefined;

  // ---- paths
  path: PathState;
  readonly otherPaths = new Map<string, PathState>();
  /** Client, before the first answer: the extra paths every datagram is copied to. */
  dialPaths: PathAddr[] = [];
  dialCopies: Transmit[] = [];
  addressValidated: boolean;
  /** Client: every path the first flight went to (direct ones become upgrade candidates). */
  dialed: PathAddr[] = [];
  readonly resolvePath: ((address: DirectAddress) => PathAddr | undefined) | undefined;
  /** Client: the server sent sdnet_direct_addresses and allows migration, so we manage paths. */
  managePaths = false;
  /** Client: the relayed path to fall back to while on a direct one. */
  fallbackKey: string | undefined;
  pathChanges = 0;

  // ---- recovery
  recovery: PathRecovery;
  handshakeConfirmed = false;
  peerCompletedAddressValidation: boolean;

  // ---- timers (µs; 0 = unset)
  idleDeadline = 0;
  idleTimeout = 0;
  lastActivity: number;
  lastAckElicitingSent = 0;
  handshakeDeadline: number;
  keepAliveAt = 0;
  pacingAt = 0;

  // ---- peer parameters
  peerParams: TransportParameters | undefined;
  /** QUIC address discovery: the next OBSERVED_ADDRESS sequence number we send. */
  observedSeq = 0;
  /** The path (key) whose OBSERVED_ADDRESS is sent or in flight. */
  observedFor: string | undefined;
  /** The latest observation the peer reported to us. */
  observed: { seq: number; ip: Uint8Array; port: number } | undefined;
  peerMaxAckDelay = 25_000;
  peerAckDelayExponent = 3;

  readonly keys = new KeyPhase();
  readonly multipath: MultipathState;
  /** Connection IDs of multipath paths 1 and up (path 0's are `cids`). */
  readonly pathCids: PathCids<Connection>;
  /**
   * The multipath path we send on. Its space, recovery and address are the ones in
   * `spaces[SPACE_APP]`, `recovery` and `path` (the 1-RTT keys live in that space too); the
   * other paths' are in their {@link MpPath} records.
   */
  tx = 0;
  /** n0 NAT traversal (nat-traversal.ts). */
  readonly nat: NatTraversal;
  /** Our direct addresses (ADD_ADDRESS as server, REACH_OUT as client). */
  readonly localAddresses: readonly DirectAddress[];
  /** Client: when the next REACH_OUT round starts while only the relay works (0: none). */
  nextRoundAt = 0;
  readonly streams: StreamsState;
  readonly datagrams: DatagramQueues;

  // ---- misc pending frames
  handshakeDonePending = false;
  pingPending = false;
  mtuProbe: { size: number; pn: number; failures: number } | undefined;
  mtuProbeAt = 0;

  // ---- input: the packet being processed, and packets kept for later
  /** The latest time given to the connection (µs). */
  now = 0;
  /** The destination connection ID of the packet being processed. */
  packetDcid: Uint8Array = new Uint8Array(0);
  /** The packet whose frames are being dispatched. */
  readonly rx: { now: number; path: PathAddr; space: SpaceId; pathId: number } = { now: 0, path: { key: '' }, space: SPACE_INITIAL, pathId: 0 };
  /** What the frames of the packet being processed were, as a whole (frame-dispatch.ts). */
  readonly summary: PacketSummary = { ackEliciting: false, probingOnly: true };
  /** Packets that arrived before their keys (replayed once the keys exist). */
  readonly earlyPackets: { path: PathAddr; data: Uint8Array }[] = [];
  /** Moving `earlyPackets` to `replayEarly` now (no re-entry). */
  replayingEarly = false;
  /** Buffered packets to run again once the current datagram is done. */
  readonly replayEarly: { path: PathAddr; data: Uint8Array }[] = [];

  // ---- stats
  packetsSent = 0;
  packetsReceived = 0;
  bytesSent = 0;
  bytesReceived = 0;
  lost = 0;

  constructor(options: ConnectionOptions, conn: Connection) {
    this.conn = conn;
    this.handshake = new Handshake(this);
    this.loss = new LossDetection(this);
    this.paths = new PathManager(this);
    this.out = new Transmitter(this);
    this.side = options.side;
    this.provider = options.provider;
    this.settings = options.settings;
    this.#host = options.host;
    this.originalDcid = options.originalDcid;
    this.recovery = new PathRecovery(options.settings, MIN_DATAGRAM);
    this.lastActivity = options.now;
    this.handshakeDeadline = options.now + options.settings.handshakeTimeout * 1000;
    this.path = newPath(options.path, options.side === 'client' || options.retriedFrom !== undefined, options.side === 'server');
    this.resolvePath = options.resolvePath;
    if (options.side === 'client') this.dialed.push(options.path);
    for (const alt of options.side === 'client' ? (options.alternativePaths ?? []) : []) {
      if (alt.key === options.path.key || this.otherPaths.has(alt.key)) continue;
      if (this.otherPaths.size >= MAX_OTHER_PATHS) break;
      this.otherPaths.set(alt.key, newPath(alt, true, false));
      this.dialPaths.push(alt);
      this.dialed.push(alt);
    }
    // RFC 9000 §8.1: a client's address is validated by the server (a Retry token already
    // proved it, §8.1.2); the client trusts the server.
    this.addressValidated = options.side === 'client' || options.retriedFrom !== undefined;
    this.peerCompletedAddressValidation = options.side === 'server';
    this.streams = new StreamsState(options.side, options.settings, this.events, () => this.recovery.rtt.smoothed, () => this.now);
    this.datagrams = new DatagramQueues(this.streams.recvBudget, options.settings.maxDatagramFrameSize);
    for (const space of this.spaces) space.cryptoRecv.budget = this.streams.recvBudget;

    // RFC 9000 §7.2: the client's first DCID is random (≥ 8 bytes); it also keys Initial protection.
    const firstRemote = options.side === 'client' ? { seq: 0, cid: options.originalDcid, resetToken: undefined } : { seq: 0, cid: options.peerCid!, resetToken: undefined };
    this.cids = new CidState(this.provider, this.#host, conn, firstRemote);
    this.pathCids = new PathCids(this.provider, this.#host, conn);
    const localCid = this.cids.issue(options.cidLength, false);
    if (options.side === 'server') {
      this.peerInitialScid = options.peerCid;
      // Route the client's chosen DCID here too, so duplicate Initials (several paths) join this connection.
      this.#host.addCid(options.originalDcid, conn);
    }
    this.spaces[SPACE_INITIAL].keys = options.initialKeys ?? initialKeys(this.provider, options.originalDcid, options.side);

    const s = options.settings;
    // multipath-21 §2.1: offered only with non-zero connection IDs.
    this.multipath = new MultipathState(s.multipath && options.cidLength > 0 ? MAX_PATH_ID_OFFERED : undefined);
    this.nat = new NatTraversal(options.side, s.multipath && options.cidLength > 0);
    this.localAddresses = (options.directAddresses ?? []).filter(isProbeable).slice(0, MAX_NAT_ADDRESSES);
    const params: TransportParameters = {
      maxIdleTimeout: s.maxIdleTimeout,
      maxUdpPayloadSize: s.maxUdpPayloadSize,
      initialMaxData: s.receiveWindow,
      initialMaxStreamDataBidiLocal: s.streamReceiveWindow,
      initialMaxStreamDataBidiRemote: s.streamReceiveWindow,
      initialMaxStreamDataUni: s.streamReceiveWindow,
      initialMaxStreamsBidi: s.maxConcurrentBidiStreams,
      initialMaxStreamsUni: s.maxConcurrentUniStreams,
      ackDelayExponent: s.ackDelayExponent,
      maxAckDelay: s.maxAckDelay,
      disableActiveMigration: false,
      activeConnectionIdLimit: ACTIVE_CONNECTION_ID_LIMIT,
      initialSourceConnectionId: localCid.cid,
      maxDatagramFrameSize: s.maxDatagramFrameSize,
      ...(s.addressDiscovery !== undefined ? { addressDiscovery: s.addressDiscovery } : {}),
      ...(this.multipath.localMax !== undefined ? { initialMaxPathId: this.multipath.localMax } : {}),
      ...(this.nat.localLimit !== undefined ? { natTraversal: this.nat.localLimit } : {}),
      ...(options.side === 'server'
        ? {
            originalDestinationConnectionId: options.retriedFrom ?? options.originalDcid,
            ...(options.retriedFrom ? { retrySourceConnectionId: options.originalDcid } : {}),
            statelessResetToken: localCid.resetToken,
            ...(options.directAddresses ? { sdnetDirectAddresses: options.directAddresses } : {}),
          }
        : {}),
    };
    this.tls = options.tls(params);
    this.handshake.pumpTls();
  }

  /**
   * Update the 1-RTT keys (RFC 9001 §6.1): now if allowed, else as soon as a packet of the
   * current phase has been acknowledged (a PING makes sure one is). False only before the
   * handshake is confirmed or after close.
   */
  initiateKeyUpdate(): boolean {
    if (!this.handshakeConfirmed || this.state !== 'established') return false;
    if (this.tryKeyUpdate()) return true;
    this.keys.wanted = true;
    this.pingPending = true;
    return true;
  }

  /** Perform the update if RFC 9001 §6.1 allows it now. */
  tryKeyUpdate(): boolean {
    if (!this.handshakeConfirmed || this.state !== 'established') return false;
    return this.keys.tryUpdate(this.spaces[SPACE_APP]);
  }

  /** Closing, draining or closed (a method, so TypeScript does not narrow the state across calls). */
  gone(): boolean {
    return this.state === 'closing' || this.state === 'draining' || this.state === 'closed';
  }

  /** Issue connection IDs up to the peer's active_connection_id_limit (cid-state.ts). */
  issueCids(): void {
    this.cids.issueUpTo(this.peerParams?.activeConnectionIdLimit);
  }

  /** The peer reset the connection (RFC 9000 §10.3): draining, nothing more is sent. */
  onStatelessReset(now: number): void {
    this.close.error = new ConnectionError({ code: 'ERR_QUIC_STATELESS_RESET', kind: 'stateless-reset', remote: true, reason: '' });
    this.state = 'draining';
    this.close.deadline = now + 3 * this.recovery.rtt.pto(this.peerMaxAckDelay);
    this.#emitClosed();
  }

  /** The record of path `id` with the live objects when it is the path we send on. */
  mp(id: number): MpPath | undefined {
    const rec = this.multipath.paths.get(id);
    if (rec !== undefined && id === this.tx) {
      rec.space = this.spaces[SPACE_APP];
      rec.recovery = this.recovery;
      rec.state = this.path;
    }
    return rec;
  }

  // ---- closing (close.ts; RFC 9000 §10)

  /** The peer's CONNECTION_CLOSE. */
  onConnectionClose(now: number, f: CloseFrame): void {
    this.close.error = peerCloseError(f);
    // RFC 9000 §10.2.2: enter draining; send nothing more.
    this.state = 'draining';
    this.close.deadline = now + 3 * this.recovery.rtt.pto(this.peerMaxAckDelay);
    this.#emitClosed();
  }

  /** Close because of a transport error (ours or the peer's protocol violation). */
  closeWithTransportError(now: number, err: TransportError): void {
    const c = transportClose(err);
    this.enterClosing(now, c.frame, c.error);
  }

  /** RFC 9000 §10.2.1: the closing state, sending `frame` in answer to what still arrives. */
  enterClosing(now: number, frame: CloseFrame, error: ConnectionError): void {
    this.close.enterClosing(now, this.recovery.rtt.pto(this.peerMaxAckDelay), frame, error);
    this.state = 'closing';
    this.#emitClosed();
  }

  /** The 'closed' event, once. */
  #emitClosed(): void {
    if (this.close.emitted || this.close.error === undefined) return;
    this.close.emitted = true;
    this.events.push({ type: 'closed', error: this.close.error });
  }

  /** Gone: its connection IDs unrouted, nothing more sent or processed. */
  enterClosed(now: number): void {
    void now;
    this.state = 'closed';
    this.#emitClosed();
    this.cids.removeAll();
    this.pathCids.removeAll();
    if (this.side === 'server') this.#host.removeCid(this.originalDcid);
    this.#host.setPeerResetToken(this.conn, undefined);
  }

  /** Restart the idle timer (and the keep-alive) after activity (RFC 9000 §10.1). */
  resetIdleTimer(now: number): void {
    if (this.idleTimeout > 0) {
      // RFC 9000 §10.1: at least three PTOs, so a lossy path does not time out mid-recovery.
      this.idleDeadline = now + Math.max(this.idleTimeout, 3 * this.recovery.rtt.pto(this.peerMaxAckDelay));
    }
    if (this.settings.keepAliveInterval > 0 && this.state === 'established') {
      this.keepAliveAt = now + this.settings.keepAliveInterval * 1000;
    }
  }

  /** CRYPTO data of `spaceId` (a handshake flight) waits to be sent. */
  cryptoUnsent(spaceId: SpaceId): boolean {
    const space = this.spaces[spaceId];
    return !space.discarded && space.cryptoSend.hasSendable();
  }

  /**
   * Established, with our last handshake flight (a client's Finished) built but not sent: a
   * close (`closeAfterFlight`) and a client's own connection IDs (`ownCidsPending`) wait for it.
   */
  get finishedUnsent(): boolean {
    return this.state === 'established' && this.cryptoUnsent(SPACE_HANDSHAKE);
  }

  /** What the anti-amplification limit lets us send on the current path now (RFC 9000 §8.1). */
  amplificationBudget(): number {
    return pathBudget(this.path);
  }
}
