/**
 * The send side of a byte stream (a QUIC stream or a CRYPTO stream): bytes written by the
 * application, kept until acknowledged, with the ranges that were declared lost queued for
 * retransmission ahead of new data (RFC 9000 §13.3: lost data is sent again in new frames).
 *
 * @module
 */
import { RangeSet } from './range-set.ts';

export class SendBuffer {
  /** Retained chunks, in offset order; `#starts[i]` is the stream offset of `#chunks[i]`. */
  #chunks: Uint8Array[] = [];
  #starts: number[] = [];
  /** Offset of the first retained byte (everything below is acknowledged). */
  base = 0;
  /** Offset after the last byte written. */
  end = 0;
  /** Offset of the first byte never sent. */
  unsent = 0;
  readonly #lost = new RangeSet();
  readonly #acked = new RangeSet();

  /** Append bytes (copied, so the caller may reuse its buffer). */
  write(data: Uint8Array): void {
    if (data.length === 0) return;
    this.#chunks.push(data.slice());
    this.#starts.push(this.end);
    this.end += data.length;
  }

  /** Bytes written and not yet acknowledged. */
  get buffered(): number {
    return this.end - this.base;
  }

  /** True if something (a retransmission or new data below `limit`) can be sent. */
  hasSendable(limit = Infinity): boolean {
    return !this.#lost.isEmpty || (this.unsent < this.end && this.unsent < limit);
  }

  /** True if lost data awaits retransmission. */
  get hasRetransmits(): boolean {
    return !this.#lost.isEmpty;
  }

  /**
   * Take the next range to send — a lost range first, else new data — of at most `maxLength`
   * bytes, new data not beyond offset `limit` (flow control). Marks it as sent.
   */
  nextRange(maxLength: number, limit = Infinity): { offset: number; length: number; retransmit: boolean } | undefined {
    if (maxLength <= 0) return undefined;
    const lost = this.#lost.first();
    if (lost !== undefined) {
      const [s, e] = lost;
      const length = Math.min(e - s, maxLength);
      this.#lost.remove(s, s + length);
      return { offset: s, length, retransmit: true };
    }
    const length = Math.min(this.end, limit, this.unsent + maxLength) - this.unsent;
    if (length <= 0) return undefined;
    const offset = this.unsent;
    this.unsent += length;
    return { offset, length, retransmit: false };
  }

  /** Copy bytes [offset, offset + length) into `out` at `outOffset`. */
  copyTo(offset: number, length: number, out: Uint8Array, outOffset: number): void {
    let i = this.#indexOf(offset);
    let pos = offset;
    let written = 0;
    while (written < length) {
      const chunk = this.#chunks[i]!;
      const from = pos - this.#starts[i]!;
      const n = Math.min(chunk.length - from, length - written);
      out.set(chunk.subarray(from, from + n), outOffset + written);
      written += n;
      pos += n;
      i++;
    }
  }

  #indexOf(offset: number): number {
    let lo = 0;
    let hi = this.#starts.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (this.#starts[mid]! <= offset) lo = mid;
      else hi = mid - 1;
    }
    return lo;
  }

  /** [offset, offset + length) was acknowledged: release what is now contiguous from the base. */
  onAck(offset: number, length: number): void {
    if (length === 0 || offset + length <= this.base) return;
    // A range acknowledged after being declared lost need not be resent.
    if (!this.#lost.isEmpty) this.#lost.remove(offset, offset + length);
    if (offset <= this.base && this.#acked.isEmpty) {
      // In-order acknowledgment (the common case): just move the base.
      this.base = offset + length;
    } else {
      this.#acked.insert(Math.max(offset, this.base), offset + length);
      const first = this.#acked.first();
      if (first === undefined || first[0] !== this.base) return;
      this.base = first[1];
      this.#acked.removeBelow(this.base);
    }
    let drop = 0;
    while (drop < this.#chunks.length && this.#starts[drop]! + this.#chunks[drop]!.length <= this.base) drop++;
    if (drop > 0) {
      this.#chunks.splice(0, drop);
      this.#starts.splice(0, drop);
    }
  }

  /** [offset, offset + length) was declared lost: queue what is still unacknowledged. */
  onLost(offset: number, length: number): void {
    const start = Math.max(offset, this.base);
    const end = offset + length;
    if (end <= start) return;
    // Only the parts not acknowledged since.
    for (const [s, e] of this.#acked.gaps(start, end)) this.#lost.insert(s, e);
  }

  /** True once every written byte has been acknowledged. */
  get allAcked(): boolean {
    return this.base === this.end;
  }

  /** Forget everything (after RESET_STREAM). */
  clear(): void {
    this.#chunks = [];
    this.#starts = [];
    this.#lost.clear();
    this.#acked.clear();
    this.base = this.end;
    this.unsent = this.end;
  }
}
