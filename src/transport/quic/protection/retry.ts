/**
 * Retry packet integrity (RFC 9001 §5.8): a 16-byte AES-128-GCM tag over the Retry
 * pseudo-packet (`ODCID length ‖ ODCID ‖ Retry packet without its tag`) with a fixed key and
 * nonce for QUIC v1.
 *
 * @module
 */
import type { CryptoProvider } from '../../crypto/provider.ts';

/** RFC 9001 §5.8: the v1 Retry key and nonce. */
const RETRY_KEY_V1 = Uint8Array.of(0xbe, 0x0c, 0x69, 0x0b, 0x9f, 0x66, 0x57, 0x5a, 0x1d, 0x76, 0x6b, 0x54, 0xe3, 0x68, 0xc8, 0x4e);
const RETRY_NONCE_V1 = Uint8Array.of(0x46, 0x15, 0x99, 0xd3, 0x5d, 0x63, 0x2b, 0xf2, 0x23, 0x98, 0x25, 0xbb);
export const RETRY_TAG_LENGTH = 16;

function pseudoPacket(originalDcid: Uint8Array, retryWithoutTag: Uint8Array): Uint8Array {
  const out = new Uint8Array(1 + originalDcid.length + retryWithoutTag.length);
  out[0] = originalDcid.length;
  out.set(originalDcid, 1);
  out.set(retryWithoutTag, 1 + originalDcid.length);
  return out;
}

/** The integrity tag for a Retry packet (everything before the tag given). */
export function retryIntegrityTag(provider: CryptoProvider, originalDcid: Uint8Array, retryWithoutTag: Uint8Array): Uint8Array {
  return provider.aead('aes-128-gcm', RETRY_KEY_V1).seal(RETRY_NONCE_V1, pseudoPacket(originalDcid, retryWithoutTag), new Uint8Array(0));
}

/** Check a whole Retry packet's integrity tag against the original DCID. */
export function verifyRetryIntegrity(provider: CryptoProvider, originalDcid: Uint8Array, retryPacket: Uint8Array): boolean {
  if (retryPacket.length < RETRY_TAG_LENGTH) return false;
  const body = retryPacket.subarray(0, retryPacket.length - RETRY_TAG_LENGTH);
  const tag = retryPacket.subarray(retryPacket.length - RETRY_TAG_LENGTH);
  return provider.aead('aes-128-gcm', RETRY_KEY_V1).open(RETRY_NONCE_V1, pseudoPacket(originalDcid, body), tag) !== null;
}
