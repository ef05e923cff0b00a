/**
 * Builds `dist/` once before the suite, so tests that run the installed binaries
 * (`bin/sdnet.js`) exercise exactly what `npx sdnet` runs after `npm ci`.
 */
import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

export default function setup(): void {
  const root = fileURLToPath(new URL('..', import.meta.url));
  execFileSync(process.execPath, [`${root}node_modules/typescript/bin/tsc`, '-p', 'tsconfig.build.json'], { cwd: root, stdio: 'inherit' });
}
