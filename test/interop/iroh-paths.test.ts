/**
 * Our endpoint and a real iroh 1.0 node (`@number0/iroh`) through the sdnet relay, both
 * roles, each knowing only the other's EndpointId and the relay URL (issue "Endpoint paths",
 * iroh-wire §1.10, §3.5): echo, 16 MiB verified by SHA-256, and the relay's metrics show the
 * bytes. The connection starts on the relay; with QUIC multipath and n0 NAT traversal (the
 * server's ADD_ADDRESS, the client's REACH_OUT, off-path probes) the client opens a direct
 * path and both sides move to it, in either role, and the relay then carries almost nothing.
 */
import { afterEach, describe, expect, it } from 'vitest';
import iroh from '@number0/iroh';
import { Endpoint, EndpointAddr } from '../../src/index.ts';
import { echo, sendHashed, serveConnection } from '../helpers/echo-hash.ts';
import { pattern } from '../helpers/iroh.ts';
import { ALPN, bindEndpoint, dial, serve } from '../helpers/relay-iroh-peer.ts';
import { scrape, startTestRelay } from '../helpers/relay-test-utils.ts';

const MiB = 1024 * 1024;
const ALPN_TEXT = new TextDecoder().decode(Uint8Array.from(ALPN));

async function waitFor(ok: () => boolean, ms: number, what: string): Promise<void> {
  const deadline = Date.now() + ms;
  while (!ok()) {
    if (Date.now() > deadline) throw new Error(`no ${what} within ${ms} ms`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

const cleanups: Array<() => Promise<unknown> | unknown> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

describe('TS ↔ iroh through the sdnet relay (id + relay URL only)', () => {
  it('TS client → iroh server: starts relayed, opens a direct path (multipath + QNT), 16 MiB verified without the relay', async () => {
    const relay = await startTestRelay();
    cleanups.push(() => relay.close({ graceful: false }));
    const server = await bindEndpoint(relay.url);
    cleanups.push(() => server.close());
    await server.online();
    void serve(server).catch(() => undefined);
    const ours = await Endpoint.bind({ bindAddr: ['127.0.0.1:0'], relays: [relay.url] });
    cleanups.push(() => ours.close({ graceMs: 100 }));
    await ours.online();

    const conn = await ours.connect(EndpointAddr.from({ id: server.id().toString(), relayUrls: [relay.url] }), ALPN_TEXT);
    expect(conn.remoteId.toString()).toBe(server.id().toString());
    expect(conn.path).toMatchObject({ kind: 'relay' });
    expect(await echo(conn, 'hello iroh, via the relay')).toBe('hello iroh, via the relay');
    // iroh's ADD_ADDRESS gives us its address; we open path 1 there and move to it once validated.
    await waitFor(() => !conn.stats().relayed, 15_000, 'a direct path');
    expect(conn.stats()).toMatchObject({ multipath: true, relayed: false });
    const direct = conn.paths().find((p) => p.status === 'active');
    expect(direct).toMatchObject({ kind: 'direct', validated: true });
    expect(direct!.id).toBeGreaterThanOrEqual(1);
    // The relay path stays open as a backup.
    expect(conn.paths().some((p) => p.kind === 'relay' && p.status === 'candidate')).toBe(true);
    const before = (await scrape(relay)).get('relay_bytes_relayed_total') ?? 0;
    const result = await sendHashed(conn, pattern(11).block, 16 * MiB);
    expect(result.peerHash).toBe(result.sentHash);
    const after = (await scrape(relay)).get('relay_bytes_relayed_total') ?? 0;
    expect(after - before).toBeLessThan(1 * MiB);
    conn.close(0, 'done');
  });

  it('iroh client → TS server: starts relayed, iroh opens a direct path to our ADD_ADDRESS, 16 MiB verified without the relay', async () => {
    const relay = await startTestRelay();
    cleanups.push(() => relay.close({ graceful: false }));
    const ours = await Endpoint.bind({ bindAddr: ['127.0.0.1:0'], relays: [relay.url], alpns: [ALPN_TEXT] });
    cleanups.push(() => ours.close({ graceMs: 100 }));
    await ours.online();
    const accepted = (async () => {
      for await (const incoming of ours.accept()) {
        const conn = await incoming.accept();
        void serveConnection(conn);
        return conn;
      }
      throw new Error('endpoint closed');
    })();
    const client = await bindEndpoint(relay.url);
    cleanups.push(() => client.close());
    await client.online();

    let before = 0;
    const result = await dial(client, relay.url, ours.id.toString(), 16 * MiB, {
      directWithinMs: 15_000,
      hook: async () => {
        before = (await scrape(relay)).get('relay_bytes_relayed_total') ?? 0;
      },
    });
    expect(result.echo).toBe('hello through the sdnet relay');
    expect(result.peerHash).toBe(result.sentHash);
    // iroh's view: a direct path is selected, the relay kept as another path.
    expect(result.paths.filter((p) => p.isSelected)).toMatchObject([{ isRelay: false }]);
    expect(result.paths.some((p) => p.isRelay && !p.isSelected)).toBe(true);
    const after = (await scrape(relay)).get('relay_bytes_relayed_total') ?? 0;
    expect(after - before).toBeLessThan(1 * MiB);
    const conn = await accepted;
    expect(conn.remoteId.toString()).toBe(client.id().toString());
    // Ours: the path iroh opened (id ≥ 1) is validated and we send on it too.
    expect(conn.stats()).toMatchObject({ multipath: true, relayed: false });
    expect(conn.paths().find((p) => p.status === 'active')).toMatchObject({ kind: 'direct', validated: true });
    expect(iroh.EndpointId.fromString(ours.id.toString()).toString()).toBe(ours.id.toString());
  });
});
