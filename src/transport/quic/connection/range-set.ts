/**
 * A set of non-negative integers kept as sorted, disjoint, half-open ranges [start, end).
 * Used for received packet numbers (ACK generation), acknowledged stream bytes and
 * byte ranges waiting for retransmission.
 *
 * Inserting is O(log n + k) where k ranges merge; callers bound n (e.g. at most
 * MAX_ACK_RANGES for packet numbers) so a peer cannot grow it without limit.
 *
 * @module
 */
export class RangeSet {
  /** Flat [start0, end0, start1, end1, ...], sorted, disjoint, non-adjacent. */
  #r: number[] = [];

  get size(): number {
    return this.#r.length / 2;
  }

  get isEmpty(): boolean {
    return this.#r.length === 0;
  }

  /** Smallest element, or undefined. */
  get min(): number | undefined {
    return this.#r[0];
  }

  /** Largest element, or undefined. */
  get max(): number | undefined {
    return this.#r.length === 0 ? undefined : this.#r[this.#r.length - 1]! - 1;
  }

  /** Index of the first range whose end is ≥ x (binary search). */
  #lowerBound(x: number): number {
    let lo = 0;
    let hi = this.#r.length / 2;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (this.#r[2 * mid + 1]! < x) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

  /** Add [start, end). Returns the number of new elements added. */
  insert(start: number, end: number): number {
    if (end <= start) return 0;
    const r = this.#r;
    const i = this.#lowerBound(start);
    // Ranges that touch or overlap [start, end) merge.
    let newStart = start;
    let newEnd = end;
    let covered = 0;
    let j = i;
    while (j < r.length / 2 && r[2 * j]! <= end) {
      const s = r[2 * j]!;
      const e = r[2 * j + 1]!;
      covered += Math.max(0, Math.min(e, end) - Math.max(s, start));
      newStart = Math.min(newStart, s);
      newEnd = Math.max(newEnd, e);
      j++;
    }
    r.splice(2 * i, 2 * (j - i), newStart, newEnd);
    return end - start - covered;
  }

  /** Remove [start, end). */
  remove(start: number, end: number): void {
    if (end <= start) return;
    const r = this.#r;
    const out: number[] = [];
    let i = this.#lowerBound(start + 1);
    const before = r.slice(0, 2 * i);
    while (i < r.length / 2 && r[2 * i]! < end) {
      const s = r[2 * i]!;
      const e = r[2 * i + 1]!;
      if (s < start) out.push(s, start);
      if (e > end) out.push(end, e);
      i++;
    }
    this.#r = before.concat(out, r.slice(2 * i));
  }

  contains(x: number): boolean {
    const i = this.#lowerBound(x + 1);
    return i < this.#r.length / 2 && this.#r[2 * i]! <= x;
  }

  /** True if every element of [start, end) is in the set. */
  containsRange(start: number, end: number): boolean {
    if (end <= start) return true;
    const i = this.#lowerBound(start + 1);
    return i < this.#r.length / 2 && this.#r[2 * i]! <= start && this.#r[2 * i + 1]! >= end;
  }

  /** Drop every element below `x`. */
  removeBelow(x: number): void {
    const r = this.#r;
    let i = 0;
    while (i < r.length / 2 && r[2 * i + 1]! <= x) i++;
    if (i < r.length / 2 && r[2 * i]! < x) r[2 * i] = x;
    if (i > 0) r.splice(0, 2 * i);
  }

  /** Drop the lowest ranges until at most `maxRanges` remain. */
  truncate(maxRanges: number): void {
    if (this.#r.length / 2 > maxRanges) this.#r.splice(0, this.#r.length - 2 * maxRanges);
  }

  /** The first range (lowest), as [start, end). */
  first(): [number, number] | undefined {
    return this.#r.length === 0 ? undefined : [this.#r[0]!, this.#r[1]!];
  }

  /**
   * The parts of [start, end) not in the set, in order, as [start, end) pairs. Finds the
   * first overlapping range by binary search, so it costs O(log n + k).
   */
  gaps(start: number, end: number): [number, number][] {
    const out: [number, number][] = [];
    const r = this.#r;
    let pos = start;
    for (let i = this.#lowerBound(start + 1); i < r.length / 2 && pos < end; i++) {
      const s = r[2 * i]!;
      const e = r[2 * i + 1]!;
      if (s >= end) break;
      if (s > pos) out.push([pos, s]);
      if (e > pos) pos = e;
    }
    if (pos < end) out.push([pos, end]);
    return out;
  }

  /** Ranges from highest to lowest, as [start, end). */
  *descending(): Generator<[number, number]> {
    for (let i = this.#r.length / 2 - 1; i >= 0; i--) yield [this.#r[2 * i]!, this.#r[2 * i + 1]!];
  }

  /** Ranges from lowest to highest, as [start, end). */
  *ascending(): Generator<[number, number]> {
    for (let i = 0; i < this.#r.length / 2; i++) yield [this.#r[2 * i]!, this.#r[2 * i + 1]!];
  }

  clear(): void {
    this.#r = [];
  }
}
