/**
 * The parts of strict Ed25519 verification that both providers share, so that they accept
 * exactly the same signatures and keys.
 *
 * iroh verifies with ed25519-dalek's `verify_strict`, which on top of RFC 8032 §5.1.7 rejects
 * small-order public keys and small-order `R`. We also reject non-canonical encodings of the
 * public key (y ≥ p), as `shared/docs/reliability.md` §5.H asks; no honest key has one.
 *
 * @module
 */
import { ed25519 } from '@noble/curves/ed25519.js';

/** A Map/Set key for bytes: one char per byte (a single native call, unlike hex). */
const byteKey = (bytes: Uint8Array): string => String.fromCharCode.apply(null, bytes as unknown as number[]);

/** p = 2^255 − 19, little-endian bytes. */
const P_BYTES = new Uint8Array(32).fill(0xff);
P_BYTES[0] = 0xed;
P_BYTES[31] = 0x7f;

/** L = 2^252 + 27742317777372353535851937790883648493 (RFC 8032 §5.1), little-endian. */
const L_BYTES = Uint8Array.from([
  0xed, 0xd3, 0xf5, 0x5c, 0x1a, 0x63, 0x12, 0x58, 0xd6, 0x9c, 0xf7, 0xa2, 0xde, 0xf9, 0xde, 0x14,
  0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10,
]);

/** Compare little-endian numbers of equal length: negative if a < b. */
function compareLE(a: Uint8Array, b: Uint8Array): number {
  for (let i = a.length - 1; i >= 0; i--) {
    const d = a[i]! - b[i]!;
    if (d !== 0) return d;
  }
  return 0;
}

/** The y coordinate (sign bit cleared), as little-endian bytes. */
function yOf(encoded: Uint8Array): Uint8Array {
  // A copy even for a Buffer (whose slice() is a view): the sign bit is cleared below.
  const y = Uint8Array.from(encoded.subarray(0, 32));
  y[31]! &= 0x7f;
  return y;
}

/** True if the encoding's y coordinate is below p (RFC 8032 §5.1.3 step 1). */
export function isCanonicalPointEncoding(encoded: Uint8Array): boolean {
  return encoded.length === 32 && compareLE(yOf(encoded), P_BYTES) < 0;
}

/** True if the 32-byte scalar (little-endian) is below the group order L (RFC 8032 §5.1.7). */
export function isCanonicalScalar(s: Uint8Array): boolean {
  return s.length === 32 && compareLE(s, L_BYTES) < 0;
}

/**
 * y coordinates (as {@link byteKey} of the little-endian bytes, mod p) of the eight points of small order.
 * A point has small order exactly when its y is one of these; computed once from the curve.
 */
const SMALL_ORDER_Y: ReadonlySet<string> = (() => {
  // A generator of the 8-torsion subgroup (a point of order 8); its multiples are all eight
  // small-order points, with five distinct y values (1, −1, 0, ±c).
  const generator = ed25519.Point.fromHex('26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05');
  const set = new Set<string>();
  let t = generator;
  for (let i = 0; i < 8; i++) {
    set.add(byteKey(yOf(t.toBytes())));
    t = t.add(generator);
  }
  return set;
})();

function reduceY(encoded: Uint8Array): Uint8Array {
  const y = yOf(encoded);
  if (compareLE(y, P_BYTES) >= 0) {
    // y ∈ [p, 2^255): subtract p, which only touches the low byte since y − p < 19.
    const out = new Uint8Array(32);
    out[0] = y[0]! - 0xed;
    return out;
  }
  return y;
}

/** True if the encoded point (any encoding, canonical or not) has order dividing 8. */
export function hasSmallOrder(encoded: Uint8Array): boolean {
  return SMALL_ORDER_Y.has(byteKey(reduceY(encoded)));
}

/**
 * True if `publicKey` is acceptable as an Ed25519 public key / EndpointId: 32 bytes, a
 * canonical encoding of a point on the curve, not of small order.
 */
export function isValidEd25519PublicKey(publicKey: Uint8Array): boolean {
  if (publicKey.length !== 32) return false;
  // Decompressing the point costs ~60 µs; the same few keys (peers, relays) come back
  // again and again, so remember recent answers (checked first: every answer is cached).
  const key = byteKey(publicKey);
  const known = VALIDITY_CACHE.get(key);
  if (known !== undefined) return known;
  let valid = isCanonicalPointEncoding(publicKey) && !hasSmallOrder(publicKey);
  if (valid) {
    try {
      ed25519.Point.fromBytes(publicKey, false);
    } catch {
      valid = false;
    }
  }
  if (VALIDITY_CACHE.size >= VALIDITY_CACHE_SIZE) VALIDITY_CACHE.delete(VALIDITY_CACHE.keys().next().value!);
  VALIDITY_CACHE.set(key, valid);
  return valid;
}

/** Bounded memo of point-validity answers (insertion order = eviction order). */
const VALIDITY_CACHE_SIZE = 1024;
const VALIDITY_CACHE = new Map<string, boolean>();

/**
 * The checks of `verify_strict` that come before the curve equation: the signature has 64
 * bytes, S < L, R is not of small order. (A non-canonical R can never equal the encoding the
 * verifier recomputes, so the equation check itself rejects it.)
 */
export function passesStrictSignaturePrecheck(signature: Uint8Array): boolean {
  return signature.length === 64 && isCanonicalScalar(signature.subarray(32, 64)) && !hasSmallOrder(signature.subarray(0, 32));
}
