/**
 * n0 NAT traversal (holepunch.md §2) read as an attacker would, against a server that offers
 * it: frames the wrong way, more REACH_OUT addresses in a round than we allow, rounds replayed
 * or going backwards, addresses no single host has, and a peer using REACH_OUT to make us
 * probe a victim over and over. And what an honest client sees: our ADD_ADDRESSes, probes on
 * noq's schedule, unpadded, stopping once answered.
 */
import { describe, expect, it } from 'vitest';
import { TransportErrorCode as E } from '../../src/transport/quic/errors.ts';
import { FrameType } from '../../src/transport/quic/wire/frames.ts';
import { MAX_ADVERTISED_PROBES } from '../../src/transport/quic/limits.ts';
import { MAX_NAT_ADDRESSES, NatTraversal, PROBE_SCHEDULE } from '../../src/transport/quic/connection/nat-traversal.ts';
import { Arena, expectAlive, expectClosedWith } from './arena.ts';
import { F, cat, varint, type V } from './raw-peer.ts';

const reachOut = (round: V, ip: number[], port: number) => cat(varint(ip.length === 4 ? FrameType.REACH_OUT_V4 : FrameType.REACH_OUT_V6), varint(round), Uint8Array.from(ip), port >> 8, port & 0xff);
const addAddress = (seq: V, ip: number[], port: number) => cat(varint(FrameType.ADD_ADDRESS_V4), varint(seq), Uint8Array.from(ip), port >> 8, port & 0xff);

const OURS = [
  { ip: Uint8Array.of(198, 51, 100, 1), port: 4433 },
  { ip: Uint8Array.of(203, 0, 113, 1), port: 4433 },
];

/** A server offering multipath + QNT with two addresses, and a raw peer offering both too. */
function victim(withQnt = true) {
  const arena = new Arena({ directAddresses: () => OURS });
  const { peer, conn } = arena.handshake('attacker', { params: { initialMaxPathId: 7, ...(withQnt ? { natTraversal: 8 } : {}) } });
  return { arena, peer, conn };
}

const probesTo = (arena: Arena, key: string) => arena.sent.filter((t) => t.path.key === key);

describe('n0 NAT traversal: the server side', () => {
  it('advertises its addresses with ADD_ADDRESS (seq 0, 1) once negotiated, and not without', () => {
    const { peer } = victim();
    const adds = peer.frames.filter((f) => f.frame.type === 'add_address').map((f) => f.frame as { seq: number; ip: Uint8Array; port: number });
    expect(adds.map((a) => [a.seq, [...a.ip].join('.'), a.port])).toEqual([
      [0, '198.51.100.1', 4433],
      [1, '203.0.113.1', 4433],
    ]);
    const plain = victim(false);
    expect(plain.peer.frames.some((f) => f.frame.type === 'add_address')).toBe(false);
  });

  it('ADD_ADDRESS or REMOVE_ADDRESS from a client: PROTOCOL_VIOLATION (they go server → client)', () => {
    for (const frame of [addAddress(0, [10, 0, 0, 1], 1), cat(varint(FrameType.REMOVE_ADDRESS), varint(0))]) {
      const { arena, peer, conn } = victim();
      arena.send(peer, [frame]);
      expectClosedWith(arena, conn, peer, E.PROTOCOL_VIOLATION);
    }
  });

  it('REACH_OUT: unpadded PATH_CHALLENGE probes on noq’s schedule (9 over ~4.1 s), stopping once answered from that address', () => {
    const { arena, peer, conn } = victim();
    const target = '192.0.2.50:5000';
    arena.send(peer, [reachOut(1, [192, 0, 2, 50], 5000)]);
    arena.advance(70);
    const first = probesTo(arena, target);
    expect(first.length).toBe(3); // t = 0, 33, 67 ms
    for (const t of first) expect(t.data.length).toBeLessThan(100);
    arena.advance(5_000);
    expect(probesTo(arena, target).length).toBe(PROBE_SCHEDULE.length);
    // A new round: probed again; an answer from exactly there stops it.
    arena.alias(target, peer);
    const seen = peer.frames.length;
    arena.send(peer, [reachOut(2, [192, 0, 2, 50], 5000)]);
    arena.advance(1);
    const challenge = peer.frames.slice(seen).find((f) => f.frame.type === 'path_challenge')?.frame as { data: Uint8Array } | undefined;
    expect(challenge).toBeDefined();
    const before = probesTo(arena, target).length;
    arena.deliver(target, peer.oneRtt(F.pathResponse(challenge!.data)));
    arena.advance(5_000);
    expect(probesTo(arena, target).length - before).toBeLessThanOrEqual(1);
    expectAlive(arena, conn);
  });

  it('addresses no single host has (unspecified, multicast, broadcast, port 0) are never probed', () => {
    const { arena, peer, conn } = victim();
    arena.send(peer, [reachOut(1, [0, 0, 0, 0], 5000), reachOut(1, [224, 0, 0, 251], 5353), reachOut(1, [255, 255, 255, 255], 9), reachOut(1, [192, 0, 2, 7], 0)]);
    const before = arena.sent.length;
    arena.advance(5_000);
    expect(arena.sent.slice(before).filter((t) => t.path.key !== 'attacker')).toEqual([]);
    expectAlive(arena, conn);
  });

  it('more REACH_OUT addresses in one round than our parameter allows: PROTOCOL_VIOLATION', () => {
    const { arena, peer, conn } = victim();
    const frames = Array.from({ length: MAX_NAT_ADDRESSES + 1 }, (_, i) => reachOut(1, [192, 0, 2, i + 1], 6000));
    for (let i = 0; i < frames.length; i += 8) arena.send(peer, frames.slice(i, i + 8));
    expectClosedWith(arena, conn, peer, E.PROTOCOL_VIOLATION);
  });

  it('older rounds and repeats are ignored; a peer cannot turn REACH_OUT into a flood at a victim', () => {
    const { arena, peer, conn } = victim();
    // 500 rounds naming the same victim, then rounds of fresh victims: probe targets come from a bucket.
    for (let round = 1; round <= 500; round++) arena.send(peer, [reachOut(round, [192, 0, 2, 99], 7000)]);
    arena.send(peer, [reachOut(3, [192, 0, 2, 98], 7000)]); // an old round: ignored
    for (let round = 501; round <= 600; round++) arena.send(peer, [reachOut(round, [192, 0, 2, round % 200], 7000)]);
    arena.advance(10_000);
    const toVictims = arena.sent.filter((t) => t.path.key.startsWith('192.0.2.'));
    expect(toVictims.length).toBeLessThanOrEqual(MAX_ADVERTISED_PROBES * PROBE_SCHEDULE.length);
    expect(probesTo(arena, '192.0.2.98:7000')).toEqual([]);
    expectAlive(arena, conn);
  });

  it('REACH_OUT before negotiation (no QNT parameter from the peer): PROTOCOL_VIOLATION', () => {
    const { arena, peer, conn } = victim(false);
    arena.send(peer, [reachOut(1, [192, 0, 2, 1], 1)]);
    expectClosedWith(arena, conn, peer, E.PROTOCOL_VIOLATION);
  });
});

describe('n0 NAT traversal: the client side rules', () => {
  it('a client refuses REACH_OUT; keeps at most its limit of ADD_ADDRESSes; a known seq with a new address replaces it', () => {
    const nat = new NatTraversal('client', true);
    nat.onPeerParams({ natTraversal: 4 } as never);
    nat.onHandshakeComplete(true);
    expect(() => nat.check(FrameType.REACH_OUT_V4, 'reach_out')).toThrow(expect.objectContaining({ transportCode: E.PROTOCOL_VIOLATION }));
    for (let i = 0; i < 100; i++) nat.onAddAddress(i, { ip: Uint8Array.of(10, 0, 0, i), port: 1 });
    expect(nat.remote.size).toBe(MAX_NAT_ADDRESSES);
    expect(nat.onAddAddress(0, { ip: Uint8Array.of(10, 9, 9, 9), port: 2 })).toBeDefined();
    expect(nat.remote.get(0)?.port).toBe(2);
    // Without multipath in use, QNT is off even when both offered it.
    const off = new NatTraversal('client', true);
    off.onPeerParams({ natTraversal: 4 } as never);
    off.onHandshakeComplete(false);
    expect(off.active).toBe(false);
  });
});
