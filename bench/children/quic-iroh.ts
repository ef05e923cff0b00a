/**
 * Child of `bench/quic.ts`: iroh ↔ iroh through `@number0/iroh`, two endpoints in this
 * process (perf-anchors.md §3.3).
 *
 * Usage:
 *   node quic-iroh.ts connect <n> <warmup>   n connects between two already-bound endpoints,
 *                                            each followed by a 1-byte echo on a new bi stream
 *   node quic-iroh.ts bulk <chunkBytes> <totalBytes>
 *                                            one bi stream; chunks are prebuilt Array<number>
 *                                            so building them is not timed
 */
import { cpuPercent, finish, latencySummary, round, runMain, utf8 } from './common.ts';
import { bindIroh, closeIroh, irohAddr, serveIrohEcho, toArray } from './iroh-helpers.ts';

const ALPN = 'bench/1';
const alpn = toArray(utf8(ALPN));

async function connect(n: number, warmup: number): Promise<void> {
  const client = await bindIroh([]);
  const server = await bindIroh([ALPN]);
  serveIrohEcho(server);
  const addr = irohAddr(server);
  const connectMs: number[] = [];
  const echoMs: number[] = [];
  for (let i = 0; i < warmup + n; i++) {
    const t0 = performance.now();
    const conn = await client.connect(addr, alpn);
    const t1 = performance.now();
    const bi = await conn.openBi();
    await bi.send.writeAll([7]);
    await bi.recv.readExact(1);
    const t2 = performance.now();
    conn.close(0n, toArray(utf8('done')));
    if (i >= warmup) {
      connectMs.push(t1 - t0);
      echoMs.push(t2 - t1);
    }
  }
  await closeIroh(client);
  await closeIroh(server);
  finish(latencySummary(connectMs, echoMs));
}

async function bulk(chunk: number, total: number): Promise<void> {
  const client = await bindIroh([]);
  const server = await bindIroh([ALPN]);
  const received = (async () => {
    const incoming = await server.acceptNext();
    if (incoming === null) throw new Error('server endpoint closed');
    const conn = await (await incoming.accept()).connect();
    const bi = await conn.acceptBi();
    let bytes = 0;
    for (;;) {
      const data = await bi.recv.read(1 << 20);
      if (!data || data.length === 0) break;
      bytes += data.length;
    }
    return bytes;
  })();
  const conn = await client.connect(irohAddr(server), alpn);
  const data = toArray(new Uint8Array(chunk).fill(0x61));
  const chunks = Math.ceil(total / chunk);
  const cpu = process.cpuUsage();
  const t0 = performance.now();
  const bi = await conn.openBi();
  for (let i = 0; i < chunks; i++) await bi.send.writeAll(data);
  await bi.send.finish();
  const bytes = await received;
  const seconds = (performance.now() - t0) / 1000;
  if (bytes !== chunks * chunk) throw new Error(`received ${bytes} bytes, sent ${chunks * chunk}`);
  const processCpuPct = cpuPercent(cpu, seconds);
  conn.close(0n, toArray(utf8('done')));
  await closeIroh(client);
  await closeIroh(server);
  finish({ chunk, bytes, seconds: round(seconds, 2), MBps: round(bytes / seconds / 1e6, 2), processCpuPct });
}

runMain(async () => {
  const [mode, a, b] = process.argv.slice(2);
  if (mode === 'connect') await connect(Number(a ?? 20), Number(b ?? 2));
  else if (mode === 'bulk') await bulk(Number(a ?? 65536), Number(b ?? 12 << 20));
  else throw new Error(`unknown mode ${mode}`);
});
