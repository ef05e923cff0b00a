/**
 * Heap measurements for memory-bound tests: a `gc()` (node --expose-gc, or the flag set at
 * run time) and the heap and ArrayBuffer bytes after full collections.
 */
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';

/** `gc()` if we can get it. */
export function getGc(): (() => void) | undefined {
  const g = (globalThis as { gc?: () => void }).gc;
  if (typeof g === 'function') return g;
  try {
    setFlagsFromString('--expose-gc');
    return runInNewContext('gc') as () => void;
  } catch {
    return undefined;
  }
}

/** Heap and ArrayBuffer bytes after full collections. */
export function memory(gc: (() => void) | undefined): { heap: number; buffers: number } {
  for (let i = 0; i < 4; i++) gc?.();
  const m = process.memoryUsage();
  return { heap: m.heapUsed, buffers: m.arrayBuffers };
}
