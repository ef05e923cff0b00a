import { defineConfig } from 'vitest/config';

// `npm test` runs exactly this; CI reads the JSON report to print "N passed, N failed".
export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    globalSetup: ['test/global-setup.ts'],
    pool: 'forks',
    // Two files at a time on CI's 2 cores (vitest's default leaves one core idle): most of the
    // long files (network namespaces, CLI processes, interop) wait on sockets and children.
    maxWorkers: 2,
    testTimeout: 60_000,
    hookTimeout: 60_000,
    reporters: ['default', 'json'],
    outputFile: { json: 'test-results/vitest.json' },
  },
});
