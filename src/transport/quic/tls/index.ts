/**
 * Sans-IO TLS 1.3 for QUIC with RFC 7250 raw public keys (iroh profile).
 *
 * @module
 */
export * from './alerts.ts';
export * from './constants.ts';
export * from './key-schedule.ts';
export { TlsClientSession, type TlsClientConfig } from './client.ts';
export { TlsServerSession, type TlsServerConfig } from './server.ts';
export type { CryptoSession, EncryptionLevel, LocalCertificate, TlsCommonConfig, TrafficSecrets } from './session.ts';
export { decodeEd25519SpkiBytes, encodeEd25519SpkiBytes } from './raw-public-key.ts';
