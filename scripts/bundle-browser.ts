/**
 * Builds the browser bundle: `src/browser.ts` and everything it imports (the @noble
 * libraries included) as one minified ES module, `dist/browser/sdnet.min.js`, for a page's
 * `<script type="module">` (`sdnet/browser/bundle`). Reports its size and fails when it is
 * over the budget, so growth is a decision, not an accident.
 *
 * Run by `npm run build` and by the test suite's global setup.
 *
 * @module
 */
import { build } from 'esbuild';
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gzipSync } from 'node:zlib';

/** Size budget of the minified bundle. */
export const BUNDLE_BUDGET = { minifiedBytes: 328 * 1024, gzipBytes: 104 * 1024 };

export interface BundleReport {
  file: string;
  minifiedBytes: number;
  gzipBytes: number;
  budget: typeof BUNDLE_BUDGET;
  withinBudget: boolean;
}

const defaultRoot = fileURLToPath(new URL('..', import.meta.url));

export async function bundleBrowser(root: string = defaultRoot): Promise<BundleReport> {
  const file = join(root, 'dist/browser/sdnet.min.js');
  const result = await build({
    entryPoints: [join(root, 'src/browser.ts')],
    bundle: true,
    format: 'esm',
    platform: 'browser',
    target: 'es2023',
    minify: true,
    legalComments: 'eof',
    write: false,
    logLevel: 'warning',
  });
  const code = result.outputFiles[0]!.contents;
  mkdirSync(dirname(file), { recursive: true });
  writeFileSync(file, code);
  const gzipBytes = gzipSync(code, { level: 9 }).length;
  return {
    file,
    minifiedBytes: code.length,
    gzipBytes,
    budget: BUNDLE_BUDGET,
    withinBudget: code.length <= BUNDLE_BUDGET.minifiedBytes && gzipBytes <= BUNDLE_BUDGET.gzipBytes,
  };
}

if (process.argv[1] !== undefined && fileURLToPath(import.meta.url) === process.argv[1]) {
  const report = await bundleBrowser();
  const kib = (n: number) => `${(n / 1024).toFixed(1)} KiB`;
  console.log(
    `browser bundle ${report.file}: ${kib(report.minifiedBytes)} minified (budget ${kib(report.budget.minifiedBytes)}), ${kib(report.gzipBytes)} gzip (budget ${kib(report.budget.gzipBytes)})`,
  );
  if (!report.withinBudget) {
    console.error('browser bundle: over its size budget (scripts/bundle-browser.ts)');
    process.exitCode = 1;
  }
}
