/**
 * Progress and control (issue 14 item 5): pause and resume from the receiver (the sender
 * sees `paused` then `transferring` again and the file completes), cancel from the sender
 * (the receiver reports `cancelled` and removes its part file and state), cancel from the
 * receiver (the sender's share rejects with ERR_TRANSFER_CANCELLED); progress counts
 * verified bytes and never goes down; an offer under policy `refuse` is ERR_TRANSFER_REFUSED.
 */
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { Core } from '../../src/service/index.ts';
import type { TransferProgress } from '../../src/service/modules.ts';
import { transferModule, type TransferService } from '../../src/protocols/transfer/index.ts';
import { pairDataDirs } from '../helpers/pair-fixture.ts';
import { until } from '../helpers/relay-test-utils.ts';
import { freeUdpPort } from '../helpers/sdnet-proc.ts';
import { sha256File, writeBigFile } from '../helpers/transfer-tree.ts';

const MiB = 1024 * 1024;
const cleanups: Array<() => Promise<unknown> | unknown> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function setup(policy: 'accept' | 'refuse' = 'accept') {
  const root = await mkdtemp(join(tmpdir(), 'sdnet-xfer-ctl-'));
  cleanups.push(() => rm(root, { recursive: true, force: true }));
  const [portA, portB] = [await freeUdpPort(), await freeUdpPort()];
  await pairDataDirs(join(root, 'a'), join(root, 'b'), { nameA: 'alice', nameB: 'bob', addrA: [`127.0.0.1:${portA}`], addrB: [`127.0.0.1:${portB}`] });
  const a = await Core.init({ dataDir: join(root, 'a'), bind: [`127.0.0.1:${portA}`], modules: { transfer: transferModule() } });
  cleanups.push(() => a.shutdown());
  const dl = join(root, 'dl');
  const b = await Core.init({ dataDir: join(root, 'b'), bind: [`127.0.0.1:${portB}`], downloadsDir: dl, modules: { transfer: transferModule({ policy }) } });
  cleanups.push(() => b.shutdown());
  const atA: TransferProgress[] = [];
  const atB: TransferProgress[] = [];
  a.networking.on('transfer-progress', (p) => atA.push(p));
  b.networking.on('transfer-progress', (p) => atB.push(p));
  return { root, a, b, dl, atA, atB, ta: a.networking.transfer as TransferService, tb: b.networking.transfer as TransferService };
}

describe('transfer control', () => {
  it('receiver pauses and resumes; the sender sees both; the file completes; bytes never go down', { timeout: 300_000 }, async () => {
    const s = await setup();
    const src = join(s.root, 'f.bin');
    await writeBigFile(src, 48 * MiB);
    const sending = s.a.shareWithDevice('bob', [src]);
    await until(() => s.atB.some((p) => p.stage === 'transferring' && (p.bytesDone ?? 0) > 0), 'bytes arriving', 120_000);
    const id = s.atB.find((p) => p.stage === 'transferring')!.transferId;
    s.tb.pause(id.slice(0, 8));
    await until(() => s.atA.some((p) => p.stage === 'paused'), 'the sender sees the pause', 30_000);
    expect(s.tb.list().find((t) => t.id === id)).toMatchObject({ state: 'paused', paused: ['local'] });
    s.tb.resume(id);
    const r = await sending;
    expect(r.bytes).toBe(48 * MiB);
    expect(await sha256File(join(s.dl, 'f.bin'))).toBe(await sha256File(src));
    const sentStages = s.atA.map((p) => p.stage);
    expect(sentStages.indexOf('paused')).toBeLessThan(sentStages.lastIndexOf('transferring'));
    const bytes = s.atB.filter((p) => p.stage === 'transferring').map((p) => p.bytesDone ?? 0);
    for (let i = 1; i < bytes.length; i++) expect(bytes[i]!).toBeGreaterThanOrEqual(bytes[i - 1]!);
  });

  it('the sender cancels: the receiver reports cancelled and removes its part and state', { timeout: 300_000 }, async () => {
    const s = await setup();
    const src = join(s.root, 'f.bin');
    await writeBigFile(src, 48 * MiB);
    const sending = s.a.shareWithDevice('bob', [src]).catch((e: unknown) => e);
    await until(() => s.atB.some((p) => p.stage === 'transferring' && (p.bytesDone ?? 0) > 0), 'bytes arriving', 120_000);
    const id = s.atB.find((p) => p.stage === 'transferring')!.transferId;
    await s.ta.cancel(id);
    expect(await sending).toMatchObject({ code: 'ERR_TRANSFER_CANCELLED' });
    await until(() => s.atB.some((p) => p.stage === 'cancelled'), 'cancelled at the receiver', 30_000);
    await until(async () => (await readdir(s.dl)).length === 0, 'the part removed', 10_000);
    expect(await readdir(join(s.root, 'b', 'transfers')).catch(() => [])).toEqual([]);
  });

  it('the receiver cancels: the share rejects with ERR_TRANSFER_CANCELLED; policy refuse: ERR_TRANSFER_REFUSED', { timeout: 300_000 }, async () => {
    const s = await setup();
    const src = join(s.root, 'f.bin');
    await writeBigFile(src, 48 * MiB);
    const sending = s.a.shareWithDevice('bob', [src]).catch((e: unknown) => e);
    await until(() => s.atB.some((p) => p.stage === 'transferring' && (p.bytesDone ?? 0) > 0), 'bytes arriving', 120_000);
    await s.tb.cancel(s.atB.find((p) => p.stage === 'transferring')!.transferId);
    expect(await sending).toMatchObject({ code: 'ERR_TRANSFER_CANCELLED' });
    expect(await readdir(s.dl)).toEqual([]);

    const r = await setup('refuse');
    await expect(r.a.shareWithDevice('bob', [src])).rejects.toMatchObject({ code: 'ERR_TRANSFER_REFUSED' });
    expect(await readdir(r.dl).catch(() => [])).toEqual([]);
  });
});
