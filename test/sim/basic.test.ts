import { describe, expect, it } from 'vitest';
import { SimNetwork } from './harness.ts';
import { SecretKey } from '../../src/identity/index.ts';
import { testSeed } from '../helpers/seed.ts';

const alpn = new TextEncoder().encode('sim/1');

describe('QUIC in the simulator', () => {
  it('handshakes and moves a stream', () => {
    const net = new SimNetwork(testSeed('sim basic'));
    const serverKey = SecretKey.generate();
    const server = net.addNode('server', { secretKey: serverKey.toBytes(), alpns: [alpn] });
    const client = net.addNode('client', { secretKey: SecretKey.generate().toBytes() });
    const conn = client.endpoint.connect(net.now, server.addr, { serverKey: serverKey.public().toBytes(), alpn });
    net.runUntil(() => conn.isEstablished, { what: 'client established' });
    const serverConn = server.endpoint.connections[0]!;
    net.runUntil(() => serverConn.isEstablished, { what: 'server established' });
    const id = conn.openStream('bi')!;
    const payload = new Uint8Array(200_000).map((_, i) => i % 251);
    let written = 0;
    const received: Uint8Array[] = [];
    let fin = false;
    net.runUntil(
      () => {
        if (written < payload.length) {
          written += conn.writeStream(id, payload.subarray(written));
          if (written === payload.length) conn.finishStream(id);
        }
        for (;;) {
          const r = serverConn.readStream(id);
          if (r.data) received.push(r.data.slice());
          if (r.fin) fin = true;
          if (!r.data) break;
        }
        return fin;
      },
      { what: 'stream delivered' },
    );
    const total = received.reduce((n, b) => n + b.length, 0);
    expect(total).toBe(payload.length);
    console.log(conn.stats());
  });
});
