/**
 * Forced garbage collection for memory-baseline checks: `gc()` if the process has it (node
 * --expose-gc), else the flag is set at run time. Undefined where neither works (the checks
 * then print that they could not collect).
 */
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';

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
