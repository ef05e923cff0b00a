/**
 * A writer over a caller-provided buffer of fixed size: packet assembly writes frames
 * straight into the datagram buffer, so the hot path allocates nothing. The caller checks
 * space with {@link FixedWriter.remaining} before writing; writing past the end throws (a
 * bug, never peer-triggered).
 *
 * @module
 */
import { varintLength, writeVarint } from './varint.ts';

export class FixedWriter {
  buf: Uint8Array;
  pos: number;
  end: number;

  constructor(buf: Uint8Array, pos = 0, end = buf.length) {
    this.buf = buf;
    this.pos = pos;
    this.end = end;
  }

  get remaining(): number {
    return this.end - this.pos;
  }

  #check(n: number): void {
    if (this.pos + n > this.end) throw new RangeError(`FixedWriter overflow: ${n} bytes at ${this.pos}/${this.end}`);
  }

  u8(v: number): this {
    this.#check(1);
    this.buf[this.pos++] = v;
    return this;
  }

  u16(v: number): this {
    this.#check(2);
    this.buf[this.pos++] = v >>> 8;
    this.buf[this.pos++] = v & 0xff;
    return this;
  }

  u32(v: number): this {
    this.#check(4);
    this.buf[this.pos++] = v >>> 24;
    this.buf[this.pos++] = (v >>> 16) & 0xff;
    this.buf[this.pos++] = (v >>> 8) & 0xff;
    this.buf[this.pos++] = v & 0xff;
    return this;
  }

  varint(v: number, length?: 1 | 2 | 4 | 8): this {
    this.#check(length ?? varintLength(v));
    this.pos += writeVarint(this.buf, this.pos, v, length);
    return this;
  }

  bytes(b: Uint8Array): this {
    this.#check(b.length);
    this.buf.set(b, this.pos);
    this.pos += b.length;
    return this;
  }

  zeros(n: number): this {
    this.#check(n);
    this.buf.fill(0, this.pos, this.pos + n);
    this.pos += n;
    return this;
  }
}
