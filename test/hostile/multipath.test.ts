/**
 * QUIC multipath (draft-ietf-quic-multipath-21) read as an attacker would, against a server
 * that offers it (path ids 0..7, as iroh): the frames without negotiation,
 * path ids above what we allowed, acknowledgments of paths never used, MAX_PATH_ID going
 * down, PATH_STATUS replayed or flooded, blocked frames naming what does not exist, the last
 * path abandoned, n0 NAT-traversal frames never negotiated, a zero-length connection ID. And
 * what an honest multipath peer sees: PATH_ACK for path 0, its path-0 PATH_NEW_CONNECTION_ID
 * and PATH_RETIRE_CONNECTION_ID taken as their RFC 9000 forms, a path it opens from another
 * address challenged there (padded, within 3× what that address sent) and then used.
 */
import { describe, expect, it } from 'vitest';
import { TransportErrorCode as E } from '../../src/transport/quic/errors.ts';
import { FrameType } from '../../src/transport/quic/wire/frames.ts';
import { Arena, expectAlive, expectClosedWith } from './arena.ts';
import { F, cat, varint, type V } from './raw-peer.ts';

const MP = {
  pathAck: (pathId: V, largest: V, first: V = 0) => cat(varint(FrameType.PATH_ACK), varint(pathId), varint(largest), varint(0), varint(0), varint(first)),
  pathAbandon: (pathId: V, code: V = 0) => cat(varint(FrameType.PATH_ABANDON), varint(pathId), varint(code)),
  pathStatus: (pathId: V, seq: V, available: boolean) => cat(varint(available ? FrameType.PATH_STATUS_AVAILABLE : FrameType.PATH_STATUS_BACKUP), varint(pathId), varint(seq)),
  pathNewCid: (pathId: V, seq: V, retirePriorTo: V, cid: Uint8Array) => cat(varint(FrameType.PATH_NEW_CONNECTION_ID), varint(pathId), varint(seq), varint(retirePriorTo), cid.length, cid, new Uint8Array(16).fill(7)),
  pathRetireCid: (pathId: V, seq: V) => cat(varint(FrameType.PATH_RETIRE_CONNECTION_ID), varint(pathId), varint(seq)),
  maxPathId: (max: V) => cat(varint(FrameType.MAX_PATH_ID), varint(max)),
  pathsBlocked: (max: V) => cat(varint(FrameType.PATHS_BLOCKED), varint(max)),
  pathCidsBlocked: (pathId: V, next: V) => cat(varint(FrameType.PATH_CIDS_BLOCKED), varint(pathId), varint(next)),
  reachOut: (round: V) => cat(varint(FrameType.REACH_OUT_V4), varint(round), 10, 0, 0, 1, 0x0f, 0xa0),
  addAddress: (seq: V) => cat(varint(FrameType.ADD_ADDRESS_V4), varint(seq), 10, 0, 0, 1, 0x0f, 0xa0),
  removeAddress: (seq: V) => cat(varint(FrameType.REMOVE_ADDRESS), varint(seq)),
};

/** A server (multipath offered) and a raw peer that offered `maxPathId` (null: not at all). */
function victim(maxPathId: number | null = 7) {
  const arena = new Arena();
  const { peer, conn } = arena.handshake('attacker', maxPathId === null ? {} : { params: { initialMaxPathId: maxPathId } });
  return { arena, peer, conn };
}

describe('multipath: negotiation', () => {
  it('both offered it: in use after the handshake, and the server acknowledges with PATH_ACK for path 0 (§2.3)', () => {
    const { arena, peer, conn } = victim();
    expect(conn.stats().multipath).toBe(true);
    arena.send(peer, [F.ping()]);
    arena.send(peer, [F.ping()]);
    arena.advance(50);
    const acks = peer.frames.filter((f) => f.level === 'app' && f.frame.type === 'ack');
    expect(acks.length).toBeGreaterThan(0);
    for (const a of acks) expect(a.frame).toMatchObject({ type: 'ack', pathId: 0 });
    expectAlive(arena, conn);
  });

  it('the peer did not offer it: plain ACKs, and every multipath frame is a PROTOCOL_VIOLATION (§2 MUST NOT)', () => {
    const frames = [MP.pathAck(0, 0), MP.pathAbandon(0), MP.pathStatus(0, 1, true), MP.pathNewCid(0, 9, 0, new Uint8Array(8).fill(1)), MP.pathRetireCid(0, 0), MP.maxPathId(3), MP.pathsBlocked(0), MP.pathCidsBlocked(0, 0)];
    for (const frame of frames) {
      const { arena, peer, conn } = victim(null);
      expect(conn.stats().multipath).toBe(false);
      arena.send(peer, [F.ping()]);
      arena.advance(50);
      for (const a of peer.frames.filter((f) => f.frame.type === 'ack')) expect(a.frame).not.toHaveProperty('pathId');
      arena.send(peer, [frame]);
      expectClosedWith(arena, conn, peer, E.PROTOCOL_VIOLATION);
    }
  });

  it('a server configured without multipath does not offer it, and refuses its frames', () => {
    const arena = new Arena({ settings: { multipath: false } });
    const { peer, conn } = arena.handshake('attacker', { params: { initialMaxPathId: 7 } });
    expect(conn.stats().multipath).toBe(false);
    arena.send(peer, [MP.maxPathId(9)]);
    expectClosedWith(arena, conn, peer, E.PROTOCOL_VIOLATION);
  });

  it('initial_max_path_id with a zero-length connection ID: PROTOCOL_VIOLATION (§2.1 MUST)', () => {
    const arena = new Arena();
    const peer = arena.peer('attacker', { scid: new Uint8Array(0), params: { initialMaxPathId: 1 } });
    arena.deliver('attacker', peer.initialDatagram());
    arena.settle();
    const conn = arena.accepted[0]!;
    expect(conn.closeError?.transportCode).toBe(E.PROTOCOL_VIOLATION);
    expect(arena.internalErrors).toBe(0);
  });

  it('multipath and QNT frames in a Handshake packet: PROTOCOL_VIOLATION', () => {
    for (const frame of [MP.maxPathId(1), MP.reachOut(1)]) {
      const arena = new Arena();
      const peer = arena.peer('attacker', { params: { initialMaxPathId: 7 }, autoFinish: false });
      arena.deliver('attacker', peer.initialDatagram());
      arena.pump();
      const conn = arena.accepted[0]!;
      arena.deliver('attacker', peer.packet('handshake', [frame]));
      expect(conn.closeError?.transportCode).toBe(E.PROTOCOL_VIOLATION);
      expect(arena.internalErrors).toBe(0);
    }
  });
});

describe('multipath: path ids and limits', () => {
  it('a path id above ours (7) in any frame: PROTOCOL_VIOLATION', () => {
    for (const frame of [MP.pathAck(8, 0), MP.pathStatus(8, 1, true), MP.pathNewCid(8, 0, 0, new Uint8Array(8).fill(2)), MP.pathRetireCid(8, 0), MP.pathAbandon(8), MP.pathCidsBlocked(8, 0), MP.pathAck(2n ** 62n - 1n, 0)]) {
      const { arena, peer, conn } = victim();
      arena.send(peer, [frame]);
      expectClosedWith(arena, conn, peer, E.PROTOCOL_VIOLATION);
    }
  });

  it('PATH_ACK acknowledging a packet never sent, or for a path never opened: PROTOCOL_VIOLATION (RFC 9000 §13.1 per path)', () => {
    for (const frame of [MP.pathAck(0, 1_000_000), MP.pathAck(1, 0), MP.pathAck(7, 3)]) {
      const { arena, peer, conn } = victim();
      arena.send(peer, [frame]);
      expectClosedWith(arena, conn, peer, E.PROTOCOL_VIOLATION);
    }
  });

  it('MAX_PATH_ID: only raises; below the peer’s own initial value or above 2^32 − 1 is a PROTOCOL_VIOLATION (§4.7 MUST)', () => {
    const up = victim(3);
    up.arena.send(up.peer, [MP.maxPathId(5), MP.maxPathId(4), MP.maxPathId(3)]);
    expectAlive(up.arena, up.conn);
    for (const max of [2, 2 ** 32]) {
      const { arena, peer, conn } = victim(3);
      arena.send(peer, [MP.maxPathId(max)]);
      expectClosedWith(arena, conn, peer, E.PROTOCOL_VIOLATION);
    }
  });

  it('PATHS_BLOCKED above our maximum and PATH_CIDS_BLOCKED naming an unissued connection ID: PROTOCOL_VIOLATION (§4.8 MUST)', () => {
    const ok = victim();
    ok.arena.send(ok.peer, [MP.pathsBlocked(7), MP.pathCidsBlocked(0, 1), MP.pathCidsBlocked(3, 2)]);
    expectAlive(ok.arena, ok.conn);
    for (const frame of [MP.pathsBlocked(8), MP.pathCidsBlocked(0, 1_000), MP.pathCidsBlocked(2, 3)]) {
      const { arena, peer, conn } = victim();
      arena.send(peer, [frame]);
      expectClosedWith(arena, conn, peer, E.PROTOCOL_VIOLATION);
    }
  });

  it('PATH_STATUS replayed, reordered and flooded: advisory, nothing accumulates, the connection serves on', () => {
    const { arena, peer, conn } = victim();
    // 20,000 frames, 50 per packet, sequence numbers going down and up.
    for (let i = 0; i < 400; i++) {
      arena.deliver('attacker', peer.oneRtt(...Array.from({ length: 50 }, (_, k) => MP.pathStatus(0, (i * 50 + k) % 977, k % 2 === 0))));
    }
    arena.pump();
    expectAlive(arena, conn);
    expect(arena.sent.length).toBeLessThan(2_000);
  });
});

describe('multipath: connection IDs and abandon on path 0', () => {
  it('PATH_NEW_CONNECTION_ID / PATH_RETIRE_CONNECTION_ID for path 0 act as NEW_/RETIRE_CONNECTION_ID (§4.5, §4.6)', () => {
    const { arena, peer, conn } = victim();
    // A new path-0 CID that retires the handshake one: the server switches to it and retires seq 0.
    arena.send(peer, [MP.pathNewCid(0, 1, 1, new Uint8Array(8).fill(0x31))]);
    arena.advance(50);
    expectAlive(arena, conn);
    const retired = peer.frames.filter((f) => f.frame.type === 'retire_connection_id').map((f) => f.frame);
    expect(retired).toContainEqual(expect.objectContaining({ seq: 0 }));
    // The same sequence number with another CID is a violation, as for NEW_CONNECTION_ID.
    arena.send(peer, [MP.pathNewCid(0, 1, 1, new Uint8Array(8).fill(0x32))]);
    expectClosedWith(arena, conn, peer, E.PROTOCOL_VIOLATION);

    const r = victim();
    // Retiring one of the server's CIDs never issued is a violation; a real one is accepted.
    r.arena.send(r.peer, [MP.pathRetireCid(0, 1)]);
    expectAlive(r.arena, r.conn);
    r.arena.send(r.peer, [MP.pathRetireCid(0, 10_000)]);
    expectClosedWith(r.arena, r.conn, r.peer, E.PROTOCOL_VIOLATION);
  });

  it('PATH_ABANDON of path 0, the last path: the connection ends cleanly (NO_ERROR), nothing throws', () => {
    const { arena, peer, conn } = victim();
    arena.send(peer, [MP.pathAbandon(0, 0x3e)]);
    expectClosedWith(arena, conn, peer, E.NO_ERROR);
    expect(conn.closeError?.message).toMatch(/abandoned path 0/);
  });
});

describe('n0 NAT traversal never negotiated', () => {
  it('REACH_OUT, ADD_ADDRESS and REMOVE_ADDRESS are PROTOCOL_VIOLATIONs, even with multipath in use', () => {
    for (const frame of [MP.reachOut(1), MP.addAddress(0), MP.removeAddress(0)]) {
      const { arena, peer, conn } = victim();
      arena.send(peer, [frame]);
      expectClosedWith(arena, conn, peer, E.PROTOCOL_VIOLATION);
    }
  });
});

describe('multipath: paths above 0', () => {
  const x = Uint8Array.of(1, 2, 3, 4, 5, 6, 7, 8);

  /** A victim whose raw peer gave the server a connection ID for path 1 and knows the server's. */
  function withPath1() {
    const v = victim();
    const serverCid = v.peer.serverCidFor(1);
    expect(serverCid, 'the server issued connection IDs for path 1 up front (§3.2)').toBeDefined();
    v.arena.send(v.peer, [v.peer.issuePathCid(1, 0, new Uint8Array(8).fill(0x71))]);
    v.arena.alias('203.0.113.9:4000', v.peer);
    return { ...v, serverCid: serverCid! };
  }

  it('the server issues connection IDs for every allowed path id (1..7) as PATH_NEW_CONNECTION_ID', () => {
    const { peer } = victim();
    const ids = new Set(peer.serverCids.filter((c) => c.pathId > 0).map((c) => c.pathId));
    expect([...ids].sort()).toEqual([1, 2, 3, 4, 5, 6, 7]);
  });

  it('a path the peer opens from a new address: challenged there in 1200-byte datagrams within 3× what it sent, answered, then validated', () => {
    const { arena, peer, conn, serverCid } = withPath1();
    const from = '203.0.113.9:4000';
    const opening = peer.packet('app', [F.pathChallenge(x)], { dcid: serverCid, pathId: 1, padTo: 1200 });
    arena.deliver(from, opening);
    arena.pump();
    const toNew = arena.sent.filter((t) => t.path.key === from);
    expect(toNew.length).toBeGreaterThan(0);
    for (const t of toNew) expect(t.data.length).toBe(1200);
    expect(arena.bytesTo(from)).toBeLessThanOrEqual(3 * arena.bytesFrom(from));
    expect(peer.frames.some((f) => f.frame.type === 'path_response' && f.frame.data.every((b, i) => b === x[i]))).toBe(true);
    const challenge = peer.frames.filter((f) => f.frame.type === 'path_challenge').at(-1)?.frame as { data: Uint8Array } | undefined;
    expect(challenge).toBeDefined();
    expect(conn.paths().find((p) => p.id === 1)).toMatchObject({ validated: false, addr: { key: from } });
    arena.deliver(from, peer.packet('app', [F.pathResponse(challenge!.data)], { dcid: serverCid, pathId: 1, padTo: 1200 }));
    arena.pump();
    expect(conn.paths().find((p) => p.id === 1)).toMatchObject({ validated: true });
    expectAlive(arena, conn);
  });

  it('a datagram to a path-1 connection ID that does not authenticate (spoofed) creates no path and draws nothing', () => {
    const { arena, conn, serverCid } = withPath1();
    const junk = new Uint8Array(1200);
    junk[0] = 0x43;
    junk.set(serverCid, 1);
    const before = conn.paths().length;
    for (let i = 0; i < 50; i++) arena.deliver('198.51.100.66:9', junk);
    arena.pump();
    expect(conn.paths().length).toBe(before);
    expect(arena.bytesTo('198.51.100.66:9')).toBe(0);
    expectAlive(arena, conn);
  });

  it('PATH_ABANDON of path ids we never heard on (probes lost in an outage): each closes its id and allows one more, once; nothing else', () => {
    const { arena, peer, conn } = withPath1();
    const maxes = () => peer.frames.filter((f) => f.frame.type === 'max_path_id').map((f) => (f.frame as { max: number }).max);
    for (const id of [2, 3, 3, 2, 4]) arena.send(peer, [MP.pathAbandon(id, 0x3e)]);
    arena.advance(100);
    // Three distinct ids abandoned: the limit went 7 → 10, and not beyond (repeats change nothing).
    expect(Math.max(...maxes())).toBe(10);
    // None of them reopens: a packet to path 2 now is dropped.
    const cid2 = peer.serverCids.find((c) => c.pathId === 2);
    expect(cid2).toBeDefined();
    arena.deliver('203.0.113.9:4002', peer.packet('app', [F.ping()], { dcid: cid2!.cid, pathId: 2, padTo: 1200 }));
    arena.pump();
    expect(conn.paths().some((p) => p.id === 2)).toBe(false);
    // Path 0 was never abandoned and stays: a PATH_ABANDON naming an unseen id never ends the connection.
    expectAlive(arena, conn);
  });

  it('PATH_ABANDON of a path: answered with PATH_ABANDON, and after its grace one more path id is allowed (MAX_PATH_ID 8)', () => {
    const { arena, peer, conn, serverCid } = withPath1();
    const from = '203.0.113.9:4000';
    arena.deliver(from, peer.packet('app', [F.ping()], { dcid: serverCid, pathId: 1, padTo: 1200 }));
    arena.pump();
    expect(conn.paths().some((p) => p.id === 1)).toBe(true);
    arena.send(peer, [MP.pathAbandon(1, 0x3e)]);
    expect(peer.frames.some((f) => f.frame.type === 'path_abandon' && f.frame.pathId === 1)).toBe(true);
    // Acknowledge everything so the abandon is not resent, then let the grace period pass.
    for (let i = 0; i < 5; i++) {
      const ack = peer.ackFrame('app');
      if (ack) arena.send(peer, [ack]);
      arena.advance(1_000);
    }
    expect(peer.frames.some((f) => f.frame.type === 'max_path_id' && f.frame.max === 8)).toBe(true);
    // Connection IDs for path 8 only once the peer allows it too (ids up to the lower maximum, §3.2).
    expect(new Set(peer.serverCids.filter((c) => c.pathId > 0).map((c) => c.pathId))).not.toContain(8);
    arena.send(peer, [MP.maxPathId(8)]);
    expect(new Set(peer.serverCids.filter((c) => c.pathId > 0).map((c) => c.pathId))).toContain(8);
    expect(conn.paths().some((p) => p.id === 1)).toBe(false);
    // The abandoned id is closed for good: packets to it are dropped, nothing reopens.
    arena.deliver(from, peer.packet('app', [F.ping()], { dcid: serverCid, pathId: 1, padTo: 1200 }));
    arena.pump();
    expect(conn.paths().some((p) => p.id === 1)).toBe(false);
    expectAlive(arena, conn);
  });
});
