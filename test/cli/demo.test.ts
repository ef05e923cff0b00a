/**
 * `npm start` runs `sdnet demo`: the README promises it works on a fresh clone. This runs the
 * installed binary (bin/sdnet.js over dist/) the way `npm start` does and checks what the
 * tour claims: an embedded relay, two `sdnet up` processes with their own data dirs, pairing
 * with the real 12-word code, a message that arrives at the other process, both devices
 * listing each other as connected with a path, and the temp dirs removed (or kept with --keep).
 */
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const bin = fileURLToPath(new URL('../../bin/sdnet.js', import.meta.url));

function run(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const env = { ...process.env };
    delete env.SDNET_RELAY;
    delete env.SDNET_HOME;
    const child = spawn(process.execPath, [bin, ...args], { stdio: ['ignore', 'pipe', 'pipe'], env });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

describe('sdnet demo (npm start)', () => {
  it('runs the tour: relay, two sdnet up processes, pair with the code, a message, a file with progress and verified, devices with paths, cleanup', async () => {
    const { code, stdout, stderr } = await run(['demo']);
    expect(stderr).toBe('');
    expect(code).toBe(0);
    const relayUrl = /A relay starts on (http:\/\/127\.0\.0\.1:\d+\/)/.exec(stdout)?.[1];
    expect(relayUrl).toBeDefined();
    expect(stdout).toContain(`alice is online, home relay ${relayUrl}`);
    expect(stdout).toContain(`bob is online, home relay ${relayUrl}`);
    const words = /alice shows the code: ((?:[a-z]+ ){11}[a-z]+)$/m.exec(stdout)?.[1];
    expect(words).toBeDefined();
    // The code alice showed is the one bob typed.
    expect(stdout).toContain(`[bob] $ sdnet pair join ${words}`);
    expect(stdout).toMatch(/bob: paired with alice \([0-9a-f]{10}\); alice: paired with bob \([0-9a-f]{10}\)/);
    expect(stdout).toContain("alice's sdnet up prints: message from bob: hello from bob");
    expect(stdout).toMatch(/bob: delivered and acknowledged in [\d.]+ ms, via (direct|relay)\./);
    // The file: sent with progress, verified, the same bytes at bob (hashed by the tour from bob's downloads).
    expect(stdout).toContain('[alice] $ sdnet send bob tour-file.bin');
    expect(stdout).toMatch(/\[#{20}\] 100% completed/);
    expect(stdout).toMatch(/alice: sent 1 file, 33554432 bytes, verified by bob, via (direct|relay)\./);
    expect(stdout).toMatch(/bob has it in its downloads; SHA-256 [0-9a-f]{16}… on both sides\./);
    expect(stdout).toMatch(/alice knows bob \([0-9a-f]{10}\): connected, path (direct|relay)/);
    expect(stdout).toMatch(/bob knows alice \([0-9a-f]{10}\): connected, path (direct|relay)/);
    const dataDir = /\$ sdnet init --name alice --data (\S+)\/alice$/m.exec(stdout)?.[1];
    expect(dataDir).toBeDefined();
    expect(existsSync(dataDir!)).toBe(false);
  }, 120_000);

  it('--json --keep: one object per step, and the data dirs stay', async () => {
    const { code, stdout, stderr } = await run(['demo', '--json', '--keep']);
    expect(stderr).toBe('');
    expect(code).toBe(0);
    const steps = stdout.trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown> & { step: string });
    expect(steps.map((s) => s.step)).toEqual(['relay', 'up', 'up', 'pair', 'message', 'file', 'devices', 'devices', 'done']);
    const file = steps.find((s) => s.step === 'file')!;
    expect(file.received).toBe(file.sha256);
    expect(file.bytes).toBe(32 * 1024 * 1024);
    const message = steps.find((s) => s.step === 'message')!;
    expect(message).toMatchObject({ delivered: true, received: 'hello from bob' });
    expect(['direct', 'relay']).toContain(message.path);
    const dataDirs = steps.at(-1)!.dataDirs as string;
    try {
      expect(existsSync(join(dataDirs, 'alice', 'device.json'))).toBe(true);
      expect(existsSync(join(dataDirs, 'bob', 'secret.key'))).toBe(true);
    } finally {
      await rm(dataDirs, { recursive: true, force: true });
    }
  }, 120_000);

  it('--help lists its options; a bad --size or --relay is status 2', async () => {
    const help = await run(['demo', '--help']);
    expect(help.code).toBe(0);
    for (const flag of ['--size', '--keep', '--relay', '--json']) expect(help.stdout).toContain(flag);
    const size = await run(['demo', '--size', 'lots']);
    expect(size.code).toBe(2);
    expect(size.stderr).toMatch(/^sdnet demo: --size/);
    const relay = await run(['demo', '--relay', 'ftp://x']);
    expect(relay.code).toBe(2);
    expect(relay.stderr).toMatch(/^sdnet demo: --relay/);
  }, 60_000);
});
