/**
 * sdnet in a browser (`sdnet/browser`): a relay-only endpoint that reaches iroh and sdnet
 * peers through relays, over the page's `WebSocket`, with @noble crypto. Imports no `node:`
 * module (a test bundles this entry and checks).
 *
 * ```js
 * import { Endpoint, EndpointTicket } from 'sdnet/browser';
 * const ep = await Endpoint.bind({ relays: ['https://relay.example/'] });
 * const conn = await ep.connect(EndpointTicket.parse(ticket).addr, 'my-alpn');
 * ```
 *
 * @module
 */
import { EndpointBase, type EndpointOptions } from './endpoint/endpoint-base.ts';
import { browserPlatform } from './endpoint/browser-platform.ts';

export class Endpoint extends EndpointBase {
  /**
   * Bind a relay-only endpoint: no UDP socket (a browser has none; `bindAddr` must be empty or
   * absent), relays over the WHATWG WebSocket, @noble crypto unless `provider` says otherwise.
   */
  static override bind(options: EndpointOptions = {}): Promise<Endpoint> {
    return EndpointBase.bindWith(browserPlatform, options, (parts) => new Endpoint(parts));
  }
}

export { EndpointBase, Incoming, type ConnectOptions, type EndpointEvents, type EndpointOptions, type IncomingHandshake } from './endpoint/endpoint-base.ts';
export { Connection, type ConnectionEvents, type SignalOptions } from './endpoint/connection.ts';
export { StreamResetError, type BiStream } from './endpoint/streams.ts';
export { ConnectionError, type ConnectionStats } from './transport/quic/connection/types.ts';
export { KEY_LENGTH, SIGNATURE_LENGTH, PublicKey, EndpointId, SecretKey, Signature } from './identity/keys.ts';
export { SocketAddr } from './identity/socket-addr.ts';
export { RelayUrl } from './identity/relay-url.ts';
export { EndpointAddr, type CustomAddr, type EndpointAddrInit } from './identity/endpoint-addr.ts';
export { ENDPOINT_TICKET_PREFIX, EndpointTicket } from './identity/ticket.ts';
export { RelayClientBase as RelayClient, type RelayClientEvents, type RelayClientOptions, type RelayClientState, type RelayClientStats, type RelayDatagrams } from './relay/client/relay-client.ts';
export { standardWebSocketTransport, type StandardWebSocket, type StandardWebSocketCtor } from './relay/client/standard-transport.ts';
export type { RelayTransport, RelaySocket, RelaySocketClose, RelayTransportRequest } from './relay/client/transport.ts';
export { RelayError, type RelayErrorCode } from './relay/protocol/errors.ts';
export { nobleCryptoProvider } from './transport/crypto/noble-provider.ts';
export type { CryptoProvider } from './transport/crypto/provider.ts';
export type { ConnectionSettings } from './transport/quic/config.ts';
export type { PathAddr, PathChangeReason } from './transport/quic/connection/types.ts';
export type { EndpointStats } from './transport/quic/endpoint.ts';
export type { RelayInfo } from './transport/paths/relay-pool.ts';
export type { PathSocketStats } from './transport/paths/path-socket.ts';
export { CryptoError, DecodeError, SdnetError } from './util/errors.ts';
