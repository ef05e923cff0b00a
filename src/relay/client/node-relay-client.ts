/**
 * `RelayClient`: the relay client with Node's defaults — the `ws` transport (TLS options,
 * request headers, iroh-wire §1.5 header authentication) and node:crypto.
 *
 * @module
 */
import { defaultCryptoProvider } from '../../transport/crypto/index.ts';
import { nodeWebSocketTransport } from './node-transport.ts';
import { RelayClientBase, type RelayClientOptions } from './relay-client.ts';

export class RelayClient extends RelayClientBase {
  constructor(options: RelayClientOptions) {
    super({ ...options, transport: options.transport ?? nodeWebSocketTransport(options.tls), crypto: options.crypto ?? defaultCryptoProvider });
  }
}
