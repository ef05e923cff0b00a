/**
 * Every abusive interaction of the hostile suite against one server, then time: live
 * connections return to 0, no connection ID still routes, no timer is left, and the heap and
 * buffer memory return to their baseline (reliability.md §5.L.7). Then the same on real UDP
 * sockets while an honest transfer runs through the garbage (s2n-quic udp-attack style).
 */
import { describe, expect, it } from 'vitest';
import { createHash, randomBytes } from 'node:crypto';
import { createSocket, type Socket } from 'node:dgram';
import { Endpoint } from '../../src/endpoint/index.ts';
import { ExtensionType } from '../../src/transport/quic/tls/constants.ts';
import { Arena } from './arena.ts';
import { F, RawPeer, TEST_ALPN, cat } from './raw-peer.ts';
import { getGc } from '../helpers/gc.ts';

const rand = (n: number) => new Uint8Array(randomBytes(n));
const MiB = 1024 * 1024;

/** `gc()` if we can get it (node --expose-gc, or the flag set at run time). */
/** Heap and ArrayBuffer bytes after full collections. */
function memory(gc: (() => void) | undefined): { heap: number; buffers: number } {
  for (let i = 0; i < 4; i++) gc?.();
  const m = process.memoryUsage();
  return { heap: m.heapUsed, buffers: m.arrayBuffers };
}

const mb = (n: number) => `${(n / MiB).toFixed(2)} MiB`;

/** Abusive interactions, each from its own path `name`. */
const abuses: [string, (arena: Arena, name: string) => RawPeer | undefined][] = [
  ['unknown frame type', (a, n) => sendAfterHandshake(a, n, [Uint8Array.of(0x21)])],
  ['stream flow-control violation', (a, n) => sendAfterHandshake(a, n, [F.stream(0, 100 * MiB, rand(1))])],
  ['stream beyond MAX_STREAMS', (a, n) => sendAfterHandshake(a, n, [F.stream(4000, 0, rand(1))])],
  ['too many connection IDs', (a, n) => sendAfterHandshake(a, n, Array.from({ length: 10 }, (_, i) => F.newConnectionId(i + 1, 0, rand(8), rand(16))))],
  ['NEW_CONNECTION_ID retire flood', (a, n) => sendAfterHandshake(a, n, Array.from({ length: 100 }, (_, i) => F.newConnectionId(i + 1, i + 1, rand(8), rand(16))))],
  ['PATH_CHALLENGE flood', (a, n) => sendAfterHandshake(a, n, Array.from({ length: 100 }, () => F.pathChallenge(rand(8))))],
  ['3,000 stream fragments left buffered', (a, n) => {
    const { peer } = a.handshake(n);
    for (let i = 0; i < 3000; i += 100) a.send(peer, Array.from({ length: 100 }, (_, j) => F.stream(0, 2 * (i + j) + 1, rand(1))), n);
    return peer;
  }],
  ['DATAGRAM flood never read', (a, n) => sendAfterHandshake(a, n, Array.from({ length: 100 }, () => F.datagram(rand(10))))],
  ['50 streams with data never read', (a, n) => sendAfterHandshake(a, n, Array.from({ length: 50 }, (_, i) => F.stream(4 * i, 0, rand(20))))],
  ['server data the peer never acknowledges', (a, n) => {
    const { peer, conn } = a.handshake(n);
    const id = conn.openStream('uni')!;
    conn.writeStream(id, rand(100_000));
    a.pump();
    return peer;
  }],
  ['spoofed migration', (a, n) => {
    const { peer } = a.handshake(n);
    a.deliver(`${n}-spoofed`, peer.packet('app', [F.ping()], { padTo: 1200 }));
    return peer;
  }],
  ['stateless reset', (a, n) => {
    const { peer } = a.handshake(n);
    const token = rand(16);
    a.send(peer, [F.newConnectionId(1, 1, rand(8), token)], n);
    a.deliver(n, cat(0x40, peer.serverCid!, rand(20), token));
    return peer;
  }],
  ['peer CONNECTION_CLOSE with a junk reason', (a, n) => sendAfterHandshake(a, n, [F.connectionClose(0x0a, 0, rand(500))])],
  ['forged key phase', (a, n) => {
    const { peer } = a.handshake(n);
    a.deliver(n, peer.packet('app', [F.ping()], { keyPhase: 1 }));
    return peer;
  }],
  ['silent after the handshake', (a, n) => a.handshake(n).peer],
  ['stalled handshake', (a, n) => {
    const peer = a.peer(n, { autoFinish: false });
    a.deliver(n, peer.initialDatagram());
    return peer;
  }],
  ['no ALPN', (a, n) => {
    const peer = a.peer(n, { editClientHello: (ch) => ({ ...ch, extensions: ch.extensions.filter((e) => e.type !== ExtensionType.application_layer_protocol_negotiation) }) });
    a.deliver(n, peer.initialDatagram());
    return peer;
  }],
  ['bad transport parameters', (a, n) => {
    const peer = a.peer(n, { params: { ackDelayExponent: 30 } });
    a.deliver(n, peer.initialDatagram());
    return peer;
  }],
  ['undecryptable Initial', (a, n) => {
    const peer = a.peer(n);
    a.deliver(n, peer.initialDatagram({ packet: { corruptTag: true } }));
    return peer;
  }],
  ['garbage, Version Negotiation and reset triggers', (a, n) => {
    for (let i = 0; i < 300; i++) a.deliver(n, rand(i * 5));
    for (let i = 0; i < 50; i++) a.deliver(n, cat(0xc0, 0x0a, 0x0a, 0x0a, 0x0a, 8, rand(8), 8, rand(8), rand(1200)));
    for (let i = 0; i < 50; i++) a.deliver(n, cat(0x40, rand(99)));
    return undefined;
  }],
];

function sendAfterHandshake(arena: Arena, name: string, frames: Uint8Array[]): RawPeer {
  const { peer } = arena.handshake(name);
  arena.send(peer, frames, name);
  return peer;
}

describe('§5.L.7 everything at one server, then time', () => {
  it('after all abusive interactions and their timeouts: no live connection, no routable CID, no timer, memory back to baseline', () => {
    const gc = getGc();
    const arena = new Arena({ settings: { maxIdleTimeout: 5_000, handshakeTimeout: 3_000 } });
    // Warm up the code paths once, then take the baseline.
    abuses[0]![1](arena, 'warm-up');
    arena.advance(60_000);
    arena.forget();
    const baseline = memory(gc);

    const peers: RawPeer[] = [];
    for (let round = 0; round < 3; round++) {
      abuses.forEach(([, abuse], i) => {
        const peer = abuse(arena, `abuse-${round}-${i}`);
        if (peer) peers.push(peer);
      });
    }
    const peak = arena.server.connections.length;
    expect(peak).toBeGreaterThan(20);
    const internalErrors = arena.internalErrors;
    const accepted = arena.accepted.slice();

    arena.advance(120_000);
    expect(internalErrors).toBe(0);
    expect(arena.internalErrors).toBe(0);
    expect(arena.server.connections.length).toBe(0);
    expect(arena.server.stats.connections).toBe(0);
    expect(arena.server.pollTimeout()).toBeUndefined();
    expect(arena.server.pollTransmit(arena.now)).toBeUndefined();
    expect(accepted.filter((c) => c.state !== 'closed').map((c) => c.state)).toEqual([]);

    // No connection ID still routes to a (forgotten) connection: every short-header datagram
    // to one of them is handled by the endpoint itself (a stateless reset or a counted drop).
    const cids = peers.flatMap((p) => [...(p.serverCid ? [p.serverCid] : []), ...p.serverCids.map((c) => c.cid)]);
    expect(cids.length).toBeGreaterThan(40);
    const handled = () => arena.drops + arena.server.stats.statelessResets;
    const before = handled();
    for (const cid of cids) arena.deliver('late', cat(0x40, cid, rand(60)));
    expect(handled() - before).toBe(cids.length);
    // Nor does any client-chosen Initial DCID.
    const before2 = handled();
    for (const p of peers) arena.deliver('late', cat(0xe3, 0, 0, 0, 1, p.dcid.length, p.dcid, 8, rand(8), 0x40, 40, rand(40)));
    expect(handled() - before2).toBe(peers.length);

    // Memory: the endpoint keeps nothing of the connections once the harness forgets them.
    accepted.length = 0;
    peers.length = 0;
    arena.forget();
    const after = memory(gc);
    console.log(`peak ${peak} connections; heap ${mb(baseline.heap)} → ${mb(after.heap)}, buffers ${mb(baseline.buffers)} → ${mb(after.buffers)}${gc ? '' : ' (no gc available)'}`);
    if (gc) {
      expect(after.heap - baseline.heap).toBeLessThan(8 * MiB);
      expect(after.buffers - baseline.buffers).toBeLessThan(4 * MiB);
    }
    console.log('endpoint drops by reason:', arena.server.stats.dropped);
  });
});

// ---------------------------------------------------------------- real sockets

async function bindUdp(): Promise<Socket> {
  const s = createSocket('udp4');
  await new Promise<void>((resolve) => s.bind(0, '127.0.0.1', resolve));
  return s;
}

async function until(cond: () => boolean, ms: number): Promise<boolean> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) return false;
    await new Promise((r) => setTimeout(r, 5));
  }
  return true;
}

/** A raw peer over a real UDP socket: handshake, then `hostile` datagrams; resolves with the close it got. */
async function udpAttack(serverKey: Uint8Array, port: number, hostile: (peer: RawPeer) => Uint8Array[], options: { finish?: boolean } = {}): Promise<number | undefined> {
  const sock = await bindUdp();
  const peer = new RawPeer({ serverKey, autoFinish: options.finish ?? true });
  sock.on('message', (msg) => {
    peer.receive(new Uint8Array(msg));
    for (const d of peer.takeOutgoing()) sock.send(d, port, '127.0.0.1');
  });
  sock.send(peer.initialDatagram(), port, '127.0.0.1');
  if (options.finish !== false && (await until(() => peer.handshakeComplete, 3_000))) {
    for (const d of hostile(peer)) sock.send(d, port, '127.0.0.1');
    await until(() => peer.closes.length > 0, 3_000);
  } else {
    await new Promise((r) => setTimeout(r, 50));
  }
  sock.close();
  return peer.closes[0]?.code;
}

async function readAll(r: ReadableStream<Uint8Array>): Promise<Uint8Array> {
  const parts: Uint8Array[] = [];
  for await (const c of r) parts.push(c);
  return cat(...parts);
}

const serverSettings = { handshakeTimeout: 1_000, maxIdleTimeout: 1_000, initialRtt: 20_000 };

describe('§5.A.1 / §5.L real UDP sockets', () => {
  it('a garbage spray and hostile sessions while an honest 4 MiB echo completes; then no live connection and memory back to baseline', async () => {
    // reliability.md §5.L.1: nothing may escape into the event loop.
    const crashes: unknown[] = [];
    const onCrash = (err: unknown) => crashes.push(err);
    process.on('uncaughtException', onCrash);
    process.on('unhandledRejection', onCrash);
    const gc = getGc();
    const server = await Endpoint.bind({ alpns: [TEST_ALPN], bindAddr: '127.0.0.1:0', settings: serverSettings });
    const port = server.boundSockets[0]!.port;
    const serverKey = server.id.toBytes();
    let served = 0;
    void (async () => {
      for await (const incoming of server.accept()) {
        void (async () => {
          try {
            const conn = await incoming.accept();
            const bi = await conn.acceptBi();
            const data = await readAll(bi.readable);
            const w = bi.writable.getWriter();
            await w.write(createHash('sha256').update(data).digest());
            await w.close();
            served++;
          } catch {
            // Hostile connections fail; that is the point.
          }
        })();
      }
    })();
    const client = await Endpoint.bind({ bindAddr: '127.0.0.1:0' });
    const echo = async (size: number) => {
      const conn = await client.connect(server.addr(), TEST_ALPN);
      const bi = await conn.openBi();
      const payload = rand(Math.min(size, 65536));
      const w = bi.writable.getWriter();
      for (let off = 0; off < size; off += payload.length) await w.write(payload);
      await w.close();
      const digest = await readAll(bi.readable);
      conn.close(0, 'done');
      const want = createHash('sha256');
      for (let off = 0; off < size; off += payload.length) want.update(payload);
      return Buffer.from(digest).toString('hex') === want.digest('hex');
    };
    // Warm-up and baseline.
    expect(await echo(64 * 1024)).toBe(true);
    expect(await until(() => server.stats().connections === 0, 10_000)).toBe(true);
    const baseline = memory(gc);

    const sprayer = await bindUdp();
    let spraying = true;
    let sprayed = 0;
    const spray = (async () => {
      while (spraying) {
        // About 10,000 datagrams a second (a few MB/s): enough to keep the endpoint busy
        // without simply overflowing the socket buffer, which would only measure the kernel.
        for (let i = 0; i < 10; i++) {
          sprayer.send(rand(Math.floor(Math.random() * 1500)), port, '127.0.0.1');
          sprayed++;
        }
        await new Promise((r) => setTimeout(r, 1));
      }
    })();
    const hostile = Promise.all([
      ...Array.from({ length: 20 }, () => udpAttack(serverKey, port, (p) => [p.oneRtt(Uint8Array.of(0x21))])),
      ...Array.from({ length: 20 }, () => udpAttack(serverKey, port, (p) => [p.oneRtt(F.stream(0, 100 * MiB, rand(1)))])),
      ...Array.from({ length: 20 }, () => udpAttack(serverKey, port, (p) => [p.oneRtt(...Array.from({ length: 100 }, (_, i) => F.stream(0, 2 * i + 1, rand(1))))])),
      ...Array.from({ length: 40 }, () => udpAttack(serverKey, port, () => [], { finish: false })),
    ]);
    const t0 = performance.now();
    const ok = await echo(4 * MiB).catch((err: unknown) => {
      console.log(`honest echo failed after ${(performance.now() - t0).toFixed(0)} ms:`, err);
      return false;
    });
    const echoMs = performance.now() - t0;
    const closes = await hostile;
    spraying = false;
    await spray;
    sprayer.close();
    expect(ok).toBe(true);
    expect(closes.slice(0, 20)).toEqual(Array(20).fill(0x07));
    expect(closes.slice(20, 40)).toEqual(Array(20).fill(0x03));
    expect(await until(() => server.stats().connections === 0, 15_000), `live connections: ${server.stats().connections}`).toBe(true);
    const stats = server.stats();
    expect(stats.internalErrors).toBe(0);
    const after = memory(gc);
    console.log(`honest 4 MiB echo in ${echoMs.toFixed(0)} ms; sprayed ${sprayed} datagrams; served ${served}; heap ${mb(baseline.heap)} → ${mb(after.heap)}, buffers ${mb(baseline.buffers)} → ${mb(after.buffers)}; drops`, stats.dropped);
    if (gc) {
      expect(after.heap - baseline.heap).toBeLessThan(16 * MiB);
      expect(after.buffers - baseline.buffers).toBeLessThan(8 * MiB);
    }
    await client.close();
    await server.close();
    process.off('uncaughtException', onCrash);
    process.off('unhandledRejection', onCrash);
    expect(crashes).toEqual([]);
  }, 60_000);

  it('a server that is not accepting: 300 failed connection attempts are not kept in memory', async () => {
    const gc = getGc();
    const server = await Endpoint.bind({ alpns: [TEST_ALPN], bindAddr: '127.0.0.1:0', settings: serverSettings });
    const port = server.boundSockets[0]!.port;
    const serverKey = server.id.toBytes();
    const attempt = () => udpAttack(serverKey, port, (p) => [p.oneRtt(Uint8Array.of(0x21))]);
    await attempt();
    expect(await until(() => server.stats().connections === 0, 10_000)).toBe(true);
    const baseline = memory(gc);
    for (let i = 0; i < 30; i++) await Promise.all(Array.from({ length: 10 }, attempt));
    expect(await until(() => server.stats().connections === 0, 10_000)).toBe(true);
    const after = memory(gc);
    const perAttempt = (after.heap - baseline.heap) / 300;
    console.log(`heap ${mb(baseline.heap)} → ${mb(after.heap)}: ${(perAttempt / 1024).toFixed(1)} KiB per failed attempt`);
    if (gc) expect(perAttempt, 'heap bytes retained per closed, never-accepted connection').toBeLessThan(2048);
    expect(server.stats().internalErrors).toBe(0);
    await server.close();
  }, 60_000);
});
