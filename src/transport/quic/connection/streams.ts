/**
 * QUIC streams (RFC 9000 §2–§4): stream ids, per-stream send/receive state with flow
 * control, and the bookkeeping of stream counts.
 *
 * @module
 */
import { TransportError, TransportErrorCode } from '../errors.ts';
import { RecvBuffer, type RecvBudget } from './recv-buffer.ts';
import { SendBuffer } from './send-buffer.ts';

export type Dir = 'bi' | 'uni';

/** RFC 9000 §2.1: bit 0 = initiator (0 client), bit 1 = direction (0 bidirectional). */
export function streamInitiator(id: number): 'client' | 'server' {
  return id % 2 === 0 ? 'client' : 'server';
}
export function streamDir(id: number): Dir {
  return Math.floor(id / 2) % 2 === 0 ? 'bi' : 'uni';
}
export function streamId(index: number, initiator: 'client' | 'server', dir: Dir): number {
  return index * 4 + (dir === 'uni' ? 2 : 0) + (initiator === 'server' ? 1 : 0);
}
export function streamIndex(id: number): number {
  return Math.floor(id / 4);
}

/** Send-side states (RFC 9000 §3.1), simplified to what drives behaviour. */
export type SendState = 'ready' | 'data-sent' | 'data-recvd' | 'reset-sent' | 'reset-recvd';
/** Receive-side states (RFC 9000 §3.2). */
export type RecvState = 'recv' | 'size-known' | 'data-recvd' | 'data-read' | 'reset-recvd' | 'reset-read';

export class StreamSend {
  readonly buffer = new SendBuffer();
  state: SendState = 'ready';
  /** Peer's MAX_STREAM_DATA for this stream. */
  maxData: number;
  fin = false;
  finSent = false;
  finAcked = false;
  resetCode: number | undefined;
  /**
   * The final size a RESET_STREAM announces: the bytes actually sent before the reset, not the
   * bytes written (RFC 9000 §4.5: the final size is the flow-control credit the stream used).
   */
  resetFinalSize = 0;
  /** A RESET_STREAM needs (re)sending. */
  resetPending = false;
  /** The peer asked us to stop (STOP_SENDING code), reported to the app once. */
  stopCode: number | undefined;
  /** A STREAM_DATA_BLOCKED frame should be sent at this limit. */
  blockedAt: number | undefined;
  /** The limit a STREAM_DATA_BLOCKED was last queued for (one frame per limit, not per packet). */
  blockedReported = -1;
  /** A write was cut short: announce when space frees up. */
  writeBlocked = false;

  constructor(maxData: number) {
    this.maxData = maxData;
  }

  /** Bytes that could be written before the local buffer limit is reached. */
  capacity(bufferLimit: number): number {
    if (this.fin || this.resetCode !== undefined) return 0;
    return Math.max(0, bufferLimit - this.buffer.buffered);
  }

  get done(): boolean {
    return this.state === 'data-recvd' || this.state === 'reset-recvd';
  }
}

export class StreamRecv {
  readonly buffer: RecvBuffer;
  state: RecvState = 'recv';
  /** Our MAX_STREAM_DATA for this stream. */
  maxData: number;
  /** The window size (grows with auto-tuning). */
  window: number;
  finalSize: number | undefined;
  resetCode: number | undefined;
  /**
   * Bytes of this stream counted as consumed in the connection's flow control (what was read,
   * or discarded after STOP_SENDING or a reset).
   */
  credited = 0;
  /** STOP_SENDING needs sending with this code. */
  stopSendingCode: number | undefined;
  stopSendingPending = false;
  /** A MAX_STREAM_DATA frame needs sending. */
  maxDataPending = false;
  /** When the window was last raised (µs), for auto-tuning. */
  lastWindowUpdate = 0;
  /** A 'stream-readable' event is outstanding (cleared when the application reads). */
  readableNotified = false;

  /** `budget`: the connection's receive budget, which this stream's buffered data is charged to. */
  constructor(window: number, budget?: RecvBudget) {
    this.maxData = window;
    this.window = window;
    this.buffer = new RecvBuffer(budget);
  }

  /**
   * Account for a STREAM frame's range. Returns the increase in the highest offset (for
   * connection-level flow control) or throws the RFC's error.
   */
  onData(offset: number, data: Uint8Array, fin: boolean, frameType: number): number {
    const end = offset + data.length;
    // RFC 9000 §4.5: data beyond a known final size, or a changed final size → FINAL_SIZE_ERROR.
    if (this.finalSize !== undefined && (end > this.finalSize || (fin && end !== this.finalSize))) {
      throw new TransportError(TransportErrorCode.FINAL_SIZE_ERROR, 'stream data beyond its final size', frameType);
    }
    if (fin && end < this.buffer.highest) throw new TransportError(TransportErrorCode.FINAL_SIZE_ERROR, 'final size below data already received', frameType);
    // RFC 9000 §4.1: data beyond the advertised limit → FLOW_CONTROL_ERROR.
    if (end > this.maxData) throw new TransportError(TransportErrorCode.FLOW_CONTROL_ERROR, 'stream data beyond MAX_STREAM_DATA', frameType);
    const before = this.buffer.highest;
    if (this.resetCode === undefined && this.state !== 'data-read') {
      this.buffer.insert(offset, data);
      // Fragments or memory beyond the connection's receive budget: treated like data beyond
      // our limits (RFC 9000 §4.1), since no honest peer gets there.
      if (this.buffer.budget?.exceeded) {
        throw new TransportError(TransportErrorCode.FLOW_CONTROL_ERROR, 'stream data too fragmented (receive buffer budget exceeded)', frameType);
      }
    } else if (end > this.buffer.highest) {
      this.buffer.highest = end;
    }
    if (fin) {
      this.finalSize = end;
      if (this.state === 'recv') this.state = 'size-known';
    }
    if (this.state === 'size-known' && this.buffer.readOffset + this.buffer.buffered === this.finalSize && this.buffer.readable === this.buffer.buffered) {
      this.state = 'data-recvd';
    }
    return Math.max(0, this.buffer.highest - before);
  }

  /** Bytes the peer may still send before hitting our limit. */
  get credit(): number {
    return this.maxData - this.buffer.readOffset;
  }

  get finished(): boolean {
    return this.state === 'data-read' || this.state === 'reset-read';
  }
}

export class Stream {
  readonly id: number;
  readonly send: StreamSend | undefined;
  readonly recv: StreamRecv | undefined;
  /** Round-robin scheduling: queued in the send queue. */
  queued = false;

  constructor(id: number, send: StreamSend | undefined, recv: StreamRecv | undefined) {
    this.id = id;
    this.send = send;
    this.recv = recv;
  }

  /** Both directions finished (a stream that exists only one way counts the other as done). */
  get closed(): boolean {
    return (this.send === undefined || this.send.done) && (this.recv === undefined || this.recv.finished);
  }
}
