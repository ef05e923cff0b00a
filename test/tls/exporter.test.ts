/**
 * `exportKeyingMaterial` (RFC 8446 §7.5) checked against an independent implementation:
 * OpenSSL through node:tls (`TLSSocket.exportKeyingMaterial`), with our TLS engine as client
 * and as server, for each cipher suite (SHA-256 and SHA-384), several labels, contexts and
 * lengths. Then over QUIC: both ends of a connection agree, and different labels, contexts
 * or connections give different values.
 */
import { afterEach, describe, expect, it } from 'vitest';
import net from 'node:net';
import tls from 'node:tls';
import { once } from 'node:events';
import { nodeCryptoProvider } from '../../src/transport/crypto/index.ts';
import { TlsClientSession, TlsServerSession, type CryptoSession } from '../../src/transport/quic/tls/index.ts';
import { toHex } from '../../src/util/bytes.ts';
import { Endpoint, EndpointAddr, type Connection } from '../../src/index.ts';
import { RecordLayer } from '../helpers/tls-records.ts';
import { selfSignedEd25519 } from '../helpers/x509.ts';

const SUITES: Record<number, string> = { 0x1301: 'TLS_AES_128_GCM_SHA256', 0x1302: 'TLS_AES_256_GCM_SHA384', 0x1303: 'TLS_CHACHA20_POLY1305_SHA256' };
const alpn = new TextEncoder().encode('test/1');
const cleanup: (() => unknown)[] = [];
afterEach(async () => {
  for (const c of cleanup.splice(0).reverse()) await c();
});

const ours = selfSignedEd25519('sdnet-test');
const theirs = selfSignedEd25519('openssl-test');

/** (label, context, length) cases; `undefined` context = absent on the OpenSSL side. */
const CASES: Array<[string, Uint8Array | undefined, number]> = [
  ['EXPORTER-sdnet-pairing', new TextEncoder().encode('sdnet/pair/1'), 32],
  ['EXPORTER-Channel-Binding', new Uint8Array(0), 32],
  ['EXPORTER-Channel-Binding', undefined, 32],
  ['EXPORTER-x', Uint8Array.from({ length: 300 }, (_, i) => i & 0xff), 1],
  ['EXPORTER-long-output', new Uint8Array([1, 2, 3]), 200],
];

function check(session: CryptoSession, peer: tls.TLSSocket): void {
  for (const [label, context, length] of CASES) {
    const mine = session.exportKeyingMaterial(label, context ?? new Uint8Array(0), length)!;
    const openssl = context === undefined ? (peer.exportKeyingMaterial as (length: number, label: string) => Buffer).call(peer, length, label) : peer.exportKeyingMaterial(length, label, Buffer.from(context));
    expect(mine.length).toBe(length);
    expect(toHex(mine)).toBe(openssl.toString('hex'));
  }
}

describe('exporter vs OpenSSL (node:tls)', () => {
  for (const suite of [0x1301, 0x1302, 0x1303]) {
    it(`our client, OpenSSL server, ${SUITES[suite]}: identical keying material`, async () => {
      const server = tls.createServer({ key: theirs.keyPem, cert: theirs.certPem, minVersion: 'TLSv1.3', ALPNProtocols: ['test/1'], requestCert: true, rejectUnauthorized: false });
      cleanup.push(() => server.close());
      const accepted = new Promise<tls.TLSSocket>((resolve) => server.once('secureConnection', resolve));
      server.listen(0, '127.0.0.1');
      await once(server, 'listening');
      const socket = net.connect((server.address() as net.AddressInfo).port, '127.0.0.1');
      cleanup.push(() => socket.destroy());
      await once(socket, 'connect');
      const session = new TlsClientSession({
        provider: nodeCryptoProvider,
        certificate: { type: 'x509', secretKey: ours.key.toBytes(), chain: [ours.der] },
        alpnProtocols: [alpn],
        cipherSuites: [suite],
        serverName: 'localhost',
        verifyServerKey: () => true,
      });
      // Before the handshake there is nothing to export.
      expect(session.exportKeyingMaterial('EXPORTER-x', new Uint8Array(0), 32)).toBeUndefined();
      const records = new RecordLayer(session, socket);
      await records.until(() => !session.isHandshaking, 'handshake');
      const peer = await accepted;
      expect(peer.getCipher().standardName).toBe(SUITES[suite]);
      check(session, peer);
    });

    it(`OpenSSL client, our server, ${SUITES[suite]}: identical keying material`, async () => {
      const sessions: TlsServerSession[] = [];
      const layers: RecordLayer[] = [];
      const server = net.createServer((socket) => {
        const session = new TlsServerSession({
          provider: nodeCryptoProvider,
          certificate: { type: 'x509', secretKey: ours.key.toBytes(), chain: [ours.der] },
          alpnProtocols: [alpn],
          cipherSuites: [suite],
          requireClientCertificate: true,
        });
        sessions.push(session);
        layers.push(new RecordLayer(session, socket));
      });
      cleanup.push(() => server.close());
      server.listen(0, '127.0.0.1');
      await once(server, 'listening');
      const client = tls.connect({ port: (server.address() as net.AddressInfo).port, host: '127.0.0.1', key: theirs.keyPem, cert: theirs.certPem, minVersion: 'TLSv1.3', ALPNProtocols: ['test/1'], rejectUnauthorized: false });
      cleanup.push(() => client.destroy());
      await once(client, 'secureConnect');
      // The server's session completes when the client's Finished arrives.
      await layers[0]!.until(() => !sessions[0]!.isHandshaking, 'client Finished');
      check(sessions[0]!, client);
    });
  }

  it('rejects a label longer than 249 bytes', async () => {
    const session = new TlsClientSession({ provider: nodeCryptoProvider, certificate: { type: 'raw-public-key', secretKey: ours.key.toBytes() }, alpnProtocols: [alpn], expectedServerKey: theirs.key.public().toBytes() });
    expect(() => session.exportKeyingMaterial('x'.repeat(250), new Uint8Array(0), 32)).toThrow(RangeError);
  });
});

describe('Connection.exportKeyingMaterial over QUIC', () => {
  const ALPN = 'sdnet/exporter-test/0';
  async function pair(): Promise<{ client: Connection; server: Connection }> {
    const a = await Endpoint.bind({ bindAddr: ['127.0.0.1:0'], alpns: [ALPN] });
    const b = await Endpoint.bind({ bindAddr: ['127.0.0.1:0'] });
    cleanup.push(() => a.close({ graceMs: 50 }), () => b.close({ graceMs: 50 }));
    const accepted = (async () => {
      for await (const inc of a.accept()) return inc.accept();
      throw new Error('no incoming');
    })();
    const client = await b.connect(EndpointAddr.from({ id: a.id, directAddresses: a.boundSockets }), ALPN);
    return { client, server: await accepted };
  }

  it('both ends derive the same bytes; label, context and connection each change them', async () => {
    const one = await pair();
    const ctx = new TextEncoder().encode('ctx');
    const c1 = one.client.exportKeyingMaterial('EXPORTER-sdnet-test', ctx, 32);
    const s1 = one.server.exportKeyingMaterial('EXPORTER-sdnet-test', ctx, 32);
    expect(toHex(c1)).toBe(toHex(s1));
    expect(toHex(one.client.exportKeyingMaterial('EXPORTER-sdnet-other', ctx, 32))).not.toBe(toHex(c1));
    expect(toHex(one.client.exportKeyingMaterial('EXPORTER-sdnet-test', new Uint8Array(0), 32))).not.toBe(toHex(c1));
    // The length is part of HKDF-Expand-Label's info: a shorter export is not a prefix.
    const short = one.server.exportKeyingMaterial('EXPORTER-sdnet-test', ctx, 16);
    expect(toHex(short)).toBe(toHex(one.client.exportKeyingMaterial('EXPORTER-sdnet-test', ctx, 16)));
    expect(toHex(short)).not.toBe(toHex(c1.subarray(0, 16)));
    const two = await pair();
    expect(toHex(two.client.exportKeyingMaterial('EXPORTER-sdnet-test', ctx, 32))).not.toBe(toHex(c1));
    expect(() => one.client.exportKeyingMaterial('EXPORTER-sdnet-test', ctx, 0)).toThrow(RangeError);
    expect(() => one.client.exportKeyingMaterial('EXPORTER-sdnet-test', ctx, 255 * 48 + 1)).toThrow(RangeError);
  });
});
