/**
 * Property tests of the relay codecs (shared/docs/iroh-wire.md §1.4–§1.6): every frame
 * round-trips; 10,000 random and 10,000 perturbed frames per decoder produce a frame or a
 * DecodeError and nothing else; the sans-IO connections never throw on any input; batches
 * planned, encoded, decoded and split give back the datagrams.
 */
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { SecretKey } from '../../src/identity/index.ts';
import { defaultCryptoProvider } from '../../src/transport/crypto/index.ts';
import { toHex } from '../../src/util/bytes.ts';
import { DecodeError } from '../../src/util/errors.ts';
import {
  decodeClientAuthHeader,
  decodeClientToRelayFrame,
  decodeRelayToClientFrame,
  encodeClientAuthHeader,
  encodeClientToRelayFrame,
  encodeRelayToClientFrame,
  FrameType,
  KeyCache,
  MAX_PACKET_SIZE,
  planBatches,
  RelayClientConnection,
  RelayServerConnection,
  signChallenge,
  splitDatagrams,
  type ClientToRelayFrame,
  type RelayToClientFrame,
} from '../../src/relay/protocol/index.ts';
import { fcParams } from '../helpers/seed.ts';
import { endpointId } from '../helpers/arbitraries.ts';

const keys = new KeyCache();
const ecn = fc.constantFrom(0, 1, 2, 3) as fc.Arbitrary<0 | 1 | 2 | 3>;
const contents = fc.uint8Array({ maxLength: 3000 });
const data8 = fc.uint8Array({ minLength: 8, maxLength: 8 });
const u32 = fc.integer({ min: 0, max: 0xffffffff });

const relayToClient = (version: 1 | 2): fc.Arbitrary<RelayToClientFrame> =>
  fc.oneof(
    fc.uint8Array({ minLength: 16, maxLength: 16 }).map((challenge) => ({ type: FrameType.ServerChallenge, challenge })),
    fc.constant({ type: FrameType.ServerConfirmsAuth }),
    fc.string({ maxLength: 100 }).map((reason) => ({ type: FrameType.ServerDeniesAuth, reason })),
    fc.record({ src: endpointId, ecn, contents }).map((r) => ({ type: FrameType.RelayToClientDatagram, segmentSize: 0, ...r })),
    fc.record({ src: endpointId, ecn, contents, segmentSize: fc.integer({ min: 0, max: 0xffff }) }).map((r) => ({ type: FrameType.RelayToClientDatagramBatch, ...r })),
    endpointId.map((endpointId) => ({ type: FrameType.EndpointGone, endpointId })),
    data8.map((data) => ({ type: FrameType.Ping, data })),
    data8.map((data) => ({ type: FrameType.Pong, data })),
    fc.record({ reconnectInMs: u32, tryForMs: u32 }).map((r) => ({ type: FrameType.Restarting, ...r })),
    version === 1
      ? fc.string({ maxLength: 200 }).map((problem) => ({ type: FrameType.Health, problem }))
      : fc.integer({ min: 0, max: 255 }).map((status) => ({ type: FrameType.Status, status })),
  ) as fc.Arbitrary<RelayToClientFrame>;

const clientToRelay: fc.Arbitrary<ClientToRelayFrame> = fc.oneof(
  fc.record({ secret: fc.uint8Array({ minLength: 32, maxLength: 32 }), msg: fc.uint8Array({ maxLength: 32 }) }).map(({ secret, msg }) => {
    const k = SecretKey.fromBytes(secret);
    return { type: FrameType.ClientAuth, publicKey: k.public(), signature: k.sign(msg).bytes };
  }),
  fc.record({ dst: fc.uint8Array({ minLength: 32, maxLength: 32 }), ecn, contents }).map((r) => ({ type: FrameType.ClientToRelayDatagram, segmentSize: 0, ...r })),
  fc.record({ dst: fc.uint8Array({ minLength: 32, maxLength: 32 }), ecn, contents, segmentSize: fc.integer({ min: 0, max: 0xffff }) }).map((r) => ({
    type: FrameType.ClientToRelayDatagramBatch,
    ...r,
  })),
  data8.map((data) => ({ type: FrameType.Ping, data })),
  data8.map((data) => ({ type: FrameType.Pong, data })),
) as fc.Arbitrary<ClientToRelayFrame>;

/** Frames in a comparable form (keys as hex). */
function norm(f: object): unknown {
  return JSON.parse(JSON.stringify(f, (_k, v: unknown) => (v instanceof Uint8Array ? toHex(v) : v)));
}

describe('relay frame round-trips', () => {
  for (const version of [1, 2] as const) {
    it(`decode(encode(f)) = f for every relay→client frame on v${version}`, () => {
      fc.assert(
        fc.property(relayToClient(version), (frame) => {
          const bytes = encodeRelayToClientFrame(frame);
          expect(bytes.length - 1).toBeLessThanOrEqual(MAX_PACKET_SIZE);
          expect(norm(decodeRelayToClientFrame(bytes, version, keys))).toEqual(norm(frame));
        }),
        fcParams(`relay→client round trip v${version}`, 2000),
      );
    });
  }

  it('decode(encode(f)) = f for every client→relay frame', () => {
    fc.assert(
      fc.property(clientToRelay, (frame) => {
        expect(norm(decodeClientToRelayFrame(encodeClientToRelayFrame(frame)))).toEqual(norm(frame));
      }),
      fcParams('client→relay round trip', 1000),
    );
  });

  it('planBatches → encode → decode → splitDatagrams gives back the datagrams in order', () => {
    const dgram = fc.oneof(fc.integer({ min: 1, max: 1500 }), fc.constantFrom(1200, 1452)).chain((n) => fc.uint8Array({ minLength: n, maxLength: n }));
    fc.assert(
      fc.property(fc.array(dgram, { maxLength: 80 }), endpointId, (datagrams, dst) => {
        const out: string[] = [];
        for (const p of planBatches(datagrams)) {
          const type = p.segmentSize === 0 ? FrameType.ClientToRelayDatagram : FrameType.ClientToRelayDatagramBatch;
          const bytes = encodeClientToRelayFrame({ type, dst: dst.bytes, ecn: 0, segmentSize: p.segmentSize, contents: concat(p.datagrams) } as ClientToRelayFrame);
          expect(bytes.length).toBeLessThanOrEqual(MAX_PACKET_SIZE);
          const f = decodeClientToRelayFrame(bytes);
          if (f.type !== FrameType.ClientToRelayDatagram && f.type !== FrameType.ClientToRelayDatagramBatch) throw new Error('wrong type');
          for (const d of splitDatagrams(f.contents, f.segmentSize)) out.push(toHex(d));
        }
        expect(out).toEqual(datagrams.map(toHex));
      }),
      fcParams('batch plan round trip', 300),
    );
  });
});

function concat(parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((a, p) => a + p.length, 0));
  let off = 0;
  for (const p of parts) {
    out.set(p, off);
    off += p.length;
  }
  return out;
}

/** Random frames that reach past the type check: a plausible type byte and a body of plausible length. */
const randomFrame = fc.oneof(
  fc.uint8Array({ maxLength: 200 }),
  fc.tuple(fc.integer({ min: 0, max: 15 }), fc.uint8Array({ maxLength: 120 })).map(([t, b]) => Uint8Array.of(t, ...b)),
  fc.tuple(fc.integer({ min: 0, max: 13 }), fc.integer({ min: 0, max: 40 })).chain(([t, n]) => fc.uint8Array({ minLength: n, maxLength: n }).map((b) => Uint8Array.of(t, ...b))),
);

/** Valid frames with a few bytes flipped, cut or appended. */
function perturbed(valid: fc.Arbitrary<Uint8Array>): fc.Arbitrary<Uint8Array> {
  return fc.tuple(valid, fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { maxLength: 4 }), fc.nat(), fc.uint8Array({ maxLength: 4 })).map(([bytes, flips, cut, extra]) => {
    const out = bytes.slice();
    for (const [pos, val] of flips) if (out.length > 0) out[pos % out.length] = val;
    const kept = cut % 3 === 0 ? out.subarray(0, cut % (out.length + 1)) : out;
    return Uint8Array.of(...kept, ...(cut % 5 === 0 ? extra : []));
  });
}

/** Run `decode` on `inputs`; only success or DecodeError may come out. */
function onlyDecodeError(name: string, inputs: fc.Arbitrary<Uint8Array>, decode: (b: Uint8Array) => unknown): void {
  it(`${name}: 10,000 inputs give a frame or a DecodeError, nothing else`, () => {
    let errors = 0;
    fc.assert(
      fc.property(inputs, (bytes) => {
        try {
          decode(bytes);
        } catch (err) {
          if (!(err instanceof DecodeError)) throw err;
          errors++;
        }
      }),
      fcParams(name, 10_000),
    );
    // The inputs must actually exercise the error paths.
    expect(errors).toBeGreaterThan(1000);
  });
}

describe('decoders under random and perturbed input (reliability.md §5.F.2, §5.L.2/4)', () => {
  const validOut = (v: 1 | 2) => relayToClient(v).map(encodeRelayToClientFrame);
  const validIn = clientToRelay.map(encodeClientToRelayFrame);
  onlyDecodeError('decodeRelayToClientFrame v2 random', randomFrame, (b) => decodeRelayToClientFrame(b, 2, keys));
  onlyDecodeError('decodeRelayToClientFrame v1 random', randomFrame, (b) => decodeRelayToClientFrame(b, 1, keys));
  onlyDecodeError('decodeRelayToClientFrame v2 perturbed', perturbed(validOut(2)), (b) => decodeRelayToClientFrame(b, 2, keys));
  onlyDecodeError('decodeRelayToClientFrame v1 perturbed', perturbed(validOut(1)), (b) => decodeRelayToClientFrame(b, 1, keys));
  onlyDecodeError('decodeClientToRelayFrame random', randomFrame, decodeClientToRelayFrame);
  onlyDecodeError('decodeClientToRelayFrame perturbed', perturbed(validIn), decodeClientToRelayFrame);
  const header = fc.uint8Array({ minLength: 32, maxLength: 32 }).map((km) => encodeClientAuthHeader(SecretKey.fromBytes(km), km));
  it('decodeClientAuthHeader: 10,000 random and perturbed headers give a value or a DecodeError', () => {
    let errors = 0;
    const text = fc.oneof(
      fc.string({ maxLength: 300 }),
      fc.tuple(header, fc.nat(), fc.string({ maxLength: 3 })).map(([h, n, s]) => h.slice(0, n % (h.length + 1)) + s),
    );
    fc.assert(
      fc.property(text, (value) => {
        try {
          decodeClientAuthHeader(value);
        } catch (err) {
          if (!(err instanceof DecodeError)) throw err;
          errors++;
        }
      }),
      fcParams('client auth header', 10_000),
    );
    expect(errors).toBeGreaterThan(1000);
  });
});

describe('sans-IO connections never throw on hostile input', () => {
  const secret = SecretKey.fromBytes(new Uint8Array(32).fill(5));
  const frames = fc.array(fc.oneof(randomFrame, perturbed(relayToClient(2).map(encodeRelayToClientFrame))), { maxLength: 12 });

  it('RelayClientConnection: any frame sequence ends connected or closed with a RelayError, never a throw', () => {
    fc.assert(
      fc.property(frames, fc.constantFrom(1, 2) as fc.Arbitrary<1 | 2>, (seq, version) => {
        const c = new RelayClientConnection({ secretKey: secret, version, crypto: defaultCryptoProvider, keys, now: 0, handshakeDeadline: 100 });
        let t = 0;
        for (const f of seq) {
          c.handleFrame(t++, f);
          c.handleTimeout(t);
          while (c.pollTransmit() !== undefined);
          for (let e = c.pollEvent(); e !== undefined; e = c.pollEvent()) if (e.type === 'closed') expect(e.error.code).toMatch(/^ERR_RELAY_/);
        }
        expect(['awaiting-challenge', 'awaiting-confirmation', 'connected', 'closed']).toContain(c.state);
      }),
      fcParams('client connection hostile frames', 2000),
    );
  });

  it('RelayServerConnection: any frame sequence ends in a defined state, never a throw', () => {
    const inFrames = fc.array(fc.oneof(randomFrame, perturbed(clientToRelay.map(encodeClientToRelayFrame))), { maxLength: 12 });
    fc.assert(
      fc.property(inFrames, fc.boolean(), (seq, validAuthFirst) => {
        const s = new RelayServerConnection({ version: 2, crypto: defaultCryptoProvider, handshakeDeadline: 1000 });
        s.start(0);
        const challenge = s.pollTransmit()!.subarray(1);
        if (validAuthFirst) s.handleFrame(0, signChallenge(secret, challenge, defaultCryptoProvider));
        let t = 1;
        for (const f of seq) {
          for (let e = s.pollEvent(); e !== undefined; e = s.pollEvent()) if (e.type === 'authenticated') s.accept(t);
          s.handleFrame(t++, f);
          s.handleTimeout(t);
          while (s.pollTransmit() !== undefined);
        }
        expect(['challenged', 'authenticated', 'connected', 'closed']).toContain(s.state);
      }),
      fcParams('server connection hostile frames', 2000),
    );
  });
});
