/**
 * Both crypto providers against published vectors, and against each other on random input.
 */
import { describe, expect, it, vi } from 'vitest';
import fc from 'fast-check';
import { createCipheriv, createHmac } from 'node:crypto';
import {
  AEAD_KEY_LENGTH,
  HP_KEY_LENGTH,
  nobleCryptoProvider,
  nodeCryptoProvider,
  type AeadAlgorithm,
  type CryptoProvider,
  type HashAlgorithm,
  type HeaderProtectionAlgorithm,
} from '../../src/transport/crypto/index.ts';
import { hasSmallOrder, isValidEd25519PublicKey, passesStrictSignaturePrecheck } from '../../src/transport/crypto/ed25519-strict.ts';
import { hmacSha256 } from '../../src/transport/crypto/hmac-sha256.ts';
import { spareX25519Pairs } from '../../src/transport/crypto/node-provider.ts';
import { fromHex, toHex, utf8 } from '../../src/util/bytes.ts';
import { CryptoError } from '../../src/util/errors.ts';
import { fcParams } from '../helpers/seed.ts';

const providers: CryptoProvider[] = [nodeCryptoProvider, nobleCryptoProvider];
const h = fromHex;

describe.each(providers)('$name provider: published vectors', (p) => {
  it('ChaCha20-Poly1305 (RFC 8439 §2.8.2)', () => {
    const key = h('808182838485868788898a8b8c8d8e8f909192939495969798999a9b9c9d9e9f');
    const nonce = h('070000004041424344454647');
    const aad = h('50515253c0c1c2c3c4c5c6c7');
    const pt = utf8("Ladies and Gentlemen of the class of '99: If I could offer you only one tip for the future, sunscreen would be it.");
    const sealed = p.aead('chacha20-poly1305', key).seal(nonce, aad, pt);
    expect(toHex(sealed.subarray(0, 16))).toBe('d31a8d34648e60db7b86afbc53ef7ec2');
    expect(toHex(sealed.subarray(sealed.length - 16))).toBe('1ae10b594f09e26a7e902ecbd0600691');
    expect(toHex(p.aead('chacha20-poly1305', key).open(nonce, aad, sealed)!)).toBe(toHex(pt));
  });

  it('AES-128-GCM (McGrew–Viega test case 4) and tamper detection', () => {
    const key = h('feffe9928665731c6d6a8f9467308308');
    const nonce = h('cafebabefacedbaddecaf888');
    const aad = h('feedfacedeadbeeffeedfacedeadbeefabaddad2');
    const pt = h('d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a721c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b39');
    const sealed = p.aead('aes-128-gcm', key).seal(nonce, aad, pt);
    expect(toHex(sealed.subarray(sealed.length - 16))).toBe('5bc94fbc3221a5db94fae95ae7121a47');
    const bad = sealed.slice();
    bad[3]! ^= 1;
    expect(p.aead('aes-128-gcm', key).open(nonce, aad, bad)).toBeNull();
    expect(p.aead('aes-128-gcm', key).open(nonce, aad, sealed.subarray(0, 5))).toBeNull();
  });

  it('AES header protection (RFC 9001 Appendix A.2)', () => {
    const mask = p.headerProtection('aes-128', h('9f50449e04a0e810283a1e9933adedd2')).mask(h('d1b1c98dd7689fb8ec11d242b123dc9b'));
    expect(toHex(mask)).toBe('437b9aec36');
  });

  it('ChaCha20 header protection (RFC 9001 Appendix A.5)', () => {
    const hp = p.headerProtection('chacha20', h('25a282b9e82f06f21f488917a4fc8f1b73573685608597d0efcb076b0ab7a7a4'));
    expect(toHex(hp.mask(h('5e5cd55c41f69080575d7999c25a5bfb')))).toBe('aefefe7d03');
  });

  it('HKDF-SHA256 (RFC 5869 test case 1)', () => {
    const prk = p.hkdfExtract('sha256', h('000102030405060708090a0b0c'), h('0b'.repeat(22)));
    expect(toHex(prk)).toBe('077709362c2e32df0ddc3f0dc47bba6390b6c73bb50f9c3122ec844ad7c2b3e5');
    expect(toHex(p.hkdfExpand('sha256', prk, h('f0f1f2f3f4f5f6f7f8f9'), 42))).toBe(
      '3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf34007208d5b887185865',
    );
  });

  it('RFC 9001 Initial secret (Appendix A.1, HKDF-Extract with the v1 salt)', () => {
    const initial = p.hkdfExtract('sha256', h('38762cf7f55934b34d179ae6a4c80cadccbb7f0a'), h('8394c8f03e515708'));
    expect(toHex(initial)).toBe('7db5df06e7a69e432496adedb00851923595221596ae2ae9fb8115c1e9ed0a44');
  });

  it('SHA-256, SHA-384, incremental hashing and HMAC', () => {
    expect(toHex(p.hash('sha256', utf8('abc')))).toBe('ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad');
    expect(toHex(p.hash('sha384', utf8('abc')))).toBe(
      'cb00753f45a35e8bb5a03d699ac65007272c32ab0eded1631a8b605a43ff5bed8086072ba1e7cc2358baeca134c825a7',
    );
    const hasher = p.hasher('sha256').update(utf8('a'));
    const fork = hasher.clone();
    hasher.update(utf8('bc'));
    expect(toHex(hasher.digest())).toBe(toHex(p.hash('sha256', utf8('abc'))));
    expect(toHex(fork.digest())).toBe(toHex(p.hash('sha256', utf8('a'))));
    // RFC 4231 test case 2.
    expect(toHex(p.hmac('sha256', utf8('Jefe'), utf8('what do ya want for nothing?')))).toBe(
      '5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843',
    );
  });

  it('X25519 (RFC 7748 §6.1) and the all-zero shared secret check', () => {
    const alice = p.x25519FromPrivateKey(h('77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a'));
    const bob = p.x25519FromPrivateKey(h('5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb'));
    expect(toHex(alice.publicKey)).toBe('8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a');
    expect(toHex(alice.deriveSharedSecret(bob.publicKey))).toBe('4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742');
    expect(() => alice.deriveSharedSecret(new Uint8Array(32))).toThrow(CryptoError);
    const fresh = p.x25519Generate();
    expect(toHex(fresh.deriveSharedSecret(alice.publicKey))).toBe(toHex(alice.deriveSharedSecret(fresh.publicKey)));
  });

  it('Ed25519 (RFC 8032 §7.1 test 2)', () => {
    const signer = p.ed25519Signer(h('4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb'));
    expect(toHex(signer.publicKey)).toBe('3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c');
    const sig = signer.sign(h('72'));
    expect(toHex(sig)).toBe(
      '92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da085ac1e43e15996e458f3613d0f11d8c387b2eaeb4302aeeb00d291612bb0c00',
    );
    const verifier = p.ed25519Verifier(signer.publicKey);
    expect(verifier.verify(h('72'), sig)).toBe(true);
    expect(verifier.verify(h('73'), sig)).toBe(false);
    expect(verifier.verify(h('72'), sig.subarray(0, 63))).toBe(false);
  });

  it('BLAKE3 (official vector for the empty input) and derive_key', () => {
    expect(toHex(p.blake3(new Uint8Array(0)))).toBe('af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262');
    expect(p.blake3DeriveKey('ctx', utf8('x'), 64)).toHaveLength(64);
  });
});

describe('strict Ed25519 (reliability.md §5.H)', () => {
  const small = [
    '0100000000000000000000000000000000000000000000000000000000000000', // identity
    'ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f', // order 2
    '0000000000000000000000000000000000000000000000000000000000000000', // order 4 (all zero)
    '0000000000000000000000000000000000000000000000000000000000000080', // order 4, other sign
    '26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05', // order 8
    '26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc85', // order 8
    'c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a', // order 8
    'c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac03fa', // order 8
  ];
  it.each(small)('rejects the small-order key %s', (hex) => {
    expect(hasSmallOrder(h(hex))).toBe(true);
    expect(isValidEd25519PublicKey(h(hex))).toBe(false);
    for (const p of providers) expect(() => p.ed25519Verifier(h(hex))).toThrow(CryptoError);
  });

  it('rejects a non-canonical encoding (y ≥ p) and a point off the curve', () => {
    // p + 2 as y: a non-canonical spelling.
    expect(isValidEd25519PublicKey(h('efffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f'))).toBe(false);
    // y = 2 is not on the curve.
    expect(isValidEd25519PublicKey(h('0200000000000000000000000000000000000000000000000000000000000000'))).toBe(false);
  });

  it('rejects S ≥ L and small-order R before the curve equation', () => {
    const signer = nodeCryptoProvider.ed25519Signer(new Uint8Array(32).fill(9));
    const sig = signer.sign(utf8('m'));
    expect(passesStrictSignaturePrecheck(sig)).toBe(true);
    // S + L is the classic malleated signature: the curve equation still holds, strictness must not.
    const s = BigInt(`0x${toHex(sig.subarray(32).slice().reverse())}`) + 2n ** 252n + 27742317777372353535851937790883648493n;
    const malleated = sig.slice();
    malleated.set(h(s.toString(16).padStart(64, '0')).reverse(), 32);
    expect(passesStrictSignaturePrecheck(malleated)).toBe(false);
    for (const p of providers) expect(p.ed25519Verifier(signer.publicKey).verify(utf8('m'), malleated)).toBe(false);
    const smallR = sig.slice();
    smallR.set(h(small[0]!), 0);
    expect(passesStrictSignaturePrecheck(smallR)).toBe(false);
  });
});

describe('node provider: pooled randomness and remembered keys', () => {
  const p = nodeCryptoProvider;

  it('randomBytes hands out fresh copies: own buffers, never the same bytes twice, any size', () => {
    const seen = new Set<string>();
    for (let i = 0; i < 2000; i++) {
      const len = [8, 16, 20, 32, 64][i % 5]!;
      const a = p.randomBytes(len);
      expect(a.length).toBe(len);
      expect(a.byteOffset).toBe(0);
      expect(a.buffer.byteLength).toBe(len);
      const hex = toHex(a);
      expect(seen.has(hex)).toBe(false);
      seen.add(hex);
    }
    // Beyond the pooled sizes, and the empty request.
    expect(p.randomBytes(4096).length).toBe(4096);
    expect(p.randomBytes(0).length).toBe(0);
    expect(() => p.randomBytes(-1)).toThrow(RangeError);
  });

  it('a remembered verifier key never lets another key, or a small-order one, through', () => {
    const signers = Array.from({ length: 300 }, (_, i) => p.ed25519Signer(new Uint8Array(32).fill(i % 251).map((b, j) => (j === 0 ? i >> 8 : b))));
    const msg = utf8('remembered');
    // More keys than the cache holds, each verified twice, in two orders.
    for (const round of [0, 1]) {
      for (const s of round === 0 ? signers : [...signers].reverse()) {
        const v = p.ed25519Verifier(s.publicKey);
        expect(toHex(v.publicKey)).toBe(toHex(s.publicKey));
        expect(v.verify(msg, s.sign(msg))).toBe(true);
        expect(v.verify(msg, signers[(signers.indexOf(s) + 1) % signers.length]!.sign(msg))).toBe(false);
      }
    }
    // The verifier's public key is its own copy.
    const v = p.ed25519Verifier(signers[0]!.publicKey);
    v.publicKey.fill(0);
    expect(p.ed25519Verifier(signers[0]!.publicKey).verify(msg, signers[0]!.sign(msg))).toBe(true);
    expect(() => p.ed25519Verifier(h('0100000000000000000000000000000000000000000000000000000000000000'))).toThrow(CryptoError);
  });
});

describe('node provider: ephemeral X25519 pairs made ahead by prepare()', () => {
  const p = nodeCryptoProvider;
  const hexOf = (pair: { publicKey: Uint8Array }): string => toHex(pair.publicKey);

  it('hands each pre-made pair out once, in order, and works without any', () => {
    // Drain whatever an earlier test left, then make two ahead.
    for (let i = 0; i < 4; i++) p.x25519Generate();
    p.prepare!();
    p.prepare!();
    p.prepare!(); // the pool holds two: a third call makes nothing
    const made = new Set<string>();
    const a = p.x25519Generate();
    const b = p.x25519Generate();
    const c = p.x25519Generate(); // none left: made on the spot
    for (const k of [a, b, c]) made.add(hexOf(k));
    expect(made.size).toBe(3);
    // Each is a working key pair: both ends derive the same secret.
    expect(toHex(a.deriveSharedSecret(b.publicKey))).toBe(toHex(b.deriveSharedSecret(a.publicKey)));
    expect(toHex(c.deriveSharedSecret(a.publicKey))).toBe(toHex(a.deriveSharedSecret(c.publicKey)));
  });

  it('drops pre-made pairs older than 30 s instead of using them', () => {
    for (let i = 0; i < 4; i++) p.x25519Generate();
    expect(spareX25519Pairs()).toBe(0);
    const now = performance.now();
    const clock = vi.spyOn(performance, 'now');
    try {
      clock.mockReturnValue(now);
      p.prepare!();
      p.prepare!();
      expect(spareX25519Pairs()).toBe(2);
      // Within 30 s a pair comes from the pool.
      clock.mockReturnValue(now + 29_000);
      p.x25519Generate();
      expect(spareX25519Pairs()).toBe(1);
      clock.mockReturnValue(now);
      p.prepare!();
      expect(spareX25519Pairs()).toBe(2);
      // Past 30 s both are stale: dropped, and the pair is made on the spot.
      clock.mockReturnValue(now + 30_001);
      const fresh = p.x25519Generate();
      expect(spareX25519Pairs()).toBe(0);
      expect(fresh.publicKey.length).toBe(32);
      // prepare() drops stale pairs too before it makes one.
      clock.mockReturnValue(now);
      p.prepare!();
      clock.mockReturnValue(now + 60_000);
      p.prepare!();
      expect(spareX25519Pairs()).toBe(1);
    } finally {
      clock.mockRestore();
      for (let i = 0; i < 4; i++) p.x25519Generate();
    }
  });
});

describe('node and noble providers give identical bytes on random input', () => {
  const aeadAlg = fc.constantFrom<AeadAlgorithm>('aes-128-gcm', 'aes-256-gcm', 'chacha20-poly1305');
  const hpAlg = fc.constantFrom<HeaderProtectionAlgorithm>('aes-128', 'aes-256', 'chacha20');
  const hashAlg = fc.constantFrom<HashAlgorithm>('sha256', 'sha384');
  const bytes = (max: number) => fc.uint8Array({ maxLength: max });
  const fixed = (n: number) => fc.uint8Array({ minLength: n, maxLength: n });
  const [a, b] = providers as [CryptoProvider, CryptoProvider];

  it('AEAD seal and open', () => {
    fc.assert(
      fc.property(aeadAlg, fixed(32), fixed(12), bytes(64), bytes(1500), fc.nat(), (alg, key32, nonce, aad, pt, flip) => {
        const key = key32.subarray(0, AEAD_KEY_LENGTH[alg]);
        const sealed = a.aead(alg, key).seal(nonce, aad, pt);
        expect(toHex(b.aead(alg, key).seal(nonce, aad, pt))).toBe(toHex(sealed));
        expect(toHex(b.aead(alg, key).open(nonce, aad, sealed)!)).toBe(toHex(pt));
        const bad = sealed.slice();
        bad[flip % bad.length]! ^= 0x80;
        expect(a.aead(alg, key).open(nonce, aad, bad)).toBeNull();
        expect(b.aead(alg, key).open(nonce, aad, bad)).toBeNull();
      }),
      fcParams('aead equivalence', 500),
    );
  });

  it('header protection, also against node:crypto ECB / ChaCha20 directly', () => {
    fc.assert(
      fc.property(hpAlg, fixed(32), fixed(16), (alg, key32, sample) => {
        const key = key32.subarray(0, HP_KEY_LENGTH[alg]);
        const mask = a.headerProtection(alg, key).mask(sample);
        expect(toHex(b.headerProtection(alg, key).mask(sample))).toBe(toHex(mask));
        const reference =
          alg === 'chacha20'
            ? createCipheriv('chacha20', key, sample).update(new Uint8Array(5))
            : createCipheriv(alg === 'aes-128' ? 'aes-128-ecb' : 'aes-256-ecb', key, null).update(sample).subarray(0, 5);
        expect(toHex(mask)).toBe(toHex(reference));
      }),
      fcParams('hp equivalence', 1000),
    );
  });

  it('hash, HMAC and HKDF', () => {
    fc.assert(
      fc.property(hashAlg, bytes(300), bytes(100), bytes(80), fc.integer({ min: 0, max: 400 }), (alg, data, key, info, len) => {
        expect(toHex(b.hash(alg, data))).toBe(toHex(a.hash(alg, data)));
        expect(toHex(b.hmac(alg, key, data))).toBe(toHex(a.hmac(alg, key, data)));
        const prk = a.hkdfExtract(alg, key, data);
        expect(toHex(b.hkdfExtract(alg, key, data))).toBe(toHex(prk));
        expect(toHex(b.hkdfExpand(alg, prk, info, len))).toBe(toHex(a.hkdfExpand(alg, prk, info, len)));
      }),
      fcParams('hash equivalence', 300),
    );
  });

  it('X25519 shared secrets', () => {
    fc.assert(
      fc.property(fixed(32), fixed(32), (x, y) => {
        const ax = a.x25519FromPrivateKey(x);
        const by = b.x25519FromPrivateKey(y);
        expect(toHex(b.x25519FromPrivateKey(x).publicKey)).toBe(toHex(ax.publicKey));
        expect(toHex(ax.deriveSharedSecret(by.publicKey))).toBe(toHex(by.deriveSharedSecret(ax.publicKey)));
      }),
      fcParams('x25519 equivalence', 100),
    );
  });

  it('Ed25519 signatures and strict verification of mutated ones', () => {
    fc.assert(
      fc.property(fixed(32), bytes(200), fc.nat(), fc.integer({ min: 1, max: 255 }), (seed, msg, pos, x) => {
        const sig = a.ed25519Signer(seed).sign(msg);
        expect(toHex(b.ed25519Signer(seed).sign(msg))).toBe(toHex(sig));
        const pub = a.ed25519Signer(seed).publicKey;
        expect(a.ed25519Verifier(pub).verify(msg, sig)).toBe(true);
        expect(b.ed25519Verifier(pub).verify(msg, sig)).toBe(true);
        const bad = sig.slice();
        bad[pos % 64]! ^= x;
        expect(b.ed25519Verifier(pub).verify(msg, bad)).toBe(a.ed25519Verifier(pub).verify(msg, bad));
      }),
      fcParams('ed25519 equivalence', 100),
    );
  });

  it('Ed25519 verification of random keys and signatures', () => {
    fc.assert(
      fc.property(fixed(32), fixed(64), bytes(50), (pub, sig, msg) => {
        const valid = isValidEd25519PublicKey(pub);
        if (!valid) {
          expect(() => a.ed25519Verifier(pub)).toThrow(CryptoError);
          expect(() => b.ed25519Verifier(pub)).toThrow(CryptoError);
          return;
        }
        expect(b.ed25519Verifier(pub).verify(msg, sig)).toBe(a.ed25519Verifier(pub).verify(msg, sig));
      }),
      fcParams('ed25519 random', 300),
    );
  });

  it('BLAKE3', () => {
    fc.assert(
      fc.property(bytes(3000), fc.string(), fc.integer({ min: 1, max: 100 }), (data, ctx, len) => {
        expect(toHex(b.blake3(data, len))).toBe(toHex(a.blake3(data, len)));
        expect(toHex(b.blake3DeriveKey(ctx, data, len))).toBe(toHex(a.blake3DeriveKey(ctx, data, len)));
      }),
      fcParams('blake3 equivalence', 100),
    );
  });
});

describe('ECDSA P-256 / SHA-256 (X.509 credentials)', () => {
  // RFC 6979 §A.2.5: P-256, SHA-256, message "sample". Its s is above n/2 (a "high-S"
  // signature, as OpenSSL and BoringSSL produce): it must verify.
  const pub = fromHex('04' + '60fed4ba255a9d31c961eb74c6356d68c049b8923b61fa6ce669622e60f29fb6' + '7903fe1008b8bc99a41ae9e95628bc64f2f1b20c2d7e9f5177a3c294d4462299');
  const priv = fromHex('c9afa9d845ba75166b5c215767b1d6934e50c3db36e89b127b8a622b120f6721');
  const r = 'efd48b2aacb6a8fd1140dd9cd45e81d69d2c877b56aaf991c34d0ea84eaf3716';
  const s = 'f7cb1c942d657c41d436c7a1b6e29f65f3e900dbb9aff4064dc4ab2f843acda8';
  const sig = fromHex(`3046022100${r}022100${s}`);

  it.each(providers)('$name: the RFC 6979 key and signature; a tampered message or signature fails', (p) => {
    expect(toHex(p.ecdsaP256Signer(priv).publicKey)).toBe(toHex(pub));
    const v = p.ecdsaP256Verifier(pub);
    expect(v.verify(utf8('sample'), sig)).toBe(true);
    expect(v.verify(utf8('samplf'), sig)).toBe(false);
    const bad = sig.slice();
    bad[10]! ^= 1;
    expect(v.verify(utf8('sample'), bad)).toBe(false);
    expect(v.verify(utf8('sample'), new Uint8Array(0))).toBe(false);
  });

  it('each provider verifies the other one’s signatures', () => {
    for (const signer of providers) {
      const key = signer.ecdsaP256Signer(priv);
      const message = utf8(`signed by ${signer.name}`);
      const signature = key.sign(message);
      for (const verifier of providers) expect(verifier.ecdsaP256Verifier(key.publicKey).verify(message, signature), `${signer.name} → ${verifier.name}`).toBe(true);
    }
  });

  it('rejects points off the curve, compressed points and bad scalars', () => {
    const off = pub.slice();
    off[64]! ^= 1;
    for (const p of providers) {
      expect(() => p.ecdsaP256Verifier(off)).toThrow(CryptoError);
      expect(() => p.ecdsaP256Verifier(pub.subarray(0, 33))).toThrow(CryptoError);
      expect(() => p.ecdsaP256Signer(new Uint8Array(32))).toThrow(RangeError);
      expect(() => p.ecdsaP256Signer(new Uint8Array(32).fill(0xff))).toThrow(RangeError);
    }
  });
});

describe('JavaScript HMAC-SHA-256 (the node provider\'s short-input path)', () => {
  it('matches OpenSSL at every block boundary, split across parts, and after its key changes in place', () => {
    const key = new Uint8Array(32);
    for (const keyLength of [0, 1, 32, 63, 64, 65, 130]) {
      for (const dataLength of [0, 1, 55, 56, 63, 64, 65, 119, 120, 128, 300]) {
        const k = Uint8Array.from({ length: keyLength }, (_, i) => (i * 7 + keyLength) & 0xff);
        const d = Uint8Array.from({ length: dataLength }, (_, i) => (i * 13 + 1) & 0xff);
        const expected = createHmac('sha256', k).update(d).digest('hex');
        expect(toHex(hmacSha256(k, [d]))).toBe(expected);
        // Twice with the same key (its keyed states are reused), then split in three parts.
        expect(toHex(hmacSha256(k, [d.subarray(0, dataLength >> 1), new Uint8Array(0), d.subarray(dataLength >> 1)]))).toBe(expected);
      }
    }
    // The same key object, changed in place between calls, gives the new key's MAC.
    const data = utf8('quic key');
    for (let i = 0; i < 3; i++) {
      key[i] = 0x40 + i;
      expect(toHex(hmacSha256(key, [data]))).toBe(createHmac('sha256', key).update(data).digest('hex'));
    }
  });
});
