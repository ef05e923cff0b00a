/**
 * The relay client: one home-relay connection for an endpoint (`shared/docs/iroh-wire.md`
 * §1, reliability.md §5.F). It
 *
 * - connects with the HTTP/1.1 upgrade to `/relay` (http → ws, anything else → wss),
 *   optionally with a bearer token, and authenticates (challenge, or the TLS header);
 * - sends datagrams and batches to an EndpointId, grouping equal-sized datagrams into batch
 *   frames, and delivers received ones with their source, split by segment size;
 * - answers relay pings at once and runs its own keep-alive (15 s, pong deadline 3 × RTT
 *   within [0.5 s, 5 s]);
 * - reconnects after any failure with exponential backoff and jitter (10 ms … 16 s), resetting
 *   it only after a connection that stayed up;
 * - keeps every queue bounded: datagrams wait at most 3 s and 512 frames while (re)connecting;
 *   while connected, a full socket buffer drops instead of queueing; a slow `incoming()`
 *   reader loses datagrams, never memory. Every drop is counted in {@link RelayClientStats};
 * - reports typed events (`connected`, `disconnected` with the reason, `endpointGone`,
 *   `status`, `restarting`, …) and never lets an exception escape into the event loop.
 *
 * The protocol logic is the sans-IO {@link RelayClientConnection}; this class owns the
 * socket, the timers and the reconnect loop.
 *
 * @module
 */
import { PublicKey, type SecretKey } from '../../identity/keys.ts';
import { RelayUrl } from '../../identity/relay-url.ts';
import type { CryptoProvider } from '../../transport/crypto/provider.ts';
import { nobleCryptoProvider } from '../../transport/crypto/noble-provider.ts';
import { planBatches, type PlannedFrame } from '../protocol/batch.ts';
import { RelayClientConnection } from '../protocol/client-connection.ts';
import { RelayError } from '../protocol/errors.ts';
import type { Ecn } from '../protocol/frames.ts';
import { KeyCache } from '../protocol/key-cache.ts';
import {
  CLIENT_MAX_BUFFERED_BYTES,
  CLIENT_RECV_QUEUE_DEPTH,
  CLIENT_SEND_QUEUE_DEPTH,
  CLOSE_TIMEOUT_MS,
  CONNECT_TIMEOUT_MS,
  MAX_FRAME_SIZE,
  PING_INTERVAL_MS,
  PONG_TIMEOUT_MS,
  QUEUED_DATAGRAM_MAX_AGE_MS,
} from '../protocol/limits.ts';
import { OFFERED_SUBPROTOCOLS, versionOfSubprotocol, type ProtocolVersion } from '../protocol/version.ts';
import { Backoff, type BackoffOptions } from './backoff.ts';
import { TypedEmitter } from './events.ts';
import type { NodeTlsOptions } from './node-transport.ts';
import { relayWebSocketUrl, type RelaySocket, type RelayTransport } from './transport.ts';

/** Datagrams from one source, as one frame carried them. */
export interface RelayDatagrams {
  src: PublicKey;
  ecn: Ecn;
  /** Views into the received message; copy them to keep them beyond the callback. */
  datagrams: Uint8Array[];
}

/** The events of a {@link RelayClient}. */
export interface RelayClientEvents extends Record<string, unknown> {
  /** A connection attempt starts (`attempt` counts from 1 since the last success). */
  connecting: { attempt: number };
  /** Authenticated; datagrams flow. */
  connected: { version: ProtocolVersion; url: string };
  /** The connection (or attempt) ended. `reconnectInMs` is undefined when the client is closed. */
  disconnected: { error: RelayError; reconnectInMs: number | undefined; wasConnected: boolean };
  datagrams: RelayDatagrams;
  /** A peer we sent to left the relay. */
  endpointGone: { endpointId: PublicKey };
  /** `Status` (v2): 0 healthy, 1 another connection with our id took over, 2 rate limited. */
  status: { status: number };
  /** `Health` text (v1). */
  health: { problem: string };
  /** The relay is restarting; the next reconnect waits `reconnectInMs`. */
  restarting: { reconnectInMs: number; tryForMs: number };
  pong: { rttMs: number };
  /** `close()` finished. */
  closed: Record<string, never>;
}

export type RelayClientState = 'idle' | 'connecting' | 'connected' | 'backoff' | 'closed';

export interface RelayClientOptions {
  /** The relay, e.g. `http://127.0.0.1:3340/` or `https://relay.example/`. */
  url: string | URL | RelayUrl;
  secretKey: SecretKey;
  /** Bearer token for relays with access control. */
  token?: string;
  /** WebSocket implementation; default (Node's `RelayClient`) `nodeWebSocketTransport(tls)`. */
  transport?: RelayTransport;
  /** TLS options of the default transport. */
  tls?: NodeTlsOptions;
  crypto?: CryptoProvider;
  /** Shared cache of validated source keys. */
  keyCache?: KeyCache;
  /** Called synchronously for every received frame (the fast path for a QUIC endpoint). */
  onDatagrams?: (datagrams: RelayDatagrams) => void;
  /** TCP + TLS + upgrade + handshake must finish within this (iroh: 10 s). */
  connectTimeoutMs?: number;
  pingIntervalMs?: number;
  pongTimeoutMs?: number;
  minPongTimeoutMs?: number;
  backoff?: BackoffOptions;
  /** A connection must stay up this long before the backoff resets. Default: the ping interval. */
  stableAfterMs?: number;
  /** Frames queued while not connected. */
  sendQueueDepth?: number;
  /** Queued frames older than this are dropped (iroh: 3 s). */
  maxQueuedAgeMs?: number;
  /** While connected, drop instead of sending when the socket buffers more than this. */
  maxBufferedBytes?: number;
  /** Frames buffered for `incoming()` readers. */
  recvQueueDepth?: number;
  maxMessageBytes?: number;
  /** Where listener exceptions go (default: console.error). */
  onListenerError?: (err: unknown, event: string) => void;
}

/** Counters of a {@link RelayClient}. Every datagram that is not sent or delivered is counted. */
export interface RelayClientStats {
  connectAttempts: number;
  connections: number;
  disconnects: number;
  framesSent: number;
  datagramsSent: number;
  /** Datagrams dropped because the socket was full while connected. */
  dropsBufferFull: number;
  /** Datagrams dropped because the offline queue was full. */
  dropsQueueFull: number;
  /** Datagrams dropped because they waited longer than `maxQueuedAgeMs`. */
  dropsExpired: number;
  /** Datagrams dropped because the client was closed. */
  dropsClosed: number;
  framesReceived: number;
  datagramsReceived: number;
  /** Received frames dropped because `incoming()` readers fell behind. */
  dropsReceiveQueue: number;
  /**
   * Unexpected exceptions caught in a socket callback or timer (a transport, listener or
   * callback that threw); each ended the connection it concerned, which then reconnects.
   */
  internalErrors: number;
}

interface QueuedFrame {
  dst: PublicKey;
  ecn: Ecn;
  frame: PlannedFrame;
  at: number;
}

const now = (): number => performance.now();

function abortReason(signal: AbortSignal): RelayError {
  return signal.reason instanceof RelayError ? signal.reason : new RelayError('ERR_RELAY_ABORTED', 'Aborted', { cause: signal.reason });
}

/**
 * The relay client without a default transport, so it needs no `node:` module (browsers use
 * it with `standardWebSocketTransport`). `RelayClient` (`node-relay-client.ts`) is this with
 * Node's defaults: the `ws` transport and node:crypto.
 */
export class RelayClientBase {
  readonly #url: RelayUrl;
  readonly #wsUrl: URL;
  readonly #secretKey: SecretKey;
  readonly #token: string | undefined;
  readonly #transport: RelayTransport;
  readonly #crypto: CryptoProvider;
  readonly #keys: KeyCache;
  readonly #onDatagrams: ((d: RelayDatagrams) => void) | undefined;
  readonly #opts: Required<
    Pick<
      RelayClientOptions,
      'connectTimeoutMs' | 'pingIntervalMs' | 'pongTimeoutMs' | 'sendQueueDepth' | 'maxQueuedAgeMs' | 'maxBufferedBytes' | 'recvQueueDepth' | 'maxMessageBytes' | 'stableAfterMs'
    >
  > & { minPongTimeoutMs: number | undefined };
  readonly #backoff: Backoff;
  readonly #events: TypedEmitter<RelayClientEvents>;
  #state: RelayClientState = 'idle';
  #socket: RelaySocket | undefined;
  #conn: RelayClientConnection | undefined;
  #attemptAbort: AbortController | undefined;
  #timer: ReturnType<typeof setTimeout> | undefined;
  #backoffTimer: ReturnType<typeof setTimeout> | undefined;
  #connectedAt = 0;
  #restartHintMs: number | undefined;
  #queue: QueuedFrame[] = [];
  #readers = new Set<{ push: (d: RelayDatagrams) => void; end: (err?: unknown) => void }>();
  #closing: Promise<void> | undefined;
  readonly #stats: RelayClientStats = {
    connectAttempts: 0,
    connections: 0,
    disconnects: 0,
    framesSent: 0,
    datagramsSent: 0,
    dropsBufferFull: 0,
    dropsQueueFull: 0,
    dropsExpired: 0,
    dropsClosed: 0,
    framesReceived: 0,
    datagramsReceived: 0,
    dropsReceiveQueue: 0,
    internalErrors: 0,
  };

  constructor(options: RelayClientOptions & { transport: RelayTransport }) {
    this.#url = options.url instanceof RelayUrl ? options.url : RelayUrl.parse(options.url);
    this.#wsUrl = relayWebSocketUrl(this.#url.toURL());
    this.#secretKey = options.secretKey;
    if (options.token !== undefined && (typeof options.token !== 'string' || options.token === '' || /[\s]/.test(options.token))) {
      throw new TypeError('token must be a non-empty string without whitespace');
    }
    this.#token = options.token;
    this.#transport = options.transport;
    this.#crypto = options.crypto ?? nobleCryptoProvider;
    this.#keys = options.keyCache ?? new KeyCache();
    this.#onDatagrams = options.onDatagrams;
    const pingIntervalMs = options.pingIntervalMs ?? PING_INTERVAL_MS;
    this.#opts = {
      connectTimeoutMs: options.connectTimeoutMs ?? CONNECT_TIMEOUT_MS,
      pingIntervalMs,
      pongTimeoutMs: options.pongTimeoutMs ?? PONG_TIMEOUT_MS,
      minPongTimeoutMs: options.minPongTimeoutMs,
      sendQueueDepth: options.sendQueueDepth ?? CLIENT_SEND_QUEUE_DEPTH,
      maxQueuedAgeMs: options.maxQueuedAgeMs ?? QUEUED_DATAGRAM_MAX_AGE_MS,
      maxBufferedBytes: options.maxBufferedBytes ?? CLIENT_MAX_BUFFERED_BYTES,
      recvQueueDepth: options.recvQueueDepth ?? CLIENT_RECV_QUEUE_DEPTH,
      maxMessageBytes: options.maxMessageBytes ?? MAX_FRAME_SIZE,
      stableAfterMs: options.stableAfterMs ?? pingIntervalMs,
    };
    this.#backoff = new Backoff(options.backoff);
    this.#events = new TypedEmitter<RelayClientEvents>(options.onListenerError as ((err: unknown, event: keyof RelayClientEvents) => void) | undefined);
  }

  /** The relay this client uses. */
  get url(): RelayUrl {
    return this.#url;
  }

  /** Our EndpointId. */
  get endpointId(): PublicKey {
    return this.#secretKey.public();
  }

  get state(): RelayClientState {
    return this.#state;
  }

  /** The negotiated protocol version while connected. */
  get protocolVersion(): ProtocolVersion | undefined {
    return this.#state === 'connected' ? this.#conn?.version : undefined;
  }

  /** Round-trip time of the last answered keep-alive ping. */
  get rttMs(): number | undefined {
    return this.#conn?.rttMs;
  }

  /** A copy of the counters. */
  get stats(): RelayClientStats {
    return { ...this.#stats };
  }

  /** Subscribe to an event; returns the unsubscribe function. */
  on<K extends keyof RelayClientEvents>(type: K, listener: (event: RelayClientEvents[K]) => void): () => void {
    return this.#events.on(type, listener);
  }

  once<K extends keyof RelayClientEvents>(type: K, listener: (event: RelayClientEvents[K]) => void): () => void {
    return this.#events.once(type, listener);
  }

  off<K extends keyof RelayClientEvents>(type: K, listener: (event: RelayClientEvents[K]) => void): void {
    this.#events.off(type, listener);
  }

  /**
   * Start connecting (if not yet) and wait until authenticated. Failed attempts are retried
   * with backoff; the promise settles only when connected, when `signal` aborts, or when the
   * client is closed.
   */
  connect(options: { signal?: AbortSignal } = {}): Promise<void> {
    const { signal } = options;
    if (this.#state === 'closed') return Promise.reject(new RelayError('ERR_RELAY_CLOSED', 'Relay client is closed'));
    if (signal?.aborted) return Promise.reject(abortReason(signal));
    this.#start();
    if (this.#state === 'connected') return Promise.resolve();
    return new Promise<void>((resolve, reject) => {
      const cleanup = (): void => {
        offConnected();
        offClosed();
        signal?.removeEventListener('abort', onAbort);
      };
      const offConnected = this.#events.on('connected', () => {
        cleanup();
        resolve();
      });
      const offClosed = this.#events.on('closed', () => {
        cleanup();
        reject(new RelayError('ERR_RELAY_CLOSED', 'Relay client was closed'));
      });
      const onAbort = (): void => {
        cleanup();
        reject(abortReason(signal!));
      };
      signal?.addEventListener('abort', onAbort, { once: true });
    });
  }

  /**
   * Send one datagram or several to `dst`. Several are grouped into batch frames where sizes
   * allow (iroh-wire §1.6). Never blocks and never queues without bound.
   *
   * @returns `'sent'` (handed to the socket), `'queued'` (waiting for the connection) or
   *   `'dropped'` (counted in {@link stats})
   * @throws {RangeError} if a datagram is larger than a relay frame can carry
   */
  send(dst: PublicKey, data: Uint8Array | readonly Uint8Array[], ecn: Ecn = 0): 'sent' | 'queued' | 'dropped' {
    if (!(dst instanceof PublicKey)) throw new TypeError('dst must be a PublicKey (EndpointId)');
    const frames = planBatches(data instanceof Uint8Array ? [data] : data);
    if (frames.length === 0) return 'sent';
    const count = (fs: PlannedFrame[]): number => fs.reduce((n, f) => n + f.datagrams.length, 0);
    if (this.#state === 'closed') {
      this.#stats.dropsClosed += count(frames);
      return 'dropped';
    }
    if (this.#state === 'connected' && this.#conn !== undefined && this.#socket !== undefined) {
      let dropped = false;
      for (const f of frames) {
        if (this.#socket.bufferedAmount > this.#opts.maxBufferedBytes) {
          this.#stats.dropsBufferFull += f.datagrams.length;
          dropped = true;
          continue;
        }
        this.#conn.sendDatagrams(dst, ecn, f.segmentSize, f.datagrams);
        this.#stats.framesSent++;
        this.#stats.datagramsSent += f.datagrams.length;
      }
      this.#flushTransmits();
      return dropped ? 'dropped' : 'sent';
    }
    this.#start();
    const t = now();
    let dropped = false;
    for (const f of frames) {
      if (this.#queue.length >= this.#opts.sendQueueDepth) {
        this.#stats.dropsQueueFull += f.datagrams.length;
        dropped = true;
        continue;
      }
      this.#queue.push({ dst, ecn, frame: f, at: t });
    }
    return dropped ? 'dropped' : 'queued';
  }

  /**
   * Received datagrams as an async iterator. Each reader has its own bounded buffer; when it
   * falls behind, new frames are dropped (counted in `dropsReceiveQueue`). Ends when the
   * client closes or `signal` aborts.
   */
  incoming(options: { signal?: AbortSignal } = {}): AsyncIterableIterator<RelayDatagrams> {
    const { signal } = options;
    const buffer: RelayDatagrams[] = [];
    let waiting: { resolve: (r: IteratorResult<RelayDatagrams>) => void; reject: (e: unknown) => void } | undefined;
    let done = false;
    let failure: unknown;
    const depth = this.#opts.recvQueueDepth;
    const reader = {
      push: (d: RelayDatagrams): void => {
        if (waiting !== undefined) {
          const w = waiting;
          waiting = undefined;
          w.resolve({ value: d, done: false });
        } else if (buffer.length < depth) buffer.push(d);
        else this.#stats.dropsReceiveQueue++;
      },
      end: (err?: unknown): void => {
        if (done) return;
        done = true;
        failure = err;
        this.#readers.delete(reader);
        signal?.removeEventListener('abort', onAbort);
        if (waiting !== undefined) {
          const w = waiting;
          waiting = undefined;
          if (err !== undefined) w.reject(err);
          else w.resolve({ value: undefined, done: true });
        }
      },
    };
    const onAbort = (): void => reader.end(abortReason(signal!));
    if (signal?.aborted) reader.end(abortReason(signal));
    else if (this.#state === 'closed') reader.end();
    else {
      this.#readers.add(reader);
      signal?.addEventListener('abort', onAbort, { once: true });
    }
    const iterator: AsyncIterableIterator<RelayDatagrams> = {
      next: () => {
        const d = buffer.shift();
        if (d !== undefined) return Promise.resolve({ value: d, done: false });
        if (done) return failure !== undefined ? Promise.reject(failure) : Promise.resolve({ value: undefined, done: true });
        return new Promise((resolve, reject) => {
          waiting = { resolve, reject };
        });
      },
      return: () => {
        reader.end();
        buffer.length = 0;
        return Promise.resolve({ value: undefined, done: true });
      },
      [Symbol.asyncIterator]: () => iterator,
    };
    return iterator;
  }

  /**
   * Close: stop reconnecting, send a WebSocket close (1000) and wait for the socket to end
   * (at most ~2 s, or until `signal` aborts). Queued datagrams are dropped and counted.
   */
  close(options: { signal?: AbortSignal } = {}): Promise<void> {
    this.#closing ??= this.#close(options.signal);
    return this.#closing;
  }

  async #close(signal: AbortSignal | undefined): Promise<void> {
    const wasState = this.#state;
    this.#state = 'closed';
    clearTimeout(this.#backoffTimer);
    clearTimeout(this.#timer);
    this.#attemptAbort?.abort(new RelayError('ERR_RELAY_ABORTED', 'Relay client closed'));
    for (const q of this.#queue) this.#stats.dropsClosed += q.frame.datagrams.length;
    this.#queue = [];
    const socket = this.#socket;
    if (socket !== undefined) {
      await new Promise<void>((resolve) => {
        // A relay (or WebSocket implementation) that never completes the closing handshake
        // must not hold close() forever.
        const timer = setTimeout(resolve, CLOSE_TIMEOUT_MS);
        const done = (): void => {
          clearTimeout(timer);
          resolve();
        };
        const prev = socket.onClose;
        socket.onClose = (info) => {
          prev?.(info);
          done();
        };
        signal?.addEventListener('abort', done, { once: true });
        try {
          socket.close(1000, '');
        } catch {
          // A socket that cannot even close is as closed as it gets.
          this.#stats.internalErrors++;
          done();
        }
      });
    }
    this.#conn = undefined;
    this.#socket = undefined;
    if (wasState === 'connected' || wasState === 'connecting') {
      this.#events.emit('disconnected', { error: new RelayError('ERR_RELAY_CLOSED', 'Relay client closed'), reconnectInMs: undefined, wasConnected: wasState === 'connected' });
    }
    for (const r of [...this.#readers]) r.end();
    this.#events.emit('closed', {});
    this.#events.removeAll();
  }

  #start(): void {
    if (this.#state !== 'idle') return;
    this.#attempt();
  }

  #attempt(): void {
    if (this.#state === 'closed') return;
    this.#state = 'connecting';
    this.#stats.connectAttempts++;
    this.#events.emit('connecting', { attempt: this.#backoff.attempt + 1 });
    const controller = new AbortController();
    this.#attemptAbort = controller;
    const started = now();
    const timeout = setTimeout(
      () => this.#guard(() => controller.abort(new RelayError('ERR_RELAY_TIMEOUT', `Relay connection did not complete within ${this.#opts.connectTimeoutMs} ms`))),
      this.#opts.connectTimeoutMs,
    );
    let opening: Promise<RelaySocket>;
    try {
      opening = this.#transport({
        url: this.#wsUrl,
        protocols: OFFERED_SUBPROTOCOLS,
        token: this.#token,
        secretKey: this.#secretKey,
        crypto: this.#crypto,
        maxMessageBytes: this.#opts.maxMessageBytes,
        signal: controller.signal,
      });
    } catch (err) {
      // A transport that throws instead of rejecting fails this attempt like any other.
      this.#stats.internalErrors++;
      opening = Promise.reject(err instanceof Error ? err : new Error(String(err)));
    }
    opening.then(
      (socket) => {
        clearTimeout(timeout);
        this.#guard(() => this.#opened(socket, started, controller));
      },
      (err: unknown) => {
        clearTimeout(timeout);
        if (this.#attemptAbort === controller) this.#attemptAbort = undefined;
        const error = err instanceof RelayError ? err : new RelayError('ERR_RELAY_CLOSED', `Relay connection failed: ${String(err)}`, { cause: err });
        this.#guard(() => this.#ended(error, false));
      },
    );
  }

  #opened(socket: RelaySocket, started: number, controller: AbortController): void {
    if (this.#state === 'closed' || controller.signal.aborted) {
      socket.close(1000, '');
      return;
    }
    this.#attemptAbort = undefined;
    const version = versionOfSubprotocol(socket.protocol);
    if (version === undefined) {
      socket.close(1002, 'unknown subprotocol');
      this.#ended(new RelayError('ERR_RELAY_HANDSHAKE', `Relay chose no known subprotocol (got ${JSON.stringify(socket.protocol)})`), false);
      return;
    }
    this.#socket = socket;
    this.#conn = new RelayClientConnection({
      secretKey: this.#secretKey,
      version,
      crypto: this.#crypto,
      keys: this.#keys,
      now: now(),
      // The connect timeout covers the relay handshake too (iroh CONNECT_TIMEOUT).
      handshakeDeadline: started + this.#opts.connectTimeoutMs,
      pingIntervalMs: this.#opts.pingIntervalMs,
      maxPongTimeoutMs: this.#opts.pongTimeoutMs,
      minPongTimeoutMs: this.#opts.minPongTimeoutMs,
    });
    socket.onMessage = (data) => this.#guard(() => this.#onMessage(socket, data));
    socket.onClose = (info) =>
      this.#guard(() => {
        if (this.#socket !== socket) return;
        const error = info.error ?? new RelayError('ERR_RELAY_CLOSED', `Relay closed the connection (${info.code}${info.reason ? ` ${info.reason}` : ''})`);
        this.#conn?.close(error);
        this.#drain();
      });
    this.#arm();
  }

  #onMessage(socket: RelaySocket, data: Uint8Array): void {
    if (this.#socket !== socket || this.#conn === undefined) return;
    this.#conn.handleFrame(now(), data);
    this.#drain();
  }

  /** Process the connection's events and frames to send; re-arm the timer. */
  #drain(): void {
    const conn = this.#conn;
    if (conn === undefined) return;
    for (let e = conn.pollEvent(); e !== undefined; e = conn.pollEvent()) {
      switch (e.type) {
        case 'connected':
          this.#state = 'connected';
          this.#connectedAt = now();
          this.#restartHintMs = undefined;
          this.#stats.connections++;
          this.#flushTransmits();
          this.#events.emit('connected', { version: conn.version, url: this.#url.toString() });
          this.#flushQueue();
          break;
        case 'datagrams': {
          this.#stats.framesReceived++;
          this.#stats.datagramsReceived += e.datagrams.length;
          const d: RelayDatagrams = { src: e.src, ecn: e.ecn, datagrams: e.datagrams };
          if (this.#onDatagrams !== undefined) {
            try {
              this.#onDatagrams(d);
            } catch (err) {
              console.error('sdnet: onDatagrams threw:', err);
            }
          }
          this.#events.emit('datagrams', d);
          for (const r of this.#readers) r.push(d);
          break;
        }
        case 'endpointGone':
          this.#events.emit('endpointGone', { endpointId: e.endpointId });
          break;
        case 'status':
          this.#events.emit('status', { status: e.status });
          break;
        case 'health':
          this.#events.emit('health', { problem: e.problem });
          break;
        case 'restarting':
          this.#restartHintMs = e.reconnectInMs;
          this.#events.emit('restarting', { reconnectInMs: e.reconnectInMs, tryForMs: e.tryForMs });
          break;
        case 'pong':
          this.#events.emit('pong', { rttMs: e.rttMs });
          break;
        case 'closed':
          this.#flushTransmits();
          this.#ended(e.error, true);
          return;
      }
      if (this.#conn !== conn) return;
    }
    this.#flushTransmits();
    this.#arm();
  }

  #flushTransmits(): void {
    const conn = this.#conn;
    const socket = this.#socket;
    if (conn === undefined || socket === undefined) return;
    for (let f = conn.pollTransmit(); f !== undefined; f = conn.pollTransmit()) socket.send(f);
  }

  #flushQueue(): void {
    const queue = this.#queue;
    this.#queue = [];
    const t = now();
    for (const q of queue) {
      // iroh-wire §1.7: datagrams queued while connecting are dropped after 3 s.
      if (t - q.at > this.#opts.maxQueuedAgeMs) {
        this.#stats.dropsExpired += q.frame.datagrams.length;
        continue;
      }
      if (this.#conn === undefined || this.#socket === undefined || this.#state !== 'connected') {
        this.#stats.dropsClosed += q.frame.datagrams.length;
        continue;
      }
      if (this.#socket.bufferedAmount > this.#opts.maxBufferedBytes) {
        this.#stats.dropsBufferFull += q.frame.datagrams.length;
        continue;
      }
      this.#conn.sendDatagrams(q.dst, q.ecn, q.frame.segmentSize, q.frame.datagrams);
      this.#stats.framesSent++;
      this.#stats.datagramsSent += q.frame.datagrams.length;
    }
    this.#flushTransmits();
  }

  /** (Re)arm the single timer to the connection's next deadline. */
  #arm(): void {
    clearTimeout(this.#timer);
    this.#timer = undefined;
    const deadline = this.#conn?.pollTimeout();
    if (deadline === undefined) return;
    const delay = Math.max(0, Math.ceil(deadline - now()));
    this.#timer = setTimeout(() => this.#guard(() => this.#onTimer()), delay);
    // The socket keeps the process alive while connected; the timer need not.
    if (typeof this.#timer === 'object' && 'unref' in this.#timer) this.#timer.unref();
  }

  #onTimer(): void {
    this.#timer = undefined;
    if (this.#conn === undefined) return;
    this.#conn.handleTimeout(now());
    this.#drain();
  }

  /** A connection or attempt ended: report it and schedule the next attempt. */
  #ended(error: RelayError, hadSocket: boolean): void {
    const wasConnected = this.#state === 'connected';
    clearTimeout(this.#timer);
    this.#timer = undefined;
    const socket = this.#socket;
    this.#socket = undefined;
    this.#conn = undefined;
    if (socket !== undefined) {
      socket.onMessage = undefined;
      socket.onClose = undefined;
      const code = error.code === 'ERR_RELAY_PROTOCOL' || error.code === 'ERR_RELAY_HANDSHAKE' ? 1002 : 1000;
      try {
        socket.close(code, '');
      } catch {
        // Must not stop the reconnect below (this may run from #guard's own recovery).
        this.#stats.internalErrors++;
      }
    }
    void hadSocket;
    if (this.#state === 'closed') return;
    this.#stats.disconnects++;
    // A connection that stayed up resets the backoff (iroh reconnects at once then);
    // one that failed quickly does not, so a relay that accepts and drops cannot make us spin.
    if (wasConnected && now() - this.#connectedAt >= this.#opts.stableAfterMs) this.#backoff.reset();
    let delay = this.#backoff.next();
    if (this.#restartHintMs !== undefined) {
      delay = Math.max(delay, this.#restartHintMs);
      this.#restartHintMs = undefined;
    }
    this.#state = 'backoff';
    this.#events.emit('disconnected', { error, reconnectInMs: delay, wasConnected });
    if (this.#state !== 'backoff') return; // a listener closed us
    // Datagrams that cannot wait that long are dropped now rather than later.
    this.#expireQueue(delay);
    this.#backoffTimer = setTimeout(() => {
      this.#backoffTimer = undefined;
      this.#guard(() => this.#attempt());
    }, delay);
  }

  #expireQueue(extraMs: number): void {
    const t = now() + extraMs;
    const keep: QueuedFrame[] = [];
    for (const q of this.#queue) {
      if (t - q.at > this.#opts.maxQueuedAgeMs) this.#stats.dropsExpired += q.frame.datagrams.length;
      else keep.push(q);
    }
    this.#queue = keep;
  }

  /**
   * Run a callback from the event loop (socket callbacks, timers); anything it throws ends the
   * connection (counted in `internalErrors`) and the client reconnects, never the process.
   */
  #guard(fn: () => void): void {
    try {
      fn();
    } catch (err) {
      this.#stats.internalErrors++;
      const error = new RelayError('ERR_RELAY_PROTOCOL', `Relay client internal error: ${String(err)}`, { cause: err });
      try {
        if (this.#state !== 'closed') this.#ended(error, this.#socket !== undefined);
      } catch {
        // nothing more can be done
      }
    }
  }
}
