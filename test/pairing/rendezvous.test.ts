/**
 * The relays' pairing rendezvous (`PUT/GET/DELETE /pair/<R>` in sdnet-relay) and its client:
 * register, look up, withdraw; only the registering key may refresh or withdraw; signatures
 * bound to method, R and time; the 5-minute TTL; the store bound and the per-key bound.
 * Hostile floods and bodies are in test/hostile/pairing-rendezvous.test.ts.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { SecretKey } from '../../src/identity/keys.ts';
import { lookupRendezvous, registerRendezvous, RendezvousError, withdrawRendezvous } from '../../src/protocols/pairing/rendezvous.ts';
import { encodeDeleteRequest, encodePutRequest, RENDEZVOUS_MAX_TTL_MS } from '../../src/protocols/pairing/rendezvous-wire.ts';
import { PairRendezvous } from '../../relay-server/src/index.ts';
import { startTestRelay } from '../helpers/relay-test-utils.ts';

const cleanups: Array<() => Promise<unknown>> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function relay(options: Parameters<typeof startTestRelay>[0] = {}) {
  const r = await startTestRelay(options);
  cleanups.push(() => r.close({ graceful: false }));
  return r;
}

/** A bare HTTP server in front of a rendezvous with a controllable clock. */
async function clocked(options: ConstructorParameters<typeof PairRendezvous>[0] = {}): Promise<{ url: string; rv: PairRendezvous; clock: { now: number } }> {
  const clock = { now: Date.now() };
  const rv = new PairRendezvous(options, () => clock.now);
  const server: Server = createServer((req, res) => {
    if (!rv.handle(req, res)) res.writeHead(404).end();
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  cleanups.push(() => new Promise<void>((r) => server.close(() => r())));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/`, rv, clock };
}

const key = (): { sk: SecretKey; id: string; sign: (b: Uint8Array) => Uint8Array } => {
  const sk = SecretKey.generate();
  return { sk, id: sk.public().toString(), sign: (b) => sk.sign(b).toBytes() };
};

async function http(url: string, method: string, body?: string): Promise<{ status: number; text: string }> {
  const res = await fetch(url, { method, ...(body !== undefined ? { body, headers: { 'content-type': 'application/json' } } : {}) });
  return { status: res.status, text: await res.text() };
}

describe('pairing rendezvous', () => {
  it('register, look up, withdraw — through the relay server and the client', async () => {
    const r = await relay();
    const a = key();
    const record = { endpointId: a.id, relay: r.url, addrs: ['127.0.0.1:4000'] };
    expect(await lookupRendezvous(r.url, '0a0b0c0d')).toBeUndefined();
    await registerRendezvous(r.url, '0a0b0c0d', record, 60_000, a.sign);
    expect(await lookupRendezvous(r.url, '0a0b0c0d')).toEqual(record);
    // Refresh by the same key is fine.
    await registerRendezvous(r.url, '0a0b0c0d', { ...record, addrs: [] }, 60_000, a.sign);
    expect((await lookupRendezvous(r.url, '0a0b0c0d'))?.addrs).toEqual([]);
    // Another key can neither take nor withdraw it.
    const b = key();
    await expect(registerRendezvous(r.url, '0a0b0c0d', { ...record, endpointId: b.id }, 60_000, b.sign)).rejects.toMatchObject({ status: 409 });
    await expect(withdrawRendezvous(r.url, '0a0b0c0d', b.id, b.sign)).rejects.toMatchObject({ status: 409 });
    expect(await lookupRendezvous(r.url, '0a0b0c0d')).toMatchObject({ endpointId: a.id });
    await withdrawRendezvous(r.url, '0a0b0c0d', a.id, a.sign);
    expect(await lookupRendezvous(r.url, '0a0b0c0d')).toBeUndefined();
    // Withdrawing again is not an error.
    await withdrawRendezvous(r.url, '0a0b0c0d', a.id, a.sign);
    expect(r.rendezvous?.stats()).toMatchObject({ records: 0, registered: 2, withdrawn: 1 });
  });

  it('signatures are bound to the key, the method, R and the time', async () => {
    const { url, clock } = await clocked();
    const a = key();
    const b = key();
    const rec = { endpointId: a.id, relay: null, addrs: [] };
    // Signed by another key.
    expect((await http(`${url}pair/01020304`, 'PUT', encodePutRequest('01020304', rec, 1000, clock.now, b.sign))).status).toBe(401);
    // Signed for another R.
    expect((await http(`${url}pair/01020304`, 'PUT', encodePutRequest('01020305', rec, 1000, clock.now, a.sign))).status).toBe(401);
    // Stale.
    expect((await http(`${url}pair/01020304`, 'PUT', encodePutRequest('01020304', rec, 1000, clock.now - 3 * 60_000, a.sign))).status).toBe(401);
    // A tampered field.
    const good = JSON.parse(encodePutRequest('01020304', rec, 1000, clock.now, a.sign)) as Record<string, unknown>;
    expect((await http(`${url}pair/01020304`, 'PUT', JSON.stringify({ ...good, addrs: ['10.0.0.1:1'] }))).status).toBe(401);
    expect((await http(`${url}pair/01020304`, 'PUT', JSON.stringify(good))).status).toBe(204);
    // A PUT signature is no DELETE signature.
    expect((await http(`${url}pair/01020304`, 'DELETE', JSON.stringify({ v: 1, endpoint_id: a.id, ts: good.ts, sig: good.sig }))).status).toBe(401);
    expect((await http(`${url}pair/01020304`, 'DELETE', encodeDeleteRequest('01020304', a.id, clock.now, a.sign))).status).toBe(204);
  });

  it('records live at most 5 minutes', async () => {
    const { url, rv, clock } = await clocked();
    const a = key();
    await registerRendezvous(url, 'aabbccdd', { endpointId: a.id, relay: null, addrs: [] }, 60 * 60_000, a.sign);
    const got = JSON.parse((await http(`${url}pair/aabbccdd`, 'GET')).text) as { expires_in_ms: number };
    expect(got.expires_in_ms).toBeLessThanOrEqual(RENDEZVOUS_MAX_TTL_MS);
    clock.now += RENDEZVOUS_MAX_TTL_MS - 1000;
    expect((await http(`${url}pair/aabbccdd`, 'GET')).status).toBe(200);
    clock.now += 2000;
    expect((await http(`${url}pair/aabbccdd`, 'GET')).status).toBe(404);
    expect(rv.stats().records).toBe(0);
    // Once expired, R is free for anyone.
    const b = key();
    expect((await http(`${url}pair/aabbccdd`, 'PUT', encodePutRequest('aabbccdd', { endpointId: b.id, relay: null, addrs: [] }, 1000, clock.now, b.sign))).status).toBe(204);
  });

  it('the store is bounded, and so is each key\'s share of it', async () => {
    const { url, clock } = await clocked({ maxRecords: 3, maxPerKey: 2 });
    const a = key();
    const b = key();
    const put = (r: string, k: ReturnType<typeof key>) => http(`${url}pair/${r}`, 'PUT', encodePutRequest(r, { endpointId: k.id, relay: null, addrs: [] }, 60_000, clock.now, k.sign));
    expect((await put('00000001', a)).status).toBe(204);
    expect((await put('00000002', a)).status).toBe(204);
    expect((await put('00000003', a)).status).toBe(429);
    expect((await put('00000003', b)).status).toBe(204);
    expect((await put('00000004', b)).status).toBe(507);
    // Expired records make room.
    clock.now += RENDEZVOUS_MAX_TTL_MS;
    expect((await put('00000004', b)).status).toBe(204);
  });

  it('malformed requests: bad R, bad JSON, bad fields, other methods', async () => {
    const { url, clock } = await clocked();
    const a = key();
    expect((await http(`${url}pair/0A0B0C0D`, 'GET')).status).toBe(400);
    expect((await http(`${url}pair/0a0b0c`, 'GET')).status).toBe(400);
    expect((await http(`${url}pair/0a0b0c0d/x`, 'GET')).status).toBe(400);
    expect((await http(`${url}pair/0a0b0c0d`, 'PUT', 'not json')).status).toBe(400);
    expect((await http(`${url}pair/0a0b0c0d`, 'PUT', '{"v":2}')).status).toBe(400);
    const bad = JSON.parse(encodePutRequest('0a0b0c0d', { endpointId: a.id, relay: null, addrs: [] }, 1000, clock.now, a.sign)) as Record<string, unknown>;
    expect((await http(`${url}pair/0a0b0c0d`, 'PUT', JSON.stringify({ ...bad, addrs: ['x'] }))).status).toBe(400);
    expect((await http(`${url}pair/0a0b0c0d`, 'PUT', JSON.stringify({ ...bad, relay: 'ftp://x' }))).status).toBe(400);
    expect((await http(`${url}pair/0a0b0c0d`, 'PUT', JSON.stringify({ ...bad, addrs: Array(9).fill('1.2.3.4:5') }))).status).toBe(400);
    expect((await http(`${url}pair/0a0b0c0d`, 'POST', '{}')).status).toBe(405);
    expect((await http(`${url}pair/0a0b0c0d`, 'PUT', 'x'.repeat(5000))).status).toBe(413);
    // The client refuses answers that are not records.
    await expect(lookupRendezvous(`${url}`, 'zzzzzzzz')).rejects.toBeInstanceOf(RendezvousError);
  });

  it('the relay serves everything else as before, and can turn the rendezvous off', async () => {
    const r = await relay({ rendezvous: false });
    expect((await http(`${r.url}pair/0a0b0c0d`, 'GET')).status).toBe(404);
    expect((await http(`${r.url}ping`, 'GET')).status).toBe(200);
  });
});
