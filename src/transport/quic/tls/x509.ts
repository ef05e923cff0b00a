/**
 * Just enough DER to find the SubjectPublicKeyInfo inside an X.509 certificate
 * (RFC 5280 §4.1) and read the key in it (Ed25519, RFC 8410; ECDSA P-256, RFC 5480). Used by
 * the X.509 credential mode; chains are judged by the application's verification callback
 * (or pinned keys), not here.
 *
 * @module
 */
import { DecodeError } from '../../../util/errors.ts';

interface Tlv {
  tag: number;
  /** Offset of the value. */
  start: number;
  /** Offset after the value. */
  end: number;
}

function readTlv(buf: Uint8Array, pos: number, limit: number): Tlv {
  if (pos + 2 > limit) throw new DecodeError('Cannot decode certificate: truncated DER');
  const tag = buf[pos]!;
  if ((tag & 0x1f) === 0x1f) throw new DecodeError('Cannot decode certificate: multi-byte DER tags are not used in X.509');
  let len = buf[pos + 1]!;
  let start = pos + 2;
  if (len & 0x80) {
    const n = len & 0x7f;
    // DER: long form only when needed, at most 4 length bytes here (certificates are < 64 KiB).
    if (n === 0 || n > 3 || start + n > limit) throw new DecodeError('Cannot decode certificate: bad DER length');
    len = 0;
    for (let i = 0; i < n; i++) len = (len << 8) | buf[start + i]!;
    start += n;
  }
  if (start + len > limit) throw new DecodeError('Cannot decode certificate: DER value overruns its container');
  return { tag, start, end: start + len };
}

/**
 * The DER SubjectPublicKeyInfo of an X.509 certificate.
 *
 * @throws {DecodeError} if the certificate is not well-formed enough to find it
 */
export function spkiFromCertificate(der: Uint8Array): Uint8Array {
  const cert = readTlv(der, 0, der.length);
  if (cert.tag !== 0x30 || cert.end !== der.length) throw new DecodeError('Cannot decode certificate: not a DER SEQUENCE');
  const tbs = readTlv(der, cert.start, cert.end);
  if (tbs.tag !== 0x30) throw new DecodeError('Cannot decode certificate: no TBSCertificate');
  let pos = tbs.start;
  let field = readTlv(der, pos, tbs.end);
  // [0] EXPLICIT version is optional.
  if (field.tag === 0xa0) {
    pos = field.end;
    field = readTlv(der, pos, tbs.end);
  }
  // serialNumber, signature, issuer, validity, subject, then subjectPublicKeyInfo.
  for (let i = 0; i < 5; i++) {
    pos = field.end;
    field = readTlv(der, pos, tbs.end);
  }
  if (field.tag !== 0x30) throw new DecodeError('Cannot decode certificate: no SubjectPublicKeyInfo');
  return der.slice(pos, field.end);
}

/** The public key of a SubjectPublicKeyInfo, for the algorithms the TLS engine signs with. */
export type SpkiKey = { readonly algorithm: 'ed25519'; readonly key: Uint8Array } | { readonly algorithm: 'ecdsa-p256'; readonly key: Uint8Array };

const OID_ED25519 = Uint8Array.of(0x2b, 0x65, 0x70);
/** id-ecPublicKey (RFC 5480 §2.1.1) and the secp256r1 named curve (§2.1.1.1). */
const OID_EC_PUBLIC_KEY = Uint8Array.of(0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01);
const OID_P256 = Uint8Array.of(0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07);

const same = (buf: Uint8Array, t: Tlv, oid: Uint8Array) => t.tag === 0x06 && t.end - t.start === oid.length && oid.every((b, i) => buf[t.start + i] === b);

/**
 * The key in a DER SubjectPublicKeyInfo: an Ed25519 key (32 bytes) or an uncompressed P-256
 * point (65 bytes); whether the point is on its curve is checked by whoever uses it.
 *
 * @throws {DecodeError} for any other algorithm or a malformed structure
 */
export function keyFromSpki(spki: Uint8Array): SpkiKey {
  const outer = readTlv(spki, 0, spki.length);
  if (outer.tag !== 0x30 || outer.end !== spki.length) throw new DecodeError('Cannot decode SubjectPublicKeyInfo: not a DER SEQUENCE');
  const alg = readTlv(spki, outer.start, outer.end);
  if (alg.tag !== 0x30) throw new DecodeError('Cannot decode SubjectPublicKeyInfo: no AlgorithmIdentifier');
  const oid = readTlv(spki, alg.start, alg.end);
  const bits = readTlv(spki, alg.end, outer.end);
  if (bits.tag !== 0x03 || bits.end !== outer.end || bits.end - bits.start < 2 || spki[bits.start] !== 0) {
    throw new DecodeError('Cannot decode SubjectPublicKeyInfo: bad subjectPublicKey BIT STRING');
  }
  const key = spki.slice(bits.start + 1, bits.end);
  if (same(spki, oid, OID_ED25519) && oid.end === alg.end) {
    // RFC 8410 §3: no parameters.
    if (key.length !== 32) throw new DecodeError('Cannot decode SubjectPublicKeyInfo: Ed25519 key is not 32 bytes');
    return { algorithm: 'ed25519', key };
  }
  if (same(spki, oid, OID_EC_PUBLIC_KEY)) {
    const curve = readTlv(spki, oid.end, alg.end);
    if (!same(spki, curve, OID_P256) || curve.end !== alg.end) throw new DecodeError('Cannot decode SubjectPublicKeyInfo: EC key on a curve other than P-256');
    if (key.length !== 65 || key[0] !== 0x04) throw new DecodeError('Cannot decode SubjectPublicKeyInfo: P-256 key is not an uncompressed point');
    return { algorithm: 'ecdsa-p256', key };
  }
  throw new DecodeError('Cannot decode SubjectPublicKeyInfo: the key is neither Ed25519 nor ECDSA P-256');
}
