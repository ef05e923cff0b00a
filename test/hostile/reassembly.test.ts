/**
 * Reassembly budgets (issue 11 item 4, reliability.md §5.C.3): out-of-order CRYPTO data in
 * unauthenticated Initials, and STREAM data with gaps spread over many streams, cost a
 * bounded number of fragments and bounded heap per connection. A peer that goes beyond the
 * budget is closed (CRYPTO_BUFFER_EXCEEDED, FLOW_CONTROL_ERROR); the endpoint serves others.
 */
import { describe, expect, it } from 'vitest';
import { TransportErrorCode as E } from '../../src/transport/quic/errors.ts';
import { getGc, memory } from '../helpers/heap.ts';
import { Arena, expectClosedWith, expectClosedWithOneOf } from './arena.ts';
import { F, type RawPeer } from './raw-peer.ts';

const KiB = 1024;
const MiB = 1024 * KiB;
const one = new Uint8Array([0x2a]);
const fmt = (n: number) => `${(n / KiB).toFixed(0)} KiB`;

/** Heap (JS objects and ArrayBuffers) after full collections. */
function heap(gc: (() => void) | undefined): number {
  const m = memory(gc);
  return m.heap + m.buffers;
}

/** 1-byte frames at every other offset from `first`, `perPacket` to a packet. */
function spread(count: number, perPacket: number, frame: (i: number) => Uint8Array): Uint8Array[][] {
  const packets: Uint8Array[][] = [];
  for (let i = 0; i < count; i += perPacket) packets.push(Array.from({ length: Math.min(perPacket, count - i) }, (_, j) => frame(i + j)));
  return packets;
}

describe('issue 11 item 4: reassembly has budgets', () => {
  it('1-byte CRYPTO frames at even offsets in spoofable Initials: closed with CRYPTO_BUFFER_EXCEEDED, heap per connection bounded', () => {
    const gc = getGc();
    const arena = new Arena();
    // Warm the code paths (one connection and its close), then measure.
    arena.handshake('warm-up');
    const base = heap(gc);
    const attackers = 16;
    // 8,000 fragments per connection (offsets 2..16,000 of the 64 KiB CRYPTO buffer): the old
    // code kept each as an object until the handshake timeout.
    const fragments = 8_000;
    const peers: RawPeer[] = [];
    let sent = 0;
    for (let a = 0; a < attackers; a++) {
      const name = `crypto-${a}`;
      const peer = arena.peer(name, { autoFinish: false });
      peers.push(peer);
      for (const frames of spread(fragments, 200, (i) => F.crypto(2 * (i + 1), one))) {
        const d = peer.packet('initial', frames, { padTo: 1200 });
        sent += d.length;
        arena.deliver(name, d);
      }
      arena.pump();
    }
    const growth = heap(gc) - base;
    console.log(`CRYPTO fragments: ${attackers} connections, ${fmt(sent)} sent, heap +${fmt(growth)} (${fmt(growth / attackers)} per connection)${gc ? '' : ' (no gc)'}`);
    for (let a = 0; a < attackers; a++) expectClosedWith(arena, arena.conn(`crypto-${a}`)!, peers[a]!, E.CRYPTO_BUFFER_EXCEEDED, 0x06);
    if (gc) expect(growth / attackers, 'heap per hostile connection').toBeLessThan(256 * KiB);
    // The endpoint serves an honest client meanwhile.
    expect(() => arena.handshake('honest')).not.toThrow();
  });

  it('1-byte STREAM frames with gaps spread over 100 streams: closed at the connection budget, heap per connection bounded', () => {
    const gc = getGc();
    const arena = new Arena();
    arena.handshake('warm-up');
    const base = heap(gc);
    const attackers = 4;
    // 30,000 fragments per connection, 300 per stream on streams 0, 4, ..., 396: under the old
    // per-stream limit, over any sane per-connection one.
    const fragments = 30_000;
    let sent = 0;
    const victims = [];
    for (let a = 0; a < attackers; a++) {
      const name = `stream-${a}`;
      const { peer, conn } = arena.handshake(name);
      victims.push({ peer, conn });
      for (const frames of spread(fragments, 120, (i) => F.stream(4 * (i % 100), 2 * Math.floor(i / 100) + 1, one))) {
        if (conn.closeError) break;
        const d = peer.oneRtt(...frames);
        sent += d.length;
        arena.deliver(name, d);
      }
      arena.pump();
    }
    const growth = heap(gc) - base;
    console.log(`STREAM fragments: ${attackers} connections, ${fmt(sent)} sent, heap +${fmt(growth)} (${fmt(growth / attackers)} per connection)${gc ? '' : ' (no gc)'}`);
    for (const { peer, conn } of victims) expectClosedWithOneOf(arena, conn, peer, [E.FLOW_CONTROL_ERROR]);
    if (gc) expect(growth / attackers, 'heap per hostile connection').toBeLessThan(2 * MiB);
    expect(() => arena.handshake('honest')).not.toThrow();
  });

  it('the gaps filled in any order: the stream reads back whole, nothing stays charged', () => {
    const arena = new Arena();
    const { peer, conn } = arena.handshake();
    const size = 3000;
    const data = Uint8Array.from({ length: size }, (_, i) => (i * 31) & 0xff);
    // Odd bytes first (descending), then even bytes (ascending): 1,500 gaps that all close.
    for (let i = size - 1; i >= 1; i -= 2) arena.deliver('attacker', peer.oneRtt(F.stream(0, i, data.subarray(i, i + 1))));
    for (let i = 0; i < size; i += 2) arena.deliver('attacker', peer.oneRtt(F.stream(0, i, data.subarray(i, i + 1))));
    arena.pump();
    const parts: Uint8Array[] = [];
    for (let r = conn.readStream(0); r.data !== undefined; r = conn.readStream(0)) parts.push(r.data);
    const got = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
    let o = 0;
    for (const p of parts) {
      got.set(p, o);
      o += p.length;
    }
    expect(got).toEqual(data);
    expect(conn.state).toBe('established');
    expect(arena.internalErrors).toBe(0);
  });
});
