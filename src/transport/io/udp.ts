/**
 * UDP sockets for the QUIC driver (node:dgram), IPv4 and IPv6, with 4 MiB buffers when the
 * system allows (perf-anchors.md §0). Addresses are {@link UdpPath}s whose `key` is the
 * canonical `ip:port` string the core compares.
 *
 * @module
 */
import dgram from 'node:dgram';
import { SocketAddr } from '../../identity/socket-addr.ts';
import { UdpPath, type DatagramSocket, type UdpSocketOptions } from './udp-path.ts';

export { UdpPath, type UdpSocketOptions } from './udp-path.ts';

const SOCKET_BUFFER = 4 * 1024 * 1024;

/** dgram's lookup for destinations that are always IP literals (UdpPath hosts). */
function literalLookup(host: string, _options: unknown, callback: (err: NodeJS.ErrnoException | null, address: string, family: number) => void): void {
  callback(null, host, host.includes(':') ? 6 : 4);
}
/** Source addresses remembered per socket (oldest forgotten first). */
const PATH_CACHE_SIZE = 4096;

/** One bound UDP socket. */
export class UdpSocket implements DatagramSocket {
  readonly #socket: dgram.Socket;
  readonly family: 4 | 6;
  #closed = false;
  /** Datagrams that could not be sent (e.g. EMSGSIZE, ENETUNREACH); treated as lost. */
  sendErrors = 0;

  private constructor(socket: dgram.Socket, family: 4 | 6) {
    this.#socket = socket;
    this.family = family;
  }

  static async bind(options: UdpSocketOptions): Promise<UdpSocket> {
    const family = options.bind.family;
    const socket = dgram.createSocket({
      type: family === 4 ? 'udp4' : 'udp6',
      ipv6Only: family === 6,
      recvBufferSize: SOCKET_BUFFER,
      sendBufferSize: SOCKET_BUFFER,
      // We only ever send to IP literals: answer the "lookup" at once instead of through
      // dns.lookup's next tick on every datagram.
      lookup: literalLookup,
    });
    const s = new UdpSocket(socket, family);
    await new Promise<void>((resolve, reject) => {
      socket.once('error', reject);
      socket.bind(options.bind.port, options.bind.host, () => {
        socket.off('error', reject);
        resolve();
      });
    });
    try {
      socket.setRecvBufferSize(SOCKET_BUFFER);
      socket.setSendBufferSize(SOCKET_BUFFER);
    } catch {
      // Not allowed on this system: the defaults work, just with more loss under load.
    }
    // Parsing the source address for every datagram is costly; peers are few, so remember them.
    const paths = new Map<string, UdpPath>();
    socket.on('message', (msg, rinfo) => {
      const key = `${rinfo.address}|${rinfo.port}`;
      let from = paths.get(key);
      if (from === undefined) {
        try {
          from = UdpPath.from(rinfo.address, rinfo.port);
        } catch {
          return; // a zoned IPv6 source we do not track
        }
        if (paths.size >= PATH_CACHE_SIZE) paths.delete(paths.keys().next().value!);
        paths.set(key, from);
      }
      options.onDatagram(new Uint8Array(msg.buffer, msg.byteOffset, msg.byteLength), from);
    });
    // A send error (ICMP-triggered EMSGSIZE, unreachable) must never kill the process (CVE-2024-53259 class).
    socket.on('error', (err) => {
      s.sendErrors++;
      options.onError?.(err);
    });
    return s;
  }

  /** The bound address. */
  get local(): SocketAddr {
    const a = this.#socket.address();
    return SocketAddr.parse(a.family === 'IPv6' ? `[${a.address}]:${a.port}` : `${a.address}:${a.port}`);
  }

  send(data: Uint8Array, to: UdpPath): void {
    if (this.#closed) return;
    // No per-datagram callback (it costs ~15%, perf-anchors §3.1); failures arrive as 'error'.
    this.#socket.send(data, to.port, to.host);
  }

  close(): Promise<void> {
    if (this.#closed) return Promise.resolve();
    this.#closed = true;
    return new Promise((resolve) => this.#socket.close(() => resolve()));
  }
}
