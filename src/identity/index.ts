/**
 * Identity and addressing: keys, EndpointId, SPKI, TLS names, socket addresses, relay URLs,
 * EndpointAddr and tickets — byte-for-byte iroh 1.0.
 *
 * @module
 */
export { KEY_LENGTH, SIGNATURE_LENGTH, PublicKey, EndpointId, SecretKey, Signature } from './keys.ts';
export { ED25519_SPKI_LENGTH, ED25519_SPKI_PREFIX, decodeEd25519Spki, encodeEd25519Spki } from './spki.ts';
export { endpointIdFromTlsServerName, tlsServerName } from './tls-name.ts';
export { SocketAddr } from './socket-addr.ts';
export { RelayUrl } from './relay-url.ts';
export { EndpointAddr, type CustomAddr, type EndpointAddrInit } from './endpoint-addr.ts';
export { ENDPOINT_TICKET_PREFIX, EndpointTicket } from './ticket.ts';
export { KeyFileError, defaultKeyPath, formatSecretKey, loadOrCreateSecretKey, loadSecretKey, parseSecretKeyFile, saveSecretKey } from './key-store.ts';
