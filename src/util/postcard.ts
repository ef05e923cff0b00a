/**
 * The subset of the postcard wire format (https://postcard.jamesmunns.com/wire-format) that
 * iroh's tickets and relay handshake use: varint integers, fixed byte arrays, length-prefixed
 * byte strings and strings, enum discriminants, sequences.
 *
 * Every length read from the input is checked against both the caller's limit and the bytes
 * actually left before anything is allocated.
 *
 * @module
 */
import { DecodeError } from './errors.ts';
import { decodeUtf8, utf8 } from './bytes.ts';

/** Reads postcard values from a byte array; every failure is a {@link DecodeError}. */
export class PostcardReader {
  readonly #bytes: Uint8Array;
  #pos = 0;

  constructor(bytes: Uint8Array) {
    this.#bytes = bytes;
  }

  /** Bytes not yet read. */
  get remaining(): number {
    return this.#bytes.length - this.#pos;
  }

  /** Throw unless every byte was read (iroh's decoder ignores trailing bytes; we do not). */
  finish(what: string): void {
    if (this.remaining !== 0) throw new DecodeError(`Cannot decode ${what}: ${this.remaining} trailing bytes`);
  }

  /** One raw byte (postcard `u8`). */
  u8(): number {
    if (this.#pos >= this.#bytes.length) throw new DecodeError('Cannot decode: input is truncated');
    return this.#bytes[this.#pos++]!;
  }

  /**
   * An unsigned LEB128 varint of at most `bits` bits (postcard `u16`/`u32`/`u64`/`usize`).
   * Like postcard, overlong but in-range encodings are accepted; values that overflow the
   * type are not. Values above 2^53 − 1 are rejected, which no caller needs.
   */
  varint(bits: 16 | 32 | 64): number {
    const maxBytes = Math.ceil(bits / 7);
    let value = 0;
    let scale = 1;
    for (let i = 0; i < maxBytes; i++) {
      const byte = this.u8();
      value += (byte & 0x7f) * scale;
      if ((byte & 0x80) === 0) {
        if (value > 2 ** bits - 1 || value > Number.MAX_SAFE_INTEGER) throw new DecodeError(`Cannot decode: varint exceeds u${bits}`);
        return value;
      }
      scale *= 128;
    }
    throw new DecodeError(`Cannot decode: varint longer than ${maxBytes} bytes`);
  }

  /** A u64 varint as a bigint (full range). */
  varintU64(): bigint {
    let value = 0n;
    for (let i = 0; i < 10; i++) {
      const byte = this.u8();
      value |= BigInt(byte & 0x7f) << BigInt(7 * i);
      if ((byte & 0x80) === 0) {
        if (value > 0xffffffffffffffffn) throw new DecodeError('Cannot decode: varint exceeds u64');
        return value;
      }
    }
    throw new DecodeError('Cannot decode: varint longer than 10 bytes');
  }

  /** `n` raw bytes (a postcard fixed-size array), copied. */
  fixed(n: number): Uint8Array {
    if (n > this.remaining) throw new DecodeError('Cannot decode: input is truncated');
    const out = this.#bytes.slice(this.#pos, this.#pos + n);
    this.#pos += n;
    return out;
  }

  /** A varint length, checked against `max` and the bytes left. */
  length(max: number, what: string): number {
    const n = this.varint(64);
    if (n > max) throw new DecodeError(`Cannot decode ${what}: length ${n} exceeds limit ${max}`);
    if (n > this.remaining) throw new DecodeError(`Cannot decode ${what}: input is truncated`);
    return n;
  }

  /** A length-prefixed byte string of at most `max` bytes. */
  byteString(max: number, what: string): Uint8Array {
    return this.fixed(this.length(max, what));
  }

  /** A length-prefixed UTF-8 string of at most `max` bytes. */
  string(max: number, what: string): string {
    return decodeUtf8(this.byteString(max, what));
  }

  /**
   * A sequence length of at most `max` elements, each taking at least `minElementBytes`
   * bytes, so a huge count cannot be claimed by a short input.
   */
  sequenceLength(max: number, minElementBytes: number, what: string): number {
    const n = this.varint(64);
    if (n > max) throw new DecodeError(`Cannot decode ${what}: ${n} elements exceed limit ${max}`);
    if (n * minElementBytes > this.remaining) throw new DecodeError(`Cannot decode ${what}: input is truncated`);
    return n;
  }
}

/** Writes postcard values into a growing buffer. */
export class PostcardWriter {
  #buf = new Uint8Array(64);
  #len = 0;

  #reserve(n: number): void {
    if (this.#len + n <= this.#buf.length) return;
    const next = new Uint8Array(Math.max(this.#buf.length * 2, this.#len + n));
    next.set(this.#buf.subarray(0, this.#len));
    this.#buf = next;
  }

  u8(value: number): this {
    this.#reserve(1);
    this.#buf[this.#len++] = value & 0xff;
    return this;
  }

  /** Unsigned LEB128, shortest form. */
  varint(value: number | bigint): this {
    let v = BigInt(value);
    if (v < 0n) throw new RangeError('varint must be non-negative');
    do {
      let byte = Number(v & 0x7fn);
      v >>= 7n;
      if (v !== 0n) byte |= 0x80;
      this.u8(byte);
    } while (v !== 0n);
    return this;
  }

  fixed(bytes: Uint8Array): this {
    this.#reserve(bytes.length);
    this.#buf.set(bytes, this.#len);
    this.#len += bytes.length;
    return this;
  }

  byteString(bytes: Uint8Array): this {
    return this.varint(bytes.length).fixed(bytes);
  }

  string(text: string): this {
    return this.byteString(utf8(text));
  }

  /** The bytes written so far (a copy). */
  finish(): Uint8Array {
    return this.#buf.slice(0, this.#len);
  }
}
