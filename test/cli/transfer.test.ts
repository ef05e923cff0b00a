/**
 * `sdnet send`, `sdnet transfers` and the receiving side of `sdnet up` as processes
 * (shared/docs/cli.md; issue 14):
 *
 * - a small tree sent through the running `up` of the sender arrives identical; the last
 *   line says `sent N files, B bytes, verified by <name>`; `transfers --json` lists it;
 *   an unknown device is exit 2;
 * - `kill -9` of the receiver's `up` at ~50 % of a 256 MiB file, then its restart: the same
 *   `sdnet send` resumes (the receiver starts from the verified bytes it had saved), the
 *   file is identical;
 * - `kill -9` of the sender (`sdnet send` running the service in-process) at ~50 %, then
 *   `sdnet send` again: the receiver resumes, the file is identical.
 *
 * How much is sent twice is measured outside the transfer code in the relay-only run
 * (test/netns); here the resumed offset is printed.
 */
import { mkdtemp, readdir, rm, writeFile, mkdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { pairDataDirs } from '../helpers/pair-fixture.ts';
import { freeUdpPort, killAll, runSdnet, startSdnet, startUp, type UpProcess } from '../helpers/sdnet-proc.ts';
import { describeTree, sha256File, writeBigFile } from '../helpers/transfer-tree.ts';

const MiB = 1024 * 1024;
const dirs: string[] = [];
afterEach(async () => {
  await killAll();
  for (const d of dirs.splice(0)) await rm(d, { recursive: true, force: true });
});

interface Pair {
  root: string;
  dirA: string;
  dirB: string;
  dl: string;
  upA: () => UpProcess;
  upB: () => UpProcess;
}

async function pair(): Promise<Pair> {
  const root = await mkdtemp(join(tmpdir(), 'sdnet-cli-xfer-'));
  dirs.push(root);
  const [portA, portB] = [await freeUdpPort(), await freeUdpPort()];
  const dirA = join(root, 'a');
  const dirB = join(root, 'b');
  const dl = join(root, 'received');
  await pairDataDirs(dirA, dirB, { nameA: 'alice', nameB: 'bob', addrA: [`127.0.0.1:${portA}`], addrB: [`127.0.0.1:${portB}`] });
  return {
    root,
    dirA,
    dirB,
    dl,
    upA: () => startUp(['--data', dirA, '--bind', `127.0.0.1:${portA}`]),
    upB: () => startUp(['--data', dirB, '--bind', `127.0.0.1:${portB}`, '--downloads', dl, '--json']),
  };
}

type Ev = { event: string; stage?: string; bytesDone?: number; bytesTotal?: number; transferId?: string };
const isTransfer = (stage: string, pred: (o: Ev) => boolean = () => true) => (o: Record<string, unknown>) => o.event === 'transfer' && o.stage === stage && pred(o as Ev);

describe('sdnet send / transfers / up', () => {
  it('a small tree through the running up: identical, "sent N files, B bytes, verified by bob", listed by transfers', { timeout: 240_000 }, async () => {
    const p = await pair();
    const tree = join(p.root, 'docs');
    await mkdir(join(tree, 'empty'), { recursive: true });
    await mkdir(join(tree, 'sub'), { recursive: true });
    await writeFile(join(tree, 'a.txt'), 'alpha\n');
    await writeFile(join(tree, 'sub', 'b.bin'), new Uint8Array(300_000).map((_, i) => i & 0xff));
    await writeFile(join(tree, 'sub', 'zero'), '');
    const upA = p.upA();
    const upB = p.upB();
    await upA.out.waitText(/^online /, 60_000, 'A online');
    await upB.out.waitText(/"event":"online"/, 60_000, 'B online');
    const r = await runSdnet(['send', '--data', p.dirA, 'bob', tree], { timeoutMs: 180_000 });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout.trim().split('\n').at(-1)).toBe('sent 3 files, 300006 bytes, verified by bob');
    expect(await describeTree(join(p.dl, 'docs'))).toEqual(await describeTree(tree));
    const done = await upB.out.wait(isTransfer('completed'), 30_000, 'completed at bob');
    expect(done).toMatchObject({ bytesDone: 300006, bytesTotal: 300006, direction: 'receive' });
    const listed = await runSdnet(['transfers', '--json', '--data', p.dirB]);
    expect(listed.code, listed.stderr).toBe(0);
    expect(JSON.parse(listed.stdout)).toEqual(expect.arrayContaining([expect.objectContaining({ direction: 'receive', state: 'completed', files: 3, filesDone: 3, bytesDone: 300006 })]));
    const listedA = await runSdnet(['transfers', '--data', p.dirA]);
    expect(listedA.stdout).toMatch(/out\s+bob\s+completed\s+3\/3\s+100%/);
    const unknown = await runSdnet(['send', '--data', p.dirA, 'nobody', tree]);
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toMatch(/^sdnet send: /);
  });

  it('transfers pause / resume at the receiver and cancel at the sender, as processes through the running ups', { timeout: 600_000 }, async () => {
    const p = await pair();
    const big = join(p.root, 'big.bin');
    await writeBigFile(big, 128 * MiB);
    const upA = p.upA();
    const upB = p.upB();
    await upA.out.waitText(/^online /, 60_000, 'A online');
    await upB.out.waitText(/"event":"online"/, 60_000, 'B online');
    const sending = runSdnet(['send', '--data', p.dirA, 'bob', big], { timeoutMs: 500_000 });
    const moving = await upB.out.wait<Ev>(isTransfer('transferring', (o) => (o.bytesDone ?? 0) > 0), 300_000, 'bytes arriving at bob');
    const id = moving.transferId!;
    // Paused by the receiver: said by the command, seen as an event and in the list.
    const paused = await runSdnet(['transfers', 'pause', id, '--data', p.dirB]);
    expect(paused.code, paused.stderr).toBe(0);
    expect(paused.stdout.trim()).toBe(`paused ${id.slice(0, 8)}`);
    await upB.out.wait(isTransfer('paused', (o) => o.transferId === id), 30_000, 'paused at bob');
    const listed = JSON.parse((await runSdnet(['transfers', '--json', '--data', p.dirB])).stdout) as { id: string; state: string }[];
    expect(listed.find((t) => t.id === id)?.state).toBe('paused');
    const resumed = await runSdnet(['transfers', 'resume', id, '--data', p.dirB, '--json']);
    expect(resumed.code, resumed.stderr).toBe(0);
    expect(JSON.parse(resumed.stdout)).toMatchObject({ id });
    const r = await sending;
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout.trim().split('\n').at(-1)).toBe(`sent 1 files, ${128 * MiB} bytes, verified by bob`);
    expect(await sha256File(join(p.dl, 'big.bin'))).toBe(await sha256File(big));

    // Cancelled by the sender: the send ends with exit 1 and one line; bob drops its part.
    const big2 = join(p.root, 'big2.bin');
    await writeBigFile(big2, 128 * MiB);
    const second = runSdnet(['send', '--data', p.dirA, 'bob', big2], { timeoutMs: 500_000 });
    const moving2 = await upB.out.wait<Ev>(isTransfer('transferring', (o) => o.transferId !== id && (o.bytesDone ?? 0) > 0), 300_000, 'bytes of the second file at bob');
    const cancelled = await runSdnet(['transfers', 'cancel', moving2.transferId!, '--data', p.dirA]);
    expect(cancelled.code, cancelled.stderr).toBe(0);
    expect(cancelled.stdout.trim()).toBe(`cancelled ${moving2.transferId!.slice(0, 8)}`);
    const r2 = await second;
    expect(r2.code).toBe(1);
    expect(r2.stderr.split('\n').filter((l) => l.startsWith('sdnet send: '))).toHaveLength(1);
    expect(r2.stderr).toMatch(/^sdnet send: .*cancel/im);
    await upB.out.wait(isTransfer('cancelled', (o) => o.transferId === moving2.transferId), 30_000, 'cancelled at bob');
    const unknown = await runSdnet(['transfers', 'pause', 'nonexistent', '--data', p.dirB]);
    expect(unknown.code).toBe(1);
    expect(unknown.stderr).toMatch(/^sdnet transfers: /);
  });

  it('kill -9 of the receiver at ~50 % of 256 MiB: after its restart the same send resumes and the file is identical', { timeout: 900_000 }, async () => {
    const p = await pair();
    const big = join(p.root, 'big.bin');
    await writeBigFile(big, 256 * MiB);
    const upA = p.upA();
    let upB = p.upB();
    await upA.out.waitText(/^online /, 60_000, 'A online');
    await upB.out.waitText(/"event":"online"/, 60_000, 'B online');
    const sending = runSdnet(['send', '--data', p.dirA, 'bob', big], { timeoutMs: 840_000 });
    const half = await upB.out.wait<Ev>(isTransfer('transferring', (o) => (o.bytesDone ?? 0) >= (o.bytesTotal ?? 1) / 2), 600_000, 'bob at 50 %');
    upB.child.kill('SIGKILL');
    await upB.exited;
    upB = p.upB();
    const resumed = await upB.out.wait<Ev>(isTransfer('accepted'), 120_000, 'the resumed offer at bob');
    const r = await sending;
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout.trim().split('\n').at(-1)).toBe(`sent 1 files, ${256 * MiB} bytes, verified by bob`);
    expect(await sha256File(join(p.dl, 'big.bin'))).toBe(await sha256File(big));
    console.log(JSON.stringify({ killedAt: half.bytesDone, resumedFrom: resumed.bytesDone, lostAtMost: (half.bytesDone ?? 0) - (resumed.bytesDone ?? 0) }));
    expect(resumed.bytesDone).toBeGreaterThan(0);
    // bob sends 'done' (which ends the sender's command) before it drops its transfer state.
    await upB.out.wait(isTransfer('completed'), 30_000, 'completed at bob');
    expect((await readdir(p.dl)).filter((n) => n.endsWith('.sdpart'))).toEqual([]);
    expect(await readdir(join(p.dirB, 'transfers'))).toEqual([]);
  });

  it('kill -9 of the sender at ~50 % of 256 MiB: sdnet send again resumes and the file is identical', { timeout: 900_000 }, async () => {
    const p = await pair();
    const big = join(p.root, 'big.bin');
    await writeBigFile(big, 256 * MiB);
    const upB = p.upB();
    await upB.out.waitText(/"event":"online"/, 60_000, 'B online');
    const first = startSdnet(['send', '--data', p.dirA, 'bob', big]);
    const half = await upB.out.wait<Ev>(isTransfer('transferring', (o) => (o.bytesDone ?? 0) >= (o.bytesTotal ?? 1) / 2), 600_000, 'bob at 50 %');
    first.child.kill('SIGKILL');
    await first.exited;
    const accepted = upB.out.objects.filter(isTransfer('accepted')).length;
    const again = runSdnet(['send', '--data', p.dirA, 'bob', big], { timeoutMs: 840_000 });
    const resumed = await upB.out.wait<Ev>((o) => isTransfer('accepted')(o) && upB.out.objects.filter(isTransfer('accepted')).indexOf(o) >= accepted, 180_000, 'the second offer at bob');
    const r = await again;
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout.trim().split('\n').at(-1)).toBe(`sent 1 files, ${256 * MiB} bytes, verified by bob`);
    expect(await sha256File(join(p.dl, 'big.bin'))).toBe(await sha256File(big));
    console.log(JSON.stringify({ killedAt: half.bytesDone, resumedFrom: resumed.bytesDone, lostAtMost: (half.bytesDone ?? 0) - (resumed.bytesDone ?? 0) }));
    expect(resumed.bytesDone).toBeGreaterThanOrEqual(half.bytesDone ?? 0);
  });
});
