/**
 * sdnet: peer-to-peer networking, wire-compatible with iroh 1.0.
 *
 * @module
 */
export * from './identity/index.ts';
export * from './endpoint/index.ts';
export { RelayClient, RelayError, type RelayClientEvents, type RelayClientOptions, type RelayDatagrams } from './relay/index.ts';
export {
  defaultCryptoProvider,
  nobleCryptoProvider,
  nodeCryptoProvider,
  type CryptoProvider,
} from './transport/crypto/index.ts';
export { CryptoError, DecodeError, SdnetError } from './util/errors.ts';
export * from './protocols/index.ts';
export * from './service/index.ts';
