/**
 * A QUIC v1 connection (RFC 9000, RFC 9001, RFC 9002), sans-IO.
 *
 * Inputs are `handle*` calls (a datagram routed here by the endpoint, a timeout) and
 * application commands (stream writes, close); outputs are drained with `poll*`. After any
 * input or command the driver drains, in order: {@link Connection.pollTransmit} until it
 * returns undefined, then {@link Connection.pollTimeout}, then {@link Connection.pollEvent}
 * (quinn's order). `now` is a monotonic time in microseconds supplied by the caller; the
 * core never reads a clock, opens a socket or starts a timer.
 *
 * This file is the orchestration: the connection's state machine, packets in (decrypt, key
 * phase, acknowledgment bookkeeping), datagrams out (which space and path sends what), and
 * the timers. The concerns it drives live next to it: packet-number spaces (`spaces.ts`),
 * loss detection and congestion control (`recovery.ts`), network paths (`paths.ts`),
 * connection IDs (`cid-state.ts`), frame dispatch (`frame-dispatch.ts`), packet assembly
 * (`packet-builder.ts`), streams and flow control (`streams-state.ts`), datagrams
 * (`datagrams.ts`), key updates (`key-update.ts`) and closing (`close.ts`).
 *
 * @module
 */
import type { CryptoProvider } from '../../crypto/provider.ts';
import { MultipathState, type MpPath } from './multipath.ts';
import { TokenBucket } from './token-bucket.ts';
import { PathCids } from './path-cids.ts';
import { MAX_NAT_ADDRESSES, NatTraversal, PROBE_SCHEDULE, type NatProbe } from './nat-traversal.ts';
import { equalBytes } from '../../../util/bytes.ts';
import { DecodeError } from '../../../util/errors.ts';
import type { ConnectionSettings } from '../config.ts';
import { TransportError, TransportErrorCode } from '../errors.ts';
import { ACTIVE_CONNECTION_ID_LIMIT, MAX_ACK_RANGES, MAX_CRYPTO_BUFFER, MAX_CRYPTO_FRAGMENTS, MAX_EARLY_PACKETS, ADVERTISED_PROBE_REFILL, MAX_ADVERTISED_PROBES, MAX_PADDED_PROBE_RESPONSES, PADDED_PROBE_RESPONSE_REFILL, MAX_PATH_CANDIDATES, MAX_PATH_ID_OFFERED, MAX_PENDING_RETIRES, PATH_CIDS_PER_PATH } from '../limits.ts';
import { PacketKeys, decodePacketNumber, initialKeys, unprotectHeader, type DirectionalKeys } from '../protection/packet-keys.ts';
import { RETRY_TAG_LENGTH, verifyRetryIntegrity } from '../protection/retry.ts';
import { isProbeable } from '../address.ts';
import { TlsAlertError, type CryptoSession } from '../tls/index.ts';
import type { FixedWriter } from '../wire/fixed-writer.ts';
import { FrameType, ackFrameSize, cryptoFrameOverhead, frameSize, writeAck, writeCryptoHeader, writeFrame, type AckRange, type Frame } from '../wire/frames.ts';
import { MAX_CID_LENGTH, QUIC_V1, parseHeader, type LongHeader, type PacketHeader } from '../wire/header.ts';
import { decodeTransportParameters, type DirectAddress, type TransportParameters } from '../wire/transport-params.ts';
import { CidState, type CidHost } from './cid-state.ts';
import { CloseState, applicationClose, peerCloseError, transportClose, type CloseFrame } from './close.ts';
import { DatagramQueues } from './datagrams.ts';
import { dispatchFrames, type FrameHandlers, type PacketSummary } from './frame-dispatch.ts';
import { KeyPhase } from './key-update.ts';
import { DatagramSlab, MAX_PN, beginPacket, padForSample, sealPacket, type PacketDraft } from './packet-builder.ts';
import { CHALLENGE_SENDS, MIN_DATAGRAM, newPath, pathBudget, startChallenge, type PathState } from './paths.ts';
import { PathRecovery } from './recovery.ts';
import { LEVEL_OF, PacketSpace, SPACE_APP, SPACE_HANDSHAKE, SPACE_IDS, SPACE_INITIAL, type FrameRecord, type SentPacket, type SpaceId } from './spaces.ts';
import { StreamsState, type ControlSink } from './streams-state.ts';
import type { Dir } from './streams.ts';
import { ConnectionError, type ConnectionEvent, type ConnectionStats, type PathAddr, type PathInfo, type PathChangeReason, type Transmit } from './types.ts';

/** What the endpoint does for a connection: CID routing and stateless-reset tokens. */
export interface ConnectionHost extends CidHost<Connection> {
  /** Route datagrams for `cid` to this connection. */
  addCid(cid: Uint8Array, connection: Connection): void;
  /** Stop routing `cid`. */
  removeCid(cid: Uint8Array): void;
  /** The stateless-reset token this endpoint uses for `cid` (RFC 9000 §10.3.2). */
  resetToken(cid: Uint8Array): Uint8Array;
  /**
   * The peer's reset token for the connection ID we now send with changed (RFC 9000 §10.3.1:
   * a datagram routed to no connection is checked against these).
   */
  setPeerResetToken(connection: Connection, token: Uint8Array | undefined): void;
}

export interface ConnectionOptions {
  readonly side: 'client' | 'server';
  readonly provider: CryptoProvider;
  readonly settings: ConnectionSettings;
  readonly host: ConnectionHost;
  /** Builds the TLS session once our transport parameters are known (they carry our CIDs). */
  readonly tls: (transportParameters: TransportParameters) => CryptoSession;
  /** Client: the random DCID of its first Initial. Server: the client's DCID. */
  readonly originalDcid: Uint8Array;
  /** Server: the client's SCID from its first Initial. */
  readonly peerCid?: Uint8Array;
  /**
   * Server, after a Retry: the client's first DCID (carried in the token). `originalDcid` is
   * then the DCID the client used after the Retry (our Retry's SCID), which keys Initial
   * protection (RFC 9001 §5.2) and becomes retry_source_connection_id (RFC 9000 §7.3).
   */
  readonly retriedFrom?: Uint8Array;
  readonly path: PathAddr;
  /**
   * Client: further paths to the same server (other addresses, relays). Until the server
   * answers, every datagram also goes to each of them; the path the first answer arrives on
   * becomes the connection's path (iroh-wire §3.5).
   */
  readonly alternativePaths?: readonly PathAddr[];
  /**
   * Our direct addresses. Server: sent in the sdnet_direct_addresses transport parameter (the
   * client may move the connection to one of them; undefined: the parameter is not sent) and as
   * n0 ADD_ADDRESS frames. Client: announced in n0 REACH_OUT rounds.
   */
  readonly directAddresses?: readonly DirectAddress[];
  /**
   * Client: turns a direct address the server advertised into a path we can send on, or
   * undefined when we cannot reach it (no socket of that family, our own address).
   */
  readonly resolvePath?: (address: DirectAddress) => PathAddr | undefined;
  /** Server: the Initial keys, if the endpoint already derived them (to check the first packet). */
  readonly initialKeys?: DirectionalKeys;
  readonly now: number;
  /** Length of the connection IDs this endpoint issues. */
  readonly cidLength: number;
}

/** A direct path a client tries while its connection runs over a relay. */
interface Candidate {
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

type State = 'handshaking' | 'established' | 'closing' | 'draining' | 'closed';

/** Paths besides the current one a connection keeps state for. */
const MAX_OTHER_PATHS = 8;
/**
 * A client on a direct path with a relay to fall back to sends an ack-eliciting packet at
 * least this often (µs), so that a path gone silent shows up as PTOs even while only
 * receiving.
 */
const PATH_LIVENESS_INTERVAL = 1_000_000;
/** Consecutive PTOs on a direct path after which a client falls back to its relay path. */
const FALLBACK_PTO_COUNT = 2;
/**
 * ...and at least this long (µs) without an authenticated packet on it: on loopback or a LAN
 * two PTOs are ~50 ms, which a busy machine's scheduling stall matches; a dead path does not
 * come back within a second.
 */
const FALLBACK_SILENCE = 1_000_000;
/** Client: a new REACH_OUT round this often while only the relay works (iroh: every 5 to 60 s). */
const NAT_ROUND_INTERVAL = 15_000_000;
/** multipath-21 §4.2: PATH_UNSTABLE_OR_POOR, the code noq abandons unvalidated paths with. */
const PATH_UNSTABLE_OR_POOR = 0x3e76;

/** First retry delay of a direct path whose probe failed (µs); doubles up to the maximum. */
const UPGRADE_RETRY_BASE = 1_000_000;
const UPGRADE_RETRY_MAX = 30_000_000;

/** The earlier of `t` and deadline `x` (0 or less: no deadline). */
function earliest(t: number, x: number): number {
  return x > 0 && x < t ? x : t;
}

/** The earlier of `t` and a path's validation timers. */
function challengeTimers(t: number, p: PathState): number {
  if (!p.challenge) return t;
  t = earliest(t, p.challengeDeadline);
  return p.challengeSends < CHALLENGE_SENDS ? earliest(t, p.challengeResendAt) : t;
}

export class Connection {
  readonly side: 'client' | 'server';
  readonly #provider: CryptoProvider;
  readonly #settings: ConnectionSettings;
  readonly #host: ConnectionHost;
  readonly #tls: CryptoSession;
  readonly #spaces: [PacketSpace, PacketSpace, PacketSpace] = [new PacketSpace(), new PacketSpace(), new PacketSpace()];
  #state: State = 'handshaking';
  readonly #events: ConnectionEvent[] = [];
  readonly #close = new CloseState();

  // ---- identity of the connection
  readonly originalDcid: Uint8Array;
  readonly #cids: CidState<Connection>;
  #retryToken: Uint8Array = new Uint8Array(0);
  #retrySourceCid: Uint8Array | undefined;
  #receivedFirstServerPacket = false;
  #peerInitialScid: Uint8Array | undefined;

  // ---- paths
  #path: PathState;
  readonly #otherPaths = new Map<string, PathState>();
  /** Client, before the first answer: the extra paths every datagram is copied to. */
  #dialPaths: PathAddr[] = [];
  #dialCopies: Transmit[] = [];
  #addressValidated: boolean;
  /** Client: every path the first flight went to (direct ones become upgrade candidates). */
  #dialed: PathAddr[] = [];
  readonly #resolvePath: ((address: DirectAddress) => PathAddr | undefined) | undefined;
  /** Client: direct paths to move to while on a relayed path. */
  readonly #candidates = new Map<string, Candidate>();
  /** Client: the server sent sdnet_direct_addresses and allows migration, so we manage paths. */
  #managePaths = false;
  /** Client: the relayed path to fall back to while on a direct one. */
  #fallbackKey: string | undefined;
  #pathChanges = 0;

  // ---- recovery
  #recovery: PathRecovery;
  #handshakeConfirmed = false;
  #peerCompletedAddressValidation: boolean;

  // ---- timers (µs; 0 = unset)
  #idleDeadline = 0;
  #idleTimeout = 0;
  #lastActivity: number;
  #lastAckElicitingSent = 0;
  #handshakeDeadline: number;
  #keepAliveAt = 0;
  #pacingAt = 0;

  // ---- peer parameters
  #peerParams: TransportParameters | undefined;
  /** QUIC address discovery: the next OBSERVED_ADDRESS sequence number we send. */
  #observedSeq = 0;
  /** The path (key) whose OBSERVED_ADDRESS is sent or in flight. */
  #observedFor: string | undefined;
  /** The latest observation the peer reported to us. */
  #observed: { seq: number; ip: Uint8Array; port: number } | undefined;
  #peerMaxAckDelay = 25_000;
  #peerAckDelayExponent = 3;

  readonly #keys = new KeyPhase();
  readonly #multipath: MultipathState;
  /** Connection IDs of multipath paths 1 and up (path 0's are `#cids`). */
  readonly #pathCids: PathCids<Connection>;
  /**
   * The multipath path we send on. Its space, recovery and address are the ones in
   * `#spaces[SPACE_APP]`, `#recovery` and `#path` (the 1-RTT keys live in that space too); the
   * other paths' are in their {@link MpPath} records.
   */
  #tx = 0;
  /** n0 NAT traversal (nat-traversal.ts). */
  readonly #nat: NatTraversal;
  /** Our direct addresses (ADD_ADDRESS as server, REACH_OUT as client). */
  readonly #localAddresses: readonly DirectAddress[];
  /** Client: when the next REACH_OUT round starts while only the relay works (0: none). */
  #nextRoundAt = 0;
  readonly #streams: StreamsState;
  readonly #datagrams: DatagramQueues;

  // ---- misc pending frames
  #handshakeDonePending = false;
  #pingPending = false;
  #mtuProbe: { size: number; pn: number; failures: number } | undefined;
  #mtuProbeAt = 0;
  readonly #earlyPackets: { path: PathAddr; data: Uint8Array }[] = [];
  readonly #slab = new DatagramSlab();

  /** Unexpected exceptions turned into INTERNAL_ERROR closes (should stay 0). */
  internalErrors = 0;

  // ---- stats
  #packetsSent = 0;
  #packetsReceived = 0;
  #bytesSent = 0;
  #bytesReceived = 0;
  #lost = 0;

  constructor(options: ConnectionOptions) {
    this.side = options.side;
    this.#provider = options.provider;
    this.#settings = options.settings;
    this.#host = options.host;
    this.originalDcid = options.originalDcid;
    this.#recovery = new PathRecovery(options.settings, MIN_DATAGRAM);
    this.#lastActivity = options.now;
    this.#handshakeDeadline = options.now + options.settings.handshakeTimeout * 1000;
    this.#path = newPath(options.path, options.side === 'client' || options.retriedFrom !== undefined, options.side === 'server');
    this.#resolvePath = options.resolvePath;
    if (options.side === 'client') this.#dialed.push(options.path);
    for (const alt of options.side === 'client' ? (options.alternativePaths ?? []) : []) {
      if (alt.key === options.path.key || this.#otherPaths.has(alt.key)) continue;
      if (this.#otherPaths.size >= MAX_OTHER_PATHS) break;
      this.#otherPaths.set(alt.key, newPath(alt, true, false));
      this.#dialPaths.push(alt);
      this.#dialed.push(alt);
    }
    // RFC 9000 §8.1: a client's address is validated by the server (a Retry token already
    // proved it, §8.1.2); the client trusts the server.
    this.#addressValidated = options.side === 'client' || options.retriedFrom !== undefined;
    this.#peerCompletedAddressValidation = options.side === 'server';
    this.#streams = new StreamsState(options.side, options.settings, this.#events, () => this.#recovery.rtt.smoothed, () => this.#now);
    this.#datagrams = new DatagramQueues(this.#streams.recvBudget, options.settings.maxDatagramFrameSize);
    for (const space of this.#spaces) space.cryptoRecv.budget = this.#streams.recvBudget;

    // RFC 9000 §7.2: the client's first DCID is random (≥ 8 bytes); it also keys Initial protection.
    const firstRemote = options.side === 'client' ? { seq: 0, cid: options.originalDcid, resetToken: undefined } : { seq: 0, cid: options.peerCid!, resetToken: undefined };
    this.#cids = new CidState(this.#provider, this.#host, this, firstRemote);
    this.#pathCids = new PathCids(this.#provider, this.#host, this);
    const localCid = this.#cids.issue(options.cidLength, false);
    if (options.side === 'server') {
      this.#peerInitialScid = options.peerCid;
      // Route the client's chosen DCID here too, so duplicate Initials (several paths) join this connection.
      this.#host.addCid(options.originalDcid, this);
    }
    this.#spaces[SPACE_INITIAL].keys = options.initialKeys ?? initialKeys(this.#provider, options.originalDcid, options.side);

    const s = options.settings;
    // multipath-21 §2.1: offered only with non-zero connection IDs.
    this.#multipath = new MultipathState(s.multipath && options.cidLength > 0 ? MAX_PATH_ID_OFFERED : undefined);
    this.#nat = new NatTraversal(options.side, s.multipath && options.cidLength > 0);
    this.#localAddresses = (options.directAddresses ?? []).filter(isProbeable).slice(0, MAX_NAT_ADDRESSES);
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
      ...(this.#multipath.localMax !== undefined ? { initialMaxPathId: this.#multipath.localMax } : {}),
      ...(this.#nat.localLimit !== undefined ? { natTraversal: this.#nat.localLimit } : {}),
      ...(options.side === 'server'
        ? {
            originalDestinationConnectionId: options.retriedFrom ?? options.originalDcid,
            ...(options.retriedFrom ? { retrySourceConnectionId: options.originalDcid } : {}),
            statelessResetToken: localCid.resetToken,
            ...(options.directAddresses ? { sdnetDirectAddresses: options.directAddresses } : {}),
          }
        : {}),
    };
    this.#tls = options.tls(params);
    this.#pumpTls();
  }

  // ================================================================== public API

  get state(): State {
    return this.#state;
  }

  /**
   * The address the peer last reported seeing our packets come from (QUIC address discovery,
   * with `addressDiscovery` 1 or 2 and a peer that provides observations), or undefined.
   */
  get observedAddress(): { readonly ip: Uint8Array; readonly port: number } | undefined {
    return this.#observed === undefined ? undefined : { ip: this.#observed.ip, port: this.#observed.port };
  }

  /** True once the handshake completed (until closing). */
  get isEstablished(): boolean {
    return this.#state === 'established';
  }

  get isClosed(): boolean {
    return this.#state === 'closed';
  }

  /** The error the connection closed with, once closing. */
  get closeError(): ConnectionError | undefined {
    return this.#close.error;
  }

  get handshakeConfirmed(): boolean {
    return this.#handshakeConfirmed;
  }

  /** Server: the client proved its address (a Retry token, a Handshake packet, RFC 9000 §8.1). */
  get addressValidated(): boolean {
    return this.#addressValidated;
  }

  /** The negotiated ALPN protocol. */
  get alpn(): Uint8Array | undefined {
    return this.#tls.alpn;
  }

  /** The peer's authenticated Ed25519 public key (32 bytes), after the handshake. */
  get peerPublicKey(): Uint8Array | undefined {
    return this.#tls.isHandshaking ? undefined : this.#tls.peerPublicKey;
  }

  /** The peer's X.509 certificates (DER, leaf first) with X.509 credentials; empty with raw public keys. */
  get peerCertificates(): readonly Uint8Array[] {
    return this.#tls.isHandshaking ? [] : this.#tls.peerCertificates;
  }

  /** RFC 8446 §7.5 keying material of this connection's TLS session (undefined while handshaking). */
  exportKeyingMaterial(label: string, context: Uint8Array, length: number): Uint8Array | undefined {
    return this.#tls.exportKeyingMaterial(label, context, length);
  }

  /** The path datagrams currently go to. */
  get path(): PathAddr {
    return this.#path.addr;
  }

  /** Every path the connection knows: the active one first, then the candidates. */
  paths(): PathInfo[] {
    const info = (p: PathState, active: boolean): PathInfo => ({
      addr: p.addr,
      relayed: p.addr.relayed === true,
      validated: p.validated,
      status: active ? 'active' : 'candidate',
      rttMs: active ? this.#recovery.rtt.smoothed / 1000 : undefined,
      bytesSent: p.bytesSent,
      bytesReceived: p.bytesReceived,
    });
    if (this.#multipath.paths.size > 1) {
      // Multipath: every live path with its id and its own RTT, the one we send on first.
      const out: PathInfo[] = [];
      for (const id of [this.#tx, ...[...this.#multipath.paths.keys()].filter((k) => k !== this.#tx)]) {
        const rec = this.#mp(id)!;
        if (rec.abandoned) continue;
        const st = rec.state;
        out.push({
          id,
          addr: st.addr,
          relayed: st.addr.relayed === true,
          validated: st.validated,
          status: id === this.#tx ? 'active' : 'candidate',
          rttMs: rec.recovery.rtt.hasSample ? rec.recovery.rtt.smoothed / 1000 : undefined,
          bytesSent: st.bytesSent,
          bytesReceived: st.bytesReceived,
        });
      }
      return out;
    }
    return [info(this.#path, true), ...[...this.#otherPaths.values()].map((p) => info(p, false))];
  }

  /** Connection IDs this connection is reachable by (for the endpoint's bookkeeping). */
  get localCids(): Uint8Array[] {
    return [...this.#cids.local.values()].map((c) => c.cid);
  }

  /** Largest DATAGRAM payload the peer accepts now (0 = not supported). */
  get maxDatagramSize(): number {
    const peer = this.#peerParams?.maxDatagramFrameSize ?? 0;
    if (peer === 0) return 0;
    // One DATAGRAM frame in one 1-RTT packet: short header + tag + frame header.
    const fit = this.#path.mtu - (1 + this.#cids.active.cid.length + 4 + 16) - 3;
    return Math.max(0, Math.min(peer - 3, fit));
  }

  stats(): ConnectionStats {
    const r = this.#recovery;
    return {
      rtt: r.rtt.smoothed / 1000,
      minRtt: (Number.isFinite(r.rtt.min) ? r.rtt.min : r.rtt.smoothed) / 1000,
      cwnd: Math.round(r.cc.window),
      bytesInFlight: r.bytesInFlight,
      mtu: this.#path.mtu,
      packetsSent: this.#packetsSent,
      packetsReceived: this.#packetsReceived,
      bytesSent: this.#bytesSent,
      bytesReceived: this.#bytesReceived,
      lostPackets: this.#lost,
      congestionEvents: r.congestionEvents,
      keyUpdates: this.#keys.updates,
      pathChanges: this.#pathChanges,
      relayed: this.#path.addr.relayed === true,
      multipath: this.#multipath.negotiated,
    };
  }

  pollEvent(): ConnectionEvent | undefined {
    return this.#events.shift();
  }

  // ---- streams (streams-state.ts)

  /** Open a stream; undefined if the peer's stream limit is reached (a STREAMS_BLOCKED is queued). */
  openStream(dir: Dir): number | undefined {
    if (this.#state !== 'established' && this.#state !== 'handshaking') return undefined;
    return this.#streams.openStream(dir);
  }

  /** Streams of `dir` we may still open now. */
  availableStreams(dir: Dir): number {
    return this.#streams.availableStreams(dir);
  }

  /**
   * Queue bytes on a stream. Returns how many were accepted (limited by the stream's send
   * buffer); 0 means wait for a 'stream-writable' event.
   *
   * @throws {Error} if the stream cannot be written (unknown, receive-only, finished, reset)
   */
  writeStream(id: number, data: Uint8Array): number {
    return this.#streams.writeStream(id, data);
  }

  /** Bytes that {@link writeStream} would accept now. */
  writableBytes(id: number): number {
    return this.#streams.writableBytes(id);
  }

  /** Mark the end of the stream (FIN after the queued bytes). */
  finishStream(id: number): void {
    this.#streams.finishStream(id);
  }

  /** Abandon sending (RESET_STREAM with `code`, RFC 9000 §3.1). */
  resetStream(id: number, code: number): void {
    this.#streams.resetStream(id, code);
  }

  /** Ask the peer to stop sending (STOP_SENDING with `code`, RFC 9000 §3.5). */
  stopSending(id: number, code: number): void {
    this.#streams.stopSending(id, code);
  }

  /**
   * Read from a stream: data, the end (fin), or a reset code. `data` is undefined when
   * nothing is available yet.
   */
  readStream(id: number, max = Infinity): { data?: Uint8Array; fin: boolean; resetCode?: number } {
    return this.#streams.readStream(id, max);
  }

  /** Is there something to read (data, end or reset) on the stream? */
  isReadable(id: number): boolean {
    return this.#streams.isReadable(id);
  }

  /** The peer's STOP_SENDING code for a stream, if any. */
  stopCode(id: number): number | undefined {
    return this.#streams.stopCode(id);
  }

  // ---- datagrams (RFC 9221)

  /** Queue an unreliable datagram. False if it is too large or the queue is full. */
  sendDatagram(data: Uint8Array): boolean {
    if (data.length > this.maxDatagramSize) return false;
    return this.#datagrams.send(data);
  }

  /** The next received datagram. */
  readDatagram(): Uint8Array | undefined {
    return this.#datagrams.read();
  }

  // ---- close

  /** Close with an application error code and reason (RFC 9000 §10.2). */
  close(now: number, code: number, reason = ''): void {
    if (this.#state === 'closing' || this.#state === 'draining' || this.#state === 'closed') return;
    const c = applicationClose(code, reason);
    this.#enterClosing(now, c.frame, c.error);
  }

  /**
   * Update the 1-RTT keys (RFC 9001 §6.1): now if allowed, else as soon as a packet of the
   * current phase has been acknowledged (a PING makes sure one is). False only before the
   * handshake is confirmed or after close.
   */
  initiateKeyUpdate(): boolean {
    if (!this.#handshakeConfirmed || this.#state !== 'established') return false;
    if (this.#tryKeyUpdate()) return true;
    this.#keys.wanted = true;
    this.#pingPending = true;
    return true;
  }

  /** Perform the update if RFC 9001 §6.1 allows it now. */
  #tryKeyUpdate(): boolean {
    if (!this.#handshakeConfirmed || this.#state !== 'established') return false;
    return this.#keys.tryUpdate(this.#spaces[SPACE_APP]);
  }

  /** Send a PATH_CHALLENGE on `path` (RFC 9000 §8.2); 'path-validated' follows on success. */
  probePath(now: number, path: PathAddr): void {
    if (this.#state !== 'established') return;
    const p = path.key === this.#path.addr.key ? this.#path : this.#otherPath(path, true, false);
    this.#startChallenge(now, p);
  }

  /**
   * Move the connection to `path` (client-initiated migration, RFC 9000 §9.2): new packets go
   * there with a fresh connection ID, validated with PATH_CHALLENGE.
   */
  migrate(now: number, path: PathAddr): void {
    if (this.#state !== 'established' || path.key === this.#path.addr.key) return;
    const p = this.#otherPath(path, true, false);
    this.#otherPaths.delete(path.key);
    this.#otherPaths.set(this.#path.addr.key, this.#path);
    this.#switchPath(now, p, !p.validated, 'migrate');
  }

  /**
   * Client: another direct path to the server, tried while the connection runs over a relay
   * (only with sdnet peers, which advertise that they follow migrations).
   */
  addCandidatePath(now: number, path: PathAddr): void {
    this.#addCandidate(now, path, false);
  }

  #addCandidate(now: number, path: PathAddr, advertised: boolean): void {
    if (this.side !== 'client' || path.relayed || this.#candidates.has(path.key) || this.#candidates.size >= MAX_PATH_CANDIDATES) return;
    this.#candidates.set(path.key, { addr: path, advertised, validated: false, attempts: 0, nextAt: now, probing: false });
  }

  /**
   * An unexpected exception escaped one of this connection's handlers (a bug, not peer input:
   * peer input closes with its RFC code). The endpoint calls this and goes on serving the
   * others: the connection closes with INTERNAL_ERROR, or, failing again while closing, ends
   * at once without another packet.
   */
  failInternal(now: number, err: unknown): void {
    this.internalErrors++;
    try {
      if (this.#state === 'handshaking' || this.#state === 'established') {
        this.#closeWithTransportError(now, new TransportError(TransportErrorCode.INTERNAL_ERROR, `internal error: ${(err as Error)?.message ?? String(err)}`));
        return;
      }
      if (this.#state !== 'closed') this.#enterClosed(now);
    } catch {
      this.#state = 'closed';
    }
  }

  // ================================================================== input

  /** A datagram for this connection arrived on `path`. */
  handleDatagram(now: number, path: PathAddr, data: Uint8Array): void {
    if (this.#state === 'closed' || this.#state === 'draining') return;
    if (this.#state === 'closing') {
      // RFC 9000 §8.1, §9.3: bytes from the path still raise what we may send to it unvalidated.
      if (path.key === this.#path.addr.key) this.#path.bytesReceived += data.length;
      this.#close.onDatagram();
      return;
    }
    const onPath = path.key === this.#path.addr.key ? this.#path : this.#otherPaths.get(path.key);
    // Before the handshake completes the server keeps to the path it first heard from; copies of
    // the client's Initial arriving over other paths are dropped (iroh-wire §3.5).
    if (onPath === undefined && this.side === 'server' && this.#state === 'handshaking') return;
    // What arrives on a path bounds what we may send there (RFC 9000 §8.1, §9.3). A path we did
    // not know gets state only once a packet of the datagram authenticates (#handlePacket):
    // spoofed garbage must not fill the slots of real paths.
    if (onPath !== undefined) onPath.bytesReceived += data.length;
    this.#unknownPathBytes = onPath === undefined ? data.length : 0;
    this.#now = now;
    this.#bytesReceived += data.length;
    let offset = 0;
    let first = true;
    let firstDcid: Uint8Array | undefined;
    while (offset < data.length) {
      let header: PacketHeader;
      try {
        header = parseHeader(data, offset, this.#cids.localLength);
      } catch {
        return; // RFC 9000 §12.2: an unparseable packet ends processing of the datagram.
      }
      // RFC 9000 §12.2: coalesced packets with another DCID than the first SHOULD be ignored.
      if (firstDcid === undefined) firstDcid = header.dcid;
      else if (!equalBytes(header.dcid, firstDcid)) return;
      const end = header.end;
      const packet = data.subarray(offset, end);
      this.#packetDcid = header.dcid;
      try {
        this.#handlePacket(now, path, header, packet, data, first, end === data.length);
      } catch (err) {
        // A peer's protocol violation closes with its RFC code; anything else is our bug, and
        // still only closes this connection (INTERNAL_ERROR) instead of escaping.
        this.#closeWithTransportError(now, err instanceof TransportError ? err : new TransportError(TransportErrorCode.INTERNAL_ERROR, `internal error: ${(err as Error)?.message ?? String(err)}`));
        if (!(err instanceof TransportError)) this.internalErrors++;
        return;
      }
      if (this.#gone()) return;
      first = false;
      offset = end;
    }
    while (this.#replayEarly.length > 0 && !this.#gone()) {
      const e = this.#replayEarly.shift()!;
      this.handleDatagram(now, e.path, e.data);
    }
    this.#setLossTimer();
  }

  /** Bytes of the datagram being processed, when it came on a path we have no state for yet. */
  #unknownPathBytes = 0;
  /** Packets that failed authentication over the connection's lifetime (RFC 9001 §6.6). */
  #authFailures = 0;
  /** The destination connection ID of the packet being processed. */
  #packetDcid: Uint8Array = new Uint8Array(0);

  /** Closing, draining or closed (a method, so TypeScript does not narrow the state across calls). */
  #gone(): boolean {
    return this.#state === 'closing' || this.#state === 'draining' || this.#state === 'closed';
  }

  #handlePacket(now: number, path: PathAddr, header: PacketHeader, packet: Uint8Array, datagram: Uint8Array, firstInDatagram: boolean, last: boolean): void {
    if (header.form === 'version-negotiation') return this.#onVersionNegotiation(now, header.versions, firstInDatagram);
    if (header.form === 'long' && header.type === 'retry') return this.#onRetry(now, header, packet);
    if (header.form === 'long' && header.type === '0rtt') return; // we never accept 0-RTT
    // RFC 9000 §7.2: after the first valid server packet, a client discards packets with another SCID.
    if (header.form === 'long' && this.side === 'client' && this.#receivedFirstServerPacket && !equalBytes(header.scid, this.#peerInitialScid!)) return;
    const spaceId: SpaceId = header.form === 'short' ? SPACE_APP : header.type === 'initial' ? SPACE_INITIAL : SPACE_HANDSHAKE;
    const space = this.#spaces[spaceId];
    if (space.discarded) return;
    if (header.form === 'long' && this.side === 'client' && spaceId === SPACE_INITIAL && header.token.length > 0) {
      return; // RFC 9000 §17.2.2: a client drops Initials with a token.
    }
    // Keys not yet available — or, on a server, 1-RTT before the handshake completed, which
    // RFC 9001 §5.7 forbids processing — keep a few packets for later (reordering).
    if (space.keys === undefined || (spaceId === SPACE_APP && this.side === 'server' && this.#tls.isHandshaking)) {
      if (this.#earlyPackets.length < MAX_EARLY_PACKETS) this.#earlyPackets.push({ path, data: packet.slice() });
      return;
    }
    // The datagram buffer is ours (the socket hands over a fresh one), so header protection
    // is removed in place; it is restored below if the packet fails to authenticate.
    // multipath-21 §2: a 1-RTT packet's path is its DCID's path id, whatever its 4-tuple.
    const pathId = header.form === 'short' ? this.#pathCids.pathOf(header.dcid) : 0;
    let pnSpace: PacketSpace | undefined = space;
    if (pathId !== this.#tx) {
      const mp = this.#multipath;
      // Before negotiation (noq's early discard), on a path closed for good, or on a path only
      // the client may open: dropped.
      if (!mp.negotiated || mp.isClosed(pathId)) return;
      pnSpace = mp.paths.get(pathId)?.space;
      if (pnSpace === undefined && this.side === 'client') return;
    }
    const buf = packet;
    const pnOffset = header.pnOffset - header.start;
    const hp = unprotectHeader(buf, pnOffset, space.keys.remote.header);
    if (hp === undefined) return;
    const pn = decodePacketNumber(pnSpace?.largestReceived ?? -1, hp.truncatedPn, hp.pnLength * 8);
    const headerBytes = buf.subarray(0, pnOffset + hp.pnLength);
    const sealed = buf.subarray(headerBytes.length);
    let keys = space.keys.remote;
    let phaseChange = false;
    if (spaceId === SPACE_APP) {
      const phase = (buf[0]! >> 2) & 1;
      // The key phase is connection-wide (multipath-21 §2.5); which update a packet of another
      // path belongs to is judged without its packet number (another number space).
      const opened = pathId === this.#tx ? this.#keys.openKeys(space, phase, pn) : this.#keys.openKeysOffPath(space, phase);
      keys = opened.keys;
      phaseChange = opened.change;
    }
    const payload = keys.open(pn, headerBytes, sealed, pathId);
    if (payload === null) {
      // RFC 9000 §10.3.1: a datagram that does not authenticate may be a stateless reset.
      if (last && header.form === 'short' && this.#cids.isStatelessReset(datagram)) return this.#onStatelessReset(now);
      // RFC 9001 §6.6: count every packet that fails authentication, across all keys; beyond the
      // AEAD's integrity limit, close with AEAD_LIMIT_REACHED (and process nothing more).
      if (++this.#authFailures > this.#integrityLimit(keys)) throw new TransportError(TransportErrorCode.AEAD_LIMIT_REACHED, 'too many packets failed authentication');
      return;
    }
    // RFC 9000 §17.2 / §17.3.1: reserved bits must be 0 after removing protection.
    const reserved = header.form === 'long' ? buf[0]! & 0x0c : buf[0]! & 0x18;
    if (reserved !== 0) throw new TransportError(TransportErrorCode.PROTOCOL_VIOLATION, 'reserved header bits set');
    // RFC 9000 §12.3: a duplicate packet number MUST NOT be processed again (nor one below the
    // floor of what we still remember).
    if (pnSpace?.isDuplicate(pn)) return;
    if (pathId !== this.#tx) {
      const rec = this.#multipath.paths.get(pathId) ?? this.#acceptPath(now, pathId, path);
      if (rec === undefined) return;
      pnSpace = rec.space;
      // What arrives on the path bounds what we send there before it is validated (RFC 9000 §8.1);
      // a short-header packet ends its datagram, so the datagram is counted once, here.
      if (rec.state.addr.key === path.key) rec.state.bytesReceived += datagram.length;
      this.#unknownPathBytes = 0;
    }
    if (this.#unknownPathBytes > 0) {
      // The first authenticated packet from a new path: now it gets state (and the datagram counts).
      this.#otherPath(path, false, true).bytesReceived += this.#unknownPathBytes;
      this.#unknownPathBytes = 0;
    }
    const heard = pathId === this.#tx ? this.#path : this.#multipath.paths.get(pathId)?.state;
    if (heard !== undefined && heard.addr.key === path.key) heard.heardAt = now;
    if (phaseChange) this.#keys.onPeerUpdate(this.#spaces[SPACE_APP], pathId === this.#tx ? pn : this.#spaces[SPACE_APP].largestReceived + 1);
    this.#packetsReceived++;

    if (header.form === 'long') this.#onLongHeaderAccepted(header, path);
    // RFC 9000 §8.1: a Handshake packet from the client proves its address.
    if (this.side === 'server' && spaceId === SPACE_HANDSHAKE) {
      this.#addressValidated = true;
      this.#path.validated = true;
      // RFC 9001 §4.9.1: a server discards Initial keys on first processing a Handshake packet.
      this.#discardSpace(SPACE_INITIAL);
    }
    if (this.side === 'client' && spaceId !== SPACE_INITIAL) this.#peerCompletedAddressValidation = true;

    this.#rx.now = now;
    this.#rx.path = path;
    this.#rx.space = spaceId;
    this.#rx.pathId = pathId;
    dispatchFrames(payload, header.form === 'short' ? '1rtt' : header.type === 'handshake' ? 'handshake' : 'initial', this.#frameHandlers, this.#summary);
    if (this.#state === 'draining' || this.#state === 'closed') return;

    // Record for acknowledgment (in the packet's own path space).
    const wasLargest = pnSpace!.onReceived(pn, now, this.#summary.ackEliciting, spaceId !== SPACE_APP, this.#settings.maxAckDelay * 1000);
    this.#lastActivity = now;
    this.#resetIdleTimer(now);
    if (spaceId === SPACE_APP && wasLargest) {
      if (pathId === 0 && this.#tx === 0) this.#onPathActivity(now, path);
      else this.#onMpPathActivity(now, pathId, path, datagram.length);
    }
  }

  /** RFC 9001 §6.6: packets that may fail authentication before the connection must close. */
  #integrityLimit(keys: PacketKeys): number {
    // AES-GCM: 2^52; ChaCha20-Poly1305: 2^36.
    const aead = keys.suite.aead === 'chacha20-poly1305' ? 2 ** 36 : 2 ** 52;
    return Math.min(aead, this.#settings.maxAuthenticationFailures);
  }

  #onLongHeaderAccepted(header: LongHeader, path: PathAddr): void {
    if (this.side === 'client' && !this.#receivedFirstServerPacket) {
      this.#receivedFirstServerPacket = true;
      // Dialled on several paths: keep to the one the server answered on.
      this.#dialPaths = [];
      this.#dialCopies = [];
      if (path.key !== this.#path.addr.key) {
        const answered = this.#otherPaths.get(path.key);
        if (answered) {
          this.#otherPaths.delete(path.key);
          this.#otherPaths.set(this.#path.addr.key, this.#path);
          this.#path = answered;
        }
      }
      // The other direct paths did not answer first: they are candidates to probe later, not
      // validated paths. A relay stays as the path to fall back to.
      for (const [key, p] of this.#otherPaths) {
        if (!p.addr.relayed) this.#otherPaths.delete(key);
        else if (!this.#path.addr.relayed) this.#fallbackKey ??= key;
      }
      // RFC 9000 §7.2: switch to the server's chosen connection ID.
      this.#peerInitialScid = header.scid;
      this.#cids.setInitialRemote({ seq: 0, cid: header.scid, resetToken: undefined });
    }
  }

  #onVersionNegotiation(now: number, versions: readonly number[], firstInDatagram: boolean): void {
    // RFC 9000 §6.2: only a client that has not yet received another packet acts on it;
    // one listing our version (or arriving after other packets) is discarded.
    if (this.side !== 'client' || this.#receivedFirstServerPacket || !firstInDatagram || versions.includes(QUIC_V1)) return;
    this.#close.error = new ConnectionError({ code: 'ERR_QUIC_VERSION_MISMATCH', kind: 'version-mismatch', remote: true, reason: `server supports ${versions.map((v) => `0x${v.toString(16)}`).join(', ')}` });
    this.#enterClosed(now);
  }

  #onRetry(now: number, header: LongHeader, packet: Uint8Array): void {
    // RFC 9000 §17.2.5.2: a client accepts one Retry, before any other server packet, with a valid tag.
    if (this.side !== 'client' || this.#receivedFirstServerPacket || this.#retrySourceCid !== undefined) return;
    if (packet.length < RETRY_TAG_LENGTH) return;
    if (!verifyRetryIntegrity(this.#provider, this.originalDcid, packet)) return;
    const tokenStart = header.pnOffset - header.start;
    const token = packet.subarray(tokenStart, packet.length - RETRY_TAG_LENGTH);
    if (token.length === 0 || equalBytes(header.scid, this.originalDcid)) return;
    this.#retryToken = token.slice();
    this.#retrySourceCid = header.scid;
    this.#cids.setInitialRemote({ seq: 0, cid: header.scid, resetToken: undefined });
    // RFC 9001 §5.2: Initial keys are re-derived from the DCID the Retry chose.
    const initial = this.#spaces[SPACE_INITIAL];
    initial.keys = initialKeys(this.#provider, header.scid, 'client');
    // Everything sent in Initial packets so far is resent (packet numbers keep going, RFC 9000 §17.2.5.3).
    for (const p of initial.sent.values()) {
      this.#recovery.leaveFlight(p);
      this.#onPacketLost(p, SPACE_INITIAL, false);
    }
    initial.sent.clear();
    initial.ackElicitingInFlight = 0;
    void now;
  }

  // ---------------------------------------------------------------- frames (frame-dispatch.ts)

  /** The packet whose frames are being dispatched. */
  readonly #rx: { now: number; path: PathAddr; space: SpaceId; pathId: number } = { now: 0, path: { key: '' }, space: SPACE_INITIAL, pathId: 0 };
  readonly #summary: PacketSummary = { ackEliciting: false, probingOnly: true };

  readonly #frameHandlers: FrameHandlers = {
    ack: (f, wireType) => {
      // multipath-21 §2.3: an ACK acknowledges path 0's packets, a PATH_ACK those of its path.
      const id = f.pathId ?? 0;
      if (f.pathId !== undefined) this.#multipath.checkFrame(wireType, f.pathId);
      if (this.#rx.space !== SPACE_APP || id === this.#tx) return this.#onAck(this.#rx.now, f, this.#rx.space, wireType);
      const rec = this.#mp(id);
      // RFC 9000 §13.1 per path: acknowledging packets of a path we never sent on → PROTOCOL_VIOLATION.
      if (rec === undefined) {
        if (this.#multipath.isClosed(id)) return; // late acknowledgments of a path gone (§3.4.1)
        throw new TransportError(TransportErrorCode.PROTOCOL_VIOLATION, `PATH_ACK for path ${id}, never used`, wireType);
      }
      this.#onPathAck(this.#rx.now, f, rec, wireType);
    },
    crypto: (f, wireType) => this.#onCrypto(this.#rx.now, f.offset, f.data, this.#rx.space, wireType),
    stream: (f, wireType) => this.#streams.onStreamFrame(f, wireType),
    resetStream: (f, wireType) => this.#streams.onResetStream(f.id, f.code, f.finalSize, wireType),
    stopSending: (f, wireType) => this.#streams.onStopSending(f.id, f.code, wireType),
    maxData: (f) => this.#streams.onMaxData(f.max),
    maxStreamData: (f, wireType) => this.#streams.onMaxStreamData(f.id, f.max, wireType),
    maxStreams: (f) => this.#streams.onMaxStreams(f.bidi ? 'bi' : 'uni', f.max),
    blocked: (f, wireType) => {
      // Informational; our window updates are driven by consumption (RFC 9000 §4.1).
      if (f.type === 'stream_data_blocked') this.#streams.onStreamDataBlocked(f.id, wireType);
    },
    newToken: (_f, wireType) => {
      // RFC 9000 §19.7: a server receiving NEW_TOKEN → PROTOCOL_VIOLATION. Clients ignore it (no 0-RTT).
      if (this.side === 'server') throw new TransportError(TransportErrorCode.PROTOCOL_VIOLATION, 'client sent NEW_TOKEN', wireType);
    },
    newConnectionId: (f, wireType) => {
      // multipath-21 §4.5: PATH_NEW_CONNECTION_ID for path 0 is NEW_CONNECTION_ID; higher ids are refused by checkFrame while we allow path 0 only.
      if (f.pathId !== undefined) this.#multipath.checkFrame(wireType, f.pathId);
      if (f.pathId !== undefined && f.pathId !== 0) {
        if (this.#multipath.isClosed(f.pathId)) return;
        return this.#pathCids.onNewConnectionId(f.pathId, f.seq, f.retirePriorTo, f.cid, f.resetToken, wireType);
      }
      this.#cids.onNewConnectionId(f, wireType);
    },
    retireConnectionId: (f, wireType) => {
      if (f.pathId !== undefined) this.#multipath.checkFrame(wireType, f.pathId);
      const pto = this.#recovery.rtt.pto(this.#peerMaxAckDelay);
      if (f.pathId !== undefined && f.pathId !== 0) {
        if (this.#pathCids.onRetireConnectionId(f.pathId, f.seq, wireType, this.#packetDcid, this.#now, pto) && !this.#multipath.isClosed(f.pathId)) {
          const count = Math.min(this.#peerParams?.activeConnectionIdLimit ?? 2, PATH_CIDS_PER_PATH);
          this.#pathCids.issue(f.pathId, count, this.#cids.localLength);
        }
        return;
      }
      if (this.#cids.onRetireConnectionId(f.seq, wireType, this.#packetDcid, this.#now, pto) && this.#state === 'established') this.#issueCids();
    },
    pathChallenge: (f) => {
      const path = this.#rx.path;
      if (this.#rx.pathId !== this.#tx) {
        // multipath-21 §3.1: answered on the path the challenge came on (its path id and 4-tuple).
        const rec = this.#mp(this.#rx.pathId);
        if (rec !== undefined && !rec.abandoned && rec.state.addr.key === path.key) {
          if (rec.state.responses.length < 4) rec.state.responses.push(f.data);
          return;
        }
        // Off-path (an n0 probe from an address that is no path of ours): answered to its source below.
      }
      // holepunch.md §2.3: a client probed from an address that is no path of ours learns a
      // peer-reflexive candidate (an EDM NAT maps the server's probes to a port no ADD_ADDRESS
      // names) and opens a path there, through the mapping the probe opened.
      const offPath = this.side === 'client' && this.#nat.active && path.relayed !== true && path.key !== this.#path.addr.key;
      if (offPath) this.#addCandidate(this.#rx.now, path, true);
      const p = path.key === this.#path.addr.key ? this.#path : this.#otherPath(path, false, true);
      // RFC 9000 §8.2.2: answer with PATH_RESPONSE on the path the challenge came from.
      if (p.responses.length >= 4) return;
      p.responses.push(f.data);
      // holepunch.md §2.3 (noq): the answer to an off-path probe is padded to 1200 bytes, beyond
      // the 3× rule, so a path MTU too small for QUIC shows at once. Only authenticated probes
      // that are no replay (§12.3) get here, and the credit comes from a bucket.
      if (offPath && !p.validated && p.peerInitiated && this.#paddedResponses.take(this.#rx.now)) p.credit += MIN_DATAGRAM;
    },
    pathResponse: (f) => {
      if (this.#nat.probes.length > 0 && this.#nat.onResponse(this.#rx.path, f.data)) return;
      if (this.#multipath.paths.size > 0 && this.#onMpPathResponse(this.#rx.now, this.#rx.path, f.data)) return;
      this.#onPathResponse(this.#rx.now, this.#rx.path, f.data);
    },
    connectionClose: (f) => this.#onConnectionClose(this.#rx.now, f),
    handshakeDone: (wireType) => {
      // RFC 9000 §19.20: a server receiving HANDSHAKE_DONE → PROTOCOL_VIOLATION.
      if (this.side === 'server') throw new TransportError(TransportErrorCode.PROTOCOL_VIOLATION, 'client sent HANDSHAKE_DONE', wireType);
      this.#confirmHandshake(this.#rx.now);
    },
    datagram: (f, wireType) => {
      this.#datagrams.onFrame(f.data, wireType);
      this.#events.push({ type: 'datagram' });
    },
    observedAddress: (f, wireType) => {
      const mode = this.#settings.addressDiscovery;
      // draft-ietf-quic-address-discovery §3: a node that did not request observations MUST
      // close with PROTOCOL_VIOLATION when it receives one.
      if (mode !== 1 && mode !== 2) throw new TransportError(TransportErrorCode.PROTOCOL_VIOLATION, 'OBSERVED_ADDRESS without having asked for it', wireType);
      // §3: ignore a frame whose sequence number is not above the last one received.
      if (this.#observed !== undefined && f.seq <= this.#observed.seq) return;
      this.#observed = { seq: f.seq, ip: f.ip, port: f.port };
      this.#events.push({ type: 'observed-address', ip: f.ip, port: f.port });
    },
    pathControl: (f, wireType) => {
      const mp = this.#multipath;
      switch (f.type) {
        case 'path_abandon': {
          mp.checkFrame(wireType, f.pathId);
          const rec = mp.paths.get(f.pathId);
          if (rec === undefined) {
            // A path the peer opened and gave up before any of its packets reached us (a probe
            // into a blocked network): closed for good all the same, and, as for any abandoned
            // path, one more id allowed, or a peer retrying through an outage runs out of ids.
            if (f.pathId === 0 || mp.isClosed(f.pathId)) return; // already gone
            this.#closeUnseenPath(this.#rx.now, f.pathId);
            return;
          }
          const others = [...mp.paths.values()].some((p) => p.id !== f.pathId && !p.abandoned);
          // multipath-21 §3.4: the last path abandoned leaves nothing to send on: the connection
          // ends (noq closes after its grace period too).
          if (!others) throw new TransportError(TransportErrorCode.NO_ERROR, `peer abandoned path ${f.pathId}, the last path (code 0x${f.code.toString(16)})`, wireType);
          // §3.4: MUST answer with PATH_ABANDON (unless already sent) and treat the peer's IDs for it as retired.
          this.#abandonPath(this.#rx.now, f.pathId, 0);
          return;
        }
        case 'path_status':
          return mp.onPathStatus(f.pathId, f.seq, f.available, wireType);
        case 'max_path_id':
          mp.onMaxPathId(f.max, wireType);
          // §3.2: connection IDs for the path ids it now allows.
          return this.#issuePathCids();
        case 'paths_blocked':
          return mp.onPathsBlocked(f.max, wireType);
        case 'path_cids_blocked':
          return mp.onPathCidsBlocked(f.pathId, f.nextSeq, this.#cids.nextLocalSeq, wireType);
      }
    },
    natTraversal: (f, wireType) => {
      const nat = this.#nat;
      // holepunch.md §2.1: negotiated on both sides, and each frame only in its direction.
      nat.check(wireType, f.type);
      const now = this.#rx.now;
      if (f.type === 'remove_address') {
        const a = nat.onRemoveAddress(f.seq);
        const path = a === undefined ? undefined : this.#resolvePath?.(a);
        const c = path === undefined ? undefined : this.#candidates.get(path.key);
        if (c !== undefined && c.advertised && !c.probing) this.#candidates.delete(path!.key);
        return;
      }
      const address = { ip: f.ip, port: f.port };
      // Whatever the peer says, nothing goes to an address no single host has (we would be its reflector).
      if (!isProbeable(address)) return;
      if (f.type === 'add_address') {
        if (nat.onAddAddress(f.seq, address) === undefined) return;
        const path = this.#resolvePath?.(address);
        if (path !== undefined) this.#addCandidate(now, path, true);
        return;
      }
      // REACH_OUT: probe the client's address on noq's schedule so our NAT lets its path in.
      if (!nat.onReachOut(f.round, address, wireType)) return;
      const path = this.#resolvePath?.(address);
      if (path === undefined || path.key === this.#path.addr.key || !this.#probes.take(now)) return;
      nat.addProbe(path, this.#provider.randomBytes(8), now);
    },
    stopped: () => this.#state === 'draining' || this.#state === 'closed',
  };

  // ---------------------------------------------------------------- crypto / TLS

  #onCrypto(now: number, offset: number, data: Uint8Array, spaceId: SpaceId, wireType: number): void {
    const space = this.#spaces[spaceId];
    // RFC 9000 §7.5: buffering beyond our limit → CRYPTO_BUFFER_EXCEEDED.
    if (offset + data.length > space.cryptoRecv.readOffset + MAX_CRYPTO_BUFFER) {
      throw new TransportError(TransportErrorCode.CRYPTO_BUFFER_EXCEEDED, 'too much CRYPTO data ahead of the read offset', wireType);
    }
    space.cryptoRecv.insert(offset, data);
    // RFC 9000 §7.5: a fragmented flight is buffered only up to a budget (Initial CRYPTO is unauthenticated).
    if (space.cryptoRecv.fragmentCount > MAX_CRYPTO_FRAGMENTS || this.#streams.recvBudget.exceeded) {
      throw new TransportError(TransportErrorCode.CRYPTO_BUFFER_EXCEEDED, 'CRYPTO data too fragmented', wireType);
    }
    for (let chunk = space.cryptoRecv.read(); chunk !== undefined; chunk = space.cryptoRecv.read()) {
      try {
        this.#tls.handleHandshakeData(LEVEL_OF[spaceId]!, chunk);
      } catch (err) {
        if (err instanceof TlsAlertError) {
          throw Object.assign(new TransportError(err.quicErrorCode, err.message, FrameType.CRYPTO), { tlsCode: err.code });
        }
        throw err;
      }
    }
    this.#pumpTls();
    this.#afterTls(now);
  }

  /** Move TLS output into CRYPTO send buffers and install new keys. */
  #pumpTls(): void {
    for (;;) {
      const secrets = this.#tls.pollSecrets();
      if (secrets !== undefined) {
        const local = PacketKeys.fromSecret(this.#provider, secrets.suite, secrets.local);
        const remote = PacketKeys.fromSecret(this.#provider, secrets.suite, secrets.remote);
        const space = this.#spaces[secrets.level === 'handshake' ? SPACE_HANDSHAKE : SPACE_APP];
        space.keys = { local, remote };
        continue;
      }
      const out = this.#tls.pollHandshakeData();
      if (out === undefined) break;
      const spaceId = out.level === 'initial' ? SPACE_INITIAL : out.level === 'handshake' ? SPACE_HANDSHAKE : SPACE_APP;
      this.#spaces[spaceId].cryptoSend.write(out.data);
    }
  }

  #afterTls(now: number): void {
    if (this.#peerParams === undefined && this.#tls.peerTransportParameters !== undefined) this.#applyPeerParams(this.#tls.peerTransportParameters);
    if (this.#state === 'handshaking' && !this.#tls.isHandshaking) {
      this.#state = 'established';
      this.#multipath.onHandshakeComplete();
      this.#events.push({ type: 'connected' });
      this.#issueCids();
      if (this.#multipath.negotiated) {
        this.#multipath.paths.set(0, this.#newMpPath(0, this.#spaces[SPACE_APP], this.#recovery, this.#path));
        this.#issuePathCids();
      }
      this.#nat.onHandshakeComplete(this.#multipath.negotiated);
      if (this.#nat.active) {
        if (this.side === 'server') this.#nat.advertise(this.#localAddresses);
        else {
          // The client opens a path to each address the server adds (holepunch.md §1.7 b).
          this.#managePaths = true;
          for (const d of this.#dialed) this.addCandidatePath(now, d);
          this.#startNatRound(now);
        }
      }
      if (this.side === 'server') {
        // RFC 9001 §4.1.2: the server's handshake is confirmed when it completes; it tells the client.
        this.#handshakeDonePending = true;
        this.#confirmHandshake(now);
      }
    }
    // Packets that arrived before they could be processed get another chance.
    if (this.#earlyPackets.length > 0 && !this.#replayingEarly) {
      this.#replayingEarly = true;
      const early = this.#earlyPackets.splice(0);
      for (const e of early) this.#replayEarly.push(e);
      this.#replayingEarly = false;
    }
  }

  #replayingEarly = false;
  /** Buffered packets to run again once the current datagram is done. */
  readonly #replayEarly: { path: PathAddr; data: Uint8Array }[] = [];

  #applyPeerParams(bytes: Uint8Array): void {
    const p = decodeTransportParameters(bytes, this.side === 'client' ? 'server' : 'client');
    // RFC 9000 §7.3: authenticate the connection IDs used during the handshake.
    const mismatch = (a: Uint8Array | undefined, b: Uint8Array | undefined) => (a === undefined) !== (b === undefined) || (a !== undefined && !equalBytes(a, b!));
    if (mismatch(p.initialSourceConnectionId, this.#peerInitialScid)) {
      throw new TransportError(TransportErrorCode.TRANSPORT_PARAMETER_ERROR, 'initial_source_connection_id does not match');
    }
    if (this.side === 'client') {
      if (mismatch(p.originalDestinationConnectionId, this.originalDcid)) throw new TransportError(TransportErrorCode.TRANSPORT_PARAMETER_ERROR, 'original_destination_connection_id does not match');
      if (mismatch(p.retrySourceConnectionId, this.#retrySourceCid)) throw new TransportError(TransportErrorCode.TRANSPORT_PARAMETER_ERROR, 'retry_source_connection_id does not match');
      if (p.statelessResetToken) this.#cids.use({ ...this.#cids.active, resetToken: p.statelessResetToken });
      this.#cids.remote.set(0, this.#cids.active);
    }
    this.#multipath.onPeerParams(p, this.#peerInitialScid?.length ?? 0);
    this.#nat.onPeerParams(p);
    this.#peerParams = p;
    if (this.side === 'client' && p.sdnetDirectAddresses !== undefined && !p.disableActiveMigration) {
      // An sdnet server: it follows RFC 9000 migrations, so we may upgrade and fall back.
      this.#managePaths = true;
      for (const d of this.#dialed) this.addCandidatePath(this.#now, d);
      for (const a of p.sdnetDirectAddresses) {
        // Whatever the peer says, no probe goes to an address no single host has (unspecified,
        // multicast, broadcast, reserved) or to port 0: we would be its reflector.
        if (!isProbeable(a)) continue;
        const path = this.#resolvePath?.(a);
        if (path) this.#addCandidate(this.#now, path, true);
      }
    }
    this.#streams.applyPeerParams(p);
    this.#peerAckDelayExponent = p.ackDelayExponent;
    this.#peerMaxAckDelay = p.maxAckDelay * 1000;
    const ours = this.#settings.maxIdleTimeout;
    // RFC 9000 §10.1: the effective idle timeout is the minimum of the non-zero advertised values.
    const idle = ours === 0 ? p.maxIdleTimeout : p.maxIdleTimeout === 0 ? ours : Math.min(ours, p.maxIdleTimeout);
    this.#idleTimeout = idle * 1000;
    this.#streams.applyPeerStreamCredit(p);
  }

  #confirmHandshake(now: number): void {
    if (this.#handshakeConfirmed) return;
    this.#handshakeConfirmed = true;
    this.#peerCompletedAddressValidation = true;
    // RFC 9001 §4.9.2: discard Handshake keys once the handshake is confirmed.
    this.#discardSpace(SPACE_INITIAL);
    this.#discardSpace(SPACE_HANDSHAKE);
    // The first probe waits one PTO: sent at once, it goes out with the first request and its
    // answer on a fresh connection and costs them a 1452-byte packet each way (measured: a
    // first echo 30-45 % slower on loopback).
    if (this.#settings.mtuDiscovery) this.#mtuProbeAt = now + this.#recovery.rtt.pto(this.#peerMaxAckDelay);
  }

  /** RFC 9002 §6.4: dropping a space removes its packets from flight without loss signals. */
  #discardSpace(id: SpaceId): void {
    const space = this.#spaces[id];
    if (space.discarded) return;
    for (const p of space.sent.values()) this.#recovery.leaveFlight(p);
    space.sent.clear();
    space.ackElicitingInFlight = 0;
    space.lossTime = 0;
    space.keys = undefined;
    space.discarded = true;
    space.ackPending = false;
    space.ackElicitingSinceAck = 0;
    space.ackDeadline = Infinity;
    space.probes = 0;
    this.#recovery.ptoCount = 0;
    // The server keeps routing the client's original DCID until the connection ends: a copy of
    // the first flight that arrives late over a slower path (a relay) must find this connection
    // and be dropped, not start a second one (iroh-wire §3.5).
  }

  // ---------------------------------------------------------------- ACK processing (RFC 9002 §A.7)

  #onAck(now: number, frame: Extract<Frame, { type: 'ack' }>, spaceId: SpaceId, wireType: number): void {
    const space = this.#spaces[spaceId];
    const recovery = this.#recovery;
    // RFC 9000 §13.1: acknowledging a packet we never sent → PROTOCOL_VIOLATION.
    if (frame.largest >= space.nextPn) throw new TransportError(TransportErrorCode.PROTOCOL_VIOLATION, 'ACK for an unsent packet', wireType);
    const newlyAcked: SentPacket[] = [];
    const lowest = space.sent.keys().next().value;
    if (lowest !== undefined) {
      for (const range of frame.ranges) {
        if (range.end < lowest) break;
        for (let pn = Math.max(range.start, lowest); pn <= range.end; pn++) {
          const p = space.sent.get(pn);
          if (p !== undefined) newlyAcked.push(p);
        }
      }
    }
    if (frame.largest > space.largestAcked) space.largestAcked = frame.largest;
    if (newlyAcked.length === 0) return;
    newlyAcked.sort((a, b) => a.pn - b.pn);
    const largest = newlyAcked[newlyAcked.length - 1]!;
    let ackElicitingAcked = false;
    for (const p of newlyAcked) if (p.ackEliciting) ackElicitingAcked = true;
    // RFC 9002 §5.1: an RTT sample when the largest acknowledged is newly acked and ack-eliciting.
    // RFC 9000 §9.4: packets sent on an old path give no RTT sample for the new one.
    if (largest.pn === frame.largest && ackElicitingAcked && largest.epoch === recovery.epoch) {
      const ackDelay = spaceId === SPACE_APP ? frame.delay * 2 ** this.#peerAckDelayExponent : 0;
      recovery.rtt.update(now - largest.time, ackDelay, this.#handshakeConfirmed, this.#peerMaxAckDelay);
    }
    for (const p of newlyAcked) {
      space.sent.delete(p.pn);
      if (p.ackEliciting) space.ackElicitingInFlight--;
      recovery.onPacketAcked(p, now, this.#streams.hasStreamData());
      this.#onPacketAcked(p, spaceId);
    }
    // RFC 9001 §4.1.2: a client's handshake is also confirmed by an ACK of a 1-RTT packet.
    if (spaceId === SPACE_APP && this.side === 'client' && this.#state === 'established') this.#confirmHandshake(now);
    this.#detectLoss(now, spaceId);
    // RFC 9002 §6.2.1: reset the PTO backoff on an acknowledgment (clients: once the server validated them).
    if (this.#peerCompletedAddressValidation) recovery.ptoCount = 0;
  }

  /** A PATH_ACK for a path we do not send on now (multipath-21 §4.1): its own space and recovery. */
  #onPathAck(now: number, frame: Extract<Frame, { type: 'ack' }>, rec: MpPath, wireType: number): void {
    const space = rec.space;
    if (frame.largest >= space.nextPn) throw new TransportError(TransportErrorCode.PROTOCOL_VIOLATION, 'PATH_ACK for an unsent packet', wireType);
    if (frame.largest > space.largestAcked) space.largestAcked = frame.largest;
    const newlyAcked: SentPacket[] = [];
    const lowest = space.sent.keys().next().value;
    if (lowest !== undefined) {
      for (const range of frame.ranges) {
        if (range.end < lowest) break;
        for (let pn = Math.max(range.start, lowest); pn <= range.end; pn++) {
          const p = space.sent.get(pn);
          if (p !== undefined) newlyAcked.push(p);
        }
      }
    }
    if (newlyAcked.length === 0) return;
    newlyAcked.sort((a, b) => a.pn - b.pn);
    const largest = newlyAcked[newlyAcked.length - 1]!;
    if (largest.pn === frame.largest && largest.ackEliciting && largest.epoch === rec.recovery.epoch) {
      rec.recovery.rtt.update(now - largest.time, frame.delay * 2 ** this.#peerAckDelayExponent, this.#handshakeConfirmed, this.#peerMaxAckDelay);
    }
    for (const p of newlyAcked) {
      space.sent.delete(p.pn);
      if (p.ackEliciting) space.ackElicitingInFlight--;
      rec.recovery.onPacketAcked(p, now, false);
      for (const f of p.frames) {
        if (f.k === 'ack') this.#ackSpace(f.pathId)?.onAckAcked(f.largest);
        else if (f.k === 'stream' || f.k === 'reset_stream') this.#streams.onFrameAcked(f);
      }
    }
    const lost: SentPacket[] = [];
    rec.recovery.detectLoss(space, now, this.#peerMaxAckDelay, lost);
    for (const p of lost) this.#onPacketLost(p, SPACE_APP, true);
  }

  /** The space an ACK record of ours acknowledged (its path's; the send path's when untagged). */
  #ackSpace(pathId: number | undefined): PacketSpace | undefined {
    if (pathId === undefined || pathId === this.#tx) return this.#spaces[SPACE_APP];
    return this.#multipath.paths.get(pathId)?.space;
  }

  /** A PATH_RESPONSE for a multipath path's challenge (multipath-21 §3.1). Returns whether it matched one. */
  #onMpPathResponse(now: number, addr: PathAddr, data: Uint8Array): boolean {
    for (const p of this.#multipath.paths.values()) {
      const rec = this.#mp(p.id)!;
      const st = rec.state;
      if (rec.abandoned || st.challenge === undefined || !equalBytes(st.challenge, data)) continue;
      // Validated only by a response from the 4-tuple the challenge went to (RFC 9000 §8.2.3 as noq).
      if (st.addr.key !== addr.key) return true;
      // The challenge's round trip is the path's first RTT sample (as noq), when it was sent once.
      if (!rec.recovery.rtt.hasSample && st.challengeSends === 1) rec.recovery.rtt.update(now - st.challengeSentAt, 0, true, this.#peerMaxAckDelay);
      st.challenge = undefined;
      st.challengePending = false;
      st.validated = true;
      this.#events.push({ type: 'path-validated', path: st.addr });
      const c = this.#candidates.get(st.addr.key);
      if (c !== undefined) {
        c.probing = false;
        c.validated = true;
        c.attempts = 0;
      }
      if (rec.id === this.#tx) {
        this.#addressValidated = true;
        this.#restartMtuDiscovery(now);
      }
      this.#choosePath(now);
      return true;
    }
    return false;
  }

  #onPacketAcked(p: SentPacket, spaceId: SpaceId): void {
    const space = this.#spaces[spaceId];
    if (spaceId === SPACE_APP && this.#keys.onAcked(p.pn)) this.#tryKeyUpdate();
    if (this.#mtuProbe && p.mtuProbe && p.pn === this.#mtuProbe.pn) {
      this.#path.mtu = this.#mtuProbe.size;
      this.#recovery.cc.onMtuChange(this.#path.mtu);
      this.#mtuProbe = undefined;
    }
    for (const f of p.frames) {
      switch (f.k) {
        case 'stream':
        case 'reset_stream':
          this.#streams.onFrameAcked(f);
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

  /** RFC 9002 §6.1: packet and time thresholds. */
  #detectLoss(now: number, spaceId: SpaceId): void {
    const lost: SentPacket[] = [];
    this.#recovery.detectLoss(this.#spaces[spaceId], now, this.#peerMaxAckDelay, lost);
    for (const p of lost) this.#onPacketLost(p, spaceId, true);
  }

  /** Requeue what a lost packet carried (RFC 9000 §13.3). */
  #onPacketLost(p: SentPacket, spaceId: SpaceId, count: boolean): void {
    if (count) this.#lost++;
    if (p.mtuProbe && this.#mtuProbe && p.pn === this.#mtuProbe.pn) {
      this.#mtuProbe.failures++;
      this.#mtuProbe.pn = -1;
      // Try again a little later; after three failures the probe size is abandoned.
      if (this.#mtuProbe.failures >= 3) {
        this.#mtuProbe = undefined;
        this.#mtuProbeAt = 0;
      } else {
        this.#mtuProbeAt = this.#now + Math.max(this.#recovery.rtt.pto(this.#peerMaxAckDelay), 100_000);
      }
    }
    const space = this.#spaces[spaceId];
    for (const f of p.frames) {
      switch (f.k) {
        case 'crypto':
          space.cryptoSend.onLost(f.offset, f.length);
          break;
        case 'new_cid': {
          const c = [...this.#cids.local.values()].find((x) => x.seq === f.seq);
          if (c) {
            c.pending = true;
            this.#cids.framesPending = true;
          }
          break;
        }
        case 'retire_cid':
          this.#cids.pendingRetires.push(f.seq);
          break;
        case 'handshake_done':
          this.#handshakeDonePending = true;
          break;
        case 'observed_address':
          // draft-ietf-quic-address-discovery §3: resent (with a new sequence number) while that path is current.
          if (this.#observedFor === f.path) this.#observedFor = undefined;
          break;
        case 'path_new_cid':
          this.#pathCids.onLost(f.pathId, f.seq);
          break;
        case 'path_retire_cid':
          if (!this.#multipath.isClosed(f.pathId) && this.#pathCids.pendingRetires.length < MAX_PENDING_RETIRES) this.#pathCids.pendingRetires.push({ pathId: f.pathId, seq: f.seq });
          break;
        case 'path_abandon': {
          const rec = this.#multipath.paths.get(f.pathId);
          if (rec !== undefined && rec.abandoned) rec.abandonPending = true;
          break;
        }
        case 'path_status': {
          // multipath-21 §4.3: resent only if it is still the last status sent for that path.
          const rec = this.#multipath.paths.get(f.pathId);
          if (rec !== undefined && !rec.abandoned && rec.statusSeq === f.seq) rec.statusPending = true;
          break;
        }
        case 'max_path_id':
          this.#multipath.maxPathIdPending = true;
          break;
        case 'add_address': {
          const a = this.#nat.advertised.find((x) => x.seq === f.seq);
          if (a !== undefined) a.pending = true;
          break;
        }
        case 'reach_out':
          // Sent again only while its round is the current one.
          if (f.round === this.#nat.round && this.#nat.reachOuts.length < MAX_NAT_ADDRESSES) this.#nat.reachOuts.push({ ip: f.ip, port: f.port });
          break;
        case 'ack':
          break;
        default:
          this.#streams.onFrameLost(f);
          break;
      }
    }
  }

  // ---------------------------------------------------------------- connection IDs (cid-state.ts)

  #issueCids(): void {
    this.#cids.issueUpTo(this.#peerParams?.activeConnectionIdLimit);
  }

  /** The endpoint matched a datagram to our peer's reset token (RFC 9000 §10.3.1). */
  handleStatelessReset(now: number): void {
    if (this.#state === 'established' || this.#state === 'handshaking' || this.#state === 'closing') this.#onStatelessReset(now);
  }

  #onStatelessReset(now: number): void {
    this.#close.error = new ConnectionError({ code: 'ERR_QUIC_STATELESS_RESET', kind: 'stateless-reset', remote: true, reason: '' });
    this.#state = 'draining';
    this.#close.deadline = now + 3 * this.#recovery.rtt.pto(this.#peerMaxAckDelay);
    this.#emitClosed();
  }

  // ---------------------------------------------------------------- multipath paths (multipath.ts)

  #newMpPath(id: number, space: PacketSpace, recovery: PathRecovery, state: PathState): MpPath {
    if (id > this.#multipath.highestUsed) this.#multipath.highestUsed = id;
    return { id, space, recovery, state, abandoned: false, abandonPending: false, abandonCode: 0, dropAt: 0, statusSeq: 0, statusAvailable: false, statusPending: false, keepAliveAt: 0, pingPending: false };
  }

  /** The record of path `id` with the live objects when it is the path we send on. */
  #mp(id: number): MpPath | undefined {
    const rec = this.#multipath.paths.get(id);
    if (rec !== undefined && id === this.#tx) {
      rec.space = this.#spaces[SPACE_APP];
      rec.recovery = this.#recovery;
      rec.state = this.#path;
    }
    return rec;
  }

  /** Connection IDs for every path id the peer may use now, up front (multipath-21 §3.2, as noq). */
  #issuePathCids(): void {
    const mp = this.#multipath;
    if (!mp.negotiated) return;
    const count = Math.min(this.#peerParams?.activeConnectionIdLimit ?? 2, PATH_CIDS_PER_PATH);
    for (let id = 1; id <= mp.usableMax; id++) {
      if (!this.#pathCids.issued(id) && !mp.isClosed(id)) this.#pathCids.issue(id, count, this.#cids.localLength);
    }
  }

  /**
   * Server: an authenticated packet on a path id not in use yet opens that path (multipath-21
   * §3.1; noq `ensure_path`). It is challenged at once, as every new path.
   */
  #acceptPath(now: number, id: number, addr: PathAddr): MpPath | undefined {
    const mp = this.#multipath;
    if (this.side !== 'server' || id > mp.usableMax || mp.paths.has(id) || mp.isClosed(id)) return undefined;
    const rec = this.#newMpPath(id, new PacketSpace(), new PathRecovery(this.#settings, MIN_DATAGRAM), newPath(addr, false, true));
    mp.paths.set(id, rec);
    this.#startChallenge(now, rec.state);
    this.#events.push({ type: 'path-opened', id, path: addr });
    return rec;
  }

  /**
   * Client: open a new multipath path to `addr` (multipath-21 §3.1): the next unused path id,
   * a PATH_CHALLENGE padded to 1200 bytes with our status for it. Returns the id, or undefined
   * when no id or no connection ID of the peer's is available for it.
   */
  openPath(now: number, addr: PathAddr): number | undefined {
    const mp = this.#multipath;
    if (this.side !== 'client' || this.#state !== 'established' || !mp.negotiated || !this.#handshakeConfirmed) return undefined;
    const id = mp.highestUsed + 1;
    if (id > mp.usableMax || this.#pathCids.active(id) === undefined) return undefined;
    for (const p of mp.paths.values()) if (!p.abandoned && this.#mp(p.id)!.state.addr.key === addr.key) return p.id;
    const rec = this.#newMpPath(id, new PacketSpace(), new PathRecovery(this.#settings, MIN_DATAGRAM), newPath(addr, false, false));
    mp.paths.set(id, rec);
    rec.statusSeq = 1;
    rec.statusAvailable = false;
    rec.statusPending = true;
    this.#startChallenge(now, rec.state);
    this.#events.push({ type: 'path-opened', id, path: addr });
    return id;
  }

  /** Whether multipath paths can be opened now (negotiated, and the peer allows an id above 0). */
  get multipathPaths(): boolean {
    return this.#multipath.negotiated && this.#multipath.usableMax > 0;
  }

  /**
   * Send on path `id` from now on. Its space, recovery and address move into the connection's
   * send slots; what was in flight on the old path is sent again on the new one (a path we
   * leave may be dead, and frames are idempotent, RFC 9000 §13.3).
   */
  #selectPath(now: number, id: number, reason: PathChangeReason): void {
    if (id === this.#tx) return;
    const from = this.#mp(this.#tx)!;
    const to = this.#mp(id);
    if (to === undefined || to.abandoned) return;
    to.space.keys = from.space.keys;
    const lost: SentPacket[] = [];
    for (const p of from.space.sent.values()) if (p.ackEliciting) lost.push(p);
    for (const p of lost) {
      from.space.sent.delete(p.pn);
      from.space.ackElicitingInFlight--;
      from.recovery.leaveFlight(p);
      this.#onPacketLost(p, SPACE_APP, false);
    }
    this.#spaces[SPACE_APP] = to.space;
    this.#recovery = to.recovery;
    this.#path = to.state;
    to.state.heardAt = Math.max(to.state.heardAt, now);
    this.#tx = id;
    this.#pathChanges++;
    // The MTU probe in flight counted packet numbers of the old path.
    this.#mtuProbe = undefined;
    this.#restartMtuDiscovery(now);
    // multipath-21 §3.3 (as iroh): the path we send on is AVAILABLE, the others BACKUP.
    for (const p of this.#multipath.paths.values()) {
      if (p.abandoned) continue;
      const available = p.id === id;
      if (p.statusSeq > 0 && p.statusAvailable === available) continue;
      p.statusSeq++;
      p.statusAvailable = available;
      p.statusPending = true;
    }
    this.#events.push({ type: 'path-changed', path: to.state.addr, reason });
  }

  /** The best path to send on: a validated direct path beats the relay; then the one in use (multipath-21 §5.5). */
  #choosePath(now: number): void {
    const current = this.#mp(this.#tx)!;
    let best = current;
    for (const p of this.#multipath.paths.values()) {
      const rec = this.#mp(p.id)!;
      if (rec.abandoned || !rec.state.validated || rec === best) continue;
      const direct = rec.state.addr.relayed !== true;
      const bestDirect = best.state.addr.relayed !== true;
      if (direct && !bestDirect) best = rec;
    }
    if (best !== current) this.#selectPath(now, best.id, current.state.addr.relayed ? 'upgrade' : 'fallback');
  }

  /** Abandon path `id` (multipath-21 §3.4): PATH_ABANDON owed, the peer's IDs for it retired, state kept 3 PTO. */
  #abandonPath(now: number, id: number, code: number): void {
    const rec = this.#mp(id);
    if (rec === undefined || rec.abandoned) return;
    rec.abandoned = true;
    rec.abandonPending = true;
    rec.abandonCode = code;
    rec.state.challenge = undefined;
    rec.state.challengePending = false;
    rec.state.responses = [];
    rec.dropAt = now + 3 * this.#recovery.rtt.pto(this.#peerMaxAckDelay);
    if (id === this.#tx) {
      const other = [...this.#multipath.paths.values()].find((p) => !p.abandoned && this.#mp(p.id)!.state.validated);
      if (other !== undefined) this.#selectPath(now, other.id, 'fallback');
    }
    this.#events.push({ type: 'path-closed', id, path: rec.state.addr });
  }

  /** The peer abandoned path `id` that we never saw a packet on: closed, its IDs retired, one more id allowed. */
  #closeUnseenPath(now: number, id: number): void {
    const mp = this.#multipath;
    // Ids are opened in order (multipath-21 §3.1), so the ids below it were used already.
    if (id > mp.highestUsed) mp.highestUsed = id;
    this.#pathCids.dropPath(id, now + 3 * this.#recovery.rtt.pto(this.#peerMaxAckDelay));
    mp.refill();
    this.#issuePathCids();
  }

  /** Forget abandoned paths whose grace ended (and make room for one more path id, as noq). */
  #dropAbandonedPaths(now: number): void {
    for (const p of [...this.#multipath.paths.values()]) {
      if (!p.abandoned || p.abandonPending || p.dropAt > now || p.id === this.#tx) continue;
      this.#multipath.paths.delete(p.id);
      if (p.id !== 0) this.#pathCids.dropPath(p.id, now + 3 * this.#recovery.rtt.pto(this.#peerMaxAckDelay));
      this.#multipath.refill();
      this.#issuePathCids();
    }
  }

  // ---------------------------------------------------------------- paths (paths.ts; RFC 9000 §8, §9)

  #otherPath(addr: PathAddr, create: boolean, peerInitiated: boolean): PathState {
    let p = this.#otherPaths.get(addr.key);
    if (p === undefined) {
      p = newPath(addr, false, peerInitiated);
      if (create || this.#otherPaths.size < MAX_OTHER_PATHS) this.#otherPaths.set(addr.key, p);
    }
    return p;
  }

  #startChallenge(now: number, p: PathState): void {
    startChallenge(p, this.#provider.randomBytes(8), now, this.#recovery.rtt.pto(this.#peerMaxAckDelay), this.#settings.initialRtt);
  }

  #onPathResponse(now: number, path: PathAddr, data: Uint8Array): void {
    const candidates = [this.#path, ...this.#otherPaths.values()];
    for (const p of candidates) {
      if (p.challenge && equalBytes(p.challenge, data)) {
        p.challenge = undefined;
        p.challengePending = false;
        p.validated = true;
        if (p === this.#path) {
          this.#addressValidated = true;
          this.#restartMtuDiscovery(now);
        }
        this.#events.push({ type: 'path-validated', path: p.addr });
        void path;
        const c = this.#candidates.get(p.addr.key);
        if (c !== undefined) {
          c.probing = false;
          c.validated = true;
          c.attempts = 0;
          if (p !== this.#path && this.#managePaths && this.#path.addr.relayed) this.#upgrade(now, p);
        }
        return;
      }
    }
  }

  /** A non-probing packet with the largest packet number arrived on `addr`: the peer migrated (RFC 9000 §9.3). */
  #onPathActivity(now: number, addr: PathAddr): void {
    if (addr.key === this.#path.addr.key || this.#summary.probingOnly) return;
    if (this.side === 'client' || this.#state !== 'established' || !this.#handshakeConfirmed) return;
    const p = this.#otherPath(addr, true, true);
    this.#otherPaths.delete(addr.key);
    this.#otherPaths.set(this.#path.addr.key, this.#path);
    this.#switchPath(now, p, !p.validated, 'peer-migrated');
  }

  /**
   * Server: a non-probing packet with the largest packet number of multipath path `id` came from
   * another address than the path's (a NAT rebinding): RFC 9000 §9.3 per path (multipath-21 §5.1),
   * as noq. The path is sent to at its new address from now on, validated there, and until then
   * gets at most three times what arrived from that address (§9.4: a new address starts over
   * with the minimum MTU; RTT and congestion state are kept, as for a port-only change).
   */
  #onMpPathActivity(now: number, id: number, addr: PathAddr, bytes: number): void {
    if (this.side !== 'server' || this.#summary.probingOnly || this.#state !== 'established' || !this.#handshakeConfirmed) return;
    const rec = this.#mp(id);
    if (rec === undefined || rec.abandoned || rec.state.addr.key === addr.key) return;
    const moved = this.#otherPaths.get(addr.key) ?? newPath(addr, false, true);
    this.#otherPaths.delete(addr.key);
    if (moved.bytesReceived === 0) moved.bytesReceived = bytes;
    rec.state = moved;
    if (!moved.validated) this.#startChallenge(now, moved);
    if (id === this.#tx) {
      this.#path = moved;
      this.#pathChanges++;
      this.#mtuProbe = undefined;
      this.#events.push({ type: 'path-changed', path: addr, reason: 'peer-migrated' });
    }
  }

  #restartMtuDiscovery(now: number): void {
    if (this.#settings.mtuDiscovery && this.#handshakeConfirmed && this.#path.mtu < this.#settings.maxUdpPayloadSize) {
      this.#mtuProbe = undefined;
      this.#mtuProbeAt = now;
    }
  }

  /** Client: a direct path validated while we are on a relay: move there (RFC 9000 §9.2). */
  #upgrade(now: number, p: PathState): void {
    // RFC 9000 §9.5: a new path needs a connection ID the old one did not use; wait for one.
    if (this.#cids.unused() === undefined) {
      const c = this.#candidates.get(p.addr.key);
      if (c) c.nextAt = now + UPGRADE_RETRY_BASE;
      return;
    }
    const relay = this.#path;
    this.#otherPaths.delete(p.addr.key);
    this.#otherPaths.set(relay.addr.key, relay);
    this.#fallbackKey = relay.addr.key;
    this.#switchPath(now, p, false, 'upgrade');
  }

  /** Client: the direct path went silent (consecutive PTOs): back to the relay. */
  #fallBack(now: number): void {
    const relay = this.#fallbackKey === undefined ? undefined : this.#otherPaths.get(this.#fallbackKey);
    if (relay === undefined) return;
    const dead = this.#path;
    // It is not a path to return to until it validates again.
    dead.validated = false;
    this.#otherPaths.delete(relay.addr.key);
    this.#otherPaths.set(dead.addr.key, dead);
    const c = this.#candidates.get(dead.addr.key);
    if (c !== undefined) {
      c.attempts++;
      c.probing = false;
      c.nextAt = now + this.#upgradeRetryDelay(c.attempts);
    }
    this.#switchPath(now, relay, !relay.validated, 'fallback');
  }

  /** Client: a REACH_OUT round announcing our addresses (holepunch.md §2.2), and when the next is due. */
  #startNatRound(now: number): void {
    if (this.#localAddresses.length > 0) this.#nat.startRound(this.#localAddresses);
    this.#nextRoundAt = now + NAT_ROUND_INTERVAL;
  }

  /** Server: the off-path probe due next, as a 1-RTT packet with one PATH_CHALLENGE, unpadded (holepunch.md §2.3). */
  #transmitNatProbe(now: number): Transmit | undefined {
    const nat = this.#nat;
    let due: NatProbe | undefined;
    for (const p of nat.probes) if (p.start + PROBE_SCHEDULE[p.attempt]! <= now) due = p;
    if (due === undefined || this.#spaces[SPACE_APP].keys === undefined) return undefined;
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

  /** The direct path we send on went silent: continue on a validated relay path, abandon the dead one (it is opened anew later). */
  #mpFallBack(now: number): void {
    const relay = [...this.#multipath.paths.values()].find((p) => p.id !== this.#tx && !p.abandoned && this.#mp(p.id)!.state.validated && this.#mp(p.id)!.state.addr.relayed === true);
    if (relay === undefined) return;
    const dead = this.#tx;
    const addr = this.#path.addr;
    this.#selectPath(now, relay.id, 'fallback');
    this.#abandonPath(now, dead, PATH_UNSTABLE_OR_POOR);
    const c = this.#candidates.get(addr.key);
    if (c !== undefined) {
      c.validated = false;
      c.probing = false;
      c.attempts++;
      c.nextAt = now + this.#upgradeRetryDelay(c.attempts);
    }
  }

  #upgradeRetryDelay(attempts: number): number {
    return Math.min(UPGRADE_RETRY_BASE * 2 ** Math.max(0, attempts - 1), UPGRADE_RETRY_MAX);
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
      const c = this.#candidates.get(p.addr.key);
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
      p.challengeResendAt = now + recovery.rtt.pto(this.#peerMaxAckDelay);
    }
    return false;
  }

  /** Acknowledgment deadlines, challenges and abandon grace periods of the paths we do not send on. */
  #runMultipathTimers(now: number): void {
    for (const p of [...this.#multipath.paths.values()]) {
      if (p.id === this.#tx) continue;
      const sp = p.space;
      if (sp.ackElicitingSinceAck > 0 && sp.ackDeadline <= now) sp.ackPending = true;
      const st = p.state;
      // multipath-21 §3.1 (noq): a path whose challenges went unanswered is abandoned as unstable.
      if (this.#runChallengeTimer(now, st, p.recovery) && !st.validated) this.#abandonPath(now, p.id, PATH_UNSTABLE_OR_POOR);
      // Keep-alive per path (as noq): a validated path we do not send on (the relay kept as
      // backup, a second direct path) gets a PING every keep-alive interval, so neither its NAT
      // mapping nor the peer's idle handling of paths lets it lapse.
      const interval = this.#settings.keepAliveInterval * 1000;
      if (interval > 0 && st.validated && !p.abandoned) {
        if (p.keepAliveAt === 0) p.keepAliveAt = now + interval;
        else if (now >= p.keepAliveAt) {
          p.pingPending = true;
          p.keepAliveAt = now + interval;
        }
      }
    }
    this.#dropAbandonedPaths(now);
    this.#pathCids.expireRetired(now);
  }

  /** Client path management, run from the timer: probe candidates while relayed, keep the direct path live. */
  #runPathTimers(now: number): void {
    if (!this.#managePaths || this.#state !== 'established' || !this.#handshakeConfirmed) return;
    if (this.#path.addr.relayed) {
      if (this.#nat.active && this.#nextRoundAt > 0 && now >= this.#nextRoundAt) this.#startNatRound(now);
      for (const c of this.#candidates.values()) {
        if (c.probing || now < c.nextAt) continue;
        if (c.advertised && !c.validated && !this.#probes.take(now)) {
          // Out of budget: try again when it refills (not on every timer pass).
          c.nextAt = this.#probes.nextAt;
          continue;
        }
        if (this.multipathPaths) {
          // With multipath the direct path is a path of its own (one mechanism, issue 17 item 5).
          if (this.openPath(now, c.addr) === undefined) {
            c.nextAt = now + UPGRADE_RETRY_BASE;
            continue;
          }
          c.probing = true;
          continue;
        }
        c.probing = true;
        this.#startChallenge(now, this.#otherPath(c.addr, true, false));
      }
    } else if ((this.#fallbackKey !== undefined || this.#tx !== 0) && now >= this.#lastAckElicitingSent + PATH_LIVENESS_INTERVAL) {
      this.#pingPending = true;
    }
  }

  /**
   * Probes of advertised addresses that never answered: a bucket of MAX_ADVERTISED_PROBES,
   * refilled one per ADVERTISED_PROBE_REFILL. A peer listing addresses that are not its own
   * (a victim's) gets a few PATH_CHALLENGEs sent there, not a stream of them.
   */
  readonly #probes = new TokenBucket(MAX_ADVERTISED_PROBES, ADVERTISED_PROBE_REFILL);
  /** Padded answers to off-path probes: a bucket of MAX_PADDED_PROBE_RESPONSES, one back per PADDED_PROBE_RESPONSE_REFILL. */
  readonly #paddedResponses = new TokenBucket(MAX_PADDED_PROBE_RESPONSES, PADDED_PROBE_RESPONSE_REFILL);

  /** The next time {@link #runPathTimers} has work, or 0. */
  #pathTimerAt(): number {
    if (!this.#managePaths || this.#state !== 'established' || !this.#handshakeConfirmed) return 0;
    if (!this.#path.addr.relayed) return (this.#fallbackKey !== undefined || this.#tx !== 0) && !this.#pingPending ? this.#lastAckElicitingSent + PATH_LIVENESS_INTERVAL : 0;
    let t = this.#nat.active && this.#nextRoundAt > 0 ? this.#nextRoundAt : 0;
    for (const c of this.#candidates.values()) if (!c.probing && (t === 0 || c.nextAt < t)) t = Math.max(c.nextAt, 1);
    return t;
  }

  #switchPath(now: number, p: PathState, validate: boolean, reason: PathChangeReason): void {
    const old = this.#path;
    this.#path = p;
    p.heardAt = Math.max(p.heardAt, now);
    this.#pathChanges++;
    // RFC 9000 §9.5: a new path uses a new connection ID when one is available.
    this.#cids.rotate();
    // RFC 9000 §9.4: reset congestion control and RTT for a new path (the RTT estimate stays
    // when only the peer's port changed).
    this.#recovery.resetForNewPath(this.#settings, p.mtu, !(old.addr.host === undefined || old.addr.host !== p.addr.host));
    // A new path's MTU is found again, once it is validated (probes are not sent beyond the
    // anti-amplification limit).
    if (!validate) this.#restartMtuDiscovery(now);
    if (validate) this.#startChallenge(now, p);
    this.#events.push({ type: 'path-changed', path: p.addr, reason });
  }

  // ---------------------------------------------------------------- close (close.ts)

  #onConnectionClose(now: number, f: CloseFrame): void {
    this.#close.error = peerCloseError(f);
    // RFC 9000 §10.2.2: enter draining; send nothing more.
    this.#state = 'draining';
    this.#close.deadline = now + 3 * this.#recovery.rtt.pto(this.#peerMaxAckDelay);
    this.#emitClosed();
  }

  #closeWithTransportError(now: number, err: TransportError): void {
    const c = transportClose(err);
    this.#enterClosing(now, c.frame, c.error);
  }

  #enterClosing(now: number, frame: CloseFrame, error: ConnectionError): void {
    this.#close.enterClosing(now, this.#recovery.rtt.pto(this.#peerMaxAckDelay), frame, error);
    this.#state = 'closing';
    this.#emitClosed();
  }

  #emitClosed(): void {
    if (this.#close.emitted || this.#close.error === undefined) return;
    this.#close.emitted = true;
    this.#events.push({ type: 'closed', error: this.#close.error });
  }

  #enterClosed(now: number): void {
    void now;
    this.#state = 'closed';
    this.#emitClosed();
    this.#cids.removeAll();
    this.#pathCids.removeAll();
    if (this.side === 'server') this.#host.removeCid(this.originalDcid);
    this.#host.setPeerResetToken(this, undefined);
  }

  // ================================================================== timers

  #now = 0;

  /** The earliest time something must happen, or undefined. */
  pollTimeout(): number | undefined {
    if (this.#state === 'closed') return undefined;
    if (this.#state === 'closing' || this.#state === 'draining') return this.#close.deadline;
    // Called for every connection on every driver pass: no closure, no array (issue 11 item 8).
    let t = earliest(Infinity, this.#recovery.lossTimer);
    t = earliest(t, this.#idleDeadline);
    if (this.#state === 'handshaking') t = earliest(t, this.#handshakeDeadline);
    // An ACK already owed needs no timer: it leaves with the next datagram we may send. Its
    // past deadline would wake the driver for nothing while the anti-amplification limit
    // blocks sending (a blocked endpoint arms no timer it cannot serve, RFC 9002 §6.2.2.1).
    for (let i = 0; i < this.#spaces.length; i++) {
      const s = this.#spaces[i]!;
      if (!s.discarded && !s.ackPending && s.ackElicitingSinceAck > 0) t = earliest(t, s.ackDeadline);
    }
    t = earliest(t, this.#keepAliveAt);
    if (this.#pacingAt > 0) t = earliest(t, this.#pacingAt);
    t = earliest(t, this.#keys.discardAt);
    t = earliest(t, this.#mtuProbeAt);
    t = challengeTimers(t, this.#path);
    if (this.#otherPaths.size > 0) for (const p of this.#otherPaths.values()) t = challengeTimers(t, p);
    if (this.#managePaths) t = earliest(t, this.#pathTimerAt());
    t = earliest(t, this.#cids.nextExpiry);
    if (this.#multipath.paths.size > 1) {
      for (const p of this.#multipath.paths.values()) {
        if (p.id === this.#tx) continue;
        const sp = p.space;
        if (!sp.ackPending && sp.ackElicitingSinceAck > 0) t = earliest(t, sp.ackDeadline);
        t = challengeTimers(t, p.state);
        if (p.abandoned) t = earliest(t, p.dropAt);
        else if (p.keepAliveAt > 0 && !p.pingPending) t = earliest(t, p.keepAliveAt);
      }
      t = earliest(t, this.#pathCids.nextExpiry);
    }
    if (this.#nat.probes.length > 0) t = earliest(t, this.#nat.nextProbeAt);
    return t === Infinity ? undefined : t;
  }

  /** Run whatever timers are due at `now` (safe to call early or spuriously). */
  handleTimeout(now: number): void {
    this.#now = now;
    if (this.#state === 'closed') return;
    if (this.#state === 'closing' || this.#state === 'draining') {
      if (now >= this.#close.deadline) this.#enterClosed(now);
      return;
    }
    if (this.#state === 'handshaking' && now >= this.#handshakeDeadline) {
      this.#close.error = new ConnectionError({ code: 'ERR_QUIC_HANDSHAKE_TIMEOUT', kind: 'handshake-timeout', remote: false, reason: '' });
      this.#enterClosed(now);
      return;
    }
    if (this.#idleDeadline > 0 && now >= this.#idleDeadline) {
      // RFC 9000 §10.1: idle timeout closes silently.
      this.#close.error = new ConnectionError({ code: 'ERR_QUIC_TIMED_OUT', kind: 'idle-timeout', remote: false, reason: '' });
      this.#enterClosed(now);
      return;
    }
    for (const s of this.#spaces) {
      if (s.ackElicitingSinceAck > 0 && s.ackDeadline <= now) s.ackPending = true;
    }
    if (this.#keepAliveAt > 0 && now >= this.#keepAliveAt) {
      this.#pingPending = true;
      this.#keepAliveAt = 0;
    }
    if (this.#keys.discardAt > 0 && now >= this.#keys.discardAt) {
      // RFC 9001 §6.5: old read keys are dropped some time (3 PTO) after an update.
      this.#keys.previousRemoteKeys = undefined;
      this.#keys.discardAt = 0;
    }
    for (const p of [this.#path, ...this.#otherPaths.values()]) {
      if (this.#runChallengeTimer(now, p, this.#recovery)) {
        if (p === this.#path && !p.validated && this.#tx !== 0) {
          // The multipath path we send on did not validate at its new address: abandoned, and
          // sending continues on another validated path (multipath-21 §3.4).
          this.#abandonPath(now, this.#tx, PATH_UNSTABLE_OR_POOR);
        } else if (p === this.#path && !p.validated) {
          // RFC 9000 §9.3.2: validation of the new path failed: go back to the last validated one.
          const back = [...this.#otherPaths.values()].find((x) => x.validated);
          if (back) {
            this.#otherPaths.delete(back.addr.key);
            this.#otherPaths.set(p.addr.key, p);
            this.#switchPath(now, back, false, 'validation-failed');
          }
        } else if (p !== this.#path && p.addr.key !== this.#fallbackKey) {
          this.#otherPaths.delete(p.addr.key);
        }
      }
    }
    if (this.#multipath.paths.size > 1) this.#runMultipathTimers(now);
    this.#runPathTimers(now);
    this.#cids.expireRetired(now);
    if (this.#recovery.lossTimer > 0 && now >= this.#recovery.lossTimer) this.#onLossTimer(now);
    if (this.#pacingAt > 0 && now >= this.#pacingAt) this.#pacingAt = 0;
    this.#setLossTimer();
  }

  /** RFC 9002 §A.9: OnLossDetectionTimeout. */
  #onLossTimer(now: number): void {
    this.#recovery.lossTimer = 0;
    let earliest: SpaceId | undefined;
    for (const id of SPACE_IDS) {
      const s = this.#spaces[id];
      if (s.lossTime > 0 && (earliest === undefined || s.lossTime < this.#spaces[earliest].lossTime)) earliest = id;
    }
    if (earliest !== undefined && this.#spaces[earliest].lossTime <= now) {
      this.#detectLoss(now, earliest);
      return;
    }
    // PTO: send probes in the space whose timer fired.
    const { space } = this.#ptoTime();
    if (space === undefined) return;
    this.#recovery.ptoCount++;
    // A direct path that no longer answers: continue over the relay (the probes below go there).
    const silent = this.#recovery.ptoCount >= FALLBACK_PTO_COUNT && !this.#path.addr.relayed && now - this.#path.heardAt >= FALLBACK_SILENCE;
    if (silent && this.#managePaths && this.#fallbackKey !== undefined && this.#handshakeConfirmed) this.#fallBack(now);
    else if (silent && this.#multipath.paths.size > 1) this.#mpFallBack(now);
    const s = this.#spaces[space];
    if (s.keys === undefined) {
      // Client anti-deadlock before Handshake keys: an Initial probe (RFC 9002 §6.2.4).
      this.#spaces[SPACE_INITIAL].probes = 1;
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
        for (const f of oldest.frames) this.#streams.retransmit(f);
      }
    }
  }

  /** RFC 9002 §A.8: GetPtoTimeAndSpace. */
  #ptoTime(): { time: number; space: SpaceId | undefined } {
    const backoff = 2 ** Math.min(this.#recovery.ptoCount, 16);
    let duration = this.#recovery.rtt.pto(0) * backoff;
    // Anti-deadlock: a client with nothing in flight before the peer validated its address.
    const inFlight = this.#spaces.some((s) => s.ackElicitingInFlight > 0);
    if (!inFlight && this.side === 'client' && !this.#peerCompletedAddressValidation) {
      const space = this.#spaces[SPACE_HANDSHAKE].keys ? SPACE_HANDSHAKE : SPACE_INITIAL;
      return { time: this.#now + duration, space };
    }
    let best = Infinity;
    let bestSpace: SpaceId | undefined;
    for (const id of SPACE_IDS) {
      const s = this.#spaces[id];
      if (s.ackElicitingInFlight === 0 || s.discarded) continue;
      if (id === SPACE_APP) {
        // RFC 9002 §6.2.1: no application PTO before the handshake is confirmed.
        if (!this.#handshakeConfirmed) break;
        duration += this.#peerMaxAckDelay * backoff;
      }
      const t = s.timeOfLastAckEliciting + duration;
      if (t < best) {
        best = t;
        bestSpace = id;
      }
    }
    return { time: best, space: bestSpace };
  }

  #setLossTimer(): void {
    let earliest = 0;
    for (const s of this.#spaces) if (s.lossTime > 0 && (earliest === 0 || s.lossTime < earliest)) earliest = s.lossTime;
    if (earliest > 0) {
      this.#recovery.lossTimer = earliest;
      return;
    }
    // RFC 9002 §A.8: a server blocked by the amplification limit arms no PTO.
    if (this.side === 'server' && !this.#addressValidated && this.#amplificationBudget() <= 0) {
      this.#recovery.lossTimer = 0;
      return;
    }
    const inFlight = this.#spaces.some((s) => s.ackElicitingInFlight > 0);
    if (!inFlight && this.#peerCompletedAddressValidation) {
      this.#recovery.lossTimer = 0;
      return;
    }
    const { time } = this.#ptoTime();
    this.#recovery.lossTimer = Number.isFinite(time) ? time : 0;
  }

  #resetIdleTimer(now: number): void {
    if (this.#idleTimeout > 0) {
      // RFC 9000 §10.1: at least three PTOs, so a lossy path does not time out mid-recovery.
      this.#idleDeadline = now + Math.max(this.#idleTimeout, 3 * this.#recovery.rtt.pto(this.#peerMaxAckDelay));
    }
    if (this.#settings.keepAliveInterval > 0 && this.#state === 'established') {
      this.#keepAliveAt = now + this.#settings.keepAliveInterval * 1000;
    }
  }

  #amplificationBudget(): number {
    return pathBudget(this.#path);
  }

  // ================================================================== output

  /**
   * The next datagram to send, or undefined when there is nothing (more) to send now.
   */
  pollTransmit(now: number): Transmit | undefined {
    this.#now = now;
    if (this.#state === 'closed' || this.#state === 'draining') return undefined;
    if (this.#keys.discardPending) {
      this.#keys.discardPending = false;
      this.#keys.discardAt = now + 3 * this.#recovery.rtt.pto(this.#peerMaxAckDelay);
    }
    const copy = this.#dialCopies.shift();
    if (copy) return copy;
    if (this.#state === 'closing') return this.#transmitClose(now);
    // Owed PATH_RESPONSEs / challenges go first, in their own datagrams padded to 1200 bytes
    // (RFC 9000 §8.2.1, §8.2.2), on the current path as on the others.
    const current = this.#path;
    if (current.responses.length > 0 || (current.challengePending && current.challenge !== undefined)) {
      const t = this.#transmitPathFrames(now, current);
      if (t) return t;
    }
    for (const p of this.#otherPaths.values()) {
      if (p.responses.length > 0 || p.challengePending) {
        const t = this.#transmitPathFrames(now, p);
        if (t) return t;
      }
    }
    if (this.#multipath.paths.size > 1) {
      // The other multipath paths: their challenges and responses, on their own path id and 4-tuple.
      for (const p of this.#multipath.paths.values()) {
        if (p.id === this.#tx || p.abandoned) continue;
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
    if (this.#nat.probes.length > 0) {
      const probe = this.#transmitNatProbe(now);
      if (probe) return probe;
    }
    const t = this.#transmit(now);
    if (t) return t;
    // An MTU probe only when there is nothing else to send (as quinn does): the first
    // application data after the handshake does not wait behind a 1452-byte probe.
    if (this.#mtuProbeAt > 0 && now >= this.#mtuProbeAt && this.#handshakeConfirmed) {
      this.#mtuProbeAt = 0;
      return this.#transmitMtuProbe(now);
    }
    return undefined;
  }

  #transmitPathFrames(now: number, p: PathState, pathId = this.#tx): Transmit | undefined {
    const app = this.#spaces[SPACE_APP];
    if (app.keys === undefined || this.#state !== 'established') {
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
    if (this.#spaces[SPACE_APP].keys === undefined || this.#state !== 'established' || !st.validated || p.abandoned) return undefined;
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

  #transmitMtuProbe(now: number): Transmit | undefined {
    const target = Math.min(this.#settings.maxUdpPayloadSize, this.#peerParams?.maxUdpPayloadSize ?? MIN_DATAGRAM);
    if (target <= this.#path.mtu || this.#spaces[SPACE_APP].keys === undefined || pathBudget(this.#path) < target) return undefined;
    const out = new Uint8Array(target);
    const draft = this.#beginPacket(out, 0, SPACE_APP, target);
    if (draft === undefined) return undefined;
    writeFrame(draft.w, { type: 'ping' });
    draft.w.zeros(draft.w.remaining);
    const failures = this.#mtuProbe?.failures ?? 0;
    const pn = draft.pn;
    const len = this.#finishPacket(now, draft, [], true, true, true);
    this.#mtuProbe = { size: target, pn, failures };
    return { path: this.#path.addr, data: out.subarray(0, len) };
  }

  #transmitClose(now: number): Transmit | undefined {
    const close = this.#close;
    if (close.sendsOwed <= 0 || close.frame === undefined) return undefined;
    close.sendsOwed--;
    const out = new Uint8Array(Math.max(this.#path.mtu, MIN_DATAGRAM));
    let pos = 0;
    let containsInitial = false;
    const drafts: PacketDraft[] = [];
    for (const id of SPACE_IDS) {
      const space = this.#spaces[id];
      if (space.keys === undefined || space.discarded) continue;
      // Before the peer surely has 1-RTT keys, close at every level we have keys for (RFC 9000 §10.2.3).
      if (id === SPACE_APP && this.#tls.isHandshaking) continue;
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
    if (containsInitial && this.side === 'client') {
      const last = drafts[drafts.length - 1]!;
      const need = MIN_DATAGRAM - (last.w.pos + 16);
      if (need > 0) {
        last.w.end = Math.max(last.w.end, MIN_DATAGRAM - 16);
        last.w.zeros(need);
      }
    }
    for (const d of drafts) pos = d.start + this.#finishPacket(now, d, [{ k: 'close' }], false, false, false);
    // RFC 9000 §8.1: the anti-amplification limit holds in the closing state too.
    if (pos === 0 || pos > pathBudget(this.#path)) return undefined;
    this.#path.bytesSent += pos;
    return { path: this.#path.addr, data: out.subarray(0, pos) };
  }

  /** Build one datagram with whatever each space has to send (coalescing, RFC 9000 §12.2). */
  #transmit(now: number): Transmit | undefined {
    const path = this.#path;
    const recovery = this.#recovery;
    let limit = path.mtu;
    const budget = pathBudget(path);
    if (budget < Infinity) {
      // RFC 9000 §8.1, §9.3: before validation, at most three times the bytes received. During
      // the handshake a server datagram needs room for a full padded Initial.
      if (budget < (this.#state === 'handshaking' ? MIN_DATAGRAM : 64)) return undefined;
      limit = Math.min(limit, budget);
    }
    const out = this.#slab.take(Math.max(limit, MIN_DATAGRAM));
    let pos = 0;
    let containsInitial = false;
    let ackElicitingInitial = false;
    const drafts: PacketDraft[] = [];
    const ccAllows = recovery.bytesInFlight < recovery.cc.window;
    for (const id of SPACE_IDS) {
      const space = this.#spaces[id];
      if (space.keys === undefined || space.discarded) continue;
      // A client sends 1-RTT packets only once its handshake is complete (no 0-RTT).
      if (id === SPACE_APP && this.#tls.isHandshaking) continue;
      const probe = space.probes > 0;
      // RFC 9002 §6.2.4: probes should carry data; in the Initial and Handshake spaces every
      // probe datagram carries the unacknowledged CRYPTO data, not only the first one — a
      // server may see only a later probe, and a first Initial without CRYPTO is rejected
      // by strict servers.
      if (probe && id !== SPACE_APP && !space.cryptoSend.hasSendable() && !space.cryptoSend.allAcked) {
        space.cryptoSend.onLost(space.cryptoSend.base, space.cryptoSend.end - space.cryptoSend.base);
      }
      const wantAck = space.ackPending || (id === SPACE_APP && this.#multipath.paths.size > 1 && this.#otherPathAckPending());
      const hasCrypto = space.cryptoSend.hasSendable();
      const hasApp = id === SPACE_APP && (this.#hasAppData() || this.#pingPending);
      if (!wantAck && !probe && !hasCrypto && !hasApp) continue;
      // Congestion control gates ack-eliciting packets; ACK-only packets and probes always go (RFC 9002 §7).
      let mayElicit = ccAllows || probe;
      if (id === SPACE_APP && hasApp && mayElicit && !probe) {
        // Pacing (RFC 9002 §7.7): if the pacer says later, send at most an ACK now.
        const at = recovery.pacer.nextSendTime(now, limit, recovery.cc.window, recovery.rtt.smoothed, path.mtu);
        if (at > now) {
          this.#pacingAt = at;
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
    if (drafts.length === 0) return undefined;
    // RFC 9000 §14.1: client datagrams with Initial packets, and server datagrams with
    // ack-eliciting Initial packets, are padded to at least 1200 bytes.
    if (containsInitial && (this.side === 'client' || ackElicitingInitial)) {
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
    this.#setLossTimer();
    // Give the unused tail of the reservation back to the slab.
    this.#slab.giveBack(out.length - total);
    const data = out.subarray(0, total);
    for (const alt of this.#dialPaths) this.#dialCopies.push({ path: alt, data });
    return { path: path.addr, data };
  }

  #otherPathAckPending(): boolean {
    for (const p of this.#multipath.paths.values()) if (p.id !== this.#tx && p.space.ackPending && !p.space.received.isEmpty) return true;
    return false;
  }

  #hasAppData(): boolean {
    if (this.#state !== 'established' && !(this.side === 'server' && this.#spaces[SPACE_APP].keys)) return false;
    return (
      this.#streams.hasStreamData() || this.#datagrams.outgoing.length > 0 || this.#handshakeDonePending || this.#connectionControlPending() || this.#streams.hasStreamControl()
    );
  }

  /** The peer's connection ID for path `id` (path 0: RFC 9000's active one). */
  #dcidOf(id: number): Uint8Array | undefined {
    return id === 0 ? this.#cids.active.cid : this.#pathCids.active(id)?.cid;
  }

  /** Start a packet in `space` (1-RTT: of path `pathId`) at `out[start]`: header written, payload begins after it. */
  #beginPacket(out: Uint8Array, start: number, spaceId: SpaceId, end: number, pathId = this.#tx): PacketDraft | undefined {
    const space = spaceId === SPACE_APP && pathId !== this.#tx ? this.#multipath.paths.get(pathId)?.space : this.#spaces[spaceId];
    const dcid = spaceId === SPACE_APP ? this.#dcidOf(pathId) : this.#cids.active.cid;
    if (space === undefined || dcid === undefined) return undefined;
    const pn = space.nextPn;
    if (pn >= MAX_PN) return undefined;
    const draft = beginPacket(out, start, end, {
      space: spaceId,
      pn,
      largestAcked: space.largestAcked,
      dcid,
      pathId: spaceId === SPACE_APP ? pathId : 0,
      scid: spaceId === SPACE_APP ? undefined : this.#cids.local.values().next().value!.cid,
      token: spaceId === SPACE_INITIAL && this.side === 'client' ? this.#retryToken : undefined,
      keyPhase: this.#keys.phase,
    });
    if (draft === undefined) return undefined;
    space.nextPn++;
    return draft;
  }

  /** Seal a drafted packet in place; returns its length. */
  #finishPacket(now: number, d: PacketDraft, frames: FrameRecord[], ackEliciting: boolean, inFlight: boolean, mtuProbe: boolean): number {
    const other = d.space === SPACE_APP && d.pathId !== this.#tx ? this.#multipath.paths.get(d.pathId) : undefined;
    const space = other?.space ?? this.#spaces[d.space];
    const recovery = other?.recovery ?? this.#recovery;
    const size = sealPacket(d, this.#spaces[d.space].keys!.local);
    const record: SentPacket = { pn: d.pn, time: now, size, ackEliciting, inFlight, frames, mtuProbe, keyPhase: this.#keys.phase, epoch: recovery.epoch };
    space.sent.set(d.pn, record);
    if (ackEliciting) {
      space.ackElicitingInFlight++;
      space.timeOfLastAckEliciting = now;
      // RFC 9000 §10.1: restart the idle timer on the first ack-eliciting packet after receiving.
      if (this.#lastAckElicitingSent <= this.#lastActivity) this.#resetIdleTimer(now);
      this.#lastAckElicitingSent = now;
    }
    if (inFlight) recovery.bytesInFlight += size;
    this.#packetsSent++;
    this.#bytesSent += size;
    if (d.space === SPACE_APP) {
      this.#keys.packetsInPhase++;
      // RFC 9001 §6.6: update keys well before the AEAD confidentiality limit.
      if (this.#keys.packetsInPhase >= this.#settings.keyUpdateInterval) this.initiateKeyUpdate();
    }
    // RFC 9001 §4.9.1: a client discards Initial keys when it first sends a Handshake packet.
    if (this.side === 'client' && d.space === SPACE_HANDSHAKE) this.#discardSpace(SPACE_INITIAL);
    return size;
  }

  /** Write frames into a drafted packet. Returns whether any ack-eliciting frame went in. */
  #fillPacket(now: number, d: PacketDraft, spaceId: SpaceId, frames: FrameRecord[], mayElicit: boolean): boolean {
    const space = this.#spaces[spaceId];
    const w = d.w;
    let elicits = false;
    // ACK first (RFC 9000 §13.2: acknowledge promptly). multipath-21 §2.3: once multipath is in
    // use, SHOULD acknowledge with PATH_ACK (of the path this space is).
    if ((space.ackPending || (space.ackElicitingSinceAck > 0 && mayElicit)) && !space.received.isEmpty) {
      this.#writeAck(now, w, frames, space, spaceId === SPACE_APP, spaceId === SPACE_APP && this.#multipath.negotiated ? this.#tx : undefined);
    }
    // multipath-21 §4.1 (as noq): acknowledgments of every path travel in any 1-RTT packet.
    if (spaceId === SPACE_APP && this.#multipath.paths.size > 1) this.#fillPathAcks(now, w, frames, mayElicit);
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
    if (this.#handshakeDonePending && w.remaining >= 1) {
      writeFrame(w, { type: 'handshake_done' });
      frames.push({ k: 'handshake_done' });
      this.#handshakeDonePending = false;
      elicits = true;
    }
    elicits = this.#fillControl(w, frames) || elicits;
    if (this.#pingPending && w.remaining >= 1) {
      writeFrame(w, { type: 'ping' });
      this.#pingPending = false;
      elicits = true;
    }
    // Datagrams, then stream data round-robin.
    if (this.#datagrams.fill(w)) elicits = true;
    elicits = this.#streams.fillStreams(w, frames) || elicits;
    return elicits;
  }

  /** PATH_ACK frames for the paths other than the one this packet goes on. */
  #fillPathAcks(now: number, w: FixedWriter, frames: FrameRecord[], mayElicit: boolean): void {
    for (const p of this.#multipath.paths.values()) {
      if (p.id === this.#tx) continue;
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
    const delay = timed ? Math.floor(Math.max(0, now - space.largestReceivedTime) / 2 ** this.#settings.ackDelayExponent) : 0;
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
    return this.#streams.controlDirty || this.#connectionControlPending();
  }

  /** A connection-level control frame (flow control, path, connection IDs) is owed. */
  #connectionControlPending(): boolean {
    const p = this.#path;
    return (
      p.responses.length > 0 ||
      (p.challengePending && p.challenge !== undefined) ||
      this.#streams.flowControlPending ||
      this.#cids.framesPending ||
      this.#cids.pendingRetires.length > 0 ||
      this.#observationOwed() ||
      (this.#multipath.paths.size > 0 && this.#multipathControlPending())
    );
  }

  #multipathControlPending(): boolean {
    const mp = this.#multipath;
    if (mp.maxPathIdPending || this.#pathCids.framesPending || this.#pathCids.pendingRetires.length > 0) return true;
    if (this.#nat.reachOuts.length > 0 || this.#nat.advertised.some((a) => a.pending)) return true;
    for (const p of mp.paths.values()) if (p.abandonPending || p.statusPending) return true;
    return false;
  }

  /** Multipath control frames owed (multipath-21 §4): abandons, statuses, connection IDs, MAX_PATH_ID. */
  #fillMultipathControl(sink: ControlSink): void {
    const mp = this.#multipath;
    for (const p of mp.paths.values()) {
      if (p.abandonPending && sink.put({ type: 'path_abandon', pathId: p.id, code: p.abandonCode }, { k: 'path_abandon', pathId: p.id })) p.abandonPending = false;
      if (p.statusPending && !p.abandoned && sink.put({ type: 'path_status', pathId: p.id, seq: p.statusSeq, available: p.statusAvailable }, { k: 'path_status', pathId: p.id, seq: p.statusSeq })) p.statusPending = false;
    }
    if (mp.maxPathIdPending && sink.put({ type: 'max_path_id', max: mp.localMax! }, { k: 'max_path_id' })) mp.maxPathIdPending = false;
    const nat = this.#nat;
    for (const a of nat.advertised) {
      if (a.pending && sink.put({ type: 'add_address', seq: a.seq, ip: a.address.ip, port: a.address.port }, { k: 'add_address', seq: a.seq })) a.pending = false;
    }
    while (nat.reachOuts.length > 0) {
      const a = nat.reachOuts[0]!;
      if (!sink.put({ type: 'reach_out', round: nat.round, ip: a.ip, port: a.port }, { k: 'reach_out', round: nat.round, ip: a.ip, port: a.port })) break;
      nat.reachOuts.shift();
    }
    const cids = this.#pathCids;
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

  /**
   * draft-ietf-quic-address-discovery §4: when we offered observations and the peer asked for
   * them, an OBSERVED_ADDRESS MUST go on every new path, the handshake's included (direct
   * UDP paths only: a relayed path has no address of the peer's to report).
   */
  #observationOwed(): boolean {
    const mine = this.#settings.addressDiscovery;
    const theirs = this.#peerParams?.addressDiscovery;
    const a = this.#path.addr;
    return (mine === 0 || mine === 2) && (theirs === 1 || theirs === 2) && a.ip !== undefined && a.port !== undefined && this.#observedFor !== a.key;
  }

  /** Flow-control, stream-control and connection-ID frames. */
  #fillControl(w: FixedWriter, frames: FrameRecord[]): boolean {
    if (!this.#controlPending()) return false;
    const sink = this.#controlSink;
    sink.w = w;
    sink.frames = frames;
    sink.any = false;
    for (const p of [this.#path]) {
      while (p.responses.length > 0) {
        if (!sink.put({ type: 'path_response', data: p.responses[0]! }, { k: 'close' })) break;
        p.responses.shift();
      }
      if (p.challengePending && p.challenge && sink.put({ type: 'path_challenge', data: p.challenge }, { k: 'close' })) p.challengePending = false;
    }
    this.#streams.fillFlowControl(sink);
    this.#streams.fillStreamControl(sink);
    const cids = this.#cids;
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
    if (this.#multipath.paths.size > 0) this.#fillMultipathControl(sink);
    if (this.#observationOwed()) {
      const a = this.#path.addr;
      // §3: sequence numbers increase monotonically within the connection.
      if (sink.put({ type: 'observed_address', seq: this.#observedSeq, ip: a.ip!, port: a.port! }, { k: 'observed_address', path: a.key })) {
        this.#observedSeq++;
        this.#observedFor = a.key;
      }
    }
    return sink.any;
  }

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
}

/** Re-exported so the endpoint can check DCID lengths. */
export { MAX_CID_LENGTH, DecodeError };
