/**
 * Seeds for randomized tests. Every randomized test calls {@link testSeed}, which prints
 * the seed; re-run a failure with `SDNET_SEED=<seed> npm test -- <file>`.
 */
export function testSeed(name: string): number {
  const fromEnv = process.env.SDNET_SEED;
  const seed = fromEnv !== undefined && fromEnv !== '' ? Number(fromEnv) : (Math.random() * 2 ** 31) | 0;
  console.log(`[seed] ${name}: SDNET_SEED=${seed}`);
  return seed;
}

/** fast-check parameters with a printed seed. */
export function fcParams(name: string, numRuns?: number): { seed: number; numRuns?: number } {
  const seed = testSeed(name);
  return numRuns === undefined ? { seed } : { seed, numRuns };
}
