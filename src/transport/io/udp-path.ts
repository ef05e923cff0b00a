/**
 * UDP addresses as the QUIC core sees them ({@link UdpPath}), and the shape of a bound UDP
 * socket ({@link DatagramSocket}) — without `node:dgram`, so that code which only names UDP
 * paths (the endpoint, the path socket) also runs where there are no UDP sockets (browsers).
 *
 * @module
 */
import { SocketAddr } from '../../identity/socket-addr.ts';
import { ipScope } from '../quic/address.ts';
import type { PathAddr } from '../quic/connection/types.ts';

/** A remote UDP address as the core sees it. */
export class UdpPath implements PathAddr {
  readonly kind = 'udp' as const;
  readonly key: string;
  readonly addr: SocketAddr;
  /** The host string for dgram, computed once (it is needed for every datagram sent). */
  readonly host: string;
  readonly port: number;
  readonly loopback: boolean;
  readonly ip: Uint8Array;

  constructor(addr: SocketAddr) {
    this.addr = addr;
    this.key = `udp:${addr.toString()}`;
    this.host = addr.host;
    this.port = addr.port;
    this.ip = addr.ip;
    this.loopback = ipScope(addr.ip) === 'loopback';
  }

  static from(host: string, port: number): UdpPath {
    // A dual-stack socket reports IPv4 peers as ::ffff:a.b.c.d; keep one canonical form.
    const h = host.startsWith('::ffff:') && host.includes('.') ? host.slice(7) : host;
    return new UdpPath(SocketAddr.parse(h.includes(':') ? `[${h}]:${port}` : `${h}:${port}`));
  }
}

export interface UdpSocketOptions {
  /** `ip:port` or `[ipv6]:port` to bind. */
  bind: SocketAddr;
  onDatagram: (data: Uint8Array, from: UdpPath) => void;
  onError?: (err: Error) => void;
}

/** One bound UDP socket, as the path socket uses it. */
export interface DatagramSocket {
  readonly family: 4 | 6;
  /** Datagrams that could not be sent (treated as lost). */
  readonly sendErrors: number;
  /** The bound address. */
  readonly local: SocketAddr;
  send(data: Uint8Array, to: UdpPath): void;
  close(): Promise<void>;
}

/** Binds a UDP socket (rejects when the address cannot be bound). */
export type BindUdp = (options: UdpSocketOptions) => Promise<DatagramSocket>;
