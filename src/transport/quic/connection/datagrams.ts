/**
 * Unreliable datagrams (RFC 9221): the queues between the application and DATAGRAM frames.
 *
 * @module
 */
import { TransportError, TransportErrorCode } from '../errors.ts';
import { MAX_DATAGRAM_RECV_QUEUE, MAX_DATAGRAM_SEND_QUEUE, RECV_CHUNK_OVERHEAD } from '../limits.ts';
import type { FixedWriter } from '../wire/fixed-writer.ts';
import { frameSize, writeFrame } from '../wire/frames.ts';
import type { RecvBudget } from './recv-buffer.ts';

export class DatagramQueues {
  readonly #budget: RecvBudget;
  readonly #maxFrameSize: number;
  readonly incoming: Uint8Array[] = [];
  readonly outgoing: Uint8Array[] = [];

  /** `maxFrameSize`: our max_datagram_frame_size. */
  constructor(budget: RecvBudget, maxFrameSize: number) {
    this.#budget = budget;
    this.#maxFrameSize = maxFrameSize;
  }

  /** Queue a datagram to send (already checked against the peer's limit). False if the queue is full. */
  send(data: Uint8Array): boolean {
    if (this.outgoing.length >= MAX_DATAGRAM_SEND_QUEUE) return false;
    this.outgoing.push(data.slice());
    return true;
  }

  read(): Uint8Array | undefined {
    const d = this.incoming.shift();
    if (d !== undefined) this.#budget.memory -= d.length + RECV_CHUNK_OVERHEAD;
    return d;
  }

  /** A DATAGRAM frame arrived. */
  onFrame(data: Uint8Array, wireType: number): void {
    // RFC 9221 §3: a DATAGRAM frame (type + length + data) larger than our
    // max_datagram_frame_size, or any when we advertised 0 → PROTOCOL_VIOLATION.
    if (frameSize({ type: 'datagram', data }) > this.#maxFrameSize) {
      throw new TransportError(TransportErrorCode.PROTOCOL_VIOLATION, 'unexpected or oversized DATAGRAM', wireType);
    }
    this.incoming.push(data.slice());
    this.#budget.memory += data.length + RECV_CHUNK_OVERHEAD;
    // Unread datagrams are dropped oldest first beyond the queue length or the memory budget.
    while (this.incoming.length > MAX_DATAGRAM_RECV_QUEUE || (this.#budget.memory > this.#budget.maxMemory && this.incoming.length > 1)) this.read();
  }

  /** Write queued datagrams while they fit. Returns whether any did. */
  fill(w: FixedWriter): boolean {
    let any = false;
    while (this.outgoing.length > 0) {
      const dg = this.outgoing[0]!;
      const f = { type: 'datagram' as const, data: dg };
      if (frameSize(f) > w.remaining) break;
      writeFrame(w, f);
      this.outgoing.shift();
      any = true;
    }
    return any;
  }
}
