/**
 * The TLS server name iroh dials: `<base32hex-lower(endpoint id)>.iroh.invalid`
 * (`shared/docs/iroh-wire.md` §2; iroh's `tls/name.rs`). 52 + 13 characters.
 *
 * @module
 */
import { PublicKey } from './keys.ts';
import { BASE32_HEX_LOWER, decodeBase32, encodeBase32 } from '../util/base32.ts';
import { DecodeError } from '../util/errors.ts';

const SUFFIX = '.iroh.invalid';

/** The server name a client puts in SNI when dialling `id`. */
export function tlsServerName(id: PublicKey): string {
  return encodeBase32(id.bytes, BASE32_HEX_LOWER) + SUFFIX;
}

/**
 * The endpoint id inside an iroh TLS server name.
 *
 * @throws {DecodeError} if `name` is not of that form
 */
export function endpointIdFromTlsServerName(name: string): PublicKey {
  if (typeof name !== 'string' || !name.endsWith(SUFFIX) || name.length !== 52 + SUFFIX.length) {
    throw new DecodeError('Cannot parse TLS server name: expected <52 base32hex characters>.iroh.invalid');
  }
  return PublicKey.fromBytes(decodeBase32(name.slice(0, 52), BASE32_HEX_LOWER));
}
