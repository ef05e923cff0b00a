/**
 * A child process for `test/netns/holepunch.test.ts`: an sdnet `Endpoint` in a site's host
 * namespace, bound to every interface, with one relay and QUIC address discovery on. It waits
 * until a relay reported its public address (so its ADD_ADDRESS / REACH_OUT carry it), then:
 *
 * ```sh
 * node holepunch-peer.ts serve '<relay url>' <qad port>
 * node holepunch-peer.ts dial '<relay url>' <qad port> <server id> <bytes>
 * ```
 *
 * ```sh
 * node holepunch-peer.ts session '<relay url>' <qad port> <server id>
 * ```
 *
 * `serve` prints `{"event":"ready","id"}` and answers each bi stream with the SHA-256 of what
 * it read. `session` dials like `dial`, prints `{"event":"path","relayed","path","reason"}` on
 * every change of the path it sends on, and then takes commands on stdin, one per line:
 * `send <bytes> [<pause at>]` sends on a new bi stream (after `<pause at>` bytes it prints
 * `{"event":"paused"}` and waits for a `go` line), then prints `done` as `dial` does.
 *
 * `serve`'s answer to each stream: the SHA-256 of what it read. `dial` connects with the relay URL only, prints `{"event":"direct","ms","path"}`
 * when the connection sends on a direct path (or `{"event":"relayed"}` after 15 s), sends
 * `bytes`, and prints `{"event":"done","sentHash","peerHash","relayBytesSent","relayBytesReceived","relayed"}`.
 */
import { createHash } from 'node:crypto';
import { createInterface } from 'node:readline';
import { Endpoint, EndpointAddr, type Connection } from '../../src/index.ts';

const ALPN = 'sdnet-test/holepunch';
const [role, url, port, peerId, bytesText] = process.argv.slice(2);
const out = (o: unknown) => process.stdout.write(`${JSON.stringify(o)}\n`);

const ep = await Endpoint.bind({ bindAddr: '0.0.0.0:0', relays: [url!], qad: { port: Number(port) }, alpns: role === 'serve' ? [ALPN] : [] });
await ep.online();
await ep.next('reflexive-addresses', { filter: (e) => e.addresses.length > 0, signal: AbortSignal.timeout(30_000) }).catch(() => undefined);

if (role === 'serve') {
  out({ event: 'ready', id: ep.id.toString(), direct: ep.addr().directAddresses.map(String) });
  for await (const incoming of ep.accept()) {
    void (async () => {
      const conn = await incoming.accept();
      for (;;) {
        const bi = await conn.acceptBi().catch(() => undefined);
        if (bi === undefined) return;
        const hash = createHash('sha256');
        const reader = bi.readable.getReader();
        for (;;) {
          const { value, done } = await reader.read();
          if (done) break;
          hash.update(value);
        }
        const w = bi.writable.getWriter();
        await w.write(new TextEncoder().encode(hash.digest('hex')));
        await w.close();
      }
    })().catch(() => undefined);
  }
} else if (role === 'session') {
  const conn = await ep.connect(EndpointAddr.from({ id: peerId!, relayUrls: [url!] }), ALPN);
  conn.on('path-changed', (e) => out({ event: 'path', relayed: e.relayed, path: String(e.path.key), reason: e.reason }));
  await reportFirstPath(conn, { local: ep.addr().directAddresses.map(String) });
  const lines = createInterface({ input: process.stdin })[Symbol.asyncIterator]();
  const nextLine = async (): Promise<string> => {
    const r = await lines.next();
    if (r.done === true) process.exit(0);
    return r.value.trim();
  };
  for (;;) {
    const [cmd, bytes, pauseAt] = (await nextLine()).split(/\s+/);
    if (cmd !== 'send') continue;
    out(await sendHashed(conn, Number(bytes), Number(pauseAt ?? 0), async () => {
      out({ event: 'paused' });
      while ((await nextLine()) !== 'go');
    }));
  }
} else {
  const conn = await ep.connect(EndpointAddr.from({ id: peerId!, relayUrls: [url!] }), ALPN);
  await reportFirstPath(conn, {});
  out(await sendHashed(conn, Number(bytesText), 0, async () => {}));
  conn.close(0, 'done');
  await ep.close({ graceMs: 200 });
  process.exit(0);
}

/** Wait up to 15 s for a direct path; print `direct` (with the time and address) or `relayed`, plus `extra`. */
async function reportFirstPath(conn: Connection, extra: Record<string, unknown>): Promise<void> {
  const t0 = performance.now();
  while (conn.stats().relayed && performance.now() - t0 < 15_000) await new Promise((r) => setTimeout(r, 20));
  if (conn.stats().relayed) out({ event: 'relayed', ...extra });
  else out({ event: 'direct', ms: Math.round(performance.now() - t0), path: conn.paths().find((p) => p.status === 'active')?.address?.toString(), ...extra });
}

/** Send `total` bytes on a new bi stream (pausing once at `pauseAt`), and the `done` line: both hashes and what the relay path carried meanwhile. */
async function sendHashed(conn: Connection, total: number, pauseAt: number, pause: () => Promise<void>): Promise<Record<string, unknown>> {
  const relayBefore = conn.paths().find((p) => p.kind === 'relay');
  const bi = await conn.openBi();
  const w = bi.writable.getWriter();
  const hash = createHash('sha256');
  const chunk = new Uint8Array(64 * 1024);
  let paused = pauseAt <= 0;
  for (let sent = 0; sent < total; sent += chunk.length) {
    if (!paused && sent >= pauseAt) {
      paused = true;
      await pause();
    }
    for (let i = 0; i < chunk.length; i += 4096) chunk[i] = (sent / 4096 + i) & 0xff;
    const part = chunk.subarray(0, Math.min(chunk.length, total - sent));
    hash.update(part);
    await w.write(part.slice());
  }
  await w.close();
  const reader = bi.readable.getReader();
  let answer = '';
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    answer += new TextDecoder().decode(value);
  }
  const relayAfter = conn.paths().find((p) => p.kind === 'relay');
  return {
    event: 'done',
    sentHash: hash.digest('hex'),
    peerHash: answer,
    relayBytesSent: (relayAfter?.bytesSent ?? 0) - (relayBefore?.bytesSent ?? 0),
    relayBytesReceived: (relayAfter?.bytesReceived ?? 0) - (relayBefore?.bytesReceived ?? 0),
    relayed: conn.stats().relayed,
  };
}
