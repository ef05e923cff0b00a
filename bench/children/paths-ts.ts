/**
 * Child of `bench/paths.ts`: sdnet endpoints over direct UDP and through the relay.
 *
 * Usage:
 *   node paths-ts.ts relay                         runs an sdnet relay on 127.0.0.1 (rate limit off),
 *                                                  prints {"ready":true,"url":…}, runs until killed
 *   node paths-ts.ts bulk-recv <direct|relay> <relayUrl>
 *                                                  binds (relay only: no UDP socket), goes online,
 *                                                  prints {"ready":true,"ticket":…}, reads one bi
 *                                                  stream to its end, answers the byte count
 *   node paths-ts.ts bulk-send <ticket> <bytes> <chunk> <direct|relay>
 *                                                  connects (relay only when asked), writes, waits
 *                                                  for the count; timed from first write to count
 *   node paths-ts.ts connect <direct|relay> <relayUrl> <n> <warmup>
 *                                                  warm connects between two endpoints of this
 *                                                  process, each followed by a 1-byte echo
 *   node paths-ts.ts upgrade <relayUrl> <n>        dials by id + relay URL only while both have UDP:
 *                                                  time from the connection's start on the relay
 *                                                  to its move to the direct path
 */
import { Endpoint, EndpointAddr, EndpointTicket, type Connection } from '../../src/index.ts';
import { startRelayServer } from '../../relay-server/src/index.ts';
import { emit, finish, latencySummary, median, percentile, readAtLeast, receiveCounted, round, runMain, sendCounted, withTimeout } from './common.ts';

const ALPN = 'bench/paths/1';
type Mode = 'direct' | 'relay';

function mode(text: string | undefined): Mode {
  if (text !== 'direct' && text !== 'relay') throw new Error(`mode must be direct or relay, not ${text}`);
  return text;
}

/** An endpoint for `m`: UDP on loopback, or relay only (no UDP socket at all). */
function bind(m: Mode, relayUrl: string | undefined, server: boolean): Promise<Endpoint> {
  return Endpoint.bind({
    bindAddr: m === 'relay' ? [] : ['127.0.0.1:0'],
    ...(relayUrl ? { relays: [relayUrl] } : {}),
    ...(server ? { alpns: [ALPN] } : {}),
  });
}

async function relay(): Promise<void> {
  const r = await startRelayServer({ host: '127.0.0.1', port: 0, rateLimit: false });
  emit({ ready: true, url: r.url });
  await new Promise(() => {});
}

async function bulkRecv(m: Mode, relayUrl: string): Promise<void> {
  const ep = await bind(m, m === 'relay' ? relayUrl : undefined, true);
  if (m === 'relay') await withTimeout(ep.online(), 10_000, 'online');
  // Relay mode: the ticket names only the relay (the endpoint has no direct address).
  emit({ ready: true, ticket: new EndpointTicket(ep.addr()).toString() });
  for await (const incoming of ep.accept()) {
    const conn = await incoming.accept();
    const bi = await conn.acceptBi();
    const { bytes, seconds, processCpuPct } = await receiveCounted(bi);
    await withTimeout(conn.closed, 5000, 'close').catch(() => undefined);
    finish({ bytes, MBps: round(bytes / seconds / 1e6, 1), processCpuPct, relayed: conn.stats().relayed });
  }
}

async function bulkSend(ticket: string, total: number, chunk: number, m: Mode): Promise<void> {
  const ep = await bind(m, undefined, false);
  const conn = await withTimeout(ep.connect(EndpointTicket.parse(ticket).addr, ALPN), 10_000, 'connect');
  const { seconds, processCpuPct } = await sendCounted(await conn.openBi(), total, chunk);
  const stats = conn.stats();
  conn.close(0, 'done');
  finish({ bytes: total, MBps: round(total / seconds / 1e6, 1), processCpuPct, relayed: stats.relayed, lostPackets: stats.lostPackets, rttMs: round(stats.minRtt, 3) });
}

async function echoByte(conn: Connection): Promise<void> {
  const { readable, writable } = await conn.openBi();
  const writer = writable.getWriter();
  await writer.write(Uint8Array.of(1));
  await writer.close();
  await readAtLeast(readable.getReader(), 1);
}

/** Answer 1-byte echoes on every connection. */
function serveEcho(ep: Endpoint): void {
  void (async () => {
    for await (const incoming of ep.accept()) {
      void (async () => {
        const conn = await incoming.accept();
        for (;;) {
          const bi = await conn.acceptBi();
          const b = await readAtLeast(bi.readable.getReader(), 1);
          const w = bi.writable.getWriter();
          await w.write(b);
          await w.close();
        }
      })().catch(() => undefined);
    }
  })().catch(() => undefined);
}

async function connect(m: Mode, relayUrl: string, n: number, warmup: number): Promise<void> {
  const server = await bind(m, m === 'relay' ? relayUrl : undefined, true);
  const client = await bind(m, m === 'relay' ? relayUrl : undefined, false);
  if (m === 'relay') await withTimeout(Promise.all([server.online(), client.online()]), 10_000, 'online');
  serveEcho(server);
  const addr = server.addr();
  const connectMs: number[] = [];
  const echoMs: number[] = [];
  for (let i = 0; i < warmup + n; i++) {
    const t0 = performance.now();
    const conn = await withTimeout(client.connect(addr, ALPN), 10_000, 'connect');
    const t1 = performance.now();
    await echoByte(conn);
    const t2 = performance.now();
    if (m === 'relay' && !conn.stats().relayed) throw new Error('a relay-only connection is not on the relay');
    conn.close(0, 'done');
    if (i >= warmup) {
      connectMs.push(t1 - t0);
      echoMs.push(t2 - t1);
    }
  }
  finish(latencySummary(connectMs, echoMs));
}

async function upgrade(relayUrl: string, n: number): Promise<void> {
  const server = await bind('direct', relayUrl, true);
  const client = await bind('direct', relayUrl, false);
  await withTimeout(Promise.all([server.online(), client.online()]), 10_000, 'online');
  serveEcho(server);
  const addr = EndpointAddr.from({ id: server.id, relayUrls: [relayUrl] });
  const toSwitch: number[] = [];
  const fromStart: number[] = [];
  for (let i = 0; i < n + 1; i++) {
    const t0 = performance.now();
    const conn = await withTimeout(client.connect(addr, ALPN), 10_000, 'connect');
    const t1 = performance.now();
    if (!conn.stats().relayed) throw new Error('the connection did not start on the relay');
    // Keep a little traffic going, as an application would.
    while (conn.stats().relayed) {
      if (performance.now() - t1 > 10_000) throw new Error('no move to the direct path within 10 s');
      await new Promise((r) => setTimeout(r, 1));
    }
    const t2 = performance.now();
    await echoByte(conn);
    conn.close(0, 'done');
    if (i > 0) {
      toSwitch.push(t2 - t1);
      fromStart.push(t2 - t0);
    }
  }
  finish({ n, switchMs: round(median(toSwitch)), switchMsP90: round(percentile(toSwitch, 0.9)), switchMsMax: round(Math.max(...toSwitch)), fromDialMs: round(median(fromStart)) });
}

runMain(async () => {
  const [cmd, a, b, c, d] = process.argv.slice(2);
  switch (cmd) {
    case 'relay':
      return relay();
    case 'bulk-recv':
      return bulkRecv(mode(a), b!);
    case 'bulk-send':
      return bulkSend(a!, Number(b), Number(c), mode(d));
    case 'connect':
      return connect(mode(a), b!, Number(c), Number(d));
    case 'upgrade':
      return upgrade(a!, Number(b));
    default:
      throw new Error(`unknown command ${cmd}`);
  }
});
