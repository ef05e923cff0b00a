/**
 * Endpoints with relays, over real sockets on 127.0.0.1 with the sdnet relay in-process
 * (issue "Endpoint paths"): going online with a home relay chosen by `/ping` latency,
 * reaching a peer known only by id + relay URL, relay-only transfers, the upgrade from the
 * relay to a direct path, duplicate first flights over relay and UDP making one connection,
 * a relay restart under a transfer, and relays opened on demand being closed when idle.
 *
 * No timing is asserted: waits are bounded only to turn a stall into a failure.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { Endpoint, EndpointAddr, type Connection } from '../../src/index.ts';
import { echo, sendHashed, serveEchoHash } from '../helpers/echo-hash.ts';
import { pattern } from '../helpers/iroh.ts';
import { failOnEscapes, scrape, startTestRelay, until } from '../helpers/relay-test-utils.ts';

failOnEscapes();

const ALPN = 'sdnet/paths-test/0';
const MiB = 1024 * 1024;

const cleanups: Array<() => Promise<unknown> | unknown> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function relay(options: Parameters<typeof startTestRelay>[0] = {}) {
  const r = await startTestRelay(options);
  cleanups.push(() => r.close({ graceful: false }));
  return r;
}

async function endpoint(options: Parameters<typeof Endpoint.bind>[0] = {}): Promise<Endpoint> {
  const ep = await Endpoint.bind({ bindAddr: ['127.0.0.1:0'], ...options });
  cleanups.push(() => ep.close({ graceMs: 100 }));
  return ep;
}

/** A server endpoint answering echo/hash streams. */
async function server(options: Parameters<typeof Endpoint.bind>[0] = {}): Promise<Endpoint> {
  const ep = await endpoint({ alpns: [ALPN], ...options });
  void serveEchoHash(ep).catch(() => undefined);
  return ep;
}

const relayBytes = async (r: Awaited<ReturnType<typeof relay>>): Promise<number> => (await scrape(r)).get('relay_bytes_relayed_total') ?? 0;

describe('home relay and online()', () => {
  it('goes online with its relay, and its address names it next to the direct addresses', async () => {
    const r = await relay();
    const ep = await endpoint({ relays: [r.url] });
    const home = await ep.online();
    expect(home.toString()).toBe(r.url);
    expect(ep.homeRelay?.toString()).toBe(r.url);
    const addr = ep.addr();
    expect(addr.relayUrls.map(String)).toEqual([r.url]);
    expect(addr.directAddresses.map(String)).toEqual(ep.boundSockets.map(String));
    expect(ep.relays()).toMatchObject([{ home: true, state: 'connected' }]);
  });

  it('chooses as home the relay that answers /ping, among several', async () => {
    const live = await relay();
    // A web server that is not a relay: /ping answers 404.
    const notRelay: Server = createServer((_, res) => res.writeHead(404).end());
    await new Promise<void>((done) => notRelay.listen(0, '127.0.0.1', done));
    cleanups.push(() => new Promise((done) => notRelay.close(done)));
    const deadUrl = `http://127.0.0.1:${(notRelay.address() as AddressInfo).port}/`;
    const ep = await endpoint({ relays: [deadUrl, live.url] });
    expect((await ep.online()).toString()).toBe(live.url);
    const info = ep.relays().find((x) => x.home)!;
    expect(info.url.toString()).toBe(live.url);
    expect(info.latencyMs).toBeGreaterThan(0);
    // The one that failed its probe was never connected to.
    expect(ep.relays().map((x) => x.url.toString())).toEqual([live.url]);
  });

  it('online() without relays fails with ERR_NO_RELAYS; an abort signal ends the wait', async () => {
    const ep = await endpoint();
    await expect(ep.online()).rejects.toMatchObject({ code: 'ERR_NO_RELAYS' });
    // A relay that never answers: online() waits until aborted.
    const silent = await endpoint({ relays: ['http://127.0.0.1:9/'] });
    await expect(silent.online({ signal: AbortSignal.timeout(300) })).rejects.toMatchObject({ name: 'TimeoutError' });
    expect(silent.addr().relayUrls.map(String)).toEqual(['http://127.0.0.1:9/']);
  });
});

describe('relayed connections', () => {
  it('relay only (no UDP at all): echo and 16 MiB verified by hash, and the relay carried them', async () => {
    const r = await relay();
    const a = await server({ bindAddr: [], relays: [r.url] });
    const b = await endpoint({ bindAddr: [], relays: [r.url] });
    const url = await a.online();
    expect(a.addr().directAddresses).toEqual([]);
    const conn = await b.connect(EndpointAddr.from({ id: a.id, relayUrls: [url] }), ALPN);
    expect(conn.path).toMatchObject({ kind: 'relay' });
    expect(await echo(conn, 'hello over the relay')).toBe('hello over the relay');
    const { block } = pattern(3);
    const result = await sendHashed(conn, block, 16 * MiB);
    expect(result.peerHash).toBe(result.sentHash);
    expect(conn.stats().relayed).toBe(true);
    expect(await relayBytes(r)).toBeGreaterThanOrEqual(16 * MiB);
    expect(b.stats().paths.udpSent).toBe(0);
  });

  it('upgrades a connection that started on the relay to the direct path, after which the relay carries (almost) nothing', async () => {
    const r = await relay();
    const a = await server({ relays: [r.url] });
    const b = await endpoint({ relays: [r.url] });
    await Promise.all([a.online(), b.online()]);
    // B knows only A's id and relay: the connection starts there.
    const conn = await b.connect(EndpointAddr.from({ id: a.id, relayUrls: [r.url] }), ALPN);
    expect(conn.path).toMatchObject({ kind: 'relay' });
    // A told B its direct addresses; B validates one and moves (bounded wait, not a timing check).
    await until(() => !conn.stats().relayed, 'the move to the direct path', 10_000);
    expect(conn.path).toMatchObject({ kind: 'udp' });
    expect(conn.path.key).toBe(`udp:${a.boundSockets[0]!.toString()}`);
    const before = await relayBytes(r);
    const { block } = pattern(5);
    const result = await sendHashed(conn, block, 16 * MiB);
    expect(result.peerHash).toBe(result.sentHash);
    const after = await relayBytes(r);
    // Stragglers and relay keep-alives only: far below 1 % of the transfer.
    expect(after - before).toBeLessThan(64 * 1024);
    expect(conn.stats().pathChanges).toBe(1);
  });

  it('duplicate first flights over the relay and UDP make exactly one connection', async () => {
    const r = await relay();
    const a = await server({ relays: [r.url] });
    const b = await endpoint({ relays: [r.url] });
    await Promise.all([a.online(), b.online()]);
    const conn = await b.connect(a.addr(), ALPN);
    expect(await echo(conn, 'once')).toBe('once');
    // The relayed copy of the Initial reached A too …
    await until(() => a.stats().paths.relayReceived > 0, 'the relayed copy of the first flight', 5_000);
    await new Promise((done) => setTimeout(done, 100));
    // … and joined the connection instead of making a second one.
    expect(a.stats().connections).toBe(1);
    expect(conn.path).toMatchObject({ kind: 'udp' });
    expect(await echo(conn, 'still one')).toBe('still one');
    expect(a.stats().connections).toBe(1);
  });

  it('carries a transfer across a relay restart (relay only): QUIC retransmits through the outage', async () => {
    const first = await startTestRelay();
    const port = Number(new URL(first.url).port);
    let current = first;
    cleanups.push(() => current.close({ graceful: false }));
    const a = await server({ bindAddr: [], relays: [first.url] });
    const b = await endpoint({ bindAddr: [], relays: [first.url] });
    await Promise.all([a.online(), b.online()]);
    const conn: Connection = await b.connect(EndpointAddr.from({ id: a.id, relayUrls: [first.url] }), ALPN);
    const { block } = pattern(7);
    let restarted = false;
    const result = await sendHashed(conn, block, 24 * MiB, async (sent) => {
      if (restarted || sent < 8 * MiB) return;
      restarted = true;
      await first.close({ graceful: false });
      await new Promise((done) => setTimeout(done, 200));
      current = await startTestRelay({ port });
    });
    expect(restarted).toBe(true);
    expect(result.peerHash).toBe(result.sentHash);
    // Both endpoints reconnected to the restarted relay.
    expect(current.stats().endpoints).toBe(2);
    expect(conn.stats().relayed).toBe(true);
  });

  it('a dial to an address listing 200 direct addresses and 5 relays sends its first flight to at most 8 + 2 of them', async () => {
    const b = await endpoint();
    const target = await endpoint();
    // TEST-NET-1 addresses (nothing answers) and relays nobody runs.
    const addr = EndpointAddr.from({
      id: target.id,
      directAddresses: Array.from({ length: 200 }, (_, i) => `192.0.2.${1 + (i % 250)}:${1000 + i}`),
      relayUrls: Array.from({ length: 5 }, (_, i) => `http://127.0.0.1:${9 + i}/`),
    });
    const attempt = b.connect(addr, ALPN, { signal: AbortSignal.timeout(250) });
    await expect(attempt).rejects.toBeDefined();
    const stats = b.stats().paths;
    // One Initial per address and retransmission (a PTO or two within 250 ms), never 200.
    expect(stats.udpSent).toBeGreaterThanOrEqual(8);
    expect(stats.udpSent).toBeLessThanOrEqual(8 * 4);
    expect(b.relays().length).toBeLessThanOrEqual(2);
  });

  it('opens a relay to reach a peer whose home relay is another one, and closes it when idle', async () => {
    const r1 = await relay();
    const r2 = await relay();
    const a = await server({ bindAddr: [], relays: [r1.url] });
    const b = await endpoint({ bindAddr: [], relays: [r2.url], relayIdleTimeoutMs: 300 });
    await Promise.all([a.online(), b.online()]);
    const conn = await b.connect(EndpointAddr.from({ id: a.id, relayUrls: [r1.url] }), ALPN);
    expect(await echo(conn, 'via the peer relay')).toBe('via the peer relay');
    expect(b.relays().map((x) => [x.url.toString(), x.home])).toEqual(
      expect.arrayContaining([
        [r2.url, true],
        [r1.url, false],
      ]),
    );
    conn.close(0, 'done');
    await conn.closed;
    await until(() => b.relays().length === 1, 'the idle relay to close', 5_000);
    expect(b.relays()[0]!.url.toString()).toBe(r2.url);
  });
});
