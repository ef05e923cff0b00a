/**
 * The DNS codec under hostile input: compression-pointer loops and forward pointers, names
 * and labels beyond their lengths, truncation at every byte, header counts that lie, and
 * random bytes and random mutations of valid messages from fast-check (seed printed). Only
 * DecodeError ever leaves the decoder, and valid messages round-trip.
 */
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { CLASS_IN, decodeDnsMessage, encodeDnsMessage, FLAG_AUTHORITATIVE, FLAG_RESPONSE, TYPE_A, TYPE_AAAA, TYPE_PTR, TYPE_SRV, TYPE_TXT, txt, type DnsMessage } from '../../src/discovery/dns.ts';
import { MAX_DNS_POINTER_JUMPS, MAX_DNS_RECORDS } from '../../src/discovery/limits.ts';
import { DecodeError } from '../../src/util/errors.ts';
import { fcParams } from '../helpers/seed.ts';

function onlyDecodeError(buf: Uint8Array): DnsMessage | undefined {
  try {
    return decodeDnsMessage(buf);
  } catch (err) {
    if (!(err instanceof DecodeError)) throw err;
    return undefined;
  }
}

const header = (qd: number, an: number, ns = 0, ar = 0): number[] => [0, 0, 0x84, 0, qd >> 8, qd & 0xff, an >> 8, an & 0xff, ns >> 8, ns & 0xff, ar >> 8, ar & 0xff];

const sample: DnsMessage = {
  id: 0,
  flags: FLAG_RESPONSE | FLAG_AUTHORITATIVE,
  questions: [],
  answers: [
    { name: 'abc._irohv1._udp.local', class: CLASS_IN, ttl: 0, data: { type: TYPE_SRV, priority: 0, weight: 0, port: 4433, target: 'abc-4433.local' } },
    { name: 'abc._irohv1._udp.local', class: CLASS_IN, ttl: 0, data: { type: TYPE_TXT, strings: [txt.encode('relay=https://r.example/'), txt.encode('user-data=x')] } },
  ],
  authorities: [],
  additionals: [
    { name: 'abc-4433.local', class: CLASS_IN, ttl: 0, data: { type: TYPE_A, ip: new Uint8Array([10, 0, 0, 1]) } },
    { name: 'abc-4433.local', class: CLASS_IN, cacheFlush: true, ttl: 120, data: { type: TYPE_AAAA, ip: new Uint8Array(16).fill(0xfe) } },
    { name: '_services._dns-sd._udp.local', class: CLASS_IN, ttl: 4500, data: { type: TYPE_PTR, name: '_irohv1._udp.local' } },
  ],
};

describe('DNS codec, hostile input', () => {
  it('round-trips a message with every supported record type, compressed and not', () => {
    for (const compress of [true, false]) {
      const bytes = encodeDnsMessage(sample, { compress });
      expect(decodeDnsMessage(bytes)).toEqual(sample);
    }
    expect(encodeDnsMessage(sample).length).toBeLessThan(encodeDnsMessage(sample, { compress: false }).length);
  });

  it('a compression pointer to itself, a two-pointer loop and a forward pointer are refused', () => {
    // Question name at offset 12 points at 12.
    const self = new Uint8Array([...header(1, 0), 0xc0, 12, 0, 1, 0, 1]);
    expect(() => decodeDnsMessage(self)).toThrow(/backwards/);
    // A label then a pointer back to the label's start: a loop through a label.
    const loop = new Uint8Array([...header(1, 0), 1, 0x61, 0xc0, 12, 0, 1, 0, 1]);
    expect(() => decodeDnsMessage(loop)).toThrow(DecodeError);
    const forward = new Uint8Array([...header(1, 0), 0xc0, 20, 0, 1, 0, 1, 0, 0, 0]);
    expect(() => decodeDnsMessage(forward)).toThrow(/backwards/);
  });

  it('a chain of backward pointers longer than the bound is refused', () => {
    // Question 0 is "a"; question k's name is a pointer to question k-1's name, so reading
    // question k follows k pointers. Within the bound it decodes; beyond it, it is refused.
    const build = (n: number): Uint8Array => {
      const bytes: number[] = [...header(n, 0), 1, 0x61, 0, 0, 1, 0, 1];
      let prev = 12;
      for (let k = 1; k < n; k++) {
        const at = bytes.length;
        bytes.push(0xc0 | (prev >> 8), prev & 0xff, 0, 1, 0, 1);
        prev = at;
      }
      return new Uint8Array(bytes);
    };
    expect(decodeDnsMessage(build(MAX_DNS_POINTER_JUMPS + 1)).questions.every((q) => q.name === 'a')).toBe(true);
    expect(() => decodeDnsMessage(build(MAX_DNS_POINTER_JUMPS + 2))).toThrow(/too many compression pointers/);
  });

  it('long names and labels, header counts that lie and records past the end are refused', () => {
    const longLabel = new Uint8Array([...header(1, 0), 64, ...new Array<number>(64).fill(0x61), 0, 0, 1, 0, 1]);
    expect(() => decodeDnsMessage(longLabel)).toThrow(DecodeError);
    const name: number[] = [];
    for (let i = 0; i < 5; i++) name.push(60, ...new Array<number>(60).fill(0x62));
    const longName = new Uint8Array([...header(1, 0), ...name, 0, 0, 1, 0, 1]);
    expect(() => decodeDnsMessage(longName)).toThrow(/too long/);
    expect(() => decodeDnsMessage(new Uint8Array([...header(0, 0xffff)]))).toThrow(/too many/);
    expect(() => decodeDnsMessage(new Uint8Array([...header(0, MAX_DNS_RECORDS)]))).toThrow(/exceed/);
    // An A record claiming 4 bytes of RDATA with 2 present.
    const shortA = new Uint8Array([...header(0, 1), 0, 0, 1, 0, 1, 0, 0, 0, 0, 0, 4, 1, 2]);
    expect(() => decodeDnsMessage(shortA)).toThrow(/truncated/);
    // TXT string running past its RDATA.
    const badTxt = new Uint8Array([...header(0, 1), 0, 0, 16, 0, 1, 0, 0, 0, 0, 0, 2, 5, 0x61, 0, 0, 0, 0]);
    expect(() => decodeDnsMessage(badTxt)).toThrow(DecodeError);
  });

  it('every truncation of a valid message decodes or raises DecodeError only', () => {
    const bytes = encodeDnsMessage(sample);
    for (let n = 0; n < bytes.length; n++) expect(onlyDecodeError(bytes.subarray(0, n))).toBeUndefined();
  });

  it('random bytes and mutated valid messages only ever raise DecodeError (fast-check)', () => {
    const valid = encodeDnsMessage(sample);
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 1500 }), (bytes) => {
        onlyDecodeError(bytes);
      }),
      fcParams('dns random bytes', 3000),
    );
    fc.assert(
      fc.property(fc.array(fc.tuple(fc.nat(valid.length - 1), fc.integer({ min: 0, max: 255 })), { minLength: 1, maxLength: 8 }), (edits) => {
        const b = valid.slice();
        for (const [i, v] of edits) b[i] = v;
        const m = onlyDecodeError(b);
        // Whatever decoded re-encodes within bounds.
        if (m) expect(() => encodeDnsMessage(m)).not.toThrow(TypeError);
      }),
      fcParams('dns mutated message', 3000),
    );
  });
});
