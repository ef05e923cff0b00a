/**
 * `npm run bench [name...]`: runs each benchmark in its own process (so one cannot warm or
 * pollute another) and passes their JSON lines through.
 */
import { spawnSync } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const dir = fileURLToPath(new URL('.', import.meta.url));
const all = readdirSync(dir)
  .filter((f) => f.endsWith('.ts') && !['run.ts', 'harness.ts'].includes(f))
  .map((f) => f.slice(0, -3));
const wanted = process.argv.slice(2);
const selected = wanted.length > 0 ? all.filter((b) => wanted.includes(b)) : all;
let failed = false;
for (const name of selected) {
  const r = spawnSync(process.execPath, [`${dir}${name}.ts`], { stdio: 'inherit' });
  if (r.status !== 0) {
    failed = true;
    console.log(JSON.stringify({ bench: name, error: `exited with status ${r.status}` }));
  }
}
process.exitCode = failed ? 1 : 0;
