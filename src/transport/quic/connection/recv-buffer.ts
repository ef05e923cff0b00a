/**
 * The receive side of a byte stream (STREAM or CRYPTO data): reassembles out-of-order,
 * overlapping and duplicated segments into the in-order byte sequence the application reads.
 *
 * - Only bytes never received before are stored, so retransmissions cannot grow memory; the
 *   caller bounds the highest offset with flow control (RFC 9000 §4.1) before inserting.
 * - In-order data goes straight onto a queue of readable chunks (the common case costs no
 *   search). Data beyond a gap goes into an {@link OffsetTree}: O(log n) per insert whatever
 *   the order of arrival.
 * - Small pieces are copied (a 1-byte fragment must not keep its whole datagram alive) and
 *   merged with the pieces they touch, up to {@link COALESCE_BYTES} (in the readable queue
 *   once a backlog builds up); a run of adjacent chunks therefore holds at most about two
 *   chunks per {@link COALESCE_BYTES} bytes.
 * - What is stored is charged to a {@link RecvBudget} shared by every buffer of a connection:
 *   the number of disjoint ranges (fragments) and the memory (bytes plus a per-chunk
 *   overhead). The connection closes when a peer drives it over budget.
 *
 * @module
 */
import { RECV_CHUNK_OVERHEAD } from '../limits.ts';
import { OffsetTree, rangeNode, type RangeNode } from './offset-tree.ts';

/** Pieces shorter than this are copied, and touching pieces are merged up to this size. */
export const COALESCE_BYTES = 1024;
/** Unread chunks in the readable queue before small in-order pieces are merged into the last one. */
const MERGE_READY_AFTER = 16;

/** What the receive buffers of one connection hold together, and how much they may. */
export class RecvBudget {
  /** Disjoint ranges stored (a gap between two of them is data still missing). */
  fragments = 0;
  /** Bytes stored plus {@link RECV_CHUNK_OVERHEAD} per chunk. */
  memory = 0;
  maxFragments: number;
  maxMemory: number;

  constructor(maxFragments = Infinity, maxMemory = Infinity) {
    this.maxFragments = maxFragments;
    this.maxMemory = maxMemory;
  }

  get exceeded(): boolean {
    return this.fragments > this.maxFragments || this.memory > this.maxMemory;
  }
}

function concat(a: Uint8Array, b: Uint8Array): Uint8Array {
  const out = new Uint8Array(a.length + b.length);
  out.set(a);
  out.set(b, a.length);
  return out;
}

export class RecvBuffer {
  /** Bytes handed to the reader so far. */
  readOffset = 0;
  /** Highest offset + 1 seen. */
  highest = 0;
  /** Bytes stored and not yet read (0 after {@link clear}). */
  buffered = 0;
  /** Where this buffer's fragments and memory are charged (none: unlimited). */
  budget: RecvBudget | undefined;

  /** Readable chunks: contiguous from `readOffset` to `#readyEnd`. */
  #ready: (Uint8Array | undefined)[] = [];
  /** Index of the first unread chunk in `#ready`. */
  #head = 0;
  /** Bytes of the first unread chunk already read. */
  #skip = 0;
  /** End of the data received contiguously from offset 0. */
  #readyEnd = 0;
  /** Chunks received beyond the first gap (every start is after `#readyEnd`). */
  readonly #tree = new OffsetTree();
  /** Disjoint ranges in the tree. */
  #treeRuns = 0;
  #memory = 0;
  /** What was last charged to the budget. */
  #chargedRuns = 0;
  #chargedMemory = 0;
  /** After {@link clear}: ranges are remembered (so nothing counts as new twice), bytes are not kept. */
  #discarding = false;

  constructor(budget?: RecvBudget) {
    this.budget = budget;
  }

  /**
   * Store the parts of [offset, offset + data.length) not received before. Returns the number
   * of new bytes stored. `data` may be kept (not copied) when it is large: the caller must
   * not modify it afterwards.
   */
  insert(offset: number, data: Uint8Array): number {
    const end = offset + data.length;
    if (end > this.highest) this.highest = end;
    const from = this.#readyEnd;
    if (end <= from || data.length === 0) return 0;
    if (offset <= from && this.#tree.size === 0) {
      // In order with nothing beyond a gap (the common case): straight onto the readable queue.
      const piece = offset === from ? data : data.subarray(from - offset);
      this.#pushReady(piece);
      this.buffered += piece.length;
      if (this.#discarding) this.#skipDiscarded();
      this.#charge();
      return piece.length;
    }
    let added = 0;
    let pos = offset > from ? offset : from;
    while (pos < end) {
      const prev = this.#tree.floor(pos);
      if (prev !== undefined && prev.end > pos) {
        pos = prev.end; // already received
        continue;
      }
      const next = this.#tree.ceiling(pos);
      const gapEnd = next !== undefined && next.start < end ? next.start : end;
      const piece = data.subarray(pos - offset, gapEnd - offset);
      if (pos === this.#readyEnd) this.#pushReady(piece);
      else this.#storeBeyondGap(pos, gapEnd, piece, prev, next);
      added += gapEnd - pos;
      pos = gapEnd;
    }
    this.#promote();
    this.buffered += added;
    if (this.#discarding) this.#skipDiscarded();
    this.#charge();
    return added;
  }

  /** While discarding, what arrived in order counts as read: `readOffset` reaches the final size once every byte has arrived. */
  #skipDiscarded(): void {
    this.readOffset = this.#readyEnd;
    this.buffered = 0;
  }

  /** Append in-order bytes to the readable queue (merging small pieces; `owned`: no need to copy). */
  #pushReady(piece: Uint8Array, owned = false): void {
    const n = piece.length;
    this.#readyEnd += n;
    if (this.#discarding) return;
    const ready = this.#ready;
    if (n < COALESCE_BYTES) {
      // A reader that keeps up sees the chunks as they came; a backlog of small ones is merged.
      const last = ready.length - this.#head >= MERGE_READY_AFTER ? ready[ready.length - 1]! : undefined;
      if (last !== undefined && last.length + n <= COALESCE_BYTES) {
        // Only the unread part of a partly read chunk is kept.
        const keep = ready.length - 1 === this.#head && this.#skip > 0 ? last.subarray(this.#skip) : last;
        if (keep !== last) this.#skip = 0;
        const merged = concat(keep, piece);
        ready[ready.length - 1] = merged;
        this.#memory += merged.length - last.length;
        return;
      }
      ready.push(owned ? piece : piece.slice());
    } else {
      ready.push(piece);
    }
    this.#memory += n + RECV_CHUNK_OVERHEAD;
  }

  /** Store [s, e) beyond the first gap, next to `prev` and `next` (its neighbours in the tree). */
  #storeBeyondGap(s: number, e: number, piece: Uint8Array, prev: RangeNode | undefined, next: RangeNode | undefined): void {
    const n = e - s;
    const discarding = this.#discarding;
    const touchesPrev = prev !== undefined && prev.end === s;
    const touchesNext = next !== undefined && next.start === e;
    let target: RangeNode;
    if (touchesPrev && (discarding || prev.data!.length + n <= COALESCE_BYTES)) {
      if (!discarding) {
        prev.data = concat(prev.data!, piece);
        this.#memory += n;
      }
      prev.end = e;
      target = prev;
    } else {
      target = rangeNode(s, e, discarding ? undefined : n < COALESCE_BYTES ? piece.slice() : piece);
      this.#tree.insert(target);
      this.#memory += (discarding ? 0 : n) + RECV_CHUNK_OVERHEAD;
    }
    if (touchesNext && (discarding || target.data!.length + next.data!.length <= COALESCE_BYTES)) {
      if (!discarding) target.data = concat(target.data!, next.data!);
      target.end = next.end;
      this.#tree.remove(next);
      this.#memory -= RECV_CHUNK_OVERHEAD;
    }
    this.#treeRuns += 1 - (touchesPrev ? 1 : 0) - (touchesNext ? 1 : 0);
  }

  /** Move chunks that the data just stored made contiguous onto the readable queue. */
  #promote(): void {
    for (let node = this.#tree.first(); node !== undefined && node.start === this.#readyEnd; node = this.#tree.first()) {
      this.#tree.remove(node);
      const after = this.#tree.first();
      if (after === undefined || after.start !== node.end) this.#treeRuns--;
      if (node.data !== undefined) {
        this.#memory -= node.data.length + RECV_CHUNK_OVERHEAD;
        this.#pushReady(node.data, true);
      } else {
        this.#memory -= RECV_CHUNK_OVERHEAD;
        this.#readyEnd = node.end;
      }
    }
  }

  /** Tell the budget what changed. */
  #charge(): void {
    const budget = this.budget;
    if (budget === undefined) return;
    const runs = (this.#readyEnd > this.readOffset ? 1 : 0) + this.#treeRuns;
    budget.fragments += runs - this.#chargedRuns;
    budget.memory += this.#memory - this.#chargedMemory;
    this.#chargedRuns = runs;
    this.#chargedMemory = this.#memory;
  }

  /** Chunks stored and not yet read. */
  get segmentCount(): number {
    return this.#ready.length - this.#head + this.#tree.size;
  }

  /** Disjoint ranges stored (the readable run counts as one). */
  get fragmentCount(): number {
    return (this.#readyEnd > this.readOffset ? 1 : 0) + this.#treeRuns;
  }

  /** Bytes readable now (contiguous from the read offset). */
  get readable(): number {
    return this.#discarding ? 0 : this.#readyEnd - this.readOffset;
  }

  /** Read up to `max` contiguous bytes, or undefined if none are ready. */
  read(max = Infinity): Uint8Array | undefined {
    const ready = this.#ready;
    if (this.#head >= ready.length) return undefined;
    const chunk = ready[this.#head]!;
    const skip = this.#skip;
    const avail = chunk.length - skip;
    const n = avail < max ? avail : max;
    const out = skip === 0 && n === chunk.length ? chunk : chunk.subarray(skip, skip + n);
    if (n === avail) {
      ready[this.#head++] = undefined;
      this.#skip = 0;
      this.#memory -= chunk.length + RECV_CHUNK_OVERHEAD;
      if (this.#head === ready.length) {
        this.#ready = [];
        this.#head = 0;
      } else if (this.#head >= 1024 && this.#head * 2 >= ready.length) {
        ready.splice(0, this.#head);
        this.#head = 0;
      }
    } else {
      this.#skip = skip + n;
    }
    this.readOffset += n;
    this.buffered -= n;
    this.#charge();
    return out;
  }

  /**
   * Drop everything buffered (after STOP_SENDING or a reset) and keep no more data: only which
   * ranges arrived is remembered (so nothing counts as new twice), and `readOffset` moves over
   * what arrived in order, so the caller can tell when every byte up to the final size has.
   */
  clear(): void {
    this.#discarding = true;
    for (let i = this.#head; i < this.#ready.length; i++) this.#memory -= this.#ready[i]!.length + RECV_CHUNK_OVERHEAD;
    this.#ready = [];
    this.#head = 0;
    this.#skip = 0;
    for (const node of this.#tree.nodes()) {
      if (node.data !== undefined) {
        this.#memory -= node.data.length;
        node.data = undefined;
      }
    }
    this.#skipDiscarded();
    this.#charge();
  }

  /** Give back everything charged to the budget (the stream is forgotten). */
  release(): void {
    const budget = this.budget;
    if (budget === undefined) return;
    budget.fragments -= this.#chargedRuns;
    budget.memory -= this.#chargedMemory;
    this.#chargedRuns = 0;
    this.#chargedMemory = 0;
    this.budget = undefined;
  }
}
