/**
 * RFC 7250 raw public keys: the certificate entry is the DER SubjectPublicKeyInfo of the key
 * (RFC 7250 §3). For Ed25519 (RFC 8410 §4) that is always 44 bytes:
 * `30 2a 30 05 06 03 2b 65 70 03 21 00` ‖ key[32] — the only form iroh sends or accepts.
 *
 * @module
 */
import { DecodeError } from '../../../util/errors.ts';

/** The fixed 12-byte DER prefix: SEQUENCE { SEQUENCE { OID 1.3.101.112 }, BIT STRING (0 unused bits) }. */
export const ED25519_SPKI_PREFIX = Uint8Array.of(0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00);
export const ED25519_SPKI_LENGTH = 44;

/** The SubjectPublicKeyInfo of a 32-byte Ed25519 public key. */
export function encodeEd25519SpkiBytes(publicKey: Uint8Array): Uint8Array {
  if (publicKey.length !== 32) throw new RangeError('Ed25519 public key must be 32 bytes');
  const out = new Uint8Array(ED25519_SPKI_LENGTH);
  out.set(ED25519_SPKI_PREFIX, 0);
  out.set(publicKey, ED25519_SPKI_PREFIX.length);
  return out;
}

/**
 * The 32-byte key inside an Ed25519 SubjectPublicKeyInfo. Only the exact DER encoding is
 * accepted (DER has one encoding per value; Ed25519 has no parameters, RFC 8410 §3).
 * Whether the key is a valid curve point is checked by whoever uses it.
 *
 * @throws {DecodeError} on any other input
 */
export function decodeEd25519SpkiBytes(spki: Uint8Array): Uint8Array {
  if (spki.length !== ED25519_SPKI_LENGTH) throw new DecodeError(`Cannot decode SubjectPublicKeyInfo: expected 44 bytes, got ${spki.length}`);
  for (let i = 0; i < ED25519_SPKI_PREFIX.length; i++) {
    if (spki[i] !== ED25519_SPKI_PREFIX[i]) throw new DecodeError('Cannot decode SubjectPublicKeyInfo: not an Ed25519 key');
  }
  return Uint8Array.from(spki.subarray(ED25519_SPKI_PREFIX.length));
}
