/**
 * The iroh side of `bench/holepunch.ts`: a real iroh 1.0 endpoint (`@number0/iroh`, minimal
 * preset) in a site's host namespace, bound to every interface, whose only relay is the bench's
 * `sdnet-relay`. The relay goes in without a QUIC port: iroh's QUIC address discovery needs a
 * WebPKI certificate (holepunch.md §5.3), so iroh knows only its local addresses, as in
 * `test/netns/holepunch-iroh.test.ts`.
 *
 *   node holepunch-iroh.ts serve <relayUrl>
 *        accepts connections on the bench ALPN and keeps them until the peer closes
 *   node holepunch-iroh.ts punch <relayUrl> <serverId> <n> <warmup> <windowMs>
 *        n (+ warmup) dials, each from a fresh endpoint already online, with the id and the relay
 *        URL only; per dial: connect() time, and the time from the dial to iroh selecting a
 *        direct (IP) path (iroh's path list polled every millisecond; the TS side uses its
 *        'path-changed' event)
 *
 * JSON lines on stdout as in `common.ts`.
 */
import iroh from '@number0/iroh';
import { bindIrohWithRelay } from '../../test/helpers/iroh-relay-endpoint.ts';
import { closeQuietly, emit, finish, fromDialSummary, median, round, runMain, withTimeout } from './common.ts';

const ALPN = Array.from(new TextEncoder().encode('bench/holepunch/1'));

async function irohEndpoint(relayUrl: string, server: boolean): Promise<iroh.Endpoint> {
  const ep = await bindIrohWithRelay(relayUrl, server ? [ALPN] : []);
  await withTimeout(ep.online(), 15_000, 'online');
  return ep;
}

async function serve(relayUrl: string): Promise<void> {
  const ep = await irohEndpoint(relayUrl, true);
  emit({ ready: true, id: ep.id().toString(), direct: ep.addr().directAddresses() });
  for (;;) {
    const incoming = await ep.acceptNext();
    if (incoming === null) return;
    void (async () => {
      const conn = await (await incoming.accept()).connect();
      await conn.closed();
    })().catch(() => undefined);
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function punch(relayUrl: string, serverId: string, n: number, warmup: number, windowMs: number): Promise<void> {
  const connectMs: number[] = [];
  const fromDialMs: number[] = [];
  let relayedDials = 0;
  for (let i = 0; i < warmup + n; i++) {
    const ep = await irohEndpoint(relayUrl, false);
    try {
      const t0 = performance.now();
      const conn = await withTimeout(ep.connect(new iroh.EndpointAddr(iroh.EndpointId.fromString(serverId), relayUrl, []), ALPN), 15_000, 'connect');
      const t1 = performance.now();
      const selected = () => conn.paths().find((p) => p.isSelected);
      let t2: number | undefined;
      while (performance.now() - t1 < windowMs) {
        if (selected()?.isRelay === false) {
          t2 = performance.now();
          break;
        }
        await sleep(1);
      }
      const path = selected();
      conn.close(0n, []);
      if (i < warmup) continue;
      emit({ sample: true, i: i - warmup, connectMs: round(t1 - t0), direct: t2 !== undefined, fromDialMs: t2 === undefined ? null : round(t2 - t0), path: path?.isRelay === false ? path.remoteAddr : null });
      connectMs.push(t1 - t0);
      if (t2 === undefined) relayedDials++;
      else fromDialMs.push(t2 - t0);
    } finally {
      await closeQuietly(() => ep.close());
    }
  }
  finish({
    n,
    warmup,
    direct: fromDialMs.length,
    relayed: relayedDials,
    windowMs,
    connectMs: round(median(connectMs)),
    ...fromDialSummary(fromDialMs),
  });
}

runMain(async () => {
  const [cmd, ...a] = process.argv.slice(2);
  switch (cmd) {
    case 'serve':
      return serve(a[0]!);
    case 'punch':
      return punch(a[0]!, a[1]!, Number(a[2]), Number(a[3]), Number(a[4]));
    default:
      throw new Error(`unknown command ${cmd}`);
  }
});
