/**
 * Issue 14 acceptance, disk full: the receiver's destination is a small tmpfs. When it fills
 * up in the middle of a transfer, the transfer pauses with a clear message (both sides see
 * `paused`, error `ERR_DISK_FULL`) and keeps its state; offered again by a restarted sender
 * while the disk is still full, it pauses again; once space is freed it completes, and the
 * file is identical. Needs root (mount -t tmpfs); skips with the reason otherwise.
 */
import { execFileSync } from 'node:child_process';
import { mkdir, mkdtemp, open, rm, unlink } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { Core } from '../../src/service/index.ts';
import type { TransferProgress } from '../../src/service/modules.ts';
import { transferModule } from '../../src/protocols/transfer/index.ts';
import { pairDataDirs } from '../helpers/pair-fixture.ts';
import { until } from '../helpers/relay-test-utils.ts';
import { freeUdpPort } from '../helpers/sdnet-proc.ts';
import { sha256File, writeBigFile } from '../helpers/transfer-tree.ts';

const MiB = 1024 * 1024;
const isRoot = process.getuid?.() === 0;
const cleanups: Array<() => Promise<unknown> | unknown> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

/** Fill `dir` until ENOSPC; returns the filler's path. */
async function fill(dir: string): Promise<string> {
  const path = join(dir, 'filler');
  const fh = await open(path, 'w');
  const block = new Uint8Array(MiB);
  try {
    for (;;) await fh.write(block);
  } catch (err) {
    if ((err as { code?: string }).code !== 'ENOSPC') throw err;
  } finally {
    await fh.close();
  }
  return path;
}

describe('disk full at the receiver', () => {
  if (!isRoot) console.log('skipped: mounting a tmpfs needs root');
  it.skipIf(!isRoot)('pauses with ERR_DISK_FULL, pauses again when re-offered, completes after space is freed', { timeout: 600_000 }, async () => {
    const root = await mkdtemp(join(tmpdir(), 'sdnet-xfer-full-'));
    cleanups.push(() => rm(root, { recursive: true, force: true }));
    const dl = join(root, 'dl');
    await mkdir(dl);
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=96m', 'tmpfs', dl]);
    cleanups.push(() => execFileSync('umount', ['-l', dl]));
    const [portA, portB] = [await freeUdpPort(), await freeUdpPort()];
    await pairDataDirs(join(root, 'a'), join(root, 'b'), { nameA: 'alice', nameB: 'bob', addrA: [`127.0.0.1:${portA}`], addrB: [`127.0.0.1:${portB}`] });
    const src = join(root, 'payload.bin');
    await writeBigFile(src, 64 * MiB);
    const b = await Core.init({ dataDir: join(root, 'b'), bind: [`127.0.0.1:${portB}`], downloadsDir: dl, modules: { transfer: transferModule() } });
    cleanups.push(() => b.shutdown());
    const atB: TransferProgress[] = [];
    b.networking.on('transfer-progress', (p) => atB.push(p));
    let a = await Core.init({ dataDir: join(root, 'a'), bind: [`127.0.0.1:${portA}`], modules: { transfer: transferModule() } });
    const atA: TransferProgress[] = [];
    a.networking.on('transfer-progress', (p) => atA.push(p));
    const first = a.shareWithDevice('bob', [src]).catch((e: unknown) => e);

    // Some bytes in, then the disk fills up under the transfer.
    await until(() => atB.some((p) => p.stage === 'transferring' && (p.bytesDone ?? 0) > 0), 'bytes arriving', 120_000);
    const filler = await fill(dl);
    await until(() => atB.some((p) => p.stage === 'paused' && p.error?.code === 'ERR_DISK_FULL'), 'paused for a full disk at bob', 120_000);
    const paused = atB.find((p) => p.stage === 'paused' && p.error?.code === 'ERR_DISK_FULL')!;
    expect(paused.error!.message).toMatch(/^disk full at .*: \d+ bytes still to write; free space and the transfer resumes$/);
    await until(() => atA.some((p) => p.stage === 'paused' && p.error?.code === 'ERR_DISK_FULL'), 'the sender told', 30_000);

    // The sender goes away and comes back: offered again, still full, paused again.
    await a.shutdown();
    expect(await first).toBeInstanceOf(Error);
    const pausesBefore = atB.filter((p) => p.stage === 'paused').length;
    a = await Core.init({ dataDir: join(root, 'a'), bind: [`127.0.0.1:${portA}`], modules: { transfer: transferModule() } });
    cleanups.push(() => a.shutdown());
    const again = a.shareWithDevice('bob', [src], { timeoutMs: 500_000 });
    await until(() => atB.filter((p) => p.stage === 'paused' && p.error?.code === 'ERR_DISK_FULL').length > 0 && atB.filter((p) => p.stage === 'paused').length > pausesBefore, 'paused again after the new offer', 120_000);
    expect(atB.filter((p) => p.stage === 'completed')).toEqual([]);

    // Space freed: it resumes by itself and completes.
    await unlink(filler);
    const r = await again;
    expect(r.bytes).toBe(64 * MiB);
    expect(await sha256File(join(dl, 'payload.bin'))).toBe(await sha256File(src));
    expect(atB.at(-1)?.stage).toBe('completed');
  });
});
