/**
 * Ed25519 identities, as iroh-base's `SecretKey`, `PublicKey` (= `EndpointId`) and `Signature`.
 *
 * Text forms match iroh 1.0 (`shared/docs/iroh-wire.md` §5.1–5.2): an id displays as 64
 * lower-case hex characters; it parses from lower-case hex (64 characters) or from unpadded
 * RFC 4648 base32 in either case (52 characters); z-base-32 is used for DNS names.
 *
 * @module
 */
import type { CryptoProvider, Ed25519Signer, Ed25519Verifier } from '../transport/crypto/provider.ts';
import { nobleCryptoProvider } from '../transport/crypto/noble-provider.ts';
import { isValidEd25519PublicKey } from '../transport/crypto/ed25519-strict.ts';
import { equalBytes, fromHex, toHex } from '../util/bytes.ts';
import { BASE32_RFC4648_LOWER, BASE32_Z, decodeBase32, encodeBase32 } from '../util/base32.ts';
import { DecodeError } from '../util/errors.ts';

/**
 * Keys sign and verify with the @noble provider unless told otherwise: it runs everywhere
 * (no `node:` import, so identities work in a browser bundle) and is strict in the same way.
 */
const defaultCryptoProvider: CryptoProvider = nobleCryptoProvider;

/** Length of public and secret keys in bytes. */
export const KEY_LENGTH = 32;
/** Length of a signature in bytes. */
export const SIGNATURE_LENGTH = 64;

/**
 * Decode a 32-byte key from iroh's string forms: 64 lower-case hex characters, or
 * unpadded RFC 4648 base32 (any case).
 */
function decodeKeyString(text: string): Uint8Array {
  if (typeof text !== 'string') throw new TypeError('Expected a string');
  if (text.length === KEY_LENGTH * 2) return fromHex(text, { lowerOnly: true });
  if (text.length !== 52) throw new DecodeError(`Cannot parse key: expected 64 hex or 52 base32 characters, got ${text.length}`);
  return decodeBase32(text.toLowerCase(), BASE32_RFC4648_LOWER);
}

/** An Ed25519 signature (64 bytes). */
export class Signature {
  readonly #bytes: Uint8Array;

  private constructor(bytes: Uint8Array) {
    this.#bytes = bytes;
  }

  /** @throws {DecodeError} unless `bytes` has 64 bytes */
  static fromBytes(bytes: Uint8Array): Signature {
    if (!(bytes instanceof Uint8Array)) throw new TypeError('Expected signature bytes to be a Uint8Array');
    if (bytes.length !== SIGNATURE_LENGTH) throw new DecodeError(`Cannot decode signature: expected 64 bytes, got ${bytes.length}`);
    return new Signature(Uint8Array.from(bytes));
  }

  /** A copy of the 64 bytes. */
  toBytes(): Uint8Array {
    return this.#bytes.slice();
  }

  /** The bytes without copying; callers must not modify them. */
  get bytes(): Uint8Array {
    return this.#bytes;
  }

  toString(): string {
    return toHex(this.#bytes);
  }

  toJSON(): string {
    return this.toString();
  }

  equals(other: Signature): boolean {
    return equalBytes(this.#bytes, other.#bytes);
  }
}

/**
 * An Ed25519 public key; as an `EndpointId` it names an endpoint.
 *
 * Only canonical encodings of curve points of large order are accepted
 * (`shared/docs/reliability.md` §5.H): small-order keys would let anyone forge signatures.
 */
export class PublicKey {
  readonly #bytes: Uint8Array;
  #verifier: Ed25519Verifier | undefined;

  private constructor(bytes: Uint8Array) {
    this.#bytes = bytes;
  }

  /** @throws {DecodeError} unless `bytes` is a valid 32-byte Ed25519 public key */
  static fromBytes(bytes: Uint8Array): PublicKey {
    if (!(bytes instanceof Uint8Array)) throw new TypeError('Expected public key bytes to be a Uint8Array');
    if (bytes.length !== KEY_LENGTH) throw new DecodeError(`Cannot decode public key: expected 32 bytes, got ${bytes.length}`);
    if (!isValidEd25519PublicKey(bytes)) throw new DecodeError('Cannot decode public key: not a valid Ed25519 point of large order');
    return new PublicKey(Uint8Array.from(bytes));
  }

  /**
   * Parse iroh's string forms: 64 lower-case hex characters, or 52 base32 characters.
   *
   * @throws {DecodeError} on any other input
   */
  static fromString(text: string): PublicKey {
    return PublicKey.fromBytes(decodeKeyString(text));
  }

  /** Parse the z-base-32 form used in DNS names (52 characters). */
  static fromZ32(text: string): PublicKey {
    if (typeof text !== 'string') throw new TypeError('Expected a string');
    if (text.length !== 52) throw new DecodeError(`Cannot parse z-base-32 key: expected 52 characters, got ${text.length}`);
    return PublicKey.fromBytes(decodeBase32(text, BASE32_Z));
  }

  /** A copy of the 32 bytes. */
  toBytes(): Uint8Array {
    return this.#bytes.slice();
  }

  /** The bytes without copying; callers must not modify them. */
  get bytes(): Uint8Array {
    return this.#bytes;
  }

  #hex: string | undefined;

  /** Lower-case hex, 64 characters (iroh's `Display`). */
  toString(): string {
    // Keys are immutable; the hex form is a map key on hot paths (registry lookups).
    this.#hex ??= toHex(this.#bytes);
    return this.#hex;
  }

  toJSON(): string {
    return this.toString();
  }

  /** The first 5 bytes in hex, 10 characters (iroh's `fmt_short`). */
  fmtShort(): string {
    return toHex(this.#bytes.subarray(0, 5));
  }

  /** z-base-32, 52 characters (iroh's `to_z32`). */
  toZ32(): string {
    return encodeBase32(this.#bytes, BASE32_Z);
  }

  equals(other: PublicKey): boolean {
    return equalBytes(this.#bytes, other.#bytes);
  }

  /**
   * Strict Ed25519 verification, as iroh's `PublicKey::verify` (`verify_strict`).
   *
   * @returns false for any invalid signature; never throws on bad signature bytes
   */
  verify(message: Uint8Array, signature: Signature | Uint8Array, provider: CryptoProvider = defaultCryptoProvider): boolean {
    const sig = signature instanceof Signature ? signature.bytes : signature;
    if (provider === defaultCryptoProvider) {
      this.#verifier ??= provider.ed25519Verifier(this.#bytes);
      return this.#verifier.verify(message, sig);
    }
    return provider.ed25519Verifier(this.#bytes).verify(message, sig);
  }

  [Symbol.for('nodejs.util.inspect.custom')](): string {
    return `PublicKey(${this.toString()})`;
  }
}

/** iroh's name for a public key that identifies an endpoint (value and type). */
export { PublicKey as EndpointId };

/** An Ed25519 secret key (the 32-byte seed of RFC 8032 §5.1.5). */
export class SecretKey {
  readonly #seed: Uint8Array;
  readonly #signer: Ed25519Signer;
  readonly #public: PublicKey;

  private constructor(seed: Uint8Array, provider: CryptoProvider) {
    this.#seed = seed;
    this.#signer = provider.ed25519Signer(seed);
    this.#public = PublicKey.fromBytes(this.#signer.publicKey);
  }

  /** A new random key. */
  static generate(provider: CryptoProvider = defaultCryptoProvider): SecretKey {
    return new SecretKey(provider.randomBytes(KEY_LENGTH), provider);
  }

  /** @throws {DecodeError} unless `bytes` has 32 bytes */
  static fromBytes(bytes: Uint8Array, provider: CryptoProvider = defaultCryptoProvider): SecretKey {
    if (!(bytes instanceof Uint8Array)) throw new TypeError('Expected secret key bytes to be a Uint8Array');
    if (bytes.length !== KEY_LENGTH) throw new DecodeError(`Cannot decode secret key: expected 32 bytes, got ${bytes.length}`);
    return new SecretKey(Uint8Array.from(bytes), provider);
  }

  /** Parse hex (64 lower-case characters) or base32 (52 characters), as iroh's `FromStr`. */
  static fromString(text: string, provider: CryptoProvider = defaultCryptoProvider): SecretKey {
    return SecretKey.fromBytes(decodeKeyString(text), provider);
  }

  /** The public key (EndpointId). */
  public(): PublicKey {
    return this.#public;
  }

  /** A copy of the 32-byte seed. Handle with care. */
  toBytes(): Uint8Array {
    return this.#seed.slice();
  }

  /** Sign `message` (RFC 8032 §5.1.6; deterministic). */
  sign(message: Uint8Array): Signature {
    return Signature.fromBytes(this.#signer.sign(message));
  }

  /** Never prints the secret. */
  toString(): string {
    return 'SecretKey(..)';
  }

  toJSON(): string {
    return 'SecretKey(..)';
  }

  [Symbol.for('nodejs.util.inspect.custom')](): string {
    return 'SecretKey(..)';
  }
}
