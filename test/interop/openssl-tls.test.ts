/**
 * Our TLS 1.3 engine against OpenSSL (node:tls over local TCP, through a small record-layer
 * adapter), with Ed25519 X.509 certificates and mutual authentication: each cipher suite,
 * a HelloRetryRequest case, both directions, application data round-tripping.
 */
import { afterEach, describe, expect, it } from 'vitest';
import net from 'node:net';
import tls from 'node:tls';
import { once } from 'node:events';
import { nodeCryptoProvider } from '../../src/transport/crypto/index.ts';
import { TlsClientSession, TlsServerSession } from '../../src/transport/quic/tls/index.ts';
import { toHex } from '../../src/util/bytes.ts';
import { RecordLayer } from '../helpers/tls-records.ts';
import { selfSignedEd25519 } from '../helpers/x509.ts';

const SUITES: Record<number, string> = { 0x1301: 'TLS_AES_128_GCM_SHA256', 0x1302: 'TLS_AES_256_GCM_SHA384', 0x1303: 'TLS_CHACHA20_POLY1305_SHA256' };
const alpn = new TextEncoder().encode('test/1');
const cleanup: (() => void)[] = [];
afterEach(() => {
  for (const c of cleanup.splice(0)) c();
});

const ours = selfSignedEd25519('sdnet-test');
const theirs = selfSignedEd25519('openssl-test');

async function opensslServer(options: tls.TlsOptions): Promise<{ port: number; accepted: Promise<tls.TLSSocket> }> {
  const server = tls.createServer({
    key: theirs.keyPem,
    cert: theirs.certPem,
    minVersion: 'TLSv1.3',
    ALPNProtocols: ['test/1'],
    requestCert: true,
    rejectUnauthorized: false,
    ...options,
  });
  cleanup.push(() => server.close());
  const accepted = new Promise<tls.TLSSocket>((resolve, reject) => {
    server.once('secureConnection', (s: tls.TLSSocket) => {
      // Echo application data back.
      s.on('data', (d) => s.write(d));
      resolve(s);
    });
    server.once('tlsClientError', reject);
  });
  // A failing handshake rejects `accepted`; tests that expect failure do not await it.
  accepted.catch(() => undefined);
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return { port: (server.address() as net.AddressInfo).port, accepted };
}

async function ourClientAgainstOpenssl(suite: number, options: { sendEmptyKeyShare?: boolean; serverOptions?: tls.TlsOptions } = {}) {
  const { port, accepted } = await opensslServer({ ...options.serverOptions });
  const socket = net.connect(port, '127.0.0.1');
  cleanup.push(() => socket.destroy());
  await once(socket, 'connect');
  const session = new TlsClientSession({
    provider: nodeCryptoProvider,
    certificate: { type: 'x509', secretKey: ours.key.toBytes(), chain: [ours.der] },
    alpnProtocols: [alpn],
    cipherSuites: [suite],
    serverName: 'localhost',
    verifyServerKey: (key) => toHex(key) === theirs.key.public().toString(),
    sendEmptyKeyShare: options.sendEmptyKeyShare ?? false,
  });
  const records = new RecordLayer(session, socket);
  await records.until(() => !session.isHandshaking, 'handshake');
  const peer = await accepted;
  return { session, records, peer };
}

describe('our client → OpenSSL server (node:tls)', () => {
  for (const suite of [0x1301, 0x1302, 0x1303]) {
    it(`completes a mutually authenticated handshake with ${SUITES[suite]} and round-trips data`, async () => {
      const { session, records, peer } = await ourClientAgainstOpenssl(suite);
      expect(peer.getCipher().standardName).toBe(SUITES[suite]);
      expect(peer.alpnProtocol).toBe('test/1');
      // OpenSSL saw our Ed25519 certificate, and we saw theirs.
      expect(toHex(peer.getPeerCertificate(true).raw)).toBe(toHex(ours.der));
      expect(toHex(session.peerPublicKey!)).toBe(theirs.key.public().toString());
      expect(toHex(session.serverCertificates[0]!)).toBe(toHex(theirs.der));
      const message = new TextEncoder().encode(`hello over ${SUITES[suite]}`.repeat(1000));
      records.sendApplicationData(message);
      await records.until(() => records.receivedBytes >= message.length, 'echo');
      expect(toHex(Buffer.concat(records.received))).toBe(toHex(message));
    });
  }

  it('answers a HelloRetryRequest from OpenSSL', async () => {
    const { session, records } = await ourClientAgainstOpenssl(0x1301, { sendEmptyKeyShare: true });
    expect(session.isHandshaking).toBe(false);
    records.sendApplicationData(new TextEncoder().encode('after retry'));
    await records.until(() => records.receivedBytes >= 11, 'echo');
    expect(new TextDecoder().decode(Buffer.concat(records.received))).toBe('after retry');
  });

  it('fails with an alert when OpenSSL offers no common ALPN', async () => {
    const err = await ourClientAgainstOpenssl(0x1301, { serverOptions: { ALPNProtocols: ['other'] } }).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(String(err)).toMatch(/alert 120|no_application_protocol/);
  });
});

async function opensslClientAgainstOurs(suite: number, clientOptions: tls.ConnectionOptions = {}) {
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
    const records = new RecordLayer(session, socket);
    layers.push(records);
    socket.on('data', () => {
      // Echo application data once the handshake is done.
      for (const chunk of records.received.splice(0)) records.sendApplicationData(chunk);
    });
  });
  cleanup.push(() => server.close());
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const client = tls.connect({
    port: (server.address() as net.AddressInfo).port,
    host: '127.0.0.1',
    key: theirs.keyPem,
    cert: theirs.certPem,
    minVersion: 'TLSv1.3',
    ALPNProtocols: ['test/1'],
    rejectUnauthorized: false,
    ...clientOptions,
  });
  cleanup.push(() => client.destroy());
  await once(client, 'secureConnect');
  return { client, session: sessions[0]!, layer: layers[0]! };
}

describe('OpenSSL client (node:tls) → our server', () => {
  for (const suite of [0x1301, 0x1302, 0x1303]) {
    it(`completes a mutually authenticated handshake with ${SUITES[suite]} and round-trips data`, async () => {
      const { client, session, layer } = await opensslClientAgainstOurs(suite);
      expect(client.getCipher().standardName).toBe(SUITES[suite]);
      expect(client.alpnProtocol).toBe('test/1');
      expect(toHex(client.getPeerCertificate(true).raw)).toBe(toHex(ours.der));
      const message = Buffer.from('x'.repeat(40_000));
      client.write(message);
      let got = Buffer.alloc(0);
      while (got.length < message.length) got = Buffer.concat([got, (await once(client, 'data'))[0] as Buffer]);
      expect(got.equals(message)).toBe(true);
      await layer.until(() => !session.isHandshaking, 'client Finished');
      expect(toHex(session.peerPublicKey!)).toBe(theirs.key.public().toString());
      expect(toHex(session.clientCertificates[0]!)).toBe(toHex(theirs.der));
    });
  }

  it('sends a HelloRetryRequest when OpenSSL leads with a P-256 key share', async () => {
    const { client, session } = await opensslClientAgainstOurs(0x1301, { ecdhCurve: 'P-256:X25519' });
    expect(client.getCipher().standardName).toBe('TLS_AES_128_GCM_SHA256');
    client.write('ping');
    const [echo] = (await once(client, 'data')) as [Buffer];
    expect(echo.toString()).toBe('ping');
    expect(session.isHandshaking).toBe(false);
  });
});

/**
 * `exportKeyingMaterial` (RFC 8446 §7.5) against an independent implementation: OpenSSL's
 * `TLSSocket.exportKeyingMaterial`, with our engine as client and as server, each suite
 * (SHA-256 and SHA-384), several labels, contexts (absent, empty, long) and lengths.
 */
describe('exporter (RFC 8446 §7.5) vs OpenSSL', () => {
  const cases: Array<[string, Uint8Array | undefined, number]> = [
    ['EXPORTER-sdnet-pairing', new TextEncoder().encode('sdnet/pair/1'), 32],
    ['EXPORTER-Channel-Binding', new Uint8Array(0), 32],
    ['EXPORTER-Channel-Binding', undefined, 32],
    ['EXPORTER-x', Uint8Array.from({ length: 300 }, (_, i) => i & 0xff), 1],
    ['EXPORTER-long-output', new Uint8Array([1, 2, 3]), 200],
  ];
  const check = (session: TlsClientSession | TlsServerSession, peer: tls.TLSSocket): void => {
    for (const [label, context, length] of cases) {
      const mine = session.exportKeyingMaterial(label, context ?? new Uint8Array(0), length)!;
      // OpenSSL without a context (use_context = 0): TLS 1.3 hashes an empty one all the same.
      const theirs = context === undefined ? (peer.exportKeyingMaterial as (length: number, label: string) => Buffer).call(peer, length, label) : peer.exportKeyingMaterial(length, label, Buffer.from(context));
      expect(mine.length).toBe(length);
      expect(toHex(mine)).toBe(theirs.toString('hex'));
    }
  };
  for (const suite of [0x1301, 0x1302, 0x1303]) {
    it(`our client, OpenSSL server, ${SUITES[suite]}: identical keying material`, async () => {
      const { session, peer } = await ourClientAgainstOpenssl(suite);
      check(session, peer);
    });
    it(`OpenSSL client, our server, ${SUITES[suite]}: identical keying material`, async () => {
      const { client, session, layer } = await opensslClientAgainstOurs(suite);
      // The server's session completes when the client's Finished arrives.
      await layer.until(() => !session.isHandshaking, 'client Finished');
      check(session, client);
    });
  }
});
