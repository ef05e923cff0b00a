/**
 * The relay authentication handshake (`shared/docs/iroh-wire.md` §1.5, vector in Appendix A):
 *
 * - **Challenge path.** The relay sends 16 random bytes; the client signs, with its endpoint
 *   key, `BLAKE3.derive_key("iroh-relay handshake v1 challenge signature", challenge)` — never
 *   the raw challenge, so a malicious relay cannot obtain a signature over bytes of its choice.
 * - **Header path (TLS only).** Before the upgrade the client exports 32 bytes of TLS keying
 *   material (label `iroh-relay handshake v1`, context = its public key), signs the first 16
 *   and sends the last 16 in clear in the `x-iroh-relay-client-auth-v1` header, base64url
 *   without padding of postcard `key[32] ‖ 40 ‖ signature[64] ‖ suffix[16]`.
 *
 * Pure functions: crypto comes from the injected provider, keying material from the caller.
 *
 * @module
 */
import { base64urlnopad } from '@scure/base';
import { PublicKey, type SecretKey } from '../../identity/keys.ts';
import type { CryptoProvider } from '../../transport/crypto/provider.ts';
import { DecodeError } from '../../util/errors.ts';
import { PostcardReader } from '../../util/postcard.ts';
import { encodeClientAuth } from './frames.ts';
import { CHALLENGE_LENGTH, MAX_CLIENT_AUTH_HEADER_CHARS } from './limits.ts';

/** BLAKE3 `derive_key` context of the challenge signature (iroh `DOMAIN_SEP_CHALLENGE`). */
export const CHALLENGE_SIGNATURE_CONTEXT = 'iroh-relay handshake v1 challenge signature';
/** TLS exporter label of the header path (iroh `DOMAIN_SEP_TLS_EXPORT_LABEL`). */
export const KEYING_MATERIAL_LABEL = 'iroh-relay handshake v1';
/** Length of the exported keying material. */
export const KEYING_MATERIAL_LENGTH = 32;
/** The request header of the header path. */
export const CLIENT_AUTH_HEADER = 'x-iroh-relay-client-auth-v1';

/** The 32 bytes a client signs for `challenge` (iroh `ServerChallenge::message_to_sign`). */
export function challengeMessage(challenge: Uint8Array, crypto: CryptoProvider): Uint8Array {
  if (challenge.length !== CHALLENGE_LENGTH) throw new RangeError(`challenge must be ${CHALLENGE_LENGTH} bytes`);
  return crypto.blake3DeriveKey(CHALLENGE_SIGNATURE_CONTEXT, challenge);
}

/** The `ClientAuth` frame answering `challenge` (98 bytes). */
export function signChallenge(secretKey: SecretKey, challenge: Uint8Array, crypto: CryptoProvider): Uint8Array {
  const signature = secretKey.sign(challengeMessage(challenge, crypto));
  return encodeClientAuth(secretKey.public(), signature.bytes);
}

/**
 * Whether `signature` by `publicKey` answers `challenge`. Strict Ed25519 verification, as
 * iroh's `verify_strict`. Never throws on bad input.
 */
export function verifyChallengeSignature(publicKey: PublicKey, signature: Uint8Array, challenge: Uint8Array, crypto: CryptoProvider): boolean {
  if (signature.length !== 64 || challenge.length !== CHALLENGE_LENGTH) return false;
  return publicKey.verify(challengeMessage(challenge, crypto), signature, crypto);
}

/** A decoded `x-iroh-relay-client-auth-v1` header. */
export interface KeyMaterialClientAuth {
  publicKey: PublicKey;
  signature: Uint8Array;
  /** The last 16 bytes of the client's exported keying material. */
  suffix: Uint8Array;
}

/**
 * The header value for the header path, from the 32 bytes the client exported with
 * {@link KEYING_MATERIAL_LABEL} and its public key as context.
 */
export function encodeClientAuthHeader(secretKey: SecretKey, keyingMaterial: Uint8Array): string {
  if (keyingMaterial.length !== KEYING_MATERIAL_LENGTH) throw new RangeError(`keying material must be ${KEYING_MATERIAL_LENGTH} bytes`);
  // iroh-wire §1.5: sign the first 16 bytes (no BLAKE3 step), send the last 16 in clear.
  const signature = secretKey.sign(keyingMaterial.subarray(0, 16));
  const out = new Uint8Array(32 + 1 + 64 + 16);
  out.set(secretKey.public().bytes, 0);
  out[32] = 64;
  out.set(signature.bytes, 33);
  out.set(keyingMaterial.subarray(16), 97);
  return base64urlnopad.encode(out);
}

/**
 * Decode the header value.
 *
 * @throws {DecodeError} if it is not base64url of the 113-byte postcard layout with a valid key
 */
export function decodeClientAuthHeader(value: string): KeyMaterialClientAuth {
  if (typeof value !== 'string' || value.length > MAX_CLIENT_AUTH_HEADER_CHARS) {
    throw new DecodeError(`Cannot decode ${CLIENT_AUTH_HEADER}: longer than ${MAX_CLIENT_AUTH_HEADER_CHARS} characters`);
  }
  let bytes: Uint8Array;
  try {
    bytes = base64urlnopad.decode(value);
  } catch {
    throw new DecodeError(`Cannot decode ${CLIENT_AUTH_HEADER}: not unpadded base64url`);
  }
  const r = new PostcardReader(bytes);
  const publicKey = PublicKey.fromBytes(r.fixed(32));
  const sigLength = r.length(64, `${CLIENT_AUTH_HEADER} signature`);
  if (sigLength !== 64) throw new DecodeError(`Cannot decode ${CLIENT_AUTH_HEADER}: signature must be 64 bytes`);
  const signature = r.fixed(64);
  const suffix = r.fixed(16);
  r.finish(CLIENT_AUTH_HEADER);
  return { publicKey, signature, suffix };
}

/** Outcome of checking a header against the server's own exported keying material. */
export type HeaderAuthResult = 'ok' | 'suffix-mismatch' | 'signature-invalid';

/**
 * Check a decoded header against the keying material the server exported for the claimed key.
 * A suffix mismatch means the two TLS sessions differ (a TLS-terminating proxy); a bad
 * signature means a wrong key. Either way the real relay silently falls back to the challenge.
 */
export function verifyClientAuthHeader(auth: KeyMaterialClientAuth, keyingMaterial: Uint8Array, crypto: CryptoProvider): HeaderAuthResult {
  if (keyingMaterial.length !== KEYING_MATERIAL_LENGTH) return 'suffix-mismatch';
  const suffix = keyingMaterial.subarray(16);
  let same = auth.suffix.length === 16;
  for (let i = 0; i < 16 && same; i++) if (suffix[i] !== auth.suffix[i]) same = false;
  if (!same) return 'suffix-mismatch';
  return auth.publicKey.verify(keyingMaterial.subarray(0, 16), auth.signature, crypto) ? 'ok' : 'signature-invalid';
}
