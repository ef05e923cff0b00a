/**
 * Every limit of `src/relay/protocol/limits.ts` that the other relay tests reach only with a
 * configured value, hit here at its default (reliability.md §7: "every limit in limits.ts has
 * a test that hits it"): the key cache capacity, the deny-reason and Health-text caps, the
 * relay's 512-frame per-client queue, and the client's socket-buffer and receive-queue bounds.
 */
import { createHash } from 'node:crypto';
import { createServer, type Socket } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { SecretKey } from '../../src/identity/index.ts';
import { defaultCryptoProvider } from '../../src/transport/crypto/index.ts';
import {
  CLIENT_MAX_BUFFERED_BYTES,
  CLIENT_RECV_QUEUE_DEPTH,
  decodeRelayToClientFrame,
  encodeHealth,
  encodeServerConfirmsAuth,
  encodeServerDeniesAuth,
  FrameType,
  KeyCache,
  MAX_DENY_REASON_BYTES,
  MAX_HEALTH_TEXT_BYTES,
  PER_CLIENT_SEND_QUEUE_DEPTH,
  RelayClientConnection,
} from '../../src/relay/protocol/index.ts';
import { failOnEscapes, RawRelayClient, scrape, startTestRelay, testClient, until } from '../helpers/relay-test-utils.ts';

failOnEscapes();

const cleanups: Array<() => Promise<unknown> | unknown> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

describe('protocol limits at their defaults', () => {
  it('KeyCache keeps at most its capacity, evicting the least recently used key', () => {
    const cache = new KeyCache(3);
    const keys = Array.from({ length: 4 }, () => SecretKey.generate().public());
    for (const k of keys.slice(0, 3)) cache.get(k.bytes);
    cache.get(keys[0]!.bytes); // now most recent: keys[1] is the oldest
    cache.get(keys[3]!.bytes);
    expect(cache.size).toBe(3);
    // The evicted key is validated again (a new object), the kept ones are the cached objects.
    const again0 = cache.get(keys[0]!.bytes);
    expect(cache.get(keys[0]!.bytes)).toBe(again0);
  });

  it(`ServerDeniesAuth reasons are cut to MAX_DENY_REASON_BYTES (${MAX_DENY_REASON_BYTES}) on a character boundary`, () => {
    const frame = encodeServerDeniesAuth('é'.repeat(MAX_DENY_REASON_BYTES));
    const decoded = decodeRelayToClientFrame(frame, 2, new KeyCache());
    if (decoded.type !== FrameType.ServerDeniesAuth) throw new Error('wrong type');
    expect(new TextEncoder().encode(decoded.reason).length).toBeLessThanOrEqual(MAX_DENY_REASON_BYTES);
    expect(decoded.reason).toBe('é'.repeat(MAX_DENY_REASON_BYTES / 2));
  });

  it(`a relay’s Health text is clipped to MAX_HEALTH_TEXT_BYTES (${MAX_HEALTH_TEXT_BYTES}) before it reaches events`, () => {
    const c = new RelayClientConnection({ secretKey: SecretKey.generate(), version: 1, crypto: defaultCryptoProvider, keys: new KeyCache(), now: 0 });
    c.handleFrame(0, encodeServerConfirmsAuth());
    c.handleFrame(0, encodeHealth('x'.repeat(60_000)));
    const events = [];
    for (let e = c.pollEvent(); e !== undefined; e = c.pollEvent()) events.push(e);
    const health = events.find((e) => e.type === 'health');
    expect(health?.type === 'health' && health.problem.length).toBe(MAX_HEALTH_TEXT_BYTES + 1);
  });
});

describe('queue bounds at their defaults', () => {
  it(`the relay queues at most PER_CLIENT_SEND_QUEUE_DEPTH (${PER_CLIENT_SEND_QUEUE_DEPTH}) frames towards a client that does not read, and drops the rest`, async () => {
    // A long write timeout so the stalled client is not dropped while we look.
    const relay = await startTestRelay({ limits: { writeTimeoutMs: 60_000 } });
    cleanups.push(() => relay.close({ graceful: false }));
    const sink = new RawRelayClient(relay.url);
    cleanups.push(() => sink.close());
    await sink.authenticate();
    (sink.ws as unknown as { _socket: Socket })._socket.pause();
    const sender = testClient(relay.url, { maxBufferedBytes: 256 * 1024 * 1024 });
    cleanups.push(() => sender.close());
    await sender.connect();
    // ~24 MiB in single-datagram frames: more than the kernel buffers hold, so frames pile up.
    const d = new Uint8Array(1200);
    for (let i = 0; i < 20_000; i++) sender.send(sink.secretKey.public(), d);
    await until(() => relay.stats().dropsQueueFull > 0, 'queue-full drops', 15_000);
    const metrics = await scrape(relay);
    expect(metrics.get('relay_send_queue_frames_max')).toBe(PER_CLIENT_SEND_QUEUE_DEPTH);
  });

  it(`the client drops instead of buffering more than CLIENT_MAX_BUFFERED_BYTES (${CLIENT_MAX_BUFFERED_BYTES}) towards a relay that stopped reading`, async () => {
    // A relay that authenticates the client, then never reads again.
    const sockets = new Set<Socket>();
    const server = createServer((socket) => {
      sockets.add(socket);
      socket.on('error', () => undefined);
      socket.once('data', (req: Buffer) => {
        const key = /sec-websocket-key: *(\S+)/i.exec(req.toString('latin1'))?.[1] ?? '';
        const accept = createHash('sha1').update(`${key}258EAFA5-E914-47DA-95CA-C5AB0DC85B11`).digest('base64');
        socket.write(`HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: upgrade\r\nSec-WebSocket-Accept: ${accept}\r\nSec-WebSocket-Protocol: iroh-relay-v2\r\n\r\n`);
        socket.write(Buffer.from([0x82, 1, FrameType.ServerConfirmsAuth]));
        socket.pause();
      });
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    cleanups.push(
      () =>
        new Promise<void>((r) => {
          for (const s of sockets) s.destroy();
          server.close(() => r());
        }),
    );
    const client = testClient(`http://127.0.0.1:${(server.address() as { port: number }).port}/`, { pingIntervalMs: 60_000 });
    cleanups.push(() => client.close({ signal: AbortSignal.timeout(100) }));
    await client.connect();
    const dst = SecretKey.generate().public();
    const batch = Array.from({ length: 40 }, () => new Uint8Array(1400));
    for (let i = 0; i < 1_000 && client.stats.dropsBufferFull === 0; i++) {
      client.send(dst, batch);
      await new Promise((r) => setImmediate(r));
    }
    expect(client.stats.dropsBufferFull).toBeGreaterThan(0);
    // What was accepted is bounded by the cap plus what the kernel took.
    expect(client.stats.datagramsSent * 1400).toBeLessThan(64 * 1024 * 1024);
  });

  it(`an incoming() reader that falls behind keeps at most CLIENT_RECV_QUEUE_DEPTH (${CLIENT_RECV_QUEUE_DEPTH}) frames; the rest are dropped and counted`, async () => {
    const relay = await startTestRelay();
    cleanups.push(() => relay.close({ graceful: false }));
    const a = testClient(relay.url);
    const b = testClient(relay.url);
    cleanups.push(() => a.close(), () => b.close());
    await Promise.all([a.connect(), b.connect()]);
    const reader = b.incoming();
    const total = CLIENT_RECV_QUEUE_DEPTH + 300;
    // In slices, so no single read at the relay holds more than its 512-frame queue.
    for (let i = 0; i < total; i++) {
      a.send(b.endpointId, Uint8Array.of(i & 0xff, i >> 8));
      if (i % 100 === 99) await new Promise((r) => setTimeout(r, 1));
    }
    await until(() => b.stats.framesReceived === total, 'every frame received');
    expect(b.stats.dropsReceiveQueue).toBe(total - CLIENT_RECV_QUEUE_DEPTH);
    // The reader gets the first CLIENT_RECV_QUEUE_DEPTH, in order.
    const first = await reader.next();
    expect(Array.from(first.value!.datagrams[0]!)).toEqual([0, 0]);
    await reader.return!();
  });
});
