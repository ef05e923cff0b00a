/**
 * QUIC address discovery (QAD) against relays, as iroh does it (iroh-wire §1.11): from the
 * endpoint's own UDP socket, a QUIC connection to each relay's QAD port with ALPN
 * `/iroh-qad/0`, the relay's X.509 certificate checked, no client certificate, asking
 * (address_discovery = 1) for OBSERVED_ADDRESS reports. What the relay reports is the address
 * a NAT maps our socket to: a candidate that peers behind other NATs can try.
 *
 * One connection per relay and address family, kept open (keep-alive 25 s, idle 35 s as
 * iroh's client); redialled with a backoff when it fails or closes. An observation is dropped
 * when its connection closes (the mapping it describes may be gone).
 *
 * @module
 */
import { lookup } from 'node:dns/promises';
import { isIP } from 'node:net';
import { rootCertificates } from 'node:tls';
import type { RelayUrl } from '../identity/relay-url.ts';
import { SocketAddr } from '../identity/socket-addr.ts';
import type { ConnectionSettings } from '../transport/quic/config.ts';
import type { PeerCertificateInfo } from '../transport/quic/endpoint.ts';
import { delay } from '../util/abort.ts';
import type { Connection } from './connection.ts';
import { trustAnchorsVerifier, type PemOrDer } from './x509.ts';

/** The ALPN of iroh's QAD service. */
export const QAD_ALPN = '/iroh-qad/0';
/** iroh's default QAD port on a relay host (`RelayConfig.quic.port`). */
export const DEFAULT_QAD_PORT = 7842;

/** QUIC settings of a QAD connection: iroh's client values, no streams, no datagrams. */
export const QAD_CLIENT_SETTINGS: Partial<ConnectionSettings> = {
  addressDiscovery: 1,
  maxIdleTimeout: 35_000,
  keepAliveInterval: 25_000,
  maxConcurrentBidiStreams: 0,
  maxConcurrentUniStreams: 0,
  maxDatagramFrameSize: 0,
};

const RETRY_MIN_MS = 5_000;
const RETRY_MAX_MS = 300_000;

export interface QadOptions {
  /** The relays' QAD UDP port (default 7842, iroh's). */
  port?: number;
  /**
   * Trust anchors for the relays' certificates (default: the endpoint's `relayTls.ca`, else
   * Node's bundled Mozilla roots). Relays reached over plain `http` are not verified: their
   * QAD answer is trusted as much as the relay connection itself, which is not at all.
   */
  ca?: PemOrDer | readonly PemOrDer[];
}

/** What the endpoint lends the client. */
export interface QadHost {
  /** Dial `addr` from our socket, checking the server's chain with `verify`. */
  dial(addr: SocketAddr, serverName: string | undefined, verify: (peer: PeerCertificateInfo) => boolean, signal: AbortSignal): Promise<Connection>;
  /** Address families our UDP sockets have. */
  hasFamily(family: 4 | 6): boolean;
  /** The set of reflexive addresses ({@link QadClient.addresses}) changed. */
  onChange(): void;
}

/** One observation: what `relay` saw over `family`. */
interface Observation {
  readonly relay: RelayUrl;
  readonly address: SocketAddr;
}

export class QadClient {
  readonly #host: QadHost;
  readonly #port: number;
  readonly #anchors: PemOrDer | readonly PemOrDer[] | undefined;
  readonly #abort = new AbortController();
  readonly #observed = new Map<string, Observation>();
  #verifier: ((peer: PeerCertificateInfo) => boolean) | undefined;
  /** Connection attempts made and failed (tests and stats). */
  attempts = 0;
  failures = 0;

  constructor(host: QadHost, options: QadOptions & { relayCa?: PemOrDer | readonly PemOrDer[] }) {
    this.#host = host;
    this.#port = options.port ?? DEFAULT_QAD_PORT;
    this.#anchors = options.ca ?? options.relayCa;
  }

  /** Probe each relay over each address family we have, until {@link close}. */
  start(relays: readonly RelayUrl[]): void {
    for (const relay of relays) {
      for (const family of [4, 6] as const) {
        if (this.#host.hasFamily(family)) void this.#run(relay, family);
      }
    }
  }

  /** The distinct reflexive addresses relays reported (empty until one did). */
  addresses(): SocketAddr[] {
    const seen = new Map<string, SocketAddr>();
    for (const o of this.#observed.values()) seen.set(o.address.toString(), o.address);
    return [...seen.values()];
  }

  close(): void {
    this.#abort.abort(new Error('endpoint closed'));
  }

  #verify(relay: URL, host: string): (peer: PeerCertificateInfo) => boolean {
    if (relay.protocol !== 'https:') return () => true;
    this.#verifier ??= trustAnchorsVerifier(this.#anchors ?? rootCertificates);
    const check = this.#verifier;
    // The name we check is the relay's host, IP literal or not (an IP goes in no SNI).
    return (peer) => check({ ...peer, serverName: host });
  }

  async #run(relay: RelayUrl, family: 4 | 6): Promise<void> {
    const signal = this.#abort.signal;
    const url = relay.toURL();
    const host = url.hostname.startsWith('[') ? url.hostname.slice(1, -1) : url.hostname;
    const key = `${relay.toString()}|${family}`;
    let backoff = RETRY_MIN_MS;
    while (!signal.aborted) {
      let connection: Connection | undefined;
      try {
        const literal = isIP(host);
        if (literal !== 0 && literal !== family) return;
        const ip = literal !== 0 ? host : (await lookup(host, { family })).address;
        this.attempts++;
        connection = await this.#host.dial(SocketAddr.parse(family === 4 ? `${ip}:${this.#port}` : `[${ip}]:${this.#port}`), literal !== 0 ? undefined : host, this.#verify(url, host), signal);
        backoff = RETRY_MIN_MS;
        const c = connection;
        c.on('observed-address', ({ address }) => {
          const before = this.#observed.get(key)?.address.toString();
          this.#observed.set(key, { relay, address });
          if (before !== address.toString()) this.#host.onChange();
        });
        const stop = () => c.close(1, 'finished');
        signal.addEventListener('abort', stop, { once: true });
        await c.closed;
        signal.removeEventListener('abort', stop);
      } catch {
        this.failures++;
      }
      if (this.#observed.delete(key)) this.#host.onChange();
      if (signal.aborted) return;
      await delay(backoff, signal).catch(() => undefined);
      backoff = Math.min(backoff * 2, RETRY_MAX_MS);
    }
  }
}
