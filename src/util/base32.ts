/**
 * Unpadded base32 in the three alphabets iroh uses:
 * RFC 4648 §6 (tickets, key strings), RFC 4648 §7 "base32hex" (TLS server names) and
 * z-base-32 (DNS / pkarr names).
 *
 * Decoding is strict, like the `data-encoding` crate iroh uses: a length that cannot come
 * from whole bytes, or non-zero bits in the unused tail of the last character, is an error.
 *
 * @module
 */
import { DecodeError } from './errors.ts';

/** RFC 4648 §6 alphabet, lower case (iroh writes tickets in lower case). */
export const BASE32_RFC4648_LOWER = 'abcdefghijklmnopqrstuvwxyz234567';
/** RFC 4648 §7 "Extended Hex" alphabet, lower case (iroh's BASE32_DNSSEC). */
export const BASE32_HEX_LOWER = '0123456789abcdefghijklmnopqrstuv';
/** z-base-32 alphabet. */
export const BASE32_Z = 'ybndrfg8ejkmcpqxot1uwisza345h769';

/** Encode `bytes` with the given 32-letter alphabet, without padding. */
export function encodeBase32(bytes: Uint8Array, alphabet: string): string {
  let out = '';
  let acc = 0;
  let bits = 0;
  for (let i = 0; i < bytes.length; i++) {
    acc = ((acc << 8) | bytes[i]!) & 0xfff;
    bits += 8;
    while (bits >= 5) {
      bits -= 5;
      out += alphabet[(acc >> bits) & 31];
    }
  }
  if (bits > 0) out += alphabet[(acc << (5 - bits)) & 31];
  return out;
}

const decodeTables = new Map<string, Int8Array>();

function decodeTable(alphabet: string): Int8Array {
  let table = decodeTables.get(alphabet);
  if (table === undefined) {
    table = new Int8Array(128).fill(-1);
    for (let i = 0; i < 32; i++) table[alphabet.charCodeAt(i)] = i;
    decodeTables.set(alphabet, table);
  }
  return table;
}

/** Number of bytes `chars` unpadded base32 characters decode to, or -1 if no byte count fits. */
export function base32DecodedLength(chars: number): number {
  // RFC 4648 §6: a final quantum of 2, 4, 5 or 7 characters carries 1, 2, 3 or 4 bytes.
  const rem = chars % 8;
  if (rem === 1 || rem === 3 || rem === 6) return -1;
  return Math.floor((chars * 5) / 8);
}

/**
 * Decode unpadded base32 written with `alphabet`.
 *
 * @throws {DecodeError} on a character outside the alphabet, an impossible length or
 *   non-zero trailing bits
 */
export function decodeBase32(text: string, alphabet: string): Uint8Array {
  const outLen = base32DecodedLength(text.length);
  if (outLen < 0) throw new DecodeError(`Cannot decode base32: invalid length ${text.length}`);
  const table = decodeTable(alphabet);
  const out = new Uint8Array(outLen);
  let acc = 0;
  let bits = 0;
  let j = 0;
  for (let i = 0; i < text.length; i++) {
    const code = text.charCodeAt(i);
    const v = code < 128 ? table[code]! : -1;
    if (v < 0) throw new DecodeError(`Cannot decode base32: invalid character at offset ${i}`);
    acc = ((acc << 5) | v) & 0xfff;
    bits += 5;
    if (bits >= 8) {
      bits -= 8;
      out[j++] = (acc >> bits) & 0xff;
    }
  }
  if ((acc & ((1 << bits) - 1)) !== 0) throw new DecodeError('Cannot decode base32: non-zero trailing bits');
  return out;
}
