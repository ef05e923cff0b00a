/**
 * Tiny benchmark harness: time a function over enough iterations, report JSON lines.
 * Speed is never asserted in tests; it lives here, as ratios against anchors measured in
 * the same run.
 */
export interface Measurement {
  bench: string;
  name: string;
  /** Nanoseconds per operation (median of the runs). */
  nsPerOp: number;
  opsPerSec: number;
  [extra: string]: unknown;
}

/** Median ns/op of `fn` over `runs` runs of about `targetMs` each. */
export function timeIt(fn: () => void, options: { targetMs?: number; runs?: number } = {}): number {
  const targetMs = options.targetMs ?? 200;
  const runs = options.runs ?? 5;
  // Calibrate the iteration count.
  let iterations = 1;
  for (;;) {
    const t0 = performance.now();
    for (let i = 0; i < iterations; i++) fn();
    const dt = performance.now() - t0;
    if (dt > targetMs / 4) {
      iterations = Math.max(1, Math.round((iterations * targetMs) / dt));
      break;
    }
    iterations *= 4;
  }
  const samples: number[] = [];
  for (let r = 0; r < runs; r++) {
    const t0 = performance.now();
    for (let i = 0; i < iterations; i++) fn();
    samples.push(((performance.now() - t0) * 1e6) / iterations);
  }
  samples.sort((a, b) => a - b);
  return samples[Math.floor(samples.length / 2)]!;
}

export function report(m: { bench: string; name: string; nsPerOp: number; [extra: string]: unknown }): Measurement {
  const line: Measurement = { ...m, nsPerOp: Math.round(m.nsPerOp), opsPerSec: Math.round(1e9 / m.nsPerOp) };
  console.log(JSON.stringify(line));
  return line;
}
