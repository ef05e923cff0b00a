/**
 * X.509 credentials through the public `Endpoint` option (issue 20, item 5): two sdnet
 * endpoints over real UDP sockets authenticating with certificates instead of iroh's raw
 * public keys — Ed25519 and ECDSA P-256 leaves, pinned keys, a CA-issued chain, and the
 * refusals a wrong certificate must cause. Raw public keys stay the default.
 */
import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { Endpoint, type Connection, type X509Options } from '../../src/endpoint/index.ts';
import { issueCertificate, type CertKeyAlgorithm, type IssuedCertificate } from '../helpers/x509.ts';

const ALPN = 'x509-test/1';

async function readAll(r: ReadableStream<Uint8Array>): Promise<Uint8Array> {
  const parts: Uint8Array[] = [];
  for await (const c of r) parts.push(c);
  return Buffer.concat(parts);
}

const creds = (cert: IssuedCertificate, verify: Partial<X509Options>): X509Options => ({ certificateChain: cert.certPem, privateKey: cert.keyPem, ...verify });

/** A server that answers every bidi stream with the SHA-256 of what it read; returns its accepted connections. */
function serveHashes(server: Endpoint): Connection[] {
  const conns: Connection[] = [];
  void (async () => {
    for await (const incoming of server.accept()) {
      void incoming
        .accept()
        .then(async (conn) => {
          conns.push(conn);
          for (;;) {
            const bi = await conn.acceptBi();
            const data = await readAll(bi.readable);
            const w = bi.writable.getWriter();
            await w.write(createHash('sha256').update(data).digest());
            await w.close();
          }
        })
        .catch(() => undefined);
    }
  })();
  return conns;
}

async function hashRoundTrip(conn: Connection, payload: Uint8Array): Promise<string> {
  const bi = await conn.openBi();
  const w = bi.writable.getWriter();
  for (let off = 0; off < payload.length; off += 65536) await w.write(payload.subarray(off, off + 65536));
  await w.close();
  return Buffer.from(await readAll(bi.readable)).toString('hex');
}

describe('X.509 credentials between two sdnet endpoints (public Endpoint option)', () => {
  for (const algorithm of ['ed25519', 'ecdsa-p256'] as CertKeyAlgorithm[]) {
    it(`${algorithm} certificates, pinned both ways, mutual authentication: 1 MiB echoed by hash`, async () => {
      const serverCert = issueCertificate({ cn: 'server', algorithm });
      const clientCert = issueCertificate({ cn: 'client', algorithm });
      const server = await Endpoint.bind({
        alpns: [ALPN],
        bindAddr: '127.0.0.1:0',
        x509: creds(serverCert, { pinnedPeerKeys: [clientCert.certPem], requireClientCertificate: true }),
      });
      const client = await Endpoint.bind({ bindAddr: '127.0.0.1:0', x509: creds(clientCert, { pinnedPeerKeys: [serverCert.spki] }) });
      // The endpoints' connection events fire for X.509 peers too; an ECDSA peer has no
      // EndpointId, so theirs is undefined (this threw from inside the driver's pass before).
      const opened: string[] = [];
      server.on('connection-opened', (e) => opened.push(`server ${e.remoteId === undefined ? 'no-id' : 'id'}`));
      client.on('connection-opened', (e) => opened.push(`client ${e.remoteId === undefined ? 'no-id' : 'id'}`));
      try {
        const accepted = serveHashes(server);
        const conn = await client.connect(server.boundSockets[0]!.toString(), ALPN, { serverName: 'server' });
        expect(Buffer.from(conn.peerCertificates[0]!).equals(Buffer.from(serverCert.der))).toBe(true);
        const payload = new Uint8Array(1024 * 1024).map((_, i) => (i * 13) & 0xff);
        expect(await hashRoundTrip(conn, payload)).toBe(createHash('sha256').update(payload).digest('hex'));
        // The server saw the client's certificate.
        expect(Buffer.from(accepted[0]!.peerCertificates[0]!).equals(Buffer.from(clientCert.der))).toBe(true);
        if (algorithm === 'ecdsa-p256') {
          // No Ed25519 key, so no EndpointId: a stable error, not a made-up id.
          expect(() => conn.remoteId).toThrow(expect.objectContaining({ code: 'ERR_NO_ENDPOINT_ID' }));
          expect(conn.remoteIdIfAny).toBeUndefined();
          expect(opened.sort()).toEqual(['client no-id', 'server no-id']);
        } else {
          expect(conn.remoteId.toBytes()).toEqual(serverCert.spki.subarray(12));
          expect(opened.sort()).toEqual(['client id', 'server id']);
        }
        conn.close(0, 'done');
      } finally {
        await client.close();
        await server.close();
      }
    });
  }

  it('a CA-issued ECDSA chain with the intermediate, checked against the CA and the dialled name; the server asks no client certificate', async () => {
    const root = issueCertificate({ cn: 'Test Root', algorithm: 'ecdsa-p256', ca: true });
    const intermediate = issueCertificate({ cn: 'Test Intermediate', algorithm: 'ed25519', ca: true, issuer: root });
    const leaf = issueCertificate({ cn: 'quic.test', algorithm: 'ecdsa-p256', issuer: intermediate, dns: ['quic.test'], ips: [[127, 0, 0, 1]] });
    const clientCert = issueCertificate({ cn: 'client', algorithm: 'ed25519' });
    const server = await Endpoint.bind({
      alpns: [ALPN],
      bindAddr: '127.0.0.1:0',
      x509: { certificateChain: [leaf.certPem, intermediate.der], privateKey: leaf.keyPem, verifyPeer: () => true },
    });
    const seen: string[] = [];
    const client = await Endpoint.bind({
      bindAddr: '127.0.0.1:0',
      x509: creds(clientCert, { ca: root.certPem, verifyPeer: (p) => (seen.push(`${p.side} ${p.serverName} ${p.certificates.length}`), true) }),
    });
    try {
      serveHashes(server);
      const addr = server.boundSockets[0]!.toString();
      const conn = await client.connect(addr, ALPN, { serverName: 'quic.test' });
      expect(conn.peerCertificates.length).toBe(2);
      expect(seen).toEqual(['client quic.test 2']);
      expect(await hashRoundTrip(conn, new Uint8Array(1000))).toBe(createHash('sha256').update(new Uint8Array(1000)).digest('hex'));
      // A name the leaf does not carry is refused (the callback is not even asked).
      await expect(client.connect(addr, ALPN, { serverName: 'other.test' })).rejects.toMatchObject({ code: 'ERR_TLS_BAD_CERTIFICATE' });
      expect(seen.length).toBe(1);
      conn.close(0, 'done');
    } finally {
      await client.close();
      await server.close();
    }
  });

  it('refusals: unpinned server key, unknown CA; a raw-key endpoint cannot dial a bare socket address', async () => {
    const serverCert = issueCertificate({ cn: 'server', algorithm: 'ecdsa-p256' });
    const otherCa = issueCertificate({ cn: 'Other Root', algorithm: 'ed25519', ca: true });
    const clientCert = issueCertificate({ cn: 'client', algorithm: 'ecdsa-p256' });
    const server = await Endpoint.bind({
      alpns: [ALPN],
      bindAddr: '127.0.0.1:0',
      x509: creds(serverCert, { verifyPeer: () => true, requireClientCertificate: true }),
    });
    const pinnedElsewhere = await Endpoint.bind({ bindAddr: '127.0.0.1:0', x509: creds(clientCert, { pinnedPeerKeys: [clientCert.spki] }) });
    const wrongCa = await Endpoint.bind({ bindAddr: '127.0.0.1:0', x509: creds(clientCert, { ca: otherCa.der }) });
    const rawClient = await Endpoint.bind({ bindAddr: '127.0.0.1:0' });
    try {
      serveHashes(server);
      const addr = server.boundSockets[0]!.toString();
      await expect(pinnedElsewhere.connect(addr, ALPN)).rejects.toMatchObject({ code: 'ERR_TLS_BAD_CERTIFICATE' });
      await expect(wrongCa.connect(addr, ALPN)).rejects.toMatchObject({ code: 'ERR_TLS_BAD_CERTIFICATE' });
      // Raw public keys are still the default: such a client cannot dial a socket address...
      await expect(rawClient.connect(addr, ALPN)).rejects.toMatchObject({ code: 'ERR_INVALID_ARGUMENT' });
    } finally {
      await Promise.all([pinnedElsewhere.close(), wrongCa.close(), rawClient.close(), server.close()]);
    }
  });

  it('bad options fail at bind with ERR_INVALID_ARGUMENT', async () => {
    const a = issueCertificate({ cn: 'a', algorithm: 'ed25519' });
    const b = issueCertificate({ cn: 'b', algorithm: 'ecdsa-p256' });
    // The key of another certificate.
    await expect(Endpoint.bind({ bindAddr: '127.0.0.1:0', x509: { certificateChain: a.certPem, privateKey: b.keyPem, verifyPeer: () => true } })).rejects.toMatchObject({ code: 'ERR_INVALID_ARGUMENT' });
    // No way to verify peers.
    await expect(Endpoint.bind({ bindAddr: '127.0.0.1:0', x509: { certificateChain: a.certPem, privateKey: a.keyPem } })).rejects.toMatchObject({ code: 'ERR_INVALID_ARGUMENT' });
    // Not a certificate.
    await expect(Endpoint.bind({ bindAddr: '127.0.0.1:0', x509: { certificateChain: a.keyPem, privateKey: a.keyPem, verifyPeer: () => true } })).rejects.toMatchObject({ code: 'ERR_INVALID_ARGUMENT' });
  });
});
