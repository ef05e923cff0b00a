/**
 * Handshake slots cannot be starved (issue 11 item 3). 256 spoofed ClientHellos used to fill
 * every handshake slot for the 10 s handshake timeout, turning every honest client away. The
 * server now answers Initials with a Retry once many handshakes are in progress (RFC 9000
 * §8.1.2), caps handshakes per source address, and exposes the policy (`retry`) in its options
 * and in `Endpoint.bind`.
 */
import { describe, expect, it } from 'vitest';
import { Endpoint } from '../../src/endpoint/index.ts';
import { TEST_ALPN } from './raw-peer.ts';
import { Arena } from './arena.ts';

/** `count` genuine ClientHellos that never go further, from `from(i)`; a Retry is followed when `followRetry`. */
function flood(arena: Arena, count: number, from: (i: number) => string, followRetry = false): void {
  for (let i = 0; i < count; i++) {
    const name = from(i);
    const peer = arena.peer(`${name}#${i}`, { autoFinish: false });
    arena.alias(name, peer);
    arena.deliver(name, peer.initialDatagram());
    if (followRetry) {
      arena.pump();
      if (peer.retries.length > 0) {
        peer.followRetry();
        arena.deliver(name, peer.initialDatagram());
      }
    }
  }
  arena.pump();
}

const handshaking = (arena: Arena) => arena.server.connections.filter((c) => c.state === 'handshaking').length;

describe('issue 11 item 3: handshake slots cannot be starved', () => {
  it('300 spoofed ClientHellos from 300 addresses, then an honest client connects (default policy)', () => {
    const arena = new Arena();
    flood(arena, 300, (i) => `spoofed-${i}`);
    // Spoofed Initials hold at most the Retry threshold; the rest got a (smaller) Retry.
    expect(handshaking(arena)).toBeLessThanOrEqual(64);
    expect(arena.server.stats.retries).toBeGreaterThan(0);
    for (let i = 0; i < 300; i++) expect(arena.bytesTo(`spoofed-${i}`)).toBeLessThanOrEqual(3 * arena.bytesFrom(`spoofed-${i}`));
    // The honest client proves its address with the Retry and gets a slot.
    const { conn } = arena.handshake('honest');
    expect(conn.state).toBe('established');
    expect(arena.internalErrors).toBe(0);
  });

  it('a flood from one address that follows every Retry holds a bounded number of slots; others connect', () => {
    const arena = new Arena();
    flood(arena, 300, () => 'one-source', true);
    const fromSource = arena.server.connections.filter((c) => c.path.key === 'one-source').length;
    expect(fromSource).toBeGreaterThan(0);
    expect(fromSource).toBeLessThanOrEqual(32);
    expect(arena.server.stats.dropped['too-many-handshakes-from-source']).toBeGreaterThan(0);
    expect(arena.handshake('honest').conn.state).toBe('established');
  });

  it("retry 'never': the per-source cap still keeps one address from taking every slot", () => {
    const arena = new Arena({ retry: 'never' });
    flood(arena, 300, () => 'one-source');
    expect(arena.server.stats.retries).toBe(0);
    expect(handshaking(arena)).toBeLessThanOrEqual(16);
    expect(arena.handshake('honest').conn.state).toBe('established');
  });

  it("retry 'always': even an idle server asks the first client to retry; a custom threshold is honoured", () => {
    const always = new Arena({ retry: 'always' });
    always.handshake('first');
    expect(always.server.stats.retries).toBe(1);
    const low = new Arena({ retry: { mode: 'auto', threshold: 2 } });
    flood(low, 5, (i) => `client-${i}`);
    expect(handshaking(low)).toBe(2);
    expect(low.server.stats.retries).toBe(3);
  });

  it('Endpoint.bind passes the retry policy through (real sockets)', async () => {
    const server = await Endpoint.bind({ alpns: [TEST_ALPN], bindAddr: '127.0.0.1:0', retry: 'always' });
    const client = await Endpoint.bind({ bindAddr: '127.0.0.1:0' });
    try {
      const accepted = (async () => {
        for await (const incoming of server.accept()) return incoming.accept();
        return undefined;
      })();
      const conn = await client.connect(server.addr(), TEST_ALPN, { signal: AbortSignal.timeout(10_000) });
      await accepted;
      expect(server.stats().retries).toBe(1);
      conn.close(0, 'done');
    } finally {
      await client.close();
      await server.close();
    }
  });
});
