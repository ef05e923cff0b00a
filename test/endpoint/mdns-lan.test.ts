/**
 * mDNS between two endpoints on this host's multicast (a private mDNS port, so nothing else
 * is heard): B hears A with its direct addresses; A's user-data (pairing's `pair:<R>`)
 * reaches B's user-data lookup while it is set and is gone from the next announcement once
 * cleared — at once, not at the next query; `connect(id)` dials A through the mDNS lookup;
 * and when A goes silent, B forgets it after the expiry.
 */
import { networkInterfaces } from 'node:os';
import { afterEach, describe, expect, it } from 'vitest';
import { Endpoint } from '../../src/endpoint/index.ts';
import { attachMdns } from '../../src/discovery/attach.ts';
import type { MdnsDiscovery } from '../../src/discovery/mdns.ts';

const cleanups: Array<() => Promise<unknown> | void> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

const ALPN = 'test/mdns';

// Multicast leaves through a non-loopback interface (and loops back to us); without one there is no LAN.
const hasLan = Object.values(networkInterfaces()).some((l) => (l ?? []).some((i) => !i.internal && i.family === 'IPv4'));
if (!hasLan) console.log('[skip] mDNS between two endpoints: no non-loopback IPv4 interface on this host');

describe.skipIf(!hasLan)('mDNS between two endpoints', () => {
  it('hears, carries user-data while set and clears it at once, dials by id, expires silent peers', async () => {
    const port = 20000 + Math.floor(Math.random() * 20000);
    const a = await Endpoint.bind({ alpns: [ALPN], bindAddr: '0.0.0.0:0' });
    cleanups.push(() => a.close());
    const b = await Endpoint.bind({ bindAddr: '0.0.0.0:0' });
    cleanups.push(() => b.close());
    void (async () => {
      for await (const inc of a.accept()) void inc.accept().catch(() => undefined);
    })();
    const mb = (await attachMdns(b, { port, expiryMs: 3_000 })) as MdnsDiscovery;
    expect(mb).toBeDefined();
    const ma = (await attachMdns(a, { port })) as MdnsDiscovery;
    expect(ma).toBeDefined();
    const found = await b.resolve(a.id, { timeoutMs: 30_000 });
    expect(found?.directAddresses.some((d) => d.port === a.boundSockets[0]!.port)).toBe(true);

    // user-data while set...
    const ac = new AbortController();
    const it = mb.withUserData('pair:0a0b0c0d', ac.signal)[Symbol.asyncIterator]();
    a.setUserData('pair:0a0b0c0d');
    const next = await Promise.race([it.next(), new Promise<never>((_, reject) => setTimeout(() => reject(new Error('user-data not heard within 30 s')), 30_000))]);
    expect(next.done).toBe(false);
    expect(next.value!.id.equals(a.id)).toBe(true);
    ac.abort();
    // ...the lookup ends with its signal (a join never waits on it)...
    expect((await it.next()).done).toBe(true);
    // ...and cleared at once: the next announcement carries none.
    const cleared = new Promise<void>((resolve) => {
      const off = mb.on('peer', (p) => {
        if (p.id.equals(a.id) && p.userData === undefined) {
          off();
          resolve();
        }
      });
    });
    a.setUserData(undefined);
    await Promise.race([cleared, new Promise<never>((_, reject) => setTimeout(() => reject(new Error('clearing not heard within 30 s')), 30_000))]);

    // Dial by id through mDNS alone (no relay, no pkarr).
    const conn = await b.connect(a.id, ALPN);
    expect(conn.remoteId.equals(a.id)).toBe(true);
    conn.close(0, 'done');

    // A goes silent: B forgets it after the expiry.
    const expired = new Promise<void>((resolve) => {
      const off = mb.on('expired', ({ id }) => {
        if (id.equals(a.id)) {
          off();
          resolve();
        }
      });
    });
    ma.close();
    await Promise.race([expired, new Promise<never>((_, reject) => setTimeout(() => reject(new Error('no expiry within 30 s')), 30_000))]);
    expect(mb.peers().some((p) => p.id.equals(a.id))).toBe(false);
  });
});
