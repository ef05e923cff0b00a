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
 * @module
 */
import type { CryptoProvider } from '../../crypto/provider.ts';
import { equalBytes, equalBytesConstantTime } from '../../../util/bytes.ts';
import { DecodeError } from '../../../util/errors.ts';
import type { ConnectionSettings } from '../config.ts';
import { TransportError, TransportErrorCode } from '../errors.ts';
import {
  ACTIVE_CONNECTION_ID_LIMIT,
  MAX_ACK_RANGES,
  MAX_CRYPTO_BUFFER,
  MAX_CRYPTO_FRAGMENTS,
  MAX_DATAGRAM_RECV_QUEUE,
  MAX_DATAGRAM_SEND_QUEUE,
  MAX_EARLY_PACKETS,
  ADVERTISED_PROBE_REFILL,
  MAX_ADVERTISED_PROBES,
  MAX_PATH_CANDIDATES,
  MAX_PENDING_RETIRES,
  MAX_RECV_FRAGMENTS,
  RECV_CHUNK_OVERHEAD,
  RECV_MEMORY_SLACK,
} from '../limits.ts';
import { PacketKeys, decodePacketNumber, initialKeys, protectHeader, unprotectHeader, type DirectionalKeys } from '../protection/packet-keys.ts';
import { RETRY_TAG_LENGTH, verifyRetryIntegrity } from '../protection/retry.ts';
import { isProbeable } from '../address.ts';
import { createCongestionController, type CongestionController } from '../recovery/congestion.ts';
import { Pacer } from '../recovery/pacer.ts';
import { RttEstimator } from '../recovery/rtt.ts';
import { TlsAlertError, type CryptoSession, type EncryptionLevel } from '../tls/index.ts';
import { FixedWriter } from '../wire/fixed-writer.ts';
import {
  FrameType,
  ackFrameSize,
  cryptoFrameOverhead,
  decodeFrame,
  frameAllowed,
  frameSize,
  isAckEliciting,
  isProbing,
  streamFrameOverhead,
  writeAck,
  writeCryptoHeader,
  writeFrame,
  writeStreamHeader,
  type AckRange,
  type Frame,
} from '../wire/frames.ts';
import { MAX_CID_LENGTH, QUIC_V1, parseHeader, type LongHeader, type PacketHeader } from '../wire/header.ts';
import { ByteReader } from '../wire/reader.ts';
import { decodeTransportParameters, type DirectAddress, type TransportParameters } from '../wire/transport-params.ts';
import { RangeSet } from './range-set.ts';
import { RecvBudget, RecvBuffer } from './recv-buffer.ts';
import { SendBuffer } from './send-buffer.ts';
import { Stream, StreamRecv, StreamSend, streamDir, streamId, streamIndex, streamInitiator, type Dir } from './streams.ts';
import { ConnectionError, type ConnectionEvent, type ConnectionStats, type PathAddr, type PathChangeReason, type Transmit } from './types.ts';

/** What the endpoint does for a connection: CID routing and stateless-reset tokens. */
export interface ConnectionHost {
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
   * Server: our direct addresses, sent in the sdnet_direct_addresses transport parameter (the
   * client may move the connection to one of them). Undefined: the parameter is not sent.
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

const SPACE_INITIAL = 0;
const SPACE_HANDSHAKE = 1;
const SPACE_APP = 2;
type SpaceId = 0 | 1 | 2;
/** The packet number spaces in order (one array, not one per call on the send path). */
const SPACE_IDS: readonly SpaceId[] = [SPACE_INITIAL, SPACE_HANDSHAKE, SPACE_APP];
const LEVEL_OF: readonly EncryptionLevel[] = ['initial', 'handshake', 'application'];

/** What a sent packet carried that matters when it is acknowledged or lost. */
type FrameRecord =
  | { k: 'stream'; id: number; offset: number; length: number; fin: boolean }
  | { k: 'crypto'; offset: number; length: number }
  | { k: 'ack'; largest: number }
  | { k: 'max_data' }
  | { k: 'max_stream_data'; id: number }
  | { k: 'max_streams'; dir: Dir }
  | { k: 'data_blocked' }
  | { k: 'stream_data_blocked'; id: number }
  | { k: 'streams_blocked'; dir: Dir }
  | { k: 'reset_stream'; id: number }
  | { k: 'stop_sending'; id: number }
  | { k: 'new_cid'; seq: number }
  | { k: 'retire_cid'; seq: number }
  | { k: 'handshake_done' }
  | { k: 'close' };

interface SentPacket {
  readonly pn: number;
  readonly time: number;
  readonly size: number;
  readonly ackEliciting: boolean;
  readonly inFlight: boolean;
  readonly frames: FrameRecord[];
  readonly mtuProbe: boolean;
  /** Key phase of 1-RTT packets (for key-update bookkeeping). */
  readonly keyPhase: number;
  /** The path (epoch) it was sent on: packets of an old path leave congestion control (RFC 9000 §9.4). */
  readonly epoch: number;
}

class Space {
  keys: DirectionalKeys | undefined;
  nextPn = 0;
  readonly sent = new Map<number, SentPacket>();
  largestAcked = -1;
  lossTime = 0;
  timeOfLastAckEliciting = 0;
  ackElicitingInFlight = 0;
  readonly received = new RangeSet();
  /**
   * Every packet number below this is treated as a duplicate (RFC 9000 §12.3): `received`
   * forgets old ranges (it only feeds ACK frames), this remembers that they were forgotten.
   */
  duplicateFloor = 0;
  largestReceived = -1;
  largestReceivedTime = 0;
  ackPending = false;
  ackElicitingSinceAck = 0;
  ackDeadline = Infinity;
  readonly cryptoSend = new SendBuffer();
  readonly cryptoRecv = new RecvBuffer();
  discarded = false;
  /** PTO probes to send in this space. */
  probes = 0;
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

interface PathState {
  addr: PathAddr;
  validated: boolean;
  mtu: number;
  /** Outstanding PATH_CHALLENGE data and when to give up. */
  challenge: Uint8Array | undefined;
  challengeSentAt: number;
  challengeDeadline: number;
  challengePending: boolean;
  /** Sends of the current challenge so far, and when to send it again. */
  challengeSends: number;
  challengeResendAt: number;
  /** PATH_RESPONSEs owed on this path. */
  responses: Uint8Array[];
  bytesReceived: number;
  bytesSent: number;
  /**
   * The peer brought this path to us (its first Initial, a migration, a probe). Until it is
   * validated we may send it at most three times what it sent (RFC 9000 §8, §9.3).
   */
  peerInitiated: boolean;
}

interface RemoteCid {
  readonly seq: number;
  readonly cid: Uint8Array;
  readonly resetToken: Uint8Array | undefined;
}

interface LocalCid {
  readonly seq: number;
  readonly cid: Uint8Array;
  readonly resetToken: Uint8Array;
  /** Needs a NEW_CONNECTION_ID frame. */
  pending: boolean;
}

type State = 'handshaking' | 'established' | 'closing' | 'draining' | 'closed';

/** RFC 9000 §14.1: the smallest allowed maximum datagram size. */
const MIN_DATAGRAM = 1200;
/** RFC 9002 §6.1.1: kPacketThreshold. */
const PACKET_THRESHOLD = 3;
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
/** First retry delay of a direct path whose probe failed (µs); doubles up to the maximum. */
const UPGRADE_RETRY_BASE = 1_000_000;
const UPGRADE_RETRY_MAX = 30_000_000;
/** Retired connection IDs kept routed at most (the oldest is forgotten first). */
const MAX_RETIRED_ROUTED = 8;
/** PATH_CHALLENGE sends per validation (one every PTO until the deadline). */
const CHALLENGE_SENDS = 3;
/** Size of the buffers outgoing datagrams are cut from. */
const SLAB_SIZE = 64 * 1024;
/** Largest packet number we will use (RFC 9000 §12.3: 2^62 − 1; we stop at 2^53). */
const MAX_PN = Number.MAX_SAFE_INTEGER;

export class Connection {
  readonly side: 'client' | 'server';
  readonly #provider: CryptoProvider;
  readonly #settings: ConnectionSettings;
  readonly #host: ConnectionHost;
  readonly #tls: CryptoSession;
  readonly #spaces: [Space, Space, Space] = [new Space(), new Space(), new Space()];
  #state: State = 'handshaking';
  readonly #events: ConnectionEvent[] = [];
  #closeError: ConnectionError | undefined;

  // ---- identity of the connection
  readonly originalDcid: Uint8Array;
  readonly #localCids = new Map<number, LocalCid>();
  #nextLocalSeq = 0;
  readonly #remoteCids = new Map<number, RemoteCid>();
  #remoteCid: RemoteCid;
  #remoteRetirePriorTo = 0;
  readonly #pendingRetires: number[] = [];
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
  #largestPnOnPath = -1;
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
  /** Counts path switches; sent packets carry it (see {@link SentPacket.epoch}). */
  #pathEpoch = 0;

  // ---- recovery
  #rtt: RttEstimator;
  #cc: CongestionController;
  readonly #pacer: Pacer;
  #bytesInFlight = 0;
  #ptoCount = 0;
  #lossTimer = 0;
  #handshakeConfirmed = false;
  #peerCompletedAddressValidation: boolean;

  // ---- timers (µs; 0 = unset)
  #idleDeadline = 0;
  #idleTimeout = 0;
  #lastActivity: number;
  #lastAckElicitingSent = 0;
  #closeDeadline = 0;
  #handshakeDeadline: number;
  #keepAliveAt = 0;
  #pacingAt = 0;
  #keyDiscardAt = 0;

  // ---- peer parameters
  #peerParams: TransportParameters | undefined;
  #peerMaxAckDelay = 25_000;
  #peerAckDelayExponent = 3;

  // ---- key update (RFC 9001 §6)
  /** Phase of the keys we send with. */
  #keyPhase = 0;
  /** Phase of the keys the peer sends with (current read keys). */
  #remotePhase = 0;
  /** First packet number the peer sent in its current phase (older ones use the previous keys). */
  #remotePhaseStartPn = 0;
  #previousRemoteKeys: PacketKeys | undefined;
  #nextRemoteKeys: PacketKeys | undefined;
  /** First packet number we sent in the current phase. */
  #firstPnInPhase = 0;
  /** An ACK arrived for a packet sent in the current phase (RFC 9001 §6.1 gate for the next update). */
  #phaseAcked = true;
  #packetsInPhase = 0;
  #keyUpdates = 0;
  #keyDiscardPending = false;

  // ---- flow control
  /** What every receive buffer (streams, CRYPTO) and the DATAGRAM queue may hold together. */
  readonly #recvBudget = new RecvBudget(MAX_RECV_FRAGMENTS);
  #localMaxData: number;
  #localDataWindow: number;
  #recvTotal = 0;
  #readTotal = 0;
  #maxDataPending = false;
  #lastDataWindowUpdate = 0;
  #peerMaxData = 0;
  #sentTotal = 0;
  #dataBlockedAt: number | undefined;
  /** The connection limit a DATA_BLOCKED was last queued for. */
  #dataBlockedReported = -1;

  // ---- streams
  readonly #streams = new Map<number, Stream>();
  readonly #sendQueue: number[] = [];
  readonly #nextLocalIndex: Record<Dir, number> = { bi: 0, uni: 0 };
  readonly #peerMaxStreams: Record<Dir, number> = { bi: 0, uni: 0 };
  readonly #localMaxStreams: Record<Dir, number>;
  readonly #remoteOpened: Record<Dir, number> = { bi: 0, uni: 0 };
  readonly #maxStreamsPending: Record<Dir, boolean> = { bi: false, uni: false };
  readonly #streamsBlockedPending: Record<Dir, number | undefined> = { bi: undefined, uni: undefined };
  readonly #remoteClosedCount: Record<Dir, number> = { bi: 0, uni: 0 };

  // ---- datagrams
  readonly #datagramsIn: Uint8Array[] = [];
  readonly #datagramsOut: Uint8Array[] = [];

  // ---- misc pending frames
  #handshakeDonePending = false;
  #closeFrame: Extract<Frame, { type: 'connection_close' }> | undefined;
  #closeSendsOwed = 0;
  /** Closing state: datagrams received, and the count at which the next one is answered. */
  #closeTriggers = 0;
  #closeAnswerAt = 1;
  #pingPending = false;
  #mtuProbe: { size: number; pn: number; failures: number } | undefined;
  #mtuProbeAt = 0;
  readonly #earlyPackets: { path: PathAddr; data: Uint8Array }[] = [];

  /** Unexpected exceptions turned into INTERNAL_ERROR closes (should stay 0). */
  internalErrors = 0;

  // ---- stats
  #packetsSent = 0;
  #packetsReceived = 0;
  #bytesSent = 0;
  #bytesReceived = 0;
  #lost = 0;
  #congestionEvents = 0;

  constructor(options: ConnectionOptions) {
    this.side = options.side;
    this.#provider = options.provider;
    this.#settings = options.settings;
    this.#host = options.host;
    this.originalDcid = options.originalDcid;
    this.#rtt = new RttEstimator(options.settings.initialRtt);
    this.#cc = createCongestionController(options.settings.congestion, MIN_DATAGRAM);
    this.#pacer = new Pacer(MIN_DATAGRAM);
    this.#lastActivity = options.now;
    this.#handshakeDeadline = options.now + options.settings.handshakeTimeout * 1000;
    this.#path = this.#newPath(options.path, options.side === 'client' || options.retriedFrom !== undefined, options.side === 'server');
    this.#resolvePath = options.resolvePath;
    if (options.side === 'client') this.#dialed.push(options.path);
    for (const alt of options.side === 'client' ? (options.alternativePaths ?? []) : []) {
      if (alt.key === options.path.key || this.#otherPaths.has(alt.key)) continue;
      if (this.#otherPaths.size >= MAX_OTHER_PATHS) break;
      this.#otherPaths.set(alt.key, this.#newPath(alt, true, false));
      this.#dialPaths.push(alt);
      this.#dialed.push(alt);
    }
    // RFC 9000 §8.1: a client's address is validated by the server (a Retry token already
    // proved it, §8.1.2); the client trusts the server.
    this.#addressValidated = options.side === 'client' || options.retriedFrom !== undefined;
    this.#peerCompletedAddressValidation = options.side === 'server';
    this.#localMaxData = options.settings.receiveWindow;
    this.#localDataWindow = options.settings.receiveWindow;
    this.#setRecvMemoryLimit();
    for (const space of this.#spaces) space.cryptoRecv.budget = this.#recvBudget;
    this.#localMaxStreams = { bi: options.settings.maxConcurrentBidiStreams, uni: options.settings.maxConcurrentUniStreams };

    const localCid = this.#issueCid(options.cidLength, false);
    if (options.side === 'client') {
      // RFC 9000 §7.2: the client's first DCID is random (≥ 8 bytes); it also keys Initial protection.
      this.#remoteCid = { seq: 0, cid: options.originalDcid, resetToken: undefined };
    } else {
      this.#remoteCid = { seq: 0, cid: options.peerCid!, resetToken: undefined };
      this.#peerInitialScid = options.peerCid;
      // Route the client's chosen DCID here too, so duplicate Initials (several paths) join this connection.
      this.#host.addCid(options.originalDcid, this);
    }
    this.#remoteCids.set(0, this.#remoteCid);
    this.#spaces[SPACE_INITIAL].keys = options.initialKeys ?? initialKeys(this.#provider, options.originalDcid, options.side);

    const s = options.settings;
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

  /** True once the handshake completed (until closing). */
  get isEstablished(): boolean {
    return this.#state === 'established';
  }

  get isClosed(): boolean {
    return this.#state === 'closed';
  }

  /** The error the connection closed with, once closing. */
  get closeError(): ConnectionError | undefined {
    return this.#closeError;
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

  /** Connection IDs this connection is reachable by (for the endpoint's bookkeeping). */
  get localCids(): Uint8Array[] {
    return [...this.#localCids.values()].map((c) => c.cid);
  }

  /** Largest DATAGRAM payload the peer accepts now (0 = not supported). */
  get maxDatagramSize(): number {
    const peer = this.#peerParams?.maxDatagramFrameSize ?? 0;
    if (peer === 0) return 0;
    // One DATAGRAM frame in one 1-RTT packet: short header + tag + frame header.
    const fit = this.#path.mtu - (1 + this.#remoteCid.cid.length + 4 + 16) - 3;
    return Math.max(0, Math.min(peer - 3, fit));
  }

  stats(): ConnectionStats {
    return {
      rtt: this.#rtt.smoothed / 1000,
      minRtt: (Number.isFinite(this.#rtt.min) ? this.#rtt.min : this.#rtt.smoothed) / 1000,
      cwnd: Math.round(this.#cc.window),
      bytesInFlight: this.#bytesInFlight,
      mtu: this.#path.mtu,
      packetsSent: this.#packetsSent,
      packetsReceived: this.#packetsReceived,
      bytesSent: this.#bytesSent,
      bytesReceived: this.#bytesReceived,
      lostPackets: this.#lost,
      congestionEvents: this.#congestionEvents,
      keyUpdates: this.#keyUpdates,
      pathChanges: this.#pathChanges,
      relayed: this.#path.addr.relayed === true,
    };
  }

  pollEvent(): ConnectionEvent | undefined {
    return this.#events.shift();
  }

  // ---- streams

  /** Open a stream; undefined if the peer's stream limit is reached (a STREAMS_BLOCKED is queued). */
  openStream(dir: Dir): number | undefined {
    if (this.#state !== 'established' && this.#state !== 'handshaking') return undefined;
    const index = this.#nextLocalIndex[dir];
    if (index >= this.#peerMaxStreams[dir]) {
      this.#streamsBlockedPending[dir] = this.#peerMaxStreams[dir];
      return undefined;
    }
    this.#nextLocalIndex[dir] = index + 1;
    const id = streamId(index, this.side, dir);
    this.#createStream(id);
    return id;
  }

  /** Streams of `dir` we may still open now. */
  availableStreams(dir: Dir): number {
    return Math.max(0, this.#peerMaxStreams[dir] - this.#nextLocalIndex[dir]);
  }

  /**
   * Queue bytes on a stream. Returns how many were accepted (limited by the stream's send
   * buffer); 0 means wait for a 'stream-writable' event.
   *
   * @throws {Error} if the stream cannot be written (unknown, receive-only, finished, reset)
   */
  writeStream(id: number, data: Uint8Array): number {
    const send = this.#sendSide(id);
    if (send.fin || send.resetCode !== undefined) throw new Error(`Stream ${id} is closed for writing`);
    const n = Math.min(data.length, send.capacity(this.#settings.streamSendBuffer));
    if (n > 0) {
      send.buffer.write(n === data.length ? data : data.subarray(0, n));
      this.#queueStream(id);
    }
    // Remember to announce 'stream-writable' once space frees up.
    if (n < data.length) send.writeBlocked = true;
    return n;
  }

  /** Bytes that {@link writeStream} would accept now. */
  writableBytes(id: number): number {
    const s = this.#streams.get(id)?.send;
    return s === undefined ? 0 : s.capacity(this.#settings.streamSendBuffer);
  }

  /** Mark the end of the stream (FIN after the queued bytes). */
  finishStream(id: number): void {
    const send = this.#sendSide(id);
    if (send.fin || send.resetCode !== undefined) return;
    send.fin = true;
    this.#queueStream(id);
  }

  /** Abandon sending (RESET_STREAM with `code`, RFC 9000 §3.1). */
  resetStream(id: number, code: number): void {
    const send = this.#streams.get(id)?.send;
    if (send === undefined || send.resetCode !== undefined || send.state === 'data-recvd') return;
    send.resetCode = code;
    // RFC 9000 §4.5, §19.4: the final size is the highest offset sent (what the peer's flow
    // control was charged), read before clear() marks the unsent rest as sent.
    send.resetFinalSize = send.buffer.unsent;
    send.resetPending = true;
    this.#streamControlDirty = true;
    send.state = 'reset-sent';
    send.buffer.clear();
  }

  /** Ask the peer to stop sending (STOP_SENDING with `code`, RFC 9000 §3.5). */
  stopSending(id: number, code: number): void {
    const recv = this.#streams.get(id)?.recv;
    if (recv === undefined || recv.finished || recv.stopSendingCode !== undefined) return;
    recv.stopSendingCode = code;
    if (recv.resetCode !== undefined) {
      // Reset Recvd: the peer already abandoned the stream; there is nothing to ask (RFC 9000 §3.5).
      recv.state = 'reset-read';
      this.#maybeFreeStream(id);
      return;
    }
    // Discard what is buffered and give the credit back, so the peer is not blocked on it.
    // The stream stays until its final size is known: data still in flight is counted toward
    // connection flow control as it arrives (RFC 9000 §4.5), and the STOP_SENDING frame is
    // sent, and repeated when lost, until Data Recvd or Reset Recvd (§3.5, §13.3).
    recv.buffer.clear();
    this.#creditStopped(id, recv);
    if (!recv.finished) {
      recv.stopSendingPending = true;
      this.#streamControlDirty = true;
    }
  }

  /** Count a stream's bytes below `offset` as consumed by the connection's flow control (RFC 9000 §4.1). */
  #credit(recv: StreamRecv, offset: number): void {
    if (offset <= recv.credited) return;
    this.#readTotal += offset - recv.credited;
    recv.credited = offset;
  }

  /**
   * A stream we sent STOP_SENDING for: everything up to its highest offset (or final size) is
   * consumed; once all of it has arrived the stream is done.
   */
  #creditStopped(id: number, recv: StreamRecv): void {
    this.#credit(recv, recv.finalSize ?? recv.buffer.highest);
    this.#maybeUpdateConnectionWindow();
    if (recv.state === 'data-recvd') {
      recv.state = 'data-read';
      this.#maybeFreeStream(id);
    }
  }

  /**
   * Read from a stream: data, the end (fin), or a reset code. `data` is undefined when
   * nothing is available yet.
   */
  readStream(id: number, max = Infinity): { data?: Uint8Array; fin: boolean; resetCode?: number } {
    const stream = this.#streams.get(id);
    const recv = stream?.recv;
    // Unknown (not yet opened by the peer, or already finished and forgotten): nothing to read.
    if (recv === undefined || recv.stopSendingCode !== undefined) return { fin: false };
    recv.readableNotified = false;
    if (recv.resetCode !== undefined) {
      if (recv.state === 'reset-recvd') {
        recv.state = 'reset-read';
        this.#maybeFreeStream(id);
      }
      return { fin: true, resetCode: recv.resetCode };
    }
    const data = recv.buffer.read(max);
    if (data !== undefined) {
      this.#credit(recv, recv.buffer.readOffset);
      this.#onStreamConsumed(id, recv);
    }
    const fin = recv.finalSize !== undefined && recv.buffer.readOffset === recv.finalSize;
    if (fin && recv.state !== 'data-read') {
      recv.state = 'data-read';
      this.#maybeFreeStream(id);
    }
    return data === undefined ? { fin } : { data, fin };
  }

  /** Is there something to read (data, end or reset) on the stream? */
  isReadable(id: number): boolean {
    const recv = this.#streams.get(id)?.recv;
    if (recv === undefined) return false;
    if (recv.resetCode !== undefined) return recv.state === 'reset-recvd';
    return recv.buffer.readable > 0 || (recv.finalSize !== undefined && recv.buffer.readOffset === recv.finalSize && recv.state !== 'data-read');
  }

  /** The peer's STOP_SENDING code for a stream, if any. */
  stopCode(id: number): number | undefined {
    return this.#streams.get(id)?.send?.stopCode;
  }

  // ---- datagrams (RFC 9221)

  /** Queue an unreliable datagram. False if it is too large or the queue is full. */
  sendDatagram(data: Uint8Array): boolean {
    if (data.length > this.maxDatagramSize || this.#datagramsOut.length >= MAX_DATAGRAM_SEND_QUEUE) return false;
    this.#datagramsOut.push(data.slice());
    return true;
  }

  /** The next received datagram. */
  readDatagram(): Uint8Array | undefined {
    const d = this.#datagramsIn.shift();
    if (d !== undefined) this.#recvBudget.memory -= d.length + RECV_CHUNK_OVERHEAD;
    return d;
  }

  // ---- close

  /** Close with an application error code and reason (RFC 9000 §10.2). */
  close(now: number, code: number, reason = ''): void {
    if (this.#state === 'closing' || this.#state === 'draining' || this.#state === 'closed') return;
    const reasonBytes = new TextEncoder().encode(reason).subarray(0, 256);
    this.#enterClosing(now, { type: 'connection_close', app: true, code, frameType: 0, reason: reasonBytes }, new ConnectionError({ code: 'ERR_QUIC_LOCALLY_CLOSED', kind: 'local', remote: false, applicationCode: code, reason }));
  }

  /**
   * Update the 1-RTT keys (RFC 9001 §6.1): now if allowed, else as soon as a packet of the
   * current phase has been acknowledged (a PING makes sure one is). False only before the
   * handshake is confirmed or after close.
   */
  initiateKeyUpdate(): boolean {
    if (!this.#handshakeConfirmed || this.#state !== 'established') return false;
    if (this.#tryKeyUpdate()) return true;
    this.#keyUpdateWanted = true;
    this.#pingPending = true;
    return true;
  }

  #keyUpdateWanted = false;

  /** Perform the update if RFC 9001 §6.1 allows it now. */
  #tryKeyUpdate(): boolean {
    // RFC 9001 §6.1: not before the handshake is confirmed, and not again before a packet of
    // the current phase was acknowledged (nor while the peer has not followed the last one).
    if (!this.#handshakeConfirmed || !this.#phaseAcked || this.#keyPhase !== this.#remotePhase || this.#state !== 'established') return false;
    const app = this.#spaces[SPACE_APP];
    if (app.keys === undefined) return false;
    this.#keyUpdateWanted = false;
    app.keys = { local: app.keys.local.next(), remote: app.keys.remote };
    this.#keyPhase ^= 1;
    this.#firstPnInPhase = app.nextPn;
    this.#phaseAcked = false;
    this.#packetsInPhase = 0;
    this.#keyUpdates++;
    return true;
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
      // RFC 9000 §10.2.1: answer incoming packets with CONNECTION_CLOSE, at a limited rate: the
      // 1st, 2nd, 4th, 8th, ... datagram after entering the closing state.
      if (++this.#closeTriggers >= this.#closeAnswerAt) {
        this.#closeAnswerAt *= 2;
        this.#closeSendsOwed = 1;
      }
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
        header = parseHeader(data, offset, this.#localCidLength());
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

  /** Closing, draining or closed (a method, so TypeScript does not narrow the state across calls). */
  #gone(): boolean {
    return this.#state === 'closing' || this.#state === 'draining' || this.#state === 'closed';
  }

  #localCidLength(): number {
    const any = this.#localCids.values().next().value;
    return any?.cid.length ?? 8;
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
    const buf = packet;
    const pnOffset = header.pnOffset - header.start;
    const hp = unprotectHeader(buf, pnOffset, space.keys.remote.header);
    if (hp === undefined) return;
    const pn = decodePacketNumber(space.largestReceived, hp.truncatedPn, hp.pnLength * 8);
    const headerBytes = buf.subarray(0, pnOffset + hp.pnLength);
    const sealed = buf.subarray(headerBytes.length);
    let keys = space.keys.remote;
    let phaseChange = false;
    if (spaceId === SPACE_APP) {
      const phase = (buf[0]! >> 2) & 1;
      if (phase !== this.#remotePhase) {
        // RFC 9001 §6.3: an older packet uses the previous keys; a newer one means a key update.
        if (pn < this.#remotePhaseStartPn && this.#previousRemoteKeys) {
          keys = this.#previousRemoteKeys;
        } else {
          this.#nextRemoteKeys ??= space.keys.remote.next();
          keys = this.#nextRemoteKeys;
          phaseChange = true;
        }
      }
    }
    const payload = keys.open(pn, headerBytes, sealed);
    if (payload === null) {
      // RFC 9000 §10.3.1: a datagram that does not authenticate may be a stateless reset.
      if (last && header.form === 'short' && this.#isStatelessReset(datagram)) return this.#onStatelessReset(now);
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
    if (pn < space.duplicateFloor || space.received.contains(pn)) return;
    if (this.#unknownPathBytes > 0) {
      // The first authenticated packet from a new path: now it gets state (and the datagram counts).
      this.#otherPath(path, false, true).bytesReceived += this.#unknownPathBytes;
      this.#unknownPathBytes = 0;
    }
    if (phaseChange) this.#onPeerKeyUpdate(pn);
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

    const ackEliciting = this.#processFrames(now, path, payload, spaceId, header.form === 'short' ? '1rtt' : header.type === 'handshake' ? 'handshake' : 'initial', pn);
    if (this.#state === 'draining' || this.#state === 'closed') return;

    // Record for acknowledgment.
    const wasLargest = pn > space.largestReceived;
    const outOfOrder = space.largestReceived >= 0 && pn !== space.largestReceived + 1;
    space.received.insert(pn, pn + 1);
    if (space.received.size > MAX_ACK_RANGES) {
      // The oldest ranges are dropped; every number below what is kept counts as seen.
      space.received.truncate(MAX_ACK_RANGES);
      space.duplicateFloor = Math.max(space.duplicateFloor, space.received.min!);
    }
    if (wasLargest) {
      space.largestReceived = pn;
      space.largestReceivedTime = now;
    }
    if (ackEliciting) {
      space.ackElicitingSinceAck++;
      if (spaceId !== SPACE_APP || space.ackElicitingSinceAck >= 2 || outOfOrder) {
        space.ackPending = true;
        space.ackDeadline = now;
      } else if (space.ackDeadline === Infinity) {
        space.ackDeadline = now + this.#settings.maxAckDelay * 1000;
      }
    }
    this.#lastActivity = now;
    this.#resetIdleTimer(now);
    if (spaceId === SPACE_APP && wasLargest) this.#onPathActivity(now, path, ackEliciting);
  }

  /** RFC 9001 §6.6: packets that may fail authentication before the connection must close. */
  #integrityLimit(keys: PacketKeys): number {
    // AES-GCM: 2^52; ChaCha20-Poly1305: 2^36.
    const aead = keys.suite.aead === 'chacha20-poly1305' ? 2 ** 36 : 2 ** 52;
    return Math.min(aead, this.#settings.maxAuthenticationFailures);
  }

  /** The peer's packets moved to the next key phase (RFC 9001 §6.2). */
  #onPeerKeyUpdate(pn: number): void {
    const app = this.#spaces[SPACE_APP];
    const keys = app.keys!;
    this.#previousRemoteKeys = keys.remote;
    const remote = this.#nextRemoteKeys!;
    this.#nextRemoteKeys = undefined;
    this.#remotePhase ^= 1;
    this.#remotePhaseStartPn = pn;
    if (this.#remotePhase !== this.#keyPhase) {
      // The peer initiated: we follow with our write keys before acknowledging (RFC 9001 §6.2).
      app.keys = { local: keys.local.next(), remote };
      this.#keyPhase = this.#remotePhase;
      this.#firstPnInPhase = app.nextPn;
      this.#phaseAcked = false;
      this.#packetsInPhase = 0;
      this.#keyUpdates++;
    } else {
      // The peer answered our update: only the read side moves.
      app.keys = { local: keys.local, remote };
    }
    // RFC 9001 §6.5: keep the old read keys for a while (3 PTO), for reordered packets.
    this.#keyDiscardPending = true;
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
      this.#remoteCid = { seq: 0, cid: header.scid, resetToken: undefined };
      this.#remoteCids.set(0, this.#remoteCid);
    }
  }

  #onVersionNegotiation(now: number, versions: readonly number[], firstInDatagram: boolean): void {
    // RFC 9000 §6.2: only a client that has not yet received another packet acts on it;
    // one listing our version (or arriving after other packets) is discarded.
    if (this.side !== 'client' || this.#receivedFirstServerPacket || !firstInDatagram || versions.includes(QUIC_V1)) return;
    this.#closeError = new ConnectionError({ code: 'ERR_QUIC_VERSION_MISMATCH', kind: 'version-mismatch', remote: true, reason: `server supports ${versions.map((v) => `0x${v.toString(16)}`).join(', ')}` });
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
    this.#remoteCid = { seq: 0, cid: header.scid, resetToken: undefined };
    this.#remoteCids.set(0, this.#remoteCid);
    // RFC 9001 §5.2: Initial keys are re-derived from the DCID the Retry chose.
    const initial = this.#spaces[SPACE_INITIAL];
    initial.keys = initialKeys(this.#provider, header.scid, 'client');
    // Everything sent in Initial packets so far is resent (packet numbers keep going, RFC 9000 §17.2.5.3).
    for (const p of initial.sent.values()) {
      this.#leaveFlight(p);
      this.#onPacketLost(p, SPACE_INITIAL, false);
    }
    initial.sent.clear();
    initial.ackElicitingInFlight = 0;
    void now;
  }

  /** Decode and act on every frame of a packet. Returns whether it was ack-eliciting. */
  #processFrames(now: number, path: PathAddr, payload: Uint8Array, spaceId: SpaceId, packetType: 'initial' | 'handshake' | '1rtt', pn: number): boolean {
    const r = new ByteReader(payload);
    let ackEliciting = false;
    let probingOnly = true;
    // RFC 9000 §12.4: a packet with no frames is a PROTOCOL_VIOLATION.
    if (payload.length === 0) throw new TransportError(TransportErrorCode.PROTOCOL_VIOLATION, 'packet without frames');
    while (!r.done) {
      const { frame, wireType } = decodeFrame(r);
      if (!frameAllowed(frame, wireType, packetType)) {
        throw new TransportError(TransportErrorCode.PROTOCOL_VIOLATION, `frame ${frame.type} not allowed in ${packetType} packets`, wireType);
      }
      if (isAckEliciting(frame)) ackEliciting = true;
      if (!isProbing(frame)) probingOnly = false;
      this.#onFrame(now, path, frame, wireType, spaceId, pn);
      if (this.#state === 'draining' || this.#state === 'closed') return ackEliciting;
    }
    this.#lastPacketProbingOnly = probingOnly;
    return ackEliciting;
  }

  #lastPacketProbingOnly = false;

  #onFrame(now: number, path: PathAddr, frame: Frame, wireType: number, spaceId: SpaceId, _pn: number): void {
    switch (frame.type) {
      case 'padding':
      case 'ping':
        return;
      case 'ack':
        return this.#onAck(now, frame, spaceId, wireType);
      case 'crypto':
        return this.#onCrypto(now, frame.offset, frame.data, spaceId, wireType);
      case 'stream':
        return this.#onStreamFrame(frame, wireType);
      case 'reset_stream':
        return this.#onResetStream(frame.id, frame.code, frame.finalSize, wireType);
      case 'stop_sending':
        return this.#onStopSending(frame.id, frame.code, wireType);
      case 'max_data':
        if (frame.max > this.#peerMaxData) {
          this.#peerMaxData = frame.max;
          this.#wakeWriters();
        }
        return;
      case 'max_stream_data': {
        this.#checkStreamFrame(frame.id, 'send', wireType);
        const send = this.#getOrOpenStream(frame.id, wireType)?.send;
        if (send && frame.max > send.maxData) {
          send.maxData = frame.max;
          if (send.buffer.hasSendable(send.maxData)) this.#queueStream(frame.id);
        }
        return;
      }
      case 'max_streams':
        return this.#onMaxStreams(frame.bidi ? 'bi' : 'uni', frame.max);
      case 'data_blocked':
      case 'stream_data_blocked':
      case 'streams_blocked':
        // Informational; our window updates are driven by consumption (RFC 9000 §4.1).
        if (frame.type === 'stream_data_blocked') {
          this.#checkStreamFrame(frame.id, 'recv', wireType);
          // RFC 9000 §3.2: it opens a peer's stream (and the lower ones); §4.6: beyond our
          // MAX_STREAMS → STREAM_LIMIT_ERROR; §19.8: a local stream not yet opened → STREAM_STATE_ERROR.
          this.#getOrOpenStream(frame.id, wireType);
        }
        return;
      case 'new_token':
        // RFC 9000 §19.7: a server receiving NEW_TOKEN → PROTOCOL_VIOLATION. Clients ignore it (no 0-RTT).
        if (this.side === 'server') throw new TransportError(TransportErrorCode.PROTOCOL_VIOLATION, 'client sent NEW_TOKEN', wireType);
        return;
      case 'new_connection_id':
        return this.#onNewConnectionId(frame, wireType);
      case 'retire_connection_id':
        return this.#onRetireConnectionId(frame.seq, wireType);
      case 'path_challenge': {
        const p = path.key === this.#path.addr.key ? this.#path : this.#otherPath(path, false, true);
        // RFC 9000 §8.2.2: answer with PATH_RESPONSE on the path the challenge came from.
        if (p.responses.length < 4) p.responses.push(frame.data);
        return;
      }
      case 'path_response':
        return this.#onPathResponse(now, path, frame.data);
      case 'connection_close':
        return this.#onConnectionClose(now, frame);
      case 'handshake_done':
        // RFC 9000 §19.20: a server receiving HANDSHAKE_DONE → PROTOCOL_VIOLATION.
        if (this.side === 'server') throw new TransportError(TransportErrorCode.PROTOCOL_VIOLATION, 'client sent HANDSHAKE_DONE', wireType);
        return this.#confirmHandshake(now);
      case 'datagram':
        // RFC 9221 §3: a DATAGRAM frame (type + length + data) larger than our
        // max_datagram_frame_size, or any when we advertised 0 → PROTOCOL_VIOLATION.
        if (frameSize({ type: 'datagram', data: frame.data }) > this.#settings.maxDatagramFrameSize) {
          throw new TransportError(TransportErrorCode.PROTOCOL_VIOLATION, 'unexpected or oversized DATAGRAM', wireType);
        }
        this.#datagramsIn.push(frame.data.slice());
        this.#recvBudget.memory += frame.data.length + RECV_CHUNK_OVERHEAD;
        // Unread datagrams are dropped oldest first beyond the queue length or the memory budget.
        while (this.#datagramsIn.length > MAX_DATAGRAM_RECV_QUEUE || (this.#recvBudget.memory > this.#recvBudget.maxMemory && this.#datagramsIn.length > 1)) this.readDatagram();
        this.#events.push({ type: 'datagram' });
        return;
    }
  }

  // ---------------------------------------------------------------- crypto / TLS

  #onCrypto(now: number, offset: number, data: Uint8Array, spaceId: SpaceId, wireType: number): void {
    const space = this.#spaces[spaceId];
    // RFC 9000 §7.5: buffering beyond our limit → CRYPTO_BUFFER_EXCEEDED.
    if (offset + data.length > space.cryptoRecv.readOffset + MAX_CRYPTO_BUFFER) {
      throw new TransportError(TransportErrorCode.CRYPTO_BUFFER_EXCEEDED, 'too much CRYPTO data ahead of the read offset', wireType);
    }
    space.cryptoRecv.insert(offset, data);
    // RFC 9000 §7.5: a fragmented flight is buffered only up to a budget (Initial CRYPTO is unauthenticated).
    if (space.cryptoRecv.fragmentCount > MAX_CRYPTO_FRAGMENTS || this.#recvBudget.exceeded) {
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
      this.#events.push({ type: 'connected' });
      this.#issueCids();
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
      if (p.statelessResetToken) this.#useRemoteCid({ ...this.#remoteCid, resetToken: p.statelessResetToken });
      this.#remoteCids.set(0, this.#remoteCid);
    }
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
    this.#peerMaxData = p.initialMaxData;
    this.#peerMaxStreams.bi = p.initialMaxStreamsBidi;
    this.#peerMaxStreams.uni = p.initialMaxStreamsUni;
    this.#peerAckDelayExponent = p.ackDelayExponent;
    this.#peerMaxAckDelay = p.maxAckDelay * 1000;
    const ours = this.#settings.maxIdleTimeout;
    // RFC 9000 §10.1: the effective idle timeout is the minimum of the non-zero advertised values.
    const idle = ours === 0 ? p.maxIdleTimeout : p.maxIdleTimeout === 0 ? ours : Math.min(ours, p.maxIdleTimeout);
    this.#idleTimeout = idle * 1000;
    for (const s of this.#streams.values()) {
      if (s.send && streamInitiator(s.id) === this.side) s.send.maxData = streamDir(s.id) === 'bi' ? p.initialMaxStreamDataBidiRemote : p.initialMaxStreamDataUni;
    }
    if (p.initialMaxStreamsBidi > 0) this.#events.push({ type: 'streams-available', dir: 'bi' });
    if (p.initialMaxStreamsUni > 0) this.#events.push({ type: 'streams-available', dir: 'uni' });
  }

  #confirmHandshake(now: number): void {
    if (this.#handshakeConfirmed) return;
    this.#handshakeConfirmed = true;
    this.#peerCompletedAddressValidation = true;
    // RFC 9001 §4.9.2: discard Handshake keys once the handshake is confirmed.
    this.#discardSpace(SPACE_INITIAL);
    this.#discardSpace(SPACE_HANDSHAKE);
    if (this.#settings.mtuDiscovery) this.#mtuProbeAt = now;
  }

  /** RFC 9002 §6.4: dropping a space removes its packets from flight without loss signals. */
  #discardSpace(id: SpaceId): void {
    const space = this.#spaces[id];
    if (space.discarded) return;
    for (const p of space.sent.values()) this.#leaveFlight(p);
    space.sent.clear();
    space.ackElicitingInFlight = 0;
    space.lossTime = 0;
    space.keys = undefined;
    space.discarded = true;
    space.ackPending = false;
    space.ackElicitingSinceAck = 0;
    space.ackDeadline = Infinity;
    space.probes = 0;
    this.#ptoCount = 0;
    // The server keeps routing the client's original DCID until the connection ends: a copy of
    // the first flight that arrives late over a slower path (a relay) must find this connection
    // and be dropped, not start a second one (iroh-wire §3.5).
  }

  // ---------------------------------------------------------------- ACK processing (RFC 9002 §A.7)

  #onAck(now: number, frame: Extract<Frame, { type: 'ack' }>, spaceId: SpaceId, wireType: number): void {
    const space = this.#spaces[spaceId];
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
    if (largest.pn === frame.largest && ackElicitingAcked && largest.epoch === this.#pathEpoch) {
      const ackDelay = spaceId === SPACE_APP ? frame.delay * 2 ** this.#peerAckDelayExponent : 0;
      this.#rtt.update(now - largest.time, ackDelay, this.#handshakeConfirmed, this.#peerMaxAckDelay);
    }
    for (const p of newlyAcked) {
      space.sent.delete(p.pn);
      if (p.ackEliciting) space.ackElicitingInFlight--;
      if (p.inFlight && p.epoch === this.#pathEpoch) {
        this.#bytesInFlight -= p.size;
        if (!p.mtuProbe) this.#cc.onAck(now, p.time, p.size, this.#rtt, this.#isAppLimited());
      }
      this.#onPacketAcked(p, spaceId);
    }
    // RFC 9001 §4.1.2: a client's handshake is also confirmed by an ACK of a 1-RTT packet.
    if (spaceId === SPACE_APP && this.side === 'client' && this.#state === 'established') this.#confirmHandshake(now);
    this.#detectLoss(now, spaceId);
    // RFC 9002 §6.2.1: reset the PTO backoff on an acknowledgment (clients: once the server validated them).
    if (this.#peerCompletedAddressValidation) this.#ptoCount = 0;
  }

  /** A sent packet is no longer in flight (it counts only on the path it was sent on). */
  #leaveFlight(p: SentPacket): void {
    if (p.inFlight && p.epoch === this.#pathEpoch) this.#bytesInFlight -= p.size;
  }

  #isAppLimited(): boolean {
    return this.#bytesInFlight < this.#cc.window / 2 && !this.#hasStreamData();
  }

  #onPacketAcked(p: SentPacket, spaceId: SpaceId): void {
    const space = this.#spaces[spaceId];
    if (spaceId === SPACE_APP && p.pn >= this.#firstPnInPhase) {
      this.#phaseAcked = true;
      if (this.#keyUpdateWanted) this.#tryKeyUpdate();
    }
    if (this.#mtuProbe && p.mtuProbe && p.pn === this.#mtuProbe.pn) {
      this.#path.mtu = this.#mtuProbe.size;
      this.#cc.onMtuChange(this.#path.mtu);
      this.#mtuProbe = undefined;
    }
    for (const f of p.frames) {
      switch (f.k) {
        case 'stream': {
          const send = this.#streams.get(f.id)?.send;
          if (send === undefined) break;
          send.buffer.onAck(f.offset, f.length);
          if (f.fin) send.finAcked = true;
          if (send.finAcked && send.buffer.allAcked && send.state !== 'reset-sent' && send.state !== 'data-recvd') {
            send.state = 'data-recvd';
            this.#events.push({ type: 'stream-finished', id: f.id });
            this.#maybeFreeStream(f.id);
          }
          // Wake a blocked writer once a quarter of the buffer is free, not for every acknowledged
          // packet (each wake-up is a promise round trip for a few hundred bytes).
          if (send.writeBlocked && send.capacity(this.#settings.streamSendBuffer) >= this.#settings.streamSendBuffer / 4) {
            send.writeBlocked = false;
            this.#events.push({ type: 'stream-writable', id: f.id });
          }
          break;
        }
        case 'crypto':
          space.cryptoSend.onAck(f.offset, f.length);
          break;
        case 'ack':
          // The peer has our ACK up to `largest`: older ranges need not be repeated (RFC 9000 §13.2.4).
          if (f.largest > 0) {
            const floor = Math.max(0, f.largest - 2 * MAX_ACK_RANGES);
            space.received.removeBelow(floor);
            space.duplicateFloor = Math.max(space.duplicateFloor, floor);
          }
          break;
        case 'reset_stream': {
          const send = this.#streams.get(f.id)?.send;
          if (send) {
            send.state = 'reset-recvd';
            this.#maybeFreeStream(f.id);
          }
          break;
        }
        default:
          break;
      }
    }
  }

  /** RFC 9002 §6.1: packet and time thresholds. */
  #detectLoss(now: number, spaceId: SpaceId): void {
    const space = this.#spaces[spaceId];
    space.lossTime = 0;
    if (space.largestAcked < 0) return;
    const lossDelay = this.#rtt.lossDelay();
    const lost: SentPacket[] = [];
    for (const p of space.sent.values()) {
      if (p.pn > space.largestAcked) break;
      // One expression for both the test and the timer, so a timer firing at exactly
      // p.time + lossDelay always declares the loss (no floating-point livelock).
      const lossAt = p.time + lossDelay;
      if (lossAt <= now || space.largestAcked >= p.pn + PACKET_THRESHOLD) {
        lost.push(p);
      } else if (space.lossTime === 0 || lossAt < space.lossTime) {
        space.lossTime = lossAt;
      }
    }
    if (lost.length === 0) return;
    let largestLostTime = 0;
    let ccLoss = false;
    for (const p of lost) {
      space.sent.delete(p.pn);
      if (p.ackEliciting) space.ackElicitingInFlight--;
      this.#leaveFlight(p);
      this.#onPacketLost(p, spaceId, true);
      if (p.inFlight && !p.mtuProbe && p.epoch === this.#pathEpoch) {
        ccLoss = true;
        largestLostTime = Math.max(largestLostTime, p.time);
      }
    }
    if (ccLoss) {
      this.#congestionEvents++;
      this.#cc.onCongestionEvent(now, largestLostTime);
      // RFC 9002 §7.6: persistent congestion when the lost packets span the persistent-congestion duration.
      const first = lost.find((p) => p.ackEliciting && !p.mtuProbe && p.epoch === this.#pathEpoch);
      const lastLost = [...lost].reverse().find((p) => p.ackEliciting && !p.mtuProbe && p.epoch === this.#pathEpoch);
      if (this.#rtt.hasSample && first && lastLost && lastLost.time - first.time > 3 * this.#rtt.pto(this.#peerMaxAckDelay) && lost.length >= 2) {
        this.#cc.onPersistentCongestion();
      }
    }
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
        this.#mtuProbeAt = this.#now + Math.max(this.#rtt.pto(this.#peerMaxAckDelay), 100_000);
      }
    }
    const space = this.#spaces[spaceId];
    for (const f of p.frames) {
      switch (f.k) {
        case 'stream': {
          const send = this.#streams.get(f.id)?.send;
          if (send === undefined || send.resetCode !== undefined) break;
          send.buffer.onLost(f.offset, f.length);
          if (f.fin && !send.finAcked) send.finSent = false;
          this.#queueStream(f.id);
          break;
        }
        case 'crypto':
          space.cryptoSend.onLost(f.offset, f.length);
          break;
        case 'max_data':
          this.#maxDataPending = true;
          break;
        case 'max_stream_data': {
          const recv = this.#streams.get(f.id)?.recv;
          if (recv && !recv.finished && recv.finalSize === undefined && recv.stopSendingCode === undefined) {
            recv.maxDataPending = true;
            this.#streamControlDirty = true;
          }
          break;
        }
        case 'max_streams':
          this.#maxStreamsPending[f.dir] = true;
          break;
        case 'data_blocked':
          if (this.#dataBlockedAt === undefined) this.#dataBlockedAt = this.#peerMaxData;
          break;
        case 'reset_stream': {
          const send = this.#streams.get(f.id)?.send;
          if (send && send.state === 'reset-sent') {
            send.resetPending = true;
            this.#streamControlDirty = true;
          }
          break;
        }
        case 'stop_sending': {
          const recv = this.#streams.get(f.id)?.recv;
          if (recv && recv.stopSendingCode !== undefined && recv.resetCode === undefined) {
            recv.stopSendingPending = true;
            this.#streamControlDirty = true;
          }
          break;
        }
        case 'new_cid': {
          const c = [...this.#localCids.values()].find((x) => x.seq === f.seq);
          if (c) {
            c.pending = true;
            this.#cidFramesPending = true;
          }
          break;
        }
        case 'retire_cid':
          this.#pendingRetires.push(f.seq);
          break;
        case 'handshake_done':
          this.#handshakeDonePending = true;
          break;
        default:
          break;
      }
    }
  }

  // ---------------------------------------------------------------- streams (receive side)

  /** RFC 9000 §19.8 etc.: a frame for a stream direction that cannot exist → STREAM_STATE_ERROR. */
  #checkStreamFrame(id: number, need: 'send' | 'recv', wireType: number): void {
    const local = streamInitiator(id) === this.side;
    const uni = streamDir(id) === 'uni';
    // "recv" frames (STREAM, RESET_STREAM, STREAM_DATA_BLOCKED) need a stream we receive on;
    // "send" frames (MAX_STREAM_DATA, STOP_SENDING) one we send on.
    if (uni && ((need === 'recv' && local) || (need === 'send' && !local))) {
      throw new TransportError(TransportErrorCode.STREAM_STATE_ERROR, `frame for the wrong direction of uni stream ${id}`, wireType);
    }
  }

  #getOrOpenStream(id: number, wireType: number): Stream | undefined {
    const existing = this.#streams.get(id);
    if (existing) return existing;
    const dir = streamDir(id);
    const index = streamIndex(id);
    if (streamInitiator(id) === this.side) {
      // RFC 9000 §19.8: a frame for a local stream not yet opened → STREAM_STATE_ERROR; closed ones are ignored.
      if (index >= this.#nextLocalIndex[dir]) throw new TransportError(TransportErrorCode.STREAM_STATE_ERROR, `frame for unopened local stream ${id}`, wireType);
      return undefined;
    }
    // RFC 9000 §4.6: beyond our MAX_STREAMS → STREAM_LIMIT_ERROR.
    if (index >= this.#localMaxStreams[dir]) throw new TransportError(TransportErrorCode.STREAM_LIMIT_ERROR, `peer opened stream ${id} beyond the limit`, wireType);
    if (index < this.#remoteOpened[dir]) return undefined; // already closed and forgotten
    // RFC 9000 §3.2: opening a stream opens every lower one of the same type.
    for (let i = this.#remoteOpened[dir]; i <= index; i++) {
      const sid = streamId(i, streamInitiator(id), dir);
      this.#createStream(sid);
      this.#events.push({ type: 'stream-opened', id: sid });
    }
    this.#remoteOpened[dir] = index + 1;
    return this.#streams.get(id);
  }

  #createStream(id: number): void {
    const local = streamInitiator(id) === this.side;
    const dir = streamDir(id);
    const p = this.#peerParams;
    const s = this.#settings;
    const hasSend = dir === 'bi' || local;
    const hasRecv = dir === 'bi' || !local;
    const sendCredit = p === undefined ? 0 : dir === 'uni' ? p.initialMaxStreamDataUni : local ? p.initialMaxStreamDataBidiRemote : p.initialMaxStreamDataBidiLocal;
    const stream = new Stream(id, hasSend ? new StreamSend(sendCredit) : undefined, hasRecv ? new StreamRecv(s.streamReceiveWindow, this.#recvBudget) : undefined);
    this.#streams.set(id, stream);
  }

  #onStreamFrame(frame: Extract<Frame, { type: 'stream' }>, wireType: number): void {
    this.#checkStreamFrame(frame.id, 'recv', wireType);
    const stream = this.#getOrOpenStream(frame.id, wireType);
    const recv = stream?.recv;
    if (recv === undefined) return;
    const grown = recv.onData(frame.offset, frame.data, frame.fin, wireType);
    this.#recvTotal += grown;
    // RFC 9000 §4.1: more than MAX_DATA in total → FLOW_CONTROL_ERROR.
    if (this.#recvTotal > this.#localMaxData) throw new TransportError(TransportErrorCode.FLOW_CONTROL_ERROR, 'connection data beyond MAX_DATA', wireType);
    if (recv.stopSendingCode !== undefined) {
      // Data after STOP_SENDING is discarded, but counted: its credit goes straight back (RFC 9000 §4.5).
      this.#creditStopped(frame.id, recv);
      return;
    }
    if (!recv.readableNotified && this.isReadable(frame.id)) {
      recv.readableNotified = true;
      this.#events.push({ type: 'stream-readable', id: frame.id });
    }
  }

  #onResetStream(id: number, code: number, finalSize: number, wireType: number): void {
    this.#checkStreamFrame(id, 'recv', wireType);
    const recv = this.#getOrOpenStream(id, wireType)?.recv;
    if (recv === undefined) return;
    if (recv.resetCode !== undefined) {
      // RFC 9000 §4.5: a repeated RESET_STREAM may not change the final size.
      if (finalSize !== recv.finalSize) throw new TransportError(TransportErrorCode.FINAL_SIZE_ERROR, 'RESET_STREAM changes the final size of a reset stream', wireType);
      return;
    }
    // RFC 9000 §4.5: the final size may not change or fall below data received.
    if ((recv.finalSize !== undefined && recv.finalSize !== finalSize) || finalSize < recv.buffer.highest) {
      throw new TransportError(TransportErrorCode.FINAL_SIZE_ERROR, 'RESET_STREAM final size conflicts with received data', wireType);
    }
    if (finalSize > recv.maxData) throw new TransportError(TransportErrorCode.FLOW_CONTROL_ERROR, 'RESET_STREAM final size beyond MAX_STREAM_DATA', wireType);
    this.#recvTotal += finalSize - recv.buffer.highest;
    if (this.#recvTotal > this.#localMaxData) throw new TransportError(TransportErrorCode.FLOW_CONTROL_ERROR, 'connection data beyond MAX_DATA', wireType);
    // The whole final size counts as consumed (RFC 9000 §4.5).
    this.#credit(recv, finalSize);
    recv.buffer.clear();
    recv.finalSize = finalSize;
    recv.resetCode = code;
    recv.stopSendingPending = false;
    if (recv.state === 'reset-read' || recv.stopSendingCode !== undefined) {
      recv.state = 'reset-read';
      this.#maybeFreeStream(id);
    } else {
      recv.state = 'reset-recvd';
      this.#events.push({ type: 'stream-readable', id });
    }
    this.#maybeUpdateConnectionWindow();
  }

  #onStopSending(id: number, code: number, wireType: number): void {
    this.#checkStreamFrame(id, 'send', wireType);
    const send = this.#getOrOpenStream(id, wireType)?.send;
    if (send === undefined) return;
    if (send.stopCode === undefined) {
      send.stopCode = code;
      this.#events.push({ type: 'stream-stopped', id, code });
    }
    // RFC 9000 §3.5: answer STOP_SENDING with RESET_STREAM.
    if (send.resetCode === undefined && send.state !== 'data-recvd') this.resetStream(id, code);
  }

  #onMaxStreams(dir: Dir, max: number): void {
    if (max > this.#peerMaxStreams[dir]) {
      this.#peerMaxStreams[dir] = max;
      this.#events.push({ type: 'streams-available', dir });
    }
  }

  #onStreamConsumed(id: number, recv: StreamRecv): void {
    // Stream window: top up once half of it has been read; grow it when it was used up in under 2 RTT.
    const now = this.#now;
    if (recv.finalSize === undefined && recv.maxData - recv.buffer.readOffset < recv.window / 2) {
      if (now - recv.lastWindowUpdate < 2 * this.#rtt.smoothed && recv.window < this.#settings.maxStreamReceiveWindow) {
        recv.window = Math.min(recv.window * 2, this.#settings.maxStreamReceiveWindow);
      }
      recv.lastWindowUpdate = now;
      recv.maxData = recv.buffer.readOffset + recv.window;
      recv.maxDataPending = true;
      this.#streamControlDirty = true;
    }
    this.#maybeUpdateConnectionWindow();
    void id;
  }

  #maybeUpdateConnectionWindow(): void {
    const now = this.#now;
    if (this.#localMaxData - this.#readTotal < this.#localDataWindow / 2) {
      if (now - this.#lastDataWindowUpdate < 2 * this.#rtt.smoothed && this.#localDataWindow < this.#settings.maxReceiveWindow) {
        this.#localDataWindow = Math.min(this.#localDataWindow * 2, this.#settings.maxReceiveWindow);
        this.#setRecvMemoryLimit();
      }
      this.#lastDataWindowUpdate = now;
      this.#localMaxData = this.#readTotal + this.#localDataWindow;
      this.#maxDataPending = true;
    }
  }

  /**
   * The connection-level receive-memory budget: flow control bounds stored stream bytes by the
   * connection window; half as much again covers chunk overhead, plus CRYPTO and DATAGRAMs.
   */
  #setRecvMemoryLimit(): void {
    this.#recvBudget.maxMemory = this.#localDataWindow * 1.5 + RECV_MEMORY_SLACK;
  }

  /** Forget a stream once both sides are finished; credit the peer a new one (RFC 9000 §4.6). */
  #maybeFreeStream(id: number): void {
    const stream = this.#streams.get(id);
    if (stream === undefined || !stream.closed) return;
    this.#streams.delete(id);
    stream.recv?.buffer.release();
    if (streamInitiator(id) !== this.side) {
      const dir = streamDir(id);
      this.#remoteClosedCount[dir]++;
      this.#localMaxStreams[dir] = this.#remoteClosedCount[dir] + (dir === 'bi' ? this.#settings.maxConcurrentBidiStreams : this.#settings.maxConcurrentUniStreams);
      this.#maxStreamsPending[dir] = true;
    }
  }

  #sendSide(id: number): StreamSend {
    const send = this.#streams.get(id)?.send;
    if (send === undefined) throw new Error(`Stream ${id} cannot be written (unknown or receive-only)`);
    return send;
  }

  #queueStream(id: number): void {
    const stream = this.#streams.get(id);
    if (stream === undefined || stream.queued) return;
    stream.queued = true;
    this.#sendQueue.push(id);
  }

  #wakeWriters(): void {
    for (const s of this.#streams.values()) {
      if (s.send && s.send.buffer.hasSendable(s.send.maxData)) this.#queueStream(s.id);
    }
  }

  #hasStreamData(): boolean {
    return this.#sendQueue.length > 0;
  }

  // ---------------------------------------------------------------- connection IDs (RFC 9000 §5.1)

  #issueCid(length: number, pending: boolean): LocalCid {
    const cid = this.#provider.randomBytes(length);
    const entry: LocalCid = { seq: this.#nextLocalSeq++, cid, resetToken: this.#host.resetToken(cid), pending };
    if (pending) this.#cidFramesPending = true;
    this.#localCids.set(entry.seq, entry);
    this.#host.addCid(cid, this);
    return entry;
  }

  #issueCids(): void {
    const limit = Math.min(this.#peerParams?.activeConnectionIdLimit ?? 2, ACTIVE_CONNECTION_ID_LIMIT + 4);
    while (this.#localCids.size < limit) this.#issueCid(this.#localCidLength(), true);
  }

  #onNewConnectionId(f: Extract<Frame, { type: 'new_connection_id' }>, wireType: number): void {
    const known = this.#remoteCids.get(f.seq);
    if (known) {
      // RFC 9000 §19.15: the same sequence number with different contents → PROTOCOL_VIOLATION.
      if (!equalBytes(known.cid, f.cid)) throw new TransportError(TransportErrorCode.PROTOCOL_VIOLATION, 'NEW_CONNECTION_ID reuses a sequence number', wireType);
      return;
    }
    if (f.seq < this.#remoteRetirePriorTo) {
      // Already retired by an earlier retire_prior_to: retire it right away (RFC 9000 §19.15).
      if (!this.#queueRetire(f.seq)) throw this.#retireOverflow(wireType);
      return;
    }
    this.#remoteCids.set(f.seq, { seq: f.seq, cid: f.cid, resetToken: f.resetToken });
    if (f.retirePriorTo > this.#remoteRetirePriorTo) {
      this.#remoteRetirePriorTo = f.retirePriorTo;
      for (const seq of [...this.#remoteCids.keys()]) {
        if (seq < f.retirePriorTo) {
          this.#remoteCids.delete(seq);
          if (!this.#queueRetire(seq)) throw this.#retireOverflow(wireType);
        }
      }
      if (this.#remoteCid.seq < f.retirePriorTo) {
        const next = [...this.#remoteCids.values()].sort((a, b) => a.seq - b.seq)[0];
        if (next) this.#useRemoteCid(next);
      }
    }
    // RFC 9000 §5.1.1: more than our active_connection_id_limit → CONNECTION_ID_LIMIT_ERROR.
    if (this.#remoteCids.size > ACTIVE_CONNECTION_ID_LIMIT) throw new TransportError(TransportErrorCode.CONNECTION_ID_LIMIT_ERROR, 'too many connection IDs', wireType);
  }

  /** Queue a RETIRE_CONNECTION_ID; false (nothing queued) when too many are pending already. Never throws: timers call it. */
  #queueRetire(seq: number): boolean {
    if (this.#pendingRetires.length >= MAX_PENDING_RETIRES) return false;
    this.#pendingRetires.push(seq);
    return true;
  }

  /** A peer whose NEW_CONNECTION_IDs retire faster than we can say so (CVE-2024-22189). */
  #retireOverflow(wireType: number): TransportError {
    return new TransportError(TransportErrorCode.CONNECTION_ID_LIMIT_ERROR, 'too many connection IDs to retire', wireType);
  }

  #onRetireConnectionId(seq: number, wireType: number): void {
    // RFC 9000 §19.16: retiring a sequence number never sent → PROTOCOL_VIOLATION.
    if (seq >= this.#nextLocalSeq) throw new TransportError(TransportErrorCode.PROTOCOL_VIOLATION, 'RETIRE_CONNECTION_ID for an unissued id', wireType);
    const c = this.#localCids.get(seq);
    if (c === undefined) return;
    // RFC 9000 §19.16: it must not retire the ID the packet carrying it was sent to.
    if (equalBytes(c.cid, this.#packetDcid)) throw new TransportError(TransportErrorCode.PROTOCOL_VIOLATION, 'RETIRE_CONNECTION_ID of the connection ID in use', wireType);
    this.#localCids.delete(seq);
    // Packets still in flight with it (on a slower path, after a migration) should reach us,
    // not draw a stateless reset: it stays routed for three PTOs.
    if (this.#retiredLocal.length >= MAX_RETIRED_ROUTED) this.#host.removeCid(this.#retiredLocal.shift()!.cid);
    this.#retiredLocal.push({ cid: c.cid, until: this.#now + 3 * this.#rtt.pto(this.#peerMaxAckDelay) });
    if (this.#state === 'established') this.#issueCids();
  }

  /** The destination connection ID of the packet being processed. */
  #packetDcid: Uint8Array = new Uint8Array(0);
  /** Our connection IDs the peer retired, still routed here until `until`. */
  readonly #retiredLocal: { cid: Uint8Array; until: number }[] = [];

  /** Switch the connection ID we send with, and tell the endpoint its reset token. */
  #useRemoteCid(c: RemoteCid): void {
    this.#remoteCid = c;
    this.#host.setPeerResetToken(this, c.resetToken);
  }

  #isStatelessReset(datagram: Uint8Array): boolean {
    // RFC 9000 §10.3.1: the last 16 bytes of a datagram that fails to decrypt, compared with
    // the token of the connection ID in use — never with tokens of unused IDs.
    if (datagram.length < 21) return false;
    const token = this.#remoteCid.resetToken;
    return token !== undefined && equalBytesConstantTime(token, datagram.subarray(datagram.length - 16));
  }

  /** The endpoint matched a datagram to our peer's reset token (RFC 9000 §10.3.1). */
  handleStatelessReset(now: number): void {
    if (this.#state === 'established' || this.#state === 'handshaking' || this.#state === 'closing') this.#onStatelessReset(now);
  }

  #onStatelessReset(now: number): void {
    this.#closeError = new ConnectionError({ code: 'ERR_QUIC_STATELESS_RESET', kind: 'stateless-reset', remote: true, reason: '' });
    this.#state = 'draining';
    this.#closeDeadline = now + 3 * this.#rtt.pto(this.#peerMaxAckDelay);
    this.#emitClosed();
  }

  // ---------------------------------------------------------------- paths (RFC 9000 §8, §9)

  #newPath(addr: PathAddr, validated: boolean, peerInitiated: boolean): PathState {
    return { addr, validated, mtu: MIN_DATAGRAM, challenge: undefined, challengeSentAt: 0, challengeDeadline: 0, challengePending: false, challengeSends: 0, challengeResendAt: 0, responses: [], bytesReceived: 0, bytesSent: 0, peerInitiated };
  }

  #otherPath(addr: PathAddr, create: boolean, peerInitiated: boolean): PathState {
    let p = this.#otherPaths.get(addr.key);
    if (p === undefined) {
      p = this.#newPath(addr, false, peerInitiated);
      if (create || this.#otherPaths.size < MAX_OTHER_PATHS) this.#otherPaths.set(addr.key, p);
    }
    return p;
  }

  /** Bytes we may still send on `p` (RFC 9000 §8, §9.3: three times what it sent until validated). */
  #pathBudget(p: PathState): number {
    return p.validated || !p.peerInitiated ? Infinity : 3 * p.bytesReceived - p.bytesSent;
  }

  #startChallenge(now: number, p: PathState): void {
    p.challenge = this.#provider.randomBytes(8);
    p.challengePending = true;
    p.challengeSentAt = now;
    p.challengeSends = 1;
    p.challengeResendAt = now + this.#rtt.pto(this.#peerMaxAckDelay);
    // RFC 9000 §8.2.4: give up after three PTOs (at least).
    p.challengeDeadline = now + Math.max(3 * this.#rtt.pto(this.#peerMaxAckDelay), 6 * this.#settings.initialRtt);
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
  #onPathActivity(now: number, addr: PathAddr, ackEliciting: boolean): void {
    void ackEliciting;
    if (addr.key === this.#path.addr.key || this.#lastPacketProbingOnly) return;
    if (this.side === 'client' || this.#state !== 'established' || !this.#handshakeConfirmed) return;
    const p = this.#otherPath(addr, true, true);
    this.#otherPaths.delete(addr.key);
    this.#otherPaths.set(this.#path.addr.key, this.#path);
    this.#switchPath(now, p, !p.validated, 'peer-migrated');
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
    if (![...this.#remoteCids.values()].some((c) => c.seq !== this.#remoteCid.seq)) {
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

  #upgradeRetryDelay(attempts: number): number {
    return Math.min(UPGRADE_RETRY_BASE * 2 ** Math.max(0, attempts - 1), UPGRADE_RETRY_MAX);
  }

  /** Client path management, run from the timer: probe candidates while relayed, keep the direct path live. */
  #runPathTimers(now: number): void {
    if (!this.#managePaths || this.#state !== 'established' || !this.#handshakeConfirmed) return;
    if (this.#path.addr.relayed) {
      for (const c of this.#candidates.values()) {
        if (c.probing || now < c.nextAt) continue;
        if (c.advertised && !c.validated && !this.#takeProbe(now)) {
          // Out of budget: try again when it refills (not on every timer pass).
          c.nextAt = this.#probeBucketAt + ADVERTISED_PROBE_REFILL;
          continue;
        }
        c.probing = true;
        this.#startChallenge(now, this.#otherPath(c.addr, true, false));
      }
    } else if (this.#fallbackKey !== undefined && now >= this.#lastAckElicitingSent + PATH_LIVENESS_INTERVAL) {
      this.#pingPending = true;
    }
  }

  /**
   * Probes of advertised addresses that never answered: a bucket of MAX_ADVERTISED_PROBES,
   * refilled one per ADVERTISED_PROBE_REFILL. A peer listing addresses that are not its own
   * (a victim's) gets a few PATH_CHALLENGEs sent there, not a stream of them.
   */
  #takeProbe(now: number): boolean {
    const refilled = Math.floor((now - this.#probeBucketAt) / ADVERTISED_PROBE_REFILL);
    if (refilled > 0) {
      this.#probeBucket = Math.min(MAX_ADVERTISED_PROBES, this.#probeBucket + refilled);
      this.#probeBucketAt += refilled * ADVERTISED_PROBE_REFILL;
    }
    if (this.#probeBucket === MAX_ADVERTISED_PROBES) this.#probeBucketAt = now;
    if (this.#probeBucket <= 0) return false;
    this.#probeBucket--;
    return true;
  }

  #probeBucket = MAX_ADVERTISED_PROBES;
  #probeBucketAt = 0;

  /** The next time {@link #runPathTimers} has work, or 0. */
  #pathTimerAt(): number {
    if (!this.#managePaths || this.#state !== 'established' || !this.#handshakeConfirmed) return 0;
    if (!this.#path.addr.relayed) return this.#fallbackKey !== undefined && !this.#pingPending ? this.#lastAckElicitingSent + PATH_LIVENESS_INTERVAL : 0;
    let t = 0;
    for (const c of this.#candidates.values()) if (!c.probing && (t === 0 || c.nextAt < t)) t = Math.max(c.nextAt, 1);
    return t;
  }

  #switchPath(now: number, p: PathState, validate: boolean, reason: PathChangeReason): void {
    const old = this.#path;
    this.#path = p;
    this.#pathChanges++;
    // RFC 9000 §9.5: a new path uses a new connection ID when one is available.
    const fresh = [...this.#remoteCids.values()].filter((c) => c.seq !== this.#remoteCid.seq).sort((a, b) => a.seq - b.seq)[0];
    // If the retirement cannot be queued now (the peer retired many IDs while this path could
    // not send), the path keeps the ID in use: switching paths must not fail.
    if (fresh && this.#queueRetire(this.#remoteCid.seq)) {
      this.#remoteCids.delete(this.#remoteCid.seq);
      this.#useRemoteCid(fresh);
    }
    // RFC 9000 §9.4: reset congestion control and RTT for a new path (the RTT estimate stays
    // when only the peer's port changed).
    this.#cc = createCongestionController(this.#settings.congestion, p.mtu);
    // Packets in flight on the old path no longer count against the new one's window.
    this.#pathEpoch++;
    this.#bytesInFlight = 0;
    if (old.addr.host === undefined || old.addr.host !== p.addr.host) this.#rtt = new RttEstimator(this.#settings.initialRtt);
    this.#ptoCount = 0;
    // A new path's MTU is found again, once it is validated (probes are not sent beyond the
    // anti-amplification limit).
    if (!validate) this.#restartMtuDiscovery(now);
    if (validate) this.#startChallenge(now, p);
    this.#events.push({ type: 'path-changed', path: p.addr, reason });
  }

  // ---------------------------------------------------------------- close

  #onConnectionClose(now: number, f: Extract<Frame, { type: 'connection_close' }>): void {
    const reason = new TextDecoder().decode(f.reason);
    let code = f.app ? 'ERR_QUIC_APPLICATION_CLOSED' : 'ERR_QUIC_TRANSPORT_ERROR';
    if (!f.app && f.code === 0x100 + 120) code = 'ERR_TLS_NO_ALPN';
    else if (!f.app && f.code >= 0x100 && f.code <= 0x1ff) code = 'ERR_QUIC_PEER_CRYPTO_ERROR';
    this.#closeError = new ConnectionError(
      f.app
        ? { code, kind: 'application', remote: true, applicationCode: f.code, reason }
        : { code, kind: 'transport', remote: true, transportCode: f.code, reason },
    );
    // RFC 9000 §10.2.2: enter draining; send nothing more.
    this.#state = 'draining';
    this.#closeDeadline = now + 3 * this.#rtt.pto(this.#peerMaxAckDelay);
    this.#emitClosed();
  }

  #closeWithTransportError(now: number, err: TransportError): void {
    const tlsCode = (err as TransportError & { tlsCode?: string }).tlsCode;
    const reason = err.message.slice(0, 200);
    this.#enterClosing(
      now,
      { type: 'connection_close', app: false, code: err.transportCode, frameType: err.frameType, reason: new TextEncoder().encode(reason) },
      new ConnectionError({ code: tlsCode ?? 'ERR_QUIC_TRANSPORT_ERROR', kind: 'transport', remote: false, transportCode: err.transportCode, reason, message: err.message }),
    );
  }

  #enterClosing(now: number, frame: Extract<Frame, { type: 'connection_close' }>, error: ConnectionError): void {
    this.#closeFrame = frame;
    this.#closeError = error;
    this.#closeSendsOwed = 1;
    this.#closeTriggers = 0;
    this.#closeAnswerAt = 1;
    this.#state = 'closing';
    // RFC 9000 §10.2: the closing state lasts three PTOs.
    this.#closeDeadline = now + 3 * this.#rtt.pto(this.#peerMaxAckDelay);
    this.#emitClosed();
  }

  #emitClosedDone = false;
  #emitClosed(): void {
    if (this.#emitClosedDone || this.#closeError === undefined) return;
    this.#emitClosedDone = true;
    this.#events.push({ type: 'closed', error: this.#closeError });
  }

  #enterClosed(now: number): void {
    void now;
    this.#state = 'closed';
    this.#emitClosed();
    for (const c of this.#localCids.values()) this.#host.removeCid(c.cid);
    for (const c of this.#retiredLocal.splice(0)) this.#host.removeCid(c.cid);
    if (this.side === 'server') this.#host.removeCid(this.originalDcid);
    this.#host.setPeerResetToken(this, undefined);
  }

  // ================================================================== timers

  #now = 0;

  /** The earliest time something must happen, or undefined. */
  pollTimeout(): number | undefined {
    if (this.#state === 'closed') return undefined;
    if (this.#state === 'closing' || this.#state === 'draining') return this.#closeDeadline;
    let t = Infinity;
    const take = (x: number) => {
      if (x > 0 && x < t) t = x;
    };
    take(this.#lossTimer);
    take(this.#idleDeadline);
    if (this.#state === 'handshaking') take(this.#handshakeDeadline);
    // An ACK already owed needs no timer: it leaves with the next datagram we may send. Its
    // past deadline would wake the driver for nothing while the anti-amplification limit
    // blocks sending (a blocked endpoint arms no timer it cannot serve, RFC 9002 §6.2.2.1).
    for (const s of this.#spaces) if (!s.discarded && !s.ackPending && s.ackElicitingSinceAck > 0) take(s.ackDeadline);
    take(this.#keepAliveAt);
    if (this.#pacingAt > 0) take(this.#pacingAt);
    take(this.#keyDiscardAt);
    take(this.#mtuProbeAt);
    for (const p of [this.#path, ...this.#otherPaths.values()]) {
      if (p.challenge) {
        take(p.challengeDeadline);
        if (p.challengeSends < CHALLENGE_SENDS) take(p.challengeResendAt);
      }
    }
    if (this.#managePaths) take(this.#pathTimerAt());
    if (this.#retiredLocal.length > 0) take(this.#retiredLocal[0]!.until);
    return t === Infinity ? undefined : t;
  }

  /** Run whatever timers are due at `now` (safe to call early or spuriously). */
  handleTimeout(now: number): void {
    this.#now = now;
    if (this.#state === 'closed') return;
    if (this.#state === 'closing' || this.#state === 'draining') {
      if (now >= this.#closeDeadline) this.#enterClosed(now);
      return;
    }
    if (this.#state === 'handshaking' && now >= this.#handshakeDeadline) {
      this.#closeError = new ConnectionError({ code: 'ERR_QUIC_HANDSHAKE_TIMEOUT', kind: 'handshake-timeout', remote: false, reason: '' });
      this.#enterClosed(now);
      return;
    }
    if (this.#idleDeadline > 0 && now >= this.#idleDeadline) {
      // RFC 9000 §10.1: idle timeout closes silently.
      this.#closeError = new ConnectionError({ code: 'ERR_QUIC_TIMED_OUT', kind: 'idle-timeout', remote: false, reason: '' });
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
    if (this.#keyDiscardAt > 0 && now >= this.#keyDiscardAt) {
      // RFC 9001 §6.5: old read keys are dropped some time (3 PTO) after an update.
      this.#previousRemoteKeys = undefined;
      this.#keyDiscardAt = 0;
    }
    for (const p of [this.#path, ...this.#otherPaths.values()]) {
      if (p.challenge && now >= p.challengeDeadline) {
        p.challenge = undefined;
        p.challengePending = false;
        const c = this.#candidates.get(p.addr.key);
        if (c !== undefined && c.probing) {
          c.probing = false;
          c.attempts++;
          c.nextAt = now + this.#upgradeRetryDelay(c.attempts);
        }
        if (p === this.#path && !p.validated) {
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
      } else if (p.challenge && p.challengeSends < CHALLENGE_SENDS && now >= p.challengeResendAt) {
        // RFC 9000 §8.2.1: a lost PATH_CHALLENGE is sent again (a new datagram, same data).
        p.challengePending = true;
        p.challengeSends++;
        p.challengeResendAt = now + this.#rtt.pto(this.#peerMaxAckDelay);
      }
    }
    this.#runPathTimers(now);
    while (this.#retiredLocal.length > 0 && this.#retiredLocal[0]!.until <= now) this.#host.removeCid(this.#retiredLocal.shift()!.cid);
    if (this.#lossTimer > 0 && now >= this.#lossTimer) this.#onLossTimer(now);
    if (this.#pacingAt > 0 && now >= this.#pacingAt) this.#pacingAt = 0;
    this.#setLossTimer();
  }

  /** RFC 9002 §A.9: OnLossDetectionTimeout. */
  #onLossTimer(now: number): void {
    this.#lossTimer = 0;
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
    this.#ptoCount++;
    // A direct path that no longer answers: continue over the relay (the probes below go there).
    if (this.#managePaths && this.#ptoCount >= FALLBACK_PTO_COUNT && this.#fallbackKey !== undefined && !this.#path.addr.relayed && this.#handshakeConfirmed) this.#fallBack(now);
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
        for (const f of oldest.frames) {
          if (f.k === 'stream') {
            const send = this.#streams.get(f.id)?.send;
            if (send && send.resetCode === undefined) {
              send.buffer.onLost(f.offset, f.length);
              this.#queueStream(f.id);
            }
          }
        }
      }
    }
  }

  /** RFC 9002 §A.8: GetPtoTimeAndSpace. */
  #ptoTime(): { time: number; space: SpaceId | undefined } {
    const backoff = 2 ** Math.min(this.#ptoCount, 16);
    let duration = this.#rtt.pto(0) * backoff;
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
      this.#lossTimer = earliest;
      return;
    }
    // RFC 9002 §A.8: a server blocked by the amplification limit arms no PTO.
    if (this.side === 'server' && !this.#addressValidated && this.#amplificationBudget() <= 0) {
      this.#lossTimer = 0;
      return;
    }
    const inFlight = this.#spaces.some((s) => s.ackElicitingInFlight > 0);
    if (!inFlight && this.#peerCompletedAddressValidation) {
      this.#lossTimer = 0;
      return;
    }
    const { time } = this.#ptoTime();
    this.#lossTimer = Number.isFinite(time) ? time : 0;
  }

  #resetIdleTimer(now: number): void {
    if (this.#idleTimeout > 0) {
      // RFC 9000 §10.1: at least three PTOs, so a lossy path does not time out mid-recovery.
      this.#idleDeadline = now + Math.max(this.#idleTimeout, 3 * this.#rtt.pto(this.#peerMaxAckDelay));
    }
    if (this.#settings.keepAliveInterval > 0 && this.#state === 'established') {
      this.#keepAliveAt = now + this.#settings.keepAliveInterval * 1000;
    }
  }

  #amplificationBudget(): number {
    return this.#pathBudget(this.#path);
  }

  // ================================================================== output

  /**
   * The next datagram to send, or undefined when there is nothing (more) to send now.
   */
  pollTransmit(now: number): Transmit | undefined {
    this.#now = now;
    if (this.#state === 'closed' || this.#state === 'draining') return undefined;
    if (this.#keyDiscardPending) {
      this.#keyDiscardPending = false;
      this.#keyDiscardAt = now + 3 * this.#rtt.pto(this.#peerMaxAckDelay);
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

  #transmitPathFrames(now: number, p: PathState): Transmit | undefined {
    const app = this.#spaces[SPACE_APP];
    if (app.keys === undefined || this.#state !== 'established') {
      p.responses = [];
      p.challengePending = false;
      return undefined;
    }
    // RFC 9000 §8.2.1, §8.2.2: PATH_CHALLENGE/PATH_RESPONSE datagrams are padded to 1200
    // bytes unless the anti-amplification limit of the path does not allow that much.
    const size = Math.min(MIN_DATAGRAM, this.#pathBudget(p));
    if (size < 64) return undefined;
    const out = new Uint8Array(size);
    const draft = this.#beginPacket(out, 0, SPACE_APP, size);
    if (draft === undefined) return undefined;
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

  #transmitMtuProbe(now: number): Transmit | undefined {
    const target = Math.min(this.#settings.maxUdpPayloadSize, this.#peerParams?.maxUdpPayloadSize ?? MIN_DATAGRAM);
    if (target <= this.#path.mtu || this.#spaces[SPACE_APP].keys === undefined || this.#pathBudget(this.#path) < target) return undefined;
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
    if (this.#closeSendsOwed <= 0 || this.#closeFrame === undefined) return undefined;
    this.#closeSendsOwed--;
    const out = new Uint8Array(Math.max(this.#path.mtu, MIN_DATAGRAM));
    let pos = 0;
    let containsInitial = false;
    const drafts: PacketDraft[] = [];
    for (const id of SPACE_IDS) {
      const space = this.#spaces[id];
      if (space.keys === undefined || space.discarded) continue;
      // Before the peer surely has 1-RTT keys, close at every level we have keys for (RFC 9000 §10.2.3).
      if (id === SPACE_APP && this.#tls.isHandshaking) continue;
      let frame = this.#closeFrame;
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
      // The header-protection sample needs 4 bytes after the start of the packet number (RFC 9001 §5.4.2).
      const minPayload = 4 - draft.pnLen;
      if (draft.w.pos - draft.payloadStart < minPayload) draft.w.zeros(minPayload - (draft.w.pos - draft.payloadStart));
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
    if (pos === 0 || pos > this.#pathBudget(this.#path)) return undefined;
    this.#path.bytesSent += pos;
    return { path: this.#path.addr, data: out.subarray(0, pos) };
  }

  /** Build one datagram with whatever each space has to send (coalescing, RFC 9000 §12.2). */
  #transmit(now: number): Transmit | undefined {
    const path = this.#path;
    let limit = path.mtu;
    const budget = this.#pathBudget(path);
    if (budget < Infinity) {
      // RFC 9000 §8.1, §9.3: before validation, at most three times the bytes received. During
      // the handshake a server datagram needs room for a full padded Initial.
      if (budget < (this.#state === 'handshaking' ? MIN_DATAGRAM : 64)) return undefined;
      limit = Math.min(limit, budget);
    }
    const out = this.#datagramBuffer(Math.max(limit, MIN_DATAGRAM));
    let pos = 0;
    let containsInitial = false;
    let ackElicitingInitial = false;
    const drafts: PacketDraft[] = [];
    const ccAllows = this.#bytesInFlight < this.#cc.window;
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
      const wantAck = space.ackPending;
      const hasCrypto = space.cryptoSend.hasSendable();
      const hasApp = id === SPACE_APP && (this.#hasAppData() || this.#pingPending);
      if (!wantAck && !probe && !hasCrypto && !hasApp) continue;
      // Congestion control gates ack-eliciting packets; ACK-only packets and probes always go (RFC 9002 §7).
      let mayElicit = ccAllows || probe;
      if (id === SPACE_APP && hasApp && mayElicit && !probe) {
        // Pacing (RFC 9002 §7.7): if the pacer says later, send at most an ACK now.
        const at = this.#pacer.nextSendTime(now, limit, this.#cc.window, this.#rtt.smoothed, path.mtu);
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
      // The header-protection sample needs 4 bytes after the start of the packet number (RFC 9001 §5.4.2).
      const minPayload = 4 - draft.pnLen;
      if (draft.w.pos - draft.payloadStart < minPayload) draft.w.zeros(minPayload - (draft.w.pos - draft.payloadStart));
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
    if (appElicit) this.#pacer.onSent(total);
    this.#setLossTimer();
    // Give the unused tail of the reservation back to the slab.
    this.#slabPos -= out.length - total;
    const data = out.subarray(0, total);
    for (const alt of this.#dialPaths) this.#dialCopies.push({ path: alt, data });
    return { path: path.addr, data };
  }

  /**
   * A zeroed buffer for one outgoing datagram, carved from a larger slab: allocating a
   * typed array per packet was the single largest cost of the send path. A slab lives until
   * every datagram cut from it has been sent and dropped.
   */
  #datagramBuffer(size: number): Uint8Array {
    if (this.#slab.length - this.#slabPos < size) {
      // Start small (most connections send little) and grow to full slabs for bulk senders.
      this.#slabSize = Math.min(SLAB_SIZE, this.#slabSize * 4);
      this.#slab = new Uint8Array(Math.max(this.#slabSize, size));
      this.#slabPos = 0;
    }
    const out = this.#slab.subarray(this.#slabPos, this.#slabPos + size);
    this.#slabPos += size;
    return out;
  }

  #slab: Uint8Array = new Uint8Array(0);
  #slabPos = 0;
  #slabSize = 1024;

  #hasAppData(): boolean {
    if (this.#state !== 'established' && !(this.side === 'server' && this.#spaces[SPACE_APP].keys)) return false;
    return (
      this.#hasStreamData() || this.#datagramsOut.length > 0 || this.#handshakeDonePending || this.#connectionControlPending() || this.#hasStreamControl()
    );
  }

  #hasStreamControl(): boolean {
    if (!this.#streamControlDirty) return false;
    for (const s of this.#streams.values()) {
      if (s.send?.resetPending || s.recv?.stopSendingPending || s.recv?.maxDataPending || s.send?.blockedAt !== undefined) return true;
    }
    this.#streamControlDirty = false;
    return false;
  }

  /**
   * Set whenever a stream may owe a control frame (MAX_STREAM_DATA, RESET_STREAM,
   * STOP_SENDING, STREAM_DATA_BLOCKED), so the per-packet scan of all streams only runs then.
   */
  #streamControlDirty = false;

  /** Start a packet in `space` at `out[start]`: header written, payload begins after it. */
  #beginPacket(out: Uint8Array, start: number, spaceId: SpaceId, end: number): PacketDraft | undefined {
    const space = this.#spaces[spaceId];
    const pn = space.nextPn;
    if (pn >= MAX_PN) return undefined;
    // RFC 9000 §17.1 / Appendix A.2: enough bits for twice the range of unacknowledged packets.
    const unacked = space.largestAcked < 0 ? pn + 1 : pn - space.largestAcked;
    const pnLen = unacked < 0x80 ? 1 : unacked < 0x8000 ? 2 : unacked < 0x800000 ? 3 : 4;
    const w = new FixedWriter(out, start, end - 16);
    const dcid = this.#remoteCid.cid;
    let lengthOffset = -1;
    if (spaceId === SPACE_APP) {
      // RFC 9000 §17.3.1: 0 1 S R R K P P (spin bit 0).
      w.u8(0x40 | (this.#keyPhase << 2) | (pnLen - 1)).bytes(dcid);
    } else {
      const scid = this.#localCids.values().next().value!.cid;
      const type = spaceId === SPACE_INITIAL ? 0 : 2;
      w.u8(0xc0 | (type << 4) | (pnLen - 1)).u32(QUIC_V1).u8(dcid.length).bytes(dcid).u8(scid.length).bytes(scid);
      if (spaceId === SPACE_INITIAL) {
        const token = this.side === 'client' ? this.#retryToken : new Uint8Array(0);
        w.varint(token.length).bytes(token);
      }
      lengthOffset = w.pos;
      w.varint(0, 2);
    }
    if (w.remaining < pnLen + 20) return undefined;
    const pnOffset = w.pos;
    for (let i = pnLen - 1; i >= 0; i--) w.u8(Math.floor(pn / 2 ** (8 * i)) & 0xff);
    space.nextPn++;
    return { w, start, space: spaceId, pn, pnLen, pnOffset, lengthOffset, payloadStart: w.pos, frames: [], ackEliciting: false };
  }

  /** Seal a drafted packet in place; returns its length. */
  #finishPacket(now: number, d: PacketDraft, frames: FrameRecord[], ackEliciting: boolean, inFlight: boolean, mtuProbe: boolean): number {
    const space = this.#spaces[d.space];
    const keys = space.keys!;
    // The header-protection sample needs 4 bytes after the packet number start (RFC 9001 §5.4.2).
    const minPayload = 4 - d.pnLen;
    if (d.w.pos - d.payloadStart < minPayload) d.w.zeros(minPayload - (d.w.pos - d.payloadStart));
    const payloadLen = d.w.pos - d.payloadStart;
    if (d.lengthOffset >= 0) {
      // Length = packet number + payload + tag, as a 2-byte varint.
      const len = d.pnLen + payloadLen + 16;
      d.w.buf[d.lengthOffset] = 0x40 | (len >> 8);
      d.w.buf[d.lengthOffset + 1] = len & 0xff;
    }
    const buf = d.w.buf;
    const header = buf.subarray(d.start, d.payloadStart);
    const end = d.payloadStart + keys.local.sealInto(d.pn, header, buf.subarray(d.payloadStart, d.w.pos), buf, d.payloadStart);
    protectHeader(buf.subarray(d.start, end), d.pnOffset - d.start, d.pnLen, keys.local.header);
    const size = end - d.start;
    const record: SentPacket = { pn: d.pn, time: now, size, ackEliciting, inFlight, frames, mtuProbe, keyPhase: this.#keyPhase, epoch: this.#pathEpoch };
    space.sent.set(d.pn, record);
    if (ackEliciting) {
      space.ackElicitingInFlight++;
      space.timeOfLastAckEliciting = now;
      // RFC 9000 §10.1: restart the idle timer on the first ack-eliciting packet after receiving.
      if (this.#lastAckElicitingSent <= this.#lastActivity) this.#resetIdleTimer(now);
      this.#lastAckElicitingSent = now;
    }
    if (inFlight) this.#bytesInFlight += size;
    this.#packetsSent++;
    this.#bytesSent += size;
    if (d.space === SPACE_APP) {
      this.#packetsInPhase++;
      // RFC 9001 §6.6: update keys well before the AEAD confidentiality limit.
      if (this.#packetsInPhase >= this.#settings.keyUpdateInterval) this.initiateKeyUpdate();
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
    // ACK first (RFC 9000 §13.2: acknowledge promptly).
    if ((space.ackPending || (space.ackElicitingSinceAck > 0 && mayElicit)) && !space.received.isEmpty) {
      const ranges: AckRange[] = [];
      for (const [s, e] of space.received.descending()) {
        ranges.push({ start: s, end: e - 1 });
        if (ranges.length >= MAX_ACK_RANGES) break;
      }
      const delay = spaceId === SPACE_APP ? Math.floor(Math.max(0, now - space.largestReceivedTime) / 2 ** this.#settings.ackDelayExponent) : 0;
      let size = ackFrameSize(ranges, delay);
      while (size > w.remaining && ranges.length > 1) {
        ranges.pop();
        size = ackFrameSize(ranges, delay);
      }
      if (size <= w.remaining) {
        writeAck(w, ranges, delay);
        frames.push({ k: 'ack', largest: ranges[0]!.end });
        space.ackPending = false;
        space.ackElicitingSinceAck = 0;
        space.ackDeadline = Infinity;
      }
    }
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
    while (this.#datagramsOut.length > 0) {
      const dg = this.#datagramsOut[0]!;
      const f = { type: 'datagram' as const, data: dg };
      if (frameSize(f) > w.remaining) break;
      writeFrame(w, f);
      this.#datagramsOut.shift();
      elicits = true;
    }
    elicits = this.#fillStreams(w, frames) || elicits;
    return elicits;
  }

  /** A NEW_CONNECTION_ID frame may be owed (some local CID is `pending`). */
  #cidFramesPending = false;

  /** Whether any control frame may be owed (checked before every packet, so it allocates nothing). */
  #controlPending(): boolean {
    return this.#streamControlDirty || this.#connectionControlPending();
  }

  /** A connection-level control frame (flow control, path, connection IDs) is owed. */
  #connectionControlPending(): boolean {
    const p = this.#path;
    return (
      p.responses.length > 0 ||
      (p.challengePending && p.challenge !== undefined) ||
      this.#maxDataPending ||
      this.#maxStreamsPending.bi ||
      this.#maxStreamsPending.uni ||
      this.#streamsBlockedPending.bi !== undefined ||
      this.#streamsBlockedPending.uni !== undefined ||
      this.#dataBlockedAt !== undefined ||
      this.#cidFramesPending ||
      this.#pendingRetires.length > 0
    );
  }

  /** Flow-control, stream-control and connection-ID frames. */
  #fillControl(w: FixedWriter, frames: FrameRecord[]): boolean {
    if (!this.#controlPending()) return false;
    let any = false;
    const put = (f: Parameters<typeof writeFrame>[1], record: FrameRecord): boolean => {
      if (frameSize(f) > w.remaining) return false;
      writeFrame(w, f);
      frames.push(record);
      any = true;
      return true;
    };
    for (const p of [this.#path]) {
      while (p.responses.length > 0) {
        if (!put({ type: 'path_response', data: p.responses[0]! }, { k: 'close' })) break;
        p.responses.shift();
      }
      if (p.challengePending && p.challenge && put({ type: 'path_challenge', data: p.challenge }, { k: 'close' })) p.challengePending = false;
    }
    if (this.#maxDataPending && put({ type: 'max_data', max: this.#localMaxData }, { k: 'max_data' })) this.#maxDataPending = false;
    for (const dir of ['bi', 'uni'] as const) {
      if (this.#maxStreamsPending[dir] && put({ type: 'max_streams', bidi: dir === 'bi', max: this.#localMaxStreams[dir] }, { k: 'max_streams', dir })) {
        this.#maxStreamsPending[dir] = false;
      }
      const blocked = this.#streamsBlockedPending[dir];
      if (blocked !== undefined && put({ type: 'streams_blocked', bidi: dir === 'bi', limit: blocked }, { k: 'streams_blocked', dir })) {
        this.#streamsBlockedPending[dir] = undefined;
      }
    }
    if (this.#dataBlockedAt !== undefined && put({ type: 'data_blocked', limit: this.#dataBlockedAt }, { k: 'data_blocked' })) this.#dataBlockedAt = undefined;
    let stillPending = false;
    for (const s of this.#streamControlDirty ? this.#streams.values() : []) {
      const recv = s.recv;
      if (recv?.maxDataPending && put({ type: 'max_stream_data', id: s.id, max: recv.maxData }, { k: 'max_stream_data', id: s.id })) recv.maxDataPending = false;
      if (recv?.stopSendingPending && recv.stopSendingCode !== undefined && put({ type: 'stop_sending', id: s.id, code: recv.stopSendingCode }, { k: 'stop_sending', id: s.id })) {
        recv.stopSendingPending = false;
      }
      const send = s.send;
      if (send?.resetPending && send.resetCode !== undefined && put({ type: 'reset_stream', id: s.id, code: send.resetCode, finalSize: send.resetFinalSize }, { k: 'reset_stream', id: s.id })) {
        send.resetPending = false;
      }
      if (send?.blockedAt !== undefined && put({ type: 'stream_data_blocked', id: s.id, limit: send.blockedAt }, { k: 'stream_data_blocked', id: s.id })) send.blockedAt = undefined;
      if (recv?.maxDataPending || recv?.stopSendingPending || send?.resetPending || send?.blockedAt !== undefined) stillPending = true;
    }
    if (this.#streamControlDirty && !stillPending) this.#streamControlDirty = false;
    if (this.#cidFramesPending) {
      let left = false;
      for (const c of this.#localCids.values()) {
        if (c.pending && put({ type: 'new_connection_id', seq: c.seq, retirePriorTo: 0, cid: c.cid, resetToken: c.resetToken }, { k: 'new_cid', seq: c.seq })) c.pending = false;
        if (c.pending) left = true;
      }
      this.#cidFramesPending = left;
    }
    while (this.#pendingRetires.length > 0) {
      const seq = this.#pendingRetires[0]!;
      if (!put({ type: 'retire_connection_id', seq }, { k: 'retire_cid', seq })) break;
      this.#pendingRetires.shift();
    }
    return any;
  }

  #fillStreams(w: FixedWriter, frames: FrameRecord[]): boolean {
    let any = false;
    let rounds = this.#sendQueue.length;
    while (rounds-- > 0 && w.remaining > 8) {
      const id = this.#sendQueue.shift()!;
      const stream = this.#streams.get(id);
      if (stream === undefined || stream.send === undefined) continue;
      stream.queued = false;
      const send = stream.send;
      if (send.resetCode !== undefined) continue;
      const connCredit = this.#peerMaxData - this.#sentTotal;
      // New bytes are limited by the stream's and the connection's credit; retransmissions are not.
      const newLimit = Math.min(send.maxData, send.buffer.unsent + Math.max(0, connCredit));
      const overhead = streamFrameOverhead(id, send.buffer.end, Math.min(w.remaining, 0x3fff));
      let wrote = false;
      if (w.remaining > overhead) {
        const range = send.buffer.nextRange(w.remaining - overhead, newLimit);
        if (range !== undefined) {
          const end = range.offset + range.length;
          const fin = send.fin && end === send.buffer.end;
          writeStreamHeader(w, id, range.offset, range.length, fin);
          send.buffer.copyTo(range.offset, range.length, w.buf, w.pos);
          w.pos += range.length;
          if (!range.retransmit) this.#sentTotal += range.length;
          if (fin) send.finSent = true;
          frames.push({ k: 'stream', id, offset: range.offset, length: range.length, fin });
          wrote = true;
          any = true;
        }
      }
      if (!wrote && send.fin && !send.finSent && send.buffer.unsent === send.buffer.end && !send.buffer.hasRetransmits) {
        // A bare FIN.
        const o = streamFrameOverhead(id, send.buffer.end, 0);
        if (w.remaining >= o) {
          writeStreamHeader(w, id, send.buffer.end, 0, true);
          send.finSent = true;
          frames.push({ k: 'stream', id, offset: send.buffer.end, length: 0, fin: true });
          any = true;
          wrote = true;
        }
      }
      // Blocked by flow control? Say so, once per limit (RFC 9000 §4.1: SHOULD send *_BLOCKED).
      if (send.buffer.unsent < send.buffer.end && send.buffer.unsent >= send.maxData && send.blockedReported !== send.maxData) {
        send.blockedAt = send.maxData;
        send.blockedReported = send.maxData;
        this.#streamControlDirty = true;
      }
      if (send.buffer.unsent < send.buffer.end && connCredit <= 0 && this.#dataBlockedReported !== this.#peerMaxData) {
        this.#dataBlockedAt = this.#peerMaxData;
        this.#dataBlockedReported = this.#peerMaxData;
      }
      // A FIN waits in the queue only once everything before it has gone out; until then the
      // credit that lets the data go (MAX_DATA / MAX_STREAM_DATA) queues the stream again.
      const more = send.buffer.hasSendable(newLimit) || (send.fin && !send.finSent && send.buffer.unsent === send.buffer.end);
      if (more) this.#queueStream(id);
    }
    return any;
  }
}

interface PacketDraft {
  w: FixedWriter;
  start: number;
  space: SpaceId;
  pn: number;
  pnLen: number;
  pnOffset: number;
  lengthOffset: number;
  payloadStart: number;
  frames: FrameRecord[];
  ackEliciting: boolean;
}

/** Re-exported so the endpoint can check DCID lengths. */
export { MAX_CID_LENGTH, DecodeError };
