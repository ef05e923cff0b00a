/**
 * Relayed and direct paths in the simulator: a client whose connection starts on the relay
 * moves to a direct path once it validates (RFC 9000 §9.2 migration with §8.2 path
 * validation), falls back to the relay when the direct path goes silent, and comes back when
 * it returns. Duplicate first flights over relay and UDP make one connection. A server that
 * does not advertise sdnet_direct_addresses (iroh) keeps the connection where it started.
 */
import { describe, expect, it } from 'vitest';
import { RELAY_PREFIX, SimNetwork, relayPath, type SimNode } from './harness.ts';
import { SecretKey } from '../../src/identity/index.ts';
import type { Connection } from '../../src/transport/quic/connection/connection.ts';
import type { ConnectionEvent, PathAddr } from '../../src/transport/quic/connection/types.ts';
import type { DirectAddress } from '../../src/transport/quic/wire/transport-params.ts';
import { testSeed } from '../helpers/seed.ts';

const alpn = new TextEncoder().encode('sim/1');
/** The address the simulated server advertises; the client resolves it to the node 'server'. */
const SERVER_DIRECT: DirectAddress = { ip: new Uint8Array([10, 0, 0, 1]), port: 4433 };
const RELAY_LATENCY = 20_000;

interface Options {
  /** The server advertises its direct address (an sdnet peer); false acts like iroh. */
  advertise?: boolean;
  /** Also dial the direct address (besides the relay). */
  dialDirect?: boolean;
  /** Set up links before the connection starts. */
  links?: (net: SimNetwork) => void;
}

function setup(name: string, options: Options = {}) {
  const net = new SimNetwork(testSeed(name));
  const serverKey = SecretKey.fromBytes(net.rng.bytes(32));
  const server = net.addNode('server', {
    secretKey: serverKey.toBytes(),
    alpns: [alpn],
    ...(options.advertise === false ? {} : { directAddresses: () => [SERVER_DIRECT] }),
  });
  const client = net.addNode('client', {
    secretKey: net.rng.bytes(32),
    resolvePath: (a) => (a.ip.join('.') === '10.0.0.1' && a.port === 4433 ? { key: 'server' } : undefined),
  });
  // The relay is slower than the direct link, both ways.
  net.setLink('client', `${RELAY_PREFIX}server`, { latency: RELAY_LATENCY });
  net.setLink('server', `${RELAY_PREFIX}client`, { latency: RELAY_LATENCY });
  options.links?.(net);
  const log: ConnectionEvent[] = [];
  const conn = client.endpoint.connect(net.now, relayPath('server'), {
    serverKey: serverKey.public().toBytes(),
    alpn,
    ...(options.dialDirect ? { alternativePaths: [{ key: 'server' } as PathAddr] } : {}),
  });
  net.runUntil(() => conn.isEstablished || conn.isClosed, { what: 'handshake' });
  expect(conn.closeError).toBeUndefined();
  net.runUntil(() => conn.handshakeConfirmed && server.endpoint.connections.some((c) => c.isEstablished), { what: 'handshake confirmed' });
  const sconn = server.endpoint.connections.find((c) => c.isEstablished)!;
  const drain = () => {
    for (let e = conn.pollEvent(); e; e = conn.pollEvent()) log.push(e);
  };
  return { net, server, client, conn, sconn, log, drain };
}

/** Datagrams the client sent over the relay and directly so far. */
function counts(net: SimNetwork) {
  return { relay: net.sent.get(`client>${RELAY_PREFIX}server`) ?? 0, direct: net.sent.get('client>server') ?? 0, relayDown: net.sent.get(`server>${RELAY_PREFIX}client`) ?? 0 };
}

/**
 * Move `size` bytes from `a` to `b` on one stream, verifying every byte (a position-dependent
 * pattern), calling `tick` between steps.
 */
function transfer(net: SimNetwork, a: Connection, b: Connection, size: number, tick: () => void = () => {}): void {
  const id = a.openStream('bi')!;
  const data = new Uint8Array(size);
  for (let i = 0; i < size; i++) data[i] = (i * 31 + (i >>> 11)) & 0xff;
  let written = 0;
  let read = 0;
  let fin = false;
  net.runUntil(
    () => {
      tick();
      if (written < size) {
        written += a.writeStream(id, data.subarray(written));
        if (written === size) a.finishStream(id);
      }
      for (;;) {
        const r = b.readStream(id);
        if (r.data) {
          for (let i = 0; i < r.data.length; i++) {
            if (r.data[i] !== data[read + i]) throw new Error(`byte ${read + i} differs`);
          }
          read += r.data.length;
        }
        if (r.fin) fin = true;
        if (!r.data) break;
      }
      if (a.isClosed || b.isClosed) throw new Error(`closed: ${a.closeError?.message ?? b.closeError?.message}`);
      return fin;
    },
    { what: 'transfer', maxTime: 300_000_000 },
  );
  expect(read).toBe(size);
}

describe('relayed and direct paths (simulated network)', () => {
  it('upgrades a connection that started on the relay to the direct path the server advertised', () => {
    const { net, conn, sconn, log, drain } = setup('paths upgrade');
    expect(conn.stats().relayed).toBe(true);
    const start = net.now;
    net.runUntil(() => !conn.stats().relayed, { what: 'upgrade', maxTime: 5_000_000 });
    drain();
    const upgrade = log.find((e) => e.type === 'path-changed');
    expect(upgrade).toMatchObject({ type: 'path-changed', reason: 'upgrade', path: { key: 'server' } });
    // paths(): the direct path active and validated, the relay kept as a candidate.
    const paths = conn.paths();
    expect(paths[0]).toMatchObject({ addr: { key: 'server' }, status: 'active', relayed: false, validated: true });
    expect(paths[0]!.rttMs).toBeGreaterThan(0);
    expect(paths.slice(1).map((p) => ({ key: p.addr.key, status: p.status, relayed: p.relayed }))).toContainEqual({ key: `${RELAY_PREFIX}server`, status: 'candidate', relayed: true });
    // The first probe goes out right after the handshake is confirmed: one direct round trip.
    expect(net.now - start).toBeLessThan(2_000_000);
    const before = counts(net);
    transfer(net, conn, sconn, 2 << 20);
    const after = counts(net);
    // Everything went direct: the relay carried nothing more in either direction.
    expect(after.relay).toBe(before.relay);
    expect(after.relayDown).toBe(before.relayDown);
    expect(after.direct - before.direct).toBeGreaterThan(1000);
    expect(sconn.path.key).toBe('client');
    expect(sconn.stats().relayed).toBe(false);
  });

  it('issues one connection ID per unused path id up front, and the spare for a path once it is used (multipath-21 §3.2)', () => {
    // Both sides offer path ids up to 7. Path 0 keeps RFC 9000's IDs (`localCids`); the
    // server also routes the client's first DCID (duplicate Initials over several paths).
    const unusedIds = 7;
    const settle = (net: SimNetwork) => {
      const end = net.now + 1_000_000;
      while (net.step(end));
    };
    const expected = (c: Connection, s: Connection, spare: number) => ({ client: c.localCids.length + unusedIds + spare, server: s.localCids.length + 1 + unusedIds + spare });
    const routed = (n: { client: SimNode; server: SimNode }) => ({ client: n.client.endpoint.stats.connectionIds, server: n.server.endpoint.stats.connectionIds });

    const quiet = setup('path cids unused', { advertise: false });
    settle(quiet.net);
    expect(quiet.conn.localCids.length).toBeGreaterThanOrEqual(2);
    expect(routed(quiet)).toEqual(expected(quiet.conn, quiet.sconn, 0));

    const used = setup('path cids used');
    used.net.runUntil(() => !used.conn.stats().relayed, { what: 'upgrade', maxTime: 5_000_000 });
    settle(used.net);
    // Path 1 carries the connection now: each side gave the other a spare ID for it.
    expect(routed(used)).toEqual(expected(used.conn, used.sconn, 1));
  });

  it('falls back to the relay when the direct path goes dark mid-transfer (client sending), and completes', () => {
    const { net, conn, sconn, log, drain } = setup('paths fallback upload');
    net.runUntil(() => !conn.stats().relayed, { what: 'upgrade' });
    let blocked = false;
    let relayAtBlock = 0;
    transfer(net, conn, sconn, 4 << 20, () => {
      if (!blocked && conn.stats().bytesSent > 1 << 20) {
        blocked = true;
        relayAtBlock = counts(net).relay;
        // Direct UDP dies for good, both ways.
        net.setLink('client', 'server', { blackholes: [[net.now, Infinity]] });
        net.setLink('server', 'client', { blackholes: [[net.now, Infinity]] });
      }
    });
    drain();
    expect(blocked).toBe(true);
    expect(log.filter((e) => e.type === 'path-changed').map((e) => (e as { reason: string }).reason)).toEqual(['upgrade', 'fallback']);
    expect(conn.stats().relayed).toBe(true);
    expect(sconn.path.key).toBe(`${RELAY_PREFIX}client`);
    expect(counts(net).relay - relayAtBlock).toBeGreaterThan(1000);
  });

  it('falls back while only receiving (liveness PINGs), and completes a download', () => {
    const { net, conn, sconn, log, drain } = setup('paths fallback download');
    net.runUntil(() => !conn.stats().relayed, { what: 'upgrade' });
    let blocked = false;
    transfer(net, sconn, conn, 4 << 20, () => {
      if (!blocked && sconn.stats().bytesSent > 1 << 20) {
        blocked = true;
        net.setLink('client', 'server', { blackholes: [[net.now, Infinity]] });
        net.setLink('server', 'client', { blackholes: [[net.now, Infinity]] });
      }
    });
    drain();
    expect(blocked).toBe(true);
    expect(log.some((e) => e.type === 'path-changed' && e.reason === 'fallback')).toBe(true);
    expect(sconn.stats().relayed).toBe(true);
  });

  it('returns to the direct path when it comes back after an outage', () => {
    const { net, conn, sconn, log, drain } = setup('paths return');
    net.runUntil(() => !conn.stats().relayed, { what: 'upgrade' });
    const outage: [number, number] = [net.now + 100_000, net.now + 3_000_000];
    net.setLink('client', 'server', { blackholes: [outage] });
    net.setLink('server', 'client', { blackholes: [outage] });
    net.runUntil(() => conn.stats().relayed, { what: 'fallback' });
    net.runUntil(() => net.now > outage[1] && !conn.stats().relayed, { what: 'second upgrade', maxTime: 60_000_000 });
    drain();
    expect(log.filter((e) => e.type === 'path-changed').map((e) => (e as { reason: string }).reason)).toEqual(['upgrade', 'fallback', 'upgrade']);
    transfer(net, conn, sconn, 1 << 20);
    expect(sconn.path.key).toBe('client');
  });

  it('follows a NAT rebinding of the client on its direct multipath path mid-transfer: the server validates the new address and stays direct', () => {
    const { net, conn, sconn, log, drain } = setup('paths multipath rebinding');
    net.runUntil(() => !conn.stats().relayed, { what: 'upgrade' });
    expect(conn.stats().multipath).toBe(true);
    expect(conn.paths().find((p) => p.status === 'active')?.id).toBe(1);
    let rebound = false;
    let relayAtRebind = 0;
    transfer(net, conn, sconn, 4 << 20, () => {
      if (!rebound && conn.stats().bytesSent > 1 << 20) {
        rebound = true;
        relayAtRebind = counts(net).relay;
        net.rebind('client', 'client-natted');
      }
    });
    drain();
    expect(rebound).toBe(true);
    // The server sends to the new mapping, validated; the client never left its direct path.
    expect(sconn.path.key).toBe('client-natted');
    expect(sconn.paths().find((p) => p.status === 'active')).toMatchObject({ addr: { key: 'client-natted' }, validated: true });
    expect(log.filter((e) => e.type === 'path-changed').map((e) => (e as { reason: string }).reason)).toEqual(['upgrade']);
    expect(conn.stats().relayed).toBe(false);
    expect(counts(net).relay - relayAtRebind).toBeLessThan(50);
    transfer(net, sconn, conn, 1 << 20);
  });

  it('answers a server’s off-path probe with a PATH_RESPONSE padded to 1200 bytes, to the probe’s source (n0 NAT traversal, as noq)', () => {
    const net = new SimNetwork(testSeed('paths off-path response'));
    const serverKey = SecretKey.fromBytes(net.rng.bytes(32));
    // The server advertises nothing; the client names its own address in REACH_OUT, so the only
    // datagrams from the server to 'client' are the off-path probes.
    const server = net.addNode('server', { secretKey: serverKey.toBytes(), alpns: [alpn], resolvePath: (a) => (a.ip.join('.') === '10.0.0.2' && a.port === 5000 ? { key: 'client' } : undefined) });
    const client = net.addNode('client', { secretKey: net.rng.bytes(32), directAddresses: () => [{ ip: new Uint8Array([10, 0, 0, 2]), port: 5000 }] });
    net.setLink('client', `${RELAY_PREFIX}server`, { latency: RELAY_LATENCY });
    net.setLink('server', `${RELAY_PREFIX}client`, { latency: RELAY_LATENCY });
    const direct: Array<{ from: string; size: number }> = [];
    net.onSend = (from, to, data) => {
      if (!to.startsWith(RELAY_PREFIX)) direct.push({ from, size: data.length });
    };
    const conn = client.endpoint.connect(net.now, relayPath('server'), { serverKey: serverKey.public().toBytes(), alpn });
    net.runUntil(() => !conn.stats().relayed, { what: 'a direct path from the probes', maxTime: 10_000_000 });
    void server;
    const probes = direct.filter((d) => d.from === 'server');
    const answers = direct.filter((d) => d.from === 'client');
    expect(probes.length).toBeGreaterThan(0);
    // Probes are unpadded; every datagram the client sent to the probe's source is 1200 bytes
    // (the padded PATH_RESPONSE, and the challenge of the path it then opened there).
    expect(Math.max(...probes.slice(0, 1).map((p) => p.size))).toBeLessThan(100);
    expect(answers.length).toBeGreaterThan(0);
    for (const a of answers.slice(0, 2)) expect(a.size).toBeGreaterThanOrEqual(1200);
  });

  it('keeps the relay path alive while the connection runs direct: a PING on it every keep-alive interval, from both sides', () => {
    const { net, conn, sconn } = setup('paths per-path keep-alive');
    net.runUntil(() => !conn.stats().relayed, { what: 'upgrade' });
    const before = counts(net);
    const start = net.now;
    // 30 s idle (keep-alive interval 5 s): the relay path hears from each side about six times.
    net.runUntil(() => net.now - start >= 30_000_000, { what: '30 s idle', maxTime: 31_000_000 });
    const after = counts(net);
    expect(after.relay - before.relay).toBeGreaterThanOrEqual(5);
    expect(after.relay - before.relay).toBeLessThanOrEqual(8);
    expect(after.relayDown - before.relayDown).toBeGreaterThanOrEqual(5);
    const relayPathOf = (c: Connection) => c.paths().find((p) => p.relayed);
    expect(relayPathOf(conn)).toMatchObject({ validated: true });
    expect(relayPathOf(sconn)).toMatchObject({ validated: true });
    expect(conn.stats().relayed).toBe(false);
    expect(conn.isClosed || sconn.isClosed).toBe(false);
  });

  it('keeps retrying a direct path that is blocked at first, with backoff, and upgrades once it opens', () => {
    let blockedUntil = 0;
    const { net, conn, sconn, log, drain } = setup('paths late direct', {
      links: (n) => {
        blockedUntil = n.now + 10_000_000;
        n.setLink('client', 'server', { blackholes: [[0, blockedUntil]] });
      },
    });
    const probesWhileBlocked = () => counts(net).direct;
    net.runUntil(() => net.now >= blockedUntil, { what: 'blocked period' });
    // Backoff: a handful of probe datagrams over ten seconds, not a flood.
    expect(probesWhileBlocked()).toBeGreaterThan(0);
    expect(probesWhileBlocked()).toBeLessThan(30);
    expect(conn.stats().relayed).toBe(true);
    net.runUntil(() => !conn.stats().relayed, { what: 'upgrade after unblock', maxTime: 40_000_000 });
    drain();
    expect(log.some((e) => e.type === 'path-changed' && e.reason === 'upgrade')).toBe(true);
    transfer(net, conn, sconn, 256 << 10);
  });

  it('stays on the relay with a server that does not advertise migration support (like iroh)', () => {
    const { net, conn, sconn } = setup('paths no advert', { advertise: false });
    const until = net.now + 10_000_000;
    transfer(net, conn, sconn, 1 << 20);
    net.runUntil(() => net.now >= until, { what: '10 s' });
    expect(conn.stats().relayed).toBe(true);
    expect(conn.stats().pathChanges).toBe(0);
    expect(counts(net).direct).toBe(0);
  });

  it('makes one connection from a first flight sent over relay and UDP, answered on the path heard first', () => {
    const { net, server, conn, sconn } = setup('paths duplicate initials', { dialDirect: true });
    // Direct is faster, so the server heard that Initial first and answered there.
    expect(server.endpoint.connections.length).toBe(1);
    expect(server.endpoint.stats.connections).toBe(1);
    expect(sconn.path.key).toBe('client');
    expect(conn.path.key).toBe('server');
    // The relayed copy reached the server too (it was dropped as a duplicate, not a new connection).
    expect(counts(net).relay).toBeGreaterThan(0);
    transfer(net, conn, sconn, 256 << 10);
    expect(server.endpoint.connections.length).toBe(1);
  });

  it('falls back to the relay it dialled when the direct path it started on dies', () => {
    const { net, conn, sconn, log, drain } = setup('paths dialled fallback', { dialDirect: true });
    expect(conn.stats().relayed).toBe(false);
    let blocked = false;
    transfer(net, conn, sconn, 2 << 20, () => {
      if (!blocked && conn.stats().bytesSent > 512 << 10) {
        blocked = true;
        net.setLink('client', 'server', { blackholes: [[net.now, Infinity]] });
      }
    });
    drain();
    expect(log.some((e) => e.type === 'path-changed' && e.reason === 'fallback')).toBe(true);
    expect(sconn.path.key).toBe(`${RELAY_PREFIX}client`);
  });
});
