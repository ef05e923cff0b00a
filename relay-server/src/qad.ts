/**
 * The relay's QUIC address discovery service (iroh-wire §1.11): a QUIC endpoint on a UDP port
 * (7842 by convention), ALPN `/iroh-qad/0`, presenting the relay's TLS certificate (or, on a
 * plain-HTTP relay, a self-signed one its clients do not verify). It allows no streams and no
 * datagrams; all it does is report to each client, in OBSERVED_ADDRESS frames, the address
 * its packets come from — the mapping a NAT gave the client's socket — on the handshake path
 * and again when that path changes. Connections stay open (clients keep them alive) and are
 * capped in number; the QUIC endpoint's own limits (handshakes per address, Retry under load,
 * the 3× amplification bound) protect the port like any other.
 *
 * @module
 */
import { Endpoint } from '../../src/endpoint/endpoint.ts';
import { QAD_ALPN } from '../../src/endpoint/qad.ts';
import { selfSignedEd25519 } from '../../src/endpoint/x509.ts';
import { SocketAddr } from '../../src/identity/socket-addr.ts';
import type { Logger } from './log.ts';

export interface QadServerOptions {
  host: string;
  /** UDP port; 0 picks a free one. */
  port: number;
  /** The relay's PEM certificate chain and key; without them a self-signed Ed25519 certificate. */
  tls?: { cert: string | Uint8Array; key: string | Uint8Array };
  /** Connections held at once; more are refused (application close 2). */
  maxConnections: number;
  logger: Logger;
}

export class QadServer {
  readonly #endpoint: Endpoint;
  readonly #max: number;
  readonly #log: Logger;
  readonly #open = new Set<Promise<unknown>>();
  /** The UDP port it listens on. */
  readonly port: number;
  /** Whether clients can verify its certificate (the relay's own), or it is self-signed. */
  readonly verifiable: boolean;
  accepted = 0;
  refused = 0;

  private constructor(endpoint: Endpoint, options: QadServerOptions) {
    this.#endpoint = endpoint;
    this.#max = options.maxConnections;
    this.#log = options.logger;
    this.port = endpoint.boundSockets[0]!.port;
    this.verifiable = options.tls !== undefined;
    void this.#acceptLoop();
  }

  /**
   * Bind and serve.
   *
   * @throws {SdnetError} `ERR_INVALID_ARGUMENT` when the certificate's key is neither Ed25519
   *   nor ECDSA P-256 (the keys our TLS signs with), or the socket error when the port is taken
   */
  static async start(options: QadServerOptions): Promise<QadServer> {
    const own = options.tls === undefined ? selfSignedEd25519('sdnet-relay QAD') : undefined;
    const text = (v: string | Uint8Array) => (typeof v === 'string' ? v : new TextDecoder().decode(v));
    const bind = options.host.includes(':') ? `[${options.host}]:${options.port}` : `${options.host}:${options.port}`;
    SocketAddr.parse(bind);
    const endpoint = await Endpoint.bind({
      bindAddr: bind,
      alpns: [QAD_ALPN],
      x509: {
        certificateChain: own ? own.certificatePem : text(options.tls!.cert),
        privateKey: own ? own.privateKeyPem : text(options.tls!.key),
        // Clients present no certificate; nothing to verify.
        verifyPeer: () => true,
      },
      advertiseDirectAddresses: false,
      settings: { addressDiscovery: 0, maxConcurrentBidiStreams: 0, maxConcurrentUniStreams: 0, maxDatagramFrameSize: 0, maxIdleTimeout: 35_000, keepAliveInterval: 0 },
    });
    return new QadServer(endpoint, options);
  }

  /** QAD connections open now. */
  get connections(): number {
    return this.#open.size;
  }

  async #acceptLoop(): Promise<void> {
    try {
      for await (const incoming of this.#endpoint.accept()) {
        if (this.#open.size >= this.#max) {
          this.refused++;
          incoming.refuse(0x02, 'busy');
          continue;
        }
        this.accepted++;
        const held = incoming
          .accept()
          .then((c) => c.closed)
          .catch(() => undefined);
        this.#open.add(held);
        void held.then(() => this.#open.delete(held));
      }
    } catch (err) {
      this.#log.warn('QAD accept loop ended', { error: (err as Error).message });
    }
  }

  async close(): Promise<void> {
    await this.#endpoint.close({ graceMs: 200 });
  }
}
