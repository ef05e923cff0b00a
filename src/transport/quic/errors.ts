/**
 * QUIC transport errors (RFC 9000 §20.1) and the error raised inside the core when a peer
 * breaks the protocol: it carries the code to put in CONNECTION_CLOSE and the frame type
 * that caused it (RFC 9000 §19.19).
 *
 * @module
 */
import { SdnetError } from '../../util/errors.ts';

/** RFC 9000 §20.1 transport error codes (and CRYPTO_ERROR's base, RFC 9001 §4.8). */
export const TransportErrorCode = {
  NO_ERROR: 0x00,
  INTERNAL_ERROR: 0x01,
  CONNECTION_REFUSED: 0x02,
  FLOW_CONTROL_ERROR: 0x03,
  STREAM_LIMIT_ERROR: 0x04,
  STREAM_STATE_ERROR: 0x05,
  FINAL_SIZE_ERROR: 0x06,
  FRAME_ENCODING_ERROR: 0x07,
  TRANSPORT_PARAMETER_ERROR: 0x08,
  CONNECTION_ID_LIMIT_ERROR: 0x09,
  PROTOCOL_VIOLATION: 0x0a,
  INVALID_TOKEN: 0x0b,
  APPLICATION_ERROR: 0x0c,
  CRYPTO_BUFFER_EXCEEDED: 0x0d,
  KEY_UPDATE_ERROR: 0x0e,
  AEAD_LIMIT_REACHED: 0x0f,
  NO_VIABLE_PATH: 0x10,
  CRYPTO_ERROR: 0x100,
} as const;

const NAMES = new Map<number, string>(Object.entries(TransportErrorCode).map(([k, v]) => [v, k]));

/** The RFC name of a transport error code (CRYPTO_ERROR(0x1xx) for TLS alerts). */
export function transportErrorName(code: number): string {
  if (code >= 0x100 && code <= 0x1ff) return `CRYPTO_ERROR(0x${code.toString(16)})`;
  return NAMES.get(code) ?? `0x${code.toString(16)}`;
}

/** A protocol violation by the peer: close the connection with `transportCode`. */
export class TransportError extends SdnetError {
  readonly transportCode: number;
  /** The frame type that triggered the error, when known (0 otherwise, RFC 9000 §19.19). */
  readonly frameType: number;

  constructor(transportCode: number, reason: string, frameType = 0) {
    super('ERR_QUIC_TRANSPORT', `${transportErrorName(transportCode)}: ${reason}`);
    this.name = 'TransportError';
    this.transportCode = transportCode;
    this.frameType = frameType;
  }
}
