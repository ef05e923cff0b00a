/**
 * Header protection with AES (RFC 9001 §5.4.3) from an expanded key, shared by both
 * providers.
 *
 * node:crypto needs either a new cipher per packet (about 4 µs, perf-anchors.md §3.5) or a
 * reused ECB cipher (0.6 µs measured here under Node 26), while @noble/ciphers' single-block
 * encryption with a pre-expanded key costs about 0.07 µs. The mask is one AES block, so the
 * pure-JS path is the fast path in both providers; tests check it against node:crypto ECB.
 *
 * @module
 */
import { unsafe } from '@noble/ciphers/aes.js';
import type { HeaderProtection, HeaderProtectionAlgorithm } from './provider.ts';
import { HP_SAMPLE_LENGTH } from './provider.ts';

/** AES-ECB of the 16-byte sample, first 5 bytes: RFC 9001 §5.4.3 `mask = AES-ECB(hp_key, sample)`. */
export function aesHeaderProtection(algorithm: 'aes-128' | 'aes-256', key: Uint8Array): HeaderProtection {
  const expanded = unsafe.expandKeyLE(key);
  const mask = (sample: Uint8Array): Uint8Array => {
    if (sample.length < HP_SAMPLE_LENGTH) throw new RangeError(`Header protection sample must be ${HP_SAMPLE_LENGTH} bytes`);
    const dv = new DataView(sample.buffer, sample.byteOffset, HP_SAMPLE_LENGTH);
    const r = unsafe.encrypt(expanded, dv.getUint32(0, true), dv.getUint32(4, true), dv.getUint32(8, true), dv.getUint32(12, true));
    // Only the first 5 bytes (s0 and the low byte of s1, little-endian) are used.
    const out = new Uint8Array(5);
    out[0] = r.s0 & 0xff;
    out[1] = (r.s0 >>> 8) & 0xff;
    out[2] = (r.s0 >>> 16) & 0xff;
    out[3] = r.s0 >>> 24;
    out[4] = r.s1 & 0xff;
    return out;
  };
  return { algorithm, mask };
}

/** Check a header-protection key length. */
export function checkHpKey(algorithm: HeaderProtectionAlgorithm, key: Uint8Array, expected: number): void {
  if (!(key instanceof Uint8Array) || key.length !== expected) {
    throw new RangeError(`Header protection key for ${algorithm} must be ${expected} bytes`);
  }
}
