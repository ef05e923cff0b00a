/**
 * The QUIC core in the simulated network (virtual clock, seeded): handshake and a 16 MiB
 * transfer verified by hash under loss, reordering, duplication, corruption, a blackhole and
 * a 1200-byte MTU. Every case prints its seed.
 */
import { describe, expect, it } from 'vitest';
import { createHash } from 'node:crypto';
import { SimNetwork, type LinkConditions } from './harness.ts';
import { SecretKey } from '../../src/identity/index.ts';
import type { Connection } from '../../src/transport/quic/connection/connection.ts';
import { testSeed } from '../helpers/seed.ts';

const alpn = new TextEncoder().encode('sim/1');
const MiB = 1024 * 1024;

interface Result {
  digestOk: boolean;
  client: Connection;
  server: Connection;
  virtualMs: number;
}

/** Send `size` bytes client → server over one stream; both directions' link conditions given. */
function transfer(seed: number, size: number, link: Partial<LinkConditions>, back: Partial<LinkConditions> = link): Result {
  const net = new SimNetwork(seed);
  const serverKey = SecretKey.fromBytes(net.rng.bytes(32));
  const server = net.addNode('server', { secretKey: serverKey.toBytes(), alpns: [alpn] });
  const client = net.addNode('client', { secretKey: net.rng.bytes(32) });
  net.setLink('client', 'server', link);
  net.setLink('server', 'client', back);
  const start = net.now;
  const conn = client.endpoint.connect(net.now, server.addr, { serverKey: serverKey.public().toBytes(), alpn });
  net.runUntil(() => conn.isEstablished || conn.isClosed, { what: 'handshake' });
  expect(conn.closeError).toBeUndefined();
  const id = conn.openStream('bi')!;
  // Deterministic payload from the seed.
  const payload = new Uint8Array(size);
  for (let i = 0; i < size; i += 4096) payload.set(net.rng.bytes(Math.min(4096, size - i)), i);
  const want = createHash('sha256').update(payload).digest('hex');
  const hash = createHash('sha256');
  let written = 0;
  let received = 0;
  let done = false;
  let serverConn: Connection | undefined;
  net.runUntil(
    () => {
      if (written < size) {
        written += conn.writeStream(id, payload.subarray(written, Math.min(size, written + 256 * 1024)));
        if (written === size) conn.finishStream(id);
      }
      serverConn ??= server.endpoint.connections[0];
      if (serverConn) {
        for (;;) {
          const r = serverConn.readStream(id);
          if (r.data) {
            hash.update(r.data);
            received += r.data.length;
          }
          if (r.fin) done = true;
          if (!r.data) break;
        }
      }
      if (conn.isClosed || serverConn?.isClosed) throw new Error(`connection closed: ${conn.closeError?.message ?? serverConn?.closeError?.message}`);
      return done;
    },
    { what: `transfer of ${size} bytes`, maxTime: 600_000_000 },
  );
  expect(received).toBe(size);
  return { digestOk: hash.digest('hex') === want, client: conn, server: serverConn!, virtualMs: (net.now - start) / 1000 };
}

const cases: Array<[string, Partial<LinkConditions>, Partial<LinkConditions>?]> = [
  ['no loss', {}],
  ['5% loss both ways', { loss: 0.05 }],
  ['20% loss both ways', { loss: 0.2 }],
  ['reordering (jitter 20 ms over 5 ms latency)', { jitter: 20_000 }],
  ['duplication 10%', { duplicate: 0.1 }],
  ['corruption 5%', { corrupt: 0.05 }],
  ['a 2 s blackhole mid-transfer', { blackholes: [[1_300_000, 3_300_000]], rate: 20 * MiB }],
  ['1200-byte MTU', { mtu: 1200 }],
  ['10 Mbit/s with a small queue', { rate: 1_250_000, queue: 32 * 1024, latency: 20_000 }],
];

describe('simulated network: 16 MiB verified transfers', () => {
  for (const [name, link, back] of cases) {
    it(name, () => {
      const seed = testSeed(`sim transfer ${name}`);
      const r = transfer(seed, 16 * MiB, link, back);
      expect(r.digestOk).toBe(true);
      const s = r.client.stats();
      console.log(`${name}: ${r.virtualMs.toFixed(0)} virtual ms, lost ${s.lostPackets}, mtu ${s.mtu}, rtt ${s.rtt.toFixed(1)} ms, cwnd ${s.cwnd}`);
    }, 180_000);
  }

  it('finds the 1452-byte path MTU when the link allows it', () => {
    const r = transfer(testSeed('sim pmtud'), 1 * MiB, { mtu: 1500 });
    expect(r.client.stats().mtu).toBe(1452);
  });

  it('stays at 1200 when larger datagrams are dropped', () => {
    const r = transfer(testSeed('sim pmtud blackhole'), 1 * MiB, { mtu: 1300 });
    expect(r.client.stats().mtu).toBe(1200);
  });
});
