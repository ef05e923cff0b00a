/**
 * The application's view of a QUIC connection: streams as web streams, datagrams, stats,
 * close. Wraps a sans-IO core connection and the driver that moves it.
 *
 * @module
 */
import type { Connection as CoreConnection } from '../transport/quic/connection/connection.ts';
import { ConnectionError, type ConnectionEvent, type ConnectionStats, type PathAddr } from '../transport/quic/connection/types.ts';
import type { EndpointDriver } from '../transport/io/driver.ts';
import type { PathChangeReason } from '../transport/quic/connection/types.ts';
import { PublicKey } from '../identity/keys.ts';
import { SocketAddr } from '../identity/socket-addr.ts';
import { RelayUrl } from '../identity/relay-url.ts';
import { SdnetError } from '../util/errors.ts';
import { abortable } from '../util/abort.ts';
import { Emitter, type Listener, type ListenOptions } from '../util/emitter.ts';
import { StreamResetError, readableFor, writableFor, type BiStream } from './streams.ts';

type WaitKind = 'readable' | 'writable' | 'finished';

/** Events of one connection. */
export type ConnectionEvents = {
  /** The connection moved to another path (relay ↔ direct, a migration). */
  'path-changed': { readonly path: PathAddr; readonly relayed: boolean; readonly reason: PathChangeReason };
  /** The connection closed; `error` says why (code 0 from either side is a normal close). */
  closed: { readonly error: ConnectionError };
  /**
   * The peer reported the address it sees our packets come from (QUIC address discovery,
   * on connections that asked for it: an endpoint's probes of its relays).
   */
  'observed-address': { readonly address: SocketAddr };
};

/** One path of a connection ({@link Connection.paths}). */
export interface ConnectionPath {
  /** Its QUIC multipath path id (draft-ietf-quic-multipath-21), when the connection uses multipath paths. */
  readonly id?: number;
  /** `direct` UDP to `address`, or through `relay`. */
  readonly kind: 'direct' | 'relay';
  readonly address: SocketAddr | undefined;
  readonly relay: RelayUrl | undefined;
  /** The peer has proven it receives on this path (RFC 9000 §8.2), or it is the handshake's. */
  readonly validated: boolean;
  /** `active`: the path data goes on now; `candidate`: known and not in use. */
  readonly status: 'active' | 'candidate';
  /** Smoothed RTT, ms (the active path; with multipath, each path with a sample). */
  readonly rttMs: number | undefined;
  readonly bytesSent: number;
  readonly bytesReceived: number;
}

/** `direct 203.0.113.2:4000` or `relay https://relay.example/`: a path in one phrase. */
export function describePath(path: PathAddr): string {
  const p = path as PathAddr & { addr?: unknown; url?: unknown };
  if (p.relayed === true) return `relay ${p.url instanceof RelayUrl ? p.url.toString() : '?'}`;
  return `direct ${p.addr instanceof SocketAddr ? p.addr.toString() : path.key}`;
}

/** Remove `item` from `list` if present. */
function removeFrom<T>(list: T[], item: T): void {
  const i = list.indexOf(item);
  if (i >= 0) list.splice(i, 1);
}

/** ALPN ids as text (one decoder for every connection). */
const lenientUtf8 = new TextDecoder();

/** Internal handle shared with the stream wrappers. */
export class ConnectionHandle {
  readonly core: CoreConnection;
  readonly driver: EndpointDriver;
  readonly #waiters = new Map<string, { resolve: () => void; reject: (e: unknown) => void }[]>();
  readonly #queues: Record<'bi' | 'uni', number[]> = { bi: [], uni: [] };
  readonly #acceptWaiters: Record<'bi' | 'uni', (() => void)[]> = { bi: [], uni: [] };
  readonly #openWaiters: Record<'bi' | 'uni', (() => void)[]> = { bi: [], uni: [] };
  readonly #datagramWaiters: (() => void)[] = [];
  readonly #connectedWaiters: { resolve: () => void; reject: (e: unknown) => void }[] = [];
  error: ConnectionError | undefined;
  connected = false;
  readonly closed: Promise<ConnectionError>;
  #resolveClosed!: (e: ConnectionError) => void;
  /** Path changes and the close, for {@link Connection.on}. */
  readonly events = new Emitter<ConnectionEvents>();
  /** Called once when the handshake completes (the endpoint announces the connection). */
  onConnected: (() => void) | undefined;
  #connection: Connection | undefined;

  constructor(core: CoreConnection, driver: EndpointDriver) {
    this.core = core;
    this.driver = driver;
    this.closed = new Promise((r) => (this.#resolveClosed = r));
    driver.listen(core, (e) => this.#onEvent(e));
  }

  #onEvent(e: ConnectionEvent): void {
    switch (e.type) {
      case 'connected':
        this.connected = true;
        for (const w of this.#connectedWaiters.splice(0)) w.resolve();
        this.onConnected?.();
        break;
      case 'path-changed':
        this.events.emit('path-changed', { path: e.path, relayed: e.path.relayed === true, reason: e.reason });
        break;
      case 'observed-address': {
        let address: SocketAddr;
        try {
          address = SocketAddr.fromParts(e.ip, e.port);
        } catch {
          break; // port 0 or the like: nothing usable was reported
        }
        this.events.emit('observed-address', { address });
        break;
      }
      case 'stream-opened': {
        const dir = (Math.floor(e.id / 2) % 2 === 0 ? 'bi' : 'uni') as 'bi' | 'uni';
        this.#queues[dir].push(e.id);
        for (const w of this.#acceptWaiters[dir].splice(0)) w();
        break;
      }
      case 'stream-readable':
        this.#wake(e.id, 'readable');
        break;
      case 'stream-writable':
        this.#wake(e.id, 'writable');
        break;
      case 'stream-finished':
        this.#wake(e.id, 'finished');
        break;
      case 'stream-stopped':
        // Writers notice the stop (they check it before each write); a pending close() fails:
        // the peer will not read what we sent.
        this.#wake(e.id, 'writable');
        this.#fail(e.id, 'finished', new StreamResetError('ERR_STREAM_STOPPED', e.code));
        break;
      case 'streams-available':
        for (const w of this.#openWaiters[e.dir].splice(0)) w();
        break;
      case 'datagram':
        for (const w of this.#datagramWaiters.splice(0)) w();
        break;
      case 'closed':
        this.error = e.error;
        for (const w of this.#connectedWaiters.splice(0)) w.reject(e.error);
        for (const list of this.#waiters.values()) for (const w of list) w.reject(e.error);
        this.#waiters.clear();
        for (const dir of ['bi', 'uni'] as const) {
          for (const w of this.#acceptWaiters[dir].splice(0)) w();
          for (const w of this.#openWaiters[dir].splice(0)) w();
        }
        for (const w of this.#datagramWaiters.splice(0)) w();
        this.#resolveClosed(e.error);
        this.events.emit('closed', { error: e.error });
        this.events.removeAll();
        break;
      default:
        break;
    }
  }

  #wake(id: number, kind: WaitKind): void {
    const key = `${id}:${kind}`;
    const list = this.#waiters.get(key);
    if (list === undefined) return;
    this.#waiters.delete(key);
    for (const w of list) w.resolve();
  }

  #fail(id: number, kind: WaitKind, error: unknown): void {
    const key = `${id}:${kind}`;
    const list = this.#waiters.get(key);
    if (list === undefined) return;
    this.#waiters.delete(key);
    for (const w of list) w.reject(error);
  }

  /** Wait for a stream event (rejects if the connection closes first). */
  waitFor(id: number, kind: WaitKind): Promise<void> {
    if (this.error) return Promise.reject(this.error);
    return new Promise((resolve, reject) => {
      const key = `${id}:${kind}`;
      const list = this.#waiters.get(key) ?? [];
      list.push({ resolve, reject });
      this.#waiters.set(key, list);
    });
  }

  /** The application's object for this connection (one per connection, created on demand). */
  get connection(): Connection {
    this.#connection ??= new Connection(this);
    return this.#connection;
  }

  whenConnected(signal?: AbortSignal): Promise<void> {
    if (this.connected) return Promise.resolve();
    if (this.error) return Promise.reject(this.error);
    return abortable<void>(signal, (resolve, reject) => {
      const entry = { resolve, reject };
      this.#connectedWaiters.push(entry);
      return () => removeFrom(this.#connectedWaiters, entry);
    });
  }

  /** Wait until `list` is woken (or the signal aborts); the waiter leaves the list either way. */
  #wait(list: (() => void)[], signal: AbortSignal | undefined): Promise<void> {
    return abortable<void>(signal, (resolve) => {
      list.push(resolve);
      return () => removeFrom(list, resolve);
    });
  }

  async nextIncoming(dir: 'bi' | 'uni', signal?: AbortSignal): Promise<number> {
    for (;;) {
      const id = this.#queues[dir].shift();
      if (id !== undefined) return id;
      if (this.error) throw this.error;
      await this.#wait(this.#acceptWaiters[dir], signal);
    }
  }

  async open(dir: 'bi' | 'uni', signal?: AbortSignal): Promise<number> {
    for (;;) {
      if (this.error) throw this.error;
      signal?.throwIfAborted();
      const id = this.core.openStream(dir);
      if (id !== undefined) {
        this.driver.schedule();
        return id;
      }
      this.driver.schedule(); // sends STREAMS_BLOCKED
      await this.#wait(this.#openWaiters[dir], signal);
    }
  }

  async nextDatagram(signal?: AbortSignal): Promise<Uint8Array> {
    for (;;) {
      const d = this.core.readDatagram();
      if (d !== undefined) return d;
      if (this.error) throw this.error;
      await this.#wait(this.#datagramWaiters, signal);
    }
  }
}

/** Options of async methods. */
export interface SignalOptions {
  signal?: AbortSignal;
}

/** A QUIC connection to another endpoint. */
export class Connection {
  readonly #h: ConnectionHandle;
  readonly #remoteId: PublicKey | undefined;
  /** The negotiated ALPN protocol. */
  readonly alpn: string;
  /**
   * With X.509 credentials: the certificates the peer presented (DER, leaf first), checked as
   * the endpoint's `x509` options say. Empty with raw public keys, and for a client a server
   * did not ask for a certificate.
   */
  readonly peerCertificates: readonly Uint8Array[];

  /** @internal */
  constructor(handle: ConnectionHandle) {
    this.#h = handle;
    const key = handle.core.peerPublicKey;
    this.#remoteId = key === undefined ? undefined : PublicKey.fromBytes(key);
    this.alpn = lenientUtf8.decode(handle.core.alpn);
    this.peerCertificates = handle.core.peerCertificates;
  }

  /**
   * The peer's EndpointId, authenticated by the handshake (with X.509 credentials: the key of
   * an Ed25519 leaf certificate).
   *
   * @throws {SdnetError} `ERR_NO_ENDPOINT_ID` when the peer authenticated with another kind of
   *   X.509 key (see {@link peerCertificates}), or not at all
   */
  get remoteId(): PublicKey {
    if (this.#remoteId === undefined) throw new SdnetError('ERR_NO_ENDPOINT_ID', 'The peer has no EndpointId: it authenticated with an X.509 certificate whose key is not Ed25519, or not at all');
    return this.#remoteId;
  }

  /**
   * The peer's EndpointId, or undefined when it authenticated with an X.509 key that is not
   * Ed25519 (or a server asked no client certificate): {@link remoteId} without the throw.
   */
  get remoteIdIfAny(): PublicKey | undefined {
    return this.#remoteId;
  }

  /** Which side opened the connection: `'client'` (we dialled) or `'server'` (the peer did). */
  get side(): 'client' | 'server' {
    return this.#h.core.side;
  }

  /** The path datagrams currently take. */
  get path(): PathAddr {
    return this.#h.core.path;
  }

  /** Whether the connection has closed. */
  get isClosed(): boolean {
    return this.#h.error !== undefined;
  }

  /**
   * Listen for `'path-changed'`, `'observed-address'` or `'closed'`; returns the function that stops listening (a
   * `signal` does it too). Listeners added after the close never run: await {@link closed}.
   */
  on<K extends keyof ConnectionEvents>(type: K, listener: Listener<ConnectionEvents[K]>, options: ListenOptions = {}): () => void {
    return this.#h.events.on(type, listener, options);
  }

  /**
   * Keying material exported from this connection's TLS session (RFC 8446 §7.5), the same on
   * both ends and on no other connection: binds an application protocol (pairing) to this
   * authenticated channel.
   *
   * @param label the exporter label, e.g. `"EXPORTER-sdnet-pairing"` (at most 249 bytes)
   * @param context context value (hashed; empty and absent are the same in TLS 1.3)
   * @param length bytes wanted (1..255 × the suite's hash length)
   * @throws {RangeError} for a bad label or length
   */
  exportKeyingMaterial(label: string, context: Uint8Array, length: number): Uint8Array {
    const out = this.#h.core.exportKeyingMaterial(label, context, length);
    // A Connection exists only once the handshake completed, so the secret is there.
    if (out === undefined) throw new RangeError('The handshake has not completed');
    return out;
  }

  /** Resolves with the reason once the connection has closed (never rejects). */
  get closed(): Promise<ConnectionError> {
    return this.#h.closed;
  }

  /** Open a bidirectional stream (waits while the peer's stream limit is reached). */
  async openBi(options: SignalOptions = {}): Promise<BiStream> {
    const id = await this.#h.open('bi', options.signal);
    return { id, readable: readableFor(this.#h, id), writable: writableFor(this.#h, id) };
  }

  /** Open a unidirectional (send-only) stream. */
  async openUni(options: SignalOptions = {}): Promise<WritableStream<Uint8Array>> {
    const id = await this.#h.open('uni', options.signal);
    return writableFor(this.#h, id);
  }

  /** The next bidirectional stream the peer opens. */
  async acceptBi(options: SignalOptions = {}): Promise<BiStream> {
    const id = await this.#h.nextIncoming('bi', options.signal);
    return { id, readable: readableFor(this.#h, id), writable: writableFor(this.#h, id) };
  }

  /** The next unidirectional stream the peer opens. */
  async acceptUni(options: SignalOptions = {}): Promise<ReadableStream<Uint8Array>> {
    const id = await this.#h.nextIncoming('uni', options.signal);
    return readableFor(this.#h, id);
  }

  /** Largest datagram the peer accepts now (0: the peer does not take datagrams). */
  get maxDatagramSize(): number {
    return this.#h.core.maxDatagramSize;
  }

  /**
   * Send an unreliable datagram (RFC 9221).
   *
   * @throws {RangeError} if it is larger than {@link maxDatagramSize} or the queue is full
   */
  sendDatagram(data: Uint8Array): void {
    if (this.#h.error) throw this.#h.error;
    if (!this.#h.core.sendDatagram(data)) throw new RangeError(`Datagram of ${data.length} bytes does not fit (max ${this.maxDatagramSize}) or the send queue is full`);
    this.#h.driver.schedule();
  }

  /** The next datagram from the peer. */
  readDatagram(options: SignalOptions = {}): Promise<Uint8Array> {
    return this.#h.nextDatagram(options.signal);
  }

  /** RTT, congestion window, bytes, losses. */
  stats(): ConnectionStats {
    return this.#h.core.stats();
  }

  /** The connection's paths: the active one first, then the candidates it knows. */
  paths(): ConnectionPath[] {
    return this.#h.core.paths().map((p) => {
      const a = p.addr as PathAddr & { addr?: unknown; url?: unknown };
      return {
        ...(p.id !== undefined ? { id: p.id } : {}),
        kind: p.relayed ? 'relay' : 'direct',
        address: a.addr instanceof SocketAddr ? a.addr : undefined,
        relay: a.url instanceof RelayUrl ? a.url : undefined,
        validated: p.validated,
        status: p.status,
        rttMs: p.rttMs,
        bytesSent: p.bytesSent,
        bytesReceived: p.bytesReceived,
      };
    });
  }

  /** Start a TLS/QUIC key update now (RFC 9001 §6). False if not allowed yet. */
  updateKeys(): boolean {
    const ok = this.#h.core.initiateKeyUpdate();
    this.#h.driver.schedule();
    return ok;
  }

  /** Close with an application error code and reason; the peer sees both. */
  close(code = 0, reason = ''): void {
    this.#h.core.close(this.#h.driver.clock.now(), code, reason);
    this.#h.driver.schedule();
  }
}
