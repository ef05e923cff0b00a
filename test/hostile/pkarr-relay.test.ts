/**
 * sdnet-relay as a pkarr relay (`PUT/GET /pkarr/<z32>`) under forged and abusive PUTs: a bad
 * signature (400), a packet signed by another key (400), an older timestamp (409), the same
 * timestamp with other content (409), an oversized body declared or streamed (413), a
 * malformed key (400), a PUT flood from one address (429 while another address is served),
 * and a flood from many keys that leaves the store at its bound. The honest round trip
 * (publish → resolve → verified record with the relay URL) through the real client runs too.
 */
import http from 'node:http';
import { afterEach, describe, expect, it } from 'vitest';
import { SecretKey } from '../../src/identity/keys.ts';
import { RelayUrl } from '../../src/identity/relay-url.ts';
import { encodeInfoDns, packetInfo, pkarrTimestampNow, signPacket, z32 } from '../../src/discovery/pkarr.ts';
import { publishPacket, resolvePacket, PkarrError } from '../../src/discovery/pkarr-client.ts';
import { MAX_PKARR_BODY_BYTES } from '../../src/discovery/limits.ts';
import { failOnEscapes, startTestRelay } from '../helpers/relay-test-utils.ts';
import type { PkarrRelayOptions } from '../../relay-server/src/index.ts';

failOnEscapes();
const cleanups: Array<() => Promise<unknown>> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function relay(pkarr: PkarrRelayOptions) {
  const r = await startTestRelay({ pkarr });
  cleanups.push(() => r.close({ graceful: false }));
  return r;
}

function request(port: number, method: string, path: string, body?: Uint8Array, localAddress?: string): Promise<{ status: number; body: Buffer }> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, method, path, agent: false, ...(localAddress ? { localAddress } : {}) }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks) }));
    });
    req.on('error', reject);
    req.end(body);
  });
}

const relayUrl = RelayUrl.parse('https://relay.example.org/');
function packet(key: SecretKey, ts: bigint, userData?: string): Uint8Array {
  return signPacket(key, encodeInfoDns({ id: key.public(), relayUrls: [relayUrl], directAddresses: [], ...(userData !== undefined ? { userData } : {}) }), ts);
}

describe('pkarr relay, forged and abusive publishes', () => {
  it('publish then resolve through the client returns the verified record', async () => {
    const r = await relay({});
    const key = SecretKey.generate();
    const base = `http://127.0.0.1:${r.port}/pkarr`;
    expect(await resolvePacket(base, key.public())).toBeUndefined();
    await publishPacket(base, key.public(), packet(key, pkarrTimestampNow()));
    const got = await resolvePacket(base, key.public());
    expect(got).toBeDefined();
    const info = packetInfo(got!);
    expect(info.id.equals(key.public())).toBe(true);
    expect(info.relayUrls.map(String)).toEqual([relayUrl.toString()]);
  });

  it('a bad signature, another key\'s packet, a malformed key and an oversized body are refused', async () => {
    const r = await relay({ putsPerSecond: 0 });
    const key = SecretKey.generate();
    const path = `/pkarr/${z32(key.public())}`;
    const good = packet(key, pkarrTimestampNow());
    const forged = good.slice();
    forged[10]! ^= 1;
    expect((await request(r.port, 'PUT', path, forged)).status).toBe(400);
    const other = SecretKey.generate();
    expect((await request(r.port, 'PUT', path, packet(other, pkarrTimestampNow()))).status).toBe(400);
    // Tampered DNS under a valid-looking signature.
    const tampered = good.slice();
    tampered[tampered.length - 1]! ^= 1;
    expect((await request(r.port, 'PUT', path, tampered)).status).toBe(400);
    expect((await request(r.port, 'PUT', '/pkarr/not-a-key', good)).status).toBe(400);
    const big = new Uint8Array(MAX_PKARR_BODY_BYTES + 1);
    expect((await request(r.port, 'PUT', path, big)).status).toBe(413);
    expect((await request(r.port, 'GET', path)).status).toBe(404);
    expect(r.pkarr!.stats().records).toBe(0);
    // Through the client the refusal carries the status.
    await expect(publishPacket(`http://127.0.0.1:${r.port}/pkarr`, key.public(), forged)).rejects.toMatchObject({ code: 'ERR_PKARR', status: 400 });
    expect(PkarrError).toBeDefined();
  });

  it('an older timestamp is a conflict (409), the same packet again is fine, the same timestamp with other content is a conflict', async () => {
    const r = await relay({ putsPerSecond: 0 });
    const key = SecretKey.generate();
    const path = `/pkarr/${z32(key.public())}`;
    const t = pkarrTimestampNow();
    const newer = packet(key, t + 1000n);
    expect((await request(r.port, 'PUT', path, newer)).status).toBe(204);
    expect((await request(r.port, 'PUT', path, packet(key, t))).status).toBe(409);
    expect((await request(r.port, 'PUT', path, newer)).status).toBe(204);
    expect((await request(r.port, 'PUT', path, packet(key, t + 1000n, 'other'))).status).toBe(409);
    // The newer one is what is served.
    const got = await request(r.port, 'GET', path);
    expect(got.status).toBe(200);
    expect(new Uint8Array(got.body)).toEqual(newer);
    // A timestamp hours in the future is refused (it would lock the key out).
    expect((await request(r.port, 'PUT', path, packet(key, t + 3n * 3600n * 1_000_000n))).status).toBe(400);
  });

  it('a PUT flood from one address is rate-limited while another address is served', async () => {
    const r = await relay({ putsPerSecond: 2 });
    const key = SecretKey.generate();
    const path = `/pkarr/${z32(key.public())}`;
    const statuses = await Promise.all(Array.from({ length: 80 }, () => request(r.port, 'PUT', path, packet(key, pkarrTimestampNow())).then((x) => x.status)));
    // A burst of 20 is admitted (some as 409: concurrent PUTs land out of order); the rest are 429.
    expect(statuses.filter((s) => s === 429).length).toBeGreaterThanOrEqual(50);
    for (const s of statuses) expect([204, 409, 429]).toContain(s);
    expect(r.pkarr!.stats().rateLimited).toBeGreaterThanOrEqual(50);
    const fresh = SecretKey.generate();
    expect((await request(r.port, 'PUT', `/pkarr/${z32(fresh.public())}`, packet(fresh, pkarrTimestampNow()), '127.0.0.2')).status).toBe(204);
    expect((await request(r.port, 'GET', '/ping')).status).toBe(200);
  });

  it('PUTs from many keys leave the store at its bound; the newest records are served', async () => {
    const r = await relay({ putsPerSecond: 0, maxRecords: 25 });
    const keys = Array.from({ length: 60 }, () => SecretKey.generate());
    for (const k of keys) expect((await request(r.port, 'PUT', `/pkarr/${z32(k.public())}`, packet(k, pkarrTimestampNow()))).status).toBe(204);
    const stats = r.pkarr!.stats();
    expect(stats.records).toBe(25);
    expect(stats.evicted).toBe(35);
    expect((await request(r.port, 'GET', `/pkarr/${z32(keys[59]!.public())}`)).status).toBe(200);
    expect((await request(r.port, 'GET', `/pkarr/${z32(keys[0]!.public())}`)).status).toBe(404);
  });
});
