/**
 * Errors of the file-transfer protocol, each with a stable code.
 *
 * @module
 */
import { SdnetError } from '../../util/errors.ts';

export type TransferErrorCode =
  | 'ERR_TRANSFER_PATH'
  | 'ERR_TRANSFER_MANIFEST'
  | 'ERR_TRANSFER_MALFORMED'
  | 'ERR_TRANSFER_REFUSED'
  | 'ERR_TRANSFER_CANCELLED'
  | 'ERR_TRANSFER_FAILED'
  | 'ERR_TRANSFER_CORRUPT'
  | 'ERR_TRANSFER_TABLE_MISMATCH'
  | 'ERR_TRANSFER_SOURCE_CHANGED'
  | 'ERR_TRANSFER_UNKNOWN'
  | 'ERR_TRANSFER_TIMEOUT'
  | 'ERR_TRANSFER_BUSY'
  | 'ERR_DISK_FULL'
  | 'ERR_TRANSFER_NOT_FOUND'
  | 'ERR_TRANSFER_STATE';

/** A transfer (or one message of it) failed; `code` says how. */
export class TransferError extends SdnetError {
  declare readonly code: TransferErrorCode;
  constructor(code: TransferErrorCode, message: string, options?: { cause?: unknown }) {
    super(code, message, options);
    this.name = 'TransferError';
  }
}
