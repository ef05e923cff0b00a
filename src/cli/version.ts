/**
 * The package version, read from the nearest `package.json` named "sdnet" above this file
 * (the layout differs between `src/` and `dist/src/`).
 *
 * @module
 */
import { readFileSync } from 'node:fs';

export function packageVersion(): string {
  let dir = new URL('./', import.meta.url);
  for (let i = 0; i < 6; i++) {
    try {
      const pkg = JSON.parse(readFileSync(new URL('package.json', dir), 'utf8')) as { name?: string; version?: string };
      if (pkg.name === 'sdnet' && typeof pkg.version === 'string') return pkg.version;
    } catch {
      // not here; keep walking up
    }
    dir = new URL('../', dir);
  }
  return 'unknown';
}
