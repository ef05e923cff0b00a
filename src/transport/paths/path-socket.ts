/**
 * One datagram socket for the QUIC core whose addresses are either UDP socket addresses
 * ({@link UdpPath}) or (relay URL, endpoint id) pairs ({@link RelayPath}) — iroh's
 * "magicsock" idea (iroh-wire §3.5). Datagrams remember the path they came from, so the core
 * answers the same way; relayed datagrams to one peer are sent as batches at the end of each
 * drain, and received batches are split before the core sees them.
 *
 * @module
 */
import type { PublicKey, SecretKey } from '../../identity/keys.ts';
import type { RelayUrl } from '../../identity/relay-url.ts';
import { SocketAddr } from '../../identity/socket-addr.ts';
import type { NodeTlsOptions } from '../../relay/client/node-transport.ts';
import type { RelayDatagrams } from '../../relay/client/relay-client.ts';
import type { RelayTransport } from '../../relay/client/transport.ts';
import { SdnetError } from '../../util/errors.ts';
import type { CryptoProvider } from '../crypto/provider.ts';
import type { DatagramSender } from '../io/driver.ts';
import { UdpPath, type BindUdp, type DatagramSocket } from '../io/udp-path.ts';
import type { PathAddr } from '../quic/connection/types.ts';
import { MAX_RELAY_PATHS } from './limits.ts';
import { RelayPath } from './relay-path.ts';
import { RelayPool, type ProbeRelay } from './relay-pool.ts';

export interface PathSocketOptions {
  /** UDP addresses to bind (none: relay only). */
  bind: readonly SocketAddr[];
  /** Fail if any address cannot be bound (otherwise skip it, as for the default IPv6 socket). */
  strictBind: boolean;
  /** How UDP sockets are bound (node:dgram in Node; a browser has none). */
  bindUdp: BindUdp;
  /** How a relay's latency is measured. */
  probeRelay: ProbeRelay;
  secretKey: SecretKey;
  /** Relays a home relay is chosen from. */
  relays: readonly RelayUrl[];
  relayTls?: NodeTlsOptions;
  relayToken?: string;
  relayTransport: RelayTransport;
  relayIdleTimeoutMs?: number;
  crypto?: CryptoProvider;
  /** Every datagram received, from UDP or a relay, with its path. */
  onDatagram: (data: Uint8Array, path: PathAddr) => void;
}

/** Counters of datagrams through each kind of path. */
export interface PathSocketStats {
  udpSent: number;
  udpSendErrors: number;
  relaySent: number;
  relayReceived: number;
  /** Datagrams to a path of a kind we have no socket for (e.g. IPv6 with only IPv4 bound). */
  unroutable: number;
}

export class PathSocket implements DatagramSender {
  readonly #udp: DatagramSocket[];
  readonly pool: RelayPool;
  readonly #onDatagram: (data: Uint8Array, path: PathAddr) => void;
  /** Relayed datagrams waiting for the end of the drain, per path. */
  readonly #pending = new Map<string, { path: RelayPath; datagrams: Uint8Array[] }>();
  readonly #relayPaths = new Map<string, RelayPath>();
  readonly #stats = { udpSent: 0, relaySent: 0, relayReceived: 0, unroutable: 0 };
  #closed = false;

  private constructor(udp: DatagramSocket[], pool: RelayPool, onDatagram: (data: Uint8Array, path: PathAddr) => void) {
    this.#udp = udp;
    this.pool = pool;
    this.#onDatagram = onDatagram;
  }

  static async bind(options: PathSocketOptions): Promise<PathSocket> {
    // The socket exists before its receivers need it: datagrams go through this holder.
    const holder: { socket?: PathSocket } = {};
    const udp: DatagramSocket[] = [];
    for (const addr of options.bind) {
      try {
        udp.push(
          await options.bindUdp({
            bind: addr,
            onDatagram: (data, from) => {
              if (holder.socket) holder.socket.#receive(data, from);
            },
          }),
        );
      } catch (err) {
        if (options.strictBind) {
          await Promise.all(udp.map((s) => s.close()));
          throw new SdnetError('ERR_BIND', `Cannot bind ${addr.toString()}: ${(err as Error).message}`, { cause: err });
        }
      }
    }
    if (udp.length === 0 && options.bind.length > 0) throw new SdnetError('ERR_BIND', 'Cannot bind any UDP socket');
    const pool = new RelayPool({
      secretKey: options.secretKey,
      relays: options.relays,
      onDatagrams: (url, d) => {
        if (holder.socket) holder.socket.#receiveRelayed(url, d);
      },
      ...(options.crypto ? { crypto: options.crypto } : {}),
      ...(options.relayTls ? { tls: options.relayTls } : {}),
      ...(options.relayToken !== undefined ? { token: options.relayToken } : {}),
      transport: options.relayTransport,
      probe: options.probeRelay,
      ...(options.relayIdleTimeoutMs !== undefined ? { idleTimeoutMs: options.relayIdleTimeoutMs } : {}),
    });
    const socket = new PathSocket(udp, pool, options.onDatagram);
    holder.socket = socket;
    pool.start();
    return socket;
  }

  /** The bound UDP addresses. */
  get localAddresses(): SocketAddr[] {
    return this.#udp.map((s) => s.local);
  }

  /** Whether a UDP socket of this family is bound. */
  hasFamily(family: 4 | 6): boolean {
    return this.#udp.some((s) => s.family === family);
  }

  /** The path through the relay at `url` to `endpointId` (one object per pair, while remembered). */
  relayPath(url: RelayUrl, endpointId: PublicKey): RelayPath {
    const key = `${url.toString()}|${endpointId.toString()}`;
    let p = this.#relayPaths.get(key);
    if (p === undefined) {
      p = new RelayPath(url, endpointId);
      if (this.#relayPaths.size >= MAX_RELAY_PATHS) this.#relayPaths.delete(this.#relayPaths.keys().next().value!);
      this.#relayPaths.set(key, p);
    }
    return p;
  }

  get stats(): PathSocketStats {
    return { ...this.#stats, udpSendErrors: this.#udp.reduce((n, s) => n + s.sendErrors, 0) };
  }

  send(data: Uint8Array, path: PathAddr): void {
    if (this.#closed) return;
    if (path instanceof UdpPath) {
      const socket = this.#udp.find((s) => s.family === path.addr.family);
      if (socket === undefined) {
        this.#stats.unroutable++;
        return;
      }
      this.#stats.udpSent++;
      socket.send(data, path);
      return;
    }
    if (path instanceof RelayPath) {
      // The core's transmit buffers are not reused, so they can wait for the flush.
      let batch = this.#pending.get(path.key);
      if (batch === undefined) {
        batch = { path, datagrams: [] };
        this.#pending.set(path.key, batch);
      }
      batch.datagrams.push(data);
      return;
    }
    this.#stats.unroutable++;
  }

  /** Send the relayed datagrams gathered since the last flush (end of a driver drain). */
  flush(): void {
    if (this.#pending.size === 0) return;
    for (const { path, datagrams } of this.#pending.values()) {
      this.#stats.relaySent += datagrams.length;
      this.pool.send(path.url, path.endpointId, datagrams);
    }
    this.#pending.clear();
  }

  #receive(data: Uint8Array, from: UdpPath): void {
    if (!this.#closed) this.#onDatagram(data, from);
  }

  #receiveRelayed(url: RelayUrl, d: RelayDatagrams): void {
    if (this.#closed) return;
    const path = this.relayPath(url, d.src);
    for (const datagram of d.datagrams) {
      this.#stats.relayReceived++;
      // The relay client's buffers are views of its message: the core keeps (and decrypts in
      // place) what it is given, so it gets its own copy.
      this.#onDatagram(datagram.slice(), path);
    }
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.flush();
    this.#closed = true;
    await Promise.all([this.pool.close(), ...this.#udp.map((s) => s.close())]);
  }
}
