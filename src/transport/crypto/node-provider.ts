/**
 * The node:crypto crypto provider: the fast path in Node.
 *
 * AEAD, hashes, HMAC/HKDF, X25519 and Ed25519 run in OpenSSL (6–17× faster than pure JS
 * here, perf-anchors.md §3). AES header protection and BLAKE3 come from @noble (see
 * `hp-shared.ts`; OpenSSL has no BLAKE3).
 *
 * @module
 */
import {
  createCipheriv,
  createDecipheriv,
  createECDH,
  createHash,
  createHmac,
  createPrivateKey,
  createPublicKey,
  createSecretKey,
  diffieHellman,
  generateKeyPairSync,
  randomFillSync,
  sign as nodeSign,
  verify as nodeVerify,
  type CipherGCMTypes,
  type Hash,
  type KeyObject,
} from 'node:crypto';
import { blake3 } from '@noble/hashes/blake3.js';
import { p256 } from '@noble/curves/nist.js';
import { CryptoError } from '../../util/errors.ts';
import { utf8 } from '../../util/bytes.ts';
import { aesHeaderProtection, checkHpKey } from './hp-shared.ts';
import { hmacSha256 } from './hmac-sha256.ts';
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
  type EcdsaP256Signer,
  type EcdsaP256Verifier,
  type Ed25519Signer,
  type Ed25519Verifier,
  type HashAlgorithm,
  type Hasher,
  type HeaderProtection,
  type HeaderProtectionAlgorithm,
  type X25519KeyPair,
} from './provider.ts';

/** View a Buffer as a plain Uint8Array (same memory), so results compare equal to noble's. */
const plain = (b: Buffer): Uint8Array => new Uint8Array(b.buffer, b.byteOffset, b.byteLength);

const b64url = (bytes: Uint8Array): string => Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('base64url');
const fromB64url = (text: string): Uint8Array => plain(Buffer.from(text, 'base64url'));

/** DER prefix of a PKCS#8 Ed25519 private key; the 32-byte seed follows (RFC 8410 §7). */
const ED25519_PKCS8_PREFIX = Buffer.from('302e020100300506032b657004220420', 'hex');
/** DER prefix of a PKCS#8 X25519 private key; the 32-byte scalar follows (RFC 8410 §7). */
const X25519_PKCS8_PREFIX = Buffer.from('302e020100300506032b656e04220420', 'hex');

// The @types/node overloads take one cipher family at a time; every AEAD here takes the
// same options (a 12-byte nonce and authTagLength 16), so one name type serves all three.
const OPENSSL_AEAD: Readonly<Record<AeadAlgorithm, CipherGCMTypes>> = {
  'aes-128-gcm': 'aes-128-gcm',
  'aes-256-gcm': 'aes-256-gcm',
  'chacha20-poly1305': 'chacha20-poly1305' as CipherGCMTypes,
};

function nodeAead(algorithm: AeadAlgorithm, key: Uint8Array): Aead {
  if (!(key instanceof Uint8Array) || key.length !== AEAD_KEY_LENGTH[algorithm]) {
    throw new RangeError(`AEAD key for ${algorithm} must be ${AEAD_KEY_LENGTH[algorithm]} bytes`);
  }
  const name = OPENSSL_AEAD[algorithm];
  // A KeyObject saves re-importing the raw key on every packet.
  const keyBuf = createSecretKey(key);
  return {
    algorithm,
    seal(nonce, aad, plaintext) {
      if (nonce.length !== AEAD_NONCE_LENGTH) throw new RangeError(`AEAD nonce must be ${AEAD_NONCE_LENGTH} bytes`);
      const cipher = createCipheriv(name, keyBuf, nonce, { authTagLength: AEAD_TAG_LENGTH });
      cipher.setAAD(aad, { plaintextLength: plaintext.length });
      const body = cipher.update(plaintext);
      cipher.final();
      const out = new Uint8Array(body.length + AEAD_TAG_LENGTH);
      out.set(body, 0);
      out.set(cipher.getAuthTag(), body.length);
      return out;
    },
    sealInto(nonce, aad, plaintext, out, offset) {
      if (nonce.length !== AEAD_NONCE_LENGTH) throw new RangeError(`AEAD nonce must be ${AEAD_NONCE_LENGTH} bytes`);
      const cipher = createCipheriv(name, keyBuf, nonce, { authTagLength: AEAD_TAG_LENGTH });
      cipher.setAAD(aad, { plaintextLength: plaintext.length });
      // update() returns a new buffer, so writing over the plaintext in place is safe.
      const body = cipher.update(plaintext);
      cipher.final();
      out.set(body, offset);
      out.set(cipher.getAuthTag(), offset + body.length);
      return body.length + AEAD_TAG_LENGTH;
    },
    open(nonce, aad, sealed) {
      if (nonce.length !== AEAD_NONCE_LENGTH || sealed.length < AEAD_TAG_LENGTH) return null;
      const ctLen = sealed.length - AEAD_TAG_LENGTH;
      const decipher = createDecipheriv(name, keyBuf, nonce, { authTagLength: AEAD_TAG_LENGTH });
      decipher.setAAD(aad, { plaintextLength: ctLen });
      decipher.setAuthTag(sealed.subarray(ctLen));
      const body = decipher.update(sealed.subarray(0, ctLen));
      try {
        decipher.final();
      } catch {
        return null;
      }
      return plain(body);
    },
  };
}

function nodeHeaderProtection(algorithm: HeaderProtectionAlgorithm, key: Uint8Array): HeaderProtection {
  checkHpKey(algorithm, key, HP_KEY_LENGTH[algorithm]);
  if (algorithm !== 'chacha20') return aesHeaderProtection(algorithm, key);
  const keyBuf = Buffer.from(key);
  const zeros = new Uint8Array(5);
  return {
    algorithm,
    // RFC 9001 §5.4.4: counter = sample[0..4] (little-endian), nonce = sample[4..16],
    // mask = ChaCha20(hp_key, counter, nonce, {0,0,0,0,0}). OpenSSL's "chacha20" takes
    // exactly that 16-byte IV (counter first).
    mask(sample) {
      if (sample.length < HP_SAMPLE_LENGTH) throw new RangeError(`Header protection sample must be ${HP_SAMPLE_LENGTH} bytes`);
      const cipher = createCipheriv('chacha20', keyBuf, sample.subarray(0, 16));
      return plain(cipher.update(zeros));
    },
  };
}

class NodeHasher implements Hasher {
  readonly #hash: Hash;
  constructor(hash: Hash) {
    this.#hash = hash;
  }
  update(data: Uint8Array): Hasher {
    this.#hash.update(data);
    return this;
  }
  digest(): Uint8Array {
    return plain(this.#hash.copy().digest());
  }
  clone(): Hasher {
    return new NodeHasher(this.#hash.copy());
  }
}

/**
 * Up to this many bytes of message, HMAC-SHA-256 runs in JavaScript: createHmac's fixed
 * ~7 µs per call is more than hashing this much (`hmac-sha256.ts`).
 */
const JS_HMAC_MAX = 512;

function hmac(algorithm: HashAlgorithm, key: Uint8Array, data: Uint8Array): Uint8Array {
  if (algorithm === 'sha256' && data.length <= JS_HMAC_MAX && key.length <= JS_HMAC_MAX) return hmacSha256(key, [data]);
  return plain(createHmac(algorithm, key).update(data).digest());
}

const COUNTER_ONE = Uint8Array.of(1);

function hkdfExpand(algorithm: HashAlgorithm, prk: Uint8Array, info: Uint8Array, length: number): Uint8Array {
  const hashLen = HASH_LENGTH[algorithm];
  if (!Number.isInteger(length) || length < 0 || length > 255 * hashLen) {
    throw new RangeError(`HKDF-Expand length must be at most ${255 * hashLen}`);
  }
  // RFC 5869 §2.3: PRK is "at least HashLen octets"; both providers hold callers to it.
  if (prk.length < hashLen) throw new RangeError(`HKDF-Expand PRK must be at least ${hashLen} bytes`);
  // RFC 5869 §2.3: T(i) = HMAC(PRK, T(i-1) ‖ info ‖ i). Every QUIC and TLS label needs one
  // block: T(1) = HMAC(PRK, info ‖ 0x01), without the loop's copies.
  if (length <= hashLen) {
    if (algorithm === 'sha256' && info.length <= JS_HMAC_MAX && prk.length <= JS_HMAC_MAX) {
      const t = hmacSha256(prk, [info, COUNTER_ONE]);
      return length === hashLen ? t : t.slice(0, length);
    }
    const t1 = plain(createHmac(algorithm, prk).update(info).update(COUNTER_ONE).digest());
    return length === hashLen ? t1 : t1.slice(0, length);
  }
  const out = new Uint8Array(length);
  let prev: Uint8Array = new Uint8Array(0);
  const counter = new Uint8Array(1);
  for (let off = 0, i = 1; off < length; i++) {
    counter[0] = i;
    prev = plain(createHmac(algorithm, prk).update(prev).update(info).update(counter).digest());
    out.set(prev.subarray(0, Math.min(hashLen, length - off)), off);
    off += hashLen;
  }
  return out;
}

function x25519PublicKeyObject(publicKey: Uint8Array): KeyObject {
  if (!(publicKey instanceof Uint8Array) || publicKey.length !== 32) {
    throw new CryptoError('ERR_CRYPTO_LOW_ORDER_POINT', 'X25519 public key must be 32 bytes');
  }
  return createPublicKey({ key: { kty: 'OKP', crv: 'X25519', x: b64url(publicKey) }, format: 'jwk' });
}

function x25519Pair(privateKey: KeyObject): X25519KeyPair {
  const jwk = privateKey.export({ format: 'jwk' });
  const publicKey = fromB64url(jwk.x!);
  return {
    publicKey,
    deriveSharedSecret(peerPublicKey) {
      let secret: Uint8Array;
      try {
        secret = plain(diffieHellman({ privateKey, publicKey: x25519PublicKeyObject(peerPublicKey) }));
      } catch {
        // OpenSSL refuses to derive an all-zero secret (a low-order peer point).
        throw new CryptoError('ERR_CRYPTO_LOW_ORDER_POINT', 'X25519 shared secret is all zeros');
      }
      if (secret.every((b) => b === 0)) throw new CryptoError('ERR_CRYPTO_LOW_ORDER_POINT', 'X25519 shared secret is all zeros');
      return secret;
    },
  };
}

function ed25519Signer(seed: Uint8Array): Ed25519Signer {
  if (!(seed instanceof Uint8Array) || seed.length !== 32) throw new RangeError('Ed25519 seed must be 32 bytes');
  const key = createPrivateKey({ key: Buffer.concat([ED25519_PKCS8_PREFIX, seed]), format: 'der', type: 'pkcs8' });
  const publicKey = fromB64url(key.export({ format: 'jwk' }).x!);
  return {
    publicKey,
    sign: (message) => plain(nodeSign(null, message, key)),
  };
}

/**
 * Imported Ed25519 public keys of recent peers (most recent last): an endpoint mostly talks to
 * the same few peers, and checking and importing a key costs more than the verification.
 */
const verifierKeys = new Map<string, KeyObject>();
const MAX_VERIFIER_KEYS = 256;

function importEd25519PublicKey(publicKey: Uint8Array, b64: string): KeyObject {
  if (!isValidEd25519PublicKey(publicKey)) throw new CryptoError('ERR_INVALID_PUBLIC_KEY', 'Ed25519 public key is not a valid curve point of large order');
  if (verifierKeys.size >= MAX_VERIFIER_KEYS) verifierKeys.delete(verifierKeys.keys().next().value!);
  return createPublicKey({ key: { kty: 'OKP', crv: 'Ed25519', x: b64 }, format: 'jwk' });
}

function ed25519Verifier(publicKey: Uint8Array): Ed25519Verifier {
  if (!(publicKey instanceof Uint8Array)) throw new CryptoError('ERR_INVALID_PUBLIC_KEY', 'Ed25519 public key is not a valid curve point of large order');
  const own = Uint8Array.from(publicKey);
  const id = b64url(own);
  const key = verifierKeys.get(id) ?? importEd25519PublicKey(own, id);
  verifierKeys.delete(id);
  verifierKeys.set(id, key);
  return {
    publicKey: own,
    verify(message, signature) {
      if (!(signature instanceof Uint8Array) || !passesStrictSignaturePrecheck(signature)) return false;
      try {
        return nodeVerify(null, message, key, signature);
      } catch {
        return false;
      }
    },
  };
}

function ecdsaP256Signer(privateKey: Uint8Array): EcdsaP256Signer {
  if (!(privateKey instanceof Uint8Array) || privateKey.length !== 32) throw new RangeError('P-256 private key must be 32 bytes');
  let publicKey: Uint8Array;
  try {
    const ecdh = createECDH('prime256v1');
    ecdh.setPrivateKey(Buffer.from(privateKey));
    publicKey = plain(ecdh.getPublicKey());
  } catch {
    throw new RangeError('P-256 private key is not a valid scalar');
  }
  const key = createPrivateKey({
    key: { kty: 'EC', crv: 'P-256', d: b64url(privateKey), x: b64url(publicKey.subarray(1, 33)), y: b64url(publicKey.subarray(33)) },
    format: 'jwk',
  });
  return { publicKey, sign: (message) => plain(nodeSign('sha256', message, { key, dsaEncoding: 'der' })) };
}

function ecdsaP256Verifier(publicKey: Uint8Array): EcdsaP256Verifier {
  let key: KeyObject;
  try {
    // Rejects anything but an uncompressed point on the curve.
    if (!(publicKey instanceof Uint8Array) || publicKey.length !== 65 || publicKey[0] !== 4) throw new Error('not an uncompressed point');
    p256.Point.fromBytes(publicKey).assertValidity();
    key = createPublicKey({ key: { kty: 'EC', crv: 'P-256', x: b64url(publicKey.subarray(1, 33)), y: b64url(publicKey.subarray(33)) }, format: 'jwk' });
  } catch {
    throw new CryptoError('ERR_INVALID_PUBLIC_KEY', 'P-256 public key is not a valid uncompressed curve point');
  }
  const own = Uint8Array.from(publicKey);
  return {
    publicKey: own,
    verify(message, signature) {
      if (!(signature instanceof Uint8Array) || signature.length > 72) return false;
      try {
        return nodeVerify('sha256', message, { key, dsaEncoding: 'der' }, signature);
      } catch {
        return false;
      }
    },
  };
}

/**
 * Ephemeral X25519 key pairs made ahead of need, off the handshake's path: generating one
 * (and reading its public half) is ~45 µs on its own and ~100 µs inside a handshake (a
 * profile of sdnet → iroh connects: 43 % of the client's connect() call). {@link prepare}
 * refills the pool when the driver has nothing urgent, typically while it waits for the
 * peer's answer. Each pair is still used once; one older than {@link SPARE_KEY_MAX_AGE_MS} is
 * dropped unused, so a pre-made key never waits long for its handshake.
 */
const SPARE_KEYS = 2;
const SPARE_KEY_MAX_AGE_MS = 30_000;
const spareKeys: { pair: X25519KeyPair; madeAt: number }[] = [];

const newX25519Pair = (): X25519KeyPair => x25519Pair(generateKeyPairSync('x25519').privateKey);

/** Drop the spare pairs made too long ago (the oldest are first). */
function dropStaleX25519Pairs(now: number): void {
  while (spareKeys.length > 0 && now - spareKeys[0]!.madeAt > SPARE_KEY_MAX_AGE_MS) spareKeys.shift();
}

function takeX25519Pair(): X25519KeyPair {
  dropStaleX25519Pairs(performance.now());
  return spareKeys.shift()?.pair ?? newX25519Pair();
}

/** @internal Pre-made pairs waiting (tests). */
export const spareX25519Pairs = (): number => spareKeys.length;

function prepare(): void {
  const now = performance.now();
  dropStaleX25519Pairs(now);
  // One pair per call: a pass of the driver does not stall on several keys.
  if (spareKeys.length < SPARE_KEYS) spareKeys.push({ pair: newX25519Pair(), madeAt: now });
}

/**
 * randomFillSync costs ~4 µs a call whatever the size, and a handshake asks for ~20 small
 * values (connection IDs, randoms, GREASE): small requests are served from a pool filled 4 KiB
 * at a time. Each byte is handed out once, as a copy, and wiped from the pool.
 */
const RANDOM_POOL_SIZE = 4096;
const RANDOM_POOLED_MAX = 64;
let randomPool = new Uint8Array(0);
let randomPos = 0;

/** The node:crypto provider. */
export const nodeCryptoProvider: CryptoProvider = {
  name: 'node',
  randomBytes(length) {
    if (!(length >= 0 && length <= RANDOM_POOLED_MAX && Number.isInteger(length))) return randomFillSync(new Uint8Array(length));
    if (randomPos + length > randomPool.length) {
      randomPool = randomFillSync(new Uint8Array(RANDOM_POOL_SIZE));
      randomPos = 0;
    }
    const out = randomPool.slice(randomPos, randomPos + length);
    randomPool.fill(0, randomPos, randomPos + length);
    randomPos += length;
    return out;
  },
  aead: nodeAead,
  headerProtection: nodeHeaderProtection,
  hash: (algorithm, data) => plain(createHash(algorithm).update(data).digest()),
  hasher: (algorithm) => new NodeHasher(createHash(algorithm)),
  hmac,
  // RFC 5869 §2.2: PRK = HMAC-Hash(salt, IKM); an empty salt means HashLen zeros, which
  // HMAC pads to the same block, so passing the empty salt through is equivalent.
  hkdfExtract: (algorithm, salt, ikm) => hmac(algorithm, salt, ikm),
  hkdfExpand,
  // Synchronously (an asynchronous generateKeyPair costs the event loop more than the ~40 µs
  // of generating the key: job setup, then a callback per key, and it ties the handshake to
  // the thread pool), and ahead of need when the event loop has time (takeX25519Pair).
  x25519Generate: takeX25519Pair,
  prepare,
  x25519FromPrivateKey(privateKey) {
    if (!(privateKey instanceof Uint8Array) || privateKey.length !== 32) throw new RangeError('X25519 private key must be 32 bytes');
    return x25519Pair(createPrivateKey({ key: Buffer.concat([X25519_PKCS8_PREFIX, privateKey]), format: 'der', type: 'pkcs8' }));
  },
  ed25519Signer,
  ed25519Verifier,
  ecdsaP256Signer,
  ecdsaP256Verifier,
  blake3: (data, outputLength = 32) => blake3(data, { dkLen: outputLength }),
  blake3DeriveKey: (context, keyMaterial, outputLength = 32) => blake3(keyMaterial, { context: utf8(context), dkLen: outputLength }),
};
