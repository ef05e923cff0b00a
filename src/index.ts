/**
 * sdnet: peer-to-peer networking, wire-compatible with iroh 1.0.
 *
 * Everything a public signature names is exported here, so users can name it too (a test
 * walks the public API and fails on a type that is reachable but not exported).
 *
 * @module
 */
export * from './identity/index.ts';
export * from './endpoint/index.ts';
export * from './relay/client/index.ts';
export { Ecn, KeyCache, type ProtocolVersion } from './relay/protocol/index.ts';
export type { StandardWebSocket, StandardWebSocketCtor } from './relay/client/standard-transport.ts';
export {
  defaultCryptoProvider,
  nobleCryptoProvider,
  nodeCryptoProvider,
  type Aead,
  type AeadAlgorithm,
  type CryptoProvider,
  type EcdsaP256Signer,
  type EcdsaP256Verifier,
  type Ed25519Signer,
  type Ed25519Verifier,
  type HashAlgorithm,
  type Hasher,
  type HeaderProtection,
  type HeaderProtectionAlgorithm,
  type X25519KeyPair,
} from './transport/crypto/index.ts';
export type { ConnectionSettings } from './transport/quic/config.ts';
export type { AddressDiscoveryMode } from './transport/quic/wire/transport-params.ts';
export type { AddressLookup } from './discovery/address-lookup.ts';
export type { EndpointInfo } from './discovery/pkarr.ts';
export type { CongestionAlgorithm } from './transport/quic/recovery/congestion.ts';
export type { CloseKind, PathAddr, PathChangeReason } from './transport/quic/connection/types.ts';
export type { EndpointStats } from './transport/quic/endpoint.ts';
export { TransportError, TransportErrorCode } from './transport/quic/errors.ts';
export { TlsAlertError, type AlertName, type TlsErrorCode } from './transport/quic/tls/alerts.ts';
export type { RelayInfo } from './transport/paths/relay-pool.ts';
export type { PathSocketStats } from './transport/paths/path-socket.ts';
export { CryptoError, DecodeError, SdnetError } from './util/errors.ts';
export { Logger, silentLogger, type LogEntry, type LogLevel, type LogSink } from './util/log.ts';
export type { ListenOptions } from './util/emitter.ts';
export type { Listener } from './relay/client/events.ts';
export * from './protocols/index.ts';
export * from './service/index.ts';
