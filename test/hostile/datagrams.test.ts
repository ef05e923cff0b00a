/**
 * Hostile datagrams and packet headers at a server endpoint, mostly before any connection
 * exists (reliability.md §5.A): each one is dropped and counted, answered by a rate-limited
 * Version Negotiation or stateless reset no larger than itself, or starts a connection only
 * when it is a genuine client Initial. Nothing throws; no state is kept for garbage.
 */
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { nodeCryptoProvider } from '../../src/transport/crypto/index.ts';
import { QuicEndpoint } from '../../src/transport/quic/endpoint.ts';
import { MAX_HANDSHAKING } from '../../src/transport/quic/limits.ts';
import { retryIntegrityTag } from '../../src/transport/quic/protection/retry.ts';
import { QUIC_V1, parseHeader, type LongHeader } from '../../src/transport/quic/wire/header.ts';
import { fcParams } from '../helpers/seed.ts';
import { Arena, path } from './arena.ts';
import { F, TEST_ALPN, cat, varint, type V } from './raw-peer.ts';

const rand = (n: number) => crypto.getRandomValues(new Uint8Array(n));
const u32 = (v: number) => Uint8Array.of(v >>> 24, (v >>> 16) & 0xff, (v >>> 8) & 0xff, v & 0xff);

/** The datagram was dropped: counted, nothing sent, no connection, no internal error. */
function expectDropped(arena: Arena, dropsBefore: number, count = 1): void {
  expect(arena.drops - dropsBefore, `drop counters ${JSON.stringify(arena.server.stats.dropped)}`).toBe(count);
  expect(arena.pump()).toEqual([]);
  expect(arena.server.connections.length).toBe(0);
  expect(arena.internalErrors).toBe(0);
}

/** Complete a raw-peer handshake; the error message if it fails. */
function tryHandshake(arena: Arena, name: string): string | undefined {
  try {
    arena.handshake(name);
    return undefined;
  } catch (err) {
    return (err as Error).message;
  }
}

/** A long header with any field values, padded with random bytes to `size`. */
function longHeader(o: { first?: number; version?: number; dcid?: Uint8Array; dcidLen?: number; scid?: Uint8Array; scidLen?: number; token?: V; length?: V; size?: number } = {}): Uint8Array {
  const dcid = o.dcid ?? rand(8);
  const scid = o.scid ?? rand(8);
  const head = cat(o.first ?? 0xc3, u32(o.version ?? QUIC_V1), o.dcidLen ?? dcid.length, dcid, o.scidLen ?? scid.length, scid, varint(o.token ?? 0), varint(o.length ?? 1100));
  return cat(head, rand(Math.max(0, (o.size ?? 1200) - head.length)));
}

describe('§5.A.1 tiny and empty datagrams', () => {
  it('an empty datagram is dropped', () => {
    const arena = new Arena();
    arena.deliver('x', new Uint8Array(0));
    expectDropped(arena, 0);
  });

  it('each of the 256 one-byte datagrams is dropped', () => {
    const arena = new Arena();
    for (let b = 0; b < 256; b++) arena.deliver(`x${b}`, Uint8Array.of(b));
    expectDropped(arena, 0, 256);
  });

  it('short-header datagrams of 2–22 bytes get no stateless reset (too small to hide one)', () => {
    const arena = new Arena();
    for (let n = 2; n <= 22; n++) arena.deliver(`x${n}`, cat(0x40 | (rand(1)[0]! & 0x3f), rand(n - 1)));
    expectDropped(arena, 0, 21);
    expect(arena.server.stats.statelessResets).toBe(0);
  });
});

describe('§5.A.5 malformed long headers', () => {
  // Field boundaries of a v1 Initial with 8-byte CIDs and no token.
  const cuts: [string, number][] = [
    ['after the first byte', 1],
    ['inside the version', 3],
    ['before the DCID length', 5],
    ['inside the DCID', 10],
    ['before the SCID length', 14],
    ['inside the SCID', 18],
    ['before the token length', 23],
    ['inside the Length', 25],
    ['inside the packet number', 28],
    ['inside the payload', 200],
  ];
  for (const [where, cut] of cuts) {
    it(`an Initial truncated ${where} is dropped`, () => {
      const arena = new Arena();
      const peer = arena.peer();
      arena.deliver('x', peer.initialDatagram().subarray(0, cut));
      expectDropped(arena, 0);
    });
  }

  it('a v1 long header with a 21-byte DCID is dropped', () => {
    const arena = new Arena();
    arena.deliver('x', longHeader({ dcid: rand(21) }));
    expectDropped(arena, 0);
  });

  it('a v1 long header with a 21-byte SCID is dropped', () => {
    const arena = new Arena();
    arena.deliver('x', longHeader({ scid: rand(21) }));
    expectDropped(arena, 0);
  });

  it('a DCID length byte of 255 pointing past the datagram is dropped', () => {
    const arena = new Arena();
    arena.deliver('x', longHeader({ dcidLen: 255, size: 200 }));
    expectDropped(arena, 0);
  });

  it('an Initial whose token length exceeds the datagram is dropped (quinn malformed_token_len)', () => {
    const arena = new Arena();
    arena.deliver('x', longHeader({ token: 2n ** 62n - 1n }));
    arena.deliver('y', longHeader({ token: 5000 }));
    expectDropped(arena, 0, 2);
  });

  it('a Length field larger than the rest of the datagram is dropped', () => {
    const arena = new Arena();
    arena.deliver('x', longHeader({ length: 5000 }));
    expectDropped(arena, 0);
  });

  it('a Length field shorter than a packet number plus the AEAD tag is dropped', () => {
    const arena = new Arena();
    arena.deliver('x', longHeader({ length: 5 }));
    expectDropped(arena, 0);
  });

  it('a long header with the fixed bit 0 is dropped', () => {
    const arena = new Arena();
    const peer = arena.peer();
    const d = peer.initialDatagram();
    d[0]! &= ~0x40;
    arena.deliver('x', d);
    expectDropped(arena, 0);
  });
});

describe('§5.A.2, §5.A.6 Initials that must not start a connection', () => {
  it('a genuine Initial in a 1,199-byte datagram is dropped (RFC 9000 §14.1)', () => {
    const arena = new Arena();
    const peer = arena.peer();
    const d = peer.initialDatagram({ size: 1199 });
    expect(d.length).toBe(1199);
    arena.deliver('attacker', d);
    expectDropped(arena, 0);
  });

  it('a genuine Initial with a 7-byte DCID is dropped (RFC 9000 §7.2)', () => {
    const arena = new Arena();
    const peer = arena.peer('attacker', { dcid: rand(7) });
    arena.deliver('attacker', peer.initialDatagram());
    expectDropped(arena, 0);
  });

  it('a genuine Initial with an empty DCID is dropped', () => {
    const arena = new Arena();
    const peer = arena.peer('attacker', { dcid: new Uint8Array(0) });
    arena.deliver('attacker', peer.initialDatagram());
    expectDropped(arena, 0);
  });

  it('an Initial that fails AEAD creates no connection state (§5.A.9)', () => {
    const arena = new Arena();
    const peer = arena.peer();
    arena.deliver('attacker', peer.initialDatagram({ packet: { corruptTag: true } }));
    expect(arena.server.connections.length, 'connections kept for an Initial that does not authenticate').toBe(0);
    expect(arena.pump()).toEqual([]);
    expect(arena.drops).toBe(1);
  });

  it('300 undecryptable Initials from spoofed addresses do not lock honest clients out', () => {
    const arena = new Arena();
    for (let i = 0; i < 300; i++) arena.deliver(`spoofed-${i}`, arena.peer(`spoofed-${i}`).initialDatagram({ packet: { corruptTag: true } }));
    arena.pump();
    expect(tryHandshake(arena, 'honest'), `live connections ${arena.server.connections.length}, drops ${JSON.stringify(arena.server.stats.dropped)}`).toBeUndefined();
    expect(arena.internalErrors).toBe(0);
  });

  it('a corrupted Initial for a handshake in progress is dropped; the handshake still completes', () => {
    const arena = new Arena();
    const peer = arena.peer('attacker', { autoFinish: false });
    arena.deliver('attacker', peer.initialDatagram());
    const conn = arena.accepted[0]!;
    arena.pump();
    const received = conn.stats().packetsReceived;
    arena.deliver('attacker', peer.packet('initial', [F.connectionClose(0x0a, 0)], { padTo: 1200, corruptTag: true }));
    expect(arena.pump()).toEqual([]);
    expect(conn.state).toBe('handshaking');
    expect(conn.stats().packetsReceived).toBe(received);
    // Finish the handshake by hand.
    const ack = peer.ackFrame('handshake')!;
    arena.deliver('attacker', peer.packet('handshake', [ack, ...peer.takeCrypto('handshake')]));
    arena.pump();
    expect(conn.state).toBe('established');
    expect(arena.internalErrors).toBe(0);
  });
});

describe('§5.A.3, §5.A.4 version negotiation', () => {
  it('an unsupported version in a ≥ 1,200-byte datagram → exactly one Version Negotiation, CIDs swapped, v1 listed', () => {
    const arena = new Arena();
    const dcid = rand(8);
    const scid = rand(5);
    arena.deliver('x', longHeader({ version: 0x0a0a0a0a, dcid, scid }));
    const out = arena.pump();
    expect(out.length).toBe(1);
    const vn = out[0]!.data;
    expect(out[0]!.path.key).toBe('x');
    expect(vn.length).toBeLessThanOrEqual(1200);
    expect(vn[0]! & 0x80).toBe(0x80);
    expect([...vn.subarray(1, 5)]).toEqual([0, 0, 0, 0]);
    expect(vn[5]).toBe(scid.length);
    expect([...vn.subarray(6, 6 + scid.length)]).toEqual([...scid]);
    expect(vn[6 + scid.length]).toBe(dcid.length);
    expect([...vn.subarray(7 + scid.length, 7 + scid.length + dcid.length)]).toEqual([...dcid]);
    const list = vn.subarray(7 + scid.length + dcid.length);
    const versions = Array.from({ length: list.length / 4 }, (_, i) => new DataView(list.buffer, list.byteOffset + 4 * i, 4).getUint32(0));
    expect(versions).toContain(QUIC_V1);
    expect(versions).not.toContain(0x0a0a0a0a);
    expect(arena.server.connections.length).toBe(0);
  });

  it('an unsupported version in a 1,199-byte datagram → no Version Negotiation', () => {
    const arena = new Arena();
    arena.deliver('x', longHeader({ version: 0x0a0a0a0a, size: 1199 }));
    expectDropped(arena, 0);
    expect(arena.server.stats.versionNegotiations).toBe(0);
  });

  it('Version Negotiation is rate-limited (200 triggers in 1 ms of virtual time)', () => {
    const arena = new Arena();
    for (let i = 0; i < 200; i++) arena.deliver(`x${i}`, longHeader({ version: 0xff00001d }));
    const first = arena.pump().length;
    expect(first).toBeGreaterThan(0);
    expect(first).toBeLessThanOrEqual(100);
    arena.advance(1_100);
    arena.deliver('later', longHeader({ version: 0xff00001d }));
    expect(arena.pump().length, 'one more allowed after a second').toBe(1);
  });

  it('a Version Negotiation packet sent to a server is dropped, never answered with one', () => {
    const arena = new Arena();
    arena.deliver('x', cat(0x80, u32(0), 8, rand(8), 8, rand(8), u32(0x0a0a0a0a), rand(1200 - 25)));
    expectDropped(arena, 0);
    expect(arena.server.stats.versionNegotiations).toBe(0);
  });
});

describe('§5.A.12 stateless resets sent by the endpoint', () => {
  it('a short header with an unknown DCID → a stateless reset: smaller than the trigger, the token of that DCID, looks like a short header', () => {
    const arena = new Arena();
    for (const size of [23, 30, 43, 44, 100, 1200]) {
      const dcid = rand(8);
      arena.deliver(`x${size}`, cat(0x40 | (rand(1)[0]! & 0x3f), dcid, rand(size - 9)));
      const out = arena.pump();
      expect(out.length).toBe(1);
      const reset = out[0]!.data;
      expect(reset.length).toBeLessThan(size);
      expect(reset.length).toBeGreaterThanOrEqual(21);
      expect(reset[0]! & 0xc0).toBe(0x40);
      expect([...reset.subarray(reset.length - 16)]).toEqual([...arena.server.resetToken(dcid)]);
    }
    expect(arena.server.connections.length).toBe(0);
  });

  it('stateless resets are rate-limited (500 triggers in 1 ms of virtual time)', () => {
    const arena = new Arena();
    for (let i = 0; i < 500; i++) arena.deliver(`x${i}`, cat(0x41, rand(99)));
    const sent = arena.pump().length;
    expect(sent).toBeGreaterThan(0);
    expect(sent).toBeLessThanOrEqual(100);
    expect(arena.internalErrors).toBe(0);
  });
});

describe('§5.A long-header packets that are not a client Initial', () => {
  it('a Retry sent to a server with an unknown DCID is dropped', () => {
    const arena = new Arena();
    arena.deliver('x', longHeader({ first: 0xf0, size: 100 }));
    expectDropped(arena, 0);
  });

  it('a Retry aimed at a live server connection is ignored', () => {
    const arena = new Arena();
    const { peer, conn } = arena.handshake();
    const before = conn.stats().packetsReceived;
    arena.deliver('attacker', longHeader({ first: 0xf0, dcid: peer.serverCid!, size: 100 }));
    arena.pump();
    expect(conn.state).toBe('established');
    expect(conn.stats().packetsReceived).toBe(before);
    expect(arena.internalErrors).toBe(0);
  });

  it('0-RTT and Handshake packets for unknown connections are dropped', () => {
    const arena = new Arena();
    arena.deliver('x', longHeader({ first: 0xd3 }));
    arena.deliver('y', longHeader({ first: 0xe3, length: 200, size: 300 }));
    expectDropped(arena, 0, 2);
  });
});

describe('§5.A.7 coalesced packets', () => {
  it('a genuine Initial followed by garbage: the Initial is processed, the garbage ignored', () => {
    const arena = new Arena();
    const peer = arena.peer();
    arena.deliver('attacker', cat(peer.initialDatagram({ size: 1100 }), rand(100)));
    expect(arena.accepted.length).toBe(1);
    arena.settle();
    expect(arena.accepted[0]!.state).toBe('established');
    expect(arena.internalErrors).toBe(0);
  });

  it('a coalesced packet with a different DCID is ignored (its CONNECTION_CLOSE has no effect, RFC 9000 §12.2)', () => {
    const arena = new Arena();
    const peer = arena.peer();
    const first = peer.initialDatagram({ size: 1000 });
    const second = peer.packet('initial', [F.connectionClose(0x0a, 0)], { dcid: rand(8), padTo: 200 });
    arena.deliver('attacker', cat(first, second));
    const conn = arena.accepted[0]!;
    arena.settle();
    expect({ state: conn.state, error: conn.closeError?.message }).toEqual({ state: 'established', error: undefined });
  });
});

describe('§5.A.4, §5.A.14 a client under forged Version Negotiation and Retry', () => {
  /** Our client endpoint dialling the arena's server; the test forges packets toward the client. */
  function clientVictim() {
    const arena = new Arena();
    const client = new QuicEndpoint({ provider: nodeCryptoProvider, secretKey: rand(32) });
    const conn = client.connect(arena.now, path('server'), { serverKey: arena.serverKey, alpn: TEST_ALPN });
    const first = client.pollTransmit(arena.now)!.data;
    const header = parseHeader(first, 0, 8) as LongHeader;
    const toClient = (d: Uint8Array) => client.handleDatagram(arena.now, path('server'), d);
    /** Deliver the client's first Initial and the server's first flight only. */
    const firstFlight = () => {
      arena.deliver('client', first);
      for (const t of arena.pump()) toClient(t.data);
    };
    const exchange = () => {
      for (let i = 0; i < 20; i++) {
        let moved = false;
        for (let t = client.pollTransmit(arena.now); t; t = client.pollTransmit(arena.now)) {
          arena.deliver('client', t.data);
          moved = true;
        }
        for (const t of arena.pump()) {
          toClient(t.data);
          moved = true;
        }
        if (!moved) return;
      }
    };
    const retry = (token: Uint8Array, tag?: Uint8Array) => {
      const body = cat(0xf0, u32(QUIC_V1), header.scid.length, header.scid, 8, rand(8), token);
      return cat(body, tag ?? retryIntegrityTag(nodeCryptoProvider, header.dcid, body));
    };
    return { arena, conn, header, toClient, firstFlight, exchange, retry };
  }

  it('a forged Version Negotiation listing the version in use is ignored (downgrade protection)', () => {
    const v = clientVictim();
    v.toClient(cat(0x80, u32(0), v.header.scid.length, v.header.scid, v.header.dcid.length, v.header.dcid, u32(0x0a0a0a0a), u32(QUIC_V1)));
    expect(v.conn.state).toBe('handshaking');
    v.firstFlight();
    v.exchange();
    expect(v.conn.state).toBe('established');
    expect(v.conn.internalErrors).toBe(0);
  });

  it('a Version Negotiation after a server packet is ignored', () => {
    const v = clientVictim();
    v.firstFlight();
    v.toClient(cat(0x80, u32(0), v.header.scid.length, v.header.scid, v.header.dcid.length, v.header.dcid, u32(0x0a0a0a0a)));
    expect(v.conn.closeError).toBeUndefined();
    v.exchange();
    expect(v.conn.state).toBe('established');
  });

  it('a Retry with a bad integrity tag is dropped', () => {
    const v = clientVictim();
    v.toClient(v.retry(rand(20), rand(16)));
    v.firstFlight();
    v.exchange();
    expect(v.conn.state).toBe('established');
  });

  it('a Retry with an empty token is dropped (RFC 9000 §17.2.5.2)', () => {
    const v = clientVictim();
    v.toClient(v.retry(new Uint8Array(0)));
    v.firstFlight();
    v.exchange();
    expect(v.conn.state).toBe('established');
  });

  it('a valid-looking Retry after the server’s Initial is ignored', () => {
    const v = clientVictim();
    v.firstFlight();
    v.toClient(v.retry(rand(20)));
    v.exchange();
    expect(v.conn.state).toBe('established');
    expect(v.conn.internalErrors).toBe(0);
  });
});

describe('§5.A.14 a server in Retry mode (address validation tokens)', () => {
  /** A Retry-mode server, a raw peer's first Initial, and what the server answered. */
  function retried() {
    const arena = new Arena({ retry: true });
    const peer = arena.peer();
    const initial = peer.initialDatagram();
    arena.deliver('attacker', initial);
    return { arena, peer, initial, out: arena.pump() };
  }

  it('a tokenless Initial gets one Retry, smaller than the Initial, and no connection state', () => {
    const { arena, peer, initial, out } = retried();
    expect(out.length).toBe(1);
    expect(out[0]!.data.length).toBeLessThan(initial.length);
    expect(peer.retries.length).toBe(1);
    expect(arena.server.connections.length).toBe(0);
  });

  it('the Retry token, from the same address, completes the handshake', () => {
    const { arena, peer } = retried();
    peer.followRetry();
    arena.deliver('attacker', peer.initialDatagram());
    arena.settle();
    expect(arena.accepted[0]?.state).toBe('established');
    expect(peer.handshakeComplete).toBe(true);
  });

  it('a forged token (random bytes of the right length) is dropped', () => {
    const { arena, peer } = retried();
    peer.followRetry();
    peer.retryToken = rand(peer.retryToken.length);
    const drops = arena.drops;
    arena.deliver('attacker', peer.initialDatagram());
    expectDropped(arena, drops);
  });

  it('a token with one bit flipped is dropped', () => {
    const { arena, peer } = retried();
    peer.followRetry();
    peer.retryToken[peer.retryToken.length - 1]! ^= 1;
    const drops = arena.drops;
    arena.deliver('attacker', peer.initialDatagram());
    expectDropped(arena, drops);
  });

  it('a valid token presented from another address is dropped', () => {
    const { arena, peer } = retried();
    peer.followRetry();
    const drops = arena.drops;
    arena.deliver('elsewhere', peer.initialDatagram());
    expectDropped(arena, drops);
  });

  it('an expired token (presented 11 s later) is dropped', () => {
    const { arena, peer } = retried();
    peer.followRetry();
    arena.advance(11_000);
    const drops = arena.drops;
    arena.deliver('attacker', peer.initialDatagram());
    expectDropped(arena, drops);
  });

  it('300 tokenless Initials from spoofed addresses: no state, each Retry smaller than its trigger, honest clients still connect', () => {
    const arena = new Arena({ retry: true });
    for (let i = 0; i < 300; i++) arena.deliver(`spoofed-${i}`, arena.peer(`spoofed-${i}`).initialDatagram());
    arena.pump();
    expect(arena.server.connections.length).toBe(0);
    for (let i = 0; i < 300; i++) expect(arena.bytesTo(`spoofed-${i}`)).toBeLessThan(arena.bytesFrom(`spoofed-${i}`));
    expect(tryHandshake(arena, 'honest')).toBeUndefined();
    expect(arena.internalErrors).toBe(0);
  });
});

describe('§5.A.13 Initial floods', () => {
  it('300 genuine Initials from 300 addresses: handshakes capped, ≤ 3× sent to each unvalidated address, all state freed by the handshake timeout', () => {
    const arena = new Arena({ settings: { handshakeTimeout: 5_000 } });
    for (let i = 0; i < 300; i++) arena.deliver(`flood-${i}`, arena.peer(`flood-${i}`, { autoFinish: false }).initialDatagram());
    arena.pump();
    expect(arena.server.connections.length).toBeLessThanOrEqual(MAX_HANDSHAKING);
    expect(arena.server.connections.length).toBeGreaterThan(0);
    arena.advance(20_000);
    for (let i = 0; i < 300; i++) {
      const key = `flood-${i}`;
      expect(arena.bytesTo(key), key).toBeLessThanOrEqual(3 * arena.bytesFrom(key));
    }
    expect(arena.server.connections.length).toBe(0);
    expect(arena.server.pollTimeout()).toBeUndefined();
    expect(arena.internalErrors).toBe(0);
    // And the endpoint accepts new clients again.
    expect(tryHandshake(arena, 'honest')).toBeUndefined();
  });
});

describe('§5.A.1 fuzzing (fast-check)', () => {
  it('random datagrams of 0–1,500 bytes (some aimed at a live connection ID): only drops and smaller replies, never an exception', () => {
    fc.assert(
      fc.property(fc.array(fc.tuple(fc.boolean(), fc.uint8Array({ minLength: 0, maxLength: 1500 })), { minLength: 1, maxLength: 60 }), (datagrams) => {
        const arena = new Arena();
        const { peer, conn } = arena.handshake();
        arena.advance(1);
        const before = { drops: arena.drops, resets: arena.server.stats.statelessResets, vns: arena.server.stats.versionNegotiations, sent: arena.sent.length };
        let aimed = 0;
        let bytesIn = 0;
        datagrams.forEach(([atConnection, body], i) => {
          const d = atConnection ? cat(0x40 | ((body[0] ?? 0) & 0x3f), peer.serverCid!, body) : body;
          if (atConnection) aimed++;
          bytesIn += d.length;
          arena.deliver(`fuzz-${i}`, d);
        });
        arena.pump();
        const s = arena.server.stats;
        // Every datagram not aimed at the connection is accounted for: a drop, a reset or a VN.
        expect(arena.drops - before.drops + (s.statelessResets - before.resets) + (s.versionNegotiations - before.vns)).toBe(datagrams.length - aimed);
        const out = arena.sent.slice(before.sent).filter((t) => t.path.key.startsWith('fuzz-'));
        expect(out.reduce((n, t) => n + t.data.length, 0)).toBeLessThanOrEqual(bytesIn);
        expect(arena.server.connections).toEqual([conn]);
        expect(conn.state).toBe('established');
        expect(arena.internalErrors).toBe(0);
      }),
      fcParams('hostile random datagrams', 100),
    );
  });

  it('mutated genuine packets (Initials and 1-RTT): never an exception or internal error, state freed by timeouts', () => {
    const mutation = fc.record({
      flips: fc.array(fc.tuple(fc.nat(), fc.integer({ min: 1, max: 255 })), { minLength: 1, maxLength: 8 }),
      truncate: fc.option(fc.nat(), { nil: undefined }),
      oneRtt: fc.boolean(),
    });
    fc.assert(
      fc.property(fc.array(mutation, { minLength: 1, maxLength: 20 }), (mutations) => {
        const arena = new Arena({ settings: { handshakeTimeout: 2_000, maxIdleTimeout: 3_000 } });
        const { peer, conn } = arena.handshake();
        const received = conn.stats().packetsReceived;
        mutations.forEach((m, i) => {
          const d = m.oneRtt ? peer.oneRtt(F.ping(), F.stream(0, 0, rand(20))) : arena.peer(`m-${i}`).initialDatagram();
          for (const [pos, xor] of m.flips) d[pos % d.length]! ^= xor;
          arena.deliver(m.oneRtt ? 'attacker' : `m-${i}`, m.truncate === undefined ? d : d.subarray(0, m.truncate % (d.length + 1)));
        });
        arena.pump();
        // A mutated 1-RTT packet never authenticates.
        expect(conn.stats().packetsReceived).toBe(received);
        expect(conn.state).toBe('established');
        arena.advance(30_000);
        expect(arena.server.connections.length).toBe(0);
        expect(arena.internalErrors).toBe(0);
      }),
      fcParams('hostile mutated packets', 60),
    );
  });
});
