/**
 * A child process for `test/netns/holepunch-iroh.test.ts`: a real iroh 1.0 endpoint
 * (`@number0/iroh`, minimal preset) in a site's host namespace, bound to every interface, whose
 * only relay is the sdnet relay given by URL. The relay is inserted without a QUIC port, so
 * iroh runs no QUIC address discovery (it could not anyway: iroh's QAD needs a WebPKI
 * certificate, holepunch.md §5.3) and knows only its local addresses. It speaks the protocol of
 * `holepunch-peer.ts` (ALPN `sdnet-test/holepunch`: the client writes bytes on a bi stream and
 * finishes, the server answers the hex SHA-256 of what it read), so either can face the other:
 *
 * ```sh
 * node holepunch-iroh-peer.ts serve '<relay url>'
 * node holepunch-iroh-peer.ts dial '<relay url>' <server id> <bytes>
 * ```
 *
 * `serve` prints `{"event":"ready","id","direct"}` once the relay is its home, then
 * `{"event":"conn","remoteId"}` per connection and `{"event":"served","paths"}` per answered
 * stream (iroh's paths then). (`Connection.watchPathEvents` of the 1.1.0 binding panics, "no
 * reactor running", and aborts the process: not used.)
 * `dial` connects with the id and relay URL only, prints `{"event":"direct","ms","path"}` as
 * soon as iroh selects an IP path (or `{"event":"relayed"}` after 15 s), sends `bytes`, and
 * prints `{"event":"done","sentHash","peerHash","relayBytesSent","relayBytesReceived","relayed","paths"}`
 * where the relay byte counts are iroh's own counters of its relay path during the transfer.
 */
import { createHash, randomBytes } from 'node:crypto';
import iroh from '@number0/iroh';
import { bindIrohWithRelay } from './iroh-relay-endpoint.ts';

const ALPN = Array.from(new TextEncoder().encode('sdnet-test/holepunch'));
const out = (o: unknown) => process.stdout.write(`${JSON.stringify(o)}\n`);

async function readAll(recv: iroh.RecvStream, onChunk: (c: Uint8Array) => void): Promise<void> {
  for (;;) {
    const chunk = await recv.read(256 * 1024);
    if (chunk.length === 0) return;
    onChunk(Uint8Array.from(chunk));
  }
}

const pathsOf = (conn: iroh.Connection) =>
  conn.paths().map((p) => ({ id: p.id, isRelay: p.isRelay, isSelected: p.isSelected, remoteAddr: p.remoteAddr, rttMs: p.rttMs, txBytes: p.stats.udpTxBytes, rxBytes: p.stats.udpRxBytes }));

async function serve(ep: iroh.Endpoint): Promise<void> {
  for (;;) {
    const incoming = await ep.acceptNext();
    if (incoming === null) return;
    void (async () => {
      const conn = await (await incoming.accept()).connect();
      out({ event: 'conn', remoteId: conn.remoteId().toString() });
      for (;;) {
        let bi: iroh.BiStream;
        try {
          bi = await conn.acceptBi();
        } catch {
          return;
        }
        void (async () => {
          const h = createHash('sha256');
          await readAll(bi.recv, (c) => h.update(c));
          await bi.send.writeAll(Array.from(new TextEncoder().encode(h.digest('hex'))));
          await bi.send.finish();
          out({ event: 'served', paths: pathsOf(conn) });
        })().catch(() => undefined);
      }
    })().catch(() => undefined);
  }
}

async function dial(ep: iroh.Endpoint, relayUrl: string, peerId: string, total: number): Promise<void> {
  const conn = await ep.connect(new iroh.EndpointAddr(iroh.EndpointId.fromString(peerId), relayUrl, []), ALPN);
  const t0 = performance.now();
  const selected = () => conn.paths().find((p) => p.isSelected);
  while (selected()?.isRelay !== false && performance.now() - t0 < 15_000) await new Promise((r) => setTimeout(r, 20));
  const sel = selected();
  if (sel?.isRelay === false) out({ event: 'direct', ms: Math.round(performance.now() - t0), path: sel.remoteAddr });
  else out({ event: 'relayed', paths: pathsOf(conn) });
  const relayStats = () => {
    const r = conn.paths().filter((p) => p.isRelay);
    return { tx: r.reduce((n, p) => n + p.stats.udpTxBytes, 0), rx: r.reduce((n, p) => n + p.stats.udpRxBytes, 0) };
  };
  const before = relayStats();
  const bi = await conn.openBi();
  const hash = createHash('sha256');
  const chunk = 64 * 1024;
  for (let sent = 0; sent < total; sent += chunk) {
    const part = randomBytes(Math.min(chunk, total - sent));
    hash.update(part);
    await bi.send.writeAll(Array.from(part));
  }
  await bi.send.finish();
  const peerHash = new TextDecoder().decode(Uint8Array.from(await bi.recv.readToEnd(1024)));
  const after = relayStats();
  out({
    event: 'done',
    sentHash: hash.digest('hex'),
    peerHash,
    relayBytesSent: after.tx - before.tx,
    relayBytesReceived: after.rx - before.rx,
    relayed: selected()?.isRelay !== false,
    paths: pathsOf(conn),
  });
  conn.close(0n, []);
}

const [role, relayUrl, peerId, bytes] = process.argv.slice(2);
try {
  if (relayUrl === undefined || (role !== 'serve' && role !== 'dial')) throw new Error('usage: holepunch-iroh-peer.ts serve|dial <relayUrl> [peerId bytes]');
  const ep = await bindIrohWithRelay(relayUrl, [ALPN]);
  await ep.online();
  if (role === 'serve') {
    out({ event: 'ready', id: ep.id().toString(), direct: ep.addr().directAddresses() });
    await serve(ep);
  } else {
    await dial(ep, relayUrl, peerId!, Number(bytes));
    await ep.close();
    process.exit(0);
  }
} catch (err) {
  out({ event: 'error', message: String(err) });
  process.exit(1);
}
