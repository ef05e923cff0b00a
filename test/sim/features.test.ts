/**
 * QUIC features in the simulator, each against the RFC behaviour it implements.
 */
import { describe, expect, it } from 'vitest';
import { SimNetwork } from './harness.ts';
import { SecretKey } from '../../src/identity/index.ts';
import type { Connection } from '../../src/transport/quic/connection/connection.ts';
import type { ConnectionSettings } from '../../src/transport/quic/config.ts';
import { testSeed } from '../helpers/seed.ts';

const alpn = new TextEncoder().encode('sim/1');

function pair(name: string, options: { settings?: Partial<ConnectionSettings>; serverSettings?: Partial<ConnectionSettings>; retry?: boolean } = {}) {
  const net = new SimNetwork(testSeed(name));
  const serverKey = SecretKey.fromBytes(net.rng.bytes(32));
  const server = net.addNode('server', { secretKey: serverKey.toBytes(), alpns: [alpn], ...(options.retry ? { retry: true } : {}), settings: { ...options.settings, ...options.serverSettings } });
  const client = net.addNode('client', { secretKey: net.rng.bytes(32), ...(options.settings ? { settings: options.settings } : {}) });
  const conn = client.endpoint.connect(net.now, server.addr, { serverKey: serverKey.public().toBytes(), alpn });
  net.runUntil(() => conn.isEstablished || conn.isClosed, { what: 'handshake' });
  expect(conn.closeError).toBeUndefined();
  net.runUntil(() => conn.handshakeConfirmed && server.endpoint.connections.some((c) => c.isEstablished), { what: 'handshake confirmed' });
  const sconn = server.endpoint.connections.find((c) => c.isEstablished)!;
  return { net, server, client, conn, sconn };
}

/** Move `size` bytes on a new stream from `a` to `b`; returns the bytes `b` read. */
function move(net: SimNetwork, a: Connection, b: Connection, size: number, dir: 'bi' | 'uni' = 'bi'): number {
  const id = a.openStream(dir)!;
  const data = new Uint8Array(size).fill(7);
  let written = 0;
  let read = 0;
  let fin = false;
  net.runUntil(
    () => {
      if (written < size) {
        written += a.writeStream(id, data.subarray(written));
        if (written === size) a.finishStream(id);
      }
      for (;;) {
        const r = b.readStream(id);
        if (r.data) read += r.data.length;
        if (r.fin) fin = true;
        if (!r.data) break;
      }
      if (a.isClosed || b.isClosed) throw new Error('closed');
      return fin;
    },
    { what: 'stream moved', maxTime: 300_000_000 },
  );
  return read;
}

function events(c: Connection) {
  const out = [];
  for (let e = c.pollEvent(); e; e = c.pollEvent()) out.push(e);
  return out;
}

describe('QUIC features (simulated network)', () => {
  it('NewReno carries a transfer through 2% loss', () => {
    const { net, conn, sconn } = pair('sim newreno', { settings: { congestion: 'newreno' } });
    net.setLink('client', 'server', { loss: 0.02 });
    expect(move(net, conn, sconn, 2 << 20)).toBe(2 << 20);
    expect(conn.stats().lostPackets).toBeGreaterThan(0);
  });

  it('closes an idle connection after the negotiated idle timeout (RFC 9000 §10.1)', () => {
    const { net, conn, sconn } = pair('sim idle', { settings: { maxIdleTimeout: 2_000, keepAliveInterval: 0 }, serverSettings: { maxIdleTimeout: 5_000 } });
    const start = net.now;
    net.runUntil(() => conn.isClosed && sconn.isClosed, { what: 'idle close' });
    // The minimum of the two advertised timeouts applies, silently on both sides.
    expect(conn.closeError?.code).toBe('ERR_QUIC_TIMED_OUT');
    expect(sconn.closeError?.code).toBe('ERR_QUIC_TIMED_OUT');
    expect(net.now - start).toBeGreaterThanOrEqual(2_000_000);
    expect(net.now - start).toBeLessThan(5_000_000);
  });

  it('keeps a quiet connection alive with PINGs', () => {
    const { net, conn, sconn } = pair('sim keepalive', { settings: { maxIdleTimeout: 2_000, keepAliveInterval: 500 } });
    const until = net.now + 20_000_000;
    net.runUntil(() => net.now >= until || conn.isClosed, { what: '20 s of quiet' });
    expect(conn.isEstablished).toBe(true);
    expect(sconn.isEstablished).toBe(true);
  });

  it('validates the client address with a Retry first when asked (RFC 9000 §8.1.2)', () => {
    const { conn, server } = pair('sim retry', { retry: true });
    expect(conn.isEstablished).toBe(true);
    expect(server.endpoint.stats.retries).toBe(1);
  });

  it('follows a client whose address changes mid-transfer, validating the new path (RFC 9000 §9)', () => {
    const { net, conn, sconn } = pair('sim rebinding');
    const id = conn.openStream('bi')!;
    const size = 4 << 20;
    const data = new Uint8Array(size).fill(3);
    let written = 0;
    let read = 0;
    let rebound = false;
    net.runUntil(
      () => {
        if (written < size) {
          written += conn.writeStream(id, data.subarray(written));
          if (written === size) conn.finishStream(id);
        }
        if (!rebound && written > size / 2) {
          net.rebind('client', 'client-natted');
          rebound = true;
        }
        for (let r = sconn.readStream(id); r.data; r = sconn.readStream(id)) read += r.data.length;
        return read === size;
      },
      { what: 'transfer across rebinding' },
    );
    expect(sconn.path.key).toBe('client-natted');
    expect(events(sconn).some((e) => e.type === 'path-validated' && e.path.key === 'client-natted')).toBe(true);
  });

  it('updates keys from either side, repeatedly, without losing data (RFC 9001 §6)', () => {
    const { net, conn, sconn } = pair('sim key update');
    for (let round = 0; round < 4; round++) {
      const initiator = round % 2 === 0 ? conn : sconn;
      expect(move(net, conn, sconn, 64 << 10)).toBe(64 << 10);
      expect(initiator.initiateKeyUpdate(), `round ${round}`).toBe(true);
      expect(move(net, sconn, conn, 64 << 10)).toBe(64 << 10);
    }
    net.runUntil(() => conn.stats().keyUpdates === 4 && sconn.stats().keyUpdates === 4, { what: 'four updates' });
  });

  it('holds a second key update until the first is acknowledged, then performs it', () => {
    const { net, conn, sconn } = pair('sim key update gate');
    expect(conn.initiateKeyUpdate()).toBe(true);
    expect(conn.stats().keyUpdates).toBe(1);
    // Not allowed yet (RFC 9001 §6.1): scheduled, not done.
    expect(conn.initiateKeyUpdate()).toBe(true);
    expect(conn.stats().keyUpdates).toBe(1);
    net.runUntil(() => conn.stats().keyUpdates === 2, { what: 'second update' });
    expect(move(net, conn, sconn, 64 << 10)).toBe(64 << 10);
    expect(sconn.stats().keyUpdates).toBe(2);
  });

  it('carries unidirectional streams', () => {
    const { net, conn, sconn } = pair('sim uni');
    expect(move(net, conn, sconn, 300_000, 'uni')).toBe(300_000);
  });

  it('delivers RESET_STREAM and STOP_SENDING with their codes', () => {
    const { net, conn, sconn } = pair('sim reset');
    const id = conn.openStream('bi')!;
    conn.writeStream(id, new Uint8Array(1000));
    net.runUntil(() => sconn.isReadable(id), { what: 'data' });
    conn.resetStream(id, 77);
    net.runUntil(() => sconn.readStream(id).resetCode === 77, { what: 'reset seen' });
    const id2 = conn.openStream('bi')!;
    conn.writeStream(id2, new Uint8Array(10));
    net.runUntil(() => sconn.isReadable(id2), { what: 'data 2' });
    sconn.stopSending(id2, 88);
    net.runUntil(() => conn.stopCode(id2) === 88, { what: 'stop seen' });
    expect(events(conn).some((e) => e.type === 'stream-stopped' && e.code === 88)).toBe(true);
  });

  it('sends and receives datagrams', () => {
    const { net, conn, sconn } = pair('sim datagrams');
    expect(conn.maxDatagramSize).toBeGreaterThan(1000);
    for (let i = 0; i < 5; i++) expect(conn.sendDatagram(new Uint8Array([i]))).toBe(true);
    const got: number[] = [];
    net.runUntil(() => {
      for (let d = sconn.readDatagram(); d; d = sconn.readDatagram()) got.push(d[0]!);
      return got.length === 5;
    });
    expect(got).toEqual([0, 1, 2, 3, 4]);
    expect(conn.sendDatagram(new Uint8Array(conn.maxDatagramSize + 1))).toBe(false);
  });

  it('opens many streams beyond the initial limit as the peer raises it (MAX_STREAMS)', () => {
    const { net, conn, sconn } = pair('sim many streams', { serverSettings: { maxConcurrentBidiStreams: 10 } });
    let opened = 0;
    let done = 0;
    const ids: number[] = [];
    net.runUntil(
      () => {
        for (;;) {
          if (opened >= 100) break;
          const id = conn.openStream('bi');
          if (id === undefined) break;
          conn.writeStream(id, new Uint8Array([1, 2, 3]));
          conn.finishStream(id);
          ids.push(id);
          opened++;
        }
        for (const id of [...ids]) {
          const r = sconn.readStream(id);
          if (r.fin) {
            done++;
            sconn.finishStream(id);
            ids.splice(ids.indexOf(id), 1);
          }
        }
        return done >= 100;
      },
      { what: '100 streams through a limit of 10' },
    );
    expect(done).toBe(100);
  });
});
