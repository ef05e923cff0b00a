/**
 * Errors of the relay protocol, client and server. Each carries a stable `code`:
 *
 * | code | meaning |
 * |---|---|
 * | `ERR_RELAY_PROTOCOL` | the peer sent a frame that is malformed, unknown, too large or not allowed now |
 * | `ERR_RELAY_HANDSHAKE` | the HTTP upgrade or the relay handshake failed (bad status, missing subprotocol, unexpected frame) |
 * | `ERR_RELAY_DENIED` | the relay refused our authentication (`ServerDeniesAuth`, iroh-wire §1.5) |
 * | `ERR_RELAY_TIMEOUT` | connect, handshake or pong deadline passed |
 * | `ERR_RELAY_CLOSED` | the connection ended (closed by the peer, reset, or by us) |
 * | `ERR_RELAY_ABORTED` | an operation was aborted through its `AbortSignal` |
 *
 * @module
 */
import { SdnetError } from '../../util/errors.ts';

export type RelayErrorCode =
  | 'ERR_RELAY_PROTOCOL'
  | 'ERR_RELAY_HANDSHAKE'
  | 'ERR_RELAY_DENIED'
  | 'ERR_RELAY_TIMEOUT'
  | 'ERR_RELAY_CLOSED'
  | 'ERR_RELAY_ABORTED';

/** An error of a relay connection; `code` says which kind. */
export class RelayError extends SdnetError {
  declare readonly code: RelayErrorCode;

  constructor(code: RelayErrorCode, message: string, options?: { cause?: unknown }) {
    super(code, message, options);
    this.name = 'RelayError';
  }
}
