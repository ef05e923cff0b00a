/**
 * Child of `bench/quic.ts`: native quinn through `@chainsafe/libp2p-quic`'s napi layer,
 * used without libp2p (perf-anchors.md §3.4). Client and server in this process; bytes
 * cross napi as `Uint8Array`, and quinn uses GSO, so this is "native QUIC in Node on this
 * box", for context.
 *
 * Usage:
 *   node quic-quinn.ts connect <n> <warmup>
 *   node quic-quinn.ts bulk <chunkBytes> <totalBytes>
 */
import { generateKeyPairSync } from 'node:crypto';
import { cpuPercent, finish, latencySummary, round, runMain } from './common.ts';

/** The parts of the generated napi binding (typed `any` upstream) used here. */
interface QuinnStream {
  write(data: Uint8Array): Promise<void>;
  read(max: number): Promise<Uint8Array | null | undefined>;
  finishWrite(): Promise<void>;
}
interface QuinnConnection {
  outboundStream(): Promise<QuinnStream>;
  inboundStream(): Promise<QuinnStream>;
  abort(): void;
}
interface QuinnServer {
  port(): number;
  inboundConnection(): Promise<QuinnConnection>;
  abort?(): void;
}
interface QuinnClient {
  outboundConnection(ip: string, port: number): Promise<QuinnConnection>;
  abort?(): void;
}
interface QuinnNapi {
  QuinnConfig: new (options: Record<string, unknown>) => unknown;
  Server: new (config: unknown, ip: string, port: number) => QuinnServer;
  Client: new (config: unknown, port: number) => QuinnClient;
}

// The package exports only its libp2p transport; the napi module sits next to it.
const indexUrl = import.meta.resolve('@chainsafe/libp2p-quic');
const napi = (await import(new URL('napi.js', indexUrl).href)) as QuinnNapi;
const { defaultOptions } = (await import(indexUrl)) as { defaultOptions: Record<string, unknown> };

/** libp2p's PrivateKey protobuf for Ed25519: type 1, then 64 bytes seed ‖ public key. */
function ed25519KeyProto(): Uint8Array {
  const { privateKey, publicKey } = generateKeyPairSync('ed25519');
  const seed = privateKey.export({ format: 'der', type: 'pkcs8' }).subarray(-32);
  const pub = publicKey.export({ format: 'der', type: 'spki' }).subarray(-32);
  return new Uint8Array(Buffer.concat([Buffer.from([0x08, 0x01, 0x12, 0x40]), seed, pub]));
}

const config = (): unknown => new napi.QuinnConfig({ ...defaultOptions, privateKeyProto: ed25519KeyProto() });

async function connect(n: number, warmup: number): Promise<void> {
  const server = new napi.Server(config(), '127.0.0.1', 0);
  const client = new napi.Client(config(), 0);
  const port = server.port();
  void (async () => {
    for (;;) {
      let conn: QuinnConnection;
      try {
        conn = await server.inboundConnection();
      } catch {
        return;
      }
      void (async () => {
        try {
          const s = await conn.inboundStream();
          const d = await s.read(1);
          if (d) await s.write(d);
          await s.finishWrite();
        } catch {
          // The client aborts the connection when it has its answer.
        }
      })();
    }
  })();
  const connectMs: number[] = [];
  const echoMs: number[] = [];
  for (let i = 0; i < warmup + n; i++) {
    const t0 = performance.now();
    const conn = await client.outboundConnection('127.0.0.1', port);
    const t1 = performance.now();
    const s = await conn.outboundStream();
    await s.write(new Uint8Array([7]));
    await s.read(1);
    const t2 = performance.now();
    conn.abort();
    if (i >= warmup) {
      connectMs.push(t1 - t0);
      echoMs.push(t2 - t1);
    }
  }
  server.abort?.();
  client.abort?.();
  finish(latencySummary(connectMs, echoMs));
}

async function bulk(chunk: number, total: number): Promise<void> {
  const server = new napi.Server(config(), '127.0.0.1', 0);
  const client = new napi.Client(config(), 0);
  const received = (async () => {
    const conn = await server.inboundConnection();
    const s = await conn.inboundStream();
    let bytes = 0;
    for (;;) {
      const d = await s.read(65536);
      if (d == null || d.length === 0) break;
      bytes += d.length;
    }
    return bytes;
  })();
  const conn = await client.outboundConnection('127.0.0.1', server.port());
  const data = new Uint8Array(chunk).fill(0x61);
  const chunks = Math.ceil(total / chunk);
  const cpu = process.cpuUsage();
  const t0 = performance.now();
  const s = await conn.outboundStream();
  for (let i = 0; i < chunks; i++) await s.write(data);
  await s.finishWrite();
  const bytes = await received;
  const seconds = (performance.now() - t0) / 1000;
  if (bytes !== chunks * chunk) throw new Error(`received ${bytes} bytes, sent ${chunks * chunk}`);
  const processCpuPct = cpuPercent(cpu, seconds);
  conn.abort();
  server.abort?.();
  client.abort?.();
  finish({ chunk, bytes, seconds: round(seconds, 2), MBps: round(bytes / seconds / 1e6, 1), processCpuPct });
}

runMain(async () => {
  const [mode, a, b] = process.argv.slice(2);
  if (mode === 'connect') await connect(Number(a ?? 20), Number(b ?? 2));
  else if (mode === 'bulk') await bulk(Number(a ?? 1 << 20), Number(b ?? 256 << 20));
  else throw new Error(`unknown mode ${mode}`);
});
