/**
 * Hostile input after the handshake (reliability.md §5.C, §5.L.3): a raw peer completes a
 * real handshake with a server `QuicEndpoint`, then sends frames no honest peer would, in
 * correctly protected packets. Each case ends in the RFC 9000 transport error the victim
 * must close with (checked on the victim and in the CONNECTION_CLOSE on the wire), or in the
 * packet being dropped with the connection intact; never in an internal error.
 */
import { describe, expect, it } from 'vitest';
import type { ConnectionSettings } from '../../src/transport/quic/config.ts';
import { TransportErrorCode as E } from '../../src/transport/quic/errors.ts';
import { MAX_ACK_RANGES } from '../../src/transport/quic/limits.ts';
import { Arena, expectAlive, expectClosedWith, expectClosedWithOneOf } from './arena.ts';
import { F, cat, type RawPeer } from './raw-peer.ts';

const TWO_62_MINUS_1 = 2n ** 62n - 1n;
const TWO_53 = 2n ** 53n;
const bytes = (n: number, fill = 0x61) => new Uint8Array(n).fill(fill);

/** A server with `settings` and a raw peer that finished its handshake with it. */
function victim(settings?: Partial<ConnectionSettings>) {
  const arena = new Arena(settings ? { settings } : {});
  const { peer, conn } = arena.handshake();
  return { arena, peer, conn };
}

describe('§5.C frame encoding and placement', () => {
  it('unknown frame type 0x21 → FRAME_ENCODING_ERROR', () => {
    const { arena, peer, conn } = victim();
    arena.send(peer, [Uint8Array.of(0x21)]);
    expectClosedWith(arena, conn, peer, E.FRAME_ENCODING_ERROR, 0x21);
  });

  it('unknown two-byte frame type 0x4042 → FRAME_ENCODING_ERROR', () => {
    const { arena, peer, conn } = victim();
    arena.send(peer, [Uint8Array.of(0x40, 0x42, 0x00)]);
    expectClosedWith(arena, conn, peer, E.FRAME_ENCODING_ERROR, 0x42);
  });

  it('truncated frame (MAX_DATA cut inside its varint) → FRAME_ENCODING_ERROR', () => {
    const { arena, peer, conn } = victim();
    arena.send(peer, [Uint8Array.of(0x10, 0x80, 0x01)]);
    expectClosedWith(arena, conn, peer, E.FRAME_ENCODING_ERROR, 0x10);
  });

  it('frame type not minimally encoded (PING as 0x4001) → PROTOCOL_VIOLATION', () => {
    const { arena, peer, conn } = victim();
    arena.send(peer, [Uint8Array.of(0x40, 0x01)]);
    expectClosedWith(arena, conn, peer, E.PROTOCOL_VIOLATION);
  });

  it('1-RTT packet with no frames → PROTOCOL_VIOLATION', () => {
    const { arena, peer, conn } = victim();
    arena.send(peer, []);
    expectClosedWith(arena, conn, peer, E.PROTOCOL_VIOLATION);
  });

  it('HANDSHAKE_DONE from a client → PROTOCOL_VIOLATION', () => {
    const { arena, peer, conn } = victim();
    arena.send(peer, [F.handshakeDone()]);
    expectClosedWith(arena, conn, peer, E.PROTOCOL_VIOLATION, 0x1e);
  });

  it('NEW_TOKEN sent to a server → PROTOCOL_VIOLATION', () => {
    const { arena, peer, conn } = victim();
    arena.send(peer, [F.newToken(bytes(16))]);
    expectClosedWith(arena, conn, peer, E.PROTOCOL_VIOLATION, 0x07);
  });

  it('STREAM in a Handshake packet → PROTOCOL_VIOLATION', () => {
    const arena = new Arena();
    const peer = arena.peer('attacker', { autoFinish: false });
    arena.deliver('attacker', peer.initialDatagram());
    const conn = arena.accepted[0]!;
    arena.pump();
    arena.deliver('attacker', peer.packet('handshake', [F.stream(0, 0, bytes(10))]));
    arena.pump();
    expectClosedWith(arena, conn, peer, E.PROTOCOL_VIOLATION, 0x0e);
    expect(peer.closes[0]!.level).toBe('handshake');
  });

  it('STREAM in an Initial packet → PROTOCOL_VIOLATION', () => {
    const arena = new Arena();
    const peer = arena.peer();
    arena.deliver('attacker', peer.initialDatagram({ extra: [F.stream(0, 0, bytes(10))] }));
    const conn = arena.accepted[0]!;
    arena.pump();
    expectClosedWith(arena, conn, peer, E.PROTOCOL_VIOLATION, 0x0e);
    expect(peer.closes[0]!.level).toBe('initial');
  });

  it('CONNECTION_CLOSE whose reason length runs past the packet → FRAME_ENCODING_ERROR', () => {
    const { arena, peer, conn } = victim();
    arena.send(peer, [cat(0x1c, 0x00, 0x00, 0x40, 0xff, bytes(10))]);
    expectClosedWith(arena, conn, peer, E.FRAME_ENCODING_ERROR, 0x1c);
  });

  it('CONNECTION_CLOSE with a 1000-byte invalid-UTF-8 reason → the victim drains', () => {
    const { arena, peer, conn } = victim();
    arena.send(peer, [F.connectionClose(E.PROTOCOL_VIOLATION, 0, bytes(1000, 0xff))]);
    expect(conn.state).toBe('draining');
    expect(conn.closeError?.remote).toBe(true);
    expect(conn.closeError?.transportCode).toBe(E.PROTOCOL_VIOLATION);
    expect(arena.internalErrors).toBe(0);
    // Draining: nothing more is sent.
    arena.deliver('attacker', peer.oneRtt(F.ping()));
    expect(arena.pump()).toEqual([]);
  });
});

describe('§5.C ACK abuse', () => {
  it('ACK of a packet number never sent → PROTOCOL_VIOLATION', () => {
    const { arena, peer, conn } = victim();
    arena.send(peer, [F.ack(1000)]);
    expectClosedWith(arena, conn, peer, E.PROTOCOL_VIOLATION, 0x02);
  });

  it('ACK with a huge range count and no ranges → FRAME_ENCODING_ERROR', () => {
    const { arena, peer, conn } = victim();
    arena.send(peer, [F.ack(0, { count: 1_000_000_000 })]);
    expectClosedWith(arena, conn, peer, E.FRAME_ENCODING_ERROR, 0x02);
  });

  it('ACK whose first range runs below packet number 0 → FRAME_ENCODING_ERROR', () => {
    const { arena, peer, conn } = victim();
    arena.send(peer, [F.ack(1, { first: 5 })]);
    expectClosedWith(arena, conn, peer, E.FRAME_ENCODING_ERROR, 0x02);
  });

  it('ACK whose second range runs below packet number 0 → FRAME_ENCODING_ERROR', () => {
    const { arena, peer, conn } = victim();
    arena.send(peer, [F.ack(2, { first: 0, ranges: [[0, 5]] })]);
    expectClosedWith(arena, conn, peer, E.FRAME_ENCODING_ERROR, 0x02);
  });

  it('ACK of largest 2^62 − 1 (never sent) → PROTOCOL_VIOLATION', () => {
    const { arena, peer, conn } = victim();
    arena.send(peer, [F.ack(TWO_62_MINUS_1)]);
    expectClosedWith(arena, conn, peer, E.PROTOCOL_VIOLATION, 0x02);
  });

  it('ACK with ack_delay 2^62 − 1 is accepted (the delay is clamped, not an error)', () => {
    const { arena, peer, conn } = victim();
    arena.send(peer, [F.ack(0, { delay: TWO_62_MINUS_1 })]);
    expectAlive(arena, conn);
  });
});

describe('§5.C streams and flow control', () => {
  it('STREAM beyond the stream window → FLOW_CONTROL_ERROR', () => {
    const { arena, peer, conn } = victim({ streamReceiveWindow: 10_000 });
    arena.send(peer, [F.stream(0, 10_000, bytes(1))]);
    expectClosedWith(arena, conn, peer, E.FLOW_CONTROL_ERROR, 0x0e);
  });

  it('STREAM beyond the connection window (across streams) → FLOW_CONTROL_ERROR', () => {
    const { arena, peer, conn } = victim({ streamReceiveWindow: 10_000, receiveWindow: 30_000 });
    arena.send(peer, [F.stream(0, 9_999, bytes(1)), F.stream(4, 9_999, bytes(1)), F.stream(8, 9_999, bytes(1))]);
    expectAlive(arena, conn);
    arena.send(peer, [F.stream(12, 9_999, bytes(1))]);
    expectClosedWith(arena, conn, peer, E.FLOW_CONTROL_ERROR, 0x0e);
  });

  it('STREAM on a send-only stream (server uni 3) → STREAM_STATE_ERROR', () => {
    const { arena, peer, conn } = victim();
    conn.openStream('uni');
    arena.send(peer, [F.stream(3, 0, bytes(5))]);
    expectClosedWith(arena, conn, peer, E.STREAM_STATE_ERROR, 0x0e);
  });

  it('STREAM on an unopened locally initiated stream (server bidi 1) → STREAM_STATE_ERROR', () => {
    const { arena, peer, conn } = victim();
    arena.send(peer, [F.stream(1, 0, bytes(5))]);
    expectClosedWith(arena, conn, peer, E.STREAM_STATE_ERROR, 0x0e);
  });

  it('RESET_STREAM on a send-only stream → STREAM_STATE_ERROR', () => {
    const { arena, peer, conn } = victim();
    conn.openStream('uni');
    arena.send(peer, [F.resetStream(3, 0, 0)]);
    expectClosedWith(arena, conn, peer, E.STREAM_STATE_ERROR, 0x04);
  });

  it('STREAM_DATA_BLOCKED on a send-only stream → STREAM_STATE_ERROR', () => {
    const { arena, peer, conn } = victim();
    conn.openStream('uni');
    arena.send(peer, [F.streamDataBlocked(3, 0)]);
    expectClosedWith(arena, conn, peer, E.STREAM_STATE_ERROR, 0x15);
  });

  it('MAX_STREAM_DATA on a receive-only stream (client uni 2) → STREAM_STATE_ERROR', () => {
    const { arena, peer, conn } = victim();
    arena.send(peer, [F.maxStreamData(2, 1000)]);
    expectClosedWith(arena, conn, peer, E.STREAM_STATE_ERROR, 0x11);
  });

  it('MAX_STREAM_DATA for an unopened locally initiated stream → STREAM_STATE_ERROR', () => {
    const { arena, peer, conn } = victim();
    arena.send(peer, [F.maxStreamData(1, 1000)]);
    expectClosedWith(arena, conn, peer, E.STREAM_STATE_ERROR, 0x11);
  });

  it('STOP_SENDING for an unopened locally initiated stream → STREAM_STATE_ERROR', () => {
    const { arena, peer, conn } = victim();
    arena.send(peer, [F.stopSending(5, 0)]);
    expectClosedWith(arena, conn, peer, E.STREAM_STATE_ERROR, 0x05);
  });

  it('STOP_SENDING on a receive-only stream (client uni 2) → STREAM_STATE_ERROR', () => {
    const { arena, peer, conn } = victim();
    arena.send(peer, [F.stopSending(2, 0)]);
    expectClosedWith(arena, conn, peer, E.STREAM_STATE_ERROR, 0x05);
  });

  it('opening a bidi stream beyond MAX_STREAMS (id 400 with a limit of 100) → STREAM_LIMIT_ERROR', () => {
    const { arena, peer, conn } = victim();
    arena.send(peer, [F.stream(400, 0, bytes(1))]);
    expectClosedWith(arena, conn, peer, E.STREAM_LIMIT_ERROR, 0x0e);
  });

  it('opening a uni stream beyond MAX_STREAMS (id 402) → STREAM_LIMIT_ERROR', () => {
    const { arena, peer, conn } = victim();
    arena.send(peer, [F.stream(402, 0, bytes(1))]);
    expectClosedWith(arena, conn, peer, E.STREAM_LIMIT_ERROR, 0x0e);
  });

  it('MAX_STREAMS above 2^60 → FRAME_ENCODING_ERROR', () => {
    const { arena, peer, conn } = victim();
    arena.send(peer, [F.maxStreams('bi', 2n ** 60n + 1n)]);
    expectClosedWith(arena, conn, peer, E.FRAME_ENCODING_ERROR, 0x12);
  });

  it('MAX_STREAMS of exactly 2^60 is accepted', () => {
    const { arena, peer, conn } = victim();
    arena.send(peer, [F.maxStreams('uni', 2n ** 60n)]);
    expectAlive(arena, conn);
  });

  it('STREAMS_BLOCKED above 2^60 → STREAM_LIMIT_ERROR or FRAME_ENCODING_ERROR (RFC 9000 §19.14)', () => {
    const { arena, peer, conn } = victim();
    arena.send(peer, [F.streamsBlocked('bi', 2n ** 60n + 1n)]);
    expectClosedWithOneOf(arena, conn, peer, [E.STREAM_LIMIT_ERROR, E.FRAME_ENCODING_ERROR]);
  });

  it('a changed final size → FINAL_SIZE_ERROR', () => {
    const { arena, peer, conn } = victim();
    arena.send(peer, [F.stream(0, 0, bytes(10), true)]);
    arena.send(peer, [F.stream(0, 0, bytes(5), true)]);
    expectClosedWith(arena, conn, peer, E.FINAL_SIZE_ERROR, 0x0f);
  });

  it('data beyond the final size → FINAL_SIZE_ERROR', () => {
    const { arena, peer, conn } = victim();
    arena.send(peer, [F.stream(0, 0, bytes(10), true)]);
    arena.send(peer, [F.stream(0, 10, bytes(5))]);
    expectClosedWith(arena, conn, peer, E.FINAL_SIZE_ERROR, 0x0e);
  });

  it('a FIN below data already received → FINAL_SIZE_ERROR', () => {
    const { arena, peer, conn } = victim();
    arena.send(peer, [F.stream(0, 0, bytes(100))]);
    arena.send(peer, [F.stream(0, 0, bytes(50), true)]);
    expectClosedWith(arena, conn, peer, E.FINAL_SIZE_ERROR, 0x0f);
  });

  it('RESET_STREAM with a final size below the data received → FINAL_SIZE_ERROR', () => {
    const { arena, peer, conn } = victim();
    arena.send(peer, [F.stream(0, 0, bytes(100))]);
    arena.send(peer, [F.resetStream(0, 7, 50)]);
    expectClosedWith(arena, conn, peer, E.FINAL_SIZE_ERROR, 0x04);
  });

  it('RESET_STREAM that changes a known final size → FINAL_SIZE_ERROR', () => {
    const { arena, peer, conn } = victim();
    arena.send(peer, [F.stream(0, 0, bytes(10), true)]);
    arena.send(peer, [F.resetStream(0, 7, 20)]);
    expectClosedWith(arena, conn, peer, E.FINAL_SIZE_ERROR, 0x04);
  });

  it('RESET_STREAM with a final size beyond the stream window → FLOW_CONTROL_ERROR', () => {
    const { arena, peer, conn } = victim({ streamReceiveWindow: 10_000 });
    arena.send(peer, [F.resetStream(0, 7, 10_001)]);
    expectClosedWith(arena, conn, peer, E.FLOW_CONTROL_ERROR, 0x04);
  });

  it('overlapping STREAM retransmits with different bytes: no error, the first bytes win', () => {
    const { arena, peer, conn } = victim();
    arena.send(peer, [F.stream(0, 0, bytes(4, 0x61))]);
    arena.send(peer, [F.stream(0, 2, bytes(6, 0x62), true)]);
    const r = conn.readStream(0);
    expect(new TextDecoder().decode(r.data)).toBe('aaaa');
    const r2 = conn.readStream(0);
    expect(new TextDecoder().decode(r2.data)).toBe('bbbb');
    expect(r2.fin).toBe(true);
    expectAlive(arena, conn);
  });
});

describe('§5.C CRYPTO, DATAGRAM', () => {
  it('CRYPTO at 1-RTT beyond the crypto buffer → CRYPTO_BUFFER_EXCEEDED', () => {
    const { arena, peer, conn } = victim();
    arena.send(peer, [F.crypto(1_000_000, bytes(10))]);
    expectClosedWith(arena, conn, peer, E.CRYPTO_BUFFER_EXCEEDED, 0x06);
  });

  it('a TLS KeyUpdate message in 1-RTT CRYPTO → CRYPTO_ERROR 0x10a (unexpected_message, RFC 9001 §6)', () => {
    const { arena, peer, conn } = victim();
    arena.send(peer, [F.crypto(0, Uint8Array.of(24, 0, 0, 1, 0))]);
    expectClosedWith(arena, conn, peer, 0x10a);
  });

  it('DATAGRAM larger than our max_datagram_frame_size → PROTOCOL_VIOLATION', () => {
    const { arena, peer, conn } = victim({ maxDatagramFrameSize: 100 });
    arena.send(peer, [F.datagram(bytes(200))]);
    expectClosedWith(arena, conn, peer, E.PROTOCOL_VIOLATION, 0x31);
  });

  it('DATAGRAM when we advertised no support (max_datagram_frame_size 0) → PROTOCOL_VIOLATION', () => {
    const { arena, peer, conn } = victim({ maxDatagramFrameSize: 0 });
    arena.send(peer, [F.datagram(bytes(1))]);
    expectClosedWith(arena, conn, peer, E.PROTOCOL_VIOLATION, 0x31);
  });

  it('a flood of 5,000 DATAGRAMs never read keeps the receive queue bounded', () => {
    const { arena, peer, conn } = victim();
    for (let i = 0; i < 50; i++) arena.send(peer, Array.from({ length: 100 }, () => F.datagram(bytes(8))));
    expectAlive(arena, conn);
    let queued = 0;
    while (conn.readDatagram() !== undefined) queued++;
    expect(queued).toBeGreaterThan(0);
    expect(queued).toBeLessThanOrEqual(1024);
  });
});

describe('§5.L.3 varint boundaries (2^53, 2^62 − 1)', () => {
  it('STREAM at offset 2^53 (beyond any window) → FLOW_CONTROL_ERROR', () => {
    const { arena, peer, conn } = victim();
    arena.send(peer, [F.stream(0, TWO_53, bytes(1))]);
    expectClosedWith(arena, conn, peer, E.FLOW_CONTROL_ERROR, 0x0e);
  });

  it('STREAM with offset + length beyond 2^62 − 1 → FRAME_ENCODING_ERROR (or FLOW_CONTROL_ERROR)', () => {
    const { arena, peer, conn } = victim();
    arena.send(peer, [F.stream(0, TWO_62_MINUS_1, bytes(1))]);
    expectClosedWithOneOf(arena, conn, peer, [E.FRAME_ENCODING_ERROR, E.FLOW_CONTROL_ERROR]);
  });

  it('STREAM on stream id 2^62 − 4 → STREAM_LIMIT_ERROR', () => {
    const { arena, peer, conn } = victim();
    arena.send(peer, [F.stream(2n ** 62n - 4n, 0, bytes(1))]);
    expectClosedWith(arena, conn, peer, E.STREAM_LIMIT_ERROR, 0x0e);
  });

  it('STREAM on stream id 2^53 → STREAM_LIMIT_ERROR', () => {
    const { arena, peer, conn } = victim();
    arena.send(peer, [F.stream(TWO_53, 0, bytes(1))]);
    expectClosedWith(arena, conn, peer, E.STREAM_LIMIT_ERROR, 0x0e);
  });

  it('STREAM on stream id 2^53 − 4 → STREAM_LIMIT_ERROR', () => {
    const { arena, peer, conn } = victim();
    arena.send(peer, [F.stream(TWO_53 - 4n, 0, bytes(1))]);
    expectClosedWith(arena, conn, peer, E.STREAM_LIMIT_ERROR, 0x0e);
  });

  it('RESET_STREAM with final size 2^62 − 1 → FLOW_CONTROL_ERROR', () => {
    const { arena, peer, conn } = victim();
    arena.send(peer, [F.resetStream(0, 0, TWO_62_MINUS_1)]);
    expectClosedWith(arena, conn, peer, E.FLOW_CONTROL_ERROR, 0x04);
  });

  it('MAX_DATA 2^62 − 1 is accepted', () => {
    const { arena, peer, conn } = victim();
    arena.send(peer, [F.maxData(TWO_62_MINUS_1)]);
    expectAlive(arena, conn);
  });

  it('MAX_STREAM_DATA 2^62 − 1 on an open stream is accepted', () => {
    const { arena, peer, conn } = victim();
    arena.send(peer, [F.stream(0, 0, bytes(1)), F.maxStreamData(0, TWO_62_MINUS_1)]);
    expectAlive(arena, conn);
  });

  it('DATA_BLOCKED and STREAM_DATA_BLOCKED at 2^62 − 1 are accepted', () => {
    const { arena, peer, conn } = victim();
    arena.send(peer, [F.stream(0, 0, bytes(1)), F.dataBlocked(TWO_62_MINUS_1), F.streamDataBlocked(0, TWO_62_MINUS_1)]);
    expectAlive(arena, conn);
  });
});

describe('§5.C.3 reassembly abuse', () => {
  /** 1-byte STREAM frames on stream 0 at offsets 1, 3, 5, ... (never readable), `order`ed, 120 per packet. */
  function fragmentPackets(peer: RawPeer, count: number, order: 'ascending' | 'descending'): Uint8Array[] {
    const offsets = Array.from({ length: count }, (_, i) => 2 * i + 1);
    if (order === 'descending') offsets.reverse();
    const packets: Uint8Array[] = [];
    for (let i = 0; i < count; i += 120) packets.push(peer.oneRtt(...offsets.slice(i, i + 120).map((o) => F.stream(0, o, bytes(1)))));
    return packets;
  }

  it('20,000 1-byte fragments with gaps: the connection closes at the segment limit instead of buffering them all', () => {
    const { arena, peer, conn } = victim();
    let sent = 0;
    for (const p of fragmentPackets(peer, 20_000, 'descending')) {
      if (conn.closeError) break;
      arena.deliver('attacker', p);
      sent += 120;
    }
    arena.pump();
    // No RFC code exists for "too fragmented"; any transport close (not INTERNAL_ERROR) will do.
    expectClosedWithOneOf(arena, conn, peer, [E.PROTOCOL_VIOLATION, E.FLOW_CONTROL_ERROR]);
    expect(sent).toBeLessThan(20_000);
  });
});

describe('§5.A.9–11 packet-level checks on an established connection', () => {
  it('a duplicated packet (replayed datagram) is processed once', () => {
    const { arena, peer, conn } = victim();
    const before = conn.stats().packetsReceived;
    const packet = peer.oneRtt(F.datagram(bytes(5)));
    arena.deliver('attacker', packet);
    arena.deliver('attacker', packet);
    arena.pump();
    expect(conn.stats().packetsReceived - before).toBe(1);
    let n = 0;
    while (conn.readDatagram() !== undefined) n++;
    expect(n).toBe(1);
    expectAlive(arena, conn);
  });

  it('2,000 small ack-eliciting packets with gaps: the victim’s ACK frames stay within MAX_ACK_RANGES', () => {
    const { arena, peer, conn } = victim();
    for (let i = 0; i < 2000; i++) {
      arena.deliver('attacker', peer.packet('app', [F.ping()], { pn: 10 + 2 * i }));
      if (i % 100 === 99) arena.pump();
    }
    arena.advance(100);
    const acks = peer.framesOf('ack').filter((a) => a.largest > 100);
    expect(acks.length).toBeGreaterThan(0);
    for (const a of acks) expect(a.ranges.length).toBeLessThanOrEqual(MAX_ACK_RANGES);
    expectAlive(arena, conn);
  });

  it('reserved header bits set after decryption → PROTOCOL_VIOLATION', () => {
    const { arena, peer, conn } = victim();
    arena.deliver('attacker', peer.packet('app', [F.ping()], { reservedBits: 3 }));
    arena.pump();
    expectClosedWith(arena, conn, peer, E.PROTOCOL_VIOLATION);
  });

  it('a short-header packet with the fixed bit 0 is dropped (its CONNECTION_CLOSE is not processed)', () => {
    const { arena, peer, conn } = victim();
    const before = conn.stats().packetsReceived;
    arena.deliver('attacker', peer.packet('app', [F.applicationClose(0)], { clearFixedBit: true }));
    arena.pump();
    expectAlive(arena, conn);
    expect(conn.stats().packetsReceived).toBe(before);
  });

  it('a 1-RTT packet failing AEAD is dropped, the connection untouched', () => {
    const { arena, peer, conn } = victim();
    const before = conn.stats().packetsReceived;
    arena.deliver('attacker', peer.packet('app', [F.applicationClose(0)], { corruptTag: true }));
    expect(arena.pump()).toEqual([]);
    expectAlive(arena, conn);
    expect(conn.stats().packetsReceived).toBe(before);
  });

  it('a flipped key-phase bit on a packet under the current keys is dropped, with no key update', () => {
    const { arena, peer, conn } = victim();
    const before = conn.stats().packetsReceived;
    arena.deliver('attacker', peer.packet('app', [F.applicationClose(0)], { keyPhase: 1 }));
    arena.pump();
    expectAlive(arena, conn);
    expect(conn.stats().keyUpdates).toBe(0);
    expect(conn.stats().packetsReceived).toBe(before);
    // The current keys still work.
    arena.send(peer, [F.ping()]);
    expect(conn.stats().packetsReceived).toBe(before + 1);
  });
});
