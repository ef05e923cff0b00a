/**
 * A bounds-checked big-endian byte reader for TLS and QUIC wire formats.
 *
 * Every read checks the bytes left first and throws {@link DecodeError} when the input is
 * short, so a malformed message can never read past its end or allocate more than it holds
 * (shared/docs/reliability.md §5.L.2, §5.L.4).
 *
 * @module
 */
import { DecodeError } from '../../../util/errors.ts';
import { VARINT_TOO_LARGE, readVarintBig } from './varint.ts';

export class ByteReader {
  readonly buf: Uint8Array;
  pos: number;
  readonly end: number;

  constructor(buf: Uint8Array, start = 0, end = buf.length) {
    this.buf = buf;
    this.pos = start;
    this.end = end;
  }

  get remaining(): number {
    return this.end - this.pos;
  }

  get done(): boolean {
    return this.pos >= this.end;
  }

  #need(n: number, what: string): void {
    if (n > this.end - this.pos) throw new DecodeError(`Cannot decode ${what}: input is truncated`);
  }

  u8(what = 'u8'): number {
    this.#need(1, what);
    return this.buf[this.pos++]!;
  }

  u16(what = 'u16'): number {
    this.#need(2, what);
    const v = (this.buf[this.pos]! << 8) | this.buf[this.pos + 1]!;
    this.pos += 2;
    return v;
  }

  u24(what = 'u24'): number {
    this.#need(3, what);
    const v = (this.buf[this.pos]! << 16) | (this.buf[this.pos + 1]! << 8) | this.buf[this.pos + 2]!;
    this.pos += 3;
    return v;
  }

  u32(what = 'u32'): number {
    this.#need(4, what);
    const v = ((this.buf[this.pos]! << 24) | (this.buf[this.pos + 1]! << 16) | (this.buf[this.pos + 2]! << 8) | this.buf[this.pos + 3]!) >>> 0;
    this.pos += 4;
    return v;
  }

  /** A QUIC varint (RFC 9000 §16); values above 2^53 − 1 are a decode error. */
  varint(what = 'varint'): number {
    const v = this.#varint(what);
    if (v === VARINT_TOO_LARGE) throw new DecodeError(`Cannot decode ${what}: value exceeds 2^53 - 1`);
    return v;
  }

  /**
   * A QUIC varint saturated at 2^53 − 1: for fields (offsets, credits, codes, sequence
   * numbers) where any value that large is simply "too big" for the checks that follow, so
   * those checks produce the RFC's error code instead of a decoding error.
   */
  varintSat(what = 'varint'): number {
    const v = this.#varint(what);
    return v === VARINT_TOO_LARGE ? Number.MAX_SAFE_INTEGER : v;
  }

  /** Decode in place (no view or tuple per varint: every frame field is one); advances. */
  #varint(what: string): number {
    const buf = this.buf;
    const pos = this.pos;
    if (pos >= this.end) throw new DecodeError(`Cannot decode ${what}: input is truncated`);
    const first = buf[pos]!;
    if (first < 0x40) {
      this.pos = pos + 1;
      return first;
    }
    const len = 1 << (first >> 6);
    if (pos + len > this.end) throw new DecodeError(`Cannot decode ${what}: input is truncated`);
    this.pos = pos + len;
    const v = first & 0x3f;
    if (len === 2) return (v << 8) | buf[pos + 1]!;
    if (len === 4) return ((v << 24) | (buf[pos + 1]! << 16) | (buf[pos + 2]! << 8) | buf[pos + 3]!) >>> 0;
    const hi = ((v << 24) | (buf[pos + 1]! << 16) | (buf[pos + 2]! << 8) | buf[pos + 3]!) >>> 0;
    if (hi >= 0x200000) return VARINT_TOO_LARGE;
    return hi * 0x100000000 + (((buf[pos + 4]! << 24) | (buf[pos + 5]! << 16) | (buf[pos + 6]! << 8) | buf[pos + 7]!) >>> 0);
  }

  /** A QUIC varint as a bigint (full 62-bit range). */
  varintBig(what = 'varint'): bigint {
    const r = readVarintBig(this.buf.subarray(0, this.end), this.pos);
    if (r === undefined) throw new DecodeError(`Cannot decode ${what}: input is truncated`);
    this.pos += r[1];
    return r[0];
  }

  /** `n` bytes as a view into the input (no copy). */
  bytes(n: number, what = 'bytes'): Uint8Array {
    this.#need(n, what);
    const out = this.buf.subarray(this.pos, this.pos + n);
    this.pos += n;
    return out;
  }

  /** A vector with a 1-, 2- or 3-byte length prefix (RFC 8446 §3.4), as a view. */
  vector(lengthBytes: 1 | 2 | 3, what = 'vector', min = 0, max = Infinity): Uint8Array {
    const n = lengthBytes === 1 ? this.u8(what) : lengthBytes === 2 ? this.u16(what) : this.u24(what);
    if (n < min || n > max) throw new DecodeError(`Cannot decode ${what}: length ${n} outside ${min}..${max}`);
    return this.bytes(n, what);
  }

  /** A sub-reader over a length-prefixed vector. */
  sub(lengthBytes: 1 | 2 | 3, what = 'vector', min = 0, max = Infinity): ByteReader {
    const v = this.vector(lengthBytes, what, min, max);
    return new ByteReader(v);
  }

  /** Throw unless every byte was consumed. */
  expectEnd(what: string): void {
    if (this.pos !== this.end) throw new DecodeError(`Cannot decode ${what}: ${this.end - this.pos} trailing bytes`);
  }
}
