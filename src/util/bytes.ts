/**
 * Small byte helpers: hex, comparison, concatenation.
 *
 * @module
 */
import { DecodeError } from './errors.ts';

const HEX = '0123456789abcdef';
const HEX_PAIRS: string[] = [];
for (let i = 0; i < 256; i++) HEX_PAIRS.push(HEX[i >> 4]! + HEX[i & 15]!);

/** Lower-case hex of `bytes`. */
export function toHex(bytes: Uint8Array): string {
  let out = '';
  for (let i = 0; i < bytes.length; i++) out += HEX_PAIRS[bytes[i]!];
  return out;
}

function hexValue(code: number, lowerOnly: boolean): number {
  if (code >= 48 && code <= 57) return code - 48;
  if (code >= 97 && code <= 102) return code - 87;
  if (!lowerOnly && code >= 65 && code <= 70) return code - 55;
  return -1;
}

/**
 * Decode hex. `lowerOnly` rejects upper-case digits, as iroh does for endpoint ids.
 *
 * @throws {DecodeError} on odd length or a character that is not a hex digit
 */
export function fromHex(text: string, options: { lowerOnly?: boolean } = {}): Uint8Array {
  const lowerOnly = options.lowerOnly ?? false;
  if (text.length % 2 !== 0) throw new DecodeError(`Cannot decode hex: odd length ${text.length}`);
  const out = new Uint8Array(text.length / 2);
  for (let i = 0; i < out.length; i++) {
    const hi = hexValue(text.charCodeAt(2 * i), lowerOnly);
    const lo = hexValue(text.charCodeAt(2 * i + 1), lowerOnly);
    if (hi < 0 || lo < 0) {
      throw new DecodeError(`Cannot decode hex: invalid character at offset ${hi < 0 ? 2 * i : 2 * i + 1}`);
    }
    out[i] = (hi << 4) | lo;
  }
  return out;
}

/** Byte-wise equality (not constant time; do not use on secrets). */
export function equalBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/** Equality whose running time depends only on the lengths (for MACs and secrets). */
export function equalBytesConstantTime(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  let diff = 0;
  for (let i = 0; i < a.length; i++) diff |= a[i]! ^ b[i]!;
  return diff === 0;
}

/** Lexicographic comparison, as Rust's `Ord` for `[u8]`. */
export function compareBytes(a: Uint8Array, b: Uint8Array): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    const d = a[i]! - b[i]!;
    if (d !== 0) return d;
  }
  return a.length - b.length;
}

/** Concatenate byte arrays into a new array. */
export function concatBytes(...parts: Uint8Array[]): Uint8Array {
  let len = 0;
  for (const p of parts) len += p.length;
  const out = new Uint8Array(len);
  let off = 0;
  for (const p of parts) {
    out.set(p, off);
    off += p.length;
  }
  return out;
}

const encoder = new TextEncoder();

/** UTF-8 encode. */
export const utf8 = (text: string): Uint8Array => encoder.encode(text);

const strictUtf8 = new TextDecoder('utf-8', { fatal: true });

/**
 * Strict UTF-8 decode.
 *
 * @throws {DecodeError} if the bytes are not valid UTF-8
 */
export function decodeUtf8(bytes: Uint8Array): string {
  try {
    return strictUtf8.decode(bytes);
  } catch {
    throw new DecodeError('Cannot decode text: invalid UTF-8');
  }
}

/** Throw a TypeError unless `value` is a Uint8Array of `length` bytes (when given). */
export function assertBytes(value: unknown, length?: number, what = 'value'): asserts value is Uint8Array {
  if (!(value instanceof Uint8Array)) throw new TypeError(`Expected ${what} to be a Uint8Array`);
  if (length !== undefined && value.length !== length) {
    throw new RangeError(`Expected ${what} to be ${length} bytes, got ${value.length}`);
  }
}
