/**
 * Issue 14 acceptance, direct on loopback: a tree (empty files, an empty directory, a 300 MiB
 * file, 1,000 small files, non-ASCII names) sent with `Core.shareWithDevice` between two
 * Cores paired through the registry fixture arrives identical — contents (SHA-256), sizes,
 * modes, mtimes to the µs — and the events count verified bytes only, ending in `completed`.
 */
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { Core } from '../../src/service/index.ts';
import type { TransferProgress } from '../../src/service/modules.ts';
import { transferModule } from '../../src/protocols/transfer/index.ts';
import { pairDataDirs } from '../helpers/pair-fixture.ts';
import { freeUdpPort } from '../helpers/sdnet-proc.ts';
import { buildTree, describeTree } from '../helpers/transfer-tree.ts';

const MiB = 1024 * 1024;
const cleanups: Array<() => Promise<unknown> | unknown> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

describe('file transfer on loopback', () => {
  it('a tree arrives identical: hashes, sizes, modes, mtimes (µs); events count verified bytes', { timeout: 600_000 }, async () => {
    const seed = Number(process.env.SEED ?? Date.now() % 1_000_000);
    console.log(`seed ${seed}`);
    const root = await mkdtemp(join(tmpdir(), 'sdnet-xfer-tree-'));
    cleanups.push(() => rm(root, { recursive: true, force: true }));
    const [portA, portB] = [await freeUdpPort(), await freeUdpPort()];
    await pairDataDirs(join(root, 'a'), join(root, 'b'), { nameA: 'alice', nameB: 'bob', addrA: [`127.0.0.1:${portA}`], addrB: [`127.0.0.1:${portB}`] });
    const tree = await buildTree(root, 'tree ✓', { bigBytes: 300 * MiB, smallFiles: 1000, seed });
    const single = join(root, 'single.txt');
    await (await import('node:fs/promises')).writeFile(single, 'one file alone\n');
    const a = await Core.init({ dataDir: join(root, 'a'), bind: [`127.0.0.1:${portA}`], modules: { transfer: transferModule() } });
    cleanups.push(() => a.shutdown());
    const downloads = join(root, 'downloads');
    const b = await Core.init({ dataDir: join(root, 'b'), bind: [`127.0.0.1:${portB}`], downloadsDir: downloads, modules: { transfer: transferModule() } });
    cleanups.push(() => b.shutdown());
    const sent: TransferProgress[] = [];
    const received: TransferProgress[] = [];
    a.networking.on('transfer-progress', (p) => sent.push(p));
    b.networking.on('transfer-progress', (p) => received.push(p));
    // The sender's share() resolves on the receiver's 'done', which the receiver sends before it
    // closes its files and drops its transfer state; its 'completed' event follows that clean-up.
    const receiverCompleted = new Promise<void>((resolve) => b.networking.on('transfer-progress', (p) => p.stage === 'completed' && resolve()));

    const t0 = performance.now();
    const r = await a.shareWithDevice('bob', [tree, single], { timeoutMs: 540_000 });
    console.log(`sent ${r.files} files, ${r.bytes} bytes in ${Math.round(performance.now() - t0)} ms`);
    const want = await describeTree(tree);
    const files = [...want.values()].filter((x) => x.kind === 'file');
    expect(r.files).toBe(files.length + 1);
    expect(r.bytes).toBe(files.reduce((s, x) => s + x.size, 0) + 15);

    await receiverCompleted;
    const got = await describeTree(join(downloads, 'tree ✓'));
    expect([...got.keys()].sort()).toEqual([...want.keys()].sort());
    for (const [path, w] of want) expect(got.get(path), path).toEqual(w);
    expect((await describeTree(downloads)).get('single.txt')?.size).toBe(15);
    // Nothing left behind: no part files, no transfer state.
    const leftovers = [...(await describeTree(downloads)).keys()].filter((p) => p.endsWith('.sdpart'));
    expect(leftovers).toEqual([]);
    expect(await readdir(join(root, 'b', 'transfers')).catch(() => [])).toEqual([]);

    // Events: phases in order at the receiver; bytes never go down and end at the total.
    const stages = received.map((p) => p.stage);
    expect(stages[0]).toBe('offered');
    expect(stages).toContain('accepted');
    expect(stages).toContain('verifying');
    expect(stages.at(-1)).toBe('completed');
    const moving = received.filter((p) => p.stage === 'transferring').map((p) => p.bytesDone ?? 0);
    expect(moving.length).toBeGreaterThan(2);
    for (let i = 1; i < moving.length; i++) expect(moving[i]!).toBeGreaterThanOrEqual(moving[i - 1]!);
    expect(received.at(-1)?.bytesDone).toBe(r.bytes);
    expect(sent.map((p) => p.stage)).toEqual(expect.arrayContaining(['hashing', 'offered', 'accepted', 'completed']));
    expect(sent.at(-1)).toMatchObject({ stage: 'completed', bytesDone: r.bytes, direction: 'send', peer: { name: 'bob' } });
  });
});
