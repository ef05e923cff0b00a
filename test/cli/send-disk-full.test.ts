/**
 * `sdnet send` when the receiver's disk fills up (issue 16: every error a user can cause is
 * one clear line and a non-zero exit): bob's `sdnet up` receives into a 48 MiB tmpfs, alice
 * sends 64 MiB. The send ends with exit 1 and one `sdnet send: …` line naming the full
 * disk (ERR_DISK_FULL), without a stack trace; nothing is lost — once space is free the same
 * `sdnet send` resumes from what bob kept and the file arrives identical.
 *
 * Needs root (mount -t tmpfs); skips with the reason printed otherwise.
 */
import { execFileSync } from 'node:child_process';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { pairDataDirs } from '../helpers/pair-fixture.ts';
import { freeUdpPort, killAll, runSdnet, startUp } from '../helpers/sdnet-proc.ts';
import { sha256File, writeBigFile } from '../helpers/transfer-tree.ts';

const MiB = 1024 * 1024;
const isRoot = process.getuid?.() === 0;
if (!isRoot) console.log('[skip] sdnet send on a full disk: mounting a tmpfs needs root');

const cleanups: Array<() => Promise<unknown> | unknown> = [];
afterEach(async () => {
  await killAll();
  for (const c of cleanups.splice(0).reverse()) await c();
});

describe('sdnet send to a device whose disk is full', () => {
  it.skipIf(!isRoot)('exit 1 with one line naming the full disk; after space is freed the same send resumes and the file is identical', { timeout: 600_000 }, async () => {
    const root = await mkdtemp(join(tmpdir(), 'sdnet-cli-full-'));
    cleanups.push(() => rm(root, { recursive: true, force: true }));
    const dl = join(root, 'dl');
    await mkdir(dl);
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=48m', 'tmpfs', dl]);
    cleanups.push(() => execFileSync('umount', ['-l', dl]));
    const [portA, portB] = [await freeUdpPort(), await freeUdpPort()];
    const dirA = join(root, 'a');
    const dirB = join(root, 'b');
    await pairDataDirs(dirA, dirB, { nameA: 'alice', nameB: 'bob', addrA: [`127.0.0.1:${portA}`], addrB: [`127.0.0.1:${portB}`] });
    const src = join(root, 'big.bin');
    await writeBigFile(src, 64 * MiB);
    const upB = startUp(['--data', dirB, '--bind', `127.0.0.1:${portB}`, '--downloads', dl, '--json']);
    await upB.out.waitText(/"event":"online"/, 60_000, 'bob online');

    const full = await runSdnet(['send', '--data', dirA, 'bob', src], { timeoutMs: 300_000 });
    expect(full.code, full.stderr).toBe(1);
    // Progress lines (not a TTY: one per 10 %) and then exactly one error line.
    const errors = full.stderr.split('\n').filter((l) => l.startsWith('sdnet send: '));
    expect(errors, full.stderr).toHaveLength(1);
    expect(errors[0]).toMatch(/^sdnet send: the receiver's disk is full \(disk full at .+: \d+ bytes still to write\); the same sdnet send resumes it once space is free$/);
    expect(full.stderr).not.toMatch(/^\s+at /m);

    // Space freed (a bigger tmpfs over the same files): the same command resumes and completes.
    execFileSync('mount', ['-o', 'remount,size=160m', dl]);
    const again = await runSdnet(['send', '--data', dirA, 'bob', src], { timeoutMs: 300_000 });
    expect(again.code, again.stderr).toBe(0);
    expect(again.stdout.trim().split('\n').at(-1)).toBe(`sent 1 files, ${64 * MiB} bytes, verified by bob`);
    expect(await sha256File(join(dl, 'big.bin'))).toBe(await sha256File(src));
  });
});
