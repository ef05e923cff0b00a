/**
 * Error classes shared by every layer of sdnet.
 *
 * Public errors carry a stable `code` string (undici style) so callers can match on it
 * without parsing messages. Argument mistakes made by the caller use the built-in
 * `TypeError`/`RangeError` instead.
 *
 * @module
 */

/** Base class of every error sdnet throws on purpose. `code` is stable across releases. */
export class SdnetError extends Error {
  readonly code: string;

  constructor(code: string, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'SdnetError';
    this.code = code;
  }
}

/**
 * Bytes or text from outside (a peer, a file, the command line) could not be decoded.
 *
 * Every decoder in sdnet throws only this error for bad input, whatever the input is.
 */
export class DecodeError extends SdnetError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('ERR_DECODE', message, options);
    this.name = 'DecodeError';
  }
}

/** A cryptographic operation failed on its input (bad signature, low-order point, ...). */
export class CryptoError extends SdnetError {
  constructor(code: string, message: string) {
    super(code, message);
    this.name = 'CryptoError';
  }
}
