/**
 * The all-@noble crypto provider: pure JavaScript, no node:crypto.
 *
 * Slower than {@link nodeCryptoProvider} (perf-anchors.md §3) but runs on any JavaScript
 * runtime, and serves as the independent implementation the node provider is checked
 * against.
 *
 * @module
 */
import { gcm } from '@noble/ciphers/aes.js';
import { chacha20, chacha20poly1305 } from '@noble/ciphers/chacha.js';
import { ed25519, x25519 } from '@noble/curves/ed25519.js';
import { p256 } from '@noble/curves/nist.js';
import { blake3 } from '@noble/hashes/blake3.js';
import { expand, extract } from '@noble/hashes/hkdf.js';
import { hmac } from '@noble/hashes/hmac.js';
import { sha256, sha384 } from '@noble/hashes/sha2.js';
import { randomBytes } from '@noble/hashes/utils.js';
import { CryptoError } from '../../util/errors.ts';
import { utf8 } from '../../util/bytes.ts';
import { aesHeaderProtection, checkHpKey } from './hp-shared.ts';
import { isValidEd25519PublicKey, passesStrictSignaturePrecheck } from './ed25519-strict.ts';
import {
  AEAD_KEY_LENGTH,
  AEAD_NONCE_LENGTH,
  AEAD_TAG_LENGTH,
  HASH_LENGTH,
  HP_KEY_LENGTH,
  HP_SAMPLE_LENGTH,
  type Aead,
  type AeadAlgorithm,
  type CryptoProvider,
  type HashAlgorithm,
  type Hasher,
  type HeaderProtection,
  type HeaderProtectionAlgorithm,
  type X25519KeyPair,
} from './provider.ts';

const HASHES = { sha256, sha384 } as const;

function nobleAead(algorithm: AeadAlgorithm, key: Uint8Array): Aead {
  if (!(key instanceof Uint8Array) || key.length !== AEAD_KEY_LENGTH[algorithm]) {
    throw new RangeError(`AEAD key for ${algorithm} must be ${AEAD_KEY_LENGTH[algorithm]} bytes`);
  }
  const own = Uint8Array.from(key);
  const make = (nonce: Uint8Array, aad: Uint8Array) =>
    algorithm === 'chacha20-poly1305' ? chacha20poly1305(own, nonce, aad) : gcm(own, nonce, aad);
  return {
    algorithm,
    seal(nonce, aad, plaintext) {
      if (nonce.length !== AEAD_NONCE_LENGTH) throw new RangeError(`AEAD nonce must be ${AEAD_NONCE_LENGTH} bytes`);
      return make(nonce, aad).encrypt(plaintext);
    },
    sealInto(nonce, aad, plaintext, out, offset) {
      if (nonce.length !== AEAD_NONCE_LENGTH) throw new RangeError(`AEAD nonce must be ${AEAD_NONCE_LENGTH} bytes`);
      const sealed = make(nonce, aad).encrypt(plaintext);
      out.set(sealed, offset);
      return sealed.length;
    },
    open(nonce, aad, sealed) {
      if (nonce.length !== AEAD_NONCE_LENGTH || sealed.length < AEAD_TAG_LENGTH) return null;
      try {
        return make(nonce, aad).decrypt(sealed);
      } catch {
        return null;
      }
    },
  };
}

function nobleHeaderProtection(algorithm: HeaderProtectionAlgorithm, key: Uint8Array): HeaderProtection {
  checkHpKey(algorithm, key, HP_KEY_LENGTH[algorithm]);
  if (algorithm !== 'chacha20') return aesHeaderProtection(algorithm, key);
  const own = Uint8Array.from(key);
  return {
    algorithm,
    // RFC 9001 §5.4.4: counter = sample[0..4] little-endian, nonce = sample[4..16].
    mask(sample) {
      if (sample.length < HP_SAMPLE_LENGTH) throw new RangeError(`Header protection sample must be ${HP_SAMPLE_LENGTH} bytes`);
      const counter = new DataView(sample.buffer, sample.byteOffset, 4).getUint32(0, true);
      return chacha20(own, sample.slice(4, 16), new Uint8Array(5), undefined, counter);
    },
  };
}

type NobleHash = ReturnType<typeof sha256.create> | ReturnType<typeof sha384.create>;

class NobleHasher implements Hasher {
  readonly #hash: NobleHash;
  constructor(hash: NobleHash) {
    this.#hash = hash;
  }
  update(data: Uint8Array): Hasher {
    this.#hash.update(data);
    return this;
  }
  digest(): Uint8Array {
    return this.#hash.clone().digest();
  }
  clone(): Hasher {
    return new NobleHasher(this.#hash.clone());
  }
}

function x25519Pair(privateKey: Uint8Array): X25519KeyPair {
  const priv = Uint8Array.from(privateKey);
  return {
    publicKey: x25519.getPublicKey(priv),
    deriveSharedSecret(peerPublicKey) {
      if (!(peerPublicKey instanceof Uint8Array) || peerPublicKey.length !== 32) {
        throw new CryptoError('ERR_CRYPTO_LOW_ORDER_POINT', 'X25519 public key must be 32 bytes');
      }
      let secret: Uint8Array;
      try {
        secret = x25519.getSharedSecret(priv, peerPublicKey);
      } catch {
        throw new CryptoError('ERR_CRYPTO_LOW_ORDER_POINT', 'X25519 shared secret is all zeros');
      }
      if (secret.every((b) => b === 0)) throw new CryptoError('ERR_CRYPTO_LOW_ORDER_POINT', 'X25519 shared secret is all zeros');
      return secret;
    },
  };
}

function hkdfExpand(algorithm: HashAlgorithm, prk: Uint8Array, info: Uint8Array, length: number): Uint8Array {
  const hashLen = HASH_LENGTH[algorithm];
  if (!Number.isInteger(length) || length < 0 || length > 255 * hashLen) {
    throw new RangeError(`HKDF-Expand length must be at most ${255 * hashLen}`);
  }
  if (prk.length < hashLen) throw new RangeError(`HKDF-Expand PRK must be at least ${hashLen} bytes`);
  if (length === 0) return new Uint8Array(0);
  return expand(HASHES[algorithm], prk, info, length);
}

/** The all-@noble provider. */
export const nobleCryptoProvider: CryptoProvider = {
  name: 'noble',
  randomBytes: (length) => randomBytes(length),
  aead: nobleAead,
  headerProtection: nobleHeaderProtection,
  hash: (algorithm, data) => HASHES[algorithm](data),
  hasher: (algorithm) => new NobleHasher(HASHES[algorithm].create()),
  hmac: (algorithm, key, data) => hmac(HASHES[algorithm], key, data),
  hkdfExtract: (algorithm, salt, ikm) => extract(HASHES[algorithm], ikm, salt),
  hkdfExpand,
  x25519Generate: () => x25519Pair(x25519.utils.randomSecretKey()),
  x25519FromPrivateKey(privateKey) {
    if (!(privateKey instanceof Uint8Array) || privateKey.length !== 32) throw new RangeError('X25519 private key must be 32 bytes');
    return x25519Pair(privateKey);
  },
  ed25519Signer(seed) {
    if (!(seed instanceof Uint8Array) || seed.length !== 32) throw new RangeError('Ed25519 seed must be 32 bytes');
    const own = Uint8Array.from(seed);
    return { publicKey: ed25519.getPublicKey(own), sign: (message) => ed25519.sign(message, own) };
  },
  ed25519Verifier(publicKey) {
    if (!(publicKey instanceof Uint8Array) || !isValidEd25519PublicKey(publicKey)) {
      throw new CryptoError('ERR_INVALID_PUBLIC_KEY', 'Ed25519 public key is not a valid curve point of large order');
    }
    const own = Uint8Array.from(publicKey);
    return {
      publicKey: own,
      verify(message, signature) {
        if (!(signature instanceof Uint8Array) || !passesStrictSignaturePrecheck(signature)) return false;
        try {
          return ed25519.verify(signature, message, own, { zip215: false });
        } catch {
          return false;
        }
      },
    };
  },
  ecdsaP256Signer(privateKey) {
    if (!(privateKey instanceof Uint8Array) || privateKey.length !== 32 || !p256.utils.isValidSecretKey(privateKey)) {
      throw new RangeError('P-256 private key must be a valid 32-byte scalar');
    }
    const own = Uint8Array.from(privateKey);
    return { publicKey: p256.getPublicKey(own, false), sign: (message) => p256.sign(message, own, { format: 'der' }) };
  },
  ecdsaP256Verifier(publicKey) {
    try {
      if (!(publicKey instanceof Uint8Array) || publicKey.length !== 65 || publicKey[0] !== 4) throw new Error('not an uncompressed point');
      p256.Point.fromBytes(publicKey).assertValidity();
    } catch {
      throw new CryptoError('ERR_INVALID_PUBLIC_KEY', 'P-256 public key is not a valid uncompressed curve point');
    }
    const own = Uint8Array.from(publicKey);
    return {
      publicKey: own,
      verify(message, signature) {
        if (!(signature instanceof Uint8Array) || signature.length > 72) return false;
        try {
          // Other implementations do not normalise s: high-S signatures are valid ECDSA.
          return p256.verify(signature, message, own, { format: 'der', lowS: false });
        } catch {
          return false;
        }
      },
    };
  },
  blake3: (data, outputLength = 32) => blake3(data, { dkLen: outputLength }),
  blake3DeriveKey: (context, keyMaterial, outputLength = 32) => blake3(keyMaterial, { context: utf8(context), dkLen: outputLength }),
};
