/**
 * The DER SubjectPublicKeyInfo of an Ed25519 key (RFC 8410 §4): the certificate entry
 * iroh sends in TLS with raw public keys (RFC 7250 §3). Always 44 bytes:
 * `30 2a 30 05 06 03 2b 65 70 03 21 00` ‖ key[32].
 *
 * @module
 */
import { PublicKey } from './keys.ts';
import { DecodeError } from '../util/errors.ts';
import { equalBytes } from '../util/bytes.ts';

/** The fixed 12-byte DER prefix: SEQUENCE { SEQUENCE { OID 1.3.101.112 }, BIT STRING (0 unused bits) }. */
export const ED25519_SPKI_PREFIX = Uint8Array.from([0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00]);
/** Length of an Ed25519 SPKI. */
export const ED25519_SPKI_LENGTH = 44;

/** Encode `key` as a 44-byte SubjectPublicKeyInfo. */
export function encodeEd25519Spki(key: PublicKey): Uint8Array {
  const out = new Uint8Array(ED25519_SPKI_LENGTH);
  out.set(ED25519_SPKI_PREFIX, 0);
  out.set(key.bytes, ED25519_SPKI_PREFIX.length);
  return out;
}

/**
 * Decode a 44-byte Ed25519 SubjectPublicKeyInfo. Only the exact DER encoding is accepted
 * (DER has one encoding per value; there are no parameters for Ed25519, RFC 8410 §3).
 *
 * @throws {DecodeError} on any other input
 */
export function decodeEd25519Spki(spki: Uint8Array): PublicKey {
  if (spki.length !== ED25519_SPKI_LENGTH) throw new DecodeError(`Cannot decode SubjectPublicKeyInfo: expected 44 bytes, got ${spki.length}`);
  if (!equalBytes(spki.subarray(0, ED25519_SPKI_PREFIX.length), ED25519_SPKI_PREFIX)) {
    throw new DecodeError('Cannot decode SubjectPublicKeyInfo: not an Ed25519 key');
  }
  return PublicKey.fromBytes(spki.subarray(ED25519_SPKI_PREFIX.length));
}
