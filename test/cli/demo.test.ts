/**
 * `npm start` runs `sdnet demo`: the README promises it works on a fresh clone. This runs the
 * installed binary (bin/sdnet.js over dist/) the way `npm start` does, with a smaller file,
 * and checks what it claims: the relay came up, Alice went online, Bob reached her by id and
 * relay, the message came back, and the file arrived with the right SHA-256.
 */
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const bin = fileURLToPath(new URL('../../bin/sdnet.js', import.meta.url));

function run(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [bin, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

describe('sdnet demo (npm start)', () => {
  it('runs the two-device tour end to end: relay, online, dial by id + relay, message, verified file', async () => {
    const { code, stdout, stderr } = await run(['demo', '--size', '4']);
    expect(stderr).toBe('');
    expect(code).toBe(0);
    const relayUrl = /An sdnet relay starts on (http:\/\/127\.0\.0\.1:\d+\/)/.exec(stdout)?.[1];
    expect(relayUrl).toBeDefined();
    expect(stdout).toContain(`Alice is online with home relay ${relayUrl}`);
    expect(stdout).toMatch(/^ {3}endpoint[a-z2-7]+$/m);
    expect(stdout).toMatch(/Bob dials Alice knowing only her id and relay: connected in [\d.]+ ms/);
    expect(stdout).toContain('Alice answers: "hello Bob (you said: hi Alice)"');
    // Progress is shown (milestones when stdout is not a terminal).
    expect(stdout).toMatch(/100 % +4\.0 \/ 4\.0 MiB/);
    expect(stdout).toMatch(/Alice received 4194304 bytes, SHA-256 [0-9a-f]{16}… matches what Bob sent\./);
  }, 60_000);

  it('refuses a bad --size with status 2', async () => {
    const { code, stderr } = await run(['demo', '--size', 'lots']);
    expect(code).toBe(2);
    expect(stderr).toMatch(/--size/);
  });
});
