/**
 * Our endpoint and a real iroh 1.0 node (`@number0/iroh`) through the sdnet relay, both
 * roles, each knowing only the other's EndpointId and the relay URL (issue "Endpoint paths",
 * iroh-wire §1.10, §3.5): echo, 16 MiB verified by SHA-256, and the relay's metrics show the
 * bytes. iroh cannot move such a connection to a direct path without multipath, so it stays
 * relayed, and the relay's byte counter proves the data went through it.
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

const cleanups: Array<() => Promise<unknown> | unknown> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

describe('TS ↔ iroh through the sdnet relay (id + relay URL only)', () => {
  it('TS client → iroh server: echo and 16 MiB verified, relayed', async () => {
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
    const result = await sendHashed(conn, pattern(11).block, 16 * MiB);
    expect(result.peerHash).toBe(result.sentHash);
    // iroh sent no sdnet_direct_addresses: the connection stayed where it started.
    expect(conn.stats()).toMatchObject({ relayed: true, pathChanges: 0 });
    const metrics = await scrape(relay);
    expect(metrics.get('relay_bytes_relayed_total')).toBeGreaterThanOrEqual(16 * MiB);
    conn.close(0, 'done');
  });

  it('iroh client → TS server: echo and 16 MiB verified, relayed', async () => {
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

    const result = await dial(client, relay.url, ours.id.toString(), 16 * MiB);
    expect(result.echo).toBe('hello through the sdnet relay');
    expect(result.peerHash).toBe(result.sentHash);
    // iroh's view: its only path to us is the relay, and it is selected.
    expect(result.paths.filter((p) => p.isSelected)).toMatchObject([{ isRelay: true, remoteAddr: relay.url }]);
    const conn = await accepted;
    expect(conn.remoteId.toString()).toBe(client.id().toString());
    expect(conn.path).toMatchObject({ kind: 'relay' });
    expect(conn.stats().relayed).toBe(true);
    const metrics = await scrape(relay);
    expect(metrics.get('relay_bytes_relayed_total')).toBeGreaterThanOrEqual(16 * MiB);
    expect(iroh.EndpointId.fromString(ours.id.toString()).toString()).toBe(ours.id.toString());
  });
});
