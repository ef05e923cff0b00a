/**
 * Algorithmic complexity of stream reassembly and ACK bookkeeping under hostile patterns
 * (reliability.md §5.L.6): 1-byte fragments with gaps, in ascending and descending order.
 * Prints ns per insert at growing N and the fitted exponent k of T(N) ∝ N^k (1 = linear).
 */
import { RecvBuffer } from '../src/transport/quic/connection/recv-buffer.ts';
import { report } from './harness.ts';

function run(n: number, order: 'ascending' | 'descending'): number {
  const buf = new RecvBuffer();
  const byte = new Uint8Array(1);
  const t0 = performance.now();
  for (let i = 0; i < n; i++) {
    const k = order === 'ascending' ? i : n - 1 - i;
    buf.insert(2 * k + 1, byte); // every other byte: nothing becomes readable
  }
  return (performance.now() - t0) * 1e6;
}

for (const order of ['ascending', 'descending'] as const) {
  run(2000, order); // warm-up
  const sizes = [2000, 8000, 16000];
  const times = sizes.map((n) => Math.min(run(n, order), run(n, order)));
  const k = Math.log(times[2]! / times[0]!) / Math.log(sizes[2]! / sizes[0]!);
  for (let i = 0; i < sizes.length; i++) report({ bench: 'reassembly', name: `${order} 1-byte fragments n=${sizes[i]}`, nsPerOp: times[i]! / sizes[i]! });
  console.log(JSON.stringify({ bench: 'reassembly', name: `${order} exponent`, k: +k.toFixed(2), linear: k < 1.3 }));
}
