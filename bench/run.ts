/**
 * `npm run bench [name...]`: runs each benchmark in its own process (so one cannot warm or
 * pollute another) and passes their JSON lines through.
 *
 * `npm run bench -- --report [name...]` also writes bench/REPORT.md and bench/report.svg from
 * the lines of this run (bench/report.ts); `--report --from FILE` rebuilds them from saved lines.
 */
import { spawn } from 'node:child_process';
import { readFileSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { reportMarkdown, reportSvg, type BenchLine } from './report.ts';

const dir = fileURLToPath(new URL('.', import.meta.url));
const all = readdirSync(dir)
  .filter((f) => f.endsWith('.ts') && !['run.ts', 'harness.ts', 'report.ts'].includes(f))
  .map((f) => f.slice(0, -3));
const args = process.argv.slice(2);
const writeReport = args.includes('--report');
// `--from FILE`: build the report from the JSON lines a run saved, without running again.
const fromIndex = args.indexOf('--from');
const fromFile = fromIndex >= 0 ? args.splice(fromIndex, 2)[1] : undefined;
const wanted = args.filter((a) => !a.startsWith('--'));
const selected = wanted.length > 0 ? all.filter((b) => wanted.includes(b)) : all;
const lines: BenchLine[] = [];
const started = performance.now();
let failed = false;

function runOne(name: string): Promise<number | null> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [`${dir}${name}.ts`], { stdio: ['ignore', 'pipe', 'inherit'] });
    let buf = '';
    child.stdout.on('data', (d: Buffer) => {
      process.stdout.write(d);
      buf += d.toString();
      for (let nl = buf.indexOf('\n'); nl >= 0; nl = buf.indexOf('\n')) {
        const line = buf.slice(0, nl).trim();
        buf = buf.slice(nl + 1);
        if (!line.startsWith('{')) continue;
        try {
          const o = JSON.parse(line) as BenchLine;
          if (typeof o.bench === 'string') lines.push(o);
        } catch {
          // not a result line
        }
      }
    });
    child.on('close', (code) => resolve(code));
  });
}

if (fromFile !== undefined) {
  for (const l of readFileSync(fromFile, 'utf8').split('\n')) {
    try {
      const o = JSON.parse(l) as BenchLine;
      if (typeof o.bench === 'string') lines.push(o);
    } catch {
      // not a result line
    }
  }
}
for (const name of fromFile !== undefined ? [] : selected) {
  const status = await runOne(name);
  if (status !== 0) {
    failed = true;
    const line = { bench: name, error: `exited with status ${status}` };
    lines.push(line);
    console.log(JSON.stringify(line));
  }
}
if (writeReport) {
  const command = `npm run bench -- --report${wanted.length > 0 ? ` ${wanted.join(' ')}` : ''}${fromFile !== undefined ? ' (rebuilt from the saved lines of that run)' : ''}`;
  // A rebuilt report is dated by the saved lines' file, the end of the run that made them.
  const date = fromFile !== undefined ? statSync(fromFile).mtime.toISOString() : new Date().toISOString();
  writeFileSync(`${dir}REPORT.md`, reportMarkdown(lines, { date, command, seconds: fromFile !== undefined ? NaN : (performance.now() - started) / 1000 }));
  writeFileSync(`${dir}report.svg`, reportSvg(lines));
  console.error(`bench: wrote ${dir}REPORT.md and ${dir}report.svg`);
}
process.exitCode = failed ? 1 : 0;
