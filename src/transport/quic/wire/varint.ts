/**
 * QUIC variable-length integers (RFC 9000 §16): 1, 2, 4 or 8 bytes, the two high bits of
 * the first byte giving the length, values up to 2^62 − 1.
 *
 * Numbers are JavaScript `number`s, exact only up to 2^53 − 1. {@link readVarint} returns
 * larger values as `number` rounded down only where the caller asked for it through
 * {@link readVarintBig}; the plain reader reports anything above 2^53 − 1 as
 * {@link VARINT_TOO_LARGE} so a field that cannot legitimately be that big (a length, an
 * offset, a stream count) is rejected instead of silently losing precision
 * (shared/docs/reliability.md §5.L.3).
 *
 * @module
 */

/** Largest value a QUIC varint can hold: 2^62 − 1. */
export const VARINT_MAX = 2n ** 62n - 1n;
/** Returned by {@link readVarint} for a value above `Number.MAX_SAFE_INTEGER`. */
export const VARINT_TOO_LARGE = -2;
/** Returned by the readers when the input ends inside the varint. */
export const VARINT_TRUNCATED = -1;

/** Encoded length of `value` (shortest form). */
export function varintLength(value: number): 1 | 2 | 4 | 8 {
  if (value < 0x40) return 1;
  if (value < 0x4000) return 2;
  if (value < 0x40000000) return 4;
  return 8;
}

/**
 * Read a varint at `offset`. Returns `[value, length]`; `value` is {@link VARINT_TRUNCATED}
 * if the input is too short and {@link VARINT_TOO_LARGE} above 2^53 − 1.
 */
export function readVarint(buf: Uint8Array, offset: number): [value: number, length: number] {
  if (offset >= buf.length) return [VARINT_TRUNCATED, 0];
  const first = buf[offset]!;
  const len = 1 << (first >> 6);
  if (offset + len > buf.length) return [VARINT_TRUNCATED, 0];
  let v = first & 0x3f;
  if (len === 1) return [v, 1];
  if (len === 2) return [(v << 8) | buf[offset + 1]!, 2];
  if (len === 4) return [((v << 24) | (buf[offset + 1]! << 16) | (buf[offset + 2]! << 8) | buf[offset + 3]!) >>> 0, 4];
  // 8 bytes: the top 30 bits and the low 32 bits.
  const hi = ((v << 24) | (buf[offset + 1]! << 16) | (buf[offset + 2]! << 8) | buf[offset + 3]!) >>> 0;
  const lo = ((buf[offset + 4]! << 24) | (buf[offset + 5]! << 16) | (buf[offset + 6]! << 8) | buf[offset + 7]!) >>> 0;
  if (hi >= 0x200000) return [VARINT_TOO_LARGE, 8];
  v = hi * 0x100000000 + lo;
  return [v, 8];
}

/** Read a varint at `offset` as a bigint (full 62-bit range). `undefined` if truncated. */
export function readVarintBig(buf: Uint8Array, offset: number): [value: bigint, length: number] | undefined {
  if (offset >= buf.length) return undefined;
  const len = 1 << (buf[offset]! >> 6);
  if (offset + len > buf.length) return undefined;
  let v = BigInt(buf[offset]! & 0x3f);
  for (let i = 1; i < len; i++) v = (v << 8n) | BigInt(buf[offset + i]!);
  return [v, len];
}

/**
 * Write `value` at `offset` in its shortest form (or in `length` bytes when given, which
 * must be large enough). Returns the number of bytes written.
 */
export function writeVarint(buf: Uint8Array, offset: number, value: number, length?: 1 | 2 | 4 | 8): number {
  if (!Number.isInteger(value) || value < 0 || value > Number.MAX_SAFE_INTEGER) throw new RangeError(`varint out of range: ${value}`);
  const len = length ?? varintLength(value);
  if (len < varintLength(value)) throw new RangeError(`varint ${value} does not fit in ${len} bytes`);
  switch (len) {
    case 1:
      buf[offset] = value;
      break;
    case 2:
      buf[offset] = 0x40 | (value >> 8);
      buf[offset + 1] = value & 0xff;
      break;
    case 4:
      buf[offset] = 0x80 | (value >>> 24);
      buf[offset + 1] = (value >>> 16) & 0xff;
      buf[offset + 2] = (value >>> 8) & 0xff;
      buf[offset + 3] = value & 0xff;
      break;
    case 8: {
      const hi = Math.floor(value / 0x100000000);
      const lo = value >>> 0;
      buf[offset] = 0xc0 | (hi >>> 24);
      buf[offset + 1] = (hi >>> 16) & 0xff;
      buf[offset + 2] = (hi >>> 8) & 0xff;
      buf[offset + 3] = hi & 0xff;
      buf[offset + 4] = lo >>> 24;
      buf[offset + 5] = (lo >>> 16) & 0xff;
      buf[offset + 6] = (lo >>> 8) & 0xff;
      buf[offset + 7] = lo & 0xff;
      break;
    }
  }
  return len;
}

/** Write a bigint varint (up to 2^62 − 1) in its shortest form. Returns bytes written. */
export function writeVarintBig(buf: Uint8Array, offset: number, value: bigint): number {
  if (value < 0n || value > VARINT_MAX) throw new RangeError(`varint out of range: ${value}`);
  if (value <= BigInt(Number.MAX_SAFE_INTEGER)) return writeVarint(buf, offset, Number(value));
  for (let i = 7; i >= 0; i--) {
    buf[offset + i] = Number(value & 0xffn);
    value >>= 8n;
  }
  buf[offset]! |= 0xc0;
  return 8;
}

/** A new buffer holding just the varint. */
export function encodeVarint(value: number): Uint8Array {
  const out = new Uint8Array(varintLength(value));
  writeVarint(out, 0, value);
  return out;
}
