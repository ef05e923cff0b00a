/**
 * The receive side of a byte stream: reassembles out-of-order, overlapping and duplicated
 * segments into the in-order byte sequence the application reads. Only bytes never received
 * before are stored, so retransmissions cannot grow memory; the caller bounds the highest
 * offset with flow control (RFC 9000 §4.1) before inserting.
 *
 * @module
 */
import { RangeSet } from './range-set.ts';

export class RecvBuffer {
  /** Bytes handed to the reader so far. */
  readOffset = 0;
  /** Highest offset + 1 seen. */
  highest = 0;
  /** Bytes stored and not yet read. */
  buffered = 0;
  readonly #received = new RangeSet();
  /** Stored segments not yet read, sorted by offset, non-overlapping. */
  #segments: { offset: number; data: Uint8Array }[] = [];

  /**
   * Store the parts of [offset, offset + data.length) not received before. Returns the number
   * of new bytes stored.
   */
  insert(offset: number, data: Uint8Array): number {
    const end = offset + data.length;
    if (end > this.highest) this.highest = end;
    if (end <= this.readOffset || data.length === 0) return 0;
    if (this.#discarding) {
      // Only which ranges arrived is kept, to know when everything up to the final size has.
      this.#received.insert(Math.max(offset, this.readOffset), end);
      this.readOffset = this.#contiguousEnd();
      this.#received.removeBelow(this.readOffset);
      return 0;
    }
    // Fast path: in-order data with nothing pending.
    if (offset === this.#contiguousEnd() && this.#segments.length === 0) {
      this.#received.insert(offset, end);
      this.#segments.push({ offset, data });
      this.buffered += data.length;
      return data.length;
    }
    let added = 0;
    for (const [s, e] of this.#received.gaps(Math.max(offset, this.readOffset), end)) {
      this.#store(s, data.subarray(s - offset, e - offset));
      this.#received.insert(s, e);
      added += e - s;
    }
    this.buffered += added;
    return added;
  }

  #contiguousEnd(): number {
    const first = this.#received.first();
    return first !== undefined && first[0] <= this.readOffset ? first[1] : this.readOffset;
  }

  #store(offset: number, data: Uint8Array): void {
    const segs = this.#segments;
    // Insert keeping order (binary search); segments never overlap because only gaps are stored.
    let lo = 0;
    let hi = segs.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (segs[mid]!.offset < offset) lo = mid + 1;
      else hi = mid;
    }
    if (lo === segs.length) segs.push({ offset, data });
    else segs.splice(lo, 0, { offset, data });
  }

  /** Segments stored and not yet read, or received ranges kept while discarding (bounded by the caller). */
  get segmentCount(): number {
    return this.#discarding ? this.#received.size : this.#segments.length;
  }

  /** Bytes readable now (contiguous from the read offset). */
  get readable(): number {
    return this.#contiguousEnd() - this.readOffset;
  }

  /** Read up to `max` contiguous bytes, or undefined if none are ready. */
  read(max = Infinity): Uint8Array | undefined {
    const seg = this.#segments[0];
    if (seg === undefined || seg.offset !== this.readOffset) return undefined;
    const n = Math.min(seg.data.length, max);
    const out = seg.data.subarray(0, n);
    if (n === seg.data.length) this.#segments.shift();
    else this.#segments[0] = { offset: seg.offset + n, data: seg.data.subarray(n) };
    this.readOffset += n;
    this.buffered -= n;
    this.#received.removeBelow(this.readOffset);
    return out;
  }

  /** Drop everything buffered (after STOP_SENDING or a reset). */
  clear(): void {
    this.#segments = [];
    this.buffered = 0;
  }

  #discarding = false;

  /**
   * Drop what is buffered and store no more data (after STOP_SENDING): only the received
   * ranges are tracked, and `readOffset` moves over what arrived in order, so the caller can
   * tell when every byte up to the final size has been received.
   */
  discard(): void {
    this.clear();
    this.#discarding = true;
    this.readOffset = this.#contiguousEnd();
    this.#received.removeBelow(this.readOffset);
  }
}
