/**
 * Just enough DER to find the SubjectPublicKeyInfo inside an X.509 certificate
 * (RFC 5280 §4.1). Used only by the X.509 test mode, which lets the TLS engine be checked
 * against OpenSSL through node:tls with Ed25519 certificates. Chains are not validated:
 * the test mode pins keys.
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
