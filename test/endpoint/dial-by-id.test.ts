/**
 * Dial by id alone through the pkarr relay sdnet-relay serves: an endpoint given only a relay
 * URL publishes its `_iroh` record there once online (by default, no other setting), another
 * endpoint with the same relay resolves the id to that relay URL and `connect(id)` — with the
 * id as a PublicKey, as hex and as z-base-32 — completes a handshake and echoes a stream. A
 * change of user-data is republished at once; an unknown id fails with ERR_NO_ADDRESS.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { Endpoint } from '../../src/endpoint/index.ts';
import { SecretKey } from '../../src/identity/keys.ts';
import { packetInfo, z32 } from '../../src/discovery/pkarr.ts';
import { resolvePacket } from '../../src/discovery/pkarr-client.ts';
import { PkarrLookup } from '../../src/discovery/lookup.ts';
import { startTestRelay } from '../helpers/relay-test-utils.ts';

const cleanups: Array<() => Promise<unknown>> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

const ALPN = 'test/echo';

async function until<T>(f: () => Promise<T | undefined>, what: string, ms = 30_000): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await f();
    if (v !== undefined) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

describe('dial by id through the pkarr relay', () => {
  it('publishes once online, resolves to the relay URL, and connect(id) works in every id form', async () => {
    const relay = await startTestRelay({});
    cleanups.push(() => relay.close({ graceful: false }));
    const url = `http://127.0.0.1:${relay.port}`;
    const a = await Endpoint.bind({ secretKey: SecretKey.generate(), relays: [url], alpns: [ALPN], bindAddr: '127.0.0.1:0' });
    cleanups.push(() => a.close());
    // Echo every stream.
    void (async () => {
      for await (const inc of a.accept()) {
        void inc.accept().then(async (c) => {
          for (;;) {
            const s = await c.acceptBi().catch(() => undefined);
            if (!s) return;
            await s.readable.pipeTo(s.writable).catch(() => undefined);
          }
        }, () => undefined);
      }
    })();
    await a.online();
    const b = await Endpoint.bind({ relays: [url], bindAddr: '127.0.0.1:0' });
    cleanups.push(() => b.close());
    const found = await until(() => b.resolve(a.id, { timeoutMs: 10_000 }), 'the record of A at the pkarr relay');
    expect(found.id.equals(a.id)).toBe(true);
    expect(found.relayUrls.map(String)).toEqual([a.homeRelay!.toString()]);
    expect(found.directAddresses).toHaveLength(0);
    expect(relay.pkarr!.lookup(z32(a.id))).toBeDefined();
    for (const target of [a.id, a.id.toString(), z32(a.id)]) {
      const conn = await b.connect(target, ALPN);
      expect(conn.remoteId.equals(a.id)).toBe(true);
      const s = await conn.openBi();
      const w = s.writable.getWriter();
      await w.write(new TextEncoder().encode('hello by id'));
      await w.close();
      expect(await new Response(s.readable).text()).toBe('hello by id');
      conn.close(0, 'done');
    }
    // user-data is republished at once.
    a.setUserData('pair:0a0b0c0d');
    const lookup = a.lookups.find((l) => l instanceof PkarrLookup)!;
    await until(async () => {
      await lookup.flushed();
      const p = await resolvePacket(`${url}/pkarr`, a.id);
      return p && packetInfo(p).userData === 'pair:0a0b0c0d' ? true : undefined;
    }, 'the republished user-data');
    const unknown = SecretKey.generate().public();
    await expect(b.connect(unknown, ALPN, { resolveTimeoutMs: 3_000 })).rejects.toMatchObject({ code: 'ERR_NO_ADDRESS' });
    await expect(b.resolve('not an id')).rejects.toMatchObject({ code: 'ERR_INVALID_ARGUMENT' });
  });
});
