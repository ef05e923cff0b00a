/**
 * The crypto-provider seam: every primitive sdnet's protocols need, behind one interface.
 *
 * Two implementations exist: {@link nodeCryptoProvider} (node:crypto on the hot paths, the
 * default) and {@link nobleCryptoProvider} (pure JavaScript, for runtimes without
 * node:crypto and as an independent cross-check in tests). Both must produce identical bytes
 * for identical inputs; property tests hold them to it.
 *
 * The sans-IO QUIC/TLS core receives a provider as an argument and never imports one.
 *
 * @module
 */

/** AEADs usable by TLS 1.3 / QUIC (RFC 9001 §5.3). */
export type AeadAlgorithm = 'aes-128-gcm' | 'aes-256-gcm' | 'chacha20-poly1305';
/** Header-protection ciphers (RFC 9001 §5.4.3, §5.4.4). */
export type HeaderProtectionAlgorithm = 'aes-128' | 'aes-256' | 'chacha20';
/** Hashes used by TLS 1.3 cipher suites. */
export type HashAlgorithm = 'sha256' | 'sha384';

/** Key length in bytes of each AEAD. */
export const AEAD_KEY_LENGTH: Readonly<Record<AeadAlgorithm, number>> = {
  'aes-128-gcm': 16,
  'aes-256-gcm': 32,
  'chacha20-poly1305': 32,
};
/** Key length in bytes of each header-protection cipher. */
export const HP_KEY_LENGTH: Readonly<Record<HeaderProtectionAlgorithm, number>> = {
  'aes-128': 16,
  'aes-256': 32,
  chacha20: 32,
};
/** Output length in bytes of each hash. */
export const HASH_LENGTH: Readonly<Record<HashAlgorithm, number>> = { sha256: 32, sha384: 48 };
/** Nonce length of every AEAD here (RFC 5116 / RFC 8439). */
export const AEAD_NONCE_LENGTH = 12;
/** Tag length of every AEAD here. */
export const AEAD_TAG_LENGTH = 16;
/** Sample length for header protection (RFC 9001 §5.4.2). */
export const HP_SAMPLE_LENGTH = 16;
/** Length of a header-protection mask actually used (1 byte for the first byte, up to 4 for the packet number). */
export const HP_MASK_LENGTH = 5;

/** An AEAD bound to one key. */
export interface Aead {
  readonly algorithm: AeadAlgorithm;
  /** Returns ciphertext ‖ 16-byte tag. */
  seal(nonce: Uint8Array, aad: Uint8Array, plaintext: Uint8Array): Uint8Array;
  /**
   * Seal into `out` at `offset` (ciphertext then tag); returns the bytes written
   * (plaintext length + 16). `plaintext` may overlap `out` exactly at `offset` (in place).
   */
  sealInto(nonce: Uint8Array, aad: Uint8Array, plaintext: Uint8Array, out: Uint8Array, offset: number): number;
  /** Returns the plaintext, or `null` when authentication fails. Never throws on bad input. */
  open(nonce: Uint8Array, aad: Uint8Array, sealed: Uint8Array): Uint8Array | null;
}

/** A header-protection cipher bound to one key. */
export interface HeaderProtection {
  readonly algorithm: HeaderProtectionAlgorithm;
  /** The 5-byte mask for a 16-byte sample (RFC 9001 §5.4.1). */
  mask(sample: Uint8Array): Uint8Array;
}

/** An incremental hash (the TLS transcript hash needs intermediate digests). */
export interface Hasher {
  update(data: Uint8Array): Hasher;
  /** The digest of everything so far; the hasher stays usable. */
  digest(): Uint8Array;
  clone(): Hasher;
}

/** An ephemeral X25519 key pair. */
export interface X25519KeyPair {
  readonly publicKey: Uint8Array;
  /**
   * The shared secret with a peer's 32-byte public key.
   *
   * @throws {CryptoError} `ERR_CRYPTO_LOW_ORDER_POINT` if the result is all zeros
   *   (RFC 7748 §6.1; RFC 8446 §7.4.2 requires the check) or the peer key is malformed
   */
  deriveSharedSecret(peerPublicKey: Uint8Array): Uint8Array;
}

/** An Ed25519 signing key (RFC 8032 §5.1). */
export interface Ed25519Signer {
  readonly publicKey: Uint8Array;
  sign(message: Uint8Array): Uint8Array;
}

/** An Ed25519 verifying key with strict verification (as ed25519-dalek `verify_strict`). */
export interface Ed25519Verifier {
  readonly publicKey: Uint8Array;
  /** False for any signature that is not strictly valid; never throws on bad input. */
  verify(message: Uint8Array, signature: Uint8Array): boolean;
}

/**
 * An ECDSA P-256 signing key for TLS 1.3's ecdsa_secp256r1_sha256 (RFC 8446 §4.2.3): SHA-256
 * of the message, signature DER-encoded (ECDSA-Sig-Value, RFC 3279 §2.2.3). Used only with
 * X.509 credentials; iroh's profile is Ed25519.
 */
export interface EcdsaP256Signer {
  /** The public key as an uncompressed SEC1 point (65 bytes, 0x04 ‖ x ‖ y). */
  readonly publicKey: Uint8Array;
  sign(message: Uint8Array): Uint8Array;
}

/** An ECDSA P-256 / SHA-256 verifying key (DER signatures). */
export interface EcdsaP256Verifier {
  readonly publicKey: Uint8Array;
  /** False for any signature that does not verify; never throws on bad input. */
  verify(message: Uint8Array, signature: Uint8Array): boolean;
}

/** Every primitive sdnet needs. */
export interface CryptoProvider {
  readonly name: string;
  randomBytes(length: number): Uint8Array;
  aead(algorithm: AeadAlgorithm, key: Uint8Array): Aead;
  headerProtection(algorithm: HeaderProtectionAlgorithm, key: Uint8Array): HeaderProtection;
  hash(algorithm: HashAlgorithm, data: Uint8Array): Uint8Array;
  hasher(algorithm: HashAlgorithm): Hasher;
  hmac(algorithm: HashAlgorithm, key: Uint8Array, data: Uint8Array): Uint8Array;
  /** HKDF-Extract (RFC 5869 §2.2). */
  hkdfExtract(algorithm: HashAlgorithm, salt: Uint8Array, ikm: Uint8Array): Uint8Array;
  /** HKDF-Expand (RFC 5869 §2.3); `length` ≤ 255 × hash length. */
  hkdfExpand(algorithm: HashAlgorithm, prk: Uint8Array, info: Uint8Array, length: number): Uint8Array;
  x25519Generate(): X25519KeyPair;
  /**
   * Work ahead of need, called by the driver when it has nothing urgent to do (the node
   * provider makes the next handshakes' ephemeral key pairs). Optional; cheap when idle.
   */
  prepare?(): void;
  /** A key pair from a given 32-byte private scalar (test vectors, deterministic tests). */
  x25519FromPrivateKey(privateKey: Uint8Array): X25519KeyPair;
  /** A signer from a 32-byte Ed25519 seed. */
  ed25519Signer(seed: Uint8Array): Ed25519Signer;
  /**
   * A verifier for a 32-byte public key.
   *
   * @throws {CryptoError} `ERR_INVALID_PUBLIC_KEY` if the key is not a canonical point of
   *   large order on the curve
   */
  ed25519Verifier(publicKey: Uint8Array): Ed25519Verifier;
  /** A signer from a 32-byte P-256 private scalar. @throws {RangeError} if it is not one */
  ecdsaP256Signer(privateKey: Uint8Array): EcdsaP256Signer;
  /**
   * A verifier for an uncompressed SEC1 P-256 point (65 bytes).
   *
   * @throws {CryptoError} `ERR_INVALID_PUBLIC_KEY` if it is not a point on the curve
   */
  ecdsaP256Verifier(publicKey: Uint8Array): EcdsaP256Verifier;
  /** BLAKE3 hash with `outputLength` bytes of output (default 32). */
  blake3(data: Uint8Array, outputLength?: number): Uint8Array;
  /** BLAKE3 `derive_key(context, keyMaterial)` with `outputLength` bytes of output (default 32). */
  blake3DeriveKey(context: string, keyMaterial: Uint8Array, outputLength?: number): Uint8Array;
}
