/**
 * Test-only: a self-signed Ed25519 X.509 certificate (RFC 5280, RFC 8410) built with a few
 * lines of DER, so the TLS engine's X.509 test mode can be checked against OpenSSL.
 */
import { SecretKey } from '../../src/identity/index.ts';
import { encodeEd25519SpkiBytes } from '../../src/transport/quic/tls/raw-public-key.ts';
import { concatBytes } from '../../src/util/bytes.ts';

function der(tag: number, ...parts: Uint8Array[]): Uint8Array {
  const body = concatBytes(...parts);
  const n = body.length;
  const len = n < 0x80 ? Uint8Array.of(n) : n < 0x100 ? Uint8Array.of(0x81, n) : Uint8Array.of(0x82, n >> 8, n & 0xff);
  return concatBytes(Uint8Array.of(tag), len, body);
}
const seq = (...p: Uint8Array[]) => der(0x30, ...p);
const ED25519_ALG = seq(der(0x06, Uint8Array.of(0x2b, 0x65, 0x70)));
const name = (cn: string) => seq(der(0x31, seq(der(0x06, Uint8Array.of(0x55, 0x04, 0x03)), der(0x0c, new TextEncoder().encode(cn)))));
const ascii = (s: string) => new TextEncoder().encode(s);

export interface TestCertificate {
  key: SecretKey;
  der: Uint8Array;
  certPem: string;
  keyPem: string;
}

export function selfSignedEd25519(cn: string, key: SecretKey = SecretKey.generate()): TestCertificate {
  const tbs = seq(
    der(0xa0, der(0x02, Uint8Array.of(2))),
    der(0x02, Uint8Array.of(0x01, ...key.public().bytes.subarray(0, 7))),
    ED25519_ALG,
    name(cn),
    seq(der(0x17, ascii('250101000000Z')), der(0x18, ascii('20991231235959Z'))),
    name(cn),
    encodeEd25519SpkiBytes(key.public().bytes),
  );
  const cert = seq(tbs, ED25519_ALG, der(0x03, Uint8Array.of(0), key.sign(tbs).bytes));
  const pem = (label: string, bytes: Uint8Array) =>
    `-----BEGIN ${label}-----\n${Buffer.from(bytes).toString('base64').match(/.{1,64}/g)!.join('\n')}\n-----END ${label}-----\n`;
  const pkcs8 = concatBytes(Uint8Array.of(0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20), key.toBytes());
  return { key, der: cert, certPem: pem('CERTIFICATE', cert), keyPem: pem('PRIVATE KEY', pkcs8) };
}
