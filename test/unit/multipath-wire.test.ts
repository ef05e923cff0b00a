/**
 * The wire image of QUIC multipath (draft-ietf-quic-multipath-21, final code points) and of n0
 * NAT traversal (holepunch.md §2.1): frames byte for byte, round trips (fast-check, seed
 * printed), every truncation an encoding error, where they may appear, the transport
 * parameters, and the per-path nonce with the draft's own vector.
 */
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { FixedWriter } from '../../src/transport/quic/wire/fixed-writer.ts';
import { ByteReader } from '../../src/transport/quic/wire/reader.ts';
import { decodeFrame, frameAllowed, frameSize, isAckEliciting, isMultipathFrame, isNatTraversalFrame, writeAck, ackFrameSize, writeFrame, type Frame } from '../../src/transport/quic/wire/frames.ts';
import { decodeTransportParameters, encodeTransportParameters, DEFAULT_TRANSPORT_PARAMETERS, N0_NAT_TRAVERSAL_PARAMETER } from '../../src/transport/quic/wire/transport-params.ts';
import { packetNonce } from '../../src/transport/quic/protection/packet-keys.ts';
import { TransportErrorCode } from '../../src/transport/quic/errors.ts';
import { fromHex, toHex } from '../../src/util/bytes.ts';
import { fcParams } from '../helpers/seed.ts';

type Control = Exclude<Frame, { type: 'ack' | 'stream' | 'crypto' | 'padding' }>;

function encode(f: Control): Uint8Array {
  const w = new FixedWriter(new Uint8Array(256));
  writeFrame(w, f);
  expect(w.pos).toBe(frameSize(f));
  return w.buf.slice(0, w.pos);
}

function decode(bytes: Uint8Array): { frame: Frame; wireType: number } {
  const r = new ByteReader(bytes);
  const out = decodeFrame(r);
  expect(r.done).toBe(true);
  return out;
}

const ip4 = Uint8Array.of(203, 0, 113, 7);
const ip6 = fromHex('20010db8000000000000000000000001');

describe('multipath and QNT frames on the wire', () => {
  it('each frame is the bytes the draft and noq define', () => {
    // Type varints: 0x3e75 → 7e 75 (2 bytes), 0x3d7f90 → 80 3d 7f 90 (4 bytes).
    expect(toHex(encode({ type: 'path_abandon', pathId: 3, code: 0x3e76 }))).toBe('7e75037e76');
    expect(toHex(encode({ type: 'path_status', pathId: 1, seq: 2, available: true }))).toBe('7e770102');
    expect(toHex(encode({ type: 'path_status', pathId: 1, seq: 3, available: false }))).toBe('7e760103');
    expect(toHex(encode({ type: 'new_connection_id', pathId: 2, seq: 1, retirePriorTo: 0, cid: Uint8Array.of(9, 9, 9, 9), resetToken: new Uint8Array(16).fill(0xaa) }))).toBe(
      '7e78020100' + '04' + '09090909' + 'aa'.repeat(16),
    );
    expect(toHex(encode({ type: 'retire_connection_id', pathId: 2, seq: 5 }))).toBe('7e790205');
    expect(toHex(encode({ type: 'max_path_id', max: 7 }))).toBe('7e7a07');
    expect(toHex(encode({ type: 'paths_blocked', max: 7 }))).toBe('7e7b07');
    expect(toHex(encode({ type: 'path_cids_blocked', pathId: 4, nextSeq: 12 }))).toBe('7e7c040c');
    expect(toHex(encode({ type: 'add_address', seq: 0, ip: ip4, port: 4000 }))).toBe('803d7f9000cb007107' + '0fa0');
    expect(toHex(encode({ type: 'add_address', seq: 1, ip: ip6, port: 4000 }))).toBe('803d7f9101' + toHex(ip6) + '0fa0');
    expect(toHex(encode({ type: 'reach_out', round: 1, ip: ip4, port: 1 }))).toBe('803d7f9201cb0071070001');
    expect(toHex(encode({ type: 'reach_out', round: 2, ip: ip6, port: 2 }))).toBe('803d7f9302' + toHex(ip6) + '0002');
    expect(toHex(encode({ type: 'remove_address', seq: 9 }))).toBe('803d7f9409');
    // Plain NEW/RETIRE_CONNECTION_ID are unchanged.
    expect(toHex(encode({ type: 'retire_connection_id', seq: 5 }))).toBe('1905');
  });

  it('PATH_ACK (0x3e) carries the path id before the ACK body; 0x3f adds ECN counts', () => {
    const ranges = [
      { start: 10, end: 12 },
      { start: 2, end: 5 },
    ];
    const w = new FixedWriter(new Uint8Array(64));
    writeAck(w, ranges, 7, 3);
    expect(w.pos).toBe(ackFrameSize(ranges, 7, 3));
    expect(toHex(w.buf.subarray(0, w.pos))).toBe('3e03' + '0c' + '07' + '01' + '02' + '03' + '03');
    expect(decode(w.buf.slice(0, w.pos)).frame).toEqual({ type: 'ack', largest: 12, delay: 7, ranges, pathId: 3 });
    // Without a path id, the same call writes a plain ACK.
    const plain = new FixedWriter(new Uint8Array(64));
    writeAck(plain, ranges, 7);
    expect(plain.buf[0]).toBe(0x02);
    expect(decode(plain.buf.slice(0, plain.pos)).frame).not.toHaveProperty('pathId');
    const ecn = decode(fromHex('3f05' + '0c' + '00' + '00' + '00' + '010203'));
    expect(ecn).toEqual({ wireType: 0x3f, frame: { type: 'ack', largest: 12, delay: 0, ranges: [{ start: 12, end: 12 }], ecn: { ect0: 1, ect1: 2, ce: 3 }, pathId: 5 } });
    expect(isAckEliciting(ecn.frame)).toBe(false);
  });

  it('every frame round-trips (fast-check)', () => {
    const varint = fc.integer({ min: 0, max: 2 ** 40 });
    const pathId = fc.integer({ min: 0, max: 0xffffffff });
    const ip = fc.oneof(fc.uint8Array({ minLength: 4, maxLength: 4 }), fc.uint8Array({ minLength: 16, maxLength: 16 }));
    const port = fc.integer({ min: 0, max: 0xffff });
    const frame: fc.Arbitrary<Control> = fc.oneof(
      fc.record({ type: fc.constant('path_abandon' as const), pathId, code: varint }),
      fc.record({ type: fc.constant('path_status' as const), pathId, seq: varint, available: fc.boolean() }),
      fc.record({ type: fc.constant('max_path_id' as const), max: pathId }),
      fc.record({ type: fc.constant('paths_blocked' as const), max: pathId }),
      fc.record({ type: fc.constant('path_cids_blocked' as const), pathId, nextSeq: varint }),
      fc.record({ type: fc.constant('add_address' as const), seq: varint, ip, port }),
      fc.record({ type: fc.constant('reach_out' as const), round: varint, ip, port }),
      fc.record({ type: fc.constant('remove_address' as const), seq: varint }),
      fc.record({ type: fc.constant('retire_connection_id' as const), seq: varint, pathId }),
      fc
        .record({ pathId, seq: varint, cid: fc.uint8Array({ minLength: 1, maxLength: 20 }), resetToken: fc.uint8Array({ minLength: 16, maxLength: 16 }) })
        .chain((f) => fc.integer({ min: 0, max: f.seq }).map((retirePriorTo) => ({ type: 'new_connection_id' as const, ...f, retirePriorTo }))),
    );
    fc.assert(
      fc.property(frame, (f) => {
        const bytes = encode(f);
        const { frame: back, wireType } = decode(bytes);
        expect(back).toEqual(f);
        expect(isMultipathFrame(wireType) || isNatTraversalFrame(wireType)).toBe(true);
        // Every proper prefix is an encoding error, never another exception or a frame.
        for (let n = 0; n < bytes.length; n++) {
          expect(() => decodeFrame(new ByteReader(bytes.subarray(0, n)))).toThrow(expect.objectContaining({ transportCode: TransportErrorCode.FRAME_ENCODING_ERROR }));
        }
      }),
      fcParams('multipath frames round trip', 300),
    );
  });

  it('appear only in 1-RTT packets (multipath-21 §4: 0-RTT use is a PROTOCOL_VIOLATION)', () => {
    for (const f of [{ type: 'max_path_id', max: 1 }, { type: 'reach_out', round: 1, ip: ip4, port: 1 }] as Control[]) {
      const { frame, wireType } = decode(encode(f));
      expect(frameAllowed(frame, wireType, '1rtt')).toBe(true);
      for (const packet of ['initial', 'handshake', '0rtt'] as const) expect(frameAllowed(frame, wireType, packet)).toBe(false);
    }
    const pathAck = decode(fromHex('3e0000000000'));
    expect(frameAllowed(pathAck.frame, pathAck.wireType, '0rtt')).toBe(false);
    expect(frameAllowed(pathAck.frame, pathAck.wireType, 'initial')).toBe(false);
  });
});

describe('multipath and QNT transport parameters', () => {
  const base = { ...DEFAULT_TRANSPORT_PARAMETERS, initialSourceConnectionId: new Uint8Array(8) };

  it('initial_max_path_id (0x3e) round-trips up to 2^32 − 1; above is TRANSPORT_PARAMETER_ERROR (§2.1 MUST)', () => {
    for (const v of [0, 7, 0xffffffff]) expect(decodeTransportParameters(encodeTransportParameters({ ...base, initialMaxPathId: v }), 'server').initialMaxPathId).toBe(v);
    expect(decodeTransportParameters(encodeTransportParameters(base), 'server').initialMaxPathId).toBeUndefined();
    expect(() => decodeTransportParameters(encodeTransportParameters({ ...base, initialMaxPathId: 2 ** 32 }), 'client')).toThrow(
      expect.objectContaining({ transportCode: TransportErrorCode.TRANSPORT_PARAMETER_ERROR }),
    );
    // 0x3e, length 1, value 7: the bytes iroh sends.
    expect(toHex(encodeTransportParameters({ ...DEFAULT_TRANSPORT_PARAMETERS, initialMaxPathId: 7 }))).toBe('3e0107');
  });

  it('the n0 NAT-traversal parameter is exactly one non-zero byte, at most once', () => {
    const id = Number(N0_NAT_TRAVERSAL_PARAMETER);
    expect(toHex(encodeTransportParameters({ ...DEFAULT_TRANSPORT_PARAMETERS, natTraversal: 32 }))).toBe('c0003d7f91120401' + '01' + '20');
    expect(decodeTransportParameters(encodeTransportParameters({ ...base, natTraversal: 32 }), 'client').natTraversal).toBe(32);
    const raw = (value: number[], times = 1) => {
      const one = fromHex('c0003d7f91120401' + value.length.toString(16).padStart(2, '0') + toHex(Uint8Array.from(value)));
      const out = new Uint8Array(one.length * times);
      for (let i = 0; i < times; i++) out.set(one, i * one.length);
      return out;
    };
    expect(id).toBe(0x3d7f91120401);
    for (const bad of [raw([0]), raw([]), raw([1, 2]), raw([5], 2)]) {
      expect(() => decodeTransportParameters(bad, 'client')).toThrow(expect.objectContaining({ transportCode: TransportErrorCode.TRANSPORT_PARAMETER_ERROR }));
    }
  });
});

describe('the per-path AEAD nonce (multipath-21 §2.4)', () => {
  it('matches the draft: IV 6b26114b9cba2b63a9e8dd4f, path 3, PN 54321 → 6b2611489cba2b63a9e8097e', () => {
    const iv = fromHex('6b26114b9cba2b63a9e8dd4f');
    expect(toHex(packetNonce(iv, 54321, 3))).toBe('6b2611489cba2b63a9e8097e');
  });

  it('path 0 is the RFC 9001 nonce, and path ids use all 32 bits', () => {
    const iv = fromHex('6b26114b9cba2b63a9e8dd4f');
    expect(toHex(packetNonce(iv, 54321, 0))).toBe('6b26114b9cba2b63a9e8097e');
    expect(toHex(packetNonce(iv, 0, 0xffffffff))).toBe('94d9eeb49cba2b63a9e8dd4f');
    expect(toHex(packetNonce(iv, 2 ** 40 + 1, 0x01020304))).toBe('6a24124f9cba2a63a9e8dd4e');
  });
});
