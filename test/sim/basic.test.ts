import { describe, expect, it } from 'vitest';
import { SimNetwork } from './harness.ts';
import { SecretKey } from '../../src/identity/index.ts';
import { testSeed } from '../helpers/seed.ts';

const alpn = new TextEncoder().encode('sim/1');

/** A server and a client on a simulated network, the client's connection started. */
function dial(seedName: string) {
  const net = new SimNetwork(testSeed(seedName));
  const serverKey = SecretKey.generate();
  const server = net.addNode('server', { secretKey: serverKey.toBytes(), alpns: [alpn] });
  const client = net.addNode('client', { secretKey: SecretKey.generate().toBytes() });
  const conn = client.endpoint.connect(net.now, server.addr, { serverKey: serverKey.public().toBytes(), alpn });
  return { net, server, client, conn };
}

describe('QUIC in the simulator', () => {
  it('handshakes and moves a stream', () => {
    const { net, server, conn } = dial('sim basic');
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

  // The client is established once it has processed the server's flight, before the datagram
  // with its Finished is built. A close right then must let that flight leave first: the
  // server then completes its handshake and sees our application close, not a handshake
  // its peer aborted (APPLICATION_ERROR without our code).
  it('a close at the moment the client is established still completes the server handshake first', () => {
    const { net, server, client, conn } = dial('sim close at establishment');
    // Close inside the step that establishes the client, before the simulator polls its
    // output (as an application reacting to 'connected' before the driver sends may).
    const handle = client.endpoint.handleDatagram.bind(client.endpoint);
    let closedEarly = false;
    client.endpoint.handleDatagram = (now, path, data) => {
      handle(now, path, data);
      if (conn.isEstablished && !closedEarly) {
        closedEarly = true;
        conn.close(now, 4321, 'right away');
      }
    };
    net.runUntil(() => server.endpoint.connections[0]?.closeError !== undefined, { what: 'server sees the close' });
    const serverConn = server.endpoint.connections[0]!;
    expect(closedEarly).toBe(true);
    expect(serverConn.peerPublicKey).toBeDefined();
    expect(serverConn.closeError).toMatchObject({ kind: 'application', remote: true, applicationCode: 4321, reason: 'right away' });
    expect(conn.closeError).toMatchObject({ kind: 'local', applicationCode: 4321 });
  });
});
