/**
 * A growable big-endian byte writer for TLS and QUIC wire formats, with length-prefixed
 * sections whose length is patched in when the section ends.
 *
 * @module
 */
import { varintLength, writeVarint } from './varint.ts';

export class ByteWriter {
  #buf: Uint8Array;
  #len = 0;

  constructor(initialCapacity = 256) {
    this.#buf = new Uint8Array(initialCapacity);
  }

  get length(): number {
    return this.#len;
  }

  #reserve(n: number): void {
    if (this.#len + n <= this.#buf.length) return;
    const next = new Uint8Array(Math.max(this.#buf.length * 2, this.#len + n));
    next.set(this.#buf.subarray(0, this.#len));
    this.#buf = next;
  }

  u8(v: number): this {
    this.#reserve(1);
    this.#buf[this.#len++] = v & 0xff;
    return this;
  }

  u16(v: number): this {
    this.#reserve(2);
    this.#buf[this.#len++] = (v >>> 8) & 0xff;
    this.#buf[this.#len++] = v & 0xff;
    return this;
  }

  u24(v: number): this {
    this.#reserve(3);
    this.#buf[this.#len++] = (v >>> 16) & 0xff;
    this.#buf[this.#len++] = (v >>> 8) & 0xff;
    this.#buf[this.#len++] = v & 0xff;
    return this;
  }

  u32(v: number): this {
    this.#reserve(4);
    this.#buf[this.#len++] = (v >>> 24) & 0xff;
    this.#buf[this.#len++] = (v >>> 16) & 0xff;
    this.#buf[this.#len++] = (v >>> 8) & 0xff;
    this.#buf[this.#len++] = v & 0xff;
    return this;
  }

  varint(v: number): this {
    this.#reserve(8);
    this.#len += writeVarint(this.#buf, this.#len, v);
    return this;
  }

  bytes(b: Uint8Array): this {
    this.#reserve(b.length);
    this.#buf.set(b, this.#len);
    this.#len += b.length;
    return this;
  }

  /** Write `b` with a length prefix of `lengthBytes` bytes. */
  vector(lengthBytes: 1 | 2 | 3, b: Uint8Array): this {
    if (b.length >= 2 ** (8 * lengthBytes)) throw new RangeError(`vector of ${b.length} bytes does not fit a ${lengthBytes}-byte length`);
    if (lengthBytes === 1) this.u8(b.length);
    else if (lengthBytes === 2) this.u16(b.length);
    else this.u24(b.length);
    return this.bytes(b);
  }

  /** Write a section with a length prefix patched in after `body` runs. */
  section(lengthBytes: 1 | 2 | 3, body: (w: this) => void): this {
    this.#reserve(lengthBytes);
    const at = this.#len;
    this.#len += lengthBytes;
    body(this);
    const n = this.#len - at - lengthBytes;
    if (n >= 2 ** (8 * lengthBytes)) throw new RangeError(`section of ${n} bytes does not fit a ${lengthBytes}-byte length`);
    for (let i = lengthBytes - 1, v = n; i >= 0; i--, v >>>= 8) this.#buf[at + i] = v & 0xff;
    return this;
  }

  /** Write a section prefixed with its length as a QUIC varint. */
  varintSection(body: (w: this) => void, maxLength = 0x3fff): this {
    const lenBytes = varintLength(maxLength);
    this.#reserve(lenBytes);
    const at = this.#len;
    this.#len += lenBytes;
    body(this);
    const n = this.#len - at - lenBytes;
    if (n > maxLength) throw new RangeError(`section of ${n} bytes exceeds ${maxLength}`);
    writeVarint(this.#buf, at, n, lenBytes);
    return this;
  }

  /** A copy of the bytes written. */
  finish(): Uint8Array {
    return this.#buf.slice(0, this.#len);
  }
}
