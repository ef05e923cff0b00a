/**
 * The browser platform of the endpoint ({@link EndpointPlatform}): no UDP sockets (the
 * endpoint is relay-only), the WHATWG `WebSocket` relay transport, `fetch` latency probes and
 * the @noble crypto provider (randomness from `crypto.getRandomValues`). Imports no `node:`
 * module.
 *
 * @module
 */
import { standardWebSocketTransport } from '../relay/client/standard-transport.ts';
import { nobleCryptoProvider } from '../transport/crypto/noble-provider.ts';
import { probeRelayWithFetch } from '../transport/paths/relay-probe-fetch.ts';
import { SdnetError } from '../util/errors.ts';
import { TLS_AES_128_GCM_SHA256, TLS_AES_256_GCM_SHA384, TLS_CHACHA20_POLY1305_SHA256 } from '../transport/quic/tls/constants.ts';
import type { EndpointPlatform } from './platform.ts';

export const browserPlatform: EndpointPlatform = {
  name: 'browser',
  crypto: nobleCryptoProvider,
  defaultBind: [],
  bindUdp: (options) => Promise.reject(new SdnetError('ERR_UNSUPPORTED', `A browser has no UDP sockets: cannot bind ${options.bind.toString()} (bind no address: the endpoint is relay-only)`)),
  relayTransport: () => standardWebSocketTransport(),
  probeRelay: probeRelayWithFetch,
  interfaceAddresses: () => [],
  keyLog: () => undefined,
  // In JavaScript ChaCha20-Poly1305 seals and opens about twice as fast as AES-GCM (GHASH has
  // no carry-less multiply here); bench/browser.ts measures both. Servers that follow the
  // client's order (rustls, so iroh) then use it; an sdnet server keeps its own order.
  cipherSuites: [TLS_CHACHA20_POLY1305_SHA256.id, TLS_AES_128_GCM_SHA256.id, TLS_AES_256_GCM_SHA384.id],
  x509Credentials: () => {
    throw new SdnetError('ERR_UNSUPPORTED', "X.509 credentials are not available in a browser (they need Node's crypto module)");
  },
};
