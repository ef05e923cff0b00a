/**
 * No packet is processed twice (issue 11 item 5, RFC 9000 §12.3): a captured 1-RTT packet
 * replayed later — after the victim's ACK ranges moved on, or after the peer acknowledged the
 * victim's ACKs so it forgot the old ones — is dropped, never delivered again.
 */
import { describe, expect, it } from 'vitest';
import { Arena, expectAlive } from './arena.ts';
import { F } from './raw-peer.ts';

const payload = new TextEncoder().encode('pay me once');

function victim() {
  const arena = new Arena();
  const { peer, conn } = arena.handshake();
  const captured = peer.oneRtt(F.datagram(payload));
  arena.deliver('attacker', captured.slice());
  arena.pump();
  expect(conn.readDatagram()).toEqual(payload);
  return { arena, peer, conn, captured };
}

function datagramsDelivered(conn: ReturnType<typeof victim>['conn']): number {
  let n = 0;
  while (conn.readDatagram() !== undefined) n++;
  return n;
}

describe('issue 11 item 5: a replayed packet is never processed again', () => {
  it('replayed after 200 later packets with gaps (more ranges than the victim acknowledges)', () => {
    const { arena, peer, conn, captured } = victim();
    const base = peer.spaces.app.nextPn;
    for (let i = 0; i < 200; i++) {
      arena.deliver('attacker', peer.packet('app', [F.ping()], { pn: base + 2 * i + 1 }));
      if (i % 20 === 19) arena.pump();
    }
    arena.pump();
    const received = conn.stats().packetsReceived;
    arena.deliver('attacker', captured.slice());
    arena.pump();
    expect(datagramsDelivered(conn), 'datagrams delivered by the replay').toBe(0);
    expect(conn.stats().packetsReceived).toBe(received);
    expectAlive(arena, conn);
  });

  it('replayed after the peer acknowledged the victim’s ACKs (the victim forgets acknowledged ranges)', () => {
    const { arena, peer, conn, captured } = victim();
    for (let i = 0; i < 300; i++) {
      arena.deliver('attacker', peer.oneRtt(F.ping()));
      if (i % 10 === 9) arena.pump();
    }
    arena.pump();
    // Acknowledge everything the victim sent, its ACK frames included.
    arena.send(peer, [peer.ackFrame('app')!]);
    arena.advance(50);
    const received = conn.stats().packetsReceived;
    for (let i = 0; i < 3; i++) arena.deliver('attacker', captured.slice());
    arena.pump();
    expect(datagramsDelivered(conn), 'datagrams delivered by the replay').toBe(0);
    expect(conn.stats().packetsReceived).toBe(received);
    expectAlive(arena, conn);
  });

  it('packets that arrive late but were never received are still processed', () => {
    const { arena, peer, conn } = victim();
    const base = peer.spaces.app.nextPn;
    const late = peer.packet('app', [F.datagram(payload)], { pn: base });
    for (let i = 1; i <= 10; i++) arena.deliver('attacker', peer.packet('app', [F.ping()], { pn: base + i }));
    arena.deliver('attacker', late);
    arena.pump();
    expect(datagramsDelivered(conn)).toBe(1);
    expectAlive(arena, conn);
  });
});
