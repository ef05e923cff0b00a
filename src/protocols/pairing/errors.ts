/**
 * The errors of pairing, each with a stable code (shared/docs/cli.md: the CLI maps
 * `ERR_PAIRING_CODE_MALFORMED` to exit 2, the others to exit 1).
 *
 * @module
 */
import { SdnetError } from '../../util/errors.ts';

export type PairingErrorCode =
  /** Not 12 BIP39 words, a word not in the list, or a bad checksum: a typo, caught locally. */
  | 'ERR_PAIRING_CODE_MALFORMED'
  /** The key confirmation failed: the secret part of the code differs (or the peer is not the initiator). */
  | 'ERR_PAIRING_WRONG_CODE'
  /** No device answered for this code (not found on the LAN, at the relays, or at the given id). */
  | 'ERR_PAIRING_NOT_FOUND'
  /** The code expired (5 minutes). */
  | 'ERR_PAIRING_EXPIRED'
  /** Three wrong tries burnt the code. */
  | 'ERR_PAIRING_BURNT'
  /** The code was used already (single use). */
  | 'ERR_PAIRING_CODE_USED'
  /** The pairing was cancelled. */
  | 'ERR_PAIRING_CANCELLED'
  /** The exchange did not finish in time. */
  | 'ERR_PAIRING_TIMEOUT'
  /** The two devices are paired already (unpair first to pair again). */
  | 'ERR_PAIRING_ALREADY_PAIRED'
  /** The peer's CPace share was invalid (not a group element, or the identity). */
  | 'ERR_PAIRING_INVALID_SHARE'
  /** The peer broke the pairing protocol (out of order, malformed, undecryptable device info). */
  | 'ERR_PAIRING_PROTOCOL'
  /** Too many pairing attempts right now. */
  | 'ERR_PAIRING_BUSY'
  /** The device could not be reached. */
  | 'ERR_PAIRING_UNREACHABLE'
  /** A vouch (introduction) was refused, expired, or failed. */
  | 'ERR_VOUCH_REFUSED'
  | 'ERR_VOUCH_FAILED';

/** What the user sees for each code (the CLI prints `sdnet pair: <this>`). */
export const PAIRING_ERROR_TEXT: Readonly<Record<PairingErrorCode, string>> = {
  ERR_PAIRING_CODE_MALFORMED: 'malformed code',
  ERR_PAIRING_WRONG_CODE: 'wrong code',
  ERR_PAIRING_NOT_FOUND: 'no device is waiting for this code',
  ERR_PAIRING_EXPIRED: 'the code expired',
  ERR_PAIRING_BURNT: 'the code was burnt by 3 wrong tries',
  ERR_PAIRING_CODE_USED: 'the code was used already',
  ERR_PAIRING_CANCELLED: 'pairing cancelled',
  ERR_PAIRING_TIMEOUT: 'pairing timed out',
  ERR_PAIRING_ALREADY_PAIRED: 'the devices are paired already (sdnet unpair on both, then pair again)',
  ERR_PAIRING_INVALID_SHARE: 'the peer sent an invalid key share',
  ERR_PAIRING_PROTOCOL: 'the peer broke the pairing protocol',
  ERR_PAIRING_BUSY: 'too many pairing attempts',
  ERR_PAIRING_UNREACHABLE: 'the device could not be reached',
  ERR_VOUCH_REFUSED: 'the introduction was refused',
  ERR_VOUCH_FAILED: 'the introduction failed',
};

export class PairingError extends SdnetError {
  declare readonly code: PairingErrorCode;
  constructor(code: PairingErrorCode, message?: string, options?: { cause?: unknown }) {
    super(code, message ?? PAIRING_ERROR_TEXT[code], options);
    this.name = 'PairingError';
  }
}

/** Whether `code` is one of pairing's error codes. */
export function isPairingErrorCode(code: unknown): code is PairingErrorCode {
  return typeof code === 'string' && Object.hasOwn(PAIRING_ERROR_TEXT, code);
}
