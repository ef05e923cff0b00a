/**
 * Datagram batches (GSO style) of the relay protocol (`shared/docs/iroh-wire.md` §1.6
 * "Batches", §7 item 8): a batch frame's contents are several datagrams back to back, each
 * exactly `segment_size` bytes except the last, which may be shorter. A receiver must split
 * them; a sender may pack runs of equal-sized datagrams into one frame.
 *
 * @module
 */
import { datagramHeaderLength } from './frames.ts';
import { MAX_PACKET_SIZE } from './limits.ts';

/**
 * Split a datagram frame's contents into datagrams (views, no copies). `segmentSize` 0 means
 * a single datagram (iroh: `NonZeroU16` is `None`).
 */
export function splitDatagrams(contents: Uint8Array, segmentSize: number): Uint8Array[] {
  // iroh-wire §1.6: every datagram is exactly segment_size bytes except the last.
  if (segmentSize === 0 || contents.length <= segmentSize) return [contents];
  const out: Uint8Array[] = [];
  for (let off = 0; off < contents.length; off += segmentSize) {
    out.push(contents.subarray(off, Math.min(off + segmentSize, contents.length)));
  }
  return out;
}

/** One frame's worth of datagrams, as {@link planBatches} groups them. */
export interface PlannedFrame {
  /** 0 for a single datagram (send as type 4), else the segment size (type 5). */
  segmentSize: number;
  datagrams: Uint8Array[];
}

/** Largest datagram that fits in a single-datagram frame (type 4). */
export const MAX_SINGLE_DATAGRAM = MAX_PACKET_SIZE - datagramHeaderLength(false);

/**
 * Group datagrams into as few frames as the batch rule allows: a run of datagrams of the same
 * size, optionally ended by one shorter datagram, within {@link MAX_PACKET_SIZE} per frame.
 * Order is kept. Empty datagrams are skipped (iroh never sends empty contents).
 *
 * @throws {RangeError} if a datagram is larger than {@link MAX_SINGLE_DATAGRAM}
 */
export function planBatches(datagrams: readonly Uint8Array[]): PlannedFrame[] {
  const frames: PlannedFrame[] = [];
  const maxBatchContents = MAX_PACKET_SIZE - datagramHeaderLength(true);
  let current: Uint8Array[] = [];
  let size = 0;
  let total = 0;
  let closed = false;
  const flush = (): void => {
    if (current.length === 0) return;
    frames.push({ segmentSize: current.length > 1 ? size : 0, datagrams: current });
    current = [];
    total = 0;
    closed = false;
  };
  for (const d of datagrams) {
    if (!(d instanceof Uint8Array)) throw new TypeError('Expected each datagram to be a Uint8Array');
    if (d.length > MAX_SINGLE_DATAGRAM) throw new RangeError(`datagram of ${d.length} bytes exceeds the relay limit of ${MAX_SINGLE_DATAGRAM}`);
    if (d.length === 0) continue;
    const fits = total + d.length <= maxBatchContents;
    if (current.length > 0 && !closed && fits && d.length <= size) {
      current.push(d);
      total += d.length;
      // A shorter datagram can only be the last of its batch.
      if (d.length < size) closed = true;
      continue;
    }
    flush();
    current.push(d);
    size = d.length;
    total = d.length;
  }
  flush();
  return frames;
}
