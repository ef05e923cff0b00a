/**
 * The DER SubjectPublicKeyInfo of an Ed25519 key (RFC 8410 §4): the certificate entry
 * iroh sends in TLS with raw public keys (RFC 7250 §3). Always 44 bytes:
 * `30 2a 30 05 06 03 2b 65 70 03 21 00` ‖ key[32]. The byte codec lives with the TLS engine;
 * these wrappers speak {@link PublicKey}.
 *
 * @module
 */
import { PublicKey } from './keys.ts';
import { ED25519_SPKI_LENGTH, ED25519_SPKI_PREFIX, decodeEd25519SpkiBytes, encodeEd25519SpkiBytes } from '../transport/quic/tls/raw-public-key.ts';

export { ED25519_SPKI_LENGTH, ED25519_SPKI_PREFIX };

/** Encode `key` as a 44-byte SubjectPublicKeyInfo. */
export function encodeEd25519Spki(key: PublicKey): Uint8Array {
  return encodeEd25519SpkiBytes(key.bytes);
}

/**
 * Decode a 44-byte Ed25519 SubjectPublicKeyInfo (exact DER only) into a validated key.
 *
 * @throws {DecodeError} on any other input
 */
export function decodeEd25519Spki(spki: Uint8Array): PublicKey {
  return PublicKey.fromBytes(decodeEd25519SpkiBytes(spki));
}
