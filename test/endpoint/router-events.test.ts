/**
 * The endpoint additions of the device-layer issue: the `Router` (iroh's shape; every ALPN
 * registered before anything is accepted; the after-handshake hook sees the authenticated id
 * and ALPN and refuses with an application code before the handler runs), typed endpoint
 * and connection events (online/offline, home relay changed, connection opened/closed, path
 * changed) with AbortSignal support, and abort listeners removed when a wait ends normally.
 *
 * Real sockets on 127.0.0.1, the relay in-process. No timing is asserted.
 */
import { getEventListeners } from 'node:events';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { Endpoint, EndpointAddr, type Connection, type ConnectionError, type EndpointEvents } from '../../src/index.ts';
import { CloseCode, Router, type ProtocolHandler } from '../../src/protocols/index.ts';
import { failOnEscapes, startTestRelay, until } from '../helpers/relay-test-utils.ts';

failOnEscapes();

const cleanups: Array<() => Promise<unknown> | unknown> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function endpoint(options: Parameters<typeof Endpoint.bind>[0] = {}): Promise<Endpoint> {
  const ep = await Endpoint.bind({ bindAddr: ['127.0.0.1:0'], ...options });
  cleanups.push(() => ep.close({ graceMs: 50 }));
  return ep;
}

const addrOf = (ep: Endpoint, relay?: string): EndpointAddr =>
  EndpointAddr.from({ id: ep.id, directAddresses: relay ? [] : ep.boundSockets, relayUrls: relay ? [relay] : [] });

/** A handler that echoes one stream per connection and records what it saw. */
function echoHandler(): ProtocolHandler & { seen: Connection[]; shutdowns: number } {
  const h = {
    seen: [] as Connection[],
    shutdowns: 0,
    async accept(conn: Connection) {
      h.seen.push(conn);
      const { readable, writable } = await conn.acceptBi();
      await readable.pipeTo(writable);
    },
    shutdown() {
      h.shutdowns++;
    },
  };
  return h;
}

async function roundTrip(conn: Connection, text: string): Promise<string> {
  const { readable, writable } = await conn.openBi();
  const w = writable.getWriter();
  await w.write(new TextEncoder().encode(text));
  await w.close();
  let out = '';
  for await (const chunk of readable) out += new TextDecoder().decode(chunk);
  return out;
}

describe('Router', () => {
  it('routes each ALPN to its handler; nothing is accepted before spawn()', async () => {
    const server = await endpoint();
    const client = await endpoint();
    // Before spawn the endpoint accepts no ALPN at all: the dial fails (bounded by a short handshake timeout).
    const early = await client.connect(addrOf(server), 'a/1', { settings: { handshakeTimeout: 600 } }).then(
      () => 'connected',
      (e: { code?: string }) => e.code,
    );
    expect(early).toBe('ERR_QUIC_HANDSHAKE_TIMEOUT');
    expect(server.stats().dropped['not-accepting']).toBeGreaterThan(0);
    const a = echoHandler();
    const b = echoHandler();
    const router = Router.builder(server).accept('a/1', a).accept('b/1', b).spawn();
    cleanups.push(() => router.shutdown());
    expect(router.alpns).toEqual(['a/1', 'b/1']);
    const ca = await client.connect(addrOf(server), 'a/1');
    const cb = await client.connect(addrOf(server), 'b/1');
    expect(await roundTrip(ca, 'to a')).toBe('to a');
    expect(await roundTrip(cb, 'to b')).toBe('to b');
    expect(a.seen.map((c) => c.alpn)).toEqual(['a/1']);
    expect(b.seen.map((c) => c.alpn)).toEqual(['b/1']);
    expect(a.seen[0]!.remoteId.equals(client.id)).toBe(true);
    // An ALPN nobody registered fails the TLS handshake (no_application_protocol).
    await expect(client.connect(addrOf(server), 'c/1')).rejects.toMatchObject({ code: 'ERR_TLS_NO_ALPN' });
  });

  it('refuses in the after-handshake hook with an application code; the handler never runs', async () => {
    const server = await endpoint();
    const client = await endpoint();
    const allowed = await endpoint();
    const h = echoHandler();
    const hookCalls: string[] = [];
    const router = Router.builder(server)
      .accept('a/1', h)
      .afterHandshake(({ remoteId, alpn }) => {
        hookCalls.push(`${remoteId.fmtShort()} ${alpn}`);
        return remoteId.equals(allowed.id) ? { accept: true } : { accept: false, code: CloseCode.NOT_PAIRED, reason: 'not paired' };
      })
      .spawn();
    cleanups.push(() => router.shutdown());
    const refused = await client.connect(addrOf(server), 'a/1');
    const error = (await refused.closed) as ConnectionError;
    expect(error).toMatchObject({ kind: 'application', remote: true, applicationCode: CloseCode.NOT_PAIRED, reason: 'not paired' });
    expect(h.seen).toEqual([]);
    const ok = await allowed.connect(addrOf(server), 'a/1');
    expect(await roundTrip(ok, 'hi')).toBe('hi');
    expect(hookCalls).toEqual([`${client.id.fmtShort()} a/1`, `${allowed.id.fmtShort()} a/1`]);
  });

  it('closes with HANDLER_FAILED when a handler throws, keeps serving, and shutdown() calls each handler once', async () => {
    const server = await endpoint();
    const client = await endpoint();
    const failures: string[] = [];
    const good = echoHandler();
    const router = Router.builder(server)
      .accept('bad/1', {
        accept: async () => {
          throw new Error('boom');
        },
      })
      .accept('good/1', good)
      .onEvent((e) => failures.push(e.type))
      .spawn();
    const bad = await client.connect(addrOf(server), 'bad/1');
    expect(await bad.closed).toMatchObject({ applicationCode: CloseCode.HANDLER_FAILED });
    expect(failures).toEqual(['handler-failed']);
    expect(await roundTrip(await client.connect(addrOf(server), 'good/1'), 'still')).toBe('still');
    const addr = addrOf(server);
    await router.shutdown();
    await router.shutdown();
    expect(good.shutdowns).toBe(1);
    expect(router.isShutdown).toBe(true);
    // The router closed the endpoint.
    await expect(client.connect(addr, 'good/1', { settings: { handshakeTimeout: 500 } })).rejects.toBeDefined();
  });

  it('Incoming shows the ALPN and, after the handshake, the authenticated id before accept() or refuse()', async () => {
    const server = await endpoint({ alpns: ['x/1', 'y/1'] });
    const client = await endpoint();
    const dial = client.connect(addrOf(server), 'y/1');
    for await (const incoming of server.accept()) {
      const { remoteId, alpn } = await incoming.handshake();
      expect(incoming.alpn).toBe('y/1');
      expect(alpn).toBe('y/1');
      expect(remoteId.equals(client.id)).toBe(true);
      incoming.refuse(0x42, 'go away');
      break;
    }
    const conn = await dial;
    expect(await conn.closed).toMatchObject({ applicationCode: 0x42, reason: 'go away', remote: true });
  });

  it('a builder refuses duplicate ALPNs and registrations after spawn', async () => {
    const server = await endpoint();
    const builder = Router.builder(server).accept('a/1', echoHandler());
    expect(() => builder.accept('a/1', echoHandler())).toThrow(expect.objectContaining({ code: 'ERR_ALPN_REGISTERED' }));
    const router = builder.spawn();
    cleanups.push(() => router.shutdown());
    expect(() => builder.accept('b/1', echoHandler())).toThrow(expect.objectContaining({ code: 'ERR_ROUTER_SPAWNED' }));
  });
});

describe('endpoint and connection events', () => {
  it('connection-opened and connection-closed on both sides, with id, ALPN and side', async () => {
    const server = await endpoint();
    const client = await endpoint();
    const events: string[] = [];
    const record = (who: string) => (e: EndpointEvents['connection-opened'] | EndpointEvents['connection-closed']) =>
      events.push(`${who} ${'side' in e ? `opened ${e.side}` : `closed ${e.error.applicationCode}`} ${e.alpn} ${e.remoteId?.fmtShort()}`);
    server.on('connection-opened', record('server'));
    server.on('connection-closed', record('server'));
    client.on('connection-opened', record('client'));
    client.on('connection-closed', record('client'));
    const router = Router.builder(server).accept('a/1', echoHandler()).spawn();
    cleanups.push(() => router.shutdown());
    const serverClosed = server.next('connection-closed');
    const conn = await client.connect(addrOf(server), 'a/1');
    expect(await roundTrip(conn, 'x')).toBe('x');
    conn.close(7, 'done');
    await serverClosed;
    await conn.closed;
    await until(() => events.length === 4, 'four events');
    expect(events.sort()).toEqual(
      [
        `client closed 7 a/1 ${server.id.fmtShort()}`,
        `client opened client a/1 ${server.id.fmtShort()}`,
        `server closed 7 a/1 ${client.id.fmtShort()}`,
        `server opened server a/1 ${client.id.fmtShort()}`,
      ].sort(),
    );
  });

  it('an aborted signal removes the listener; next() rejects with the reason and leaves no listener behind', async () => {
    const ep = await endpoint();
    const controller = new AbortController();
    let calls = 0;
    ep.on('connection-opened', () => calls++, { signal: controller.signal });
    controller.abort();
    const other = await endpoint();
    const router = Router.builder(ep).accept('a/1', echoHandler()).spawn();
    cleanups.push(() => router.shutdown());
    await other.connect(addrOf(ep), 'a/1');
    expect(calls).toBe(0);
    const c2 = new AbortController();
    const waiting = ep.next('home-relay-changed', { signal: c2.signal });
    c2.abort(new Error('stop'));
    await expect(waiting).rejects.toThrow('stop');
    expect(getEventListeners(c2.signal, 'abort')).toHaveLength(0);
  });

  it('online, path-changed (relay → direct) and offline when the relay goes away; home-relay-changed when one is chosen', async () => {
    const r = await startTestRelay();
    let relayOpen = true;
    cleanups.push(() => relayOpen && r.close({ graceful: false }));
    // Two relays, one not answering /ping: the home relay is chosen after the probes, so the
    // change from none to the live one is observable.
    const notRelay = createServer((_, res) => res.writeHead(404).end());
    await new Promise<void>((done) => notRelay.listen(0, '127.0.0.1', done));
    cleanups.push(() => new Promise((done) => notRelay.close(done)));
    const deadUrl = `http://127.0.0.1:${(notRelay.address() as AddressInfo).port}/`;
    const server = await endpoint({ relays: [deadUrl, r.url] });
    const homeChanged = server.next('home-relay-changed');
    const online = server.next('online');
    const client = await endpoint({ relays: [r.url] });
    const changed = await homeChanged;
    expect(changed.relay?.toString()).toBe(r.url);
    expect(changed.previous).toBeUndefined();
    expect((await online).relay.toString()).toBe(r.url);
    expect(server.isOnline).toBe(true);
    const router = Router.builder(server).accept('a/1', echoHandler()).spawn();
    cleanups.push(() => router.shutdown());
    await client.online();
    const pathEvents: string[] = [];
    client.on('path-changed', (e) => pathEvents.push(`endpoint ${e.reason} ${e.relayed}`));
    const conn = await client.connect(addrOf(server, r.url), 'a/1');
    conn.on('path-changed', (e) => pathEvents.push(`connection ${e.reason} ${e.relayed}`));
    expect(conn.stats().relayed).toBe(true);
    await until(() => pathEvents.length === 2, 'the upgrade to the direct path', 10_000);
    expect(pathEvents.sort()).toEqual(['connection upgrade false', 'endpoint upgrade false']);
    const offline = server.next('offline');
    relayOpen = false;
    await r.close({ graceful: false });
    expect((await offline).relay?.toString()).toBe(r.url);
    expect(server.isOnline).toBe(false);
  });
});

describe('abort listeners', () => {
  it('waits that end normally remove their abort listener (accept, openBi, acceptBi, connect, online)', async () => {
    const controller = new AbortController();
    const signal = controller.signal;
    const server = await endpoint({ alpns: ['a/1'] });
    const client = await endpoint();
    const served = (async () => {
      for await (const inc of server.accept({ signal })) {
        const conn = await inc.accept({ signal });
        for (let i = 0; i < 20; i++) {
          const { readable, writable } = await conn.acceptBi({ signal });
          await readable.pipeTo(writable);
        }
        return;
      }
    })();
    const conn = await client.connect(addrOf(server), 'a/1', { signal });
    for (let i = 0; i < 20; i++) {
      const { readable, writable } = await conn.openBi({ signal });
      const w = writable.getWriter();
      await w.write(new Uint8Array([i]));
      await w.close();
      for await (const _ of readable) void _;
    }
    await served;
    // 20 accepts, 20 opens, the connect and the iteration: without cleanup that is > 40 listeners.
    expect(getEventListeners(signal, 'abort').length).toBeLessThanOrEqual(1);
  });
});
