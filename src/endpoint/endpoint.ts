/**
 * `Endpoint`: the library's front door, in iroh's shape. Bind a UDP socket with an identity,
 * `connect()` to another endpoint by its address and an ALPN, `accept()` incoming
 * connections, `close()`.
 *
 * @module
 */
import { networkInterfaces } from 'node:os';
import { EndpointAddr } from '../identity/endpoint-addr.ts';
import { PublicKey, SecretKey } from '../identity/keys.ts';
import { SocketAddr } from '../identity/socket-addr.ts';
import { tlsServerName } from '../identity/tls-name.ts';
import { defaultCryptoProvider, type CryptoProvider } from '../transport/crypto/index.ts';
import type { ConnectionSettings } from '../transport/quic/config.ts';
import type { Connection as CoreConnection } from '../transport/quic/connection/connection.ts';
import type { PathAddr } from '../transport/quic/connection/types.ts';
import { QuicEndpoint } from '../transport/quic/endpoint.ts';
import { EndpointDriver } from '../transport/io/driver.ts';
import { UdpPath, UdpSocket } from '../transport/io/udp.ts';
import { keyLogWriter } from '../transport/io/keylog.ts';
import { SdnetError } from '../util/errors.ts';
import { Connection, ConnectionHandle, type SignalOptions } from './connection.ts';

export interface EndpointOptions {
  /** Our identity; a fresh one if not given. */
  secretKey?: SecretKey;
  /** ALPN protocols we accept incoming connections for (none: we only dial). */
  alpns?: readonly (string | Uint8Array)[];
  /**
   * Where to bind: `ip:port` / `[ipv6]:port`, or several. Default: `0.0.0.0:0` and `[::]:0`
   * (IPv6 only if the system has it).
   */
  bindAddr?: string | readonly string[];
  /** QUIC settings (windows, timeouts, congestion control). */
  settings?: Partial<ConnectionSettings>;
  /** Crypto implementation (default: node:crypto). */
  provider?: CryptoProvider;
}

export interface ConnectOptions extends SignalOptions {
  /** QUIC settings for this connection. */
  settings?: Partial<ConnectionSettings>;
}

/** Connection attempts waiting for accept() at most; later ones are turned away. */
const MAX_PENDING_INCOMING = 128;

const encodeAlpn = (a: string | Uint8Array): Uint8Array => (typeof a === 'string' ? new TextEncoder().encode(a) : a);

/** A connection attempt from a peer, before its handshake completes. */
export class Incoming {
  readonly #handle: ConnectionHandle;
  /** Where it came from. */
  readonly remoteAddress: PathAddr;

  /** @internal */
  constructor(handle: ConnectionHandle) {
    this.#handle = handle;
    this.remoteAddress = handle.core.path;
  }

  /** Complete the handshake and return the connection. */
  async accept(options: SignalOptions = {}): Promise<Connection> {
    await this.#handle.whenConnected(options.signal);
    return new Connection(this.#handle);
  }

  /** Turn the peer away (CONNECTION_REFUSED-style application close). */
  refuse(): void {
    this.#handle.core.close(this.#handle.driver.clock.now(), 0x02, 'refused');
    this.#handle.driver.schedule();
  }
}

export class Endpoint {
  readonly secretKey: SecretKey;
  readonly #quic: QuicEndpoint;
  readonly #driver: EndpointDriver;
  readonly #sockets: UdpSocket[];
  readonly #incoming: Incoming[] = [];
  readonly #incomingWaiters: (() => void)[] = [];
  readonly #handles = new Set<ConnectionHandle>();
  #closed = false;

  private constructor(secretKey: SecretKey, quic: QuicEndpoint, driver: EndpointDriver, sockets: UdpSocket[]) {
    this.secretKey = secretKey;
    this.#quic = quic;
    this.#driver = driver;
    this.#sockets = sockets;
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

  /** Bind an endpoint. */
  static async bind(options: EndpointOptions = {}): Promise<Endpoint> {
    const secretKey = options.secretKey ?? SecretKey.generate();
    const provider = options.provider ?? defaultCryptoProvider;
    const keyLog = keyLogWriter();
    const quic = new QuicEndpoint({
      provider,
      secretKey: secretKey.toBytes(),
      ...(keyLog ? { keyLog } : {}),
      alpns: (options.alpns ?? []).map(encodeAlpn),
      ...(options.settings ? { settings: options.settings } : {}),
    });
    const sockets: UdpSocket[] = [];
    const sender = {
      send: (data: Uint8Array, path: PathAddr) => {
        if (!(path instanceof UdpPath)) return;
        const s = sockets.find((x) => x.family === path.addr.family);
        s?.send(data, path);
      },
    };
    const driver = new EndpointDriver(quic, sender);
    const explicit = options.bindAddr !== undefined;
    const addrs = typeof options.bindAddr === 'string' ? [options.bindAddr] : (options.bindAddr ?? ['0.0.0.0:0', '[::]:0']);
    for (const a of addrs) {
      try {
        sockets.push(await UdpSocket.bind({ bind: SocketAddr.parse(a), onDatagram: (data, from) => driver.receive(data, from) }));
      } catch (err) {
        if (explicit) {
          for (const s of sockets) await s.close();
          throw new SdnetError('ERR_BIND', `Cannot bind ${a}: ${(err as Error).message}`, { cause: err });
        }
      }
    }
    if (sockets.length === 0) throw new SdnetError('ERR_BIND', 'Cannot bind any UDP socket');
    return new Endpoint(secretKey, quic, driver, sockets);
  }

  /** Our EndpointId. */
  get id(): PublicKey {
    return this.secretKey.public();
  }

  /** The addresses the sockets are bound to. */
  get boundSockets(): SocketAddr[] {
    return this.#sockets.map((s) => s.local);
  }

  /** Our address: id and direct addresses (interfaces expanded when bound to 0.0.0.0 / ::). */
  addr(): EndpointAddr {
    const direct: SocketAddr[] = [];
    for (const s of this.#sockets) {
      const local = s.local;
      const unspecified = local.ip.every((b) => b === 0);
      if (!unspecified) {
        direct.push(local);
        continue;
      }
      for (const list of Object.values(networkInterfaces())) {
        for (const info of list ?? []) {
          if ((info.family === 'IPv4') !== (local.family === 4) || info.scopeid) continue;
          direct.push(SocketAddr.parse(info.family === 'IPv4' ? `${info.address}:${local.port}` : `[${info.address}]:${local.port}`));
        }
      }
    }
    return EndpointAddr.from({ id: this.id, directAddresses: direct });
  }

  #track(core: CoreConnection): ConnectionHandle {
    const handle = new ConnectionHandle(core, this.#driver);
    this.#handles.add(handle);
    void handle.closed.then(() => this.#handles.delete(handle));
    return handle;
  }

  /**
   * Connect to `addr` speaking `alpn`. Resolves once the handshake completed and the peer
   * proved it holds `addr.id`.
   *
   * @throws {ConnectionError} with the cause's code (e.g. `ERR_TLS_PEER_ID_MISMATCH`,
   *   `ERR_TLS_NO_ALPN`, `ERR_QUIC_HANDSHAKE_TIMEOUT`)
   */
  async connect(addr: EndpointAddr, alpn: string | Uint8Array, options: ConnectOptions = {}): Promise<Connection> {
    if (this.#closed) throw new SdnetError('ERR_ENDPOINT_CLOSED', 'Endpoint is closed');
    options.signal?.throwIfAborted();
    // Every direct address we have a socket family for: the first flight goes to all of them
    // and the connection keeps to whichever answers first (iroh-wire §3.5).
    const targets = addr.directAddresses.filter((a) => this.#sockets.some((s) => s.family === a.family)).map((a) => new UdpPath(a));
    if (targets.length === 0) throw new SdnetError('ERR_NO_ADDRESS', `No direct address of ${addr.id.fmtShort()} is reachable from our sockets`);
    const core = this.#quic.connect(this.#driver.clock.now(), targets[0]!, {
      alternativePaths: targets.slice(1),
      serverKey: addr.id.toBytes(),
      alpn: encodeAlpn(alpn),
      serverName: tlsServerName(addr.id),
      ...(options.settings ? { settings: options.settings } : {}),
    });
    const handle = this.#track(core);
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
    return new Connection(handle);
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
      await new Promise<void>((resolve) => {
        this.#incomingWaiters.push(resolve);
        options.signal?.addEventListener('abort', () => resolve(), { once: true });
      });
    }
  }

  /** Endpoint-level counters (drops by reason, resets, version negotiations). */
  stats() {
    return { ...this.#quic.stats, internalErrors: this.#driver.internalErrors, sendErrors: this.#sockets.reduce((n, s) => n + s.sendErrors, 0) };
  }

  /**
   * Close every connection (code 0, unless already closed) and then the sockets. Waits for
   * the connections' closing periods (so a lost CONNECTION_CLOSE can be repeated) for at most
   * `graceMs` (default 1 s).
   */
  async close(options: { graceMs?: number } = {}): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    for (const h of this.#handles) h.core.close(this.#driver.clock.now(), 0, 'endpoint closed');
    this.#driver.drain();
    for (const w of this.#incomingWaiters.splice(0)) w();
    const grace = options.graceMs ?? 1000;
    const deadline = Date.now() + grace;
    while (this.#quic.connections.some((c) => !c.isClosed) && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 10));
    }
    // Let the last datagrams leave before the sockets go.
    await new Promise((r) => setImmediate(r));
    this.#driver.close();
    await Promise.all(this.#sockets.map((s) => s.close()));
  }
}
