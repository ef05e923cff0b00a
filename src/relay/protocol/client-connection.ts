/**
 * The client side of one relay connection, after the WebSocket upgrade, as a sans-IO state
 * machine (`shared/docs/iroh-wire.md` §1.5–§1.7):
 *
 * 1. wait for the first frame: `ServerChallenge` (answer with `ClientAuth`),
 *    `ServerConfirmsAuth` or `ServerDeniesAuth`;
 * 2. after a challenge, wait for `ServerConfirmsAuth` / `ServerDeniesAuth`;
 * 3. connected: deliver datagrams, answer `Ping` at once, ping the relay right away and then
 *    after every {@link PING_INTERVAL_MS} without receiving anything; a missed Pong deadline
 *    ends the connection.
 *
 * Inputs are `handle*` (frames, time), outputs `poll*` (frames to send, events, the next
 * deadline). A hostile or broken frame never throws out of `handleFrame`: it ends the
 * connection with a {@link RelayError} in a `closed` event.
 *
 * @module
 */
import type { PublicKey, SecretKey } from '../../identity/keys.ts';
import type { CryptoProvider } from '../../transport/crypto/provider.ts';
import { DecodeError } from '../../util/errors.ts';
import { splitDatagrams } from './batch.ts';
import { RelayError } from './errors.ts';
import { decodeRelayToClientFrame, encodeDatagramFrame, encodePingPong, FrameType, frameTypeName, type Ecn } from './frames.ts';
import { signChallenge } from './handshake.ts';
import type { KeyCache } from './key-cache.ts';
import { MAX_DENY_REASON_BYTES, MAX_HEALTH_TEXT_BYTES, PING_DATA_LENGTH, PING_INTERVAL_MS } from './limits.ts';
import { PingTracker } from './ping-tracker.ts';
import type { ProtocolVersion } from './version.ts';

/** What a client connection reports. */
export type RelayClientConnectionEvent =
  | { type: 'connected' }
  | { type: 'datagrams'; src: PublicKey; ecn: Ecn; datagrams: Uint8Array[] }
  | { type: 'endpointGone'; endpointId: PublicKey }
  | { type: 'status'; status: number }
  | { type: 'health'; problem: string }
  | { type: 'restarting'; reconnectInMs: number; tryForMs: number }
  | { type: 'pong'; rttMs: number }
  | { type: 'closed'; error: RelayError };

export type RelayClientConnectionState = 'awaiting-challenge' | 'awaiting-confirmation' | 'connected' | 'closed';

export interface RelayClientConnectionOptions {
  secretKey: SecretKey;
  version: ProtocolVersion;
  crypto: CryptoProvider;
  /** Validated keys of datagram sources, shared across reconnects. */
  keys: KeyCache;
  /** Time at which the connection opened (ms, monotonic). */
  now: number;
  /** Absolute time by which the relay must confirm authentication. */
  handshakeDeadline?: number;
  pingIntervalMs?: number;
  maxPongTimeoutMs?: number;
  minPongTimeoutMs?: number;
}

/** Truncate text a peer sent before it goes into errors and events. */
function clip(text: string, max: number): string {
  return text.length > max ? `${text.slice(0, max)}…` : text;
}

export class RelayClientConnection {
  readonly #secretKey: SecretKey;
  readonly #version: ProtocolVersion;
  readonly #crypto: CryptoProvider;
  readonly #keys: KeyCache;
  readonly #pingIntervalMs: number;
  readonly #ping: PingTracker;
  readonly #handshakeDeadline: number | undefined;
  #state: RelayClientConnectionState = 'awaiting-challenge';
  #nextPingAt: number | undefined;
  #transmits: Uint8Array[] = [];
  #events: RelayClientConnectionEvent[] = [];
  #error: RelayError | undefined;

  constructor(options: RelayClientConnectionOptions) {
    this.#secretKey = options.secretKey;
    this.#version = options.version;
    this.#crypto = options.crypto;
    this.#keys = options.keys;
    this.#pingIntervalMs = options.pingIntervalMs ?? PING_INTERVAL_MS;
    this.#ping = new PingTracker({ maxTimeoutMs: options.maxPongTimeoutMs, minTimeoutMs: options.minPongTimeoutMs });
    this.#handshakeDeadline = options.handshakeDeadline;
  }

  get state(): RelayClientConnectionState {
    return this.#state;
  }

  get version(): ProtocolVersion {
    return this.#version;
  }

  /** Why the connection closed, once it has. */
  get error(): RelayError | undefined {
    return this.#error;
  }

  /** Round-trip time of the last answered ping. */
  get rttMs(): number | undefined {
    return this.#ping.lastRttMs;
  }

  /** Feed one received WebSocket binary message. */
  handleFrame(now: number, bytes: Uint8Array): void {
    if (this.#state === 'closed') return;
    try {
      this.#handleFrame(now, bytes);
    } catch (err) {
      if (err instanceof DecodeError) {
        const code = this.#state === 'connected' ? 'ERR_RELAY_PROTOCOL' : 'ERR_RELAY_HANDSHAKE';
        this.#close(new RelayError(code, `Relay sent an invalid frame: ${err.message}`, { cause: err }));
      } else {
        // Anything else is our bug; it still ends only this connection.
        this.#close(new RelayError('ERR_RELAY_PROTOCOL', `Relay frame handling failed: ${String(err)}`, { cause: err }));
      }
    }
  }

  #handleFrame(now: number, bytes: Uint8Array): void {
    const frame = decodeRelayToClientFrame(bytes, this.#version, this.#keys);
    switch (this.#state) {
      case 'awaiting-challenge':
      case 'awaiting-confirmation': {
        // iroh-wire §1.5: first frame is ServerChallenge, ServerConfirmsAuth or ServerDeniesAuth;
        // after our ClientAuth only the latter two.
        if (frame.type === FrameType.ServerChallenge && this.#state === 'awaiting-challenge') {
          this.#transmits.push(signChallenge(this.#secretKey, frame.challenge, this.#crypto));
          this.#state = 'awaiting-confirmation';
          return;
        }
        if (frame.type === FrameType.ServerConfirmsAuth) {
          this.#state = 'connected';
          this.#events.push({ type: 'connected' });
          // iroh-wire §1.7: the client pings right after connecting.
          this.#sendPing(now);
          return;
        }
        if (frame.type === FrameType.ServerDeniesAuth) {
          this.#close(new RelayError('ERR_RELAY_DENIED', `Relay denied authentication: ${clip(frame.reason, MAX_DENY_REASON_BYTES)}`));
          return;
        }
        const expected = this.#state === 'awaiting-challenge' ? 'ServerChallenge, ServerConfirmsAuth or ServerDeniesAuth' : 'ServerConfirmsAuth or ServerDeniesAuth';
        this.#close(new RelayError('ERR_RELAY_HANDSHAKE', `Relay sent ${frameTypeName(frame.type)} during the handshake, expected ${expected}`));
        return;
      }
      case 'connected':
        // Anything received proves the link is alive: postpone our next ping.
        this.#nextPingAt = this.#ping.outstanding ? this.#nextPingAt : now + this.#pingIntervalMs;
        switch (frame.type) {
          case FrameType.RelayToClientDatagram:
          case FrameType.RelayToClientDatagramBatch:
            this.#events.push({ type: 'datagrams', src: frame.src, ecn: frame.ecn, datagrams: splitDatagrams(frame.contents, frame.segmentSize) });
            return;
          case FrameType.Ping:
            // iroh-wire §1.6: the receiver must answer with a Pong carrying the same 8 bytes.
            this.#transmits.push(encodePingPong(FrameType.Pong, frame.data));
            return;
          case FrameType.Pong: {
            const rtt = this.#ping.pongReceived(now, frame.data);
            if (rtt !== undefined) {
              this.#nextPingAt = now + this.#pingIntervalMs;
              this.#events.push({ type: 'pong', rttMs: rtt });
            }
            return;
          }
          case FrameType.EndpointGone:
            this.#events.push({ type: 'endpointGone', endpointId: frame.endpointId });
            return;
          case FrameType.Status:
            this.#events.push({ type: 'status', status: frame.status });
            return;
          case FrameType.Health:
            this.#events.push({ type: 'health', problem: clip(frame.problem, MAX_HEALTH_TEXT_BYTES) });
            return;
          case FrameType.Restarting:
            this.#events.push({ type: 'restarting', reconnectInMs: frame.reconnectInMs, tryForMs: frame.tryForMs });
            return;
          default:
            this.#close(new RelayError('ERR_RELAY_PROTOCOL', `Relay sent ${frameTypeName(frame.type)} after the handshake`));
            return;
        }
    }
  }

  /** Advance timers: the handshake deadline, our ping schedule, the pong deadline. */
  handleTimeout(now: number): void {
    if (this.#state === 'closed') return;
    if (this.#state !== 'connected') {
      if (this.#handshakeDeadline !== undefined && now >= this.#handshakeDeadline) {
        this.#close(new RelayError('ERR_RELAY_TIMEOUT', 'Relay did not complete the handshake in time'));
      }
      return;
    }
    if (this.#ping.expired(now)) {
      this.#close(new RelayError('ERR_RELAY_TIMEOUT', 'Relay did not answer our ping in time'));
      return;
    }
    if (!this.#ping.outstanding && this.#nextPingAt !== undefined && now >= this.#nextPingAt) this.#sendPing(now);
  }

  #sendPing(now: number): void {
    const data = this.#crypto.randomBytes(PING_DATA_LENGTH);
    this.#ping.newPing(now, data);
    this.#transmits.push(encodePingPong(FrameType.Ping, data));
    this.#nextPingAt = now + this.#pingIntervalMs;
  }

  /**
   * Queue datagrams for `dst` as one frame: type 4 when `segmentSize` is 0, else a batch
   * (type 5). The caller groups datagrams with `planBatches`.
   *
   * @returns false if the connection is not (yet) connected; nothing is queued then
   */
  sendDatagrams(dst: PublicKey, ecn: Ecn, segmentSize: number, datagrams: readonly Uint8Array[]): boolean {
    if (this.#state !== 'connected') return false;
    const type = segmentSize === 0 ? FrameType.ClientToRelayDatagram : FrameType.ClientToRelayDatagramBatch;
    this.#transmits.push(encodeDatagramFrame(type, dst.bytes, ecn, segmentSize, datagrams.length === 1 ? datagrams[0]! : datagrams));
    return true;
  }

  /** End the connection from our side (the I/O layer closes the WebSocket). */
  close(error: RelayError): void {
    if (this.#state !== 'closed') this.#close(error);
  }

  #close(error: RelayError): void {
    this.#state = 'closed';
    this.#error = error;
    this.#transmits = [];
    this.#events.push({ type: 'closed', error });
  }

  /** The next frame to send, if any. */
  pollTransmit(): Uint8Array | undefined {
    return this.#transmits.shift();
  }

  /** The next event, if any. */
  pollEvent(): RelayClientConnectionEvent | undefined {
    return this.#events.shift();
  }

  /** When {@link handleTimeout} must next be called, or `undefined` for never. */
  pollTimeout(): number | undefined {
    switch (this.#state) {
      case 'closed':
        return undefined;
      case 'connected': {
        const deadline = this.#ping.deadline;
        if (deadline !== undefined) return deadline;
        return this.#nextPingAt;
      }
      default:
        return this.#handshakeDeadline;
    }
  }
}
