/**
 * Relay frame codec and handshake against the golden bytes of iroh-relay 1.0.2
 * (shared/docs/iroh-wire.md Appendix A, from iroh's own snapshot tests), plus the edge rules
 * of §1.4–§1.6 each as a named case.
 */
import { describe, expect, it } from 'vitest';
import { SecretKey } from '../../src/identity/index.ts';
import { defaultCryptoProvider, nobleCryptoProvider } from '../../src/transport/crypto/index.ts';
import { fromHex, toHex, utf8 } from '../../src/util/bytes.ts';
import { DecodeError } from '../../src/util/errors.ts';
import {
  challengeMessage,
  decodeClientAuthHeader,
  decodeClientToRelayFrame,
  decodeRelayToClientFrame,
  encodeClientAuthHeader,
  encodeClientToRelayFrame,
  encodeDatagramFrame,
  encodeEndpointGone,
  encodeForwardedFrame,
  encodeHealth,
  encodePingPong,
  encodeRestarting,
  encodeServerChallenge,
  encodeServerConfirmsAuth,
  encodeServerDeniesAuth,
  encodeStatus,
  FrameType,
  KeyCache,
  MAX_PACKET_SIZE,
  planBatches,
  readFrameType,
  signChallenge,
  splitDatagrams,
  StatusCode,
  verifyChallengeSignature,
  verifyClientAuthHeader,
} from '../../src/relay/protocol/index.ts';

const secret = SecretKey.fromBytes(fromHex('2a'.repeat(32)));
const KEY = '197f6b23e16c8532c6abc838facd5ea789be0c76b2920334039bfa8b3d368d61';
const HELLO = utf8('Hello World!');
const hex = (s: string): Uint8Array => fromHex(s.replace(/\s+/g, ''));

describe('iroh-wire Appendix A golden frames', () => {
  const keys = new KeyCache();
  const golden: Array<{ name: string; bytes: string; encode: () => Uint8Array; v?: 1 | 2 }> = [
    { name: 'Ping([0x2a; 8])', bytes: '09 2a2a2a2a2a2a2a2a', encode: () => encodePingPong(FrameType.Ping, new Uint8Array(8).fill(0x2a)) },
    { name: 'Pong([0x2a; 8])', bytes: '0a 2a2a2a2a2a2a2a2a', encode: () => encodePingPong(FrameType.Pong, new Uint8Array(8).fill(0x2a)) },
    { name: 'EndpointGone(key)', bytes: `08 ${KEY}`, encode: () => encodeEndpointGone(secret.public()) },
    {
      name: 'RelayToClientDatagram, ECN=CE, "Hello World!"',
      bytes: `06 ${KEY} 03 48656c6c6f20576f726c6421`,
      encode: () => encodeDatagramFrame(6, secret.public().bytes, 3, 0, HELLO),
    },
    {
      name: 'RelayToClientDatagramBatch, ECN=CE, segment 6, "Hello World!"',
      bytes: `07 ${KEY} 03 0006 48656c6c6f20576f726c6421`,
      encode: () => encodeDatagramFrame(7, secret.public().bytes, 3, 6, HELLO),
    },
    { name: 'Restarting(10 ms, 20 ms)', bytes: '0c 0000000a 00000014', encode: () => encodeRestarting(10, 20) },
    { name: 'Status(SameEndpointIdConnected)', bytes: '0d 01', encode: () => encodeStatus(StatusCode.SameEndpointIdConnected) },
    { name: 'Health("Hello? Yes this is dog.") on v1', bytes: `0b ${toHex(utf8('Hello? Yes this is dog.'))}`, encode: () => encodeHealth('Hello? Yes this is dog.'), v: 1 },
  ];
  for (const g of golden) {
    it(`encodes and decodes ${g.name}`, () => {
      const bytes = hex(g.bytes);
      expect(toHex(g.encode())).toBe(toHex(bytes));
      const decoded = decodeRelayToClientFrame(bytes, g.v ?? 2, keys);
      // Decode ∘ encode is the identity on the golden bytes.
      const reencoded = (() => {
        switch (decoded.type) {
          case FrameType.Ping:
          case FrameType.Pong:
            return encodePingPong(decoded.type, decoded.data);
          case FrameType.EndpointGone:
            return encodeEndpointGone(decoded.endpointId);
          case FrameType.RelayToClientDatagram:
          case FrameType.RelayToClientDatagramBatch:
            return encodeDatagramFrame(decoded.type, decoded.src.bytes, decoded.ecn, decoded.segmentSize, decoded.contents);
          case FrameType.Restarting:
            return encodeRestarting(decoded.reconnectInMs, decoded.tryForMs);
          case FrameType.Status:
            return encodeStatus(decoded.status);
          case FrameType.Health:
            return encodeHealth(decoded.problem);
          default:
            throw new Error(`unexpected ${decoded.type}`);
        }
      })();
      expect(toHex(reencoded)).toBe(toHex(bytes));
    });
  }

  it('decodes the golden RelayToClientDatagram fields', () => {
    const f = decodeRelayToClientFrame(hex(`06 ${KEY} 03 48656c6c6f20576f726c6421`), 2, keys);
    expect(f.type).toBe(FrameType.RelayToClientDatagram);
    if (f.type !== FrameType.RelayToClientDatagram) return;
    expect(f.src.toString()).toBe(KEY);
    expect(f.ecn).toBe(3);
    expect(f.segmentSize).toBe(0);
    expect(new TextDecoder().decode(f.contents)).toBe('Hello World!');
  });

  it('splits the golden batch into segments of 6 bytes', () => {
    const f = decodeRelayToClientFrame(hex(`07 ${KEY} 03 0006 48656c6c6f20576f726c6421`), 2, keys);
    if (f.type !== FrameType.RelayToClientDatagramBatch) throw new Error('wrong type');
    expect(splitDatagrams(f.contents, f.segmentSize).map((d) => new TextDecoder().decode(d))).toEqual(['Hello ', 'World!']);
  });

  it('uses the same layouts for ClientToRelay frames (types 4 and 5, destination key)', () => {
    const four = hex(`04 ${KEY} 03 48656c6c6f20576f726c6421`);
    const f = decodeClientToRelayFrame(four);
    expect(f.type).toBe(FrameType.ClientToRelayDatagram);
    expect(toHex(encodeClientToRelayFrame(f))).toBe(toHex(four));
    const five = hex(`05 ${KEY} 03 0006 48656c6c6f20576f726c6421`);
    const g = decodeClientToRelayFrame(five);
    expect(g.type).toBe(FrameType.ClientToRelayDatagramBatch);
    if (g.type !== FrameType.ClientToRelayDatagramBatch) return;
    expect(toHex(g.dst)).toBe(KEY);
    expect(g.segmentSize).toBe(6);
    expect(toHex(encodeClientToRelayFrame(g))).toBe(toHex(five));
  });

  it('forwards a 5 as a 7 with the sender key, keeping ecn and segment_size (iroh-wire §1.6)', () => {
    const other = SecretKey.fromBytes(new Uint8Array(32).fill(7)).public();
    const five = encodeDatagramFrame(5, other.bytes, 2, 6, HELLO);
    const out = encodeForwardedFrame(five, 1, true, secret.public().bytes);
    expect(toHex(out)).toBe(`07${KEY}020006${toHex(HELLO)}`);
    const four = encodeDatagramFrame(4, other.bytes, 1, 0, HELLO);
    expect(toHex(encodeForwardedFrame(four, 1, false, secret.public().bytes))).toBe(`06${KEY}01${toHex(HELLO)}`);
  });
});

describe('iroh-wire Appendix A handshake vector', () => {
  const challenge = new Uint8Array(16);
  const expectedMessage = '8105e7bd9963194e6d6d80225a3f1b071da3b6e65edcd12531e16233f33de9d6';
  const expectedSig =
    '661ffa2a241b3803f8d5f0e04fc3251c2b2785f8ed605b1d8b58825b92c3ba2b2b5d84d01c405f917f4fc602000442b0cbd867ab0143034f37bd089cb987d80b';

  it('ServerChallenge is 00 ‖ challenge', () => {
    expect(toHex(encodeServerChallenge(challenge))).toBe(`00${'00'.repeat(16)}`);
  });

  for (const provider of [defaultCryptoProvider, nobleCryptoProvider]) {
    it(`derives the signed message with BLAKE3 derive_key (${provider.name})`, () => {
      expect(toHex(challengeMessage(challenge, provider))).toBe(expectedMessage);
    });
  }

  it('ClientAuth is 01 ‖ key ‖ 40 ‖ signature, 98 bytes', () => {
    const frame = signChallenge(secret, challenge, defaultCryptoProvider);
    expect(frame.length).toBe(98);
    expect(toHex(frame)).toBe(`01${KEY}40${expectedSig}`);
    const decoded = decodeClientToRelayFrame(frame);
    if (decoded.type !== FrameType.ClientAuth) throw new Error('wrong type');
    expect(decoded.publicKey.toString()).toBe(KEY);
    expect(verifyChallengeSignature(decoded.publicKey, decoded.signature, challenge, defaultCryptoProvider)).toBe(true);
  });

  it('decodes a ClientAuth handed over as a Buffer view into a larger buffer (as ws does) without aliasing or corrupting it', () => {
    const frame = signChallenge(secret, challenge, defaultCryptoProvider);
    const big = Buffer.alloc(500, 0xee);
    big.set(frame, 100);
    const view = big.subarray(100, 100 + frame.length);
    const decoded = decodeClientToRelayFrame(view);
    if (decoded.type !== FrameType.ClientAuth) throw new Error('wrong type');
    expect(verifyChallengeSignature(decoded.publicKey, decoded.signature, challenge, defaultCryptoProvider)).toBe(true);
    // The input is untouched and the decoded values do not share its memory.
    expect(toHex(view)).toBe(toHex(frame));
    expect(decoded.publicKey.bytes.buffer).not.toBe(big.buffer);
    expect(decoded.signature.buffer).not.toBe(big.buffer);
  });

  it('rejects the vector signature for another challenge (replay of another session)', () => {
    const other = new Uint8Array(16);
    other[15] = 1;
    expect(verifyChallengeSignature(secret.public(), fromHex(expectedSig), other, defaultCryptoProvider)).toBe(false);
  });

  it('rejects a signature over the raw challenge instead of the derived key', () => {
    const raw = secret.sign(challenge).bytes;
    expect(verifyChallengeSignature(secret.public(), raw, challenge, defaultCryptoProvider)).toBe(false);
  });

  it('ServerConfirmsAuth is 02; ServerDeniesAuth is 03 ‖ varint(len) ‖ reason', () => {
    expect(toHex(encodeServerConfirmsAuth())).toBe('02');
    expect(toHex(encodeServerDeniesAuth('not authorized'))).toBe(`030e${toHex(utf8('not authorized'))}`);
    const keys = new KeyCache();
    expect(decodeRelayToClientFrame(hex('02'), 2, keys)).toEqual({ type: FrameType.ServerConfirmsAuth });
    expect(decodeRelayToClientFrame(encodeServerDeniesAuth('signature invalid'), 2, keys)).toEqual({ type: FrameType.ServerDeniesAuth, reason: 'signature invalid' });
  });
});

describe('TLS keying-material header (iroh-wire §1.5 header path)', () => {
  const km = Uint8Array.from({ length: 32 }, (_, i) => i * 7);

  it('is 151 base64url characters of key ‖ 40 ‖ signature(first 16) ‖ suffix(last 16)', () => {
    const value = encodeClientAuthHeader(secret, km);
    expect(value).toMatch(/^[A-Za-z0-9_-]{151}$/);
    const decoded = decodeClientAuthHeader(value);
    expect(decoded.publicKey.toString()).toBe(KEY);
    expect(toHex(decoded.suffix)).toBe(toHex(km.subarray(16)));
    expect(toHex(decoded.signature)).toBe(secret.sign(km.subarray(0, 16)).toString());
    expect(verifyClientAuthHeader(decoded, km, defaultCryptoProvider)).toBe('ok');
  });

  it('reports a suffix mismatch when the exported material differs (TLS-terminating proxy)', () => {
    const decoded = decodeClientAuthHeader(encodeClientAuthHeader(secret, km));
    const other = km.slice();
    other[31]! ^= 1;
    expect(verifyClientAuthHeader(decoded, other, defaultCryptoProvider)).toBe('suffix-mismatch');
  });

  it('reports an invalid signature when only the signed half differs', () => {
    const decoded = decodeClientAuthHeader(encodeClientAuthHeader(secret, km));
    const other = km.slice();
    other[0]! ^= 1;
    expect(verifyClientAuthHeader(decoded, other, defaultCryptoProvider)).toBe('signature-invalid');
  });

  for (const [name, value] of [
    ['padding', `${encodeClientAuthHeader(secret, km)}=`],
    ['standard base64 alphabet', encodeClientAuthHeader(secret, km).replace(/-/g, '+').replace(/_/g, '/') + '+/'],
    ['truncated', encodeClientAuthHeader(secret, km).slice(0, 140)],
    ['too long', 'A'.repeat(300)],
    ['empty', ''],
  ] as const) {
    it(`rejects a malformed header with DecodeError: ${name}`, () => {
      expect(() => decodeClientAuthHeader(value)).toThrow(DecodeError);
    });
  }
});

describe('frame rules (iroh-wire §1.4–§1.6)', () => {
  const keys = new KeyCache();
  const bad = (name: string, bytes: Uint8Array, v: 1 | 2 = 2, dir: 'in' | 'out' = 'in') =>
    it(`rejects ${name}`, () => {
      if (dir === 'in') expect(() => decodeRelayToClientFrame(bytes, v, keys)).toThrow(DecodeError);
      else expect(() => decodeClientToRelayFrame(bytes)).toThrow(DecodeError);
    });

  bad('an empty frame', new Uint8Array(0));
  bad('an unknown frame type 14', Uint8Array.of(14, 0));
  bad('an unknown frame type 0x2a (as iroh-wire §1.11b)', Uint8Array.of(0x2a, 1, 2));
  bad('a truncated two-byte frame type', Uint8Array.of(0x40));
  bad('an 8-byte frame type above 2^53', hex('ff ffffffffffffff'));
  bad('Health on a v2 connection (FrameNotAllowedInVersion)', encodeHealth('x'), 2);
  bad('Status on a v1 connection (FrameNotAllowedInVersion)', encodeStatus(0), 1);
  bad('Health with invalid UTF-8 on v1', Uint8Array.of(11, 0xff, 0xfe), 1);
  bad('a Ping of 7 bytes', Uint8Array.of(9, 1, 2, 3, 4, 5, 6, 7));
  bad('a Ping of 9 bytes', Uint8Array.of(9, 1, 2, 3, 4, 5, 6, 7, 8, 9));
  bad('a Pong of 7 bytes', Uint8Array.of(10, 1, 2, 3, 4, 5, 6, 7));
  bad('an EndpointGone of 31 bytes', encodeEndpointGone(secret.public()).subarray(0, 32));
  bad('an EndpointGone of 33 bytes', Uint8Array.of(...encodeEndpointGone(secret.public()), 0));
  bad('an EndpointGone with a key that is not a curve point', Uint8Array.of(8, ...new Uint8Array(32).fill(0xff)));
  bad('a datagram whose source key is not a curve point', Uint8Array.of(6, ...new Uint8Array(32).fill(0xff), 0, 1));
  bad('a datagram with no ECN byte', Uint8Array.of(6, ...secret.public().bytes));
  bad('a batch with fewer than 3 bytes after the key', Uint8Array.of(7, ...secret.public().bytes, 0, 6));
  bad('a Restarting of 7 bytes', encodeRestarting(1, 2).subarray(0, 8));
  bad('an empty Status', Uint8Array.of(13));
  bad('a challenge of 15 bytes', encodeServerChallenge(new Uint8Array(16)).subarray(0, 16));
  bad('a challenge of 17 bytes', Uint8Array.of(...encodeServerChallenge(new Uint8Array(16)), 0));
  bad('ServerConfirmsAuth with a body', Uint8Array.of(2, 0));
  bad('ServerDeniesAuth whose length runs past the frame', Uint8Array.of(3, 5, 0x61));
  bad('ServerDeniesAuth with trailing bytes', Uint8Array.of(3, 1, 0x61, 0x62));
  bad('a client-only frame (ClientAuth) sent by a relay', signChallenge(secret, new Uint8Array(16), defaultCryptoProvider));
  bad('a relay-only frame (ServerChallenge) sent by a client', encodeServerChallenge(new Uint8Array(16)), 2, 'out');
  bad('a relay-only frame (RelayToClientDatagram) sent by a client', encodeDatagramFrame(6, secret.public().bytes, 0, 0, HELLO), 2, 'out');
  bad('a ClientAuth whose signature length byte is not 0x40', (() => {
    const f = signChallenge(secret, new Uint8Array(16), defaultCryptoProvider);
    f[33] = 63;
    return f;
  })(), 2, 'out');
  bad('a ClientAuth with a small-order key', Uint8Array.of(1, 1, ...new Uint8Array(31), 64, ...new Uint8Array(64)), 2, 'out');
  bad('a truncated ClientAuth', signChallenge(secret, new Uint8Array(16), defaultCryptoProvider).subarray(0, 97), 2, 'out');

  it(`rejects a frame with more than MAX_PACKET_SIZE (${MAX_PACKET_SIZE}) bytes after the type (FrameTooLarge)`, () => {
    const f = new Uint8Array(1 + MAX_PACKET_SIZE + 1);
    f[0] = FrameType.RelayToClientDatagram;
    f.set(secret.public().bytes, 1);
    expect(() => decodeRelayToClientFrame(f, 2, keys)).toThrow(/frame too large/);
    f[0] = FrameType.ClientToRelayDatagram;
    expect(() => decodeClientToRelayFrame(f)).toThrow(/frame too large/);
  });

  it('accepts exactly MAX_PACKET_SIZE bytes after the type', () => {
    const f = new Uint8Array(1 + MAX_PACKET_SIZE);
    f[0] = FrameType.ClientToRelayDatagram;
    const g = decodeClientToRelayFrame(f);
    expect(g.type === FrameType.ClientToRelayDatagram && g.contents.length).toBe(MAX_PACKET_SIZE - 33);
  });

  it('refuses to encode a frame larger than MAX_PACKET_SIZE (iroh-wire §1.6: the client refuses)', () => {
    expect(() => encodeDatagramFrame(4, secret.public().bytes, 0, 0, new Uint8Array(MAX_PACKET_SIZE - 33))).toThrow(RangeError);
    expect(encodeDatagramFrame(4, secret.public().bytes, 0, 0, new Uint8Array(MAX_PACKET_SIZE - 34)).length).toBe(MAX_PACKET_SIZE);
  });

  it('accepts a non-minimal varint encoding of a known type, as iroh does', () => {
    const f = Uint8Array.of(0x40, 0x09, ...new Uint8Array(8).fill(1));
    expect(readFrameType(f)).toEqual([FrameType.Ping, 2]);
    expect(decodeRelayToClientFrame(f, 2, keys)).toEqual({ type: FrameType.Ping, data: new Uint8Array(8).fill(1) });
  });

  it('reads only the low two bits of the ECN byte', () => {
    const f = decodeRelayToClientFrame(encodeDatagramFrame(6, secret.public().bytes, 0xfe, 0, HELLO), 2, keys);
    expect(f.type === FrameType.RelayToClientDatagram && f.ecn).toBe(2);
  });

  it('accepts Status with an unknown code (iroh tolerates it, §1.11b)', () => {
    expect(decodeRelayToClientFrame(hex('0d 07'), 2, keys)).toEqual({ type: FrameType.Status, status: 7 });
  });

  it('treats a batch with segment_size 0 as a single datagram', () => {
    const f = decodeRelayToClientFrame(encodeDatagramFrame(7, secret.public().bytes, 0, 0, HELLO), 2, keys);
    if (f.type !== FrameType.RelayToClientDatagramBatch) throw new Error('wrong type');
    expect(splitDatagrams(f.contents, f.segmentSize)).toEqual([HELLO]);
  });
});

describe('batches (iroh-wire §1.6 "Batches")', () => {
  it('splits the observed shape: segment 1452, contents 3827 → 1452, 1452, 923', () => {
    expect(splitDatagrams(new Uint8Array(3827), 1452).map((d) => d.length)).toEqual([1452, 1452, 923]);
  });

  it('plans runs of equal sizes into one batch, a shorter datagram ending it', () => {
    const d = (n: number) => new Uint8Array(n);
    const plan = planBatches([d(1200), d(1200), d(1200), d(500), d(1200), d(1300), d(1300)]);
    expect(plan.map((p) => [p.segmentSize, p.datagrams.map((x) => x.length)])).toEqual([
      [1200, [1200, 1200, 1200, 500]],
      [0, [1200]],
      [1300, [1300, 1300]],
    ]);
  });

  it('never plans a frame over MAX_PACKET_SIZE', () => {
    const plan = planBatches(Array.from({ length: 200 }, () => new Uint8Array(1452)));
    for (const p of plan) expect(36 + p.datagrams.reduce((a, b) => a + b.length, 0)).toBeLessThanOrEqual(MAX_PACKET_SIZE);
    expect(plan.reduce((a, p) => a + p.datagrams.length, 0)).toBe(200);
  });

  it('rejects a datagram too large for any frame, and skips empty ones', () => {
    expect(() => planBatches([new Uint8Array(MAX_PACKET_SIZE)])).toThrow(RangeError);
    expect(planBatches([new Uint8Array(0)])).toEqual([]);
  });
});
