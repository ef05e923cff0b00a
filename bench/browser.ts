/**
 * sdnet in a browser tab vs Node, relay-only (issue: sdnet in a browser tab), as JSON lines.
 *
 * One sdnet relay (its own process) and one echo sink (a relay-only Node sdnet endpoint in this
 * process). Clients, each in its own process, dial the sink by id + relay URL and echo N bytes
 * (written while the echo is read) on one stream:
 *
 * - `page`: headless Chromium on the example page (the esbuild bundle, @noble crypto, the
 *   page's WebSocket);
 * - `node`: a relay-only Node sdnet endpoint (node:crypto, `ws`) — the anchor;
 * - `node-noble`: the same with the @noble provider, to tell crypto cost from the rest.
 *
 * The page and `node` also echo with a real iroh endpoint (`@number0/iroh`, relay-only here as
 * the page is) as the sink: rustls follows the client's cipher-suite order, so the page's
 * ChaCha20-Poly1305 preference takes effect there, while an sdnet sink keeps AES-128-GCM.
 *
 * Each figure is the median of three runs; the ratio to read is page / node (same run, same
 * relay, same sink). Then the AEADs one 1200-byte packet at a time, in the page (@noble AES-GCM
 * and ChaCha20-Poly1305, WebCrypto AES-GCM awaited per packet) and in Node (node:crypto,
 * @noble), since a relay-only transfer spends its CPU there.
 *
 * `npm run bench browser` (or `node bench/browser.ts [--quick]`). Without Chromium it prints a
 * `skipped` line and exits 0.
 */
import { fork, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { Endpoint, EndpointAddr, nobleCryptoProvider, nodeCryptoProvider, type Connection } from '../src/index.ts';
import { startRelayServer } from '../relay-server/src/index.ts';
import { bundleBrowser } from '../scripts/bundle-browser.ts';
import type iroh from '@number0/iroh';

const SELF = fileURLToPath(import.meta.url);
const ALPN = 'sdnet/relay-test/0';
const quick = process.argv.includes('--quick');
const BYTES = (quick ? 4 : 16) * 1024 * 1024;
const RUNS = 3;

interface EchoTiming {
  bytes: number;
  receivedBytes: number;
  ms: number;
}

/** Echo `bytes` random bytes on a new stream, reading while writing; ms from open to the last echoed byte. */
async function echoTimed(conn: Connection, bytes: number): Promise<EchoTiming> {
  const started = performance.now();
  const bi = await conn.openBi();
  const writer = bi.writable.getWriter();
  const reader = bi.readable.getReader();
  let receivedBytes = 0;
  const reading = (async () => {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      receivedBytes += value.length;
    }
  })();
  await writer.write(Uint8Array.of(0x65));
  for (let off = 0; off < bytes; off += 64 * 1024) await writer.write(new Uint8Array(randomBytes(Math.min(64 * 1024, bytes - off))));
  await writer.close();
  await reading;
  return { bytes, receivedBytes, ms: performance.now() - started };
}

/** Echo every stream of every connection chunk by chunk. */
function serveEcho(ep: Endpoint): void {
  void (async () => {
    for await (const incoming of ep.accept()) {
      void (async () => {
        const conn = await incoming.accept();
        for (;;) {
          const bi = await conn.acceptBi();
          void (async () => {
            const reader = bi.readable.getReader();
            const writer = bi.writable.getWriter();
            let first = true;
            for (;;) {
              const { value, done } = await reader.read();
              if (done) break;
              const data = first ? value.subarray(1) : value;
              first = false;
              if (data.length > 0) await writer.write(data.slice());
            }
            await writer.close();
          })().catch(() => undefined);
        }
      })().catch(() => undefined);
    }
  })().catch(() => undefined);
}

/** Echo every iroh stream chunk by chunk. */
function serveIrohEcho(ep: iroh.Endpoint): void {
  void (async () => {
    for (;;) {
      const incoming = await ep.acceptNext();
      if (incoming === null) return;
      void (async () => {
        const conn = await (await incoming.accept()).connect();
        for (;;) {
          const bi = await conn.acceptBi();
          void (async () => {
            let first = true;
            for (;;) {
              const chunk = await bi.recv.read(256 * 1024);
              if (chunk.length === 0) break;
              const data = first ? chunk.slice(1) : chunk;
              first = false;
              if (data.length > 0) await bi.send.writeAll(data);
            }
            await bi.send.finish();
          })().catch(() => undefined);
        }
      })().catch(() => undefined);
    }
  })().catch(() => undefined);
}

/** One AEAD, one 1200-byte packet at a time: MB/s of plaintext sealed. */
function aeadMBps(provider: typeof nobleCryptoProvider, algorithm: 'aes-128-gcm' | 'chacha20-poly1305', ms = 600): number {
  const aead = provider.aead(algorithm, new Uint8Array(algorithm === 'aes-128-gcm' ? 16 : 32).fill(7));
  const nonce = new Uint8Array(12);
  const aad = new Uint8Array(20);
  const pt = new Uint8Array(1200).fill(1);
  let n = 0;
  const t0 = performance.now();
  while (performance.now() - t0 < ms) {
    for (let i = 0; i < 50; i++) aead.seal(nonce, aad, pt);
    n += 50;
  }
  return (n * 1200) / 1e6 / ((performance.now() - t0) / 1000);
}

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const line = (o: Record<string, unknown>): void => console.log(JSON.stringify({ bench: 'browser', ...o }));

function child(args: string[]): ChildProcess {
  return fork(SELF, args, { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
}

function message<T>(c: ChildProcess): Promise<T> {
  return new Promise((resolve, reject) => {
    c.once('message', (m) => resolve(m as T));
    c.once('exit', (code) => reject(new Error(`child exited with ${code}`)));
  });
}

async function relayMain(): Promise<void> {
  const relay = await startRelayServer({ host: '127.0.0.1', port: 0, rateLimit: false, metrics: false, staticDir: process.argv[3]! });
  process.on('disconnect', () => void relay.close({ graceful: false }).then(() => process.exit(0)));
  process.send!({ url: relay.url });
}

async function nodeClientMain(): Promise<void> {
  const [, , , relayUrl, sinkId, bytes, which] = process.argv;
  const ep = await Endpoint.bind({ bindAddr: [], relays: [relayUrl!], provider: which === 'noble' ? nobleCryptoProvider : nodeCryptoProvider });
  await ep.online({ signal: AbortSignal.timeout(60_000) });
  const conn = await ep.connect(EndpointAddr.from({ id: sinkId!, relayUrls: [relayUrl!] }), ALPN, { signal: AbortSignal.timeout(60_000) });
  const result = await echoTimed(conn, Number(bytes));
  conn.close(0, 'done');
  process.send!(result);
  await ep.close();
  process.exit(0);
}

async function main(): Promise<void> {
  const { chromiumUnavailable, exampleSite, openExamplePage } = await import('../test/helpers/browser-page.ts');
  const bundle = await bundleBrowser();
  line({ name: 'bundle', minifiedBytes: bundle.minifiedBytes, gzipBytes: bundle.gzipBytes, budget: bundle.budget });
  const skip = chromiumUnavailable();
  if (skip !== undefined) {
    line({ name: 'relay-echo', skipped: skip });
    return;
  }
  const site = exampleSite();
  const relayProc = child(['relay', site.dir]);
  const { url: relayUrl } = await message<{ url: string }>(relayProc);
  const sink = await Endpoint.bind({ bindAddr: [], relays: [relayUrl], alpns: [ALPN] });
  await sink.online({ signal: AbortSignal.timeout(60_000) });
  serveEcho(sink);
  const { bindEndpoint: bindIroh } = await import('../test/helpers/relay-iroh-peer.ts');
  const irohSink = await bindIroh(relayUrl);
  await irohSink.online();
  serveIrohEcho(irohSink);
  const page = await openExamplePage(relayUrl);
  try {
    await page.page.evaluate(async (relay) => {
      const w = window as unknown as { sdnetExample: { bind(o: { relay: string }): Promise<unknown> }; benchEp: unknown };
      w.benchEp = await w.sdnetExample.bind({ relay });
    }, relayUrl);
    const sinks = { sdnet: sink.id.toString(), iroh: irohSink.id().toString() };
    const results: Record<string, Record<string, number[]>> = { sdnet: { page: [], node: [], 'node-noble': [] }, iroh: { page: [], node: [] } };
    for (let run = 0; run < RUNS; run++) {
      for (const [sinkName, clients] of Object.entries(results)) {
        const sinkId = sinks[sinkName as keyof typeof sinks];
        const r = await page.page.evaluate(
          ({ sink, relay, bytes }) => {
            const w = window as unknown as { sdnetExample: { dialAndEcho(ep: unknown, t: string, o: object): Promise<EchoTiming> }; benchEp: unknown };
            return w.sdnetExample.dialAndEcho(w.benchEp, sink, { relay, bytes });
          },
          { sink: sinkId, relay: relayUrl, bytes: BYTES },
        );
        if (r.receivedBytes !== BYTES) throw new Error(`page: echoed ${r.receivedBytes} of ${BYTES} bytes`);
        clients.page!.push(BYTES / 1e6 / (r.ms / 1000));
        for (const which of ['node', 'node-noble'].filter((c) => c in clients)) {
          const c = child(['node-client', relayUrl, sinkId, String(BYTES), which === 'node' ? 'node' : 'noble']);
          const t = await message<EchoTiming>(c);
          if (t.receivedBytes !== BYTES) throw new Error(`${which}: echoed ${t.receivedBytes} of ${BYTES} bytes`);
          clients[which]!.push(BYTES / 1e6 / (t.ms / 1000));
        }
      }
    }
    for (const [sinkName, clients] of Object.entries(results)) {
      const node = median(clients.node!);
      for (const [client, xs] of Object.entries(clients)) {
        line({ name: 'relay-echo', sink: sinkName, client, bytes: BYTES, mbPerSec: Number(median(xs).toFixed(2)), runs: xs.map((x) => Number(x.toFixed(2))), ratioToNode: Number((median(xs) / node).toFixed(3)) });
      }
    }
    // The page's relay client: datagrams dropped because the WebSocket buffered too much, etc.
    const pageRelay = await page.page.evaluate(() => {
      const w = window as unknown as { benchEp: { relays(): { stats: Record<string, number> }[] } };
      return w.benchEp.relays().map((r) => r.stats);
    });
    line({ name: 'page-relay-client', stats: pageRelay });
    // Where the page's time goes: the AEADs, one packet at a time.
    const pageAead = await page.page.evaluate(async () => {
      const mod = (await import('./sdnet.min.js' as string)) as { nobleCryptoProvider: typeof nobleCryptoProvider };
      const seal = (algorithm: 'aes-128-gcm' | 'chacha20-poly1305') => {
        const aead = mod.nobleCryptoProvider.aead(algorithm, new Uint8Array(algorithm === 'aes-128-gcm' ? 16 : 32).fill(7));
        const nonce = new Uint8Array(12);
        const aad = new Uint8Array(20);
        const pt = new Uint8Array(1200).fill(1);
        let n = 0;
        const t0 = performance.now();
        while (performance.now() - t0 < 600) {
          for (let i = 0; i < 50; i++) aead.seal(nonce, aad, pt);
          n += 50;
        }
        return (n * 1200) / 1e6 / ((performance.now() - t0) / 1000);
      };
      const key = await crypto.subtle.importKey('raw', new Uint8Array(16).fill(7), 'AES-GCM', false, ['encrypt']);
      const pt = new Uint8Array(1200).fill(1);
      let n = 0;
      const t0 = performance.now();
      while (performance.now() - t0 < 600) {
        await crypto.subtle.encrypt({ name: 'AES-GCM', iv: new Uint8Array(12), additionalData: new Uint8Array(20) }, key, pt);
        n++;
      }
      const webcrypto = (n * 1200) / 1e6 / ((performance.now() - t0) / 1000);
      return { nobleAesGcm: seal('aes-128-gcm'), nobleChaCha: seal('chacha20-poly1305'), webcryptoAesGcmPerPacket: webcrypto };
    });
    line({
      name: 'aead-1200B',
      page: Object.fromEntries(Object.entries(pageAead).map(([k, v]) => [k, Number(v.toFixed(1))])),
      node: {
        nodeAesGcm: Number(aeadMBps(nodeCryptoProvider, 'aes-128-gcm').toFixed(1)),
        nobleAesGcm: Number(aeadMBps(nobleCryptoProvider, 'aes-128-gcm').toFixed(1)),
        nobleChaCha: Number(aeadMBps(nobleCryptoProvider, 'chacha20-poly1305').toFixed(1)),
      },
      unit: 'MB/s',
    });
  } finally {
    await page.close();
    await sink.close();
    await irohSink.close();
    relayProc.disconnect();
    site.remove();
  }
}

const role = process.argv[2];
if (role === 'relay') await relayMain();
else if (role === 'node-client') await nodeClientMain();
else {
  await main();
  process.exit(0);
}
