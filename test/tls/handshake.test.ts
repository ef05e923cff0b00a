/**
 * Our TLS 1.3 client against our server in raw-public-key mode (the iroh profile), over an
 * in-memory transport: success with each suite and with HelloRetryRequest, and each
 * failure case ending in its own alert and code.
 */
import { describe, expect, it } from 'vitest';
import { nobleCryptoProvider } from '../../src/transport/crypto/index.ts';
import {
  AlertDescription,
  ExtensionType,
  HandshakeType,
  TlsAlertError,
  type TrafficSecrets,
  type CryptoSession,
} from '../../src/transport/quic/tls/index.ts';
import {
  decodeClientHello,
  encodeClientHello,
  type Extension,
  decodeCertificate,
  decodeCertificateVerify,
  decodeEncryptedExtensions,
  encodeCertificate,
  encodeCertificateVerify,
  encodeEncryptedExtensions,
} from '../../src/transport/quic/tls/messages.ts';
import { SecretKey } from '../../src/identity/index.ts';
import { toHex } from '../../src/util/bytes.ts';
import { clientKey, pump, rawPair, serverKey, utf, type Tamper } from '../helpers/tls-pair.ts';

function drainSecrets(s: CryptoSession): TrafficSecrets[] {
  const out: TrafficSecrets[] = [];
  for (let x = s.pollSecrets(); x; x = s.pollSecrets()) out.push(x);
  return out;
}

function expectAlert(result: ReturnType<typeof pump>, side: 'client' | 'server', alert: keyof typeof AlertDescription, code: string): TlsAlertError {
  expect(result.failure, 'handshake should fail').toBeDefined();
  const err = result.failure!.error;
  expect(err).toBeInstanceOf(TlsAlertError);
  expect({ side: result.failure!.side, alert: (err as TlsAlertError).alert, code: (err as TlsAlertError).code }).toEqual({ side, alert: AlertDescription[alert], code });
  expect((err as TlsAlertError).quicErrorCode).toBe(0x100 + AlertDescription[alert]);
  return err as TlsAlertError;
}

/** Replace the message of `type` sent by `from` with `rewrite(body)`. */
function rewriting(from: 'client' | 'server', type: number, rewrite: (body: Uint8Array) => Uint8Array): Tamper {
  return (side, _level, data) => (side === from && data[0] === type ? rewrite(data.subarray(4)) : data);
}

describe('TLS 1.3 raw-public-key handshake, TS client ↔ TS server', () => {
  for (const suite of [0x1301, 0x1302, 0x1303]) {
    it(`completes with suite 0x${suite.toString(16)} and agrees on every secret`, () => {
      const { client, server } = rawPair({ client: { cipherSuites: [suite] } });
      const result = pump(client, server);
      expect(result.failure).toBeUndefined();
      expect(client.isHandshaking).toBe(false);
      expect(server.isHandshaking).toBe(false);
      expect(client.cipherSuite?.id).toBe(suite);
      expect(server.cipherSuite?.id).toBe(suite);
      const c = drainSecrets(client);
      const s = drainSecrets(server);
      expect(c.map((x) => x.level)).toEqual(['handshake', 'application']);
      for (let i = 0; i < 2; i++) {
        expect(toHex(c[i]!.local)).toBe(toHex(s[i]!.remote));
        expect(toHex(c[i]!.remote)).toBe(toHex(s[i]!.local));
      }
      expect(toHex(client.peerPublicKey!)).toBe(serverKey.public().toString());
      expect(toHex(server.peerPublicKey!)).toBe(clientKey.public().toString());
      expect(new TextDecoder().decode(client.alpn)).toBe('test/1');
      expect(new TextDecoder().decode(server.alpn)).toBe('test/1');
      expect(new TextDecoder().decode(client.peerTransportParameters)).toBe('server-params');
      expect(new TextDecoder().decode(server.peerTransportParameters)).toBe('client-params');
      expect(server.serverName).toMatch(/\.iroh\.invalid$/);
      expect(toHex(client.exporterMasterSecret!)).toBe(toHex(server.exporterMasterSecret!));
    });
  }

  it('uses the server preference among the client offers', () => {
    const { client, server } = rawPair({ client: { cipherSuites: [0x1303, 0x1302] }, server: { cipherSuites: [0x1302, 0x1303] } });
    expect(pump(client, server).failure).toBeUndefined();
    expect(client.cipherSuite?.id).toBe(0x1302);
  });

  it('completes after a HelloRetryRequest when the client sent no x25519 share', () => {
    const { client, server } = rawPair({ client: { sendEmptyKeyShare: true } });
    const result = pump(client, server);
    expect(result.failure).toBeUndefined();
    // CH1, HRR, CH2, SH, then the encrypted flights.
    expect(result.messages.slice(0, 4).map((m) => `${m.from}:${m.data[0]}`)).toEqual(['client:1', 'server:2', 'client:1', 'server:2']);
    expect(client.isHandshaking || server.isHandshaking).toBe(false);
    expect(toHex(drainSecrets(client)[1]!.local)).toBe(toHex(drainSecrets(server)[1]!.remote));
  });

  it('interoperates across providers (noble client, node server)', () => {
    const { client, server } = rawPair({ client: { provider: nobleCryptoProvider, cipherSuites: [0x1303] } });
    expect(pump(client, server).failure).toBeUndefined();
    expect(client.isHandshaking).toBe(false);
  });

  it('does not require SNI on the server (iroh ≥ 1.0.3 sends none)', () => {
    const { client, server } = rawPair({ client: { serverName: undefined } });
    expect(pump(client, server).failure).toBeUndefined();
    expect(server.serverName).toBeUndefined();
  });
});

describe('TLS handshake failures: each with its own alert and code', () => {
  it('wrong expected EndpointId → bad_certificate, ERR_TLS_PEER_ID_MISMATCH', () => {
    const { client, server } = rawPair({ client: { expectedServerKey: SecretKey.generate().public().toBytes() } });
    expectAlert(pump(client, server), 'client', 'bad_certificate', 'ERR_TLS_PEER_ID_MISMATCH');
  });

  it('client without the certificate-type extensions → handshake_failure, ERR_TLS_CERT_TYPE', () => {
    const { client, server } = rawPair();
    const strip: Tamper = (side, _l, data) => {
      if (side !== 'client' || data[0] !== HandshakeType.client_hello) return data;
      // Rebuild the ClientHello without extensions 19 and 20.
      return reencodeClientHello(data, (exts) => exts.filter((e) => e.type !== 19 && e.type !== 20));
    };
    expectAlert(pump(client, server, strip), 'server', 'handshake_failure', 'ERR_TLS_CERT_TYPE');
  });

  it('server not echoing the certificate-type extensions → handshake_failure, ERR_TLS_CERT_TYPE', () => {
    const { client, server } = rawPair();
    const strip = rewriting('server', HandshakeType.encrypted_extensions, (body) =>
      encodeEncryptedExtensions({ extensions: decodeEncryptedExtensions(body).extensions.filter((e) => e.type !== ExtensionType.server_certificate_type) }),
    );
    expectAlert(pump(client, server, strip), 'client', 'handshake_failure', 'ERR_TLS_CERT_TYPE');
  });

  it('wrong CertificateVerify signature → decrypt_error, ERR_TLS_BAD_SIGNATURE', () => {
    const { client, server } = rawPair();
    const corrupt = rewriting('server', HandshakeType.certificate_verify, (body) => {
      const cv = decodeCertificateVerify(body);
      const sig = cv.signature.slice();
      sig[5]! ^= 0x40;
      return encodeCertificateVerify({ scheme: cv.scheme, signature: sig });
    });
    expectAlert(pump(client, server, corrupt), 'client', 'decrypt_error', 'ERR_TLS_BAD_SIGNATURE');
  });

  it('wrong client CertificateVerify signature → the server rejects it', () => {
    const { client, server } = rawPair();
    const corrupt = rewriting('client', HandshakeType.certificate_verify, (body) => {
      const cv = decodeCertificateVerify(body);
      return encodeCertificateVerify({ scheme: cv.scheme, signature: new Uint8Array(64).fill(7) });
    });
    expectAlert(pump(client, server, corrupt), 'server', 'decrypt_error', 'ERR_TLS_BAD_SIGNATURE');
  });

  it('a second certificate entry → unsupported_certificate, ERR_TLS_CERT_CHAIN', () => {
    const { client, server } = rawPair();
    const twice = rewriting('server', HandshakeType.certificate, (body) => {
      const cert = decodeCertificate(body, 10);
      return encodeCertificate({ context: cert.context, entries: [cert.entries[0]!, cert.entries[0]!] });
    });
    expectAlert(pump(client, server, twice), 'client', 'unsupported_certificate', 'ERR_TLS_CERT_CHAIN');
  });

  it('a non-Ed25519 signature scheme → illegal_parameter, ERR_TLS_SIGNATURE_SCHEME', () => {
    const { client, server } = rawPair();
    const scheme = rewriting('server', HandshakeType.certificate_verify, (body) => {
      const cv = decodeCertificateVerify(body);
      return encodeCertificateVerify({ scheme: 0x0804, signature: cv.signature });
    });
    expectAlert(pump(client, server, scheme), 'client', 'illegal_parameter', 'ERR_TLS_SIGNATURE_SCHEME');
  });

  it('no ALPN in common → no_application_protocol, ERR_TLS_NO_ALPN (server side)', () => {
    const { client, server } = rawPair({ server: { alpnProtocols: [utf('other/1')] } });
    expectAlert(pump(client, server), 'server', 'no_application_protocol', 'ERR_TLS_NO_ALPN');
  });

  it('no ALPN selected by the server → no_application_protocol, ERR_TLS_NO_ALPN (client side)', () => {
    const { client, server } = rawPair();
    const strip = rewriting('server', HandshakeType.encrypted_extensions, (body) =>
      encodeEncryptedExtensions({ extensions: decodeEncryptedExtensions(body).extensions.filter((e) => e.type !== ExtensionType.application_layer_protocol_negotiation) }),
    );
    expectAlert(pump(client, server, strip), 'client', 'no_application_protocol', 'ERR_TLS_NO_ALPN');
  });

  it('a tampered Finished → decrypt_error, ERR_TLS_BAD_FINISHED', () => {
    const { client, server } = rawPair();
    const fin = rewriting('server', HandshakeType.finished, (body) => {
      const b = body.slice();
      b[0]! ^= 1;
      return Uint8Array.of(HandshakeType.finished, 0, 0, b.length, ...b);
    });
    expectAlert(pump(client, server, fin), 'client', 'decrypt_error', 'ERR_TLS_BAD_FINISHED');
  });

  it('missing QUIC transport parameters → missing_extension, ERR_TLS_MISSING_TRANSPORT_PARAMETERS', () => {
    const { client, server } = rawPair({ client: { transportParameters: undefined } });
    expectAlert(pump(client, server), 'server', 'missing_extension', 'ERR_TLS_MISSING_TRANSPORT_PARAMETERS');
  });

  it('an empty client certificate → certificate_required, ERR_TLS_CERTIFICATE_REQUIRED', () => {
    const { client, server } = rawPair();
    const empty = rewriting('client', HandshakeType.certificate, () => encodeCertificate({ context: new Uint8Array(0), entries: [] }));
    expectAlert(pump(client, server, empty), 'server', 'certificate_required', 'ERR_TLS_CERTIFICATE_REQUIRED');
  });

  it('a small-order key as certificate → bad_certificate, ERR_TLS_BAD_CERTIFICATE', () => {
    const { client, server } = rawPair();
    const weak = rewriting('server', HandshakeType.certificate, () =>
      encodeCertificate({ context: new Uint8Array(0), entries: [{ data: Uint8Array.of(0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00, 1, ...new Uint8Array(31)), extensions: [] }] }),
    );
    expectAlert(pump(client, server, weak), 'client', 'bad_certificate', 'ERR_TLS_BAD_CERTIFICATE');
  });

  it('no cipher suite in common → handshake_failure, ERR_TLS_NO_COMMON_CIPHER_SUITE', () => {
    const { client, server } = rawPair({ client: { cipherSuites: [0x1301] }, server: { cipherSuites: [0x1303] } });
    expectAlert(pump(client, server), 'server', 'handshake_failure', 'ERR_TLS_NO_COMMON_CIPHER_SUITE');
  });

  it('a message at the wrong encryption level → unexpected_message', () => {
    const { client, server } = rawPair();
    server.handleHandshakeData('initial', client.pollHandshakeData()!.data);
    server.pollHandshakeData();
    const ee = server.pollHandshakeData()!;
    expect(() => client.handleHandshakeData('initial', ee.data)).toThrow(expect.objectContaining({ code: 'ERR_TLS_UNEXPECTED_MESSAGE' }));
  });

  it('a message longer than the limit → unexpected_message before buffering it', () => {
    const { server } = rawPair();
    expect(() => server.handleHandshakeData('initial', Uint8Array.of(1, 0xff, 0xff, 0xff))).toThrow(expect.objectContaining({ code: 'ERR_TLS_MESSAGE_TOO_LARGE' }));
  });
});

function reencodeClientHello(raw: Uint8Array, edit: (exts: Extension[]) => Extension[]): Uint8Array {
  const { legacyVersion: _v, ...ch } = decodeClientHello(raw.subarray(4));
  return encodeClientHello({ ...ch, extensions: edit(ch.extensions) });
}
