/**
 * sdnet in headless Chromium (issue: sdnet in a browser tab). The example page, served by an
 * sdnet relay with `--static`, loads the esbuild bundle and binds a relay-only endpoint (no
 * UDP in a page) through that relay. Then, over the relay only:
 *
 * - page → real iroh (`@number0/iroh`), dialled by its id and relay URL: 4 MiB echoed, the
 *   hash checked on both ends (what iroh received, what came back);
 * - real iroh → page: iroh dials the page's id and relay URL, 4 MiB echoed back, hashed;
 * - page ↔ Node sdnet, both directions, the same.
 *
 * Skips with the reason printed where Chromium is not installed (`.ci/run` installs it as root).
 */
import { createHash, randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import iroh from '@number0/iroh';
import { Endpoint, EndpointAddr, type Connection } from '../../src/index.ts';
import type { RelayServerHandle } from '../../relay-server/src/index.ts';
import { chromiumUnavailable, exampleSite, openExamplePage, type EchoResult, type ExamplePage, type PageWindow } from '../helpers/browser-page.ts';
import { ALPN as IROH_ALPN, bindEndpoint as bindIrohWithRelay } from '../helpers/relay-iroh-peer.ts';
import { startTestRelay } from '../helpers/relay-test-utils.ts';

const FOUR_MIB = 4 * 1024 * 1024;
const ALPN = 'sdnet/relay-test/0';
const skip = chromiumUnavailable();
if (skip !== undefined) console.log(`[skip] Chromium tests: ${skip}`);

let site: ReturnType<typeof exampleSite>;
let relay: RelayServerHandle;
let page: ExamplePage;
const cleanups: Array<() => Promise<unknown> | unknown> = [];

beforeAll(async () => {
  if (skip !== undefined) return;
  site = exampleSite();
  relay = await startTestRelay({ staticDir: site.dir });
  page = await openExamplePage(relay.url);
}, 180_000);

afterAll(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
  await page?.close();
  await relay?.close({ graceful: false });
  site?.remove();
});

/** In the page: bind an endpoint named `name` (relay-only, home relay `relayUrl`) and echo on it. */
async function pageEndpoint(name: string, relayUrl: string): Promise<string> {
  return page.page.evaluate(
    async ({ name, relayUrl }) => {
      const w = window as unknown as PageWindow;
      w.endpoints ??= {};
      const ep = await w.sdnetExample.bind({ relay: relayUrl });
      w.endpoints[name] = ep;
      void w.sdnetExample.serveEcho(ep);
      return ep.id.toString();
    },
    { name, relayUrl },
  );
}

/** In the page: dial `target` by id + relay URL from endpoint `name` and echo `bytes`. */
function pageDialAndEcho(name: string, target: string, relayUrl: string, bytes: number): Promise<EchoResult> {
  return page.page.evaluate(
    ({ name, target, relayUrl, bytes }) => {
      const w = window as unknown as PageWindow;
      return w.sdnetExample.dialAndEcho(w.endpoints[name]!, target, { relay: relayUrl, bytes });
    },
    { name, target, relayUrl, bytes },
  );
}

/** Echo each iroh stream chunk by chunk; records the SHA-256 of what each stream carried. */
function irohStreamingEcho(ep: iroh.Endpoint, received: string[]): void {
  void (async () => {
    for (;;) {
      const incoming = await ep.acceptNext();
      if (incoming === null) return;
      void (async () => {
        const conn = await (await incoming.accept()).connect();
        for (;;) {
          const bi = await conn.acceptBi();
          void (async () => {
            const hash = createHash('sha256');
            let first = true;
            for (;;) {
              const chunk = await bi.recv.read(256 * 1024);
              if (chunk.length === 0) break;
              const data = first ? chunk.slice(1) : chunk;
              first = false;
              hash.update(Uint8Array.from(data));
              if (data.length > 0) await bi.send.writeAll(data);
            }
            // Recorded before the FIN goes out, so it is there when the dialler sees the end.
            received.push(hash.digest('hex'));
            await bi.send.finish();
          })().catch(() => undefined);
        }
      })().catch(() => undefined);
    }
  })();
}

/** Echo each sdnet stream chunk by chunk; records the SHA-256 of what each stream carried. */
function sdnetStreamingEcho(ep: Endpoint, received: string[]): void {
  void (async () => {
    for await (const incoming of ep.accept()) {
      void (async () => {
        const conn = await incoming.accept();
        for (;;) {
          const bi = await conn.acceptBi();
          void (async () => {
            const reader = bi.readable.getReader();
            const writer = bi.writable.getWriter();
            const hash = createHash('sha256');
            let first = true;
            for (;;) {
              const { value, done } = await reader.read();
              if (done) break;
              const data = first ? value.subarray(1) : value;
              first = false;
              hash.update(data);
              if (data.length > 0) await writer.write(data.slice());
            }
            received.push(hash.digest('hex'));
            await writer.close();
          })().catch(() => undefined);
        }
      })().catch(() => undefined);
    }
  })().catch(() => undefined);
}

/** Echo `bytes` random bytes over a new stream of an sdnet connection, reading while writing. */
async function sdnetEcho(conn: Connection, bytes: number): Promise<{ sent: string; echoed: string; echoedBytes: number }> {
  const bi = await conn.openBi();
  const writer = bi.writable.getWriter();
  const reader = bi.readable.getReader();
  const echoedHash = createHash('sha256');
  let echoedBytes = 0;
  const reading = (async () => {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      echoedHash.update(value);
      echoedBytes += value.length;
    }
  })();
  const sentHash = createHash('sha256');
  await writer.write(Uint8Array.of(0x65));
  for (let off = 0; off < bytes; off += 64 * 1024) {
    const chunk = new Uint8Array(randomBytes(Math.min(64 * 1024, bytes - off)));
    sentHash.update(chunk);
    await writer.write(chunk);
  }
  await writer.close();
  await reading;
  return { sent: sentHash.digest('hex'), echoed: echoedHash.digest('hex'), echoedBytes };
}

describe.skipIf(skip !== undefined)('sdnet in headless Chromium, relay-only', () => {
  it('the page binds a relay-only endpoint (no UDP socket) and goes online through the relay', async () => {
    const id = await pageEndpoint('main', relay.url);
    expect(id).toMatch(/^[0-9a-f]{64}$/);
    const info = await page.page.evaluate(() => {
      const ep = (window as unknown as PageWindow).endpoints.main as unknown as { boundSockets: unknown[]; homeRelay: { toString(): string } | undefined };
      return { sockets: ep.boundSockets.length, home: ep.homeRelay?.toString() };
    });
    expect(info).toEqual({ sockets: 0, home: relay.url });
    // The relay sees the page as a client.
    expect(relay.stats().endpoints).toBeGreaterThanOrEqual(1);
    expect(page.errors).toEqual([]);
  });

  it('page → real iroh by id and relay URL: 4 MiB echoed, verified by hash on both ends', async () => {
    const ep = await bindIrohWithRelay(relay.url);
    cleanups.push(() => ep.close());
    await ep.online();
    const received: string[] = [];
    irohStreamingEcho(ep, received);
    const r = await pageDialAndEcho('main', ep.id().toString(), relay.url, FOUR_MIB);
    expect(r.receivedBytes).toBe(FOUR_MIB);
    expect(r.echoedHash).toBe(r.sentHash);
    expect(received).toEqual([r.sentHash]);
    expect(page.errors).toEqual([]);
  });

  it('real iroh → page: iroh dials the page by id and relay URL, 4 MiB echoed back, verified by hash', async () => {
    const pageId = await pageEndpoint('iroh-target', relay.url);
    const ep = await bindIrohWithRelay(relay.url);
    cleanups.push(() => ep.close());
    await ep.online();
    const conn = await ep.connect(new iroh.EndpointAddr(iroh.EndpointId.fromString(pageId), relay.url, []), IROH_ALPN);
    const bi = await conn.openBi();
    const echoed = createHash('sha256');
    let echoedBytes = 0;
    const reading = (async () => {
      for (;;) {
        const chunk = await bi.recv.read(256 * 1024);
        if (chunk.length === 0) return;
        echoed.update(Uint8Array.from(chunk));
        echoedBytes += chunk.length;
      }
    })();
    const sent = createHash('sha256');
    await bi.send.writeAll([0x65]);
    for (let off = 0; off < FOUR_MIB; off += 64 * 1024) {
      const part = randomBytes(64 * 1024);
      sent.update(part);
      await bi.send.writeAll(Array.from(part));
    }
    await bi.send.finish();
    await reading;
    expect(echoedBytes).toBe(FOUR_MIB);
    expect(echoed.digest('hex')).toBe(sent.digest('hex'));
    // iroh saw the page's endpoint as the peer it asked for.
    expect(conn.remoteId().toString()).toBe(pageId);
    conn.close(0n, []);
    expect(page.errors).toEqual([]);
  });

  it('page ↔ Node sdnet through the relay, both directions: 4 MiB echoed each way, verified by hash', async () => {
    const node = await Endpoint.bind({ alpns: [ALPN], bindAddr: ['127.0.0.1:0'], relays: [relay.url] });
    cleanups.push(() => node.close());
    await node.online({ signal: AbortSignal.timeout(60_000) });
    const received: string[] = [];
    sdnetStreamingEcho(node, received);
    const r = await pageDialAndEcho('main', node.id.toString(), relay.url, FOUR_MIB);
    expect(r.receivedBytes).toBe(FOUR_MIB);
    expect(r.echoedHash).toBe(r.sentHash);
    expect(received).toEqual([r.sentHash]);

    const pageId = await page.page.evaluate(() => (window as unknown as PageWindow).endpoints.main!.id.toString());
    const conn = await node.connect(EndpointAddr.from({ id: pageId, relayUrls: [relay.url] }), ALPN, { signal: AbortSignal.timeout(60_000) });
    const back = await sdnetEcho(conn, FOUR_MIB);
    expect(back.echoedBytes).toBe(FOUR_MIB);
    expect(back.echoed).toBe(back.sent);
    // The page has no UDP: the connection can only be on the relay.
    expect(conn.path.relayed).toBe(true);
    conn.close(0, 'done');
    expect(page.errors).toEqual([]);
  });
});
