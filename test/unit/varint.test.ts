import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import {
  VARINT_TOO_LARGE,
  VARINT_TRUNCATED,
  encodeVarint,
  readVarint,
  readVarintBig,
  writeVarint,
  writeVarintBig,
} from '../../src/transport/quic/wire/varint.ts';
import { fromHex, toHex } from '../../src/util/bytes.ts';
import { fcParams } from '../helpers/seed.ts';

describe('QUIC varint (RFC 9000 §16, Appendix A.1 examples)', () => {
  const examples: Array<[string, bigint]> = [
    ['c2197c5eff14e88c', 151288809941952652n],
    ['9d7f3e7d', 494878333n],
    ['7bbd', 15293n],
    ['25', 37n],
    ['4025', 37n],
  ];
  it.each(examples)('decodes %s', (hex, value) => {
    const buf = fromHex(hex);
    expect(readVarintBig(buf, 0)).toEqual([value, buf.length]);
    const [n] = readVarint(buf, 0);
    if (value <= BigInt(Number.MAX_SAFE_INTEGER)) expect(n).toBe(Number(value));
    else expect(n).toBe(VARINT_TOO_LARGE);
  });

  it('encodes the shortest form', () => {
    expect(toHex(encodeVarint(37))).toBe('25');
    expect(toHex(encodeVarint(15293))).toBe('7bbd');
    expect(toHex(encodeVarint(494878333))).toBe('9d7f3e7d');
    const b = new Uint8Array(8);
    writeVarintBig(b, 0, 151288809941952652n);
    expect(toHex(b)).toBe('c2197c5eff14e88c');
  });

  it('handles the 2^53 boundary and 2^62 − 1 (reliability.md §5.L.3)', () => {
    const b = new Uint8Array(8);
    for (const [v, ok] of [[2n ** 53n - 1n, true], [2n ** 53n, false], [2n ** 53n + 1n, false], [2n ** 62n - 1n, false]] as const) {
      writeVarintBig(b, 0, v);
      expect(readVarintBig(b, 0)![0]).toBe(v);
      expect(readVarint(b, 0)[0]).toBe(ok ? Number(v) : VARINT_TOO_LARGE);
    }
    expect(() => writeVarintBig(b, 0, 2n ** 62n)).toThrow(RangeError);
  });

  it('reports truncation', () => {
    expect(readVarint(fromHex('c2197c'), 0)[0]).toBe(VARINT_TRUNCATED);
    expect(readVarint(new Uint8Array(0), 0)[0]).toBe(VARINT_TRUNCATED);
    expect(readVarintBig(fromHex('40'), 0)).toBeUndefined();
  });

  it('round-trips every length', () => {
    fc.assert(
      fc.property(fc.oneof(fc.integer({ min: 0, max: 63 }), fc.integer({ min: 0, max: 16383 }), fc.integer({ min: 0, max: 2 ** 30 - 1 }), fc.maxSafeNat()), (v) => {
        const buf = new Uint8Array(9);
        const n = writeVarint(buf, 1, v);
        expect(readVarint(buf, 1)).toEqual([v, n]);
      }),
      fcParams('varint round trip', 2000),
    );
  });
});
