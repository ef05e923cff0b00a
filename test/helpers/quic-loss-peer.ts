/**
 * One side of the QUIC-under-real-loss scenario (`test/netns/quic-loss.test.ts`): either our
 * TypeScript `Endpoint` or a real iroh 1.0 endpoint (`@number0/iroh`, relays and discovery
 * off), as server or client, talking over direct UDP only. Runs as a child process inside a
 * network namespace.
 *
 * ```sh
 * node quic-loss-peer.ts ts|iroh serve|dial '<json config>'
 * ```
 *
 * Config: `{ bind, seed, bytes, keySeed, peer?: { id, addr } }` (`peer` for `dial`).
 *
 * The exchange, on one bidirectional stream the client opens:
 * - the client sends `bytes` bytes of stream `c2s` (see {@link payload}) and finishes;
 * - the server, at the same time, sends `bytes` bytes of stream `s2c`; once it has read the
 *   client's bytes to the end it appends the 32-byte SHA-256 of what it received and finishes;
 * - the client reads everything to the end, so when it closes the connection (code 0) both
 *   directions are complete and the server's trailer tells the client the server's hash.
 *
 * stdout, one JSON object per line:
 * - `{"event":"ready","impl","id","bound"}` once bound;
 * - `{"event":"connected","remoteId","remoteAddr"}` after the handshake;
 * - server: `{"event":"received","bytes","sha256","stats"}` once the client's bytes are in;
 *   `{"event":"stats","stats"}` each time a line `stats` arrives on stdin (the connection's
 *   counters, also after it closed);
 * - client: `{"event":"result","received":{"bytes","sha256"},"peerReceivedSha256","stats"}`;
 * - `{"event":"error","message"}` on failure (exit status 1).
 *
 * Every byte of payload and both secret keys derive from the seeds the test passes (and
 * prints); the QUIC/TLS stacks' own randomness (connection ids, TLS randoms) does not.
 */
import { createInterface } from 'node:readline';
import { PAYLOAD_CHUNK, PayloadReceiver, seededKeyBytes, seededPayload, seededPayloadSha256 } from './seeded-payload.ts';
import { fileURLToPath } from 'node:url';
import iroh from '@number0/iroh';
import { Endpoint, EndpointAddr, SecretKey, type Connection } from '../../src/index.ts';

export const ALPN = 'sdnet/quic-loss/0';
const CHUNK = PAYLOAD_CHUNK;

export interface PeerConfig {
  /** `ip:port` to bind. */
  bind: string;
  /** Payload seed (any string). */
  seed: string;
  /** Bytes each way. */
  bytes: number;
  /** Seed of this side's secret key. */
  keySeed: string;
  /** Whom to dial (client only): EndpointId and direct `ip:port`. */
  peer?: { id: string; addr: string };
}

/** 32 secret-key bytes derived from a seed string. */
export const keyBytes = (keySeed: string): Uint8Array => seededKeyBytes('quic-loss', keySeed);

/** The payload of one direction (see {@link seededPayload}). */
export const payload = (seed: string, label: string, bytes: number): Generator<Uint8Array> => seededPayload('quic-loss', seed, label, bytes);

/** SHA-256 (hex) of {@link payload}. */
export const payloadSha256 = (seed: string, label: string, bytes: number): string => seededPayloadSha256('quic-loss', seed, label, bytes);

const print = (o: Record<string, unknown>): void => {
  process.stdout.write(`${JSON.stringify(o)}\n`);
};

/** On each `stats` line on stdin, print the current counters. */
function answerStats(stats: () => unknown): void {
  createInterface({ input: process.stdin }).on('line', (line) => {
    if (line.trim() === 'stats') print({ event: 'stats', stats: stats() });
  });
}

// ---- our TypeScript stack ----------------------------------------------------------------

async function tsReadAll(readable: ReadableStream<Uint8Array>, rx: PayloadReceiver): Promise<void> {
  for await (const c of readable) rx.push(c);
}

async function tsSend(writable: WritableStream<Uint8Array>, seed: string, label: string, bytes: number, trailer?: Promise<Uint8Array>): Promise<void> {
  const w = writable.getWriter();
  for (const c of payload(seed, label, bytes)) await w.write(c);
  if (trailer) await w.write(await trailer);
  // Resolves once the peer acknowledged everything.
  await w.close();
}

const tsStats = (conn: Connection): Record<string, unknown> => ({ ...conn.stats(), path: conn.path.key });

async function runTs(role: 'serve' | 'dial', cfg: PeerConfig): Promise<void> {
  const ep = await Endpoint.bind({ secretKey: SecretKey.fromBytes(keyBytes(cfg.keySeed)), alpns: role === 'serve' ? [ALPN] : [], bindAddr: cfg.bind });
  print({ event: 'ready', impl: 'ts', id: ep.id.toString(), bound: ep.boundSockets.map(String) });
  if (role === 'serve') {
    let conn: Connection | undefined;
    answerStats(() => (conn ? tsStats(conn) : null));
    for await (const inc of ep.accept()) {
      conn = await inc.accept();
      break;
    }
    if (!conn) throw new Error('endpoint closed before a connection came');
    print({ event: 'connected', remoteId: conn.remoteId.toString(), remoteAddr: conn.path.key });
    const bi = await conn.acceptBi();
    const rx = new PayloadReceiver(cfg.bytes);
    let digest!: (d: Uint8Array) => void;
    const trailer = new Promise<Uint8Array>((r) => (digest = r));
    const sending = tsSend(bi.writable, cfg.seed, 's2c', cfg.bytes, trailer);
    await tsReadAll(bi.readable, rx);
    const got = rx.result();
    print({ event: 'received', bytes: got.bytes, sha256: got.sha256, extra: got.trailer.length / 2, stats: tsStats(conn) });
    digest(Buffer.from(got.sha256, 'hex'));
    // The client closes the connection as soon as it has read our trailer, possibly before
    // our last ACK-eliciting packets were acknowledged: a failed close is not a failure here.
    await sending.catch(() => undefined);
    await new Promise<never>(() => undefined); // until the test kills us
  }
  const peer = cfg.peer!;
  const conn = await ep.connect(EndpointAddr.from({ id: peer.id, directAddresses: [peer.addr] }), ALPN);
  print({ event: 'connected', remoteId: conn.remoteId.toString(), remoteAddr: conn.path.key });
  const bi = await conn.openBi();
  const rx = new PayloadReceiver(cfg.bytes);
  const sending = tsSend(bi.writable, cfg.seed, 'c2s', cfg.bytes);
  await tsReadAll(bi.readable, rx);
  await sending;
  const got = rx.result();
  print({ event: 'result', received: { bytes: got.bytes, sha256: got.sha256 }, peerReceivedSha256: got.trailer, stats: tsStats(conn) });
  conn.close(0, 'done');
  await ep.close({ graceMs: 500 });
}

// ---- the real iroh -----------------------------------------------------------------------

const alpnBytes = Array.from(new TextEncoder().encode(ALPN));

async function irohReadAll(recv: iroh.RecvStream, rx: PayloadReceiver): Promise<void> {
  for (;;) {
    // Waits for data; an empty array once the stream has finished.
    const chunk = await recv.read(CHUNK);
    if (chunk.length === 0) return;
    rx.push(Uint8Array.from(chunk));
  }
}

async function irohSend(send: iroh.SendStream, seed: string, label: string, bytes: number, trailer?: Promise<Uint8Array>): Promise<void> {
  for (const c of payload(seed, label, bytes)) await send.writeAll(Array.from(c));
  if (trailer) await send.writeAll(Array.from(await trailer));
  await send.finish();
}

function irohStats(conn: iroh.Connection): Record<string, unknown> {
  return {
    ...conn.stats(),
    paths: conn.paths().map((p) => ({ remoteAddr: p.remoteAddr, isIp: p.isIp, isRelay: p.isRelay, isSelected: p.isSelected, ...p.stats })),
  };
}

async function runIroh(role: 'serve' | 'dial', cfg: PeerConfig): Promise<void> {
  const b = iroh.Endpoint.builder();
  // No relays, no discovery: only the direct UDP path exists.
  iroh.presetMinimal(b);
  b.secretKey(Array.from(keyBytes(cfg.keySeed)));
  if (role === 'serve') b.alpns([alpnBytes]);
  b.bindAddr(cfg.bind);
  const ep = await b.bind();
  print({ event: 'ready', impl: 'iroh', id: ep.id().toString(), bound: ep.boundSockets() });
  if (role === 'serve') {
    const current: { conn?: iroh.Connection } = {};
    answerStats(() => (current.conn ? irohStats(current.conn) : null));
    const incoming = await ep.acceptNext();
    if (incoming === null) throw new Error('endpoint closed before a connection came');
    const conn = await (await incoming.accept()).connect();
    current.conn = conn;
    print({ event: 'connected', remoteId: conn.remoteId().toString(), remoteAddr: conn.paths().find((p) => p.isSelected)?.remoteAddr });
    const bi = await conn.acceptBi();
    const rx = new PayloadReceiver(cfg.bytes);
    let digest!: (d: Uint8Array) => void;
    const trailer = new Promise<Uint8Array>((r) => (digest = r));
    const sending = irohSend(bi.send, cfg.seed, 's2c', cfg.bytes, trailer);
    await irohReadAll(bi.recv, rx);
    const got = rx.result();
    print({ event: 'received', bytes: got.bytes, sha256: got.sha256, extra: got.trailer.length / 2, stats: irohStats(conn) });
    digest(Buffer.from(got.sha256, 'hex'));
    await sending.catch(() => undefined);
    await new Promise<never>(() => undefined); // until the test kills us
  }
  const peer = cfg.peer!;
  const conn = await ep.connect(new iroh.EndpointAddr(iroh.EndpointId.fromString(peer.id), null, [peer.addr]), alpnBytes);
  print({ event: 'connected', remoteId: conn.remoteId().toString(), remoteAddr: conn.paths().find((p) => p.isSelected)?.remoteAddr });
  const bi = await conn.openBi();
  const rx = new PayloadReceiver(cfg.bytes);
  const sending = irohSend(bi.send, cfg.seed, 'c2s', cfg.bytes);
  await irohReadAll(bi.recv, rx);
  await sending;
  const got = rx.result();
  print({ event: 'result', received: { bytes: got.bytes, sha256: got.sha256 }, peerReceivedSha256: got.trailer, stats: irohStats(conn) });
  conn.close(0n, Array.from(new TextEncoder().encode('done')));
  await ep.close();
}

async function main(argv: string[]): Promise<void> {
  const [impl, role, json] = argv;
  if ((impl !== 'ts' && impl !== 'iroh') || (role !== 'serve' && role !== 'dial') || json === undefined) {
    throw new Error("usage: quic-loss-peer.ts ts|iroh serve|dial '<json config>'");
  }
  const cfg = JSON.parse(json) as PeerConfig;
  if (role === 'dial' && cfg.peer === undefined) throw new Error('dial needs config.peer');
  await (impl === 'ts' ? runTs(role, cfg) : runIroh(role, cfg));
  process.exit(0);
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  main(process.argv.slice(2)).catch((err: unknown) => {
    print({ event: 'error', message: err instanceof Error ? `${err.name}: ${err.message}` : String(err), code: (err as { code?: unknown }).code });
    process.exit(1);
  });
}
