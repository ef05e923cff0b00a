/**
 * The lint rule that keeps the protocol cores sans-IO fires on what it must forbid and stays
 * quiet on clean code.
 */
import { describe, expect, it } from 'vitest';
import { ESLint } from 'eslint';
import { fileURLToPath } from 'node:url';
import { spawnSync } from 'node:child_process';

const root = fileURLToPath(new URL('../..', import.meta.url));
const eslint = new ESLint({ cwd: root });

async function ruleIds(code: string, filePath: string): Promise<string[]> {
  const [result] = await eslint.lintText(code, { filePath: `${root}${filePath}` });
  return (result?.messages ?? []).map((m) => m.ruleId ?? 'fatal');
}

describe('sans-IO lint rule', () => {
  const forbidden: Array<[string, string, string]> = [
    ["import dgram from 'node:dgram'; export const s = dgram;", 'no-restricted-imports', 'node:dgram'],
    ["import { createSocket } from 'dgram'; export const s = createSocket;", 'no-restricted-imports', 'bare dgram'],
    ["import { readFile } from 'node:fs/promises'; export const r = readFile;", 'no-restricted-imports', 'node:fs/promises'],
    ['export const t = setTimeout(() => 1, 5);', 'no-restricted-globals', 'setTimeout'],
    ['export const now = Date.now();', 'no-restricted-globals', 'Date'],
    ['export const now = performance.now();', 'no-restricted-globals', 'performance'],
    ['export const r = Math.random();', 'no-restricted-properties', 'Math.random'],
  ];
  for (const dir of ['src/transport/quic/', 'src/relay/protocol/']) {
    for (const [code, rule, what] of forbidden) {
      it(`rejects ${what} under ${dir}`, async () => {
        expect(await ruleIds(code, `${dir}probe.ts`)).toContain(rule);
      });
    }
  }

  it('allows the same import outside the cores', async () => {
    expect(await ruleIds("import dgram from 'node:dgram'; export const s = dgram;", 'src/transport/io/probe.ts')).toEqual([]);
  });

  it('allows pure code inside the core', async () => {
    expect(await ruleIds('export function add(now: number, d: number): number { return now + d; }', 'src/transport/quic/probe.ts')).toEqual([]);
  });

  it('typechecks the whole repository (the first half of npm run lint)', () => {
    const r = spawnSync(process.execPath, [`${root}node_modules/typescript/bin/tsc`, '-p', 'tsconfig.json', '--noEmit'], { cwd: root, encoding: 'utf8' });
    expect(r.stdout + r.stderr).toBe('');
    expect(r.status).toBe(0);
  });

  it('passes on the whole repository', async () => {
    const results = await eslint.lintFiles(['.']);
    const problems = results.flatMap((r) => r.messages.map((m) => `${r.filePath}:${m.line} ${m.ruleId} ${m.message}`));
    expect(problems).toEqual([]);
  });
});
