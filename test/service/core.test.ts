/**
 * The device service in-process, two devices on loopback with the sdnet relay in-process,
 * paired through the registry fixture: paired → connected on both sides, messages both ways,
 * request/response (and its failures), RTT reported by the health check, Goodbye on shutdown
 * and reconnection after a restart, a simultaneous dial settled identically on both sides,
 * unpairing, the module seats (errors without a module; progress events and protocols with
 * one), the data-dir lock, and every declared event emitted.
 *
 * Timers are shortened through `timing`; no timing is asserted (waits only bound stalls).
 */
import { createSocket } from 'node:dgram';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { EndpointAddr, SecretKey, type PublicKey } from '../../src/index.ts';
import { CloseCode, MESSAGING_ALPN } from '../../src/protocols/index.ts';
import { Core, NetworkingService, type CoreOptions, type NetworkingEvents } from '../../src/service/index.ts';
import type { ModuleContext } from '../../src/service/modules.ts';
import { failOnEscapes, startTestRelay, until } from '../helpers/relay-test-utils.ts';
import { pairDataDirs } from '../helpers/pair-fixture.ts';

failOnEscapes();

const cleanups: Array<() => Promise<unknown> | unknown> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

const FAST = { healthIntervalMs: 300, healthTimeoutMs: 600, healthMaxMisses: 2, reconnectMinMs: 50, reconnectMaxMs: 500, dialTimeoutMs: 3000 };

async function tempDir(): Promise<string> {
  const d = await mkdtemp(join(tmpdir(), 'sdnet-core-'));
  cleanups.push(() => rm(d, { recursive: true, force: true }));
  return d;
}

async function relay(): Promise<string> {
  const r = await startTestRelay();
  cleanups.push(() => r.close({ graceful: false }));
  return r.url;
}

async function core(dataDir: string, relayUrl: string, extra: Partial<CoreOptions> = {}): Promise<Core> {
  const c = await Core.init({ dataDir, relays: [relayUrl], bind: ['127.0.0.1:0'], timing: FAST, ...extra });
  cleanups.push(() => c.shutdown());
  return c;
}

/** Two paired data dirs and a relay. */
async function pairedDirs(): Promise<{ dirA: string; dirB: string; url: string; idA: PublicKey; idB: PublicKey }> {
  const url = await relay();
  const dirA = join(await tempDir(), 'a');
  const dirB = join(await tempDir(), 'b');
  const { a, b } = await pairDataDirs(dirA, dirB, { nameA: 'alice', nameB: 'bob', relay: url });
  return { dirA, dirB, url, idA: a.endpointId, idB: b.endpointId };
}

const stateOf = (c: Core, id: PublicKey): string | undefined => c.networking.registry.get(id)?.state;

describe('two devices', () => {
  it('go paired → connected, exchange messages both ways and requests, report RTT and path', async () => {
    const { dirA, dirB, url, idA, idB } = await pairedDirs();
    const a = await core(dirA, url);
    const seenA: string[] = [];
    a.networking.on('device-state-changed', (e) => seenA.push(`${e.device.name}:${e.from}→${e.to}`));
    const b = await core(dirB, url);
    await until(() => stateOf(a, idB) === 'connected' && stateOf(b, idA) === 'connected', 'both connected', 10_000);
    expect(seenA).toContain('bob:paired→connected');

    const gotB = b.networking.next('message-received');
    const sent = await a.networking.sendMessage('bob', { text: 'hi bob' }, { contentType: 'application/json' });
    expect(sent.rttMs).toBeGreaterThan(0);
    const atB = await gotB;
    expect(atB).toMatchObject({ messageId: sent.messageId, contentType: 'application/json', payload: { text: 'hi bob' } });
    expect(atB.from.name).toBe('alice');
    const gotA = a.networking.next('message-received');
    await b.networking.sendMessage(idA, 'hi alice', { contentType: 'text/plain' });
    expect((await gotA).payload).toBe('hi alice');

    // No handler: the request fails with the peer's code.
    await expect(a.networking.request('bob', { op: 'x' })).rejects.toMatchObject({ code: 'ERR_REQUEST_FAILED', remoteCode: 'ERR_NO_REQUEST_HANDLER' });
    b.networking.onRequest(({ from, payload }) => ({ echo: payload, from: from.name ?? null }));
    expect(await a.networking.request('bob', { n: 42 })).toEqual({ echo: { n: 42 }, from: 'alice' });
    b.networking.onRequest(() => {
      throw Object.assign(new Error('nope'), { code: 'ERR_APP_DENIED' });
    });
    await expect(a.networking.request('bob', 1)).rejects.toMatchObject({ code: 'ERR_REQUEST_FAILED', remoteCode: 'ERR_APP_DENIED' });
    // Many at once over the one connection.
    b.networking.onRequest(({ payload }) => payload);
    const many = await Promise.all(Array.from({ length: 50 }, (_, i) => a.networking.request(idB, i)));
    expect(many).toEqual(Array.from({ length: 50 }, (_, i) => i));
    expect(a.networking.connections(idB).filter((c) => c.alpn === MESSAGING_ALPN)).toHaveLength(1);

    // The health check reports RTT; bytes and the path are there.
    const updated = await a.networking.next('device-updated', { filter: (e) => e.device.connection?.rttMs !== undefined });
    expect(updated.device.connection).toMatchObject({ path: expect.stringMatching(/^(direct|relay)$/) });
    expect(a.networking.registry.get(idB)!.connection!.bytesSent).toBeGreaterThan(0);
    expect(await a.networking.ping('bob')).toBeGreaterThan(0);
  });

  it('a simultaneous start settles on the same single connection on both sides (dialled by the lower id)', async () => {
    const { dirA, dirB, url, idA, idB } = await pairedDirs();
    const [a, b] = await Promise.all([core(dirA, url), core(dirB, url)]);
    await until(() => stateOf(a, idB) === 'connected' && stateOf(b, idA) === 'connected', 'both connected', 10_000);
    // Let any second dial land and be settled.
    await new Promise((r) => setTimeout(r, 500));
    const onA = a.networking.connections(idB).filter((c) => c.alpn === MESSAGING_ALPN);
    const onB = b.networking.connections(idA).filter((c) => c.alpn === MESSAGING_ALPN);
    expect(onA).toHaveLength(1);
    expect(onB).toHaveLength(1);
    // The same connection: one side dialled it, the other accepted it.
    expect(new Set([onA[0]!.side, onB[0]!.side])).toEqual(new Set(['client', 'server']));
    expect(await a.networking.sendMessage('bob', 'after the race')).toMatchObject({ messageId: expect.any(String) });
  });

  it('Goodbye on shutdown marks the peer disconnected; it reconnects when the peer restarts (either side)', async () => {
    const { dirA, dirB, url, idA, idB } = await pairedDirs();
    const a = await core(dirA, url);
    let b = await core(dirB, url);
    await until(() => stateOf(a, idB) === 'connected', 'connected', 10_000);
    const down = a.networking.next('device-state-changed', { filter: (e) => e.to === 'disconnected' });
    await b.shutdown();
    expect((await down).device.name).toBe('bob');
    b = await core(dirB, url);
    await until(() => stateOf(a, idB) === 'connected' && stateOf(b, idA) === 'connected', 'reconnected after B restarted', 10_000);
    // Now A restarts.
    await a.shutdown();
    await until(() => stateOf(b, idA) === 'disconnected', 'B sees A gone', 10_000);
    const a2 = await core(dirA, url);
    await until(() => stateOf(a2, idB) === 'connected' && stateOf(b, idA) === 'connected', 'reconnected after A restarted', 10_000);
    expect(await b.networking.sendMessage('alice', 'welcome back')).toMatchObject({ messageId: expect.any(String) });
  });

  it('a dial pending to a stale address is joined by one to an address learnt meanwhile (regression: the stale dial ran to its timeout first)', async () => {
    // B's registered address is a socket that never answers (B restarted on a new port).
    const blackhole = createSocket('udp4');
    await new Promise<void>((resolve) => blackhole.bind(0, '127.0.0.1', resolve));
    cleanups.push(() => new Promise<void>((resolve) => blackhole.close(() => resolve())));
    const stale = `127.0.0.1:${blackhole.address().port}`;
    const dirA = join(await tempDir(), 'a');
    const dirB = join(await tempDir(), 'b');
    const { b: idsB } = await pairDataDirs(dirA, dirB, { nameA: 'alice', nameB: 'bob', addrB: [stale] });
    const slow = { ...FAST, dialTimeoutMs: 600_000 };
    let ctxA: ModuleContext | undefined;
    const failedDials: string[] = [];
    const a = await Core.init({
      dataDir: dirA,
      relays: [],
      bind: ['127.0.0.1:0'],
      timing: slow,
      log: (e) => {
        if (e.message === 'reconnect failed') failedDials.push(String(e.error));
      },
      modules: { others: [(ctx) => ((ctxA = ctx), { start: () => undefined, shutdown: () => undefined })] },
    });
    cleanups.push(() => a.shutdown());
    const b = await Core.init({ dataDir: dirB, relays: [], bind: ['127.0.0.1:0'], timing: slow });
    cleanups.push(() => b.shutdown());
    // A dials the stale address at start; wait until that datagram has reached the black hole.
    await new Promise<void>((resolve) => blackhole.once('message', () => resolve()));
    expect(stateOf(a, idsB.endpointId)).not.toBe('connected');
    // Heard on the LAN at its new address: with a ten-minute dial timeout, only a new attempt connects.
    await ctxA!.commands.discovered(b.networking.addr());
    await until(() => stateOf(a, idsB.endpointId) === 'connected', 'A connects to B at the address learnt while its first dial hung', 20_000);
    // Through the first dial, joined by the new address: not after it failed (handshake timeout).
    expect(failedDials).toEqual([]);
    expect(await a.networking.sendMessage('bob', 'found you')).toMatchObject({ messageId: expect.any(String) });
  });

  it('disconnect closes the connections (the device goes disconnected); the peer dials again and it is connected once more', async () => {
    const { dirA, dirB, url, idA, idB } = await pairedDirs();
    const a = await core(dirA, url);
    const b = await core(dirB, url);
    await until(() => stateOf(a, idB) === 'connected' && stateOf(b, idA) === 'connected', 'both connected', 10_000);
    const down = a.networking.next('device-state-changed', { filter: (e) => e.to === 'disconnected' });
    const up = a.networking.next('device-state-changed', { filter: (e) => e.to === 'connected' });
    await a.networking.disconnect('bob');
    expect((await down).from).toBe('connected');
    // B lost its connection and reconnects; A takes it.
    expect((await up).device.name).toBe('bob');
    expect(a.networking.connections(idB).every((c) => c.side === 'server')).toBe(true);
  });

  it('unpair: the device is forgotten (on disk), its connections close with UNPAIRED, and it is refused with NOT_PAIRED', async () => {
    const { dirA, dirB, url, idA, idB } = await pairedDirs();
    const a = await core(dirA, url);
    const b = await core(dirB, url);
    await until(() => stateOf(a, idB) === 'connected' && stateOf(b, idA) === 'connected', 'both connected', 10_000);
    const conn = a.networking.connections(idB)[0]!.connection;
    const removed = a.networking.next('device-state-changed', { filter: (e) => e.to === 'removed' });
    await a.networking.unpair('bob');
    expect((await removed).event).toBe('unpair');
    expect(a.networking.registry.get(idB)).toBeUndefined();
    expect((await conn.closed).applicationCode).toBe(CloseCode.UNPAIRED);
    // B still thinks they are paired: its dial is refused before any handler.
    await until(() => stateOf(b, idA) === 'disconnected', 'B sees the close', 10_000);
    await expect(b.networking.sendMessage('alice', 'still there?', { timeoutMs: 3000 })).rejects.toMatchObject({ code: 'ERR_DEVICE_UNREACHABLE', closeCode: CloseCode.NOT_PAIRED });
    await expect(a.networking.sendMessage(idB.toString(), 'x')).rejects.toMatchObject({ code: 'ERR_DEVICE_UNKNOWN' });
    await a.shutdown();
    const reopened = await core(dirA, url);
    expect(reopened.networking.registry.get(idB)).toBeUndefined();
  });
});

describe('seats, lock, events', () => {
  it('pairing and transfer seats fail with stable codes without a module', async () => {
    const url = await relay();
    const c = await core(join(await tempDir(), 'x'), url);
    await expect(c.networking.startPairingAsInitiator()).rejects.toMatchObject({ code: 'ERR_PAIRING_UNAVAILABLE' });
    await expect(c.networking.startPairingAsJoiner('abandon '.repeat(12).trim())).rejects.toMatchObject({ code: 'ERR_PAIRING_UNAVAILABLE' });
    await expect(c.networking.shareWithDevice('nobody', ['/tmp'])).rejects.toMatchObject({ code: 'ERR_TRANSFER_UNAVAILABLE' });
  });

  it('modules plug in: their protocols are registered (only an allowUnpaired one reaches strangers), commands change the registry, progress becomes events', async () => {
    const { dirA, dirB, url, idA, idB } = await pairedDirs();
    let ctxA: ModuleContext | undefined;
    const events: string[] = [];
    const a = await core(dirA, url, {
      modules: {
        pairing: (ctx) => {
          ctxA = ctx;
          return {
            protocols: [
              {
                alpn: 'test/pair/1',
                allowUnpaired: true,
                async handleStream(stream) {
                  const f = await stream.read();
                  await stream.write(f ?? new Uint8Array(0));
                  await stream.finish();
                },
              },
            ],
            async startAsInitiator() {
              ctx.pairingProgress({ sessionId: 's1', role: 'initiator', stage: 'code-generated' });
              return { sessionId: 's1', code: 'twelve words', expiresAt: Date.now() + 1000, paired: new Promise(() => undefined), cancel: () => undefined };
            },
            async startAsJoiner() {
              throw Object.assign(new Error('wrong code'), { code: 'ERR_PAIRING_WRONG_CODE' });
            },
          };
        },
        transfer: (ctx) => ({
          async share(device, paths) {
            ctx.transferProgress({ transferId: 't1', direction: 'send', peer: { endpointId: device.endpointId }, stage: 'offered', files: paths.length });
            return { transferId: 't1', files: paths.length, bytes: 0 };
          },
        }),
      },
    });
    const b = await core(dirB, url);
    a.networking.on('pairing-progress', (p) => events.push(`pairing ${p.stage}`));
    a.networking.on('transfer-progress', (p) => events.push(`transfer ${p.stage} ${p.peer.endpointId === idB.toString()}`));
    const invite = await a.networking.startPairingAsInitiator();
    expect(invite.code).toBe('twelve words');
    await expect(a.networking.startPairingAsJoiner('x')).rejects.toMatchObject({ code: 'ERR_PAIRING_WRONG_CODE' });
    expect(await a.networking.shareWithDevice('bob', ['/a', '/b'])).toEqual({ transferId: 't1', files: 2, bytes: 0 });
    expect(events).toEqual(['pairing code-generated', 'transfer offered true']);

    // The module's registry commands: a stranger discovered, pairing started and failed.
    const stranger = SecretKey.generate().public();
    const changes: string[] = [];
    a.networking.on('device-state-changed', (e) => e.device.endpointId === stranger.toString() && changes.push(`${e.from}→${e.to}`));
    await ctxA!.commands.discovered(EndpointAddr.from({ id: stranger, directAddresses: ['10.1.2.3:4'] }));
    await ctxA!.commands.expire(stranger);
    await ctxA!.commands.startPairing(stranger);
    await ctxA!.commands.failPairing(stranger);
    expect(changes).toEqual(['none→discovered', 'discovered→removed', 'none→pairing', 'pairing→removed']);

    // A stranger endpoint reaches the module's open protocol but not messaging.
    const { Endpoint } = await import('../../src/index.ts');
    const strangerEp = await Endpoint.bind({ bindAddr: ['127.0.0.1:0'] });
    cleanups.push(() => strangerEp.close({ graceMs: 50 }));
    const addrA = EndpointAddr.from({ id: idA, directAddresses: a.networking.endpoint.boundSockets });
    const refused = await strangerEp.connect(addrA, MESSAGING_ALPN);
    expect((await refused.closed).applicationCode).toBe(CloseCode.NOT_PAIRED);
    const open = await strangerEp.connect(addrA, 'test/pair/1');
    const { readable, writable } = await open.openBi();
    const w = writable.getWriter();
    await w.write(new Uint8Array([0, 0, 0, 2, 7, 8]));
    await w.close();
    const chunks: number[] = [];
    for await (const c of readable) chunks.push(...c);
    expect(chunks).toEqual([0, 0, 0, 2, 7, 8]);
    expect(a.networking.registry.get(strangerEp.id)).toBeUndefined();
    void b;
  });

  it('one service per data dir: a second one fails with ERR_SERVICE_RUNNING', async () => {
    const url = await relay();
    const dir = join(await tempDir(), 'x');
    await core(dir, url);
    await expect(Core.init({ dataDir: dir, relays: [url], bind: ['127.0.0.1:0'] })).rejects.toMatchObject({ code: 'ERR_SERVICE_RUNNING', pid: process.pid });
  });

  it('online, offline and problem events', async () => {
    const r = await startTestRelay();
    let open = true;
    cleanups.push(() => open && r.close({ graceful: false }));
    const dir = join(await tempDir(), 'x');
    await pairDataDirs(dir, join(await tempDir(), 'y'));
    await writeFile(join(dir, 'devices.json'), '{ broken');
    // create → listen → start: nothing emitted at start is missed.
    const service = await NetworkingService.create({ dataDir: dir, relays: [r.url], bind: ['127.0.0.1:0'], timing: FAST });
    cleanups.push(() => service.shutdown());
    const problems: string[] = [];
    service.on('problem', (p) => problems.push(`${p.code} ${p.keptAs ? 'kept' : ''}`));
    const online = service.next('online');
    await service.start();
    expect(problems).toEqual(['ERR_REGISTRY_CORRUPT kept']);
    expect(service.registry.problems.map((p) => p.code)).toEqual(['ERR_REGISTRY_CORRUPT']);
    expect((await online).relay).toBe(r.url);
    expect(service.status()).toMatchObject({ online: true, homeRelay: r.url, running: true, paired: 0 });
    const offline = service.next('offline');
    open = false;
    await r.close({ graceful: false });
    expect((await offline).relay).toBe(r.url);
  });
});

/** Every event the service declares, and the test above that waits for it (a new event fails to compile until listed). */
const DECLARED: Record<keyof NetworkingEvents, string> = {
  online: 'online, offline and problem events',
  offline: 'online, offline and problem events',
  problem: 'online, offline and problem events',
  'device-state-changed': 'go paired → connected; Goodbye; unpair; modules plug in',
  'device-updated': 'go paired → connected (RTT from the health check)',
  'message-received': 'go paired → connected (messages both ways)',
  'pairing-progress': 'modules plug in',
  'transfer-progress': 'modules plug in',
};
void DECLARED;
