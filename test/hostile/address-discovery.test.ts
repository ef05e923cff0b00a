/**
 * QUIC address discovery (draft-ietf-quic-address-discovery) read as an attacker would: a
 * peer that sends OBSERVED_ADDRESS without being asked, in the wrong packet type, truncated,
 * out of order or a million times; a transport parameter out of range. And the server side
 * seen on the wire: the observation on the handshake path, resent (with a new sequence
 * number) when the packet carrying it is lost.
 */
import { describe, expect, it } from 'vitest';
import { Arena } from './arena.ts';
import { F, cat, varint } from './raw-peer.ts';
import { TransportErrorCode } from '../../src/transport/quic/errors.ts';
import { decodeTransportParameters, encodeTransportParameters, DEFAULT_TRANSPORT_PARAMETERS } from '../../src/transport/quic/wire/transport-params.ts';

const V4 = 0x9f81a6;
const V6 = 0x9f81a7;
const observed = (seq: number, ip: number[], port: number, type = ip.length === 4 ? V4 : V6) => cat(varint(type), varint(seq), Uint8Array.from(ip), port >> 8, port & 0xff);
const FROM = '203.0.113.7:40123';

describe('QUIC address discovery: hostile peers', () => {
  it('OBSERVED_ADDRESS to a server that did not ask for observations: PROTOCOL_VIOLATION (§3 MUST)', () => {
    const arena = new Arena();
    const { peer, conn } = arena.handshake();
    arena.send(peer, [observed(0, [1, 2, 3, 4], 1234)]);
    expect(conn.closeError?.transportCode).toBe(TransportErrorCode.PROTOCOL_VIOLATION);
    expect(peer.closes.at(-1)?.code).toBe(TransportErrorCode.PROTOCOL_VIOLATION);
    expect(arena.internalErrors).toBe(0);
  });

  it('a server that offered only (0) treats a received observation as a violation too', () => {
    const arena = new Arena({ settings: { addressDiscovery: 0 } });
    const { peer, conn } = arena.handshake(FROM, { params: { addressDiscovery: 2 } });
    arena.send(peer, [observed(0, [1, 2, 3, 4], 1234)], FROM);
    expect(conn.closeError?.transportCode).toBe(TransportErrorCode.PROTOCOL_VIOLATION);
  });

  it('truncated frames are FRAME_ENCODING_ERROR; an observation in a Handshake packet is PROTOCOL_VIOLATION', () => {
    for (const frame of [cat(varint(V4), varint(0), 1, 2, 3), cat(varint(V6), varint(0), new Uint8Array(16), 1), cat(varint(V4))]) {
      const arena = new Arena({ settings: { addressDiscovery: 1 } });
      const { peer, conn } = arena.handshake();
      arena.send(peer, [frame]);
      expect(conn.closeError?.transportCode).toBe(TransportErrorCode.FRAME_ENCODING_ERROR);
    }
    const arena = new Arena({ settings: { addressDiscovery: 1 } });
    const peer = arena.peer();
    arena.deliver('attacker', peer.initialDatagram());
    arena.pump();
    const conn = arena.accepted[0]!;
    // Handshake keys are installed once the server's flight arrived.
    arena.deliver('attacker', peer.packet('handshake', [observed(0, [1, 2, 3, 4], 1)]));
    expect(conn.closeError?.transportCode).toBe(TransportErrorCode.PROTOCOL_VIOLATION);
  });

  it('out of order, replayed and flooded observations: only a higher sequence number replaces the last one, nothing accumulates', () => {
    const arena = new Arena({ settings: { addressDiscovery: 1 } });
    const { peer, conn } = arena.handshake();
    arena.send(peer, [observed(5, [198, 51, 100, 5], 5005)]);
    arena.send(peer, [observed(3, [198, 51, 100, 3], 3003), observed(5, [198, 51, 100, 9], 9009)]);
    expect(conn.observedAddress).toEqual({ ip: Uint8Array.of(198, 51, 100, 5), port: 5005 });
    const v6 = [0x20, 0x01, 0x0d, 0xb8, ...new Array<number>(11).fill(0), 1];
    arena.send(peer, [observed(6, v6, 6006)]);
    expect(conn.observedAddress).toEqual({ ip: Uint8Array.from(v6), port: 6006 });
    // 20,000 frames in 1-RTT packets of 40 each: one observation kept, one event per accepted frame.
    let events = 0;
    for (let e = conn.pollEvent(); e; e = conn.pollEvent()) if (e.type === 'observed-address') events++;
    for (let i = 0; i < 500; i++) {
      arena.deliver('attacker', peer.oneRtt(...Array.from({ length: 40 }, (_, k) => observed(7 + i * 40 + k, [10, 0, (i >> 8) & 0xff, i & 0xff], 1 + k))));
      for (let e = conn.pollEvent(); e; e = conn.pollEvent()) if (e.type === 'observed-address') events++;
    }
    arena.pump();
    expect(conn.state).toBe('established');
    expect(conn.observedAddress).toEqual({ ip: Uint8Array.of(10, 0, 1, 243), port: 40 });
    expect(events).toBe(2 + 20_000);
    expect(arena.internalErrors).toBe(0);
  });

  it('address_discovery values other than 0, 1, 2 are TRANSPORT_PARAMETER_ERROR (§2 MUST)', () => {
    const bytes = (v: number) => encodeTransportParameters({ ...DEFAULT_TRANSPORT_PARAMETERS, initialSourceConnectionId: new Uint8Array(8), addressDiscovery: v as 0 });
    expect(decodeTransportParameters(bytes(2), 'client').addressDiscovery).toBe(2);
    expect(decodeTransportParameters(bytes(0), 'server').addressDiscovery).toBe(0);
    expect(() => decodeTransportParameters(bytes(3), 'client')).toThrow(expect.objectContaining({ transportCode: TransportErrorCode.TRANSPORT_PARAMETER_ERROR }));
    expect(decodeTransportParameters(encodeTransportParameters({ ...DEFAULT_TRANSPORT_PARAMETERS }), 'client').addressDiscovery).toBeUndefined();
  });
});

describe('QUIC address discovery: what the server sends', () => {
  it('one observation of the client’s address on the handshake path; none to a client that did not ask', () => {
    const arena = new Arena({ settings: { addressDiscovery: 0 } });
    const { peer } = arena.handshake(FROM, { params: { addressDiscovery: 1 } });
    expect(peer.framesOf('observed_address')).toEqual([{ type: 'observed_address', seq: 0, ip: Uint8Array.of(203, 0, 113, 7), port: 40123 }]);
    const quiet = arena.handshake('198.51.100.1:5000');
    arena.advance(100);
    expect(quiet.peer.framesOf('observed_address')).toEqual([]);
  });

  it('a lost observation is resent with the next sequence number (§3: SHOULD be retransmitted)', () => {
    const arena = new Arena({ settings: { addressDiscovery: 0 } });
    const { peer } = arena.handshake(FROM, { params: { addressDiscovery: 1 } });
    const first = peer.frames.find((f) => f.frame.type === 'observed_address')!;
    // Nothing acknowledged yet: let the server probe (PTO) until three later packets exist.
    for (let i = 0; i < 20 && peer.spaces.app.largest < first.pn + 3; i++) arena.advance(500);
    const largest = peer.spaces.app.largest;
    expect(largest).toBeGreaterThanOrEqual(first.pn + 3);
    // Acknowledge everything after the observation's packet only: it is lost by packet threshold (RFC 9002 §6.1.1).
    arena.send(peer, [F.ack(largest, { first: largest - first.pn - 1 })], FROM);
    arena.advance(50);
    const seen = peer.framesOf('observed_address');
    expect(seen.length).toBeGreaterThanOrEqual(2);
    expect(seen[1]).toEqual({ type: 'observed_address', seq: 1, ip: Uint8Array.of(203, 0, 113, 7), port: 40123 });
    expect(arena.internalErrors).toBe(0);
  });
});
