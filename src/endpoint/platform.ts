/**
 * The seam between the endpoint and the platform it runs on. Everything an endpoint needs
 * that differs between Node and a browser tab comes through here, so that the endpoint, the
 * QUIC core, the relay client and the path socket import no `node:` module:
 *
 * - Node (`node-platform.ts`): node:dgram UDP sockets, the `ws` relay transport with TLS
 *   options, node:http `/ping` probes, node:os interface addresses, node:crypto, the
 *   SSLKEYLOGFILE writer and X.509 credentials.
 * - Browser (`browser-platform.ts`): no UDP (relay-only), the WHATWG `WebSocket` relay
 *   transport, `fetch` probes, @noble crypto (randomness from `crypto.getRandomValues`).
 *
 * Timers are the global scope's (`setTimeout`; immediates through `transport/io/immediate.ts`).
 *
 * @module
 */
import type { NodeTlsOptions } from '../relay/client/node-transport.ts';
import type { RelayTransport } from '../relay/client/transport.ts';
import type { CryptoProvider } from '../transport/crypto/provider.ts';
import type { BindUdp } from '../transport/io/udp-path.ts';
import type { ProbeRelay } from '../transport/paths/relay-pool.ts';
import type { QuicCredentials } from '../transport/quic/endpoint.ts';
import type { X509Options } from './x509.ts';
import type { AddressLookup } from '../discovery/address-lookup.ts';
import type { SecretKey } from '../identity/keys.ts';

export interface EndpointPlatform {
  /** For messages: `'node'` or `'browser'`. */
  readonly name: string;
  /** The crypto provider used when the options name none. */
  readonly crypto: CryptoProvider;
  /** UDP addresses bound when the options give none (a browser: none, relay-only). */
  readonly defaultBind: readonly string[];
  /** Binds a UDP socket; rejects where there are none. */
  readonly bindUdp: BindUdp;
  /** The relay WebSocket transport used when the options name none. */
  relayTransport(tls: NodeTlsOptions | undefined): RelayTransport;
  /** Relay latency probe (`GET /ping`). */
  readonly probeRelay: ProbeRelay;
  /** This host's unscoped interface addresses of a family (to expand a socket bound to 0.0.0.0 / ::). */
  interfaceAddresses(family: 4 | 6): string[];
  /** Where TLS secrets are logged (SSLKEYLOGFILE), if anywhere. */
  keyLog(): ((line: string) => void) | undefined;
  /**
   * TLS cipher suites in preference order (offered as a client, chosen among a client's offers
   * as a server); undefined: the QUIC default (AES-128-GCM first).
   */
  readonly cipherSuites?: readonly number[];
  /** QUIC credentials from X.509 options; throws where certificates are not supported. */
  x509Credentials(options: X509Options): QuicCredentials;
  /** A pkarr lookup publishing to and resolving at `relays` (pkarr relay URLs); undefined where there is none. */
  pkarrLookup?(options: { relays: readonly string[]; secretKey: SecretKey; tls?: NodeTlsOptions }): AddressLookup;
}
