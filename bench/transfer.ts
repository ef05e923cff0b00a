/**
 * File-transfer benchmark (issue 14): a file (1 GiB by default) between two device
 * processes on loopback through `sdnet/xfer/1` (hashing, per-chunk AEAD, verification,
 * pwrite, the no-clobber rename), next to a bare QUIC stream of the same size between two
 * processes in the same run (`children/quic-ts.ts bulk`). Also: the resume overhead after a
 * `kill -9` of the receiver at ~50 % (what the receiver had verified at the kill minus what it
 * resumed from, from its own events: the relay-metric measurement is test/netns/transfer.test.ts),
 * and the peak RSS of each side (goal ≤ 200 MiB whatever the file size). Goals: goodput ≥
 * 0.85 × the bare stream; ≤ 64 MiB re-sent. Reported, never asserted. JSON lines on stdout.
 *
 * Environment: SDNET_BENCH_XFER_MIB [1024], SDNET_BENCH_QUICK=1 (64 MiB).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createSocket } from 'node:dgram';
import { mkdtemp, open, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { EndpointAddr } from '../src/identity/index.ts';
import { DeviceRegistry, NetworkIdentity } from '../src/service/index.ts';

const BENCH = 'transfer';
const PEER = fileURLToPath(new URL('children/transfer-peer.ts', import.meta.url));
const QUIC = fileURLToPath(new URL('children/quic-ts.ts', import.meta.url));
const MiB = 1024 * 1024;
const quick = process.env.SDNET_BENCH_QUICK === '1';
const sizeMiB = Number(process.env.SDNET_BENCH_XFER_MIB ?? (quick ? 64 : 1024));
const bytes = sizeMiB * MiB;

type Line = Record<string, unknown>;
const print = (name: string, fields: Line): void => console.log(JSON.stringify({ bench: BENCH, name, ...fields }));
const live = new Set<ChildProcess>();
process.on('exit', () => {
  for (const c of live) c.kill('SIGKILL');
});

interface Child {
  proc: ChildProcess;
  lines: Line[];
  wait(match: (l: Line) => boolean, what: string, ms?: number): Promise<Line>;
}

function child(script: string, args: string[]): Child {
  const proc = spawn(process.execPath, [script, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  live.add(proc);
  proc.on('exit', () => live.delete(proc));
  let stderr = '';
  proc.stderr!.on('data', (d: Buffer) => (stderr = (stderr + d.toString()).slice(-2000)));
  const lines: Line[] = [];
  const waiters = new Set<() => void>();
  createInterface({ input: proc.stdout! }).on('line', (t) => {
    try {
      lines.push(JSON.parse(t) as Line);
    } catch {
      return;
    }
    for (const w of [...waiters]) w();
  });
  let exited = false;
  proc.on('exit', () => {
    exited = true;
    for (const w of [...waiters]) w();
  });
  const wait = (match: (l: Line) => boolean, what: string, ms = 60 * 60_000): Promise<Line> =>
    new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`timed out waiting for ${what}`)), ms);
      const check = (): void => {
        const hit = lines.find(match);
        const err = lines.find((l) => 'error' in l);
        if (hit || err || exited) {
          waiters.delete(check);
          clearTimeout(timer);
          if (hit) resolve(hit);
          else reject(new Error(`${what}: ${err ? String(err.error) : `exited; ${stderr}`}`));
        }
      };
      waiters.add(check);
      check();
    });
  return { proc, lines, wait };
}

async function freePort(): Promise<number> {
  const s = createSocket('udp4');
  await new Promise<void>((r) => s.bind(0, '127.0.0.1', r));
  const p = s.address().port;
  await new Promise<void>((r) => s.close(() => r()));
  return p;
}

async function writeFile(path: string, size: number): Promise<void> {
  const fh = await open(path, 'w');
  const block = new Uint8Array(MiB);
  crypto.getRandomValues(block.subarray(0, 65536));
  for (let i = 1; i < 16; i++) block.copyWithin(i * 65536, 0, 65536);
  for (let off = 0, i = 0; off < size; off += MiB, i++) {
    new DataView(block.buffer).setUint32(0, i);
    await fh.write(block, 0, Math.min(MiB, size - off), off);
  }
  await fh.close();
}

async function pairDirs(dirA: string, dirB: string, portA: number, portB: number): Promise<void> {
  const { identity: a } = await NetworkIdentity.init(dirA, { name: 'sender' });
  const { identity: b } = await NetworkIdentity.init(dirB, { name: 'recv' });
  const key = crypto.getRandomValues(new Uint8Array(32));
  for (const [dir, peer, port] of [
    [dirA, b, portB],
    [dirB, a, portA],
  ] as const) {
    const reg = await DeviceRegistry.open(dir);
    reg.pair({ id: peer.endpointId, info: peer.info, linkKey: key, addr: EndpointAddr.from({ id: peer.endpointId, relayUrls: [], directAddresses: [`127.0.0.1:${port}`] }) });
    await reg.close();
  }
}

async function transferRun(root: string, tag: string, file: string, killAtHalf: boolean): Promise<Line> {
  const [portA, portB] = [await freePort(), await freePort()];
  const dirA = join(root, `${tag}-a`);
  const dirB = join(root, `${tag}-b`);
  const dl = join(root, `${tag}-dl`);
  await pairDirs(dirA, dirB, portA, portB);
  let rx = child(PEER, ['recv', dirB, String(portB), dl]);
  await rx.wait((l) => l.ready === true, 'the receiver ready');
  const tx = child(PEER, ['send', dirA, String(portA), file, 'recv']);
  let killedAt: number | undefined;
  let resumedFrom: number | undefined;
  let rxRss: number[] = [];
  if (killAtHalf) {
    const half = await rx.wait((l) => l.stage === 'transferring' && Number(l.bytes) >= bytes / 2, 'the receiver at 50 %');
    const lastBefore = [...rx.lines].reverse().find((l) => typeof l.bytes === 'number');
    killedAt = Math.max(Number(half.bytes), Number(lastBefore?.bytes ?? 0));
    rx.proc.kill('SIGKILL');
    await new Promise((r) => rx.proc.once('exit', r));
    rx = child(PEER, ['recv', dirB, String(portB), dl]);
    const acc = await rx.wait((l) => l.stage === 'accepted', 'the resumed offer');
    resumedFrom = Number(acc.bytes);
  }
  const done = await tx.wait((l) => l.result === true, 'the sender done');
  rx.proc.kill('SIGTERM');
  const rxDone = await rx.wait((l) => l.result === true, 'the receiver done');
  rxRss = [Number(rxDone.maxRssMiB)];
  return { ms: done.ms, senderMaxRssMiB: done.maxRssMiB, receiverMaxRssMiB: rxRss[0], ...(killAtHalf ? { killedAt, resumedFrom, resentMiB: Number((((killedAt ?? 0) - (resumedFrom ?? 0)) / MiB).toFixed(1)) } : {}) };
}

async function bareRun(): Promise<number> {
  const rx = child(QUIC, ['bulk-recv']);
  const ready = await rx.wait((l) => l.ready === true, 'the bare receiver');
  const tx = child(QUIC, ['bulk-send', String(ready.ticket), String(bytes), String(65536)]);
  const r = await tx.wait((l) => l.result === true, 'the bare sender');
  await rx.wait((l) => l.result === true, 'the bare receiver result').catch(() => undefined);
  return Number(r.seconds) * 1000;
}

async function main(): Promise<void> {
  const root = await mkdtemp(join(tmpdir(), 'sdnet-bench-transfer-'));
  try {
    const file = join(root, 'payload.bin');
    await writeFile(file, bytes);
    const bareMs = await bareRun();
    const clean = await transferRun(root, 'clean', file, false);
    const bareMs2 = await bareRun();
    const bareMedian = (bareMs + bareMs2) / 2;
    const mbps = (ms: number): number => Number((bytes / (ms / 1000) / 1e6).toFixed(1));
    print('bare-quic-stream', { bytes, ms: [Math.round(bareMs), Math.round(bareMs2)], MBps: mbps(bareMedian) });
    print('transfer', { bytes, ms: clean.ms, MBps: mbps(Number(clean.ms)), senderMaxRssMiB: clean.senderMaxRssMiB, receiverMaxRssMiB: clean.receiverMaxRssMiB });
    const resumed = await transferRun(root, 'resume', file, true);
    print('resume-after-kill', { bytes, ms: resumed.ms, killedAt: resumed.killedAt, resumedFrom: resumed.resumedFrom, resentMiB: resumed.resentMiB, senderMaxRssMiB: resumed.senderMaxRssMiB, receiverMaxRssMiB: resumed.receiverMaxRssMiB });
    print('summary', {
      goodputVsBare: Number((bareMedian / Number(clean.ms)).toFixed(3)),
      goalGoodput: 0.85,
      resentMiB: resumed.resentMiB,
      goalResentMiB: 64,
      peakRssMiB: Math.max(Number(clean.senderMaxRssMiB), Number(clean.receiverMaxRssMiB), Number(resumed.senderMaxRssMiB), Number(resumed.receiverMaxRssMiB)),
      goalPeakRssMiB: 200,
      sizeMiB,
    });
  } finally {
    await rm(root, { recursive: true, force: true });
  }
}

main().catch((err: unknown) => {
  print('error', { error: String((err as Error)?.stack ?? err) });
  process.exit(1);
});
