/**
 * Child of `bench/quic.ts`: sdnet's own QUIC through the Endpoint API (`src/endpoint`).
 *
 * The module is loaded by a computed path, so this file typechecks (and reports `skipped`)
 * while `src/endpoint/index.ts` does not exist yet; the interfaces below are the planned
 * API, as much of it as the benchmark uses.
 *
 * Usage:
 *   node quic-ts.ts bulk-recv                 binds a server, prints {"ready":true,"ticket":…},
 *                                             reads one bi stream to its end, then answers
 *                                             with the byte count (8 bytes) and prints its result
 *   node quic-ts.ts bulk-send <ticket> <totalBytes> <chunkBytes>
 *                                             connects, writes totalBytes on one bi stream,
 *                                             waits for the receiver's count; timed from the
 *                                             first write to that answer
 *   node quic-ts.ts connect <n> <warmup>      TS client → TS server, both in this process
 *   node quic-ts.ts connect-iroh <n> <warmup> TS client → an iroh server (@number0/iroh) in this process
 *   node quic-ts.ts echo-serve                binds a server, prints {"ready":true,"ticket":…}, and
 *                                             serves the echo until it is killed
 *   node quic-ts.ts connect-ticket <ticket> <n> <warmup>
 *                                             TS client → the server of <ticket>, in another process
 *
 * Every connect is followed by a 1-byte echo on a new bi stream (the first-stream figure).
 */
import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { EndpointAddr, EndpointTicket, PublicKey, SecretKey } from '../../src/identity/index.ts';
import { emit, finish, latencySummary, readAtLeast, receiveCounted, round, runMain, sendCounted, withTimeout } from './common.ts';

const ALPN = 'bench/1';
const CONNECT_TIMEOUT_MS = 10_000;

/** A bi stream of the planned API: WHATWG streams. */
interface BiStream {
  readonly readable: ReadableStream<Uint8Array>;
  readonly writable: WritableStream<Uint8Array>;
}
interface Connection {
  openBi(): Promise<BiStream>;
  acceptBi(): Promise<BiStream>;
  close(code: number, reason: string): void;
  readonly closed?: Promise<unknown>;
  stats?(): unknown;
}
interface Incoming {
  accept(): Promise<Connection>;
}
interface Endpoint {
  addr(): EndpointAddr;
  connect(addr: EndpointAddr, alpn: string, options?: { signal?: AbortSignal }): Promise<Connection>;
  accept(): AsyncIterable<Incoming>;
  close(): Promise<void>;
}
interface EndpointClass {
  bind(options: { secretKey: SecretKey; alpns?: string[]; bindAddr?: string }): Promise<Endpoint>;
}

// SDNET_BENCH_ENDPOINT names another module with the same API (to test this benchmark itself).
const override = process.env.SDNET_BENCH_ENDPOINT;
const endpointModule = override ? pathToFileURL(resolve(override)) : new URL('../../src/endpoint/index.ts', import.meta.url);

async function loadEndpoint(): Promise<EndpointClass> {
  if (!existsSync(endpointModule)) {
    emit({ skipped: override ? `${override} does not exist` : 'src/endpoint not implemented yet' });
    process.exit(0);
  }
  const specifier: string = endpointModule.href;
  const mod = (await import(specifier)) as { Endpoint?: Partial<EndpointClass> };
  if (typeof mod.Endpoint?.bind !== 'function') throw new Error(`${specifier} does not export Endpoint.bind`);
  return mod.Endpoint as EndpointClass;
}

const bindServer = (E: EndpointClass): Promise<Endpoint> => E.bind({ secretKey: SecretKey.generate(), alpns: [ALPN], bindAddr: '127.0.0.1:0' });
const bindClient = (E: EndpointClass): Promise<Endpoint> => E.bind({ secretKey: SecretKey.generate(), bindAddr: '127.0.0.1:0' });

/** The connection's own statistics, if it has any, as plain JSON. */
function statsOf(conn: Connection): unknown {
  try {
    if (typeof conn.stats !== 'function') return undefined;
    return JSON.parse(JSON.stringify(conn.stats(), (_k, v: unknown) => (typeof v === 'bigint' ? Number(v) : v))) as unknown;
  } catch {
    return undefined;
  }
}

/** Connect, with the signal and a deadline of our own (in case the signal is not honoured). */
function connectWithin(client: Endpoint, addr: EndpointAddr): Promise<Connection> {
  return withTimeout(client.connect(addr, ALPN, { signal: AbortSignal.timeout(CONNECT_TIMEOUT_MS) }), CONNECT_TIMEOUT_MS + 1000, 'connect');
}

async function closeEndpoint(endpoint: Endpoint): Promise<void> {
  try {
    await withTimeout(endpoint.close(), 2000, 'endpoint.close()');
  } catch {
    // The process exits right after.
  }
}

async function bulkReceive(E: EndpointClass): Promise<void> {
  const server = await bindServer(E);
  emit({ ready: true, ticket: new EndpointTicket(server.addr()).toString() });
  emit({ progress: 'bound, waiting for a connection' });
  for await (const incoming of server.accept()) {
    const conn = await incoming.accept();
    emit({ progress: 'accepted a connection' });
    const bi = await conn.acceptBi();
    emit({ progress: 'accepted a bi stream' });
    const { bytes, seconds, processCpuPct } = await receiveCounted(bi, (n) => emit({ progress: `read ${n} bytes` }));
    emit({ progress: `stream ended after ${bytes} bytes` });
    // The sender closes the connection once it has the count.
    if (conn.closed) await withTimeout(conn.closed, 5000, 'connection close').catch(() => undefined);
    await closeEndpoint(server);
    finish({ bytes, seconds: round(seconds, 2), MBps: round(bytes / seconds / 1e6, 1), processCpuPct, stats: statsOf(conn) });
  }
  throw new Error('server endpoint stopped accepting before a connection arrived');
}

async function bulkSend(E: EndpointClass, ticket: string, total: number, chunk: number): Promise<void> {
  const client = await bindClient(E);
  emit({ progress: 'bound, connecting' });
  const conn = await connectWithin(client, EndpointTicket.parse(ticket).addr);
  emit({ progress: 'connected' });
  const bi = await conn.openBi();
  const { seconds, processCpuPct } = await sendCounted(bi, total, chunk, (n) => emit({ progress: `wrote ${n} bytes` }));
  const stats = statsOf(conn);
  conn.close(0, 'done');
  await closeEndpoint(client);
  finish({ bytes: total, chunk, seconds: round(seconds, 2), MBps: round(total / seconds / 1e6, 1), processCpuPct, stats });
}

/** Connects from `client` to `addr`, each followed by a 1-byte echo on a new bi stream. */
async function timeConnects(client: Endpoint, addr: EndpointAddr, n: number, warmup: number): Promise<Record<string, number>> {
  const connectMs: number[] = [];
  const echoMs: number[] = [];
  for (let i = 0; i < warmup + n; i++) {
    const t0 = performance.now();
    const conn = await connectWithin(client, addr);
    const t1 = performance.now();
    const { readable, writable } = await conn.openBi();
    const writer = writable.getWriter();
    await writer.write(Uint8Array.of(7));
    const echoed = await withTimeout(readAtLeast(readable.getReader(), 1), CONNECT_TIMEOUT_MS, 'first-stream echo');
    const t2 = performance.now();
    if (echoed.byteLength !== 1 || echoed[0] !== 7) throw new Error('first-stream echo returned the wrong bytes');
    conn.close(0, 'done');
    if (i >= warmup) {
      connectMs.push(t1 - t0);
      echoMs.push(t2 - t1);
    }
  }
  return latencySummary(connectMs, echoMs);
}

/** Answer the first bytes of each connection's first bi stream with the same bytes. */
function serveEcho(server: Endpoint): void {
  void (async () => {
    for await (const incoming of server.accept()) {
      void (async () => {
        const conn = await incoming.accept();
        const bi = await conn.acceptBi();
        const data = await readAtLeast(bi.readable.getReader(), 1);
        const writer = bi.writable.getWriter();
        await writer.write(data);
        await writer.close();
      })().catch(() => undefined);
    }
  })().catch(() => undefined);
}

async function connectTs(E: EndpointClass, n: number, warmup: number): Promise<void> {
  const server = await bindServer(E);
  const client = await bindClient(E);
  serveEcho(server);
  const figures = await timeConnects(client, server.addr(), n, warmup);
  await closeEndpoint(client);
  await closeEndpoint(server);
  finish(figures);
}

/** A server in its own process: what a real peer is (its work runs beside ours, not in turn). */
async function echoServe(E: EndpointClass): Promise<void> {
  const server = await bindServer(E);
  serveEcho(server);
  emit({ ready: true, ticket: new EndpointTicket(server.addr()).toString() });
  // Served until the benchmark kills this process.
  await new Promise<never>(() => undefined);
}

async function connectTicket(E: EndpointClass, ticket: string, n: number, warmup: number): Promise<void> {
  const client = await bindClient(E);
  const figures = await timeConnects(client, EndpointTicket.parse(ticket).addr, n, warmup);
  await closeEndpoint(client);
  finish(figures);
}

async function connectIroh(E: EndpointClass, n: number, warmup: number): Promise<void> {
  const { bindIroh, closeIroh, irohLoopbackAddr, serveIrohEcho } = await import('./iroh-helpers.ts');
  const server = await bindIroh([ALPN]);
  serveIrohEcho(server);
  const addr = EndpointAddr.from({ id: PublicKey.fromBytes(Uint8Array.from(server.id().toBytes())), directAddresses: [irohLoopbackAddr(server)] });
  const client = await bindClient(E);
  const figures = await timeConnects(client, addr, n, warmup);
  await closeEndpoint(client);
  await closeIroh(server);
  finish(figures);
}

runMain(async () => {
  const [mode, a, b, c] = process.argv.slice(2);
  if (!['bulk-recv', 'bulk-send', 'connect', 'connect-iroh', 'echo-serve', 'connect-ticket'].includes(mode ?? '')) throw new Error(`unknown mode ${mode}`);
  const E = await loadEndpoint();
  if (mode === 'bulk-recv') await bulkReceive(E);
  else if (mode === 'bulk-send') await bulkSend(E, a!, Number(b ?? 256 << 20), Number(c ?? 65536));
  else if (mode === 'connect') await connectTs(E, Number(a ?? 20), Number(b ?? 2));
  else if (mode === 'echo-serve') await echoServe(E);
  else if (mode === 'connect-ticket') await connectTicket(E, a!, Number(b ?? 20), Number(c ?? 2));
  else await connectIroh(E, Number(a ?? 20), Number(b ?? 2));
});
