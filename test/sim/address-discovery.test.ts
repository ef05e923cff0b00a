/**
 * QUIC address discovery (draft-ietf-quic-address-discovery) in the simulator: the side that
 * offered observations reports the peer's UDP address in OBSERVED_ADDRESS on the handshake's
 * path and again on each new path (NAT rebinding), resends it when lost, and sends nothing
 * unless both sides negotiated it. This is what a QAD server in a relay does for its clients.
 */
import { describe, expect, it } from 'vitest';
import { SimNetwork } from './harness.ts';
import { SecretKey } from '../../src/identity/index.ts';
import type { ConnectionEvent } from '../../src/transport/quic/connection/types.ts';
import type { ConnectionSettings } from '../../src/transport/quic/config.ts';
import { testSeed } from '../helpers/seed.ts';

const alpn = new TextEncoder().encode('/iroh-qad/0');
const CLIENT_UDP = { ip: new Uint8Array([203, 0, 113, 7]), port: 40_123 };
const SERVER_UDP = { ip: new Uint8Array([198, 51, 100, 1]), port: 7842 };

/** Run the simulation for `us` µs of virtual time (or until nothing is left to do). */
function runFor(net: SimNetwork, us: number): void {
  const end = net.now + us;
  while (net.step(end));
}

function setup(name: string, client: Partial<ConnectionSettings>, server: Partial<ConnectionSettings>, links?: (net: SimNetwork) => void, seed = testSeed(name)) {
  const net = new SimNetwork(seed);
  const serverKey = SecretKey.fromBytes(net.rng.bytes(32));
  const s = net.addNode('server', { secretKey: serverKey.toBytes(), alpns: [alpn], settings: server }, SERVER_UDP);
  const c = net.addNode('client', { secretKey: net.rng.bytes(32), settings: client }, CLIENT_UDP);
  links?.(net);
  const conn = c.endpoint.connect(net.now, { key: 'server', ...SERVER_UDP }, { serverKey: serverKey.public().toBytes(), alpn });
  net.runUntil(() => conn.isEstablished || conn.isClosed, { what: 'handshake' });
  expect(conn.closeError).toBeUndefined();
  net.runUntil(() => conn.handshakeConfirmed && s.endpoint.connections.some((x) => x.isEstablished), { what: 'handshake confirmed' });
  const sconn = s.endpoint.connections.find((x) => x.isEstablished)!;
  const events: ConnectionEvent[] = [];
  const drain = () => {
    for (let e = conn.pollEvent(); e; e = conn.pollEvent()) events.push(e);
  };
  return { net, conn, sconn, events, drain };
}

describe('QUIC address discovery (simulated network)', () => {
  it('a client that asked (1) learns its address from a server that offers (0), on the handshake path', () => {
    const { net, conn, sconn, events, drain } = setup('qad basic', { addressDiscovery: 1 }, { addressDiscovery: 0 });
    net.runUntil(() => conn.observedAddress !== undefined, { what: 'an observation', maxTime: 2_000_000 });
    drain();
    expect(conn.observedAddress).toEqual(CLIENT_UDP);
    expect(events.filter((e) => e.type === 'observed-address')).toEqual([{ type: 'observed-address', ...CLIENT_UDP }]);
    // The server asked for nothing, so it learns nothing.
    runFor(net, 1_000_000);
    expect(sconn.observedAddress).toBeUndefined();
  });

  it('a NAT rebinding: the server reports the new address on the new path', () => {
    const { net, conn, sconn, drain, events } = setup('qad rebinding', { addressDiscovery: 1 }, { addressDiscovery: 0 });
    net.runUntil(() => conn.observedAddress !== undefined, { what: 'the first observation', maxTime: 2_000_000 });
    const moved = { ip: new Uint8Array([203, 0, 113, 8]), port: 50_001 };
    net.rebind('client', 'client-rebound', moved);
    // Non-probing traffic from the new address makes the server switch paths (RFC 9000 §9.3).
    const id = conn.openStream('bi')!;
    conn.writeStream(id, new Uint8Array(100));
    conn.finishStream(id);
    net.runUntil(() => conn.observedAddress?.port === moved.port, { what: 'the second observation', maxTime: 10_000_000 });
    drain();
    expect(conn.observedAddress).toEqual(moved);
    expect(events.filter((e) => e.type === 'observed-address').map((e) => (e as { port: number }).port)).toEqual([CLIENT_UDP.port, moved.port]);
    expect(sconn.isEstablished).toBe(true);
  });

  it('a rebound client still gets its new address when everything the server sends to it is dropped for 30 ms', () => {
    const { net, conn } = setup('qad lost', { addressDiscovery: 1 }, { addressDiscovery: 0 });
    net.runUntil(() => conn.observedAddress !== undefined, { what: 'the first observation', maxTime: 2_000_000 });
    const moved = { ip: new Uint8Array([203, 0, 113, 9]), port: 50_002 };
    net.setLink('server', 'client-rebound', { blackholes: [[net.now, net.now + 30_000]] });
    net.rebind('client', 'client-rebound', moved);
    const id = conn.openStream('bi')!;
    conn.writeStream(id, new Uint8Array(100));
    conn.finishStream(id);
    net.runUntil(() => conn.observedAddress?.port === moved.port, { what: 'the resent observation', maxTime: 10_000_000 });
    expect(conn.observedAddress).toEqual(moved);
  });

  // Through 30 % loss each way a handshake can need its Initial sent four times (PTO 1, 2, 4,
  // 8 s): more than the default 10 s handshake timeout. The handshake is not what this tests,
  // so it gets the idle timeout's 30 s.
  const lossy = (n: SimNetwork) => {
    n.setLink('client', 'server', { loss: 0.3 });
    n.setLink('server', 'client', { loss: 0.3 });
  };
  const patient = { handshakeTimeout: 30_000 };

  it('an observation arrives through 30 % loss both ways', () => {
    const { net, conn } = setup('qad loss', { addressDiscovery: 1, ...patient }, { addressDiscovery: 0, ...patient }, lossy);
    net.runUntil(() => conn.observedAddress !== undefined, { what: 'an observation through loss', maxTime: 60_000_000 });
    expect(conn.observedAddress).toEqual(CLIENT_UDP);
  });

  it('an observation arrives through 30 % loss: seed 1743808934, whose handshake outlasted 10 s in CI', () => {
    const { net, conn } = setup('qad loss (CI seed)', { addressDiscovery: 1, ...patient }, { addressDiscovery: 0, ...patient }, lossy, 1743808934);
    net.runUntil(() => conn.observedAddress !== undefined, { what: 'an observation through loss', maxTime: 60_000_000 });
    expect(conn.observedAddress).toEqual(CLIENT_UDP);
  });

  it('both sides with 2 learn each other’s address', () => {
    const { net, conn, sconn } = setup('qad both', { addressDiscovery: 2 }, { addressDiscovery: 2 });
    net.runUntil(() => conn.observedAddress !== undefined && sconn.observedAddress !== undefined, { what: 'both observations', maxTime: 2_000_000 });
    expect(conn.observedAddress).toEqual(CLIENT_UDP);
    expect(sconn.observedAddress).toEqual(SERVER_UDP);
  });

  it('nothing is sent unless one side offers and the other asks (§4: MUST NOT send to a node that did not request)', () => {
    for (const [c, s] of [
      [undefined, 0],
      [0, 0],
      [1, 1],
      [1, undefined],
    ] as const) {
      const { net, conn, sconn } = setup(`qad none ${c} ${s}`, c === undefined ? {} : { addressDiscovery: c }, s === undefined ? {} : { addressDiscovery: s });
      runFor(net, 3_000_000);
      expect(conn.observedAddress).toBeUndefined();
      expect(sconn.observedAddress).toBeUndefined();
      expect(conn.isEstablished && sconn.isEstablished).toBe(true);
    }
  });
});
