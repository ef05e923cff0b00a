/**
 * The victim of the hostile-input suite: one sans-IO server `QuicEndpoint` on a virtual
 * clock, with raw peers (`raw-peer.ts`) wired to it by path. Every datagram the server sends
 * is recorded (for amplification checks) and handed to the raw peer registered on its path.
 */
import { expect } from 'vitest';
import { SecretKey } from '../../src/identity/index.ts';
import { nodeCryptoProvider } from '../../src/transport/crypto/index.ts';
import type { ConnectionSettings } from '../../src/transport/quic/config.ts';
import type { Connection } from '../../src/transport/quic/connection/connection.ts';
import type { PathAddr, Transmit } from '../../src/transport/quic/connection/types.ts';
import { QuicEndpoint, type RetryMode, type RetryPolicy } from '../../src/transport/quic/endpoint.ts';
import { transportErrorName } from '../../src/transport/quic/errors.ts';
import { RawPeer, TEST_ALPN, type RawPeerOptions } from './raw-peer.ts';
import type { DirectAddress } from '../../src/transport/quic/wire/transport-params.ts';

export interface ArenaOptions {
  settings?: Partial<ConnectionSettings>;
  alpns?: Uint8Array[];
  statelessResetKey?: Uint8Array;
  /** When to validate client addresses with Retry first (the endpoint's default: 'auto'). */
  retry?: boolean | RetryMode | RetryPolicy;
  /** The server's direct addresses (sdnet_direct_addresses, n0 ADD_ADDRESS). */
  directAddresses?: () => readonly DirectAddress[];
  /** Addresses a peer names → paths (default: `a.b.c.d:port`, as `deliver` names them). */
  resolvePath?: (a: DirectAddress) => PathAddr | undefined;
}

export class Arena {
  /** Virtual time, µs. */
  now = 1_000_000;
  readonly serverSecret: SecretKey;
  readonly serverKey: Uint8Array;
  readonly server: QuicEndpoint;
  /** Every server-side connection ever accepted, in order. */
  readonly accepted: Connection[] = [];
  /** Every datagram the server sent. */
  readonly sent: Transmit[] = [];
  readonly #peers = new Map<string, RawPeer>();
  readonly #bytesFrom = new Map<string, number>();

  constructor(options: ArenaOptions = {}) {
    this.serverSecret = SecretKey.generate();
    this.serverKey = this.serverSecret.public().toBytes();
    this.server = new QuicEndpoint({
      provider: nodeCryptoProvider,
      secretKey: this.serverSecret.toBytes(),
      alpns: options.alpns ?? [TEST_ALPN],
      ...(options.settings ? { settings: options.settings } : {}),
      ...(options.statelessResetKey ? { statelessResetKey: options.statelessResetKey } : {}),
      ...(options.retry !== undefined ? { retry: options.retry } : {}),
      ...(options.directAddresses ? { directAddresses: options.directAddresses } : {}),
      resolvePath: options.resolvePath ?? ((a) => (a.ip.length === 4 ? { key: `${a.ip.join('.')}:${a.port}`, ip: a.ip, port: a.port } : undefined)),
    });
  }

  /** A raw peer whose datagrams come from path `name`. */
  peer(name = 'attacker', options: Partial<RawPeerOptions> = {}): RawPeer {
    const peer = new RawPeer({ serverKey: this.serverKey, ...options });
    this.#peers.set(name, peer);
    return peer;
  }

  /** Route what the server sends to `name` to `peer` too (a peer that moved or spoofs). */
  alias(name: string, peer: RawPeer): void {
    this.#peers.set(name, peer);
  }

  /**
   * A datagram arrives at the server from `from`. Throws if the endpoint throws. A name
   * `host:port` is a path whose host is `host` (several ports of one address).
   */
  deliver(from: string, data: Uint8Array): void {
    this.#bytesFrom.set(from, (this.#bytesFrom.get(from) ?? 0) + data.length);
    const colon = from.lastIndexOf(':');
    this.server.handleDatagram(this.now, colon > 0 ? { key: from, host: from.slice(0, colon), ...udpOf(from) } : { key: from }, data);
    for (let c = this.server.pollIncoming(); c !== undefined; c = this.server.pollIncoming()) this.accepted.push(c);
  }

  /** Drain the server's output; hand each datagram to the peer on its path. */
  pump(): Transmit[] {
    const out: Transmit[] = [];
    for (let i = 0; i < 100_000; i++) {
      const t = this.server.pollTransmit(this.now);
      if (t === undefined) break;
      out.push(t);
      this.sent.push(t);
      this.#peers.get(t.path.key)?.receive(t.data);
    }
    return out;
  }

  /** Pump both ways until nobody has anything to say (raw peers only send automatic answers). */
  settle(rounds = 16): void {
    for (let i = 0; i < rounds; i++) {
      this.pump();
      let moved = false;
      for (const [path, peer] of this.#peers) {
        for (const d of peer.takeOutgoing()) {
          moved = true;
          this.deliver(path, d);
        }
      }
      if (!moved) return;
    }
  }

  /** The server-side connection whose current path is `name` (or first heard from `name`). */
  conn(name = 'attacker'): Connection | undefined {
    return this.accepted.find((c) => c.path.key === name) ?? this.#firstFrom.get(name);
  }

  readonly #firstFrom = new Map<string, Connection>();

  /** A raw peer on `name` completes a handshake. Returns the peer and the server's connection. */
  handshake(name = 'attacker', options: Partial<RawPeerOptions> = {}): { peer: RawPeer; conn: Connection } {
    const peer = this.peer(name, options);
    const before = this.accepted.length;
    this.deliver(name, peer.initialDatagram());
    if (this.accepted.length === before) {
      // A server in Retry mode answers the first Initial with a Retry: follow it.
      this.pump();
      if (peer.retries.length > 0) {
        peer.followRetry();
        this.deliver(name, peer.initialDatagram());
      }
    }
    const conn = this.accepted[before];
    if (conn === undefined) throw new Error(`the server did not accept the Initial from ${name}`);
    this.#firstFrom.set(name, conn);
    this.settle();
    if (!peer.handshakeComplete || conn.state !== 'established') {
      throw new Error(`handshake of ${name} did not complete: peer ${peer.handshakeComplete}, server ${conn.state} ${conn.closeError?.message ?? ''}`);
    }
    return { peer, conn };
  }

  /** Send a 1-RTT packet with `frames` from `name`, then drain the server's answer. */
  send(peer: RawPeer, frames: Uint8Array[], from = 'attacker'): Transmit[] {
    this.deliver(from, peer.oneRtt(...frames));
    return this.pump();
  }

  /** Advance virtual time by `ms`, running every server timer that falls due on the way. */
  advance(ms: number): void {
    const target = this.now + ms * 1000;
    for (let i = 0; i < 1_000_000; i++) {
      const t = this.server.pollTimeout();
      if (t === undefined || t > target) break;
      this.now = Math.max(this.now, t);
      this.server.handleTimeout(this.now);
      this.pump();
    }
    this.now = target;
    this.server.handleTimeout(this.now);
    this.pump();
  }

  /** Drop the harness's own references (connections, peers, transmits), e.g. before a heap measurement. */
  forget(): void {
    this.accepted.length = 0;
    this.sent.length = 0;
    this.#peers.clear();
    this.#bytesFrom.clear();
    this.#firstFrom.clear();
  }

  /** Bytes the server received from / sent to a path. */
  bytesFrom(path: string): number {
    return this.#bytesFrom.get(path) ?? 0;
  }
  bytesTo(path: string): number {
    return this.sent.filter((t) => t.path.key === path).reduce((n, t) => n + t.data.length, 0);
  }

  /** Unexpected exceptions inside any connection (must stay 0). */
  get internalErrors(): number {
    return this.accepted.reduce((n, c) => n + c.internalErrors, 0);
  }

  /** Total drops counted by the endpoint. */
  get drops(): number {
    return Object.values(this.server.stats.dropped).reduce((n, x) => n + x, 0);
  }
}

export const path = (key: string): PathAddr => ({ key });

const name = (code: number | undefined): string => (code === undefined ? 'none' : transportErrorName(code));

/**
 * The victim closed with transport error `code`: locally (its close error) and on the wire (the
 * CONNECTION_CLOSE the peer read), with `frameType` when given, and no internal error.
 */
export function expectClosedWith(arena: Arena, conn: Connection, peer: RawPeer, code: number, frameType?: number): void {
  const err = conn.closeError;
  expect({ kind: err?.kind, code: name(err?.transportCode) }, `victim's close: ${err?.message}`).toEqual({ kind: 'transport', code: name(code) });
  const wire = peer.closes.find((c) => !c.app);
  expect(name(wire?.code), 'CONNECTION_CLOSE on the wire').toBe(name(code));
  if (frameType !== undefined) expect(wire?.frameType, 'frame type in CONNECTION_CLOSE').toBe(frameType);
  expect(arena.internalErrors, 'internal errors').toBe(0);
}

/** The victim closed with one of `codes` (where the RFC allows a choice). */
export function expectClosedWithOneOf(arena: Arena, conn: Connection, peer: RawPeer, codes: number[]): void {
  const err = conn.closeError;
  expect(err?.kind, `victim's close: ${err?.message}`).toBe('transport');
  expect(codes.map(name)).toContain(name(err?.transportCode));
  expect(codes.map(name)).toContain(name(peer.closes.find((c) => !c.app)?.code));
  expect(arena.internalErrors, 'internal errors').toBe(0);
}

/** The victim is still up: established, no close, no internal error. */
export function expectAlive(arena: Arena, conn: Connection): void {
  expect({ state: conn.state, error: conn.closeError?.message }).toEqual({ state: 'established', error: undefined });
  expect(arena.internalErrors, 'internal errors').toBe(0);
}

/** A path named `a.b.c.d:port` carries that IPv4 address and port (what OBSERVED_ADDRESS reports). */
function udpOf(name: string): { ip: Uint8Array; port: number } | undefined {
  const m = /^(\d+)\.(\d+)\.(\d+)\.(\d+):(\d+)$/.exec(name);
  return m ? { ip: Uint8Array.from(m.slice(1, 5).map(Number)), port: Number(m[5]) } : undefined;
}
