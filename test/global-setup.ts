/**
 * Builds `dist/` once before the suite, so tests that run the installed binaries
 * (`bin/sdnet.js`) exercise exactly what `npx sdnet` runs after `npm ci`, and the browser
 * bundle (`dist/browser/sdnet.min.js`) that the Chromium tests load — as `npm run build` does.
 */
import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { bundleBrowser } from '../scripts/bundle-browser.ts';

export default async function setup(): Promise<void> {
  const root = fileURLToPath(new URL('..', import.meta.url));
  execFileSync(process.execPath, [`${root}node_modules/typescript/bin/tsc`, '-p', 'tsconfig.build.json'], { cwd: root, stdio: 'inherit' });
  const report = await bundleBrowser(root);
  if (!report.withinBudget) throw new Error(`The browser bundle is over its size budget: ${JSON.stringify(report)}`);
}
