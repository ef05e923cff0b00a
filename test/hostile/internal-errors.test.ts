/**
 * No exception escapes a timer or a poll (issue 11 item 1). The reported attack: enough
 * NEW_CONNECTION_ID frames with a rising retire_prior_to while the current path cannot send
 * (a migration spent its anti-amplification budget), then the path-validation timeout switches
 * paths and the retirement overflowed — thrown from `handleTimeout`, through the endpoint and
 * the driver, which nothing caught. Path switching and retirement no longer throw; and any
 * exception a connection's `handleTimeout`, `pollTimeout` or `pollTransmit` still raises (a bug)
 * closes that one connection with INTERNAL_ERROR, counted in the endpoint's stats, while the
 * endpoint serves the rest.
 */
import { describe, expect, it } from 'vitest';
import { SecretKey } from '../../src/identity/index.ts';
import { nodeCryptoProvider } from '../../src/transport/crypto/index.ts';
import { EndpointDriver } from '../../src/transport/io/driver.ts';
import type { Connection } from '../../src/transport/quic/connection/connection.ts';
import { QuicEndpoint } from '../../src/transport/quic/endpoint.ts';
import { TransportErrorCode as E } from '../../src/transport/quic/errors.ts';
import { Arena } from './arena.ts';
import { F } from './raw-peer.ts';

const rand = (n: number) => crypto.getRandomValues(new Uint8Array(n));

/** A stand-in for a bug: the method throws from now on. */
function breakMethod(conn: Connection, method: 'handleTimeout' | 'pollTransmit' | 'pollTimeout'): void {
  Object.defineProperty(conn, method, {
    value: () => {
      throw new Error(`simulated bug in ${method}`);
    },
  });
}

describe('issue 11 item 1: no exception escapes a timer or a poll', () => {
  it('rising retire_prior_to while the migrated path cannot send, then the validation timeout: nothing throws, the endpoint serves on', () => {
    const arena = new Arena();
    const { peer, conn } = arena.handshake();
    // A tiny non-probing packet with a high packet number from a spoofed address: the victim
    // moves there, and may send it only 3× those few bytes until it validates.
    arena.deliver('spoofed', peer.packet('app', [F.ping()], { pn: 10_000 }));
    arena.pump();
    expect(conn.path.key).toBe('spoofed');
    // From the old address, with lower packet numbers (so not a migration back): every
    // NEW_CONNECTION_ID retires the one before it; the RETIRE_CONNECTION_IDs pile up unsent.
    for (let i = 1; i <= 64; i++) arena.deliver('attacker', peer.packet('app', [F.newConnectionId(i, i, rand(8), rand(16))], { pn: 100 + i }));
    arena.deliver('attacker', peer.packet('app', [F.newConnectionId(65, 64, rand(8), rand(16))], { pn: 200 }));
    arena.pump();
    // The validation of the spoofed path times out: back to the validated one.
    expect(() => arena.advance(10_000)).not.toThrow();
    expect(conn.closeError === undefined || conn.closeError.transportCode !== E.INTERNAL_ERROR, conn.closeError?.message).toBe(true);
    expect(arena.server.stats.internalErrors).toBe(0);
    expect(arena.internalErrors).toBe(0);
    // The endpoint still serves honest clients.
    expect(() => arena.handshake('honest')).not.toThrow();
  });

  for (const method of ['handleTimeout', 'pollTimeout', 'pollTransmit'] as const) {
    it(`a connection whose ${method} throws is closed with INTERNAL_ERROR, counted; the others are served`, () => {
      const arena = new Arena();
      const bystander = arena.handshake('bystander');
      const broken = arena.handshake('broken');
      breakMethod(broken.conn, method);
      // Keep-alives and idle timers fall due within 10 s; the endpoint runs them and sends.
      expect(() => arena.advance(10_000)).not.toThrow();
      expect(broken.conn.closeError?.transportCode, broken.conn.closeError?.message).toBe(E.INTERNAL_ERROR);
      expect(arena.server.stats.internalErrors).toBeGreaterThanOrEqual(1);
      // The broken connection is gone (its CONNECTION_CLOSE sent when it still could be).
      arena.advance(10_000);
      expect(arena.server.connections).not.toContain(broken.conn);
      // Its peer hears why, when the connection could still send (a broken pollTimeout or
      // pollTransmit fails again while closing, and the connection just ends).
      if (method === 'handleTimeout') expect(broken.peer.closes.map((c) => c.code)).toContain(E.INTERNAL_ERROR);
      // The bystander is untouched and new clients connect.
      arena.send(bystander.peer, [F.ping()], 'bystander');
      expect({ state: bystander.conn.state, error: bystander.conn.closeError?.message, internalErrors: bystander.conn.internalErrors }).toEqual({ state: 'established', error: undefined, internalErrors: 0 });
      expect(() => arena.handshake('honest')).not.toThrow();
      expect(arena.server.stats.internalErrors).toBeGreaterThanOrEqual(1);
    });
  }

  it('the driver: a timer-driven pass over a connection that throws does not throw (the process stays up)', () => {
    let now = 1_000_000;
    const clock = { now: () => now };
    const client = new QuicEndpoint({ provider: nodeCryptoProvider, secretKey: SecretKey.generate().toBytes() });
    const wire: Uint8Array[] = [];
    const clientDriver = new EndpointDriver(client, { send: (data) => wire.push(data.slice()) }, clock);
    const conn = client.connect(now, { key: 'server' }, { serverKey: new Uint8Array(32), alpn: new TextEncoder().encode('x/1') });
    clientDriver.drain();
    expect(wire.length).toBeGreaterThan(0);
    breakMethod(conn, 'handleTimeout');
    // The client's Initial is never answered: its PTO falls due and the driver runs it.
    now += 5_000_000;
    expect(() => clientDriver.drain()).not.toThrow();
    expect(client.stats.internalErrors).toBeGreaterThanOrEqual(1);
    expect(conn.closeError?.transportCode).toBe(E.INTERNAL_ERROR);
    clientDriver.close();
  });

  it('the driver: a listener of the layer above that throws on an event closes that connection only (regression: an X.509 peer without an EndpointId threw from the connection-opened hook)', () => {
    let now = 1_000_000;
    const clock = { now: () => now };
    const alpn = new TextEncoder().encode('x/1');
    const serverSecret = SecretKey.generate();
    const server = new QuicEndpoint({ provider: nodeCryptoProvider, secretKey: serverSecret.toBytes(), alpns: [alpn] });
    const client = new QuicEndpoint({ provider: nodeCryptoProvider, secretKey: SecretKey.generate().toBytes() });
    const toServer: { data: Uint8Array; from: string }[] = [];
    const toClient: { data: Uint8Array; to: string }[] = [];
    const clientDriver = new EndpointDriver(client, { send: (data, path) => toServer.push({ data: data.slice(), from: path.key === 'a' ? 'ca' : 'cb' }) }, clock);
    const serverDriver = new EndpointDriver(server, { send: (data, path) => toClient.push({ data: data.slice(), to: path.key === 'ca' ? 'a' : 'b' }) }, clock);
    const broken = client.connect(now, { key: 'a' }, { serverKey: serverSecret.public().toBytes(), alpn });
    const healthy = client.connect(now, { key: 'b' }, { serverKey: serverSecret.public().toBytes(), alpn });
    let healthyEvents = 0;
    clientDriver.listen(broken, () => {
      throw new Error('simulated bug in a listener');
    });
    clientDriver.listen(healthy, () => healthyEvents++);
    const run = () => expect(() => clientDriver.drain()).not.toThrow();
    for (let round = 0; round < 20; round++) {
      run();
      for (const d of toServer.splice(0)) serverDriver.quic.handleDatagram(now, { key: d.from }, d.data);
      serverDriver.drain();
      for (const d of toClient.splice(0)) client.handleDatagram(now, { key: d.to }, d.data);
      now += 1000;
    }
    run();
    expect(clientDriver.internalErrors).toBeGreaterThanOrEqual(1);
    expect(broken.closeError?.transportCode).toBe(E.INTERNAL_ERROR);
    expect(healthy.state).toBe('established');
    expect(healthyEvents).toBeGreaterThan(0);
    clientDriver.close();
    serverDriver.close();
  });
});
