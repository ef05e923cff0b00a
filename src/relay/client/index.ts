/**
 * The relay client (`shared/docs/iroh-wire.md` §1): one connection to a relay with reconnect,
 * keep-alive, bounded queues and typed events, over `ws` in Node or the standard WebSocket
 * API anywhere.
 *
 * @module
 */
export { RelayClient } from './node-relay-client.ts';
export { RelayClientBase, type RelayClientEvents, type RelayClientOptions, type RelayClientState, type RelayClientStats, type RelayDatagrams } from './relay-client.ts';
export { Backoff, type BackoffOptions } from './backoff.ts';
export { nodeWebSocketTransport, type NodeTlsOptions } from './node-transport.ts';
export { standardWebSocketTransport } from './standard-transport.ts';
export { relayWebSocketUrl, type RelaySocket, type RelaySocketClose, type RelayTransport, type RelayTransportRequest } from './transport.ts';
export { RelayError, type RelayErrorCode } from '../protocol/errors.ts';
