/**
 * File transfer relay-only (issue 14 acceptance): `sdnet-relay` in one network namespace,
 * two `sdnet up` devices in two others, every UDP packet dropped on the switch.
 *
 * 1. The acceptance tree (empty files, an empty directory, a 300 MiB file, 1,000 small files,
 *    non-ASCII names) arrives identical through the relay.
 * 2. `kill -9` of the receiver at ~50 % of 256 MiB, then its restart: `sdnet send` resumes,
 *    the file is identical, and what was sent twice — measured outside the transfer code,
 *    from the relay's `relay_bytes_relayed_total`, against a clean 64 MiB run in the same lab
 *    for the per-byte overhead — is at most 64 MiB.
 * 3. The same with `kill -9` of the sender (`sdnet send` in-process), then `sdnet send` again.
 *
 * Needs root; skips with the reason printed otherwise.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parsePrometheusText } from '../../relay-server/src/index.ts';
import { JsonLines, NetnsLab, netnsUnavailableReason } from '../helpers/netns.ts';
import { pairDataDirs } from '../helpers/pair-fixture.ts';
import { cleanEnv, killAll, runSdnet, startSdnet, startUp, type UpProcess } from '../helpers/sdnet-proc.ts';
import { buildTree, describeTree, sha256File, writeBigFile } from '../helpers/transfer-tree.ts';

const reason = netnsUnavailableReason();
if (reason !== undefined) console.log(`[skip] transfer relay-only (netns + nftables): ${reason}`);

const RELAY_BIN = fileURLToPath(new URL('../../bin/sdnet-relay.js', import.meta.url));
const MiB = 1024 * 1024;
const METRICS_PORT = 9090;

let lab: NetnsLab;
let root: string;
let url: string;
let relayOut: JsonLines;
let dirA: string;
let dirB: string;
let dl: string;

beforeAll(async () => {
  if (reason !== undefined) return;
  lab = await NetnsLab.create(['relay', 'a', 'b']);
  await lab.switchFilter('meta l4proto udp counter drop comment "udp"');
  const host = lab.hosts.relay!.addr;
  const relay = lab.spawn('relay', [process.execPath, RELAY_BIN, '--host', host, '--port', '3340', '--metrics-host', host, '--metrics-port', String(METRICS_PORT), '--rate-limit', '0', '--log-level', 'warn']);
  relayOut = new JsonLines(relay);
  url = await relayOut.waitText(/^http:\/\//, 30_000, 'the relay URL');
  root = await mkdtemp(join(tmpdir(), 'sdnet-netns-xfer-'));
  dirA = join(root, 'alice');
  dirB = join(root, 'bob');
  dl = join(root, 'received');
  await pairDataDirs(dirA, dirB, { nameA: 'alice', nameB: 'bob', relay: url });
}, 120_000);
afterAll(async () => {
  if (reason !== undefined) return;
  await killAll();
  await lab.destroy();
  await rm(root, { recursive: true, force: true });
});

const upA = (): UpProcess => startUp(['--data', dirA, '--relay', url, '--bind', `${lab.hosts.a!.addr}:0`], { spawnWith: (argv) => lab.spawn('a', argv, { env: cleanEnv() }) });
const upB = (): UpProcess => startUp(['--data', dirB, '--relay', url, '--bind', `${lab.hosts.b!.addr}:0`, '--downloads', dl, '--json'], { spawnWith: (argv) => lab.spawn('b', argv, { env: cleanEnv() }) });
const inA = (args: string[], timeoutMs: number) => runSdnet(args, { prefix: ['ip', 'netns', 'exec', lab.hosts.a!.netns], env: cleanEnv(), timeoutMs });

async function relayed(): Promise<number> {
  const u = `http://${lab.hosts.relay!.addr}:${METRICS_PORT}/metrics`;
  const r = await lab.exec('relay', [process.execPath, '-e', `fetch(${JSON.stringify(u)}).then(async r => process.stdout.write(await r.text()), e => { console.error(String(e)); process.exit(1) })`]);
  if (r.code !== 0) throw new Error(`fetching ${u} failed: ${r.stderr}`);
  return parsePrometheusText(r.stdout).get('relay_bytes_relayed_total') ?? 0;
}

type Ev = { event: string; stage?: string; bytesDone?: number; bytesTotal?: number };
const transferAt = (stage: string, pred: (o: Ev) => boolean = () => true) => (o: Record<string, unknown>) => o.event === 'transfer' && o.stage === stage && pred(o as Ev);
let perByte = 0;

describe.skipIf(reason !== undefined)('file transfer relay-only in network namespaces (root)', () => {
  it('a clean 64 MiB run (the relay overhead per byte), then the acceptance tree arrives identical', { timeout: 1_200_000 }, async () => {
    const a = upA();
    const b = upB();
    try {
    await a.out.waitText(/^online /, 60_000, 'alice online');
    await b.out.waitText(/"event":"online"/, 60_000, 'bob online');
    const probe = join(root, 'probe.bin');
    await writeBigFile(probe, 64 * MiB);
    const r0 = await relayed();
    const p = await inA(['send', '--data', dirA, 'bob', probe], 600_000);
    expect(p.code, p.stderr).toBe(0);
    perByte = ((await relayed()) - r0) / (64 * MiB);
    console.log(`[xfer relay] relayed per payload byte ${perByte.toFixed(4)}`);
    expect(perByte).toBeGreaterThan(1);

    const seed = Number(process.env.SEED ?? Date.now() % 1_000_000);
    console.log(`seed ${seed}`);
    const tree = await buildTree(root, 'tree ✓', { bigBytes: Number(process.env.XFER_TREE_BIG_MIB ?? 300) * MiB, smallFiles: 1000, seed });
    const r = await inA(['send', '--data', dirA, 'bob', tree], 1_100_000);
    expect(r.code, r.stderr).toBe(0);
    const want = await describeTree(tree);
    const files = [...want.values()].filter((x) => x.kind === 'file');
    expect(r.stdout.trim().split('\n').at(-1)).toBe(`sent ${files.length} files, ${files.reduce((n, x) => n + x.size, 0)} bytes, verified by bob`);
    expect(await describeTree(join(dl, 'tree ✓'))).toEqual(want);
    const dropped = /counter packets (\d+) bytes \d+ drop comment "udp"/.exec(await lab.nftList('switch'));
    expect(Number(dropped?.[1] ?? 0)).toBeGreaterThan(0);
    } finally {
      a.child.kill('SIGTERM');
      b.child.kill('SIGTERM');
      await Promise.all([a.exited, b.exited]);
    }
  });

  it('kill -9 of the receiver, then of the sender, at ~50 % of 256 MiB: resumed, identical, at most 64 MiB sent twice (relay metric)', { timeout: 1_500_000 }, async () => {
    expect(perByte).toBeGreaterThan(1);
    const a = upA();
    let b = upB();
    await a.out.waitText(/^online /, 60_000, 'alice online');
    await b.out.waitText(/"event":"online"/, 60_000, 'bob online');
    const big = join(root, 'big.bin');
    await writeBigFile(big, 256 * MiB);
    // Receiver killed.
    let r0 = await relayed();
    const sending = inA(['send', '--data', dirA, 'bob', big], 1_000_000);
    await b.out.wait(transferAt('transferring', (o) => (o.bytesDone ?? 0) >= (o.bytesTotal ?? 1) / 2), 600_000, 'bob at 50 %');
    b.child.kill('SIGKILL');
    await b.exited;
    b = upB();
    const r = await sending;
    expect(r.code, r.stderr).toBe(0);
    expect(await sha256File(join(dl, 'big.bin'))).toBe(await sha256File(big));
    let twice = ((await relayed()) - r0) / perByte - 256 * MiB;
    console.log(`[xfer relay] receiver kill -9: sent twice ≈ ${(twice / MiB).toFixed(1)} MiB`);
    expect(twice).toBeLessThanOrEqual(64 * MiB);

    // Sender killed: sdnet send in-process (no up on alice), killed, run again.
    a.child.kill('SIGTERM');
    await a.exited;
    const big2 = join(root, 'big2.bin');
    await writeBigFile(big2, 256 * MiB);
    r0 = await relayed();
    const first = startSdnet(['send', '--data', dirA, '--relay', url, 'bob', big2], { spawnWith: (argv) => lab.spawn('a', argv, { env: cleanEnv() }) });
    await b.out.wait(transferAt('transferring', (o) => o.bytesTotal === 256 * MiB && (o.bytesDone ?? 0) >= 128 * MiB), 600_000, 'bob at 50 % of the second file');
    first.child.kill('SIGKILL');
    await first.exited;
    const again = await inA(['send', '--data', dirA, '--relay', url, 'bob', big2], 1_000_000);
    expect(again.code, again.stderr).toBe(0);
    expect(await sha256File(join(dl, 'big2.bin'))).toBe(await sha256File(big2));
    twice = ((await relayed()) - r0) / perByte - 256 * MiB;
    console.log(`[xfer relay] sender kill -9: sent twice ≈ ${(twice / MiB).toFixed(1)} MiB`);
    expect(twice).toBeLessThanOrEqual(64 * MiB);
  });
});
