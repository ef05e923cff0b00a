/**
 * Hostile connection-ID, path and stateless-reset input (reliability.md §5.D, §5.A.12,
 * §5.C.11): NEW_CONNECTION_ID / RETIRE_CONNECTION_ID abuse, PATH_CHALLENGE floods, spoofed
 * migrations (anti-amplification on new paths, RFC 9000 §8, §9), and stateless resets
 * (RFC 9000 §10.3).
 */
import { describe, expect, it } from 'vitest';
import { SecretKey } from '../../src/identity/index.ts';
import { TransportErrorCode as E } from '../../src/transport/quic/errors.ts';
import { decodeTransportParameters } from '../../src/transport/quic/wire/transport-params.ts';
import { SimNetwork } from '../sim/harness.ts';
import { testSeed } from '../helpers/seed.ts';
import { Arena, expectAlive, expectClosedWith, expectClosedWithOneOf } from './arena.ts';
import { F, cat, type RawPeer } from './raw-peer.ts';

const rand = (n: number) => crypto.getRandomValues(new Uint8Array(n));

function victim() {
  const arena = new Arena();
  const { peer, conn } = arena.handshake();
  return { arena, peer, conn };
}

/** The server's active_connection_id_limit (how many of our CIDs it will hold). */
function serverCidLimit(peer: RawPeer): number {
  return decodeTransportParameters(peer.tls.peerTransportParameters!, 'server').activeConnectionIdLimit;
}

describe('§5.D.1 NEW_CONNECTION_ID', () => {
  it('more connection IDs than active_connection_id_limit → CONNECTION_ID_LIMIT_ERROR', () => {
    const { arena, peer, conn } = victim();
    const limit = serverCidLimit(peer);
    // Sequence 0 is our handshake SCID; sequences 1..limit make limit + 1 active IDs.
    arena.send(peer, Array.from({ length: limit }, (_, i) => F.newConnectionId(i + 1, 0, rand(8), rand(16))));
    expectClosedWith(arena, conn, peer, E.CONNECTION_ID_LIMIT_ERROR, 0x18);
  });

  it('exactly active_connection_id_limit connection IDs are accepted', () => {
    const { arena, peer, conn } = victim();
    const limit = serverCidLimit(peer);
    arena.send(peer, Array.from({ length: limit - 1 }, (_, i) => F.newConnectionId(i + 1, 0, rand(8), rand(16))));
    expectAlive(arena, conn);
  });

  it('NEW_CONNECTION_ID with a 0-byte connection ID → FRAME_ENCODING_ERROR', () => {
    const { arena, peer, conn } = victim();
    arena.send(peer, [F.newConnectionId(1, 0, new Uint8Array(0), rand(16))]);
    expectClosedWith(arena, conn, peer, E.FRAME_ENCODING_ERROR, 0x18);
  });

  it('NEW_CONNECTION_ID with a 21-byte connection ID → FRAME_ENCODING_ERROR', () => {
    const { arena, peer, conn } = victim();
    arena.send(peer, [F.newConnectionId(1, 0, rand(21), rand(16))]);
    expectClosedWith(arena, conn, peer, E.FRAME_ENCODING_ERROR, 0x18);
  });

  it('the same sequence number with a different connection ID → PROTOCOL_VIOLATION', () => {
    const { arena, peer, conn } = victim();
    arena.send(peer, [F.newConnectionId(1, 0, rand(8), rand(16))]);
    arena.send(peer, [F.newConnectionId(1, 0, rand(8), rand(16))]);
    expectClosedWith(arena, conn, peer, E.PROTOCOL_VIOLATION, 0x18);
  });

  it('the same sequence number with the same connection ID (a retransmission) is accepted', () => {
    const { arena, peer, conn } = victim();
    const frame = F.newConnectionId(1, 0, rand(8), rand(16));
    arena.send(peer, [frame]);
    arena.send(peer, [frame]);
    expectAlive(arena, conn);
  });

  it('retire_prior_to greater than the sequence number → FRAME_ENCODING_ERROR', () => {
    const { arena, peer, conn } = victim();
    arena.send(peer, [F.newConnectionId(1, 2, rand(8), rand(16))]);
    expectClosedWith(arena, conn, peer, E.FRAME_ENCODING_ERROR, 0x18);
  });

  it('1,000 NEW_CONNECTION_IDs with a rising retire_prior_to (CVE-2024-22189) → CONNECTION_ID_LIMIT_ERROR, not an unbounded retire queue', () => {
    const { arena, peer, conn } = victim();
    // The attacker never lets the victim send (no pump between packets), so retirements pile up.
    for (let seq = 1; seq <= 1000 && !conn.closeError; seq += 50) {
      arena.deliver('attacker', peer.oneRtt(...Array.from({ length: 50 }, (_, i) => F.newConnectionId(seq + i, seq + i, rand(8), rand(16)))));
    }
    arena.pump();
    expectClosedWith(arena, conn, peer, E.CONNECTION_ID_LIMIT_ERROR);
  });
});

describe('§5.D.2 RETIRE_CONNECTION_ID', () => {
  it('RETIRE_CONNECTION_ID for a sequence number never issued → PROTOCOL_VIOLATION', () => {
    const { arena, peer, conn } = victim();
    arena.send(peer, [F.retireConnectionId(100)]);
    expectClosedWith(arena, conn, peer, E.PROTOCOL_VIOLATION, 0x19);
  });

  it('RETIRE_CONNECTION_ID of the connection ID carrying it: PROTOCOL_VIOLATION, or the ID stops routing and another one works', () => {
    const { arena, peer, conn } = victim();
    const carrying = peer.serverCid!;
    arena.send(peer, [F.retireConnectionId(0)]);
    if (conn.closeError) {
      expectClosedWith(arena, conn, peer, E.PROTOCOL_VIOLATION, 0x19);
      return;
    }
    expectAlive(arena, conn);
    const other = peer.serverCids.find((c) => c.seq !== 0)!;
    const before = conn.stats().packetsReceived;
    arena.deliver('attacker', peer.packet('app', [F.ping()], { dcid: carrying }));
    expect(conn.stats().packetsReceived, 'a packet to the retired ID reached the connection').toBe(before);
    arena.deliver('attacker', peer.packet('app', [F.ping()], { dcid: other.cid }));
    expect(conn.stats().packetsReceived).toBe(before + 1);
    expectAlive(arena, conn);
  });
});

describe('§5.C.11 / §5.D.3 paths', () => {
  it('5,000 PATH_CHALLENGEs on the current path (CVE-2023-49295): a bounded number of PATH_RESPONSEs, the connection survives', () => {
    const { arena, peer, conn } = victim();
    for (let i = 0; i < 50; i++) arena.deliver('attacker', peer.oneRtt(...Array.from({ length: 100 }, () => F.pathChallenge(rand(8)))));
    arena.pump();
    const responses = peer.framesOf('path_response').length;
    expect(responses).toBeGreaterThan(0);
    expect(responses).toBeLessThanOrEqual(16);
    expectAlive(arena, conn);
  });

  it('a PATH_CHALLENGE from a new (spoofed) address: the answer to that address stays within 3× what came from it', () => {
    const { arena, peer, conn } = victim();
    arena.alias('spoofed', peer);
    arena.deliver('spoofed', peer.oneRtt(F.pathChallenge(rand(8))));
    arena.pump();
    arena.advance(2_000);
    expect(arena.bytesTo('spoofed'), `sent to an unvalidated address after receiving ${arena.bytesFrom('spoofed')} bytes from it`).toBeLessThanOrEqual(3 * arena.bytesFrom('spoofed'));
    expectAlive(arena, conn);
  });

  it('PATH_CHALLENGEs from 100 new addresses: the victim keeps state for (and answers) only a few of them', () => {
    const { arena, peer, conn } = victim();
    for (let i = 0; i < 100; i++) arena.deliver(`spoofed-${i}`, peer.packet('app', [F.pathChallenge(rand(8))], { padTo: 1200 }));
    arena.pump();
    const answered = new Set(arena.sent.filter((t) => t.path.key.startsWith('spoofed-')).map((t) => t.path.key));
    expect(answered.size).toBeLessThanOrEqual(8);
    expectAlive(arena, conn);
  });

  it('a packet from a new address before the handshake completes: the server stays on its first path', () => {
    const arena = new Arena();
    const peer = arena.peer('attacker');
    arena.deliver('attacker', peer.initialDatagram());
    const conn = arena.accepted[0]!;
    arena.pump();
    const flight = peer.takeOutgoing();
    expect(flight.length).toBeGreaterThan(0);
    for (const d of flight) arena.deliver('moved', d);
    arena.pump();
    expect(conn.state).toBe('handshaking');
    expect(conn.path.key).toBe('attacker');
    expect(arena.bytesTo('moved')).toBe(0);
    // The same flight from the first path completes the handshake there.
    for (const d of flight) arena.deliver('attacker', d);
    arena.settle();
    expect(conn.state).toBe('established');
    expect(conn.path.key).toBe('attacker');
    expect(arena.internalErrors).toBe(0);
  });

  it('a spoofed migration after the handshake: the victim validates the new address and sends it at most 3× what it received', () => {
    const { arena, peer, conn } = victim();
    // The victim has plenty to send (a stream the attacker never acknowledges).
    const id = conn.openStream('uni')!;
    conn.writeStream(id, new Uint8Array(200_000));
    arena.pump();
    arena.alias('victim-of-spoofing', peer);
    arena.deliver('victim-of-spoofing', peer.packet('app', [F.ping()], { padTo: 1200 }));
    arena.pump();
    arena.advance(1_000);
    expect(conn.path.key === 'victim-of-spoofing' || conn.path.key === 'attacker').toBe(true);
    expect(peer.framesOf('path_challenge').length, 'a PATH_CHALLENGE to validate the new address').toBeGreaterThan(0);
    expect(arena.bytesTo('victim-of-spoofing'), `sent to an unvalidated address after receiving ${arena.bytesFrom('victim-of-spoofing')} bytes from it`).toBeLessThanOrEqual(
      3 * arena.bytesFrom('victim-of-spoofing'),
    );
    expect(arena.internalErrors).toBe(0);
  });

  it('a migration whose PATH_CHALLENGE is answered: the victim moves to the new address', () => {
    const { arena, peer, conn } = victim();
    arena.alias('moved', peer);
    arena.deliver('moved', peer.packet('app', [F.ping()], { padTo: 1200 }));
    arena.pump();
    const challenge = peer.framesOf('path_challenge').at(-1);
    expect(challenge).toBeDefined();
    arena.deliver('moved', peer.packet('app', [F.pathResponse(challenge!.data)], { padTo: 1200 }));
    arena.pump();
    expect(conn.path.key).toBe('moved');
    const events: string[] = [];
    for (let e = conn.pollEvent(); e; e = conn.pollEvent()) events.push(e.type);
    expect(events).toContain('path-validated');
    expectAlive(arena, conn);
  });

  it('a migration whose validation fails: the victim reverts to the last validated address (RFC 9000 §9.3.2)', () => {
    const { arena, peer, conn } = victim();
    arena.deliver('nobody', peer.packet('app', [F.ping()], { padTo: 1200 }));
    arena.pump();
    arena.advance(10_000);
    expect(conn.path.key).toBe('attacker');
    expectAlive(arena, conn);
  });
});

describe('§5.A.12 stateless reset', () => {
  /** Make the victim use a connection ID we issued with `token` (retiring the handshake one). */
  function useNewCid(arena: Arena, peer: RawPeer, token: Uint8Array): void {
    arena.send(peer, [F.newConnectionId(1, 1, rand(8), token)]);
  }

  it('a stateless reset (routable DCID, our token last) → the victim drains and sends nothing more', () => {
    const { arena, peer, conn } = victim();
    const token = rand(16);
    useNewCid(arena, peer, token);
    expectAlive(arena, conn);
    arena.deliver('attacker', cat(0x40 | (rand(1)[0]! & 0x3f), peer.serverCid!, rand(20), token));
    expect(conn.closeError?.kind).toBe('stateless-reset');
    expect(conn.state).toBe('draining');
    arena.deliver('attacker', peer.oneRtt(F.ping()));
    expect(arena.pump()).toEqual([]);
    arena.advance(5_000);
    expect(conn.state).toBe('closed');
    expect(arena.server.connections.length).toBe(0);
    expect(arena.internalErrors).toBe(0);
  });

  it('a stateless reset as real peers send it (unpredictable DCID bytes, RFC 9000 §10.3) → the victim drains', () => {
    const { arena, peer, conn } = victim();
    const token = rand(16);
    useNewCid(arena, peer, token);
    const resetsBefore = arena.server.stats.statelessResets;
    arena.deliver('attacker', cat(0x40 | (rand(1)[0]! & 0x3f), rand(28), token));
    arena.pump();
    expect(conn.closeError?.kind, 'RFC 9000 §10.3.1: the token must be checked when the datagram matches no connection').toBe('stateless-reset');
    expect(arena.server.stats.statelessResets, 'no stateless reset sent in reply to a stateless reset').toBe(resetsBefore);
  });

  it('a datagram ending in a token for a connection ID the victim does not use is not a stateless reset (RFC 9000 §10.3.1)', () => {
    const { arena, peer, conn } = victim();
    const token = rand(16);
    arena.send(peer, [F.newConnectionId(1, 0, rand(8), token)]);
    arena.deliver('attacker', cat(0x40, peer.serverCid!, rand(20), token));
    arena.pump();
    expectAlive(arena, conn);
  });

  it('a datagram ending in a wrong token is dropped, the connection untouched', () => {
    const { arena, peer, conn } = victim();
    useNewCid(arena, peer, rand(16));
    arena.deliver('attacker', cat(0x40, peer.serverCid!, rand(20), rand(16)));
    arena.pump();
    expectAlive(arena, conn);
  });

  it('after a server restart (same reset key), its stateless reset makes our client drain', () => {
    const net = new SimNetwork(testSeed('hostile restart reset'));
    const alpn = new TextEncoder().encode('restart/1');
    const serverSecret = SecretKey.fromBytes(net.rng.bytes(32));
    const serverOptions = { secretKey: serverSecret.toBytes(), alpns: [alpn], statelessResetKey: net.rng.bytes(32) };
    const server = net.addNode('server', serverOptions);
    const client = net.addNode('client', { secretKey: net.rng.bytes(32) });
    const conn = client.endpoint.connect(net.now, server.addr, { serverKey: serverSecret.public().toBytes(), alpn });
    net.runUntil(() => conn.handshakeConfirmed, { what: 'handshake confirmed' });
    // The server loses all state: a fresh endpoint with the same reset key on the same address.
    const restarted = net.addNode('server', serverOptions);
    const id = conn.openStream('bi')!;
    conn.writeStream(id, new Uint8Array(100));
    try {
      net.runUntil(() => conn.state !== 'established', { maxTime: 3_000_000, what: 'the client leaves established' });
    } catch {
      // Reported below.
    }
    expect(restarted.endpoint.stats.statelessResets, 'the restarted server sent a stateless reset').toBeGreaterThan(0);
    expect(conn.closeError?.kind, `client state ${conn.state}, ${conn.closeError?.message ?? 'no close'}`).toBe('stateless-reset');
    expect(conn.internalErrors).toBe(0);
  });
});

describe('§5.D misc', () => {
  it('RETIRE_CONNECTION_ID repeated, and for the carrying ID, in one packet: a clean outcome, never an internal error', () => {
    const { arena, peer, conn } = victim();
    arena.send(peer, [F.retireConnectionId(1), F.retireConnectionId(1), F.retireConnectionId(0)]);
    if (conn.closeError) expectClosedWithOneOf(arena, conn, peer, [E.PROTOCOL_VIOLATION]);
    else expectAlive(arena, conn);
  });
});
