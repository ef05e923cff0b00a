/**
 * Test-only: a self-signed Ed25519 X.509 certificate (RFC 5280, RFC 8410) built with a few
 * lines of DER, so the TLS engine's X.509 test mode can be checked against OpenSSL.
 */
import { generateKeyPairSync, sign as nodeSign, type KeyObject } from 'node:crypto';
import { SecretKey } from '../../src/identity/index.ts';
import { selfSignedEd25519 as selfSigned } from '../../src/endpoint/x509.ts';
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
  const c = selfSigned(cn, key);
  return { key, der: c.der, certPem: c.certificatePem, keyPem: c.privateKeyPem };
}

// ---------------------------------------------------------------- Ed25519 and ECDSA P-256, self-signed or CA-issued


export type CertKeyAlgorithm = 'ed25519' | 'ecdsa-p256';

export interface IssuedCertificate {
  readonly algorithm: CertKeyAlgorithm;
  readonly cn: string;
  readonly key: KeyObject;
  readonly der: Uint8Array;
  /** SubjectPublicKeyInfo DER of the certificate's key. */
  readonly spki: Uint8Array;
  readonly certPem: string;
  /** PKCS#8 PEM of the private key. */
  readonly keyPem: string;
}

const oid = (...bytes: number[]) => der(0x06, Uint8Array.of(...bytes));
const ALG_ID: Record<CertKeyAlgorithm, Uint8Array> = {
  ed25519: ED25519_ALG,
  // ecdsa-with-SHA256 (RFC 5758 §3.2), no parameters.
  'ecdsa-p256': seq(oid(0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x02)),
};

const toPem = (label: string, bytes: Uint8Array) => `-----BEGIN ${label}-----\n${Buffer.from(bytes).toString('base64').match(/.{1,64}/g)!.join('\n')}\n-----END ${label}-----\n`;

/**
 * A v3 certificate for a fresh key of `algorithm`: self-signed, or issued by `issuer`; a CA
 * (basicConstraints cA) when `ca`, with DNS/IP subjectAltNames when given.
 */
export function issueCertificate(options: { cn: string; algorithm: CertKeyAlgorithm; issuer?: IssuedCertificate; ca?: boolean; dns?: string[]; ips?: number[][]; notAfter?: string }): IssuedCertificate {
  const { privateKey: key, publicKey } =
    options.algorithm === 'ed25519' ? generateKeyPairSync('ed25519') : generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
  const spki = new Uint8Array(publicKey.export({ type: 'spki', format: 'der' }));
  const signer = options.issuer ?? { algorithm: options.algorithm, cn: options.cn, key };
  const exts: Uint8Array[] = [];
  if (options.ca) exts.push(seq(oid(0x55, 0x1d, 0x13), der(0x01, Uint8Array.of(0xff)), der(0x04, seq(der(0x01, Uint8Array.of(0xff))))));
  const names = [...(options.dns ?? []).map((d) => der(0x82, ascii(d))), ...(options.ips ?? []).map((ip) => der(0x87, Uint8Array.of(...ip)))];
  if (names.length > 0) exts.push(seq(oid(0x55, 0x1d, 0x11), der(0x04, seq(...names))));
  const serial = Uint8Array.of(0x01, ...spki.subarray(spki.length - 7));
  const tbs = seq(
    der(0xa0, der(0x02, Uint8Array.of(2))),
    der(0x02, serial),
    ALG_ID[signer.algorithm],
    name(signer.cn),
    seq(der(0x17, ascii('250101000000Z')), der(0x18, ascii(options.notAfter ?? '20991231235959Z'))),
    name(options.cn),
    spki,
    ...(exts.length > 0 ? [der(0xa3, seq(...exts))] : []),
  );
  const signature = new Uint8Array(nodeSign(signer.algorithm === 'ed25519' ? null : 'sha256', tbs, signer.key));
  const cert = seq(tbs, ALG_ID[signer.algorithm], der(0x03, Uint8Array.of(0), signature));
  return {
    algorithm: options.algorithm,
    cn: options.cn,
    key,
    der: cert,
    spki,
    certPem: toPem('CERTIFICATE', cert),
    keyPem: key.export({ type: 'pkcs8', format: 'pem' }).toString(),
  };
}
