/**
 * Child of `bench/holepunch.ts`, run inside a site's host namespace of a `NatLab`: sdnet
 * endpoints that reach each other through NATs, the relay in between.
 *
 * Usage:
 *   node holepunch-peer.ts serve <relayUrl> <qadPort>
 *        one endpoint (UDP on 0.0.0.0, the relay, QAD); once online with a public address
 *        prints {"ready":true,"id","direct":[…]}; counts every bi stream of every connection
 *        (`receiveCounted`) and prints {"received":true,"seq",…} after each
 *   node holepunch-peer.ts punch <relayUrl> <qadPort> <serverId> <n> <warmup> <windowMs>
 *        warmup + n dials, each from a fresh endpoint (new UDP socket, so a new NAT mapping)
 *        that is online with its public address before the clock starts; each dial names
 *        only the server's id and the relay URL. Times connect() and the first move to a
 *        validated direct path ('path-changed' with relayed false); gives up after windowMs
 *   node holepunch-peer.ts plain <serverDirectAddr> <serverId> <n> <warmup>
 *        the same count of dials to the server's UDP address, from fresh endpoints with no
 *        relay: connect() resolving is the first validated (direct) path
 *   node holepunch-peer.ts bulk <multipath|single|single-online> <relayUrl> <qadPort> <serverId> <serverDirectAddr> <bytes> <chunk>
 *        multipath: dial relay-only, wait for the direct path, then send; single: dial the
 *        server's UDP address with multipath off (settings.multipath false), then send;
 *        single-online: the same from an endpoint online like the multipath one (relay, QAD).
 *        One bi stream, timed from the first write to the server's count
 *
 * JSON lines on stdout as in `common.ts`; `{"sample":true,…}` for each measured dial.
 */
import { Endpoint, EndpointAddr, type Connection } from '../../src/index.ts';
import { closeQuietly, emit, finish, fromDialSummary, median, receiveCounted, round, runMain, sendCounted, withTimeout } from './common.ts';

const ALPN = 'bench/holepunch/1';

/** An endpoint that can punch: UDP on every interface, one relay, QAD against it; online with a public address. */
async function punchingEndpoint(relayUrl: string, qadPort: number, server: boolean): Promise<Endpoint> {
  const ep = await Endpoint.bind({ bindAddr: '0.0.0.0:0', relays: [relayUrl], qad: { port: qadPort }, ...(server ? { alpns: [ALPN] } : {}) });
  await withTimeout(ep.online(), 15_000, 'online');
  // An application dials long after its endpoint learnt its public address: so do we.
  if (ep.reflexiveAddresses().length === 0) {
    await ep.next('reflexive-addresses', { filter: (e) => e.addresses.length > 0, signal: AbortSignal.timeout(15_000) }).catch(() => undefined);
  }
  return ep;
}

/** Resolves with ms (performance.now()) when `conn` first sends on a direct path, or undefined after `windowMs`. */
function firstDirect(conn: Connection, windowMs: number): Promise<number | undefined> {
  if (!conn.stats().relayed) return Promise.resolve(performance.now());
  return new Promise((resolve) => {
    const timer = setTimeout(() => {
      off();
      resolve(undefined);
    }, windowMs);
    const off = conn.on('path-changed', (e) => {
      if (e.relayed) return;
      clearTimeout(timer);
      off();
      resolve(performance.now());
    });
  });
}

const directPath = (conn: Connection): string | undefined => conn.paths().find((p) => p.kind === 'direct' && p.status === 'active')?.address?.toString();

async function serve(relayUrl: string, qadPort: number): Promise<void> {
  const ep = await punchingEndpoint(relayUrl, qadPort, true);
  emit({ ready: true, id: ep.id.toString(), direct: ep.addr().directAddresses.map(String), reflexive: ep.reflexiveAddresses().map(String) });
  let seq = 0;
  for await (const incoming of ep.accept()) {
    void (async () => {
      const conn = await incoming.accept();
      for (;;) {
        const bi = await conn.acceptBi().catch(() => undefined);
        if (bi === undefined) return;
        const { bytes, seconds, processCpuPct } = await receiveCounted(bi);
        const s = conn.stats();
        emit({ received: true, seq: seq++, bytes, MBps: round(bytes / seconds / 1e6, 1), processCpuPct, relayed: s.relayed, multipath: s.multipath });
      }
    })().catch(() => undefined);
  }
}

async function punch(relayUrl: string, qadPort: number, serverId: string, n: number, warmup: number, windowMs: number): Promise<void> {
  const addr = EndpointAddr.from({ id: serverId, relayUrls: [relayUrl] });
  const connectMs: number[] = [];
  const directMs: number[] = [];
  const fromDialMs: number[] = [];
  let relayedDials = 0;
  for (let i = 0; i < warmup + n; i++) {
    const ep = await punchingEndpoint(relayUrl, qadPort, false);
    try {
      const t0 = performance.now();
      const conn = await withTimeout(ep.connect(addr, ALPN), 15_000, 'connect');
      const t1 = performance.now();
      const startedRelayed = conn.stats().relayed;
      const t2 = await firstDirect(conn, windowMs);
      const path = directPath(conn);
      const stats = conn.stats();
      conn.close(0, 'done');
      if (i < warmup) continue;
      const sample = { sample: true, i: i - warmup, connectMs: round(t1 - t0), startedRelayed, direct: t2 !== undefined, directMs: t2 === undefined ? null : round(t2 - t1), fromDialMs: t2 === undefined ? null : round(t2 - t0), path, multipath: stats.multipath, reflexive: ep.reflexiveAddresses().map(String) };
      emit(sample);
      connectMs.push(t1 - t0);
      if (t2 === undefined) relayedDials++;
      else {
        directMs.push(t2 - t1);
        fromDialMs.push(t2 - t0);
      }
    } finally {
      await closeQuietly(() => ep.close({ graceMs: 100 }));
    }
  }
  finish({
    n,
    warmup,
    direct: directMs.length,
    relayed: relayedDials,
    windowMs,
    connectMs: round(median(connectMs)),
    directMs: directMs.length ? round(median(directMs)) : null,
    ...fromDialSummary(fromDialMs),
  });
}

async function plain(serverDirect: string, serverId: string, n: number, warmup: number): Promise<void> {
  const addr = EndpointAddr.from({ id: serverId, directAddresses: [serverDirect] });
  const connectMs: number[] = [];
  for (let i = 0; i < warmup + n; i++) {
    const ep = await Endpoint.bind({ bindAddr: '0.0.0.0:0', pkarr: false });
    try {
      const t0 = performance.now();
      const conn = await withTimeout(ep.connect(addr, ALPN), 15_000, 'connect');
      const t1 = performance.now();
      const stats = conn.stats();
      if (stats.relayed) throw new Error('a dial to a UDP address ended on a relay');
      conn.close(0, 'done');
      if (i < warmup) continue;
      emit({ sample: true, i: i - warmup, connectMs: round(t1 - t0), path: directPath(conn) });
      connectMs.push(t1 - t0);
    } finally {
      await closeQuietly(() => ep.close({ graceMs: 100 }));
    }
  }
  finish({ n, warmup, connectMs: round(median(connectMs)), connectMsMin: round(Math.min(...connectMs)), connectMsMax: round(Math.max(...connectMs)), runsMs: connectMs.map((v) => round(v, 1)) });
}

async function bulk(mode: string, relayUrl: string, qadPort: number, serverId: string, serverDirect: string, total: number, chunk: number): Promise<void> {
  let ep: Endpoint;
  let conn: Connection;
  let switchMs: number | null = null;
  if (mode === 'multipath') {
    ep = await punchingEndpoint(relayUrl, qadPort, false);
    const t0 = performance.now();
    conn = await withTimeout(ep.connect(EndpointAddr.from({ id: serverId, relayUrls: [relayUrl] }), ALPN), 15_000, 'connect');
    const t2 = await firstDirect(conn, 15_000);
    if (t2 === undefined) throw new Error('no direct path within 15 s');
    switchMs = round(t2 - t0);
  } else if (mode === 'single-online') {
    ep = await punchingEndpoint(relayUrl, qadPort, false);
    conn = await withTimeout(ep.connect(EndpointAddr.from({ id: serverId, directAddresses: [serverDirect] }), ALPN, { settings: { multipath: false } }), 15_000, 'connect');
  } else if (mode === 'single') {
    ep = await Endpoint.bind({ bindAddr: '0.0.0.0:0', pkarr: false });
    conn = await withTimeout(ep.connect(EndpointAddr.from({ id: serverId, directAddresses: [serverDirect] }), ALPN, { settings: { multipath: false } }), 15_000, 'connect');
  } else throw new Error(`mode must be multipath or single, not ${mode}`);
  const relayBefore = conn.paths().find((p) => p.kind === 'relay');
  const { seconds, processCpuPct } = await sendCounted(await conn.openBi(), total, chunk);
  const relayAfter = conn.paths().find((p) => p.kind === 'relay');
  const stats = conn.stats();
  const pathCount = conn.paths().length;
  const path = directPath(conn);
  conn.close(0, 'done');
  finish({
    mode,
    bytes: total,
    MBps: round(total / seconds / 1e6, 1),
    processCpuPct,
    relayed: stats.relayed,
    multipath: stats.multipath,
    pathCount,
    switchMs,
    relayBytesDuring: (relayAfter?.bytesSent ?? 0) - (relayBefore?.bytesSent ?? 0) + (relayAfter?.bytesReceived ?? 0) - (relayBefore?.bytesReceived ?? 0),
    lostPackets: stats.lostPackets,
    congestionEvents: stats.congestionEvents,
    rttMs: round(stats.minRtt, 3),
    mtu: stats.mtu,
    packetsSent: stats.packetsSent,
    cwnd: stats.cwnd,
    paths: conn.paths().map((p) => `${String(p.id)}:${p.kind}:${p.status}:${p.validated ? 'v' : '-'}:${p.address?.toString() ?? ''}:${p.bytesSent}`),
    path,
  });
}

runMain(async () => {
  const [cmd, ...a] = process.argv.slice(2);
  switch (cmd) {
    case 'serve':
      return serve(a[0]!, Number(a[1]));
    case 'punch':
      return punch(a[0]!, Number(a[1]), a[2]!, Number(a[3]), Number(a[4]), Number(a[5]));
    case 'plain':
      return plain(a[0]!, a[1]!, Number(a[2]), Number(a[3]));
    case 'bulk':
      return bulk(a[0]!, a[1]!, Number(a[2]), a[3]!, a[4]!, Number(a[5]), Number(a[6]));
    default:
      throw new Error(`unknown command ${cmd}`);
  }
});
