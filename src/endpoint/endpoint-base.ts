/**
 * `Endpoint`: the library's front door, in iroh's shape. Bind with an identity (UDP sockets
 * and relays), `connect()` to another endpoint by its address and an ALPN, `accept()`
 * incoming connections, `close()`.
 *
 * An endpoint with relays keeps a connection to a home relay chosen by latency, so that
 * peers can reach it by its id and that relay's URL alone; `online()` resolves once it is
 * connected. A connection starts on whichever of the peer's paths (relays, direct addresses)
 * answers first; between sdnet peers it then moves to a direct path when one validates and
 * back to the relay when the direct path goes silent (iroh-wire §3.5).
 *
 * This module is the endpoint without anything platform-specific: UDP sockets, the relay
 * WebSocket, latency probes, interface addresses, the default crypto provider and the key log
 * come from an {@link EndpointPlatform} (`node-platform.ts`, `browser-platform.ts`). Node's
 * `Endpoint` is in `endpoint.ts`, the browser's in `src/browser.ts`.
 *
 * @module
 */
import { EndpointAddr } from '../identity/endpoint-addr.ts';
import { PublicKey, SecretKey } from '../identity/keys.ts';
import { RelayUrl } from '../identity/relay-url.ts';
import { SocketAddr } from '../identity/socket-addr.ts';
import type { NodeTlsOptions } from '../relay/client/node-transport.ts';
import type { RelayTransport } from '../relay/client/transport.ts';
import { tlsServerName } from '../identity/tls-name.ts';
import type { CryptoProvider } from '../transport/crypto/provider.ts';
import type { ConnectionSettings } from '../transport/quic/config.ts';
import type { Connection as CoreConnection } from '../transport/quic/connection/connection.ts';
import type { PathAddr } from '../transport/quic/connection/types.ts';
import { QuicEndpoint, type EndpointStats, type RetryMode, type RetryPolicy } from '../transport/quic/endpoint.ts';
import { EndpointDriver } from '../transport/io/driver.ts';
import { UdpPath } from '../transport/io/udp-path.ts';
import { scheduleImmediate } from '../transport/io/immediate.ts';
import { DIRECT_ADDRESS_CACHE_MS, MAX_DIAL_DIRECT, MAX_DIAL_RELAYS } from '../transport/paths/limits.ts';
import { PathSocket, type PathSocketStats } from '../transport/paths/path-socket.ts';
import type { RelayInfo } from '../transport/paths/relay-pool.ts';
import type { DirectAddress } from '../transport/quic/wire/transport-params.ts';
import { SdnetError } from '../util/errors.ts';
import { abortable } from '../util/abort.ts';
import { Emitter, type Listener, type ListenOptions } from '../util/emitter.ts';
import type { ConnectionError, PathChangeReason } from '../transport/quic/connection/types.ts';
import { Connection, ConnectionHandle, type SignalOptions } from './connection.ts';
import type { X509Options } from './x509.ts';
import type { QadOptions } from './qad.ts';
import { resolveWith, type AddressLookup } from '../discovery/address-lookup.ts';
import { parseKeyAnyForm, type EndpointInfo } from '../discovery/pkarr.ts';
import { RESOLVE_DEADLINE_MS } from '../discovery/limits.ts';
import { pkarrUrlOfRelay } from '../discovery/pkarr.ts';
import type { PeerCertificateInfo } from '../transport/quic/endpoint.ts';
import type { EndpointPlatform } from './platform.ts';

/** Events of an endpoint ({@link Endpoint.on}). */
export type EndpointEvents = {
  /** Connected to the home relay: peers can reach us by id and that relay's URL. */
  online: { readonly relay: RelayUrl };
  /** Lost the home relay connection (it reconnects by itself). */
  offline: { readonly relay: RelayUrl | undefined };
  /** Another home relay was chosen. */
  'home-relay-changed': { readonly relay: RelayUrl | undefined; readonly previous: RelayUrl | undefined };
  /** What our relays report as our public (reflexive) addresses changed (QUIC address discovery, `qad`). */
  'reflexive-addresses': { readonly addresses: readonly SocketAddr[] };
  /** A connection completed its handshake (`side` `'client'`: we dialled). `remoteId` is undefined only for an X.509 peer whose key is not Ed25519. */
  'connection-opened': { readonly connection: Connection; readonly remoteId: PublicKey | undefined; readonly alpn: string; readonly side: 'client' | 'server' };
  /** A connection that had opened closed. */
  'connection-closed': { readonly connection: Connection; readonly remoteId: PublicKey | undefined; readonly alpn: string; readonly error: ConnectionError };
  /** A connection moved to another path. */
  'path-changed': { readonly connection: Connection; readonly remoteId: PublicKey | undefined; readonly path: PathAddr; readonly relayed: boolean; readonly reason: PathChangeReason };
};

export interface EndpointOptions {
  /** Our identity; a fresh one if not given. */
  secretKey?: SecretKey;
  /** ALPN protocols we accept incoming connections for (none: we only dial). */
  alpns?: readonly (string | Uint8Array)[];
  /**
   * Where to bind UDP: `ip:port` / `[ipv6]:port`, or several. Default: `0.0.0.0:0` and
   * `[::]:0` (IPv6 only if the system has it); in a browser, none. An empty list binds no UDP
   * socket: the endpoint then speaks through relays only.
   */
  bindAddr?: string | readonly string[];
  /**
   * Relays to choose a home relay from (by `/ping` latency). Without any, the endpoint has no
   * home relay (peers need a direct address to reach it) but still reaches peers through the
   * relays their addresses name.
   */
  relays?: readonly (string | URL | RelayUrl)[];
  /** Bearer token for relays with access control. */
  relayToken?: string;
  /** TLS options for `https` relays (trusted CAs, server name). */
  relayTls?: NodeTlsOptions;
  /** WebSocket implementation for relays (default: node sockets; in a browser, its WebSocket). */
  relayTransport?: RelayTransport;
  /** Close relays opened to reach peers after this long idle (ms, default 60 s). */
  relayIdleTimeoutMs?: number;
  /**
   * Tell connecting sdnet peers our direct addresses, so a connection that started on the
   * relay can move to a direct path (default true).
   */
  advertiseDirectAddresses?: boolean;
  /** QUIC settings (windows, timeouts, congestion control). */
  settings?: Partial<ConnectionSettings>;
  /**
   * When incoming clients must first prove their address with a Retry round trip (RFC 9000
   * §8.1.2). Default `'auto'`: only while many handshakes are in progress (or one address has
   * many), so a flood of spoofed Initials cannot lock honest clients out; `'always'` costs
   * every client one round trip; `'never'` drops Initials beyond the limits instead.
   */
  retry?: RetryMode | RetryPolicy;
  /** Crypto implementation (default: node:crypto; in a browser, @noble). */
  provider?: CryptoProvider;
  /**
   * Authenticate with an X.509 certificate chain instead of iroh's raw public keys, to speak
   * QUIC with stacks that use certificates. Peers are then identified by their certificates
   * (`Connection.peerCertificates`), and `connect()` also takes a plain socket address. The
   * secret key stays this endpoint's relay identity.
   */
  x509?: X509Options;
  /**
   * Key for stateless-reset tokens (RFC 9000 §10.3.2), at least 32 bytes. Derive it from the
   * identity so that after a restart the endpoint can still reset its old connections, and
   * peers learn at once that they are gone. Random when not given.
   */
  statelessResetKey?: Uint8Array;
  /**
   * QUIC address discovery against `relays` (iroh's QAD, iroh-wire §1.11; Node only, needs a
   * UDP socket): learn the public address a NAT maps our UDP socket to from each relay's QAD
   * port (7842 by default), and add it to our direct addresses (`addr()`, what sdnet peers
   * are told). `true` or options turn it on; off by default. Relays reached over plain `http`
   * cannot be verified, so what they report is only as trustworthy as they are.
   */
  qad?: boolean | QadOptions;
  /**
   * Pkarr relays to publish our `_iroh` record to and resolve ids at (iroh-wire §6.3; Node):
   * `true` (default) — the `/pkarr` endpoint of each of our relays (sdnet-relay serves it),
   * so an endpoint given only a relay URL is findable by its id; a list of pkarr relay URLs;
   * `false` — none.
   */
  pkarr?: boolean | readonly string[];
  /** Further address lookups (mDNS, …; {@link EndpointBase.addLookup} adds one later). */
  lookups?: readonly AddressLookup[];
  /** iroh's `user-data` published with our address (≤ 245 bytes; {@link EndpointBase.setUserData}). */
  userData?: string;
}

export interface ConnectOptions extends SignalOptions {
  /** QUIC settings for this connection. */
  settings?: Partial<ConnectionSettings>;
  /** X.509 endpoints: the server name to send (SNI) and to check the certificate against. */
  serverName?: string;
  /** Dialling by id alone: how long the lookups may take (ms, default 5 s). */
  resolveTimeoutMs?: number;
}

/** `ip:port` or `[v6]:port` (what X.509 endpoints dial directly). */
function looksLikeSocketAddr(text: string): boolean {
  return /^\[[0-9a-fA-F:.]+\]:\d+$/.test(text) || /^\d{1,3}(\.\d{1,3}){3}:\d+$/.test(text);
}

/** Connection attempts waiting for accept() at most; later ones are turned away. */
const MAX_PENDING_INCOMING = 128;

const encodeAlpn = (a: string | Uint8Array): Uint8Array => (typeof a === 'string' ? new TextEncoder().encode(a) : a);

/** What an incoming connection is, once the peer has proven its identity. */
export interface IncomingHandshake {
  /** The peer's EndpointId, authenticated by its TLS CertificateVerify and Finished. */
  readonly remoteId: PublicKey;
  /** The ALPN protocol negotiated. */
  readonly alpn: string;
}

/**
 * A connection attempt from a peer. Its ALPN is known as soon as the ClientHello is read
 * ({@link alpn}); {@link handshake} resolves once the peer has proven its EndpointId, so an
 * application can {@link refuse} it (with an application close code the peer sees) before
 * any of its stream data reaches protocol code, or {@link accept} it.
 */
export class Incoming {
  readonly #handle: ConnectionHandle;
  /** Where it came from. */
  readonly remoteAddress: PathAddr;

  /** @internal */
  constructor(handle: ConnectionHandle) {
    this.#handle = handle;
    this.remoteAddress = handle.core.path;
  }

  /** The ALPN protocol the peer asked for and we selected (undefined until its ClientHello is complete). */
  get alpn(): string | undefined {
    const a = this.#handle.core.alpn;
    return a === undefined ? undefined : new TextDecoder().decode(a);
  }

  /**
   * Wait until the peer has authenticated (its Finished verified): its id and the ALPN.
   *
   * @throws {ConnectionError} if the handshake fails or times out; the signal's reason on abort
   */
  async handshake(options: SignalOptions = {}): Promise<IncomingHandshake> {
    await this.#handle.whenConnected(options.signal);
    const c = this.#handle.connection;
    return { remoteId: c.remoteId, alpn: c.alpn };
  }

  /** Complete the handshake and return the connection. */
  async accept(options: SignalOptions = {}): Promise<Connection> {
    await this.#handle.whenConnected(options.signal);
    return this.#handle.connection;
  }

  /**
   * Turn the peer away: an application close with `code` (default 2, "refused") and
   * `reason`, which the peer's dial or connection reports.
   */
  refuse(code = 0x02, reason = 'refused'): void {
    this.#handle.core.close(this.#handle.driver.clock.now(), code, reason);
    this.#handle.driver.schedule();
  }
}

/** The endpoint's parts, handed from {@link EndpointBase.bindWith} to a subclass constructor. */
export interface EndpointParts {
  readonly secretKey: SecretKey;
  readonly quic: QuicEndpoint;
  readonly driver: EndpointDriver;
  readonly socket: PathSocket;
  readonly platform: EndpointPlatform;
}

/**
 * The endpoint on any platform. Bind it through a platform's subclass: Node's `Endpoint`
 * (`sdnet`) or the browser's (`sdnet/browser`).
 */
export class EndpointBase {
  readonly secretKey: SecretKey;
  readonly #platform: EndpointPlatform;
  readonly #quic: QuicEndpoint;
  readonly #driver: EndpointDriver;
  readonly #socket: PathSocket;
  #directCache: { at: number; list: SocketAddr[] } | undefined;
  readonly #incoming: Incoming[] = [];
  readonly #incomingWaiters: (() => void)[] = [];
  readonly #handles = new Set<ConnectionHandle>();
  readonly #events = new Emitter<EndpointEvents>();
  #closed = false;
  /** Authenticates with X.509 credentials (not raw public keys). */
  #x509 = false;
  /** Our public addresses as relays reported them (QUIC address discovery, Node's `qad`). */
  #reflexive: SocketAddr[] = [];
  readonly #lookups: AddressLookup[] = [];
  #userData: string | undefined;
  #hasRelays = false;

  /** @internal use a platform's `bind` */
  constructor(parts: EndpointParts) {
    const { secretKey, quic, driver, socket } = parts;
    this.#platform = parts.platform;
    this.secretKey = secretKey;
    this.#quic = quic;
    this.#driver = driver;
    this.#socket = socket;
    socket.pool.onHomeChange((relay, previous) => this.#events.emit('home-relay-changed', { relay, previous }));
    socket.pool.onOnlineChange((online, relay) => {
      if (online && relay) this.#events.emit('online', { relay });
      else this.#events.emit('offline', { relay });
    });
    driver.onIncoming((core) => {
      const handle = this.#track(core);
      // An application that stops calling accept() must not make hostile attempts pile up.
      if (this.#incoming.length >= MAX_PENDING_INCOMING) {
        core.close(driver.clock.now(), 0x02, 'server busy');
        driver.schedule();
        return;
      }
      const incoming = new Incoming(handle);
      this.#incoming.push(incoming);
      // Forget it if it closes before being accepted.
      void handle.closed.then(() => {
        const i = this.#incoming.indexOf(incoming);
        if (i >= 0) this.#incoming.splice(i, 1);
      });
      for (const w of this.#incomingWaiters.splice(0)) w();
    });
  }

  /** @internal Bind an endpoint on `platform`; `make` builds the platform's subclass from the parts. */
  protected static async bindWith<E extends EndpointBase>(platform: EndpointPlatform, options: EndpointOptions, make: (parts: EndpointParts) => E): Promise<E> {
    const provider = options.provider ?? platform.crypto;
    const secretKey = options.secretKey ?? SecretKey.generate(provider);
    const keyLog = platform.keyLog();
    let relays: RelayUrl[];
    let bind: SocketAddr[];
    const credentials = options.x509 ? platform.x509Credentials(options.x509) : undefined;
    try {
      relays = (options.relays ?? []).map((u) => (u instanceof RelayUrl ? u : RelayUrl.parse(u)));
      const addrs = typeof options.bindAddr === 'string' ? [options.bindAddr] : (options.bindAddr ?? platform.defaultBind);
      bind = addrs.map((a) => SocketAddr.parse(a));
    } catch (err) {
      throw new SdnetError('ERR_INVALID_ARGUMENT', (err as Error).message, { cause: err });
    }
    // The pieces refer to each other; `self` is filled in once the endpoint exists.
    const self: { endpoint?: EndpointBase; driver?: EndpointDriver } = {};
    const quic = new QuicEndpoint({
      provider,
      secretKey: secretKey.toBytes(),
      ...(credentials ? { credentials } : {}),
      ...(keyLog ? { keyLog } : {}),
      alpns: (options.alpns ?? []).map(encodeAlpn),
      ...(options.settings ? { settings: options.settings } : {}),
      ...(options.retry !== undefined ? { retry: options.retry } : {}),
      ...(options.statelessResetKey ? { statelessResetKey: options.statelessResetKey } : {}),
      ...(platform.cipherSuites ? { cipherSuites: platform.cipherSuites } : {}),
      ...(options.advertiseDirectAddresses === false ? {} : { directAddresses: () => (self.endpoint ? self.endpoint.#advertisedAddresses() : []) }),
      resolvePath: (a) => (self.endpoint ? self.endpoint.#resolvePath(a) : undefined),
    });
    const socket = await PathSocket.bind({
      bind,
      strictBind: options.bindAddr !== undefined,
      bindUdp: platform.bindUdp,
      probeRelay: platform.probeRelay,
      secretKey,
      relays,
      crypto: provider,
      ...(options.relayTls ? { relayTls: options.relayTls } : {}),
      ...(options.relayToken !== undefined ? { relayToken: options.relayToken } : {}),
      relayTransport: options.relayTransport ?? platform.relayTransport(options.relayTls),
      ...(options.relayIdleTimeoutMs !== undefined ? { relayIdleTimeoutMs: options.relayIdleTimeoutMs } : {}),
      onDatagram: (data, path) => self.driver?.receive(data, path),
    });
    const driver = new EndpointDriver(quic, socket);
    self.driver = driver;
    const endpoint = make({ secretKey, quic, driver, socket, platform });
    endpoint.#x509 = credentials !== undefined;
    endpoint.#userData = options.userData;
    endpoint.#hasRelays = relays.length > 0;
    self.endpoint = endpoint;
    const pkarr = options.pkarr ?? true;
    const pkarrRelays = pkarr === true ? relays.map((r) => pkarrUrlOfRelay(r.toString())) : pkarr === false ? [] : [...pkarr];
    if (pkarrRelays.length > 0 && platform.pkarrLookup) endpoint.#lookups.push(platform.pkarrLookup({ relays: pkarrRelays, secretKey, ...(options.relayTls ? { tls: options.relayTls } : {}) }));
    endpoint.#lookups.push(...(options.lookups ?? []));
    // Publish on every change of what peers need to reach us (the home relay).
    endpoint.on('home-relay-changed', () => endpoint.#publish());
    endpoint.on('online', () => endpoint.#publish());
    endpoint.#publish();
    return endpoint;
  }

  /**
   * What we publish: the home relay URL; our direct addresses only when we have no relay
   * (iroh's default publishes relay-only; a relay-less endpoint has nothing else to say).
   */
  info(): EndpointInfo {
    const home = this.#socket.pool.home;
    return { id: this.id, relayUrls: home ? [home] : [], directAddresses: home ? [] : this.#directAddresses(), ...(this.#userData !== undefined ? { userData: this.#userData } : {}) };
  }

  #publish(): void {
    if (this.#closed) return;
    const info = this.info();
    // With relays, wait for the home relay: publishing direct addresses first would only be
    // replaced a moment later.
    if (this.#hasRelays && info.relayUrls.length === 0) return;
    for (const l of this.#lookups) {
      try {
        l.publish?.(info);
      } catch {
        // a lookup that cannot publish this is not fatal to the others
      }
    }
  }

  /** Set (or clear, `undefined`) the `user-data` published with our address; republished at once. */
  setUserData(userData: string | undefined): void {
    if (userData === this.#userData) return;
    this.#userData = userData;
    this.#publish();
  }

  /** The `user-data` published now. */
  get userData(): string | undefined {
    return this.#userData;
  }

  /** Add an address lookup (mDNS, …); it is told our info at once. Closed with the endpoint. */
  addLookup(lookup: AddressLookup): void {
    this.#lookups.push(lookup);
    if (!this.#closed) lookup.publish?.(this.info());
  }

  /** The lookups in use (pkarr first when configured). */
  get lookups(): readonly AddressLookup[] {
    return this.#lookups;
  }

  /**
   * Find `id`'s addresses through every configured lookup in parallel (pkarr relays, mDNS,
   * …) within `timeoutMs` (default 5 s); undefined when none knows it.
   */
  resolve(id: PublicKey | string, options: SignalOptions & { timeoutMs?: number } = {}): Promise<EndpointAddr | undefined> {
    let key: PublicKey;
    try {
      key = typeof id === 'string' ? parseKeyAnyForm(id) : id;
    } catch (err) {
      return Promise.reject(new SdnetError('ERR_INVALID_ARGUMENT', `Not an EndpointId: ${(err as Error).message}`, { cause: err }));
    }
    return resolveWith(this.#lookups, key, { ...(options.signal ? { signal: options.signal } : {}), timeoutMs: options.timeoutMs ?? RESOLVE_DEADLINE_MS });
  }

  /** Our direct addresses as the sdnet_direct_addresses parameter carries them. */
  #advertisedAddresses(): DirectAddress[] {
    return this.#directAddresses().map((a) => ({ ip: a.ip, port: a.port }));
  }

  /** A direct address a server advertised, as a path we can send on (or undefined). */
  #resolvePath(a: DirectAddress): PathAddr | undefined {
    let addr: SocketAddr;
    try {
      addr = SocketAddr.fromParts(a.ip, a.port);
    } catch {
      return undefined;
    }
    if (!this.#socket.hasFamily(addr.family) || addr.ip.every((b) => b === 0)) return undefined;
    // Our own socket is not a way to the peer.
    const text = addr.toString();
    if (this.#directAddresses().some((l) => l.toString() === text)) return undefined;
    return new UdpPath(addr);
  }

  /**
   * Listen for an endpoint event; returns the function that stops listening (a `signal` does
   * it too).
   */
  on<K extends keyof EndpointEvents>(type: K, listener: Listener<EndpointEvents[K]>, options: ListenOptions = {}): () => void {
    return this.#events.on(type, listener, options);
  }

  /** The next event of `type` matching `filter`; rejects with the signal's reason on abort. */
  next<K extends keyof EndpointEvents>(type: K, options: ListenOptions & { filter?: (event: EndpointEvents[K]) => boolean } = {}): Promise<EndpointEvents[K]> {
    return this.#events.next(type, options);
  }

  /** Whether the endpoint is connected to its home relay. */
  get isOnline(): boolean {
    return this.#socket.pool.isOnline;
  }

  /**
   * The ALPN protocols accepted from now on (a {@link Router} sets them all at once before it
   * starts accepting). Connections already handshaking keep theirs.
   */
  setAlpns(alpns: readonly (string | Uint8Array)[]): void {
    this.#quic.setAlpns(alpns.map(encodeAlpn));
  }

  /** Our EndpointId. */
  get id(): PublicKey {
    return this.secretKey.public();
  }

  /** The addresses the UDP sockets are bound to (none for a relay-only endpoint). */
  get boundSockets(): SocketAddr[] {
    return this.#socket.localAddresses;
  }

  /** The home relay, once chosen (see {@link online}). */
  get homeRelay(): RelayUrl | undefined {
    return this.#socket.pool.home;
  }

  /**
   * Our address: id, home relay URL (once chosen) and direct addresses (interfaces expanded
   * when bound to 0.0.0.0 / ::).
   */
  addr(): EndpointAddr {
    const home = this.#socket.pool.home;
    return EndpointAddr.from({ id: this.id, relayUrls: home ? [home] : [], directAddresses: this.#directAddresses() });
  }

  #directAddresses(): SocketAddr[] {
    const t = performance.now();
    if (this.#directCache && t - this.#directCache.at < DIRECT_ADDRESS_CACHE_MS) return this.#directCache.list;
    const direct: SocketAddr[] = [];
    for (const local of this.#socket.localAddresses) {
      const unspecified = local.ip.every((b) => b === 0);
      if (!unspecified) {
        direct.push(local);
        continue;
      }
      for (const address of this.#platform.interfaceAddresses(local.family)) {
        direct.push(SocketAddr.parse(local.family === 4 ? `${address}:${local.port}` : `[${address}]:${local.port}`));
      }
    }
    // What a NAT maps us to, as our relays see it (QAD), after our own addresses.
    for (const r of this.#reflexive) if (!direct.some((d) => d.toString() === r.toString())) direct.push(r);
    this.#directCache = { at: t, list: direct };
    return direct;
  }

  /**
   * Resolves with the home relay URL once the endpoint is connected to it — from then on,
   * peers can reach us knowing only our id and that URL.
   *
   * @throws {SdnetError} `ERR_NO_RELAYS` when the endpoint has no relays;
   *   `ERR_ENDPOINT_CLOSED` when it closes first; the signal's reason when it aborts
   */
  online(options: SignalOptions = {}): Promise<RelayUrl> {
    return this.#socket.pool.online(options.signal);
  }

  /** The relay connections held now (home relay and relays opened to reach peers). */
  relays(): RelayInfo[] {
    return this.#socket.pool.relays();
  }

  /** Follow a connection; `internal` ones (QAD probes) are not announced in the endpoint's events. */
  #track(core: CoreConnection, internal = false): ConnectionHandle {
    const handle = new ConnectionHandle(core, this.#driver);
    this.#handles.add(handle);
    if (!internal) {
      handle.onConnected = () => {
        const connection = handle.connection;
        const { remoteIdIfAny: remoteId, alpn } = connection;
        this.#events.emit('connection-opened', { connection, remoteId, alpn, side: core.side });
        handle.events.on('path-changed', (e) => this.#events.emit('path-changed', { connection, remoteId, ...e }));
        void handle.closed.then((error) => this.#events.emit('connection-closed', { connection, remoteId, alpn, error }));
      };
    }
    void handle.closed.then(() => this.#handles.delete(handle));
    return handle;
  }

  /**
   * Connect to `addr` speaking `alpn`. Resolves once the handshake completed and the peer
   * proved it holds `addr.id` (with X.509 credentials: once its certificate was accepted;
   * `addr` may then also be a socket address, `ip:port`).
   *
   * @throws {ConnectionError} with the cause's code (e.g. `ERR_TLS_PEER_ID_MISMATCH`,
   *   `ERR_TLS_BAD_CERTIFICATE`, `ERR_TLS_NO_ALPN`, `ERR_QUIC_HANDSHAKE_TIMEOUT`)
   */
  async connect(target: EndpointAddr | PublicKey | string, alpn: string | Uint8Array, options: ConnectOptions = {}): Promise<Connection> {
    if (this.#closed) throw new SdnetError('ERR_ENDPOINT_CLOSED', 'Endpoint is closed');
    options.signal?.throwIfAborted();
    if (typeof target === 'string') {
      // A socket address (X.509 endpoints), else an EndpointId in any of its string forms.
      if (this.#x509 && looksLikeSocketAddr(target)) return this.#connectSocket(target, alpn, options);
      let key: PublicKey;
      try {
        key = parseKeyAnyForm(target);
      } catch (err) {
        if (this.#x509) return this.#connectSocket(target, alpn, options);
        throw new SdnetError('ERR_INVALID_ARGUMENT', `Not an EndpointId: ${(err as Error).message}`, { cause: err });
      }
      target = key;
    }
    if (target instanceof PublicKey || target.isEmpty) {
      // Dial by id alone: ask the lookups, then dial every address found (iroh's address lookup).
      const id = target instanceof PublicKey ? target : target.id;
      const found = await this.resolve(id, { ...(options.signal ? { signal: options.signal } : {}), timeoutMs: options.resolveTimeoutMs ?? RESOLVE_DEADLINE_MS });
      options.signal?.throwIfAborted();
      if (found === undefined) throw new SdnetError('ERR_NO_ADDRESS', `No lookup knows an address of ${id.fmtShort()} (${this.#lookups.length === 0 ? 'no lookups are configured' : this.#lookups.map((l) => l.name).join(', ')})`);
      target = found;
    }
    // Every path we can use: each direct address we have a socket family for and each relay.
    // The first flight goes to all of them and the connection keeps to whichever answers
    // first (iroh-wire §3.5).
    // A hostile or bloated address must not turn one dial into a datagram spray: bounded.
    const addr = target;
    const targets: PathAddr[] = addr.directAddresses
      .filter((a) => this.#socket.hasFamily(a.family))
      .slice(0, MAX_DIAL_DIRECT)
      .map((a) => new UdpPath(a));
    for (const url of addr.relayUrls.slice(0, MAX_DIAL_RELAYS)) targets.push(this.#socket.relayPath(url, addr.id));
    if (targets.length === 0) {
      throw new SdnetError('ERR_NO_ADDRESS', `No address of ${addr.id.fmtShort()} is usable: it has ${addr.relayUrls.length === 0 ? 'no relay URL' : 'relay URLs'} and no direct address our sockets can reach`);
    }
    // X.509: the certificate, not the id, is what the peer proves (and what SNI names).
    const identity = this.#x509 ? (options.serverName !== undefined ? { serverName: options.serverName } : {}) : { serverKey: addr.id.toBytes(), serverName: tlsServerName(addr.id) };
    const core = this.#quic.connect(this.#driver.clock.now(), targets[0]!, {
      alternativePaths: targets.slice(1),
      ...identity,
      alpn: encodeAlpn(alpn),
      ...(options.settings ? { settings: options.settings } : {}),
    });
    return this.#finishConnect(core, options);
  }

  /** X.509 endpoints: dial a plain socket address. */
  async #connectSocket(target: string, alpn: string | Uint8Array, options: ConnectOptions): Promise<Connection> {
    if (!this.#x509) throw new SdnetError('ERR_INVALID_ARGUMENT', 'Dialling a socket address needs X.509 credentials (with raw public keys, pass an EndpointAddr: its id is what the peer proves)');
    let addr: SocketAddr;
    try {
      addr = SocketAddr.parse(target);
    } catch (err) {
      throw new SdnetError('ERR_INVALID_ARGUMENT', (err as Error).message, { cause: err });
    }
    if (!this.#socket.hasFamily(addr.family)) throw new SdnetError('ERR_NO_ADDRESS', `No UDP socket of this endpoint can reach ${target}`);
    const core = this.#quic.connect(this.#driver.clock.now(), new UdpPath(addr), {
      alpn: encodeAlpn(alpn),
      ...(options.serverName !== undefined ? { serverName: options.serverName } : {}),
      ...(options.settings ? { settings: options.settings } : {}),
    });
    return this.#finishConnect(core, options);
  }

  /**
   * @internal A connection from our UDP socket to an X.509 server that we verify while
   * presenting no certificate (QUIC address discovery against a relay); not announced in the
   * endpoint's events.
   */
  protected async dialUnannounced(addr: SocketAddr, alpn: string, serverName: string | undefined, verify: (peer: PeerCertificateInfo) => boolean, settings: Partial<ConnectionSettings>, signal: AbortSignal): Promise<Connection> {
    if (this.#closed) throw new SdnetError('ERR_ENDPOINT_CLOSED', 'Endpoint is closed');
    if (!this.#socket.hasFamily(addr.family)) throw new SdnetError('ERR_NO_ADDRESS', `No UDP socket of this endpoint can reach ${addr.toString()}`);
    const core = this.#quic.connect(this.#driver.clock.now(), new UdpPath(addr), {
      alpn: encodeAlpn(alpn),
      ...(serverName !== undefined ? { serverName } : {}),
      verifyX509Server: verify,
      settings,
    });
    return this.#finishConnect(core, { signal }, true);
  }

  /** @internal Whether a UDP socket of this family is bound. */
  protected hasUdpFamily(family: 4 | 6): boolean {
    return this.#socket.hasFamily(family);
  }

  /** @internal Our public addresses changed (QUIC address discovery): advertised from now on. */
  protected setReflexiveAddresses(addresses: readonly SocketAddr[]): void {
    this.#reflexive = [...addresses];
    this.#directCache = undefined;
    this.#events.emit('reflexive-addresses', { addresses: [...addresses] });
  }

  /** Our public addresses as our relays' QUIC address discovery reported them (empty without `qad`). */
  reflexiveAddresses(): SocketAddr[] {
    return [...this.#reflexive];
  }

  async #finishConnect(core: CoreConnection, options: ConnectOptions, internal = false): Promise<Connection> {
    const handle = this.#track(core, internal);
    this.#driver.schedule();
    try {
      await handle.whenConnected(options.signal);
    } catch (err) {
      if (!handle.error) {
        core.close(this.#driver.clock.now(), 0, 'aborted');
        this.#driver.schedule();
      }
      throw err;
    }
    return handle.connection;
  }

  /** Incoming connection attempts, until the endpoint closes. */
  async *accept(options: SignalOptions = {}): AsyncGenerator<Incoming> {
    for (;;) {
      const next = this.#incoming.shift();
      if (next) {
        yield next;
        continue;
      }
      if (this.#closed) return;
      options.signal?.throwIfAborted();
      await abortable<void>(options.signal, (resolve) => {
        this.#incomingWaiters.push(resolve);
        return () => {
          const i = this.#incomingWaiters.indexOf(resolve);
          if (i >= 0) this.#incomingWaiters.splice(i, 1);
        };
      });
    }
  }

  /** Endpoint-level counters (drops by reason, resets, version negotiations). */
  stats(): EndpointStats & { internalErrors: number; sendErrors: number; paths: PathSocketStats } {
    const paths = this.#socket.stats;
    const quic = this.#quic.stats;
    // Caught in a connection (it closed with INTERNAL_ERROR) or at the driver (a datagram dropped).
    return { ...quic, internalErrors: quic.internalErrors + this.#driver.internalErrors, sendErrors: paths.udpSendErrors, paths };
  }

  /**
   * Close every connection (code 0, unless already closed) and then the sockets. Waits for
   * the connections' closing periods (so a lost CONNECTION_CLOSE can be repeated) for at most
   * `graceMs` (default 1 s).
   */
  async close(options: { graceMs?: number } = {}): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    for (const l of this.#lookups) {
      try {
        await l.close?.();
      } catch {
        // closing anyway
      }
    }
    for (const h of this.#handles) h.core.close(this.#driver.clock.now(), 0, 'endpoint closed');
    this.#driver.drain();
    for (const w of this.#incomingWaiters.splice(0)) w();
    const grace = options.graceMs ?? 1000;
    const deadline = Date.now() + grace;
    while (this.#quic.connections.some((c) => !c.isClosed) && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 10));
    }
    // Let the last datagrams leave before the sockets go.
    await new Promise<void>((r) => scheduleImmediate(r));
    this.#driver.close();
    await this.#socket.close();
  }
}
