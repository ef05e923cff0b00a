/**
 * The reassembly buffer against a model: any mix of out-of-order, overlapping and duplicated
 * fragments, with reads in between, yields exactly the stream's bytes (the first copy of a
 * byte wins), and what is charged to the receive budget matches what is stored.
 */
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { OffsetTree, rangeNode } from '../../src/transport/quic/connection/offset-tree.ts';
import { RecvBudget, RecvBuffer } from '../../src/transport/quic/connection/recv-buffer.ts';
import { RECV_CHUNK_OVERHEAD } from '../../src/transport/quic/limits.ts';
import { fcParams } from '../helpers/seed.ts';

type Op = { kind: 'insert'; offset: number; length: number; tag: number } | { kind: 'read'; max: number };

const op = (size: number): fc.Arbitrary<Op> =>
  fc.oneof(
    { weight: 4, arbitrary: fc.record({ kind: fc.constant('insert' as const), offset: fc.nat(size - 1), length: fc.integer({ min: 0, max: 1600 }), tag: fc.nat(255) }) },
    { weight: 1, arbitrary: fc.record({ kind: fc.constant('read' as const), max: fc.integer({ min: 1, max: 3000 }) }) },
  );

/** Byte `i` of the version of the stream tagged `tag` (so a later, different copy is detectable). */
const byteAt = (i: number, tag: number) => (i * 7 + tag * 13) & 0xff;

/** Disjoint stored ranges of the model: maximal runs of received, unread bytes. */
function modelRuns(have: (number | undefined)[], from: number): number {
  let runs = 0;
  for (let i = from; i < have.length; i++) if (have[i] !== undefined && (i === from || have[i - 1] === undefined)) runs++;
  return runs;
}

describe('RecvBuffer (reassembly) against a model', () => {
  it('random fragments and reads: the bytes come out in order, first copy wins, the budget matches what is stored', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 20_000 }), fc.array(op(20_000), { maxLength: 300 }), (size, ops) => {
        const budget = new RecvBudget();
        const buf = new RecvBuffer(budget);
        const have: (number | undefined)[] = new Array(size).fill(undefined);
        const out: number[] = [];
        for (const o of ops) {
          if (o.kind === 'insert') {
            const end = Math.min(size, o.offset + o.length);
            const data = Uint8Array.from({ length: end - o.offset }, (_, k) => byteAt(o.offset + k, o.tag));
            let fresh = 0;
            for (let i = Math.max(o.offset, out.length); i < end; i++) {
              if (have[i] === undefined) {
                have[i] = data[i - o.offset]!;
                fresh++;
              }
            }
            expect(buf.insert(o.offset, data)).toBe(fresh);
          } else {
            const got = buf.read(o.max);
            if (got !== undefined) for (const b of got) out.push(b);
          }
          expect(buf.readOffset).toBe(out.length);
          expect(budget.fragments).toBe(modelRuns(have, out.length));
          let contiguous = 0;
          while (out.length + contiguous < size && have[out.length + contiguous] !== undefined) contiguous++;
          expect(buf.readable).toBe(contiguous);
        }
        for (let got = buf.read(); got !== undefined; got = buf.read()) for (const b of got) out.push(b);
        // Everything read is what was first received at each offset.
        expect(out).toEqual(have.slice(0, out.length));
        if (out.length < size) expect(have[out.length]).toBeUndefined();
        // Once every byte stored has been read, nothing stays charged.
        if (have.slice(out.length).every((b) => b === undefined)) expect({ fragments: budget.fragments, memory: budget.memory }).toEqual({ fragments: 0, memory: 0 });
        buf.release();
        expect({ fragments: budget.fragments, memory: budget.memory }).toEqual({ fragments: 0, memory: 0 });
      }),
      fcParams('recv-buffer model', 200),
    );
  });

  it('after clear(), bytes are counted once when they arrive and not kept', () => {
    fc.assert(
      fc.property(fc.array(op(5000), { maxLength: 100 }), fc.array(op(5000), { maxLength: 100 }), (before, after) => {
        const budget = new RecvBudget();
        const buf = new RecvBuffer(budget);
        const seen = new Set<number>();
        const apply = (o: Op) => {
          if (o.kind !== 'insert') return;
          let fresh = 0;
          for (let i = Math.max(o.offset, buf.readOffset); i < o.offset + o.length; i++) {
            if (!seen.has(i)) {
              seen.add(i);
              fresh++;
            }
          }
          expect(buf.insert(o.offset, new Uint8Array(o.length))).toBe(fresh);
        };
        before.forEach(apply);
        buf.clear();
        expect(buf.buffered).toBe(0);
        for (const o of after) {
          apply(o);
          expect(buf.read()).toBeUndefined();
        }
        // Ranges are remembered at a fixed cost per disjoint range; no bytes are held.
        expect(budget.memory).toBeLessThanOrEqual(buf.segmentCount * RECV_CHUNK_OVERHEAD);
        buf.release();
        expect({ fragments: budget.fragments, memory: budget.memory }).toEqual({ fragments: 0, memory: 0 });
      }),
      fcParams('recv-buffer clear', 200),
    );
  });

  it('1-byte fragments with gaps cost one range each and are charged their bytes plus a fixed overhead', () => {
    const budget = new RecvBudget();
    const buf = new RecvBuffer(budget);
    // Each 1-byte piece is a view into a 1200-byte datagram: it must not keep the datagram.
    for (let i = 0; i < 1000; i++) buf.insert(2 * i + 1, new Uint8Array(1200).subarray(7, 8));
    expect(budget.fragments).toBe(1000);
    expect(budget.memory).toBe(1000 * (1 + RECV_CHUNK_OVERHEAD));
    // Filling every gap merges them into one readable run of a few chunks.
    for (let i = 0; i < 1000; i++) buf.insert(2 * i, new Uint8Array(1));
    expect(budget.fragments).toBe(1);
    expect(buf.readable).toBe(2000);
    expect(buf.segmentCount).toBeLessThanOrEqual(16 + 2 * Math.ceil(2000 / 1024));
  });

  it('a backlog of small in-order pieces is merged; a reader that keeps up sees them as sent', () => {
    const buf = new RecvBuffer(new RecvBudget());
    buf.insert(0, new Uint8Array([1, 2]));
    buf.insert(2, new Uint8Array([3]));
    expect(buf.read()).toEqual(new Uint8Array([1, 2]));
    expect(buf.read()).toEqual(new Uint8Array([3]));
    for (let i = 0; i < 10_000; i++) buf.insert(3 + i, new Uint8Array(1));
    expect(buf.segmentCount).toBeLessThanOrEqual(16 + 2 * Math.ceil(10_000 / 1024));
  });
});

describe('OffsetTree', () => {
  it('stays balanced and ordered under ascending, descending and random inserts and removals', () => {
    fc.assert(
      fc.property(fc.uniqueArray(fc.nat(1_000_000), { maxLength: 2000 }), fc.nat(), (starts, cut) => {
        const tree = new OffsetTree();
        const nodes = starts.map((s) => rangeNode(s, s + 1, undefined));
        for (const n of nodes) tree.insert(n);
        const removed = nodes.slice(0, cut % (nodes.length + 1));
        for (const n of removed) tree.remove(n);
        const left = starts.slice(removed.length).sort((a, b) => a - b);
        expect([...tree.nodes()].map((n) => n.start)).toEqual(left);
        expect(tree.size).toBe(left.length);
        expect(tree.first()?.start).toBe(left[0]);
        for (const x of [0, 500_000, 999_999]) {
          expect(tree.floor(x)?.start).toBe(left.filter((s) => s <= x).at(-1));
          expect(tree.ceiling(x)?.start).toBe(left.find((s) => s >= x));
        }
      }),
      fcParams('offset-tree', 100),
    );
    // Height (the root's): AVL keeps it within 1.44 log2(n + 2), here for descending inserts.
    const tree = new OffsetTree();
    for (let i = 0; i < 100_000; i++) tree.insert(rangeNode(100_000 - i, 100_001 - i, undefined));
    let height = 0;
    for (const n of tree.nodes()) height = Math.max(height, n.height);
    expect(height).toBeLessThanOrEqual(Math.ceil(1.44 * Math.log2(100_002)));
  });
});
