/**
 * TLS alerts (RFC 8446 §6) as errors, and their QUIC mapping (RFC 9001 §4.8: a TLS alert
 * becomes the QUIC CRYPTO_ERROR 0x0100 + alert description).
 *
 * Every failure of the handshake throws a {@link TlsAlertError} with the alert to send and a
 * stable `code` saying why, so the same alert can still be told apart by cause.
 *
 * @module
 */
import { SdnetError } from '../../../util/errors.ts';

export const AlertDescription = {
  unexpected_message: 10,
  bad_record_mac: 20,
  handshake_failure: 40,
  bad_certificate: 42,
  unsupported_certificate: 43,
  certificate_unknown: 46,
  illegal_parameter: 47,
  decode_error: 50,
  decrypt_error: 51,
  protocol_version: 70,
  internal_error: 80,
  missing_extension: 109,
  unsupported_extension: 110,
  unrecognized_name: 112,
  certificate_required: 116,
  no_application_protocol: 120,
} as const;

export type AlertName = keyof typeof AlertDescription;

/** Stable error codes for handshake failures. */
export type TlsErrorCode =
  | 'ERR_TLS_DECODE'
  | 'ERR_TLS_UNEXPECTED_MESSAGE'
  | 'ERR_TLS_PROTOCOL_VERSION'
  | 'ERR_TLS_NO_COMMON_CIPHER_SUITE'
  | 'ERR_TLS_NO_COMMON_GROUP'
  | 'ERR_TLS_NO_COMMON_SIGNATURE_SCHEME'
  | 'ERR_TLS_ILLEGAL_PARAMETER'
  | 'ERR_TLS_UNSUPPORTED_EXTENSION'
  | 'ERR_TLS_MISSING_TRANSPORT_PARAMETERS'
  | 'ERR_TLS_NO_ALPN'
  | 'ERR_TLS_CERT_TYPE'
  | 'ERR_TLS_CERT_CHAIN'
  | 'ERR_TLS_BAD_CERTIFICATE'
  | 'ERR_TLS_PEER_ID_MISMATCH'
  | 'ERR_TLS_SIGNATURE_SCHEME'
  | 'ERR_TLS_BAD_SIGNATURE'
  | 'ERR_TLS_BAD_FINISHED'
  | 'ERR_TLS_CERTIFICATE_REQUIRED'
  | 'ERR_TLS_BAD_KEY_SHARE'
  | 'ERR_TLS_PEER_ALERT'
  | 'ERR_TLS_MESSAGE_TOO_LARGE';

/** A handshake failure: the alert to send, and why. */
export class TlsAlertError extends SdnetError {
  /** The alert description (RFC 8446 §6.2). */
  readonly alert: number;

  constructor(alert: AlertName, code: TlsErrorCode, message: string) {
    super(code, message);
    this.name = 'TlsAlertError';
    this.alert = AlertDescription[alert];
  }

  /** The QUIC transport error code for this alert (RFC 9001 §4.8). */
  get quicErrorCode(): number {
    return 0x100 + this.alert;
  }
}

/** Shorthand: `throw tlsAlert('decode_error', 'ERR_TLS_DECODE', '...')`. */
export function tlsAlert(alert: AlertName, code: TlsErrorCode, message: string): TlsAlertError {
  return new TlsAlertError(alert, code, message);
}
