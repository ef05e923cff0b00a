/**
 * CPace over ristretto255 with SHA-512 (draft-irtf-cfrg-cpace, cipher suite
 * CPACE-RISTR255-SHA512), initiator–responder setting, with the explicit key confirmation of
 * the draft's §10.4. Built on `@noble/curves` (RFC 9496 element derivation, the group) and
 * `@noble/hashes` (SHA-512, HMAC); checked against the draft's test vectors (appendix B.3).
 *
 * Roles follow the draft: **A** speaks first (sends Ya), **B** answers (Yb). In sdnet's pairing
 * the joiner is A and the device that showed the code is B; which device *initiated* the
 * pairing is encoded in CI (see `pairing/exchange.ts`).
 *
 * This module is pure computation: no I/O, no clock; randomness comes from `randomBytes`
 * (overridable for the test vectors).
 *
 * @module
 */
import { ristretto255, ristretto255_hasher } from '@noble/curves/ed25519.js';
import { hmac } from '@noble/hashes/hmac.js';
import { sha512 } from '@noble/hashes/sha2.js';
import { randomBytes as nobleRandomBytes } from '@noble/hashes/utils.js';
import { concatBytes, equalBytesConstantTime, utf8 } from '../../util/bytes.ts';
import { CryptoError } from '../../util/errors.ts';

const Point = ristretto255.Point;
type RistrettoPoint = InstanceType<typeof Point>;

/** G_Ristretto255.DSI (draft §8.3). */
export const CPACE_DSI = utf8('CPaceRistretto255');
/** H.s_in_bytes of SHA-512: its input block (draft §8.1 pads the generator string to it). */
const SHA512_BLOCK_BYTES = 128;
/** Encoded group elements and scalars are 32 bytes. */
export const CPACE_POINT_BYTES = 32;
/** ISK length (SHA-512 output). */
export const CPACE_ISK_BYTES = 64;
/** Confirmation tag length (HMAC-SHA-512). */
export const CPACE_TAG_BYTES = 64;

/** `prepend_len` (draft A.1.1): the LEB128 length of `data`, then `data`. */
export function prependLen(data: Uint8Array): Uint8Array {
  const len: number[] = [];
  let n = data.length;
  do {
    let b = n & 0x7f;
    n = Math.floor(n / 128);
    if (n > 0) b |= 0x80;
    len.push(b);
  } while (n > 0);
  return concatBytes(Uint8Array.from(len), data);
}

/** `lv_cat` (draft A.1.3): each argument with its length prepended, concatenated. */
export function lvCat(...parts: Uint8Array[]): Uint8Array {
  return concatBytes(...parts.map(prependLen));
}

/**
 * `generator_string` (draft A.2): lv_cat(DSI, PRS, zero padding, CI, sid), the padding
 * filling the first hash block after DSI and PRS so that the bytes hashed do not depend on a
 * short password's length.
 */
export function generatorString(prs: Uint8Array, ci: Uint8Array, sid: Uint8Array): Uint8Array {
  const zpad = Math.max(0, SHA512_BLOCK_BYTES - 1 - prependLen(prs).length - prependLen(CPACE_DSI).length);
  return lvCat(CPACE_DSI, prs, new Uint8Array(zpad), ci, sid);
}

/**
 * `G.calculate_generator` (draft §8.3): SHA-512 of the generator string (64 bytes, twice the
 * field size), mapped by RFC 9496 element derivation.
 */
function generatorPoint(prs: Uint8Array, ci: Uint8Array, sid: Uint8Array): RistrettoPoint {
  return ristretto255_hasher.deriveToCurve!(sha512(generatorString(prs, ci, sid))) as RistrettoPoint;
}

/** The generator, encoded (for tests and the transcript analysis). */
export function calculateGenerator(prs: Uint8Array, ci: Uint8Array, sid: Uint8Array): Uint8Array {
  return generatorPoint(prs, ci, sid).toBytes();
}

/** Little-endian bytes → integer. */
function leToBigint(bytes: Uint8Array): bigint {
  let x = 0n;
  for (let i = bytes.length - 1; i >= 0; i--) x = (x << 8n) | BigInt(bytes[i]!);
  return x;
}

/**
 * `G.sample_scalar` as the draft recommends for ristretto255 (§8.3): 32 random bytes with the
 * bits above bit 252 cleared, read little-endian (always below the group order). Zero (2^-252)
 * is drawn again.
 */
export function sampleScalar(random: (n: number) => Uint8Array = nobleRandomBytes): bigint {
  for (;;) {
    const b = random(32);
    b[31]! &= 0x0f;
    const y = leToBigint(b);
    b.fill(0);
    if (y !== 0n) return y;
  }
}

/** A scalar given as the draft's little-endian bytes (test vectors). */
export function scalarFromBytes(bytes: Uint8Array): bigint {
  if (bytes.length !== 32) throw new RangeError('A scalar is 32 bytes');
  const y = leToBigint(bytes);
  if (y === 0n || y >= Point.Fn.ORDER) throw new RangeError('Scalar out of range');
  return y;
}

/** The peer's share is not a valid group element, or the shared point is the identity. */
export class CpaceError extends CryptoError {
  constructor(message: string) {
    super('ERR_PAIRING_INVALID_SHARE', message);
    this.name = 'CpaceError';
  }
}

/**
 * `G.scalar_mult_vfy(y, X)` (draft §8.3): y·decode(X), where a failing decode yields the
 * identity. The caller aborts on the identity (draft §7.2 "MUST abort if K=G.I"); here that
 * is one error for both cases.
 *
 * @throws {CpaceError} when X does not decode or the product is the identity
 */
export function scalarMultVfy(y: bigint, encoded: Uint8Array): Uint8Array {
  let X: RistrettoPoint;
  try {
    if (encoded.length !== CPACE_POINT_BYTES) throw new Error('length');
    X = Point.fromBytes(encoded);
  } catch {
    throw new CpaceError('The peer share does not decode to a ristretto255 element');
  }
  // A prime-order group: y·X is the identity only when X is. Checked on the product anyway.
  if (X.is0()) throw new CpaceError('The peer share is the identity element');
  const K = X.multiply(y);
  if (K.is0()) throw new CpaceError('The shared point is the identity element');
  return K.toBytes();
}

/** ISK = H(lv_cat(DSI‖"_ISK", sid, K) ‖ transcript_ir(Ya, ADa, Yb, ADb)) (draft §7.2, A.3.4). */
export function deriveIsk(sid: Uint8Array, K: Uint8Array, ya: Uint8Array, ada: Uint8Array, yb: Uint8Array, adb: Uint8Array): Uint8Array {
  return sha512(concatBytes(lvCat(concatBytes(CPACE_DSI, utf8('_ISK')), sid, K), lvCat(ya, ada), lvCat(yb, adb)));
}

/** The key of the confirmation MACs: H("CPaceMac" ‖ sid ‖ ISK) (draft §10.4). */
export function macKey(sid: Uint8Array, isk: Uint8Array): Uint8Array {
  return sha512(concatBytes(utf8('CPaceMac'), sid, isk));
}

/** A party's confirmation tag over the message it sent: MAC(mac_key, lv_cat(Y, AD)) (draft §10.4). */
export function confirmationTag(key: Uint8Array, share: Uint8Array, ad: Uint8Array): Uint8Array {
  return hmac(sha512, key, lvCat(share, ad));
}

/** What a finished CPace run gives one party. */
export interface CpaceResult {
  /** The intermediate session key (64 bytes): feed it to a KDF, never use it directly. */
  readonly isk: Uint8Array;
  /** Our confirmation tag, to send. */
  readonly ownTag: Uint8Array;
  /** Check the peer's tag in constant time. */
  verifyPeerTag(tag: Uint8Array): boolean;
}

export interface CpaceInputs {
  /** Password-related string: the secret both sides hold. */
  readonly prs: Uint8Array;
  /** Channel identifier (party identities, initiator first). */
  readonly ci: Uint8Array;
  /** Session id, unique per run (a TLS exporter in sdnet). */
  readonly sid: Uint8Array;
  /** Our associated data (sent in the clear next to our share). */
  readonly ad: Uint8Array;
  /** Fixed scalar (test vectors only); random otherwise. */
  readonly scalar?: bigint;
  /** Randomness for the scalar (tests); `@noble/hashes` randomBytes otherwise. */
  readonly random?: (n: number) => Uint8Array;
}

/**
 * One party of a CPace run. Construct, send {@link share} (with our AD), then
 * {@link finish} with the peer's share and AD.
 */
export class CpaceParty {
  readonly role: 'A' | 'B';
  /** Our public share (Ya or Yb), encoded. */
  readonly share: Uint8Array;
  readonly #y: bigint;
  readonly #sid: Uint8Array;
  readonly #ad: Uint8Array;
  #finished = false;

  constructor(role: 'A' | 'B', inputs: CpaceInputs) {
    this.role = role;
    const g = generatorPoint(inputs.prs, inputs.ci, inputs.sid);
    this.#y = inputs.scalar ?? sampleScalar(inputs.random);
    this.share = g.multiply(this.#y).toBytes();
    this.#sid = inputs.sid.slice();
    this.#ad = inputs.ad.slice();
  }

  /**
   * K = y·peerShare (aborting on an invalid share or the identity), the ISK over both
   * messages in A-then-B order, and the confirmation tags. One use.
   *
   * @throws {CpaceError} for an invalid share
   */
  finish(peerShare: Uint8Array, peerAd: Uint8Array): CpaceResult {
    if (this.#finished) throw new Error('A CPace party finishes once');
    this.#finished = true;
    const K = scalarMultVfy(this.#y, peerShare);
    const [ya, ada, yb, adb] = this.role === 'A' ? [this.share, this.#ad, peerShare, peerAd] : [peerShare, peerAd, this.share, this.#ad];
    const isk = deriveIsk(this.#sid, K, ya, ada, yb, adb);
    K.fill(0);
    const key = macKey(this.#sid, isk);
    const ownTag = confirmationTag(key, this.share, this.#ad);
    const expected = confirmationTag(key, peerShare, peerAd);
    key.fill(0);
    return {
      isk,
      ownTag,
      // Constant time: the comparison's duration depends on the lengths only.
      verifyPeerTag: (tag: Uint8Array) => equalBytesConstantTime(tag, expected),
    };
  }
}
