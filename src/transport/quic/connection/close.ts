/**
 * Closing a connection (RFC 9000 §10): the CONNECTION_CLOSE we owe and how often we repeat it
 * in the closing state, the deadline of the closing or draining period, and the error the
 * application sees.
 *
 * @module
 */
import type { TransportError } from '../errors.ts';
import type { Frame } from '../wire/frames.ts';
import { ConnectionError } from './types.ts';

export type CloseFrame = Extract<Frame, { type: 'connection_close' }>;

export class CloseState {
  /** The CONNECTION_CLOSE we send while closing. */
  frame: CloseFrame | undefined;
  /** Why the connection closed (once closing, draining or closed). */
  error: ConnectionError | undefined;
  /** CONNECTION_CLOSE datagrams owed now. */
  sendsOwed = 0;
  /** Closing state: datagrams received, and the count at which the next one is answered. */
  triggers = 0;
  answerAt = 1;
  /** End of the closing or draining period (µs). */
  deadline = 0;
  /** The 'closed' event went out. */
  emitted = false;

  /** Enter the closing state (RFC 9000 §10.2): send `frame`, and keep answering for three PTOs. */
  enterClosing(now: number, pto: number, frame: CloseFrame, error: ConnectionError): void {
    this.frame = frame;
    this.error = error;
    this.sendsOwed = 1;
    this.triggers = 0;
    this.answerAt = 1;
    // RFC 9000 §10.2: the closing state lasts three PTOs.
    this.deadline = now + 3 * pto;
  }

  /**
   * A datagram arrived while closing. RFC 9000 §10.2.1: answer incoming packets with
   * CONNECTION_CLOSE, at a limited rate: the 1st, 2nd, 4th, 8th, ... datagram.
   */
  onDatagram(): void {
    if (++this.triggers >= this.answerAt) {
      this.answerAt *= 2;
      this.sendsOwed = 1;
    }
  }
}

/** The application's view of a CONNECTION_CLOSE the peer sent. */
export function peerCloseError(f: CloseFrame): ConnectionError {
  const reason = new TextDecoder().decode(f.reason);
  let code = f.app ? 'ERR_QUIC_APPLICATION_CLOSED' : 'ERR_QUIC_TRANSPORT_ERROR';
  if (!f.app && f.code === 0x100 + 120) code = 'ERR_TLS_NO_ALPN';
  else if (!f.app && f.code >= 0x100 && f.code <= 0x1ff) code = 'ERR_QUIC_PEER_CRYPTO_ERROR';
  return new ConnectionError(
    f.app
      ? { code, kind: 'application', remote: true, applicationCode: f.code, reason }
      : { code, kind: 'transport', remote: true, transportCode: f.code, reason },
  );
}

/** The CONNECTION_CLOSE for a transport error of ours, and the error the application sees. */
export function transportClose(err: TransportError): { frame: CloseFrame; error: ConnectionError } {
  const tlsCode = (err as TransportError & { tlsCode?: string }).tlsCode;
  const reason = err.message.slice(0, 200);
  return {
    frame: { type: 'connection_close', app: false, code: err.transportCode, frameType: err.frameType, reason: new TextEncoder().encode(reason) },
    error: new ConnectionError({ code: tlsCode ?? 'ERR_QUIC_TRANSPORT_ERROR', kind: 'transport', remote: false, transportCode: err.transportCode, reason, message: err.message }),
  };
}

/** The CONNECTION_CLOSE for the application's close(code, reason) (RFC 9000 §10.2). */
export function applicationClose(code: number, reason: string): { frame: CloseFrame; error: ConnectionError } {
  const reasonBytes = new TextEncoder().encode(reason).subarray(0, 256);
  return {
    frame: { type: 'connection_close', app: true, code, frameType: 0, reason: reasonBytes },
    error: new ConnectionError({ code: 'ERR_QUIC_LOCALLY_CLOSED', kind: 'local', remote: false, applicationCode: code, reason }),
  };
}
