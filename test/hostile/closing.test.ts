/**
 * The closing state obeys the anti-amplification limit and rate-limits its answers (issue 11
 * item 6; RFC 9000 §8.1, §10.2.1). A connection that closed during the handshake answers
 * datagrams routed to it with CONNECTION_CLOSE on its path: tiny triggers from anywhere must
 * not make it send an unvalidated address more than three times what that address sent.
 */
import { describe, expect, it } from 'vitest';
import { ExtensionType } from '../../src/transport/quic/tls/constants.ts';
import { Arena } from './arena.ts';
import { F, cat } from './raw-peer.ts';

describe('issue 11 item 6: the closing state obeys the 3× limit', () => {
  it('1,000 nine-byte triggers from another address: bytes sent to the unvalidated victim stay ≤ 3× what it sent', () => {
    const arena = new Arena();
    // A spoofed Initial "from" the victim that makes the server close at once (no ALPN).
    const peer = arena.peer('victim', {
      editClientHello: (ch) => ({ ...ch, extensions: ch.extensions.filter((e) => e.type !== ExtensionType.application_layer_protocol_negotiation) }),
    });
    arena.deliver('victim', peer.initialDatagram());
    arena.pump();
    const conn = arena.conn('victim')!;
    expect(conn.state).toBe('closing');
    // The attacker knows the DCID it chose for the spoofed Initial: a short header routes on it.
    const trigger = cat(0x40, peer.dcid);
    expect(trigger.length).toBe(9);
    for (let i = 0; i < 1000; i++) {
      arena.deliver('attacker', trigger.slice());
      arena.pump();
    }
    expect(arena.bytesTo('victim'), `sent to the victim, which sent ${arena.bytesFrom('victim')} bytes`).toBeLessThanOrEqual(3 * arena.bytesFrom('victim'));
    expect(arena.bytesTo('attacker')).toBe(0);
    expect(arena.internalErrors).toBe(0);
  });

  it('a spoofed handshake the application refuses after the server flight spent the budget: the CONNECTION_CLOSE stays within 3×', () => {
    const arena = new Arena();
    const peer = arena.peer('victim', { autoFinish: false });
    arena.deliver('victim', peer.initialDatagram());
    arena.pump();
    const conn = arena.conn('victim')!;
    // Nobody answers: the server resends its flight until the budget is spent.
    arena.advance(3_000);
    expect(conn.state).toBe('handshaking');
    expect(arena.bytesTo('victim')).toBeGreaterThan(3 * arena.bytesFrom('victim') - 1200);
    // The application turns the attempt away (Incoming.refuse); then triggers keep coming.
    conn.close(arena.now, 2, 'refused');
    arena.pump();
    for (let i = 0; i < 100; i++) {
      arena.deliver('attacker', cat(0x40, peer.dcid));
      arena.pump();
    }
    expect(arena.bytesTo('victim'), `sent to the victim, which sent ${arena.bytesFrom('victim')} bytes`).toBeLessThanOrEqual(3 * arena.bytesFrom('victim'));
    expect(arena.internalErrors).toBe(0);
  });

  it('a closing connection answers a flood of datagrams with a logarithmic number of CONNECTION_CLOSEs', () => {
    const arena = new Arena();
    const { peer, conn } = arena.handshake();
    conn.close(arena.now, 7, 'bye');
    arena.pump();
    expect(peer.closes.length).toBe(1);
    // The peer did not get it (say) and keeps sending: it hears the close again, but not 1,000 times.
    for (let i = 0; i < 1000; i++) {
      arena.deliver('attacker', peer.oneRtt(F.ping()));
      arena.pump();
    }
    expect(peer.closes.length).toBeGreaterThan(1);
    expect(peer.closes.length).toBeLessThanOrEqual(1 + Math.ceil(Math.log2(1000)) + 1);
    expect(peer.closes.every((c) => c.app && c.code === 7)).toBe(true);
  });
});
