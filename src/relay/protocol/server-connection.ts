/**
 * The relay side of one client connection, after the WebSocket upgrade, as a sans-IO state
 * machine (`shared/docs/iroh-wire.md` §1.5–§1.8, iroh `protos/handshake.rs` `serverside`
 * and `server/client.rs`):
 *
 * 1. `start`: if the I/O layer verified the TLS header (`x-iroh-relay-client-auth-v1`) the
 *    client is authenticated at once; otherwise send a fresh 16-byte `ServerChallenge`;
 * 2. read exactly one frame, which must be `ClientAuth`, and verify its signature strictly —
 *    a bad one is answered with `ServerDeniesAuth("signature invalid")`;
 * 3. the I/O layer runs access control and calls {@link RelayServerConnection.accept} or
 *    {@link RelayServerConnection.deny};
 * 4. connected: datagram frames are handed out for forwarding, `Ping` is answered with
 *    `Pong` at once, and the relay pings after 15 s + 1–5 s (random) of client silence with a
 *    pong deadline.
 *
 * The whole establish phase has a deadline (30 s by default). Hostile input never throws
 * out of `handleFrame`; it closes the connection with a reason.
 *
 * @module
 */
import type { PublicKey } from '../../identity/keys.ts';
import type { CryptoProvider } from '../../transport/crypto/provider.ts';
import { DecodeError } from '../../util/errors.ts';
import { RelayError } from './errors.ts';
import {
  decodeClientToRelayFrame,
  encodeEndpointGone,
  encodeHealth,
  encodePingPong,
  encodeRestarting,
  encodeServerChallenge,
  encodeServerConfirmsAuth,
  encodeServerDeniesAuth,
  encodeStatus,
  FrameType,
  frameTypeName,
  readFrameType,
  StatusCode,
} from './frames.ts';
import { verifyChallengeSignature } from './handshake.ts';
import {
  CHALLENGE_LENGTH,
  MAX_PACKET_SIZE,
  PING_DATA_LENGTH,
  PING_INTERVAL_MS,
  SERVER_PING_JITTER_MAX_MS,
  SERVER_PING_JITTER_MIN_MS,
} from './limits.ts';
import { PingTracker } from './ping-tracker.ts';
import type { ProtocolVersion } from './version.ts';

/** Why a server connection ended, for metrics (stable strings). */
export type ServerCloseReason =
  | 'handshake-timeout'
  | 'handshake-protocol'
  | 'signature-invalid'
  | 'denied'
  | 'protocol'
  | 'pong-timeout'
  | 'closed';

/** What a server connection reports. */
export type RelayServerConnectionEvent =
  | { type: 'authenticated'; publicKey: PublicKey; mechanism: 'challenge' | 'keying-material' }
  | {
      type: 'datagrams';
      /** The whole received frame (type 4 or 5); forward it with `encodeForwardedFrame`. */
      frame: Uint8Array;
      typeLength: number;
      batch: boolean;
      /** Destination key bytes (a view into `frame`). */
      dst: Uint8Array;
      /** Bytes of datagram contents in the frame. */
      contentLength: number;
    }
  | { type: 'pong'; rttMs: number }
  | { type: 'closed'; reason: ServerCloseReason; error: RelayError };

export type RelayServerConnectionState = 'new' | 'challenged' | 'authenticated' | 'connected' | 'closed';

export interface RelayServerConnectionOptions {
  version: ProtocolVersion;
  crypto: CryptoProvider;
  /** Absolute time (ms) by which the client must be confirmed. */
  handshakeDeadline: number;
  pingIntervalMs?: number;
  pingJitterMinMs?: number;
  pingJitterMaxMs?: number;
  maxPongTimeoutMs?: number;
  minPongTimeoutMs?: number;
}

/** The v1 `Health` text for a status code (v1 has no `Status` frame, iroh-wire §1.8). */
export function healthTextOf(status: number): string {
  switch (status) {
    case StatusCode.Healthy:
      return 'The connection is healthy again.';
    case StatusCode.SameEndpointIdConnected:
      return 'Another endpoint connected with the same endpoint id; this connection receives nothing more.';
    case StatusCode.RateLimited:
      return 'This connection is being rate limited.';
    default:
      return `Relay status ${status}.`;
  }
}

export class RelayServerConnection {
  readonly #version: ProtocolVersion;
  readonly #crypto: CryptoProvider;
  readonly #handshakeDeadline: number;
  readonly #pingIntervalMs: number;
  readonly #jitterMin: number;
  readonly #jitterMax: number;
  readonly #ping: PingTracker;
  #state: RelayServerConnectionState = 'new';
  #challenge: Uint8Array | undefined;
  #publicKey: PublicKey | undefined;
  #nextPingAt: number | undefined;
  /** This ping cycle's random extra delay (drawn once per cycle, not per frame). */
  #jitter = 0;
  #transmits: Uint8Array[] = [];
  #events: RelayServerConnectionEvent[] = [];

  constructor(options: RelayServerConnectionOptions) {
    this.#version = options.version;
    this.#crypto = options.crypto;
    this.#handshakeDeadline = options.handshakeDeadline;
    this.#pingIntervalMs = options.pingIntervalMs ?? PING_INTERVAL_MS;
    this.#jitterMin = options.pingJitterMinMs ?? SERVER_PING_JITTER_MIN_MS;
    this.#jitterMax = Math.max(this.#jitterMin, options.pingJitterMaxMs ?? SERVER_PING_JITTER_MAX_MS);
    this.#ping = new PingTracker({ maxTimeoutMs: options.maxPongTimeoutMs, minTimeoutMs: options.minPongTimeoutMs });
  }

  get state(): RelayServerConnectionState {
    return this.#state;
  }

  get version(): ProtocolVersion {
    return this.#version;
  }

  /** The authenticated client key, once known. */
  get publicKey(): PublicKey | undefined {
    return this.#publicKey;
  }

  get rttMs(): number | undefined {
    return this.#ping.lastRttMs;
  }

  /**
   * Begin the handshake. `headerAuthenticated` is the key the I/O layer verified through the
   * TLS keying-material header, if it did; then no challenge is sent.
   */
  start(now: number, headerAuthenticated?: PublicKey): void {
    if (this.#state !== 'new') return;
    void now;
    if (headerAuthenticated !== undefined) {
      this.#authenticated(headerAuthenticated, 'keying-material');
      return;
    }
    this.#challenge = this.#crypto.randomBytes(CHALLENGE_LENGTH);
    this.#transmits.push(encodeServerChallenge(this.#challenge));
    this.#state = 'challenged';
  }

  #authenticated(publicKey: PublicKey, mechanism: 'challenge' | 'keying-material'): void {
    this.#publicKey = publicKey;
    this.#state = 'authenticated';
    this.#events.push({ type: 'authenticated', publicKey, mechanism });
  }

  /** Access control allowed the client: confirm and start the data phase. */
  accept(now: number): void {
    if (this.#state !== 'authenticated') return;
    this.#transmits.push(encodeServerConfirmsAuth());
    this.#state = 'connected';
    this.#scheduleNextPing(now);
  }

  /** Access control refused the client: send `ServerDeniesAuth` and close. */
  deny(reason = 'not authorized'): void {
    if (this.#state !== 'authenticated') return;
    this.#transmits.push(encodeServerDeniesAuth(reason));
    this.#close('denied', new RelayError('ERR_RELAY_DENIED', `Client denied: ${reason}`), true);
  }

  /** Feed one received WebSocket binary message. */
  handleFrame(now: number, bytes: Uint8Array): void {
    switch (this.#state) {
      case 'closed':
        return;
      case 'new':
      case 'authenticated':
        // Nothing may arrive before our challenge, nor while access control decides.
        this.#close('handshake-protocol', new RelayError('ERR_RELAY_HANDSHAKE', 'Client sent a frame before the handshake allowed it'));
        return;
      case 'challenged':
        this.#handleClientAuth(bytes);
        return;
      case 'connected':
        this.#handleData(now, bytes);
        return;
    }
  }

  #handleClientAuth(bytes: Uint8Array): void {
    let frame;
    try {
      // iroh-wire §1.5: read exactly one frame, which must be ClientAuth.
      const [type] = readFrameType(bytes);
      if (type !== FrameType.ClientAuth) {
        this.#close('handshake-protocol', new RelayError('ERR_RELAY_HANDSHAKE', `Client sent ${frameTypeName(type)} instead of ClientAuth`));
        return;
      }
      frame = decodeClientToRelayFrame(bytes);
    } catch (err) {
      const message = err instanceof DecodeError ? err.message : String(err);
      this.#close('handshake-protocol', new RelayError('ERR_RELAY_HANDSHAKE', `Client sent an invalid ClientAuth: ${message}`, { cause: err }));
      return;
    }
    if (frame.type !== FrameType.ClientAuth) return; // narrowed above
    if (!verifyChallengeSignature(frame.publicKey, frame.signature, this.#challenge!, this.#crypto)) {
      // iroh: a bad signature is answered with ServerDeniesAuth("signature invalid").
      this.#transmits.push(encodeServerDeniesAuth('signature invalid'));
      this.#close('signature-invalid', new RelayError('ERR_RELAY_DENIED', `Client ${frame.publicKey.fmtShort()} sent an invalid challenge signature`), true);
      return;
    }
    this.#challenge = undefined;
    this.#authenticated(frame.publicKey, 'challenge');
  }

  #handleData(now: number, bytes: Uint8Array): void {
    // Any frame from the client proves it is alive (iroh resets its ping interval).
    if (!this.#ping.outstanding) this.#nextPingAt = now + this.#pingIntervalMs + this.#jitter;
    const first = bytes[0];
    // Hot path: datagram frames with a one-byte type.
    if ((first === FrameType.ClientToRelayDatagram || first === FrameType.ClientToRelayDatagramBatch) && bytes.length >= 34) {
      const batch = first === FrameType.ClientToRelayDatagramBatch;
      const header = batch ? 36 : 34;
      if (bytes.length - 1 <= MAX_PACKET_SIZE && bytes.length >= header) {
        this.#events.push({ type: 'datagrams', frame: bytes, typeLength: 1, batch, dst: bytes.subarray(1, 33), contentLength: bytes.length - header });
        return;
      }
    }
    let frame;
    let typeLength;
    try {
      typeLength = readFrameType(bytes)[1];
      frame = decodeClientToRelayFrame(bytes);
    } catch (err) {
      const message = err instanceof DecodeError ? err.message : String(err);
      this.#close('protocol', new RelayError('ERR_RELAY_PROTOCOL', `Client sent an invalid frame: ${message}`, { cause: err }));
      return;
    }
    switch (frame.type) {
      case FrameType.ClientToRelayDatagram:
      case FrameType.ClientToRelayDatagramBatch:
        this.#events.push({
          type: 'datagrams',
          frame: bytes,
          typeLength,
          batch: frame.type === FrameType.ClientToRelayDatagramBatch,
          dst: frame.dst,
          contentLength: frame.contents.length,
        });
        return;
      case FrameType.Ping:
        this.#transmits.push(encodePingPong(FrameType.Pong, frame.data));
        return;
      case FrameType.Pong: {
        const rtt = this.#ping.pongReceived(now, frame.data);
        if (rtt !== undefined) {
          this.#scheduleNextPing(now);
          this.#events.push({ type: 'pong', rttMs: rtt });
        }
        return;
      }
      case FrameType.ClientAuth:
        this.#close('protocol', new RelayError('ERR_RELAY_PROTOCOL', 'Client sent ClientAuth after the handshake'));
        return;
    }
  }

  #scheduleNextPing(now: number): void {
    // iroh: PING_INTERVAL + a random 1–5 s, so pings of many clients spread out.
    const span = this.#jitterMax - this.#jitterMin;
    this.#jitter = this.#jitterMin + (span > 0 ? this.#randomUnit() * span : 0);
    this.#nextPingAt = now + this.#pingIntervalMs + this.#jitter;
  }

  #randomUnit(): number {
    const b = this.#crypto.randomBytes(4);
    return (((b[0]! << 24) | (b[1]! << 16) | (b[2]! << 8) | b[3]!) >>> 0) / 2 ** 32;
  }

  /** Advance timers: the establish deadline, the ping schedule, the pong deadline. */
  handleTimeout(now: number): void {
    switch (this.#state) {
      case 'closed':
        return;
      case 'connected':
        if (this.#ping.expired(now)) {
          this.#close('pong-timeout', new RelayError('ERR_RELAY_TIMEOUT', 'Client did not answer our ping in time'));
          return;
        }
        if (this.#nextPingAt !== undefined && now >= this.#nextPingAt) this.pingNow(now);
        return;
      default:
        // iroh ESTABLISH_TIMEOUT: the handshake must finish in time.
        if (now >= this.#handshakeDeadline) {
          this.#close('handshake-timeout', new RelayError('ERR_RELAY_TIMEOUT', 'Client did not complete the handshake in time'));
        }
    }
  }

  /**
   * Send our keep-alive Ping now rather than at its time, unless one is outstanding (the relay
   * probes a client that floods it with pings: one that does not read cannot answer). Returns
   * whether a Ping was sent; its Pong arrives as a `pong` event.
   */
  pingNow(now: number): boolean {
    if (this.#state !== 'connected' || this.#ping.outstanding) return false;
    const data = this.#crypto.randomBytes(PING_DATA_LENGTH);
    this.#ping.newPing(now, data);
    this.#transmits.push(encodePingPong(FrameType.Ping, data));
    this.#nextPingAt = undefined;
    return true;
  }

  /** Tell the client its status: `Status` on v2, `Health` text on v1 (iroh `try_send_health`). */
  sendStatus(status: number): void {
    if (this.#state !== 'connected') return;
    this.#transmits.push(this.#version >= 2 ? encodeStatus(status) : encodeHealth(healthTextOf(status)));
  }

  /** Tell the client that `endpointId`, which it sent to, has left. */
  sendEndpointGone(endpointId: PublicKey | Uint8Array): void {
    if (this.#state !== 'connected') return;
    this.#transmits.push(encodeEndpointGone(endpointId));
  }

  /** Tell the client the relay is restarting (iroh-wire §1.6, type 12). */
  sendRestarting(reconnectInMs: number, tryForMs: number): void {
    if (this.#state !== 'connected') return;
    this.#transmits.push(encodeRestarting(reconnectInMs, tryForMs));
  }

  /** The connection ended outside the protocol (socket closed, server shutting down, ...). */
  close(reason: ServerCloseReason, error: RelayError): void {
    if (this.#state !== 'closed') this.#close(reason, error);
  }

  #close(reason: ServerCloseReason, error: RelayError, keepTransmits = false): void {
    this.#state = 'closed';
    this.#challenge = undefined;
    // A denial is still sent; nothing else is after closing.
    if (!keepTransmits) this.#transmits = [];
    this.#events.push({ type: 'closed', reason, error });
  }

  pollTransmit(): Uint8Array | undefined {
    return this.#transmits.shift();
  }

  pollEvent(): RelayServerConnectionEvent | undefined {
    return this.#events.shift();
  }

  pollTimeout(): number | undefined {
    switch (this.#state) {
      case 'closed':
        return undefined;
      case 'connected':
        return this.#ping.deadline ?? this.#nextPingAt;
      default:
        return this.#handshakeDeadline;
    }
  }
}
