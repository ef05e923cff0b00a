/**
 * The rest of the transport review (issue 11 item 7), each a regression test:
 * - PATH_CHALLENGE / PATH_RESPONSE datagrams are padded to 1200 bytes (RFC 9000 §8.2.1, §8.2.2);
 * - datagrams that do not authenticate create no path state;
 * - a client drops later server packets with another SCID (RFC 9000 §7.2);
 * - failed decryptions count toward the integrity limit (RFC 9001 §6.6);
 * - addresses a peer advertises (sdnet_direct_addresses) are probed with a budget, never when
 *   unspecified, multicast or broadcast;
 * - a per-address connection cap;
 * - Retry tokens are bound to the Retry's SCID.
 */
import { describe, expect, it } from 'vitest';
import { SecretKey } from '../../src/identity/index.ts';
import { nodeCryptoProvider } from '../../src/transport/crypto/index.ts';
import type { PathAddr, Transmit } from '../../src/transport/quic/connection/types.ts';
import { QuicEndpoint } from '../../src/transport/quic/endpoint.ts';
import { TransportErrorCode as E } from '../../src/transport/quic/errors.ts';
import { initialKeys } from '../../src/transport/quic/protection/packet-keys.ts';
import { parseHeader } from '../../src/transport/quic/wire/header.ts';
import type { DirectAddress } from '../../src/transport/quic/wire/transport-params.ts';
import { SimNetwork, relayPath } from '../sim/harness.ts';
import { testSeed } from '../helpers/seed.ts';
import { Arena, expectAlive, expectClosedWith } from './arena.ts';
import { F, RawPeer, cat } from './raw-peer.ts';

const rand = (n: number) => crypto.getRandomValues(new Uint8Array(n));

/** Drain the server; for each datagram, the frame types the peer read from it. */
function pumpFrames(arena: Arena, peer: RawPeer): { t: Transmit; types: string[] }[] {
  const out: { t: Transmit; types: string[] }[] = [];
  for (let t = arena.server.pollTransmit(arena.now); t !== undefined; t = arena.server.pollTransmit(arena.now)) {
    arena.sent.push(t);
    const before = peer.frames.length;
    peer.receive(t.data);
    out.push({ t, types: peer.frames.slice(before).map((f) => f.frame.type) });
  }
  return out;
}

describe('issue 11 item 7: PATH_CHALLENGE and PATH_RESPONSE datagrams are padded (RFC 9000 §8.2.1, §8.2.2)', () => {
  it('a PATH_CHALLENGE on the current path is answered in a datagram of at least 1200 bytes', () => {
    const arena = new Arena();
    const { peer, conn } = arena.handshake();
    arena.deliver('attacker', peer.oneRtt(F.pathChallenge(rand(8))));
    const responses = pumpFrames(arena, peer).filter((d) => d.types.includes('path_response'));
    expect(responses.length).toBe(1);
    expect(responses[0]!.t.data.length).toBeGreaterThanOrEqual(1200);
    expectAlive(arena, conn);
  });

  it('the PATH_CHALLENGE validating a migrated (current) path goes in a datagram of 1200 bytes when its budget allows', () => {
    const arena = new Arena();
    const { peer, conn } = arena.handshake();
    arena.alias('moved', peer);
    arena.deliver('moved', peer.packet('app', [F.ping()], { padTo: 1200 }));
    const challenges = pumpFrames(arena, peer).filter((d) => d.types.includes('path_challenge'));
    expect(conn.path.key).toBe('moved');
    expect(challenges.length).toBeGreaterThan(0);
    for (const c of challenges) expect(c.t.data.length).toBeGreaterThanOrEqual(1200);
    expect(arena.bytesTo('moved')).toBeLessThanOrEqual(3 * arena.bytesFrom('moved'));
  });
});

describe('issue 11 item 7: datagrams that do not authenticate create no path state', () => {
  it('garbage with the connection ID from 8 spoofed addresses, then a real PATH_CHALLENGE from a 9th: it is answered there', () => {
    const arena = new Arena();
    const { peer, conn } = arena.handshake();
    for (let i = 0; i < 8; i++) arena.deliver(`spoofed-${i}`, cat(0x40, peer.serverCid!, rand(1200)));
    arena.pump();
    arena.alias('probe', peer);
    const before = peer.framesOf('path_response').length;
    arena.deliver('probe', peer.packet('app', [F.pathChallenge(rand(8))], { padTo: 1200, pn: 0 + peer.spaces.app.nextPn }));
    arena.pump();
    expect(peer.framesOf('path_response').length).toBe(before + 1);
    expect(arena.bytesTo('probe')).toBeGreaterThan(0);
    for (let i = 0; i < 8; i++) expect(arena.bytesTo(`spoofed-${i}`)).toBe(0);
    expectAlive(arena, conn);
  });
});

describe('issue 11 item 7: a client drops later server packets with another SCID (RFC 9000 §7.2)', () => {
  it('a forged Initial CONNECTION_CLOSE from another SCID after the server’s first Initial is ignored; the handshake completes', () => {
    const provider = nodeCryptoProvider;
    let now = 1_000_000;
    const serverSecret = SecretKey.generate();
    const alpn = new TextEncoder().encode('x/1');
    const server = new QuicEndpoint({ provider, secretKey: serverSecret.toBytes(), alpns: [alpn] });
    const client = new QuicEndpoint({ provider, secretKey: SecretKey.generate().toBytes() });
    const toServer: PathAddr = { key: 'server' };
    const toClient: PathAddr = { key: 'client' };
    const conn = client.connect(now, toServer, { serverKey: serverSecret.public().toBytes(), alpn });
    const first = client.pollTransmit(now)!;
    const h = parseHeader(first.data, 0, 8);
    if (h.form !== 'long') throw new Error('expected a long header');
    const clientDcid = h.dcid.slice();
    const clientScid = h.scid.slice();
    server.handleDatagram(now, toClient, first.data.slice());
    const flight: Uint8Array[] = [];
    for (let t = server.pollTransmit(now); t; t = server.pollTransmit(now)) flight.push(t.data.slice());
    // The client reads the server's first datagram (its Initial, with the server's SCID)...
    client.handleDatagram(now, toServer, flight[0]!);
    // ...then an on-path attacker (Initial keys come from the client's DCID) forges an Initial
    // from another SCID carrying CONNECTION_CLOSE.
    const forger = new RawPeer({ serverKey: serverSecret.public().toBytes() });
    const serverInitial = initialKeys(provider, clientDcid, 'server');
    const forged = forger.packet('initial', [F.connectionClose(E.PROTOCOL_VIOLATION, 0)], { keys: serverInitial.local, dcid: clientScid, scid: rand(8), pn: 40, token: new Uint8Array(0) });
    client.handleDatagram(now, toServer, forged);
    expect(conn.closeError, conn.closeError?.message).toBeUndefined();
    // The real handshake goes on.
    for (const d of flight.slice(1)) client.handleDatagram(now, toServer, d);
    for (let i = 0; i < 20 && !(conn.isEstablished && server.connections[0]?.isEstablished); i++) {
      now += 1000;
      for (let t = client.pollTransmit(now); t; t = client.pollTransmit(now)) server.handleDatagram(now, toClient, t.data.slice());
      for (let t = server.pollTransmit(now); t; t = server.pollTransmit(now)) client.handleDatagram(now, toServer, t.data.slice());
    }
    expect(conn.isEstablished).toBe(true);
    expect(server.connections[0]?.isEstablished).toBe(true);
  });
});

describe('issue 11 item 7: failed decryptions count toward the integrity limit (RFC 9001 §6.6)', () => {
  it('packets that fail authentication beyond the limit close the connection with AEAD_LIMIT_REACHED', () => {
    const arena = new Arena({ settings: { maxAuthenticationFailures: 100 } });
    const { peer, conn } = arena.handshake();
    for (let i = 0; i < 100; i++) arena.deliver('attacker', peer.packet('app', [F.ping()], { corruptTag: true }));
    arena.pump();
    expectAlive(arena, conn);
    arena.deliver('attacker', peer.packet('app', [F.ping()], { corruptTag: true }));
    arena.pump();
    expectClosedWith(arena, conn, peer, E.AEAD_LIMIT_REACHED);
  });
});

describe('issue 11 item 7: advertised addresses are probed with a budget, never to multicast, broadcast or unspecified', () => {
  const ip = (...b: number[]) => Uint8Array.from(b);
  const never: DirectAddress[] = [
    { ip: ip(224, 0, 0, 251), port: 5353 },
    { ip: ip(255, 255, 255, 255), port: 4433 },
    { ip: ip(0, 0, 0, 0), port: 4433 },
    { ip: ip(0xff, 0x02, ...new Array(13).fill(0), 1), port: 4433 },
    { ip: ip(...new Array(10).fill(0), 0xff, 0xff, 239, 1, 2, 3), port: 4433 }, // ::ffff:239.1.2.3
    { ip: ip(...new Array(16).fill(0)), port: 4433 },
    { ip: ip(240, 0, 0, 1), port: 4433 },
    { ip: ip(...new Array(10).fill(0), 0xff, 0xff, 0, 0, 0, 0), port: 4433 }, // ::ffff:0.0.0.0
  ];
  // Unicast addresses nobody answers on (a victim's, say).
  const silent: DirectAddress[] = Array.from({ length: 8 }, (_, i) => ({ ip: ip(192, 0, 2, 10 + i), port: 4433 }));

  /** A client on the relay to a server advertising `advertised`; runs `minutes` of virtual time. */
  function run(name: string, advertised: DirectAddress[], minutes: number) {
    const net = new SimNetwork(testSeed(name));
    const alpn = new TextEncoder().encode('sim/1');
    const serverKey = SecretKey.fromBytes(net.rng.bytes(32));
    net.addNode('server', { secretKey: serverKey.toBytes(), alpns: [alpn], directAddresses: () => advertised });
    const asked: string[] = [];
    const client = net.addNode('client', {
      secretKey: net.rng.bytes(32),
      resolvePath: (a) => {
        const key = `direct:${[...a.ip].join('.')}:${a.port}`;
        asked.push(key);
        return { key };
      },
    });
    const sent = new Map<string, number>();
    const poll = client.endpoint.pollTransmit.bind(client.endpoint);
    client.endpoint.pollTransmit = (now: number) => {
      const t = poll(now);
      if (t && t.path.key.startsWith('direct:')) sent.set(t.path.key, (sent.get(t.path.key) ?? 0) + 1);
      return t;
    };
    const conn = client.endpoint.connect(net.now, relayPath('server'), { serverKey: serverKey.public().toBytes(), alpn });
    net.runUntil(() => conn.handshakeConfirmed || conn.isClosed, { what: 'handshake' });
    expect(conn.closeError, conn.closeError?.message).toBeUndefined();
    const start = net.now;
    net.runUntil(() => net.now - start >= minutes * 60_000_000 || conn.isClosed, { what: `${minutes} minutes`, maxTime: (minutes + 1) * 60_000_000 });
    expect(conn.isClosed).toBe(false);
    return { asked, sent };
  }

  it('a server advertising unspecified, multicast, broadcast and reserved addresses: none is resolved or probed', () => {
    const { asked, sent } = run('advertised bogus addresses', never, 1);
    for (const a of never) expect(asked).not.toContain(`direct:${[...a.ip].join('.')}:${a.port}`);
    expect([...sent.keys()]).toEqual([]);
  });

  it('a server advertising 8 addresses nobody answers on: a bounded number of probes over 10 minutes', () => {
    const { sent } = run('advertised silent addresses', silent, 10);
    const probes = [...sent.values()].reduce((n, x) => n + x, 0);
    console.log(`probes to silent advertised addresses in 10 min: ${probes} (${[...sent.entries()].map(([k, v]) => `${k}=${v}`).join(', ')})`);
    expect(probes).toBeGreaterThan(0);
    // At most 3 sends per probe, 16 probes at once, then one a minute.
    expect(probes).toBeLessThanOrEqual(3 * (16 + 11));
  });
});

describe('issue 11 item 7: per-address connection cap', () => {
  it('256 connections from one IP (different ports): the next is refused, another IP connects', () => {
    const arena = new Arena();
    for (let i = 0; i < 256; i++) arena.handshake(`198.51.100.7:${1000 + i}`);
    expect(() => arena.handshake('198.51.100.7:9999')).toThrow(/did not accept/);
    expect(arena.server.stats.dropped['too-many-connections-from-source']).toBe(1);
    expect(arena.handshake('198.51.100.8:1000').conn.state).toBe('established');
  });
});

describe('issue 11 item 7: Retry tokens are bound to the Retry SCID', () => {
  it('a token presented with another DCID is dropped and creates no connection', () => {
    const arena = new Arena({ retry: 'always' });
    const peer = arena.peer('client');
    arena.deliver('client', peer.initialDatagram());
    arena.pump();
    expect(peer.retries.length).toBe(1);
    const token = peer.retries[0]!.token;
    // Reuse it with fresh DCIDs (Initial keys derived from each, so the packets decrypt).
    for (let i = 0; i < 5; i++) {
      const other = arena.peer('client', { dcid: rand(8) });
      other.retryToken = token;
      arena.deliver('client', other.initialDatagram());
    }
    expect(arena.server.connections.length).toBe(0);
    expect(arena.server.stats.dropped['invalid-token']).toBe(5);
    // The token works with the SCID it was issued for.
    peer.followRetry();
    arena.deliver('client', peer.initialDatagram());
    expect(arena.server.connections.length).toBe(1);
  });
});
