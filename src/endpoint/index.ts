/**
 * The endpoint API: `Endpoint`, `Connection`, streams, events.
 *
 * @module
 */
export { Endpoint, Incoming, type ConnectOptions, type EndpointEvents, type EndpointOptions, type IncomingHandshake } from './endpoint.ts';
export { Connection, describePath, type ConnectionEvents, type ConnectionPath, type SignalOptions } from './connection.ts';
export { EndpointBase } from './endpoint-base.ts';

export { StreamResetError, type BiStream } from './streams.ts';
export { ConnectionError, type ConnectionStats } from '../transport/quic/connection/types.ts';
export type { PemOrDer, PeerCertificates, X509Options } from './x509.ts';
export type { RetryMode, RetryPolicy } from '../transport/quic/endpoint.ts';
export { DEFAULT_QAD_PORT, QAD_ALPN, type QadOptions } from './qad.ts';
