/**
 * The relay server against hostile clients (shared/docs/reliability.md §5.G), each case a
 * named test over real sockets: the offending connection is closed with a reason and counted,
 * the server stays up, honest clients keep exchanging datagrams, nothing escapes into the
 * event loop, and memory returns to its baseline after 1,000 clients come and go.
 */
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { afterEach, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { SecretKey } from '../../src/identity/index.ts';
import { defaultCryptoProvider } from '../../src/transport/crypto/index.ts';
import type { RelayClient } from '../../src/relay/client/index.ts';
import { encodeClientAuth, encodeDatagramFrame, encodePingPong, FrameType, signChallenge, MAX_PACKET_SIZE } from '../../src/relay/protocol/index.ts';
import type { RelayServerHandle } from '../../relay-server/src/index.ts';
import { failOnEscapes, rawExchange, RawRelayClient, rawSocket, scrape, startTestRelay, testClient, until, upgradeRequest } from '../helpers/relay-test-utils.ts';

failOnEscapes();

const cleanups: Array<() => Promise<unknown> | unknown> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function relay(options: Parameters<typeof startTestRelay>[0] = {}): Promise<RelayServerHandle> {
  const r = await startTestRelay(options);
  cleanups.push(() => r.close({ graceful: false }));
  return r;
}

function raw(r: RelayServerHandle, options?: ConstructorParameters<typeof RawRelayClient>[1]): RawRelayClient {
  const c = new RawRelayClient(r.url, options);
  cleanups.push(() => c.close());
  return c;
}

/** Two honest clients; `check()` proves a datagram still goes from one to the other. */
async function honestPair(r: RelayServerHandle): Promise<{ a: RelayClient; b: RelayClient; check: () => Promise<void> }> {
  const a = testClient(r.url);
  const b = testClient(r.url);
  cleanups.push(() => a.close(), () => b.close());
  // Bounded, so a failure shows as an error instead of a hung test.
  await Promise.all([a.connect({ signal: AbortSignal.timeout(15_000) }), b.connect({ signal: AbortSignal.timeout(15_000) })]);
  let n = 0;
  const got = new Set<number>();
  b.on('datagrams', (d) => got.add(d.datagrams[0]![0]!));
  return {
    a,
    b,
    check: async () => {
      const tag = ++n % 256;
      a.send(b.endpointId, Uint8Array.of(tag, 1, 2, 3));
      await until(() => got.has(tag), `honest datagram ${tag}`);
    },
  };
}

const metric = async (r: RelayServerHandle, name: string): Promise<number> => (await scrape(r)).get(name) ?? 0;

describe('hostile clients (reliability.md §5.G)', () => {
  it('bad signature: answered with ServerDeniesAuth("signature invalid") and closed (§5.G.2)', async () => {
    const r = await relay();
    const honest = await honestPair(r);
    const bad = raw(r);
    const challenge = await bad.frame(1);
    expect(challenge[0]).toBe(FrameType.ServerChallenge);
    // Signed over a different challenge: what a replay from another session looks like.
    bad.send(signChallenge(bad.secretKey, new Uint8Array(16).fill(7), defaultCryptoProvider));
    const denial = await bad.frame(2);
    expect(denial[0]).toBe(FrameType.ServerDeniesAuth);
    expect(new TextDecoder().decode(denial.subarray(2))).toBe('signature invalid');
    expect(await bad.closed).toBe(1008);
    expect(await metric(r, 'relay_auth_failures_total{reason="signature_invalid"}')).toBe(1);
    await honest.check();
  });

  it('bad signature: a ClientAuth claiming someone else’s key is denied (§5.G.2)', async () => {
    const r = await relay();
    const bad = raw(r);
    const challenge = await bad.frame(1);
    const victim = SecretKey.generate().public();
    const forged = signChallenge(bad.secretKey, challenge.subarray(1), defaultCryptoProvider);
    forged.set(victim.bytes, 1);
    bad.send(forged);
    expect((await bad.frame(2))[0]).toBe(FrameType.ServerDeniesAuth);
    await bad.closed;
    expect(r.stats().clients).toBe(0);
  });

  it('bad signature: a ClientAuth with a small-order key is refused as a protocol error (§5.G.2)', async () => {
    const r = await relay();
    const bad = raw(r);
    await bad.frame(1);
    const smallOrder = new Uint8Array(32);
    smallOrder[0] = 1; // the identity point
    bad.send(encodeClientAuth(SecretKey.generate().public(), new Uint8Array(64)).map((b, i) => (i >= 1 && i < 33 ? smallOrder[i - 1]! : b)));
    expect(await bad.closed).toBe(1002);
    expect(await metric(r, 'relay_auth_failures_total{reason="handshake_protocol"}')).toBe(1);
  });

  it('wrong first frame: a datagram instead of ClientAuth closes the connection (1002)', async () => {
    const r = await relay();
    const honest = await honestPair(r);
    const bad = raw(r);
    await bad.frame(1);
    bad.send(encodeDatagramFrame(4, honest.b.endpointId.bytes, 0, 0, new Uint8Array(100)));
    expect(await bad.closed).toBe(1002);
    expect(bad.closeReason).toMatch(/instead of ClientAuth/);
    await honest.check();
  });

  it('wrong first frame: a Ping before authenticating closes the connection', async () => {
    const r = await relay();
    const bad = raw(r);
    await bad.frame(1);
    bad.send(encodePingPong(FrameType.Ping, new Uint8Array(8)));
    expect(await bad.closed).toBe(1002);
  });

  it(`oversized frame: more than MAX_PACKET_SIZE (${MAX_PACKET_SIZE}) bytes after the type closes the connection`, async () => {
    const r = await relay();
    const honest = await honestPair(r);
    const bad = raw(r);
    await bad.authenticate();
    const frame = new Uint8Array(1 + MAX_PACKET_SIZE + 1);
    frame[0] = FrameType.ClientToRelayDatagram;
    frame.set(honest.b.endpointId.bytes, 1);
    bad.send(frame);
    expect(await bad.closed).toBe(1002);
    expect(bad.closeReason).toMatch(/too large/);
    expect(r.stats().bytesRelayed).toBe(0);
    await honest.check();
  });

  it('oversized frame: a WebSocket message over 1 MiB is refused from its header, before it is buffered (1009)', async () => {
    const r = await relay();
    const honest = await honestPair(r);
    const bad = raw(r);
    await bad.authenticate();
    bad.send(new Uint8Array(1024 * 1024 + 1));
    expect(await bad.closed).toBe(1009);
    await honest.check();
  });

  it('oversized frame: a 2^63-byte length claim in a hand-made WebSocket header closes at once (§5.G.4)', async () => {
    const r = await relay();
    const bad = raw(r);
    await bad.authenticate();
    // FIN+binary, masked, 127 → 64-bit length 2^63 − 1 (RFC 6455 §5.2), then a mask key.
    const socket = (bad.ws as unknown as { _socket: import('node:net').Socket })._socket;
    socket.write(Buffer.from([0x82, 0xff, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 1, 2, 3, 4]));
    expect(await bad.closed).not.toBe(1000);
    expect(r.stats().clients).toBe(0);
  });

  it('unknown frame type after authentication closes the connection (1002)', async () => {
    const r = await relay();
    const honest = await honestPair(r);
    const bad = raw(r);
    await bad.authenticate();
    bad.send(Uint8Array.of(0x2a, 1, 2, 3));
    expect(await bad.closed).toBe(1002);
    expect(bad.closeReason).toMatch(/unknown frame type/);
    expect(await metric(r, 'relay_disconnects_total{reason="protocol"}')).toBe(1);
    await honest.check();
  });

  it('relay-only frame types from a client (e.g. RelayToClientDatagram) close the connection', async () => {
    const r = await relay();
    const bad = raw(r);
    await bad.authenticate();
    bad.send(encodeDatagramFrame(6, SecretKey.generate().public().bytes, 0, 0, new Uint8Array(4)));
    expect(await bad.closed).toBe(1002);
  });

  it('slowloris: a TCP connection that never sends a request is cut at the establish deadline', async () => {
    // Short, but long enough for honest handshakes on a loaded CI machine.
    const r = await relay({ limits: { handshakeTimeoutMs: 800 } });
    const honest = await honestPair(r);
    const s = await rawSocket(r.port);
    const closed = new Promise((res) => s.once('close', res));
    await closed;
    expect(await metric(r, 'relay_auth_failures_total{reason="handshake_timeout"}')).toBeGreaterThanOrEqual(1);
    await honest.check();
  });

  it('slowloris: request headers dripped a byte at a time are cut at the establish deadline', async () => {
    const r = await relay({ limits: { handshakeTimeoutMs: 800 } });
    const s = await rawSocket(r.port);
    let closed = false;
    s.once('close', () => (closed = true));
    const request = upgradeRequest(r.port);
    let i = 0;
    const drip = setInterval(() => {
      if (!closed && i < request.length) s.write(request[i++]!);
    }, 20);
    cleanups.push(() => clearInterval(drip));
    await until(() => closed, 'the dripping socket to be closed');
    expect(i).toBeLessThan(request.length);
  });

  it('slowloris: an upgraded connection that never answers the challenge is closed at the deadline', async () => {
    const r = await relay({ limits: { handshakeTimeoutMs: 800 } });
    const honest = await honestPair(r);
    const bad = raw(r);
    expect((await bad.frame(1))[0]).toBe(FrameType.ServerChallenge);
    await bad.closed;
    expect(await metric(r, 'relay_auth_failures_total{reason="handshake_timeout"}')).toBe(1);
    expect(r.stats().handshaking).toBe(0);
    await honest.check();
  });

  it('flood past the rate limit: the flooder is throttled to its byte rate, honest clients keep working', async () => {
    const rate = 256 * 1024;
    const burst = 128 * 1024;
    const r = await relay({ rateLimit: { bytesPerSecond: rate, burstBytes: burst }, limits: { sendQueueDepth: 100_000, sendQueueBytes: 64 * 1024 * 1024 } });
    const honest = await honestPair(r);
    const flooder = testClient(r.url, { maxBufferedBytes: 64 * 1024 * 1024 });
    const victim = testClient(r.url);
    cleanups.push(() => flooder.close(), () => victim.close());
    await Promise.all([flooder.connect(), victim.connect()]);
    let received = 0;
    victim.on('datagrams', (d) => (received += d.datagrams.reduce((n, x) => n + x.length, 0)));
    const statusAtFlooder: number[] = [];
    flooder.on('status', (e) => statusAtFlooder.push(e.status));
    const start = performance.now();
    // Offer ~4 MiB at once: 16× the rate.
    for (let i = 0; i < 64; i++) flooder.send(victim.endpointId, Array.from({ length: 50 }, () => new Uint8Array(1300)));
    // While the flood is being throttled, honest traffic flows.
    await honest.check();
    await until(async () => (await metric(r, 'relay_rate_limited_total')) > 0, 'the rate limiter to engage');
    await new Promise((res) => setTimeout(res, 400));
    const elapsed = (performance.now() - start) / 1000;
    const relayedAtVictim = received;
    // The token bucket's bound: burst + rate × elapsed (+ one frame that may straddle a pause).
    expect(relayedAtVictim).toBeLessThanOrEqual(burst + rate * elapsed + 65_536);
    expect(relayedAtVictim).toBeGreaterThan(0);
    // v2 clients are told once (Status 2, iroh main's RateLimited).
    expect(statusAtFlooder).toEqual([2]);
    expect(flooder.state).toBe('connected');
    await honest.check();
  });

  it('spraying thousands of random EndpointIds costs only counted drops; sending to itself is delivered back (§5.G.3)', async () => {
    const r = await relay();
    const honest = await honestPair(r);
    const sprayer = raw(r);
    await sprayer.authenticate();
    const n = 5_000;
    for (let i = 0; i < n; i++) sprayer.send(encodeDatagramFrame(4, SecretKey.generate().public().bytes, 0, 0, Uint8Array.of(1)));
    // A key that is no curve point at all is just as unknown: dropped, not parsed.
    sprayer.send(encodeDatagramFrame(4, new Uint8Array(32).fill(0xff), 0, 0, Uint8Array.of(1)));
    sprayer.send(encodeDatagramFrame(4, sprayer.secretKey.public().bytes, 0, 0, Uint8Array.of(42)));
    const echoed = await sprayer.frame(sprayer.received.length + 1);
    expect(echoed[0]).toBe(FrameType.RelayToClientDatagram);
    expect(Array.from(echoed.subarray(1, 33))).toEqual(Array.from(sprayer.secretKey.public().bytes));
    await until(() => r.stats().dropsNoRecipient === n + 1, 'every sprayed frame dropped and counted');
    // Nothing was remembered for EndpointGone about ids that were never connected.
    expect(r.stats().sentToEntries).toBe(1); // only "sprayer sent to itself"
    await honest.check();
  });

  it('a ping flood is answered only as fast as the client’s byte rate allows (§5.G.4)', async () => {
    const r = await relay({ rateLimit: { bytesPerSecond: 16 * 1024, burstBytes: 8 * 1024 } });
    const honest = await honestPair(r);
    const flooder = raw(r);
    await flooder.authenticate();
    const before = flooder.received.length;
    for (let i = 0; i < 20_000; i++) flooder.send(encodePingPong(FrameType.Ping, new Uint8Array(8)));
    await until(async () => (await metric(r, 'relay_rate_limited_total')) > 0, 'the rate limiter to engage');
    await honest.check();
    // 20,000 pings are 180 KB: at 16 KiB/s most are still unread, so most pongs are not sent.
    expect(flooder.received.length - before).toBeLessThan(10_000);
    expect(flooder.closeCode).toBeUndefined();
  });

  it('a client that never reads is disconnected by the write timeout; the queue never grows without bound (§5.G.6)', async () => {
    const r = await relay({ limits: { writeTimeoutMs: 300, sendQueueDepth: 64 } });
    const sink = raw(r);
    await sink.authenticate();
    // Stop reading at the TCP level.
    (sink.ws as unknown as { _socket: import('node:net').Socket })._socket.pause();
    const sender = testClient(r.url, { maxBufferedBytes: 64 * 1024 * 1024 });
    cleanups.push(() => sender.close());
    await sender.connect();
    const big = Array.from({ length: 40 }, () => new Uint8Array(1400));
    for (let i = 0; i < 200; i++) sender.send(sink.secretKey.public(), big);
    await until(async () => (await metric(r, 'relay_disconnects_total{reason="write_timeout"}')) === 1, 'write-timeout disconnect', 10_000);
    expect(r.stats().dropsQueueFull).toBeGreaterThan(0);
    expect(r.stats().endpoints).toBe(1);
  });

  it('unmasked client frames are refused by the WebSocket layer (RFC 6455 §5.1, §5.G.4)', async () => {
    const r = await relay();
    const bad = raw(r);
    await bad.authenticate();
    const socket = (bad.ws as unknown as { _socket: import('node:net').Socket })._socket;
    socket.write(Buffer.from([0x82, 0x09, 0x09, 1, 2, 3, 4, 5, 6, 7, 8]));
    expect(await bad.closed).toBe(1002);
  });

  it('huge request headers get 431 and the connection is closed (§5.G.7)', async () => {
    const r = await relay();
    const { response, closed } = await rawExchange(r.port, `GET /ping HTTP/1.1\r\nHost: x\r\nX-Big: ${'a'.repeat(20_000)}\r\n\r\n`);
    expect(response).toMatch(/^HTTP\/1\.1 431/);
    expect(closed).toBe(true);
  });

  it('a request with both Content-Length and Transfer-Encoding is rejected (§5.G.7)', async () => {
    const r = await relay();
    const { response } = await rawExchange(r.port, 'POST /ping HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n');
    expect(response).toMatch(/^HTTP\/1\.1 400/);
  });

  it('one EndpointId connecting 20 times keeps a bounded inactive list (§5.G.5)', async () => {
    const r = await relay({ limits: { maxInactivePerEndpoint: 3 } });
    const key = SecretKey.generate();
    const conns: RawRelayClient[] = [];
    for (let i = 0; i < 20; i++) {
      const c = raw(r, { secretKey: key });
      await c.authenticate();
      conns.push(c);
    }
    await until(() => r.stats().clients === 4, 'only 1 active + 3 inactive kept');
    expect(conns.filter((c) => c.closeCode !== undefined)).toHaveLength(16);
    expect(r.stats().endpoints).toBe(1);
  });

  it('a text message is refused with 1003 and counted: the relay protocol is binary', async () => {
    const r = await relay();
    const honest = await honestPair(r);
    const c = raw(r);
    await c.authenticate();
    c.ws.send('hello');
    expect(await c.closed).toBe(1003);
    expect(await metric(r, 'relay_text_messages_refused_total')).toBe(1);
    await honest.check();
  });

  it('more clients than maxClients get 503 and the others keep working', async () => {
    const r = await relay({ limits: { maxClients: 3 } });
    const honest = await honestPair(r);
    const third = raw(r);
    await third.authenticate();
    const fourth = raw(r);
    await expect(fourth.opened).rejects.toThrow(/503/);
    await honest.check();
  });

  it('1,000 clients connecting and leaving: the server stays up, honest clients keep working, memory returns to its baseline', async () => {
    setFlagsFromString('--expose-gc');
    const gc = runInNewContext('gc') as () => void;
    const r = await relay({ limits: { maxClients: 2_000 } });
    const honest = await honestPair(r);
    const settle = async (): Promise<number> => {
      for (let i = 0; i < 4; i++) {
        gc();
        await new Promise((res) => setTimeout(res, 20));
      }
      return process.memoryUsage().heapUsed;
    };
    let peak = 0;
    const wave = async (n: number): Promise<void> => {
      const clients: RelayClient[] = [];
      for (let i = 0; i < n; i += 100) {
        const batch = Array.from({ length: Math.min(100, n - i) }, () => testClient(r.url));
        await Promise.all(batch.map((c) => c.connect()));
        clients.push(...batch);
      }
      expect(r.stats().clients).toBe(n + 2);
      peak = Math.max(peak, process.memoryUsage().heapUsed);
      // Each says something to its neighbour, so EndpointGone bookkeeping is exercised too.
      for (let i = 0; i < clients.length; i++) clients[i]!.send(clients[(i + 1) % clients.length]!.endpointId, Uint8Array.of(i & 0xff));
      await honest.check();
      await Promise.all(clients.map((c) => c.close()));
      await until(() => r.stats().clients === 2 && r.stats().tcpConnections === 2, 'every departed client released');
    };
    await wave(100); // warm up code paths and lazily built structures
    const baseline = await settle();
    await wave(1_000);
    const after = await settle();
    const stats = r.stats();
    // Only the honest pair's own entry (a sent to b) is left of the EndpointGone bookkeeping.
    expect(stats).toMatchObject({ clients: 2, endpoints: 2, handshaking: 0, sentToEntries: 1 });
    await honest.check();
    const mib = (b: number): string => (b / 1048576).toFixed(1);
    console.log(`[memory] heapUsed baseline ${mib(baseline)} MiB, with 1,000 connected ${mib(peak)} MiB, after they left ${mib(after)} MiB`);
    // 1,000 connected clients hold tens of MiB; after they leave at most a little noise remains.
    expect(after - baseline).toBeLessThan(4 * 1024 * 1024);
  });

  it('a raw WebSocket that speaks no relay protocol at all and disconnects abruptly leaves nothing behind', async () => {
    const r = await relay();
    const sockets = Array.from({ length: 50 }, () => new WebSocket(`ws://127.0.0.1:${r.port}/relay`, ['iroh-relay-v2']));
    for (const ws of sockets) ws.on('error', () => undefined);
    await Promise.all(sockets.map((ws) => new Promise((res) => ws.once('open', res))));
    for (const ws of sockets) ws.terminate();
    await until(() => r.stats().handshaking === 0 && r.stats().tcpConnections === 0, 'all released');
  });
});
