/**
 * Hostile clients of the relays' pairing rendezvous (`/pair/<R>` in sdnet-relay): a lookup
 * flood from one address (429, while another address is still served — R is 32 bits, so
 * enumerating it must be slow), a body that never finishes (408 at the deadline), a declared
 * or streamed body over 4 KiB (413 without reading it all), registrations by one key beyond
 * its share and by many keys beyond the store (429 / 507), and the relay still answering
 * `/ping` throughout.
 */
import http from 'node:http';
import { connect } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { SecretKey } from '../../src/identity/keys.ts';
import { encodePutRequest } from '../../src/protocols/pairing/rendezvous-wire.ts';
import { failOnEscapes, startTestRelay } from '../helpers/relay-test-utils.ts';
import type { RendezvousOptions } from '../../relay-server/src/index.ts';

failOnEscapes();
const cleanups: Array<() => Promise<unknown>> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function relay(rendezvous: RendezvousOptions) {
  const r = await startTestRelay({ rendezvous });
  cleanups.push(() => r.close({ graceful: false }));
  return r;
}

function request(port: number, method: string, path: string, options: { body?: string; localAddress?: string; headers?: Record<string, string> } = {}): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, method, path, agent: false, ...(options.localAddress ? { localAddress: options.localAddress } : {}), headers: options.headers ?? {} }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 0));
    });
    req.on('error', reject);
    req.end(options.body);
  });
}

/** Raw bytes to the relay; resolves with the status line (or '' when closed without one) and the time it took. */
function raw(port: number, bytes: string, timeoutMs = 10_000): Promise<{ status: string; ms: number }> {
  return new Promise((resolve) => {
    const t0 = performance.now();
    const s = connect(port, '127.0.0.1');
    let buf = '';
    const timer = setTimeout(() => {
      s.destroy();
      resolve({ status: 'timeout', ms: performance.now() - t0 });
    }, timeoutMs);
    s.on('connect', () => s.write(bytes));
    s.on('data', (d) => {
      buf += d.toString('latin1');
      const line = buf.split('\r\n')[0]!;
      if (buf.includes('\r\n')) {
        clearTimeout(timer);
        s.destroy();
        resolve({ status: line, ms: performance.now() - t0 });
      }
    });
    s.on('error', () => undefined);
    s.on('close', () => {
      clearTimeout(timer);
      resolve({ status: buf.split('\r\n')[0] ?? '', ms: performance.now() - t0 });
    });
  });
}

describe('hostile clients of the pairing rendezvous', () => {
  it('a lookup flood from one address is limited; another address and /ping are still served', async () => {
    const r = await relay({ requestsPerSecond: 10 });
    const statuses = await Promise.all(Array.from({ length: 100 }, (_, i) => request(r.port, 'GET', `/pair/${i.toString(16).padStart(8, '0')}`)));
    expect(statuses.filter((s) => s === 429).length).toBeGreaterThanOrEqual(60);
    expect(statuses.filter((s) => s === 404).length).toBeGreaterThan(0);
    for (const s of statuses) expect([404, 429]).toContain(s);
    expect(r.rendezvous!.stats().rateLimited).toBeGreaterThanOrEqual(60);
    // Another source address has its own budget.
    expect(await request(r.port, 'GET', '/pair/0a0b0c0d', { localAddress: '127.0.0.2' })).toBe(404);
    expect(await request(r.port, 'GET', '/ping')).toBe(200);
  });

  it('a body that never finishes is cut at the deadline; oversized bodies are refused unread', async () => {
    const r = await relay({ bodyTimeoutMs: 500, requestsPerSecond: 0 });
    const slow = await raw(r.port, 'PUT /pair/0a0b0c0d HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{"v":1');
    expect(slow.status).toBe('HTTP/1.1 408 Request Timeout');
    const declared = await raw(r.port, 'PUT /pair/0a0b0c0d HTTP/1.1\r\nHost: x\r\nContent-Length: 100000000\r\n\r\n');
    expect(declared.status).toBe('HTTP/1.1 413 Payload Too Large');
    const streamed = await raw(r.port, `PUT /pair/0a0b0c0d HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n2000\r\n${'x'.repeat(0x2000)}\r\n`);
    expect(streamed.status).toBe('HTTP/1.1 413 Payload Too Large');
    expect(r.rendezvous!.stats().records).toBe(0);
    expect(await request(r.port, 'GET', '/ping')).toBe(200);
  });

  it('one key cannot hold more than its share, many keys cannot fill the store past its bound', async () => {
    const r = await relay({ maxPerKey: 4, maxRecords: 20, requestsPerSecond: 0 });
    const key = SecretKey.generate();
    const put = (rid: string, k: SecretKey) =>
      request(r.port, 'PUT', `/pair/${rid}`, { body: encodePutRequest(rid, { endpointId: k.public().toString(), relay: null, addrs: [] }, 60_000, Date.now(), (b) => k.sign(b).toBytes()), headers: { 'content-type': 'application/json' } });
    const own = await Promise.all(Array.from({ length: 10 }, (_, i) => put(`1000000${i}`, key)));
    expect(own.filter((s) => s === 204)).toHaveLength(4);
    expect(own.filter((s) => s === 429)).toHaveLength(6);
    const many = await Promise.all(Array.from({ length: 30 }, (_, i) => put(`20000${i.toString().padStart(3, '0')}`, SecretKey.generate())));
    expect(many.filter((s) => s === 204)).toHaveLength(16);
    expect(many.filter((s) => s === 507)).toHaveLength(14);
    expect(r.rendezvous!.stats().records).toBe(20);
    expect(await request(r.port, 'GET', '/ping')).toBe(200);
  });
});
