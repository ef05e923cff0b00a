/**
 * CPace (ristretto255 + SHA-512) against the draft's test vectors (appendix A.1 and B.3):
 * the string utilities, the generator, both shares, K, the ISK, scalar_mult on valid input,
 * the abort on the invalid encodings of B.3.11; then the properties the pairing relies on
 * (same inputs → same ISK, any differing input → different ISK, tags checked both ways).
 */
import { sha512 } from '@noble/hashes/sha2.js';
import { describe, expect, it } from 'vitest';
import {
  CpaceError,
  CpaceParty,
  calculateGenerator,
  deriveIsk,
  generatorString,
  lvCat,
  prependLen,
  sampleScalar,
  scalarFromBytes,
  scalarMultVfy,
} from '../../src/protocols/pairing/cpace.ts';
import { concatBytes, fromHex, toHex, utf8 } from '../../src/util/bytes.ts';
import { CPACE_R255_VECTORS as V, CPACE_STRING_VECTORS as S } from '../vectors/cpace.ts';

const h = (x: string): Uint8Array => fromHex(x);

describe('CPace string utilities (draft A.1)', () => {
  it('prepend_len and lv_cat', () => {
    expect(toHex(prependLen(new Uint8Array(0)))).toBe(S.prependLenEmpty);
    expect(toHex(prependLen(utf8('1234')))).toBe(S.prependLen1234);
    const r127 = Uint8Array.from({ length: 127 }, (_, i) => i);
    expect(toHex(prependLen(r127).subarray(0, 2))).toBe('7f00');
    const r128 = Uint8Array.from({ length: 128 }, (_, i) => i);
    expect(toHex(prependLen(r128).subarray(0, 3))).toBe('800100');
    expect(prependLen(new Uint8Array(300)).subarray(0, 2)).toEqual(Uint8Array.from([0xac, 0x02]));
    expect(toHex(lvCat(utf8('1234'), utf8('5'), new Uint8Array(0), utf8('678')))).toBe(S.lvCat);
    expect(toHex(concatBytes(lvCat(utf8('123'), utf8('PartyA')), lvCat(utf8('234'), utf8('PartyB'))))).toBe(S.transcriptIr1);
  });
});

describe('CPace ristretto255 + SHA-512 (draft B.3)', () => {
  it('generator string, its hash and the generator', () => {
    const gs = generatorString(h(V.prs), h(V.ci), h(V.sid));
    expect(toHex(gs)).toBe(V.generatorString);
    // The padding the vector names.
    expect(gs.length).toBe(170);
    expect(toHex(sha512(gs))).toBe(V.generatorHash);
    expect(toHex(calculateGenerator(h(V.prs), h(V.ci), h(V.sid)))).toBe(V.g);
    expect(V.zpadLength).toBe(128 - 1 - prependLen(h(V.prs)).length - prependLen(utf8('CPaceRistretto255')).length);
  });

  it('both shares, K, transcript and ISK (initiator/responder)', () => {
    const inputs = { prs: h(V.prs), ci: h(V.ci), sid: h(V.sid) };
    const a = new CpaceParty('A', { ...inputs, ad: h(V.ada), scalar: scalarFromBytes(h(V.ya)) });
    const b = new CpaceParty('B', { ...inputs, ad: h(V.adb), scalar: scalarFromBytes(h(V.yb)) });
    expect(toHex(a.share)).toBe(V.Ya);
    expect(toHex(b.share)).toBe(V.Yb);
    expect(toHex(scalarMultVfy(scalarFromBytes(h(V.ya)), h(V.Yb)))).toBe(V.K);
    expect(toHex(scalarMultVfy(scalarFromBytes(h(V.yb)), h(V.Ya)))).toBe(V.K);
    expect(toHex(concatBytes(lvCat(h(V.Ya), h(V.ada)), lvCat(h(V.Yb), h(V.adb))))).toBe(V.transcriptIr);
    expect(toHex(deriveIsk(h(V.sid), h(V.K), h(V.Ya), h(V.ada), h(V.Yb), h(V.adb)))).toBe(V.iskIr);
    const ra = a.finish(b.share, h(V.adb));
    const rb = b.finish(a.share, h(V.ada));
    expect(toHex(ra.isk)).toBe(V.iskIr);
    expect(toHex(rb.isk)).toBe(V.iskIr);
    // Explicit key confirmation (draft §10.4): each side's tag checks on the other.
    expect(rb.verifyPeerTag(ra.ownTag)).toBe(true);
    expect(ra.verifyPeerTag(rb.ownTag)).toBe(true);
    expect(ra.verifyPeerTag(ra.ownTag)).toBe(false);
    expect(ra.verifyPeerTag(rb.ownTag.subarray(0, 32))).toBe(false);
  });

  it('scalar_mult with valid inputs (B.3.10)', () => {
    expect(toHex(scalarMultVfy(scalarFromBytes(h(V.valid.s)), h(V.valid.X)))).toBe(V.valid.sX);
  });

  it('aborts on an encoding that does not decode and on the identity (B.3.11), and on a wrong length', () => {
    const s = scalarFromBytes(h(V.valid.s));
    expect(() => scalarMultVfy(s, h(V.invalid.Yi1))).toThrow(CpaceError);
    expect(() => scalarMultVfy(s, h(V.invalid.Yi2))).toThrow(CpaceError);
    expect(() => scalarMultVfy(s, new Uint8Array(31))).toThrow(CpaceError);
    expect(() => scalarMultVfy(s, new Uint8Array(33))).toThrow(CpaceError);
    const a = new CpaceParty('A', { prs: h(V.prs), ci: h(V.ci), sid: h(V.sid), ad: h(V.ada) });
    expect(() => a.finish(h(V.invalid.Yi2), h(V.adb))).toThrow(/identity/);
  });
});

describe('CPace properties the pairing relies on', () => {
  const base = { prs: utf8('secret-part-S'), ci: utf8('ci'), sid: new Uint8Array(32).fill(7) };
  const run = (a: typeof base, b: typeof base): { ia: Uint8Array; ib: Uint8Array; aOk: boolean; bOk: boolean } => {
    const A = new CpaceParty('A', { ...a, ad: utf8('A') });
    const B = new CpaceParty('B', { ...b, ad: utf8('B') });
    const ra = A.finish(B.share, utf8('B'));
    const rb = B.finish(A.share, utf8('A'));
    return { ia: ra.isk, ib: rb.isk, aOk: ra.verifyPeerTag(rb.ownTag), bOk: rb.verifyPeerTag(ra.ownTag) };
  };

  it('same inputs: same ISK, tags verify; fresh scalars each run', () => {
    const r1 = run(base, base);
    expect(toHex(r1.ia)).toBe(toHex(r1.ib));
    expect(r1.aOk && r1.bOk).toBe(true);
    const r2 = run(base, base);
    expect(toHex(r2.ia)).not.toBe(toHex(r1.ia));
  });

  it('a differing password, CI or sid: different ISKs and both tags fail', () => {
    for (const other of [{ ...base, prs: utf8('secret-part-T') }, { ...base, ci: utf8('ic') }, { ...base, sid: new Uint8Array(32).fill(8) }]) {
      const r = run(base, other);
      expect(toHex(r.ia)).not.toBe(toHex(r.ib));
      expect(r.aOk).toBe(false);
      expect(r.bOk).toBe(false);
    }
  });

  it('scalars are below 2^252 and never zero', () => {
    for (let i = 0; i < 64; i++) {
      const y = sampleScalar();
      expect(y > 0n && y < 1n << 252n).toBe(true);
    }
    let calls = 0;
    // A zero draw is drawn again.
    const y = sampleScalar((n) => (calls++ === 0 ? new Uint8Array(n) : new Uint8Array(n).fill(0xff)));
    expect(calls).toBe(2);
    expect(y).toBe((1n << 252n) - 1n);
  });

  it('a party finishes once', () => {
    const A = new CpaceParty('A', { ...base, ad: utf8('A') });
    const B = new CpaceParty('B', { ...base, ad: utf8('B') });
    A.finish(B.share, utf8('B'));
    expect(() => A.finish(B.share, utf8('B'))).toThrow(/once/);
  });
});
