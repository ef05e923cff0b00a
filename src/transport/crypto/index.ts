/**
 * Crypto providers. {@link defaultCryptoProvider} is the node:crypto one.
 *
 * @module
 */
export * from './provider.ts';
export { nodeCryptoProvider } from './node-provider.ts';
export { nobleCryptoProvider } from './noble-provider.ts';
export { isValidEd25519PublicKey } from './ed25519-strict.ts';
import { nodeCryptoProvider } from './node-provider.ts';

/** The provider used when none is given. */
export const defaultCryptoProvider = nodeCryptoProvider;
