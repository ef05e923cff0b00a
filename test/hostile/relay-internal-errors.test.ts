/**
 * No exception escapes a timer or a socket callback of the relay server or the relay client
 * (reliability.md §5.L.1). Each path found by reading them that can throw — because it calls
 * something the embedder supplies (logger, crypto provider, access hook, transport, listeners)
 * — has a case here: the error closes the one connection it concerns, is counted
 * (`relay_internal_errors_total` / `RelayClientStats.internalErrors`), the rest keeps working,
 * and `failOnEscapes` fails the test if anything reaches `uncaughtException` or
 * `unhandledRejection`.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { defaultCryptoProvider, type CryptoProvider } from '../../src/transport/crypto/index.ts';
import { nodeWebSocketTransport, type RelayClient, type RelaySocket, type RelayTransport } from '../../src/relay/client/index.ts';
import { encodeDatagramFrame, FrameType } from '../../src/relay/protocol/index.ts';
import type { Logger, RelayServerHandle, RelayServerOptions } from '../../relay-server/src/index.ts';
import { failOnEscapes, RawRelayClient, scrape, startTestRelay, testClient, until } from '../helpers/relay-test-utils.ts';

failOnEscapes();

const cleanups: Array<() => Promise<unknown> | unknown> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function relay(options: RelayServerOptions = {}): Promise<RelayServerHandle> {
  const r = await startTestRelay(options);
  cleanups.push(() => r.close({ graceful: false }));
  return r;
}

function client(r: RelayServerHandle, options: Parameters<typeof testClient>[1] = {}): RelayClient {
  const c = testClient(r.url, options);
  cleanups.push(() => c.close());
  return c;
}

function raw(r: RelayServerHandle): RawRelayClient {
  const c = new RawRelayClient(r.url);
  cleanups.push(() => c.close());
  return c;
}

/** Two clients that exchange a datagram on `check()`. */
async function pair(r: RelayServerHandle): Promise<{ check: () => Promise<void>; a: RelayClient; b: RelayClient }> {
  const a = client(r);
  const b = client(r);
  await Promise.all([a.connect({ signal: AbortSignal.timeout(10_000) }), b.connect({ signal: AbortSignal.timeout(10_000) })]);
  let n = 0;
  const got = new Set<number>();
  b.on('datagrams', (d) => got.add(d.datagrams[0]![0]!));
  return {
    a,
    b,
    check: async () => {
      const tag = ++n % 256;
      a.send(b.endpointId, Uint8Array.of(tag));
      await until(() => got.has(tag), `datagram ${tag}`);
    },
  };
}

/** The default provider with one method made to throw while `when(args)` holds. */
function faultyCrypto(method: 'randomBytes' | 'blake3DeriveKey', when: (args: unknown[]) => boolean): CryptoProvider {
  return new Proxy(defaultCryptoProvider, {
    get(target, prop, receiver) {
      const value = Reflect.get(target, prop, receiver) as unknown;
      if (prop !== method || typeof value !== 'function') return value;
      return (...args: unknown[]) => {
        if (when(args)) throw new Error(`injected ${method} failure`);
        return (value as (...a: unknown[]) => unknown).apply(target, args);
      };
    },
  });
}

const metric = async (r: RelayServerHandle, name: string): Promise<number> => (await scrape(r)).get(name) ?? 0;

describe('relay server: an exception in one client’s handler or timer closes that client only', () => {
  it('a logger that throws on every call: the relay still starts, relays, closes bad clients and shuts down', async () => {
    let calls = 0;
    const throwing = (): never => {
      calls++;
      throw new Error('log sink is broken');
    };
    const logger: Logger = { level: 'debug', debug: throwing, info: throwing, warn: throwing, error: throwing };
    const r = await relay({ logger, access: { tokens: ['t'], allowEndpoints: [] } });
    // Denied (logged at info), a protocol error (logged at debug), then honest traffic.
    const denied = raw(r);
    await expect(denied.authenticate()).rejects.toThrow(/not authorized/);
    const a = client(r, { token: 't' });
    const b = client(r, { token: 't' });
    await Promise.all([a.connect(), b.connect()]);
    const bad = new RawRelayClient(r.url, { headers: { Authorization: 'Bearer t' } });
    cleanups.push(() => bad.close());
    await bad.authenticate();
    bad.send(Uint8Array.of(0x2a, 1, 2));
    expect(await bad.closed).toBe(1002);
    const got = new Promise((res) => b.once('datagrams', res));
    a.send(b.endpointId, Uint8Array.of(1));
    await got;
    await r.close();
    expect(calls).toBeGreaterThan(3);
    expect(r.stats().internalErrors).toBe(0);
  });

  it('the keep-alive timer: a crypto provider failing to make ping data closes the idle client it was for, counted; busy clients are untouched', async () => {
    // Only the relay's ping payloads are 8 random bytes.
    const r = await relay({ crypto: faultyCrypto('randomBytes', ([n]) => n === 8), timing: { pingIntervalMs: 300, pingJitterMinMs: 0, pingJitterMaxMs: 50 } });
    const honest = await pair(r);
    // The honest pair keeps talking (any frame postpones the relay's ping); the idle one does not.
    const talk = setInterval(() => {
      honest.a.send(honest.b.endpointId, Uint8Array.of(0));
      honest.b.send(honest.a.endpointId, Uint8Array.of(0));
    }, 50);
    cleanups.push(() => clearInterval(talk));
    const idle = raw(r);
    await idle.authenticate();
    expect(await idle.closed).not.toBe(1000);
    expect(await metric(r, 'relay_internal_errors_total{where="tick"}')).toBe(1);
    expect(await metric(r, 'relay_disconnects_total{reason="internal_error"}')).toBe(1);
    await honest.check();
    expect(r.stats().clients).toBe(2);
  });

  it('the upgrade: a crypto provider failing to make a challenge closes that connection, counted', async () => {
    let fail = false;
    const r = await relay({ crypto: faultyCrypto('randomBytes', ([n]) => fail && n === 16) });
    const honest = await pair(r);
    fail = true;
    const victim = raw(r);
    await victim.opened;
    await victim.closed;
    fail = false;
    expect(await metric(r, 'relay_internal_errors_total{where="start"}')).toBe(1);
    expect(r.stats().handshaking).toBe(0);
    await honest.check();
  });

  it('a message handler: signature verification that throws closes that client, counted', async () => {
    let fail = false;
    const r = await relay({ crypto: faultyCrypto('blake3DeriveKey', () => fail) });
    const honest = await pair(r);
    const victim = raw(r);
    const challenge = await victim.frame(1);
    expect(challenge[0]).toBe(FrameType.ServerChallenge);
    fail = true;
    await expect(victim.authenticate()).rejects.toThrow();
    fail = false;
    await victim.closed;
    expect(await metric(r, 'relay_internal_errors_total{where="message"}')).toBe(1);
    await honest.check();
  });

  it('access hooks that throw, reject, or return nonsense deny the client; nothing escapes', async () => {
    const behaviours: Array<() => unknown> = [
      () => {
        throw new Error('hook broke');
      },
      () => Promise.reject(new Error('hook rejected')),
      () => null,
      () => Promise.resolve(undefined),
    ];
    for (const behave of behaviours) {
      const r = await relay({ accessHook: behave as RelayServerOptions['accessHook'] });
      const c = raw(r);
      await expect(c.authenticate()).rejects.toThrow(/access control failed|not authorized/);
      expect(r.stats().clients).toBe(0);
    }
  });

  it('a datagram for a client whose socket broke mid-forward is dropped, the sender stays connected', async () => {
    const r = await relay();
    const honest = await pair(r);
    const sender = raw(r);
    await sender.authenticate();
    const sink = raw(r);
    await sink.authenticate();
    // Cut the recipient's TCP connection under the relay while the sender streams to it.
    (sink.ws as unknown as { _socket: import('node:net').Socket })._socket.destroy();
    for (let i = 0; i < 200; i++) sender.send(encodeDatagramFrame(4, sink.secretKey.public().bytes, 0, 0, new Uint8Array(1000)));
    await until(() => r.stats().clients === 3, 'the broken recipient to be released');
    expect(r.stats().internalErrors).toBe(0);
    expect(sender.closeCode).toBeUndefined();
    await honest.check();
  });
});

/** The node transport, with the sockets it opens wrapped so a test can make them throw. */
function wrappedTransport(faults: { send?: boolean; close?: boolean }): RelayTransport {
  const inner = nodeWebSocketTransport();
  return async (req) => {
    const s = await inner(req);
    const wrapped: RelaySocket = {
      get protocol() {
        return s.protocol;
      },
      get bufferedAmount() {
        return s.bufferedAmount;
      },
      send(frame) {
        if (faults.send) throw new Error('injected send failure');
        s.send(frame);
      },
      close(code, reason) {
        s.close(code, reason);
        if (faults.close) throw new Error('injected close failure');
      },
      get onMessage() {
        return s.onMessage;
      },
      set onMessage(h) {
        s.onMessage = h;
      },
      get onClose() {
        return s.onClose;
      },
      set onClose(h) {
        s.onClose = h;
      },
    };
    return wrapped;
  };
}

describe('relay client: an exception in a socket callback or timer ends that connection, counted, and the client reconnects', () => {
  it('a transport that throws instead of rejecting: attempts fail, are counted and retried; connect() rejects only on abort', async () => {
    let calls = 0;
    const transport: RelayTransport = () => {
      calls++;
      throw new Error('transport exploded');
    };
    const r = await relay();
    const c = client(r, { transport });
    await expect(c.connect({ signal: AbortSignal.timeout(300) })).rejects.toThrow();
    expect(calls).toBeGreaterThan(1);
    expect((c.stats as {internalErrors?: number}).internalErrors ?? -1).toBe(calls);
    expect(c.stats.connectAttempts).toBe(calls);
  });

  it('the keep-alive timer: a socket whose send throws when the client pings ends that connection; the client reconnects', async () => {
    const r = await relay();
    const faults = { send: false, close: false };
    const c = client(r, { transport: wrappedTransport(faults), pingIntervalMs: 100 });
    await c.connect();
    const disconnected = new Promise<{ error: Error }>((res) => c.once('disconnected', res));
    faults.send = true;
    const d = await disconnected;
    expect(d.error.message).toMatch(/internal error.*injected send failure/);
    faults.send = false;
    await until(() => c.state === 'connected' && c.stats.connections === 2, 'the reconnect');
    expect((c.stats as {internalErrors?: number}).internalErrors ?? -1).toBe(1);
  });

  it('a socket whose close throws as well, while the error is being handled: the client still schedules its reconnect', async () => {
    const r = await relay();
    const faults = { send: false, close: false };
    const c = client(r, { transport: wrappedTransport(faults), pingIntervalMs: 100 });
    await c.connect();
    faults.send = true;
    faults.close = true;
    // At least once: while the faults stay on, a reconnect attempt fails as well, and a
    // loaded machine may poll only after that second disconnect (=== 1 then never held).
    await until(() => c.stats.disconnects >= 1, 'the failed connection to end');
    faults.send = false;
    faults.close = false;
    await until(() => c.state === 'connected' && c.stats.connections === 2, 'the reconnect');
    expect((c.stats as {internalErrors?: number}).internalErrors ?? -1).toBeGreaterThanOrEqual(2);
  });

  it('a listener and the listener-error handler both throwing: the client still reconnects after a disconnect', async () => {
    const r = await relay({ access: { tokens: ['a'] } });
    const c = client(r, {
      token: 'a',
      onListenerError: () => {
        throw new Error('the error handler is broken too');
      },
    });
    c.on('disconnected', () => {
      throw new Error('listener broke');
    });
    c.on('connected', () => {
      throw new Error('listener broke');
    });
    await c.connect();
    // Revoke, then restore access: the relay closes the client, which must come back.
    r.updateAccess({ tokens: ['b'] });
    await until(() => c.stats.disconnects >= 1, 'the revocation to disconnect the client');
    r.updateAccess({ tokens: ['a'] });
    await until(() => c.state === 'connected' && c.stats.connections >= 2, 'the reconnect');
  });

  it('a datagram callback that throws loses that delivery only; the connection and the next datagrams are fine', async () => {
    const r = await relay();
    let n = 0;
    const errors: unknown[] = [];
    const original = console.error;
    console.error = (...args: unknown[]) => errors.push(args);
    cleanups.push(() => {
      console.error = original;
    });
    const b = client(r, {
      onDatagrams: () => {
        n++;
        throw new Error('callback broke');
      },
    });
    const a = client(r);
    await Promise.all([a.connect(), b.connect()]);
    a.send(b.endpointId, Uint8Array.of(1));
    a.send(b.endpointId, Uint8Array.of(2));
    await until(() => n === 2, 'both datagrams delivered');
    expect(b.state).toBe('connected');
    expect(errors.length).toBe(2);
  });
});
