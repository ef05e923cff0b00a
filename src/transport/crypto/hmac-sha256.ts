/**
 * HMAC-SHA-256 (RFC 2104, FIPS 180-4) in plain JavaScript for the short inputs of a
 * handshake: HKDF labels, Finished keys, reset tokens, the Initial secret.
 *
 * node:crypto's createHmac costs ~7 µs per call whatever the size (a native object, a
 * LazyTransform, two Buffers), and a handshake makes ~35 such calls per side; the work itself
 * is four SHA-256 compressions (~0.3 µs each here). The node provider sends SHA-256 HMACs of
 * short messages here and everything else to OpenSSL; the noble provider and the property
 * tests in test/unit/crypto-providers.test.ts hold both to the same bytes.
 *
 * @module
 */

// FIPS 180-4 §4.2.2: the first 32 bits of the fractional parts of the cube roots of the
// first 64 primes.
const K = Int32Array.of(
  0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5, 0xd807aa98, 0x12835b01,
  0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174, 0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc,
  0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da, 0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147,
  0x06ca6351, 0x14292967, 0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
  0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070, 0x19a4c116, 0x1e376c08,
  0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3, 0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208,
  0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
);
// FIPS 180-4 §5.3.3: the initial hash value.
const IV = Int32Array.of(0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19);

/** Message schedule scratch (one compression at a time: the module is synchronous). */
const W = new Int32Array(64);
/** One padded block being assembled. */
const block = new Uint8Array(64);

/** SHA-256 compression of `data[offset .. offset+64]` into `state` (FIPS 180-4 §6.2.2). */
function compress(state: Int32Array, data: Uint8Array, offset: number): void {
  for (let i = 0; i < 16; i++, offset += 4) {
    W[i] = (data[offset]! << 24) | (data[offset + 1]! << 16) | (data[offset + 2]! << 8) | data[offset + 3]!;
  }
  for (let i = 16; i < 64; i++) {
    const w15 = W[i - 15]!;
    const w2 = W[i - 2]!;
    const s0 = ((w15 >>> 7) | (w15 << 25)) ^ ((w15 >>> 18) | (w15 << 14)) ^ (w15 >>> 3);
    const s1 = ((w2 >>> 17) | (w2 << 15)) ^ ((w2 >>> 19) | (w2 << 13)) ^ (w2 >>> 10);
    W[i] = (W[i - 16]! + s0 + W[i - 7]! + s1) | 0;
  }
  let a = state[0]!;
  let b = state[1]!;
  let c = state[2]!;
  let d = state[3]!;
  let e = state[4]!;
  let f = state[5]!;
  let g = state[6]!;
  let h = state[7]!;
  for (let i = 0; i < 64; i++) {
    const S1 = ((e >>> 6) | (e << 26)) ^ ((e >>> 11) | (e << 21)) ^ ((e >>> 25) | (e << 7));
    const t1 = (h + S1 + ((e & f) ^ (~e & g)) + K[i]! + W[i]!) | 0;
    const S0 = ((a >>> 2) | (a << 30)) ^ ((a >>> 13) | (a << 19)) ^ ((a >>> 22) | (a << 10));
    const t2 = (S0 + ((a & b) ^ (a & c) ^ (b & c))) | 0;
    h = g;
    g = f;
    f = e;
    e = (d + t1) | 0;
    d = c;
    c = b;
    b = a;
    a = (t1 + t2) | 0;
  }
  state[0] = (state[0]! + a) | 0;
  state[1] = (state[1]! + b) | 0;
  state[2] = (state[2]! + c) | 0;
  state[3] = (state[3]! + d) | 0;
  state[4] = (state[4]! + e) | 0;
  state[5] = (state[5]! + f) | 0;
  state[6] = (state[6]! + g) | 0;
  state[7] = (state[7]! + h) | 0;
}

/**
 * Hash `parts` (concatenated) into `state`, which has already absorbed `prefixBlocks` blocks;
 * finishes with the FIPS 180-4 §5.1.1 padding.
 */
function absorbAndFinish(state: Int32Array, prefixBlocks: number, parts: readonly Uint8Array[]): void {
  let fill = 0;
  let total = prefixBlocks * 64;
  for (let p = 0; p < parts.length; p++) {
    const part = parts[p]!;
    const n = part.length;
    total += n;
    let pos = 0;
    // Whole blocks straight from the input when nothing is pending, bytes through `block` otherwise.
    if (fill === 0) for (; pos + 64 <= n; pos += 64) compress(state, part, pos);
    while (pos < n) {
      block[fill++] = part[pos++]!;
      if (fill === 64) {
        compress(state, block, 0);
        fill = 0;
        if (n - pos >= 64) for (; pos + 64 <= n; pos += 64) compress(state, part, pos);
      }
    }
  }
  block[fill++] = 0x80;
  if (fill > 56) {
    block.fill(0, fill);
    compress(state, block, 0);
    fill = 0;
  }
  block.fill(0, fill, 56);
  // Bit length, big-endian 64-bit; inputs here are far below 2^32 bits.
  const bits = total * 8;
  const hi = Math.floor(bits / 0x100000000);
  block[56] = hi >>> 24;
  block[57] = (hi >>> 16) & 0xff;
  block[58] = (hi >>> 8) & 0xff;
  block[59] = hi & 0xff;
  block[60] = bits >>> 24;
  block[61] = (bits >>> 16) & 0xff;
  block[62] = (bits >>> 8) & 0xff;
  block[63] = bits & 0xff;
  compress(state, block, 0);
}

function writeState(state: Int32Array, out: Uint8Array): void {
  for (let i = 0; i < 8; i++) {
    const v = state[i]!;
    out[4 * i] = v >>> 24;
    out[4 * i + 1] = (v >>> 16) & 0xff;
    out[4 * i + 2] = (v >>> 8) & 0xff;
    out[4 * i + 3] = v & 0xff;
  }
}

const keyBlock = new Uint8Array(64);
const inner = new Int32Array(8);
const outer = new Int32Array(8);
const innerDigest = new Uint8Array(32);
const innerDigestParts = [innerDigest];

/** Longest key taken directly; longer keys are hashed first (RFC 2104 §2). */
const BLOCK = 64;

/**
 * The keyed states (K ⊕ ipad, K ⊕ opad, one compression each) of the last key, with a copy
 * of the key they came from: a traffic secret derives its key, IV and header-protection key
 * in a row ("quic key", "quic iv", "quic hp").
 */
const cachedKey = new Uint8Array(BLOCK);
let cachedKeyLength = -1;
const cachedInner = new Int32Array(8);
const cachedOuter = new Int32Array(8);

function sameAsCached(key: Uint8Array): boolean {
  if (key.length !== cachedKeyLength) return false;
  for (let i = 0; i < key.length; i++) if (key[i] !== cachedKey[i]) return false;
  return true;
}

function keyStates(key: Uint8Array): void {
  if (key.length <= BLOCK && sameAsCached(key)) {
    inner.set(cachedInner);
    outer.set(cachedOuter);
    return;
  }
  keyBlock.fill(0);
  if (key.length > BLOCK) {
    const hashed = new Int32Array(IV);
    absorbAndFinish(hashed, 0, [key]);
    writeState(hashed, keyBlock);
  } else {
    keyBlock.set(key);
  }
  // K ⊕ ipad, then K ⊕ opad: each one block.
  for (let i = 0; i < BLOCK; i++) keyBlock[i]! ^= 0x36;
  inner.set(IV);
  compress(inner, keyBlock, 0);
  for (let i = 0; i < BLOCK; i++) keyBlock[i]! ^= 0x36 ^ 0x5c;
  outer.set(IV);
  compress(outer, keyBlock, 0);
  keyBlock.fill(0);
  cachedKey.fill(0);
  if (key.length <= BLOCK) {
    cachedKey.set(key);
    cachedKeyLength = key.length;
    cachedInner.set(inner);
    cachedOuter.set(outer);
  } else {
    cachedKeyLength = -1;
  }
}

/** HMAC-SHA-256(key, parts[0] ‖ parts[1] ‖ …) (RFC 2104). A fresh 32-byte result. */
export function hmacSha256(key: Uint8Array, parts: readonly Uint8Array[]): Uint8Array {
  keyStates(key);
  absorbAndFinish(inner, 1, parts);
  writeState(inner, innerDigest);
  absorbAndFinish(outer, 1, innerDigestParts);
  innerDigest.fill(0);
  const out = new Uint8Array(32);
  writeState(outer, out);
  inner.fill(0);
  outer.fill(0);
  block.fill(0);
  return out;
}
